"""Sweep preset settings over the shared runs: one setting for all, with its spread.

Every combination of the ``--grid`` values is applied to the preset and run
on every sequence under ``--data`` with each detection file (the RoI maps come
from the feature cache, computed once per appearance setting). Each row
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
import time
from pathlib import Path
from typing import Any

from deeptrack.config import (
    RunConfig,
    default_cache_dir,
    load_yaml,
    parse_scalar,
    to_dict,
    with_settings,
)
from deeptrack.eval import evaluate_sequence
from deeptrack.io.mot import write_atomic
from deeptrack.io.sequence import load_sequence
from deeptrack.pipeline import run_sequence, sequence_features

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


def run_one(cfg: RunConfig, seq_path: Path, det_file: str, cache: dict) -> dict[str, float]:
    """Track one run with ``cfg`` and return its metrics (percent)."""
    seq = load_sequence(seq_path, det_file=det_file, min_confidence=cfg.min_confidence)
    features = None
    if cfg.use_appearance:
        key = (str(seq_path), det_file, cfg.min_confidence, json.dumps(to_dict(cfg.appearance)))
        if key not in cache:
            cache.clear()  # one run's maps at a time: ADL-Rundle-6's are 0.6 GB
            cache[key] = sequence_features(seq, cfg.appearance)
        features = cache[key]
    run = run_sequence(seq, cfg, features=features)
    m = evaluate_sequence(seq.gt, run.results, name=seq.name, path=seq.path).to_dict()
    return {k: 100.0 * m[k] for k in METRICS} | {"idsw": m["idsw"]}


def sweep(base: RunConfig, grid, data: Path) -> list[dict[str, Any]]:
    """Run every setting of ``grid`` on every run; appearance settings vary slowest."""
    keys = [k for k, _ in grid]
    settings = [dict(zip(keys, values)) for values in itertools.product(*(v for _, v in grid))]
    settings.sort(key=lambda s: json.dumps({k: v for k, v in s.items()
                                            if k.startswith("appearance.")}, sort_keys=True))
    rows, cache = [], {}
    for (seq, det) in RUNS:  # runs outermost: each run's maps are loaded once
        for setting in settings:
            cfg = apply(base, setting)
            start = time.perf_counter()
            metrics = run_one(cfg, data / seq, det, cache)
            rows.append({"setting": setting, "run": f"{Path(seq).name}/{det}", **metrics,
                         "seconds": round(time.perf_counter() - start, 2)})
            print(f"{rows[-1]['run']:<28} {setting} IDF1 {metrics['idf1']:.2f} "
                  f"HOTA {metrics['hota']:.2f}", file=sys.stderr, flush=True)
    return rows


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
    args = p.parse_args(argv)
    base = load_yaml(args.config)
    appearance = dataclasses.replace(base.appearance, cache_dir=str(default_cache_dir()))
    if args.weights:
        appearance = dataclasses.replace(appearance, weights=args.weights)
    base = dataclasses.replace(base, appearance=appearance)
    rows = sweep(base, parse_grid(args.grid), Path(args.data))
    summary = summarise(rows)
    command = "python benchmarks/sweep.py " + " ".join(argv if argv is not None else sys.argv[1:])
    out = Path(args.out)
    write_atomic(out / "sweep.json", json.dumps({"command": command, "config": args.config,
                                                 "rows": rows, "summary": summary}, indent=2))
    write_atomic(out / "sweep.md", render(summary, command))
    print(render(summary, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
