"""The pooling study: which vector should a tracker make of a detection, on which backbone?

Three axes, on every sequence of a MOTChallenge split and every detection file
(``det/det.txt``, ``det/det_frcnn.txt``), with the same detections and the
same cached RoI feature maps:

- backbone (``--backbones``): MobileNetV2 ImageNet RoI features
  (``configs/fused.yaml``), OSNet x0.25 as a RoI backbone
  (``configs/fused_osnet_roi.yaml``: its conv5 maps, and its own embedding
  head on the RoIs) and OSNet x0.25 on crops (``configs/fused_osnet.yaml``,
  one vector per box);
- pooling mode of the RoI maps (avg, max, avgmax, GeM p = 1.5 / 3 / 6,
  flatten, maxpool_flatten k = 2, pyramid, flatten + a seeded random
  projection to 512);
- online adaptation (``--adaptation``, ``TrackerConfig.adaptation``): none,
  centre (causal mean-centring, :class:`deeptrack.appearance.adapt.OnlineAdapter`).

Identity separation without tracking, for every backbone, mode and
adaptation: on the ground-truth boxes, same- against different-identity
cosine distances of pairs at most ``--pair-window`` frames apart, as ROC AUC,
the vectors adapted frame by frame in order as ``benchmarks/adaptation_auc.py``
does. Tracking, with each backbone's fused preset unchanged but for
``adaptation`` (the appearance cost is calibrated online, so no threshold is
tuned): the ``--top`` modes by AUC plus the preset's own pooling, with every
adaptation, and motion only once per distinct lifecycle as the reference.

Cost: one backbone pass per frame per backbone layer (OSNet crops: one pass
per box). Per sequence and layer, the boxes of all detection files and of the
ground truth go through one :func:`deeptrack.appearance.extract_sequence`
call, cached on disk with :class:`deeptrack.appearance.FeatureCache`.

Usage::

    python benchmarks/pooling_study.py [--data DIR] [--weights DIR] [--cache DIR]
        [--backbones mobilenet_v2,osnet_roi,osnet_crops] [--adaptation none,centre]
        [--out benchmarks/results] [--sequences A,B] [--quick] [--image-scale S]

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

from study.common import BACKBONE_NAMES, DEFAULT_ADAPTATIONS, DEFAULT_DET_SETS, QUICK_MODES, log
from study.plots import render_plots
from study.render import render_markdown
from study.results import compare_previous
from study.run import run_study
from study.separation import roc_auc, sample_pairs

from deeptrack.config import default_cache_dir
from deeptrack.errors import DeepTrackError
from deeptrack.io.mot import write_atomic

__all__ = ["QUICK_MODES", "build_parser", "main", "roc_auc", "sample_pairs"]


def _default_data() -> Path:
    env = os.environ.get("DEEPTRACK_DATA")
    if env:
        p = Path(env)
        return p / "MOT15" / "train" if (p / "MOT15" / "train").is_dir() else p
    return REPO.parent / "shared" / "data" / "MOT15" / "train"


def _default_weights() -> Path:
    env = os.environ.get("DEEPTRACK_WEIGHTS")
    return Path(env) if env else REPO.parent / "shared" / "weights"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pooling_study",
        description="Which vector should a tracker use? AUC and fused tracking per backbone, "
                    "pooling mode and online adaptation, on the same detections and cached maps.")
    p.add_argument("--data", type=Path, default=_default_data(),
                   help="split folder of MOTChallenge sequences (default ../shared/data/MOT15/"
                        "train, or $DEEPTRACK_DATA)")
    p.add_argument("--weights", default=str(_default_weights()),
                   help="folder holding the backbones' weights files (default ../shared/weights "
                        "or $DEEPTRACK_WEIGHTS); 'random': random weights (tests)")
    p.add_argument("--backbones", default=None,
                   help=f"comma-separated, from {', '.join(BACKBONE_NAMES)} (default: every one "
                        "whose weights file is in --weights)")
    p.add_argument("--adaptation", default=",".join(DEFAULT_ADAPTATIONS),
                   help="comma-separated TrackerConfig.adaptation values (default "
                        f"{','.join(DEFAULT_ADAPTATIONS)})")
    p.add_argument("--top", type=int, default=None,
                   help="modes tracked per backbone, best by AUC (default 3, --quick 1); the "
                        "preset's own pooling is tracked as well")
    p.add_argument("--cache", type=Path, default=default_cache_dir(),
                   help="RoI feature cache (default ~/.cache/deeptrack/features or "
                        "$DEEPTRACK_CACHE)")
    p.add_argument("--no-cache", action="store_true", help="keep maps in memory only")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--sequences", default=None, help="comma-separated sequence names")
    p.add_argument("--det-sets", default=DEFAULT_DET_SETS,
                   help=f"detection files, each optionally FILE:MIN_CONFIDENCE (default "
                        f"{DEFAULT_DET_SETS}: no minimum, as the presets)")
    p.add_argument("--image-scale", type=float, default=None,
                   help="resize every backbone's frames by this (default: each preset's own)")
    p.add_argument("--pair-window", type=int, default=30)
    p.add_argument("--pairs", type=int, default=20000, help="most pairs per side per sequence")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke test: modes {', '.join(QUICK_MODES)}; one mode tracked")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--from-json", type=Path, default=None,
                   help="only re-render the report and plots from an earlier run's JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.top is None:
        args.top = 1 if args.quick else 3
    if args.top < 0:
        print("pooling_study: error: --top must be >= 0", file=sys.stderr)
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
