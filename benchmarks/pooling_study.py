"""The pooling study: which vector should a tracker make of a detection's RoI feature map?

One command runs, on every sequence of a MOTChallenge split, with the same
detections and the same cached RoI feature maps:

- motion only (no appearance);
- every pooling mode (avg, max, avgmax, GeM p = 1.5 / 3 / 6, flatten,
  maxpool_flatten k = 2, pyramid) and flatten reduced by a seeded random
  projection (``HeadConfig.reduce_dim``) or by PCA fitted on the
  sequence's own flattened maps;
- deep-sort-realtime (when installed) fed the same detections and the same
  avg-pooled embeddings;
- for every detection file of the sequence (``det/det.txt``, ``det/det_frcnn.txt``).

The matching threshold ``max_cosine_distance`` is tuned per mode on ONE
sequence and detection set (default ADL-Rundle-6 with det_frcnn.txt, by IDF1)
and every other run uses the tuned value. Each mode is also run at two fixed
thresholds (0.1 and DeepSORT's 0.2) to show how much the threshold alone moves
the metrics. Identity separation without tracking: on the ground-truth boxes,
same-identity against different-identity cosine distances of pairs at most
``--pair-window`` frames apart, summarised as ROC AUC per mode. The backbone
layer (stride 32 / 16 / 8 for MobileNetV2) is a further axis for the two best
modes, and for the AUC of every mode.

Cost: one backbone pass per frame per layer. Per sequence and layer, the boxes
of all detection sets and of the ground truth go through one
:func:`deeptrack.appearance.extract_sequence` call (RoIAlign treats each box on
its own, so a box's map does not depend on the others), cached on disk with
:class:`deeptrack.appearance.FeatureCache`; every mode pools those same maps.

Usage::

    python benchmarks/pooling_study.py [--data DIR] [--weights FILE] [--cache DIR]
        [--out benchmarks/results] [--sequences A,B] [--quick] [--image-scale 0.5]

Writes ``pooling_study.md``, ``pooling_study.json`` and ``pooling_study_*.png``
into ``--out``. Errors in the inputs print one line on stderr (exit status 2).

This file is the command; what runs lives in ``benchmarks/study/`` (``data``,
``separation``, ``run``, ``results``) and what renders beside it (``render``,
``findings``, ``plots``).
"""

from __future__ import annotations

import os

if __name__ == "__main__":
    # Before numpy loads: on a small machine shared with other jobs, OpenBLAS's
    # worker threads wait on busy cores; a (2, 62720) @ (62720, 512) product then
    # took 1.1 s instead of 0.05 s with one thread. Tracker.update scopes this
    # itself; the PCA fits and pair distances here need it too. Set it to override.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "benchmarks") not in sys.path:  # the study package, also when loaded by path
    sys.path.insert(0, str(REPO / "benchmarks"))

from study.common import DEFAULT_DET_SETS, QUICK_GRID, QUICK_MODES, log
from study.plots import render_plots
from study.render import render_markdown
from study.results import compare_previous
from study.run import run_study
from study.separation import roc_auc, sample_pairs

from deeptrack.config import default_cache_dir
from deeptrack.errors import DeepTrackError
from deeptrack.io.mot import write_atomic

__all__ = ["QUICK_MODES", "build_parser", "main", "roc_auc", "sample_pairs"]

WEIGHTS_FILE = "mobilenet_v2_imagenet_features.pth"


def _default_data() -> Path:
    env = os.environ.get("DEEPTRACK_DATA")
    if env:
        p = Path(env)
        return p / "MOT15" / "train" if (p / "MOT15" / "train").is_dir() else p
    return REPO.parent / "shared" / "data" / "MOT15" / "train"


def _default_weights() -> Path:
    env = os.environ.get("DEEPTRACK_WEIGHTS")
    root = Path(env) if env else REPO.parent / "shared" / "weights"
    return root / WEIGHTS_FILE


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pooling_study",
        description="Which pooled vector should a tracker use? Tracks every sequence with every "
                    "pooling mode on the same detections and cached RoI maps.")
    p.add_argument("--data", type=Path, default=_default_data(),
                   help="split folder of MOTChallenge sequences (default ../shared/data/MOT15/"
                        "train, or $DEEPTRACK_DATA)")
    p.add_argument("--weights", default=str(_default_weights()),
                   help="backbone state_dict file or torchvision weights name ('random': tests)")
    p.add_argument("--backbone", default="mobilenet_v2")
    p.add_argument("--layer", default=None, help="layer the RoIs are pooled from (default: the "
                                                 "backbone's default, stride32 for MobileNetV2)")
    p.add_argument("--layer-axis", default=None,
                   help="further layers for the two best modes (default for mobilenet_v2: "
                        "stride16,stride8; '' for none)")
    p.add_argument("--cache", type=Path, default=default_cache_dir(),
                   help="RoI feature cache (default ~/.cache/deeptrack/features or "
                        "$DEEPTRACK_CACHE)")
    p.add_argument("--no-cache", action="store_true", help="keep maps in memory only")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--sequences", default=None, help="comma-separated sequence names")
    p.add_argument("--det-sets", default=DEFAULT_DET_SETS,
                   help=f"detection files and min confidences (default {DEFAULT_DET_SETS})")
    p.add_argument("--tune-sequence", default="ADL-Rundle-6")
    p.add_argument("--tune-det", default="det_frcnn.txt")
    p.add_argument("--tune-metric", default="idf1", choices=("idf1", "hota"))
    p.add_argument("--image-scale", type=float, default=0.5)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--pair-window", type=int, default=30)
    p.add_argument("--pairs", type=int, default=20000, help="most pairs per side per sequence")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke test: modes {', '.join(QUICK_MODES)}; thresholds "
                        f"{', '.join(map(str, QUICK_GRID))}")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--from-json", type=Path, default=None,
                   help="only re-render the report and plots from an earlier run's JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.layer_axis is None:
        args.layer_axis = "stride16,stride8" if args.backbone == "mobilenet_v2" else ""
    if args.weights != "random" and Path(args.weights).suffix in (".pth", ".pt") \
            and not Path(args.weights).is_file():
        print(f"pooling_study: error: weights file {args.weights} not found (--weights)",
              file=sys.stderr)
        return 2
    previous = args.out / "pooling_study.json"
    try:
        old = json.loads(previous.read_text()) if previous.is_file() else None
    except (OSError, ValueError):
        old = None
    try:
        if args.from_json:
            res = json.loads(args.from_json.read_text())
        else:
            res = run_study(args)
            res["previous_run"] = compare_previous(res, old)
    except (DeepTrackError, OSError) as e:
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"pooling_study: error: {message}", file=sys.stderr)
        return 2
    plots = {} if args.no_plots else render_plots(res)
    out: Path = args.out
    for name, data in plots.items():
        write_atomic(out / name, data)
    if not args.from_json:
        write_atomic(out / "pooling_study.json", json.dumps(res, indent=1, default=str))
    write_atomic(out / "pooling_study.md", render_markdown(res, list(plots)))
    log(f"done in {res['elapsed_seconds'] / 60:.1f} min; wrote {out}/pooling_study.md"
        + ("" if args.from_json else ", .json") + (f" and {len(plots)} plots" if plots else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
