"""Sweep preset settings over the shared runs: one setting for all, with its spread.

Every combination of the ``--grid`` values is applied to the preset and run
on every sequence under ``--data`` with each detection file, each run an
independent task of :mod:`deeptrack.sweeps` (serially, or with ``--workers N``
on local workers, or on a Ray cluster with ``--ray-address``: the same numbers
either way); the RoI maps are extracted once per sequence, detection file and
appearance setting, by a task the runs that need them wait for. Each row
reports the per-run IDF1 / HOTA / MOTA and their means over the runs, so a
setting is judged on all runs at once (no per-sequence tuning) and the
neighbours of the chosen value show how much of its score is luck.

Usage::

    python benchmarks/sweep.py --config configs/deepsort.yaml \\
        --grid tracker.min_score_quantile=0,0.2,0.3 --grid appearance.resize=area,bilinear \\
        --weights ../shared/weights/mobilenet_v2_imagenet_features.pth --out runs/sweep

Writes ``sweep.json`` and ``sweep.md`` into ``--out``.
"""

from __future__ import annotations

import os

if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small products; see peers.py

import argparse
import dataclasses
import itertools
import json
import sys
from pathlib import Path
from typing import Any

from deeptrack.config import (
    RunConfig,
    default_cache_dir,
    load_yaml,
    parse_scalar,
    with_settings,
)
from deeptrack.io.mot import write_atomic
from deeptrack.sweeps import SweepSpec, Variant, make_backend, run_sweep

REPO = Path(__file__).resolve().parents[1]
RUNS = (("MOT15/train/ADL-Rundle-6", "det.txt"), ("MOT15/train/ADL-Rundle-6", "det_frcnn.txt"),
        ("MOT15/train/KITTI-17", "det.txt"), ("MOT15/train/KITTI-17", "det_frcnn.txt"))
METRICS = ("idf1", "hota", "mota")


def parse_grid(items: list[str]) -> list[tuple[str, list[Any]]]:
    """``section.key=v1,v2`` -> [(``section.key``, [v1, v2])], values read as YAML scalars."""
    grid = []
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or "." not in key:
            raise SystemExit(f"--grid {item!r}: expected section.key=v1,v2,...")
        grid.append((key, [parse_scalar(v) for v in values.split(",")]))
    return grid


def apply(cfg: RunConfig, setting: dict[str, Any]) -> RunConfig:
    """Return ``cfg`` with ``{"section.key": value}`` (or top-level ``key``) applied."""
    return with_settings(cfg, {k.removeprefix("run."): v for k, v in setting.items()})


def sweep(base: RunConfig, grid, data: Path, backend=None, *,
          transport: str = "auto") -> tuple[list[dict[str, Any]], list]:
    """Run every setting of ``grid`` on every run as independent tasks (deeptrack.sweeps).

    Returns the rows of the runs that completed and the tasks that failed.
    """
    keys = [k for k, _ in grid]
    settings = [dict(zip(keys, values)) for values in itertools.product(*(v for _, v in grid))]
    labels = {json.dumps(s, sort_keys=True): s for s in settings}
    sequences = tuple(dict.fromkeys(str(data / seq) for seq, _ in RUNS))
    det_files = tuple(dict.fromkeys(det for _, det in RUNS))
    spec = SweepSpec(sequences, tuple(Variant(label, apply(base, s))
                                      for label, s in labels.items()), det_files=det_files)

    def progress(outcome, done: int, total: int) -> None:
        state = f"{outcome.seconds:.1f} s" if outcome.ok else f"FAILED: {outcome.error}"
        print(f"[{done}/{total}] {outcome.name}: {state}", file=sys.stderr, flush=True)

    result = run_sweep(spec, backend, transport=transport, progress=progress)
    seconds = {o.name: o.seconds for o in result.outcomes}
    rows = []
    for r in result.runs:  # runs outermost, as the spec orders them
        m = r.metrics.to_dict()
        name = f"{Path(r.path).name}/{r.det_file} {r.label}"
        rows.append({"setting": labels[r.label], "run": f"{Path(r.path).name}/{r.det_file}",
                     **{k: 100.0 * m[k] for k in METRICS}, "idsw": m["idsw"],
                     "seconds": round(seconds.get(name, 0.0), 2)})
    return rows, result.failures


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per setting: per-run metrics and their means."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        key = json.dumps(r["setting"], sort_keys=True)
        s = out.setdefault(key, {"setting": r["setting"], "runs": {}})
        s["runs"][r["run"]] = {k: r[k] for k in (*METRICS, "idsw")}
    for s in out.values():
        for k in METRICS:
            s[f"mean_{k}"] = sum(v[k] for v in s["runs"].values()) / len(s["runs"])
    return list(out.values())


def render(summary: list[dict[str, Any]], command: str) -> str:
    """A Markdown table: a row per setting, IDF1 / HOTA per run and the means."""
    runs = list(summary[0]["runs"]) if summary else []
    lines = [f"Command: `{command}`", "",
             "| setting | " + " | ".join(runs) + " | mean IDF1 | mean HOTA | mean MOTA |",
             "|---|" + "---|" * (len(runs) + 3)]
    for s in summary:
        cells = [f"{s['runs'][r]['idf1']:.2f} / {s['runs'][r]['hota']:.2f}" for r in runs]
        label = ", ".join(f"{k}={v}" for k, v in s["setting"].items()) or "(preset)"
        lines.append(f"| {label} | " + " | ".join(cells) +
                     f" | {s['mean_idf1']:.2f} | {s['mean_hota']:.2f} | {s['mean_mota']:.2f} |")
    return "\n".join(lines) + "\n\nCells: IDF1 / HOTA.\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(REPO / "configs" / "deepsort.yaml"))
    p.add_argument("--grid", action="append", default=[], metavar="SECTION.KEY=V1,V2")
    p.add_argument("--weights", default=None, help="backbone weights file (appearance presets)")
    p.add_argument("--data", default=os.environ.get("DEEPTRACK_DATA", REPO.parent / "shared"
                                                    / "data"))
    p.add_argument("--out", default="runs/sweep")
    p.add_argument("--workers", type=int, default=None,
                   help="local workers (Ray if installed, else a process pool); default serial")
    p.add_argument("--ray-address", default=None, help="run the tasks on this Ray cluster")
    args = p.parse_args(argv)
    base = load_yaml(args.config)
    appearance = dataclasses.replace(base.appearance, cache_dir=str(default_cache_dir()))
    if args.weights:
        appearance = dataclasses.replace(appearance, weights=args.weights)
    base = dataclasses.replace(base, appearance=appearance)
    backend = make_backend(args.workers, args.ray_address)
    try:
        rows, failed = sweep(base, parse_grid(args.grid), Path(args.data), backend)
    finally:
        backend.close()
    summary = summarise(rows)
    command = "python benchmarks/sweep.py " + " ".join(argv if argv is not None else sys.argv[1:])
    out = Path(args.out)
    report = render(summary, command)
    extra: dict[str, Any] = {}
    if failed:  # what completed is written, and says it is not the whole sweep
        extra = {"complete": False, "failed": [{"task": o.name, "error": o.error}
                                                for o in failed]}
        report = ("**INCOMPLETE**: failed tasks: "
                  + "; ".join(f"{o.name} ({o.error})" for o in failed) + "\n\n" + report)
    write_atomic(out / "sweep.json", json.dumps({"command": command, "config": args.config,
                                                 "rows": rows, "summary": summary, **extra},
                                                indent=2))
    write_atomic(out / "sweep.md", report)
    print(report)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
