"""The pooling study's core on a tiny synthetic sequence folder, with random weights."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location(
        "pooling_study", REPO / "benchmarks" / "pooling_study.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["pooling_study"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("pooling_study", None)


def _brute_auc(pos, neg):
    wins = sum((p < n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_roc_auc_matches_pair_counting_with_ties(study):
    rng = np.random.default_rng(3)
    pos = rng.integers(0, 5, 40).astype(float)  # many ties, within and across sides
    neg = rng.integers(2, 8, 30).astype(float)
    assert study.roc_auc(pos, neg) == pytest.approx(_brute_auc(pos, neg), abs=1e-12)
    assert study.roc_auc([0.1, 0.2], [0.3, 0.4]) == 1.0
    assert study.roc_auc([0.3, 0.4], [0.1, 0.2]) == 0.0
    assert study.roc_auc([0.5], [0.5]) == 0.5
    assert np.isnan(study.roc_auc([], [0.5]))


def test_sample_pairs_respects_window_and_is_deterministic(study):
    frames = np.array([1, 1, 2, 3, 3, 5, 9])
    ids = np.array([1, 2, 1, 2, 1, 1, 2])
    pos, neg = study.sample_pairs(frames, ids, window=2, n_max=100, seed=0)
    everything = np.concatenate([pos, neg])
    gaps = frames[everything[:, 1]] - frames[everything[:, 0]]
    assert gaps.min() >= 1 and gaps.max() <= 2
    assert (ids[pos[:, 0]] == ids[pos[:, 1]]).all()
    assert (ids[neg[:, 0]] != ids[neg[:, 1]]).all()
    brute = {(i, j) for i in range(7) for j in range(7) if 1 <= frames[j] - frames[i] <= 2}
    assert {tuple(p) for p in everything.tolist()} == brute
    a = study.sample_pairs(frames, ids, 2, 2, seed=5)
    b = study.sample_pairs(frames, ids, 2, 2, seed=5)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert len(a[0]) <= 2 and len(a[1]) <= 2


def _write_sequence(root: Path, name: str = "TINY-01", n_frames: int = 8) -> Path:
    """Two people walking right on a 96 x 64 frame; det.txt and det_frcnn.txt with a miss."""
    from PIL import Image

    seq = root / name
    (seq / "img1").mkdir(parents=True)
    (seq / "det").mkdir()
    (seq / "gt").mkdir()
    (seq / "seqinfo.ini").write_text(
        f"[Sequence]\nname={name}\nimDir=img1\nframeRate=10\nseqLength={n_frames}\n"
        "imWidth=96\nimHeight=64\nimExt=.jpg\n")
    rng = np.random.default_rng(0)
    gt, det, frcnn = [], [], []
    for f in range(1, n_frames + 1):
        img = rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)
        Image.fromarray(img).save(seq / "img1" / f"{f:06d}.jpg")
        for pid, (x0, y) in enumerate(((5.0, 10.0), (50.0, 20.0)), start=1):
            x = x0 + 3 * f
            gt.append(f"{f},{pid},{x},{y},16,32,1,-1,-1,-1")
            det.append(f"{f},-1,{x + 1},{y},16,32,{30 + pid},-1,-1,-1")
            if not (pid == 2 and f == 4):
                frcnn.append(f"{f},-1,{x},{y + 1},16,32,0.95,-1,-1,-1")
    (seq / "gt" / "gt.txt").write_text("\n".join(gt) + "\n")
    (seq / "det" / "det.txt").write_text("\n".join(det) + "\n")
    (seq / "det" / "det_frcnn.txt").write_text("\n".join(frcnn) + "\n")
    return seq


def test_study_runs_end_to_end_on_a_tiny_sequence(study, tmp_path):
    _write_sequence(tmp_path / "data")
    out = tmp_path / "out"
    # stride8 (32 channels) keeps it fast: flatten is 1568-d, its projection matrix small.
    # Random weights: no cache (their tiny activations would underflow the float16 cache).
    argv = ["--data", str(tmp_path / "data"), "--weights", "random", "--no-cache",
            "--out", str(out), "--quick", "--image-scale", "1.0", "--tune-sequence", "TINY-01",
            "--layer", "stride8", "--layer-axis", "stride16", "--pairs", "50"]
    # As a user runs it: a fresh process, where the script limits OpenBLAS to one thread.
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "pooling_study.py"), *argv],
                          check=False, capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    res = json.loads((out / "pooling_study.json").read_text())
    md = (out / "pooling_study.md").read_text()
    assert set(res["summary"]) == set(study.QUICK_MODES)
    for name, entry in res["summary"].items():
        assert (entry["tuned_threshold"] is None) == (name == "motion only")
        assert entry["all"]["runs"] == 2  # two detection files of one sequence
    assert res["reproducibility"]["all_identical"]
    assert res["summary"]["flatten+RP512"]["all"]["embedding_dim"] == 512
    assert res["summary"]["avg"]["all"]["embedding_dim"] == 32
    assert set(res["identity_separation"]) == {"stride8", "stride16"}
    for layer in res["identity_separation"].values():
        for m in layer["modes"].values():
            assert 0.0 <= m["all"]["auc"] <= 1.0
    assert set(res["layers"]) == {"stride8", "stride16"}
    assert "## Conclusion" in md and "| avg |" in md
    assert res["gt_box_cells"]["TINY-01"]["stride8"] == [2.0, 4.0]  # 16 x 32 px boxes, stride 8
    for png in ("tracking", "auc", "threshold", "layers", "cost"):
        assert (out / f"pooling_study_{png}.png").stat().st_size > 1000


def test_bad_tuning_run_is_one_line_and_status_2(study, tmp_path, capsys):
    _write_sequence(tmp_path / "data")
    argv = ["--data", str(tmp_path / "data"), "--weights", "random", "--no-cache",
            "--out", str(tmp_path / "out"), "--quick", "--tune-sequence", "NOPE"]
    assert study.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("pooling_study: error: tuning run NOPE/")
    assert not (tmp_path / "out").exists()
