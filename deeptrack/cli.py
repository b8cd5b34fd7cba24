"""The ``deeptrack`` command line: argparse -> config -> library calls.

Commands: ``track``, ``eval``, ``compare`` and ``demo``. Errors in the
user's input (missing folders, malformed files, unknown options or modes)
print one line on stderr and exit with status 2; result files are written
only once everything they depend on has succeeded.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from deeptrack import __version__
from deeptrack.config import RunConfig, load_yaml, to_dict
from deeptrack.errors import ConfigError, DeepTrackError
from deeptrack.io.mot import format_results, write_atomic
from deeptrack.io.resultset import check_destination, write_result_set
from deeptrack.types import PoolingMode

#: Pseudo pooling mode of ``compare``: no appearance at all (SORT-like).
MOTION_ONLY = "none"


class CLIError(DeepTrackError):
    """A usage error found after parsing (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (and exit status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# ---------------------------------------------------------------- flag types

def _number(flag: str, kind: type = float, low: float | None = None, high: float | None = None,
            *, low_open: bool = False):
    """An argparse ``type``: a finite ``kind`` in [low, high] (``(low, high]`` if low_open)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        below = low is not None and (value <= low if low_open else value < low)
        if below or (high is not None and value > high):
            lo = "" if low is None else f"{low:g} {'<' if low_open else '<='} "
            hi = "" if high is None else f" <= {high:g}"
            raise argparse.ArgumentTypeError(f"{text} is out of range: expected {lo}{flag}{hi}")
        return value

    parse.__name__ = flag  # argparse names the type in some messages
    return parse


def _file_name(flag: str):
    """An argparse ``type``: a plain file name (no folder part), as ``det/`` holds."""
    def parse(text: str) -> str:
        if not text or Path(text).name != text or text in (".", ".."):
            raise argparse.ArgumentTypeError(f"{text!r} is not a file name inside det/")
        return text

    parse.__name__ = flag
    return parse


#: Bounds of the demo's synthetic scene (it is held in memory: ~0.6 KB per object and frame).
DEMO_MAX_OBJECTS = 1000
DEMO_MAX_FRAMES = 100_000
DEMO_MAX_BOXES = 1_000_000


# ---------------------------------------------------------------- helpers

def _progress(total: int, desc: str, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="frame", disable=quiet, file=sys.stderr,
                dynamic_ncols=True, leave=False)


def _load_config(args: argparse.Namespace) -> RunConfig:
    """Read --config (or the defaults) and apply the command-line overrides."""
    from deeptrack.pipeline import DEFAULT_CACHE, with_overrides

    cfg = load_yaml(args.config) if args.config else RunConfig()
    weights = getattr(args, "weights", None)
    appearance = with_overrides(
        cfg.appearance, backbone=args.backbone, layer=args.layer,
        weights=None if weights == "random" else weights,
        image_scale=args.image_scale, device=args.device, batch_size=args.batch_size,
        cache_dir=args.cache_dir,
    )
    if weights == "random":
        appearance = dataclasses.replace(appearance, weights=None)
    if args.no_cache:
        appearance = dataclasses.replace(appearance, cache_dir=None)
    elif appearance.cache_dir is None:
        appearance = dataclasses.replace(appearance, cache_dir=str(DEFAULT_CACHE))
    tracker = cfg.tracker
    pooling = getattr(args, "pooling", None)
    if isinstance(pooling, str):
        if pooling == MOTION_ONLY:
            cfg = dataclasses.replace(cfg, use_appearance=False)
        else:
            tracker = with_overrides(tracker, **_parse_mode(pooling))
    use_appearance = cfg.use_appearance and not args.no_appearance
    if use_appearance and appearance.cache_dir is not None and appearance.cache_max_bytes is None:
        from deeptrack.appearance.cache import default_max_bytes

        # resolved now: a bad $DEEPTRACK_CACHE_MAX_BYTES fails before any work, and
        # config.json records the bound that applied
        appearance = dataclasses.replace(appearance, cache_max_bytes=default_max_bytes())
    if use_appearance and appearance.weights is None and weights != "random":
        raise ConfigError(
            "no backbone weights: pass --weights FILE (a state_dict) or a torchvision weights "
            "name, set appearance.weights in the config, or --weights random (tests only)"
        )
    return RunConfig(tracker=tracker, appearance=appearance, use_appearance=use_appearance,
                     det_file=args.det_file or cfg.det_file,
                     min_confidence=(args.min_confidence if args.min_confidence is not None
                                     else cfg.min_confidence))


def _parse_mode(text: str) -> dict[str, Any]:
    """``avg`` -> {pooling: avg}; ``gem:6`` -> {pooling: gem, gem_p: 6}; ``maxpool_flatten:3``."""
    name, _, param = text.partition(":")
    try:
        mode = PoolingMode.parse(name.strip())
    except ValueError as e:
        raise ConfigError(f"--pooling: {e} (or '{MOTION_ONLY}' for motion only)") from None
    out: dict[str, Any] = {"pooling": mode.value}
    if param:
        try:
            if mode is PoolingMode.GEM:
                out["gem_p"] = float(param)
            elif mode is PoolingMode.MAXPOOL_FLATTEN:
                out["maxpool_kernel"] = int(param)
            else:
                raise ValueError
        except ValueError:
            raise ConfigError(f"--pooling: bad parameter in {text!r} (use gem:P or "
                              "maxpool_flatten:K)") from None
        if not (math.isfinite(out.get("gem_p", 1.0)) and 0 < out.get("gem_p", 1.0) <= 100):
            raise ConfigError(f"--pooling: GeM's p in {text!r} must be a number in 0 < p <= 100")
        if not 1 <= out.get("maxpool_kernel", 1) <= 64:
            raise ConfigError(f"--pooling: the kernel in {text!r} must be an integer in 1..64")
    return out


def _load_sequences(path: str, cfg: RunConfig):
    from deeptrack.io.sequence import find_sequences, load_sequence

    return [load_sequence(p, det_file=cfg.det_file, min_confidence=cfg.min_confidence)
            for p in find_sequences(path)]


def _features(seq, cfg: RunConfig, embedder, quiet: bool):
    from deeptrack.pipeline import sequence_features

    bar = _progress(len(seq), f"{seq.name} features", quiet)
    done = [0]

    def progress(n: int, total: int) -> None:
        bar.update(n - done[0])
        done[0] = n

    try:
        return sequence_features(seq, cfg.appearance, embedder=embedder, progress=progress)
    finally:
        bar.close()


def _track(seq, tracker_cfg, features, quiet: bool, label: str = ""):
    from deeptrack.pipeline import track_sequence

    bar = _progress(len(seq), f"{seq.name} {label}".strip(), quiet)
    try:
        return track_sequence(seq, tracker_cfg, features, progress=bar.update)
    finally:
        bar.close()


def _embedder(cfg: RunConfig):
    if not cfg.use_appearance:
        return None
    from deeptrack.appearance.embedder import RoIEmbedder

    return RoIEmbedder(cfg.appearance)


# ---------------------------------------------------------------- commands

def _write_set(out: Path, files: dict[str, str | bytes], command: str) -> str:
    """Write a result set all or nothing (see deeptrack.io.resultset); say what became of --out."""
    replaced = write_result_set(out, files, command=command,
                                info={"argv": sys.argv[1:] if sys.argv else []})
    return " (replacing the previous result set there)" if replaced else ""


def cmd_track(args: argparse.Namespace) -> int:
    cfg = _load_config(args)
    out = Path(args.out)
    check_destination(out)  # before the work, not after it
    seqs = _load_sequences(args.path, cfg)  # every file is parsed before any work
    embedder = _embedder(cfg)
    files: dict[str, str | bytes] = {}
    for seq in seqs:
        features = _features(seq, cfg, embedder, args.quiet) if embedder else None
        run = _track(seq, cfg.tracker, features, args.quiet)
        files[f"{seq.path.name}.txt"] = format_results(run.results)
        print(f"{seq.name}: {run.frames} frames, {len(set(run.results.track_id.tolist()))} "
              f"tracks, {run.frames / max(run.seconds, 1e-9):.0f} frames/s (association)",
              file=sys.stderr)
    files["config.json"] = json.dumps(to_dict(cfg), indent=2, default=str)
    note = _write_set(out, files, "track")
    print(f"results for {len(seqs)} sequence(s) written to {out}/{note}")
    return 0


def _evaluate_folder(gt: str, results: str, benchmark: str | None):
    from deeptrack.eval import evaluate
    from deeptrack.io.sequence import load_evaluation_inputs

    return evaluate(load_evaluation_inputs(gt, results), benchmark=benchmark)


def cmd_eval(args: argparse.Namespace) -> int:
    try:
        report = _evaluate_folder(args.gt, args.results, args.benchmark)
    except ValueError as e:  # an unknown or un-inferable benchmark
        if isinstance(e, DeepTrackError):
            raise
        raise CLIError(str(e)) from None
    print(report.table())
    path = Path(args.json) if args.json else Path(args.results) / "metrics.json"
    write_atomic(path, json.dumps(report.to_dict(), indent=2))
    print(f"metrics written to {path}")
    return 0


def _compare_rows(seqs, cfg: RunConfig, modes: list[str], quiet: bool):
    from deeptrack.eval import evaluate_sequence
    from deeptrack.eval.report import SequenceMetrics
    from deeptrack.pipeline import with_overrides

    embedder = _embedder(RunConfig(tracker=cfg.tracker, appearance=cfg.appearance,
                                   use_appearance=any(m != MOTION_ONLY for m in modes)))
    features = {}
    for seq in seqs:
        if seq.gt is None:
            raise CLIError(f"{seq.path}: no gt/gt.txt, cannot evaluate")
        if embedder is not None:
            features[seq.name] = _features(seq, cfg, embedder, quiet)
    rows, results = [], {}
    for mode in modes:
        if mode == MOTION_ONLY:
            tracker_cfg, use = cfg.tracker, False
        else:
            tracker_cfg, use = with_overrides(cfg.tracker, **_parse_mode(mode)), True
        per_seq, seconds, frames, dim, peak = [], 0.0, 0, 0, 0
        for seq in seqs:
            run = _track(seq, tracker_cfg, features[seq.name] if use else None, quiet, mode)
            results[(mode, seq.path.name)] = run.results
            per_seq.append(evaluate_sequence(seq.gt, run.results, name=seq.name, path=seq.path))
            seconds, frames = seconds + run.seconds, frames + run.frames
            dim, peak = run.embedding_dim, max(peak, run.peak_gallery_bytes)
        combined = SequenceMetrics.combine(per_seq).to_dict()
        rows.append({"mode": mode, "dim": dim, "ms_per_frame": 1000 * seconds / max(frames, 1),
                     "peak_gallery_mb": peak / 1e6, **{k: combined[k] for k in (
                         "mota", "idf1", "hota", "assa", "deta", "idsw", "fp", "fn")},
                     "sequences": {m.name: m.to_dict() for m in per_seq}})
    return rows, results


def _compare_table(rows) -> str:
    head = (f"{'mode':<18} {'dim':>7} {'MOTA':>7} {'IDF1':>7} {'HOTA':>7} {'AssA':>7} "
            f"{'IDsw':>5} {'FP':>6} {'FN':>6} {'ms/frame':>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['mode']:<18} {r['dim']:>7} {100 * r['mota']:>7.2f} {100 * r['idf1']:>7.2f} "
            f"{100 * r['hota']:>7.2f} {100 * r['assa']:>7.2f} {r['idsw']:>5} {r['fp']:>6} "
            f"{r['fn']:>6} {r['ms_per_frame']:>9.2f}")
    return "\n".join(lines)


def _bar_chart(rows, title: str) -> bytes:
    """Return a PNG bar chart of MOTA, IDF1 and HOTA per mode."""
    import io

    import matplotlib

    matplotlib.use("Agg")  # set here, when drawing, never at import time
    import matplotlib.pyplot as plt
    import numpy as np

    modes = [r["mode"] for r in rows]
    x = np.arange(len(modes))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(modes) + 2), 4))
    for k, (key, label) in enumerate((("mota", "MOTA"), ("idf1", "IDF1"), ("hota", "HOTA"))):
        values = [100 * r[key] for r in rows]
        bars = ax.bar(x + (k - 1) * 0.27, values, 0.27, label=label)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(x, modes, rotation=20)
    ax.set_ylabel("%")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    return buf.getvalue()


def cmd_compare(args: argparse.Namespace) -> int:
    modes = [m.strip() for m in args.pooling.split(",") if m.strip()]
    if not modes:
        raise CLIError("--pooling: give at least one mode")
    for m in modes:
        if m != MOTION_ONLY:
            _parse_mode(m)
    args_for_config = argparse.Namespace(**{**vars(args), "pooling": None})
    if all(m == MOTION_ONLY for m in modes):
        args_for_config.no_appearance = True
    cfg = _load_config(args_for_config)
    out = Path(args.out)
    check_destination(out)  # before the work, not after it
    seqs = _load_sequences(args.path, cfg)
    rows, results = _compare_rows(seqs, cfg, modes, args.quiet)
    print(_compare_table(rows))
    files: dict[str, str | bytes] = {
        f"{mode.replace(':', '_')}/{name}.txt": format_results(res)
        for (mode, name), res in results.items()
    }
    files["compare.json"] = json.dumps(
        {"config": to_dict(cfg), "sequences": [s.name for s in seqs], "rows": rows},
        indent=2, default=str)
    title = f"{', '.join(s.name for s in seqs)} ({cfg.appearance.backbone}, {cfg.det_file})"
    files["compare.png"] = _bar_chart(rows, title)
    note = _write_set(out, files, "compare")
    print(f"table, results and chart written to {out}/ (compare.json, compare.png){note}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from deeptrack.config import TrackerConfig
    from deeptrack.eval import evaluate_sequence
    from deeptrack.pipeline import scene_ground_truth, track_scene
    from deeptrack.synthetic import make_scene

    if args.objects * args.frames > DEMO_MAX_BOXES:
        raise CLIError(f"--objects {args.objects} x --frames {args.frames} is over "
                       f"{DEMO_MAX_BOXES:,} boxes, more than the demo holds in memory")
    start = time.perf_counter()
    scene = make_scene(args.objects, args.frames, seed=args.seed, embedding_dim=128,
                       p_occlusion=0.02, occlusion_frames=(5, 25), p_miss=0.1, speed=6.0)
    gt = scene_ground_truth(scene)
    print(f"synthetic scene: {args.objects} objects in view, {args.frames} frames, seed "
          f"{args.seed}, 128-d appearance, occlusion gaps of 5-25 frames")
    head = f"{'tracker':<28} {'MOTA':>7} {'IDF1':>7} {'HOTA':>7} {'AssA':>7} {'IDsw':>5} {'fps':>7}"
    print(head)
    print("-" * len(head))
    for label, use in (("motion only (SORT-like)", False), ("motion + appearance", True)):
        run = track_scene(scene, TrackerConfig(), use)
        m = evaluate_sequence(gt, run.results, benchmark="MOT15", name=label).to_dict()
        print(f"{label:<28} {100 * m['mota']:>7.2f} {100 * m['idf1']:>7.2f} "
              f"{100 * m['hota']:>7.2f} {100 * m['assa']:>7.2f} {m['idsw']:>5} "
              f"{run.frames / max(run.seconds, 1e-9):>7.0f}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


# ---------------------------------------------------------------- parser

def _add_run_options(p: argparse.ArgumentParser, pooling_help: str) -> None:
    p.add_argument("path", metavar="SEQ_OR_SPLIT",
                   help="a MOTChallenge sequence folder, or a split folder of them")
    p.add_argument("--config", help="YAML preset (see configs/)")
    p.add_argument("--pooling", help=pooling_help)
    p.add_argument("--backbone", help="e.g. mobilenet_v2, resnet50_c4, resnet101_c4")
    p.add_argument("--layer", help="backbone layer the RoIs are pooled from")
    p.add_argument("--weights", help="state_dict file, torchvision weights name, or 'random'")
    p.add_argument("--det-file", type=_file_name("--det-file"),
                   help="detection file inside det/ (default det.txt)")
    p.add_argument("--min-confidence", type=_number("--min-confidence"),
                   help="drop detections scoring below it")
    p.add_argument("--image-scale", type=_number("--image-scale", float, 0, 4, low_open=True),
                   help="resize frames by this before the backbone (0 < value <= 4)")
    p.add_argument("--device", help="cpu (default), cuda or cuda:N")
    p.add_argument("--batch-size", type=_number("--batch-size", int, 1, 4096),
                   help="frames per backbone forward")
    p.add_argument("--no-appearance", action="store_true", help="motion and IoU only")
    p.add_argument("--cache-dir", help="RoI feature cache folder (default "
                   "~/.cache/deeptrack/features, or $DEEPTRACK_CACHE)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``deeptrack`` command."""
    parser = _Parser(
        prog="deeptrack",
        description="Appearance-aware multi-object tracking with selectable RoI pooling.",
    )
    parser.add_argument("--version", action="version", version=f"deeptrack {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    modes = ", ".join(m.value for m in PoolingMode)

    p = sub.add_parser("track", help="track MOTChallenge sequences, write one result file each")
    _add_run_options(p, f"pooling mode: {modes}; gem:P sets GeM's p")
    p.add_argument("--out", default="runs/track", help="folder for <sequence>.txt results")
    p.set_defaults(func=cmd_track)

    p = sub.add_parser("eval", help="score result files against ground truth")
    p.add_argument("--gt", required=True, metavar="SEQ_OR_SPLIT", help="sequences with gt/gt.txt")
    p.add_argument("--results", required=True, metavar="DIR", help="folder of <sequence>.txt")
    p.add_argument("--benchmark", help="MOT15, MOT16, MOT17 or MOT20 (default: inferred)")
    p.add_argument("--json", help="where to write the metrics (default DIR/metrics.json)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("compare", help="track and score with several pooling modes")
    _add_run_options(p, f"comma-separated modes ({modes}, gem:P, maxpool_flatten:K, or "
                        f"'{MOTION_ONLY}' for motion only)")
    p.set_defaults(pooling="avg,max,avgmax,gem")
    p.add_argument("--out", default="runs/compare", help="folder for results, JSON and chart")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("demo", help="track a synthetic scene with and without appearance")
    p.add_argument("--objects", type=_number("--objects", int, 1, DEMO_MAX_OBJECTS), default=20,
                   help=f"objects in view (1..{DEMO_MAX_OBJECTS})")
    p.add_argument("--frames", type=_number("--frames", int, 1, DEMO_MAX_FRAMES), default=600,
                   help=f"frames (1..{DEMO_MAX_FRAMES:,})")
    p.add_argument("--seed", type=_number("--seed", int, 0, 2**63 - 1), default=0,
                   help="seed of the scene (>= 0)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except (DeepTrackError, OSError) as e:
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"deeptrack: error: {message}", file=sys.stderr)
        return 2
    except MemoryError:
        print("deeptrack: error: out of memory", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("deeptrack: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
