"""The ``deeptrack`` command line: argparse -> config -> library calls.

Commands: ``track``, ``eval``, ``compare``, ``tune``, ``demo`` and ``render``. Errors in the
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
from typing import Any, Self

from deeptrack import __version__
from deeptrack.config import (
    RunConfig,
    default_cache_dir,
    load_yaml,
    parse_scalar,
    to_dict,
    with_overrides,
    with_settings,
)
from deeptrack.errors import ConfigError, DeepTrackError
from deeptrack.io.mot import format_results, write_atomic
from deeptrack.io.resultset import check_destination, write_result_set
from deeptrack.types import PoolingMode

#: Pseudo pooling mode of ``compare``: no appearance at all (SORT-like).
MOTION_ONLY = "none"
#: ``--weights`` value for untrained backbone weights (tests only).
RANDOM_WEIGHTS = "random"


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


def _frame_range(text: str) -> tuple[int | None, int | None]:
    """An argparse ``type``: ``A:B`` -> (A, B), frames A to B inclusive; ``A:`` or ``:B`` open."""
    first, sep, last = text.partition(":")
    try:
        pair = tuple(int(v) if v.strip() else None for v in (first, last))
    except ValueError:
        pair = ()
    if not sep or len(pair) != 2 or any(v is not None and v < 1 for v in pair) or (
            None not in pair and pair[0] > pair[1]):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a frame range A:B (1 <= A <= B; A: or :B leave one end open)")
    return pair  # type: ignore[return-value]


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
    """Read --config (or the defaults), apply --set, then the flags; check the weights."""
    cfg = load_yaml(args.config) if args.config else RunConfig()
    cfg = with_settings(cfg, dict(_parse_setting(s) for s in getattr(args, "set", None) or ()))
    appearance = with_overrides(
        cfg.appearance, backbone=args.backbone, layer=args.layer,
        image_scale=args.image_scale, device=args.device, batch_size=args.batch_size,
        cache_dir=args.cache_dir,
    )
    random_weights = args.weights == RANDOM_WEIGHTS
    if args.weights is not None:
        appearance = dataclasses.replace(appearance,
                                         weights=None if random_weights else args.weights)
    if args.no_cache:
        appearance = dataclasses.replace(appearance, cache_dir=None)
    elif appearance.cache_dir is None:
        appearance = dataclasses.replace(appearance, cache_dir=str(default_cache_dir()))
    head, use_appearance = cfg.head, cfg.use_appearance and not args.no_appearance
    if args.pooling == MOTION_ONLY:
        use_appearance = False
    elif args.pooling is not None:
        head = with_overrides(head, **_parse_mode(args.pooling))
    if use_appearance and appearance.cache_dir is not None and appearance.cache_max_bytes is None:
        from deeptrack.appearance.cache import default_max_bytes

        # resolved now: a bad $DEEPTRACK_CACHE_MAX_BYTES fails before any work, and
        # config.json records the bound that applied
        appearance = dataclasses.replace(appearance, cache_max_bytes=default_max_bytes())
    if use_appearance and appearance.weights is None and not random_weights:
        raise ConfigError(
            "no backbone weights: pass --weights FILE (a state_dict) or a torchvision weights "
            f"name, set appearance.weights in the config, or --weights {RANDOM_WEIGHTS} "
            "(tests only)"
        )
    # replace(), not a new RunConfig: every other run setting (interpolate_max_gap, ...)
    # comes through from the preset and --set as it is.
    return dataclasses.replace(
        cfg, head=head, appearance=appearance, use_appearance=use_appearance,
        det_file=args.det_file or cfg.det_file,
        min_confidence=(args.min_confidence if args.min_confidence is not None
                        else cfg.min_confidence))


def _parse_setting(text: str) -> tuple[str, Any]:
    """``tracker.max_age=60`` -> ("tracker.max_age", 60); the value is read as YAML."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise CLIError(f"--set {text!r}: expected SECTION.KEY=VALUE, e.g. tracker.max_age=60")
    try:
        return key.strip(), parse_scalar(value)
    except ConfigError as e:
        raise ConfigError(f"--set {key.strip()}: {e}") from None


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


class _Bars:
    """A sequence's progress bars: features (opened once extraction reports), then tracking."""

    def __init__(self, seq, quiet: bool, label: str = "") -> None:
        self.seq, self.quiet, self.label = seq, quiet, label
        self.features_bar = self.frames_bar = None
        self.features_done = 0

    def features(self, done: int, total: int) -> None:
        if self.features_bar is None:
            self.features_bar = _progress(total, f"{self.seq.name} features", self.quiet)
        self.features_bar.update(done - self.features_done)
        self.features_done = done

    def frames(self, n: int) -> None:
        if self.frames_bar is None:
            self.frames_bar = _progress(len(self.seq), f"{self.seq.name} {self.label}".strip(),
                                        self.quiet)
        self.frames_bar.update(n)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        for bar in (self.features_bar, self.frames_bar):
            if bar is not None:
                bar.close()


def _features(seq, cfg: RunConfig, embedder, quiet: bool):
    """RoI maps of ``seq`` to share between several runs (``compare``)."""
    from deeptrack.pipeline import sequence_features

    with _Bars(seq, quiet) as bars:
        return sequence_features(seq, cfg.appearance, embedder=embedder, progress=bars.features)


def _run(seq, cfg: RunConfig, quiet: bool, label: str = "", *, features=None, embedder=None):
    """Run one sequence through :func:`deeptrack.pipeline.run_sequence`, with progress bars."""
    from deeptrack.pipeline import run_sequence

    with _Bars(seq, quiet, label) as bars:
        return run_sequence(seq, cfg, features=features, embedder=embedder,
                            feature_progress=bars.features, progress=bars.frames)


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
        run = _run(seq, cfg, args.quiet, embedder=embedder)
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
    if args.plot:
        from deeptrack.render.timeline import plot_format, timeline_from_files

        plot_format(args.plot)  # a bad suffix fails before any work
    try:
        report = _evaluate_folder(args.gt, args.results, args.benchmark)
    except ValueError as e:  # an unknown or un-inferable benchmark
        if isinstance(e, DeepTrackError):
            raise
        raise CLIError(str(e)) from None
    print(report.table())
    plot = (timeline_from_files(args.gt, args.results, plot_format(args.plot),
                                benchmark=args.benchmark) if args.plot else None)
    path = Path(args.json) if args.json else Path(args.results) / "metrics.json"
    write_atomic(path, json.dumps(report.to_dict(), indent=2))
    print(f"metrics written to {path}")
    if plot is not None:
        write_atomic(args.plot, plot)
        print(f"identity timeline written to {args.plot}")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from deeptrack.render.video import describe, render_from_files

    bars = []  # opened once the frame count is known

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(_progress(total, f"{Path(args.seq).name} render", args.quiet))
        bars[0].update(done - bars[0].n)

    try:
        info, events = render_from_files(
            args.seq, args.results, args.out, gt=args.gt, benchmark=args.benchmark,
            frames=args.frames, step=args.step, scale=args.scale, trail=args.trail,
            progress=progress)
    finally:
        for bar in bars:
            bar.close()
    print(describe(info, events))
    return 0


def _mode_config(cfg: RunConfig, mode: str) -> RunConfig:
    """The run of one ``compare`` mode: motion only, or ``cfg`` pooled the mode's way."""
    if mode == MOTION_ONLY:
        return dataclasses.replace(cfg, use_appearance=False)
    return dataclasses.replace(cfg, head=with_overrides(cfg.head, **_parse_mode(mode)),
                               use_appearance=True)


def _compare_rows(seqs, cfg: RunConfig, modes: list[str], quiet: bool):
    """Track every sequence with every mode (features extracted once); score each mode."""
    for seq in seqs:
        if seq.gt is None:
            raise CLIError(f"{seq.path}: no gt/gt.txt, cannot evaluate")
    embedder = _embedder(dataclasses.replace(
        cfg, use_appearance=any(m != MOTION_ONLY for m in modes)))
    features = ({seq.name: _features(seq, cfg, embedder, quiet) for seq in seqs}
                if embedder is not None else {})
    rows, results = [], {}
    for mode in modes:
        mode_cfg = _mode_config(cfg, mode)
        runs = [(seq, _run(seq, mode_cfg, quiet, mode, features=features.get(seq.name)))
                for seq in seqs]
        results.update({(mode, seq.path.name): run.results for seq, run in runs})
        rows.append(_compare_row(mode, runs))
    return rows, results


def _compare_rows_sweep(seqs, cfg: RunConfig, modes: list[str], args: argparse.Namespace):
    """``_compare_rows`` as independent tasks on local workers or a Ray cluster (deeptrack.sweeps).

    Returns the rows and results of what completed, and the failed tasks; a
    mode's row combines only its completed sequences and names the others.
    """
    import os

    from deeptrack.sweeps import SweepSpec, Variant, make_backend, run_sweep

    for seq in seqs:
        if seq.gt is None:
            raise CLIError(f"{seq.path}: no gt/gt.txt, cannot evaluate")
    spec = SweepSpec(tuple(str(s.path) for s in seqs),
                     tuple(Variant(m, _mode_config(cfg, m)) for m in modes), evaluate=False)
    backend = make_backend(args.workers, args.ray_address)
    with _TaskBar(args.quiet) as bar:
        try:
            result = run_sweep(spec, backend, progress=bar.update)
        finally:
            backend.close()
    by_path = {os.path.abspath(s.path): s for s in seqs}  # the spec makes its paths absolute
    rows, results = [], {}
    for mode, done in result.by_label().items():
        if not done:
            continue
        results.update({(mode, Path(r.path).name): r.run.results for r in done})
        row = _compare_row(mode, [(by_path[r.path], r.run) for r in done])
        missing = sorted(set(by_path) - {r.path for r in done})
        if missing:
            row["missing"] = [by_path[m].name for m in missing]
        rows.append(row)
    return rows, results, result.failures


class _TaskBar:
    """One progress bar over a sweep's tasks; each failure printed above it as it happens."""

    def __init__(self, quiet: bool) -> None:
        self.quiet, self.bar, self.failed = quiet, None, 0

    def update(self, outcome, done: int, total: int) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total, desc="tasks", unit="task", disable=self.quiet,
                            file=sys.stderr, dynamic_ncols=True, leave=False)
        if not outcome.ok:
            self.failed += 1
            tqdm.write(f"deeptrack: task failed: {outcome.name}: {outcome.error}",
                       file=sys.stderr)
            self.bar.set_postfix(failed=self.failed)
        self.bar.update(1)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


def _compare_row(mode: str, runs) -> dict[str, Any]:
    """One mode's row: metrics combined over the sequences, cost, and each sequence's metrics."""
    from deeptrack.eval import evaluate_sequence
    from deeptrack.eval.report import SequenceMetrics

    per_seq = [evaluate_sequence(seq.gt, run.results, name=seq.name, path=seq.path)
               for seq, run in runs]
    seconds = sum(run.seconds for _, run in runs)
    frames = sum(run.frames for _, run in runs)
    combined = SequenceMetrics.combine(per_seq).to_dict()
    return {"mode": mode, "dim": runs[-1][1].embedding_dim if runs else 0,
            "ms_per_frame": 1000 * seconds / max(frames, 1),
            "peak_gallery_mb": max((run.peak_gallery_bytes for _, run in runs), default=0) / 1e6,
            **{k: combined[k] for k in ("mota", "idf1", "hota", "assa", "deta", "idsw", "fp",
                                        "fn")},
            "sequences": {m.name: m.to_dict() for m in per_seq}}


def _compare_table(rows) -> str:
    from deeptrack.eval.report import Column, pct, render_table

    return render_table(rows, [
        Column("mode", "mode"), Column("dim", "dim"), pct("MOTA", "mota"), pct("IDF1", "idf1"),
        pct("HOTA", "hota"), pct("AssA", "assa"), Column("IDsw", "idsw"), Column("FP", "fp"),
        Column("FN", "fn"), Column("ms/frame", "ms_per_frame", spec=".2f")], rule=True)


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
    failed = []
    if args.workers is None and args.ray_address is None:
        rows, results = _compare_rows(seqs, cfg, modes, args.quiet)
    else:
        rows, results, failed = _compare_rows_sweep(seqs, cfg, modes, args)
        if not rows:
            raise CLIError(f"every task failed, e.g. {failed[0].name}: {failed[0].error}")
    print(_compare_table(rows))
    files: dict[str, str | bytes] = {
        f"{mode.replace(':', '_')}/{name}.txt": format_results(res)
        for (mode, name), res in results.items()
    }
    files["compare.json"] = json.dumps(
        {"config": to_dict(cfg), "sequences": [s.name for s in seqs], "rows": rows,
         **({"complete": False, "failed": [o.name for o in failed]} if failed else {})},
        indent=2, default=str)
    title = f"{', '.join(s.name for s in seqs)} ({cfg.appearance.backbone}, {cfg.det_file})"
    files["compare.png"] = _bar_chart(rows, title)
    if failed:  # what completed is kept, and marked as incomplete wherever it is read
        files["failures.json"] = json.dumps(
            {"complete": False, "failed": [{"task": o.name, "error": o.error} for o in failed]},
            indent=2)
        note = _write_set(out, files, "compare (INCOMPLETE: see failures.json)")
        print(f"INCOMPLETE: {len(failed)} task(s) failed; what completed is in {out}/ with "
              f"failures.json{note}", file=sys.stderr)
        return 1
    note = _write_set(out, files, "compare")
    print(f"table, results and chart written to {out}/ (compare.json, compare.png){note}")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    """Search tracker settings on the training split (Ray Tune); judge them on --holdout."""
    import os

    from deeptrack.sweeps import RayBackend, ray_available
    from deeptrack.sweeps.tune import parse_param, preset_yaml, summary, tune

    if not ray_available():
        raise CLIError("deeptrack tune needs Ray Tune: pip install 'deeptrack[ray]'")
    space = [parse_param(text) for text in args.space or ()]
    cfg = _load_config(args)
    out = Path(args.out)
    if out.is_dir():
        raise CLIError(f"--out {out}: is a folder; give the preset file to write, e.g. tuned.yaml")
    train, holdout = _load_sequences(args.path, cfg), _load_sequences(args.holdout, cfg)
    for seq in (*train, *holdout):
        if seq.gt is None:
            raise CLIError(f"{seq.path}: no gt/gt.txt, cannot score a setting")
    backend = RayBackend(address=args.ray_address, workers=args.workers or os.cpu_count() or 1)
    from tqdm import tqdm

    with tqdm(total=args.samples, desc="trials", unit="trial", disable=args.quiet,
              file=sys.stderr, dynamic_ncols=True, leave=False) as bar:
        def progress(name: str, done: int, total: int, ok: bool) -> None:
            if not ok:
                tqdm.write(f"deeptrack: trial failed: {name}", file=sys.stderr)
            bar.update(1)

        try:
            result = tune(cfg, [str(s.path) for s in train], [str(s.path) for s in holdout],
                          backend, space=space, metric=args.metric, samples=args.samples,
                          searcher=args.searcher, seed=args.seed, progress=progress)
        finally:
            backend.close()
    from deeptrack.eval.report import Column, pct, render_table

    rows = [{"split": split, "setting": label, **scores.combined}
            for split, part in (("train", result.train), ("held-out", result.holdout))
            for label, scores in part.items()]
    print(render_table(rows, [Column("split", "split"), Column("setting", "setting"),
                              pct("IDF1", "idf1"), pct("HOTA", "hota"), pct("MOTA", "mota"),
                              Column("IDsw", "idsw")], rule=True))
    header = summary(result, [s.name for s in train], [s.name for s in holdout],
                     source=args.config or "the defaults", seed=args.seed)
    print("\n".join(header[1:]))
    for name, error in result.failed:
        print(f"deeptrack: failed: {name}: {error}", file=sys.stderr)
    # the preset as given (file, --set, flags), less what belongs to this machine
    preset = load_yaml(args.config) if args.config else RunConfig()
    machine = {k: getattr(preset.appearance, k)
               for k in ("weights", "cache_dir", "cache_max_bytes", "device", "batch_size")}
    preset = dataclasses.replace(cfg, appearance=dataclasses.replace(cfg.appearance, **machine))
    write_atomic(out, preset_yaml(preset, result, header))
    print(f"preset written to {out}")
    return 1 if result.failed else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from deeptrack.config import TrackerConfig
    from deeptrack.eval import evaluate_sequence
    from deeptrack.eval.report import Column, pct, render_table
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
    rows = []
    for label, use in (("motion only (SORT-like)", False), ("motion + appearance", True)):
        run = track_scene(scene, TrackerConfig(), use)
        m = evaluate_sequence(gt, run.results, benchmark="MOT15", name=label).to_dict()
        rows.append({**m, "tracker": label, "fps": run.frames / max(run.seconds, 1e-9)})
    print(render_table(rows, [
        Column("tracker", "tracker"), pct("MOTA", "mota"), pct("IDF1", "idf1"),
        pct("HOTA", "hota"), pct("AssA", "assa"), Column("IDsw", "idsw"),
        Column("fps", "fps", spec=".0f")], rule=True))
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


# ---------------------------------------------------------------- parser

def _add_run_options(p: argparse.ArgumentParser, pooling_help: str) -> None:
    p.add_argument("path", metavar="SEQ_OR_SPLIT",
                   help="a MOTChallenge sequence folder, or a split folder of them")
    p.add_argument("--config", help="YAML preset (see configs/)")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                   help="set any config key, e.g. tracker.max_age=60 or appearance.roi_size=14 "
                        "(repeatable; VALUE read as YAML; applied after --config, before the "
                        "flags below)")
    p.add_argument("--pooling", help=pooling_help)
    p.add_argument("--backbone", help="e.g. mobilenet_v2, resnet50_c4, resnet101_c4")
    p.add_argument("--layer", help="backbone layer the RoIs are pooled from")
    p.add_argument("--weights", help=f"state_dict file, torchvision weights name, or '{RANDOM_WEIGHTS}'")
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
    p.add_argument("--plot", metavar="FILE", help="also draw each sequence's identity timeline "
                   "(.png, .svg or .pdf)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("compare", help="track and score with several pooling modes")
    _add_run_options(p, f"comma-separated modes ({modes}, gem:P, maxpool_flatten:K, or "
                        f"'{MOTION_ONLY}' for motion only)")
    p.set_defaults(pooling="avg,max,avgmax,gem")
    p.add_argument("--out", default="runs/compare", help="folder for results, JSON and chart")
    p.add_argument("--workers", type=_number("--workers", int, 1, 4096),
                   help="run every (sequence, mode) as an independent task on N local workers "
                        "(a local Ray instance if Ray is installed, else a process pool); the "
                        "same results as without it")
    p.add_argument("--ray-address", metavar="ADDRESS",
                   help="run the tasks on the Ray cluster at ADDRESS (HEAD:6379, or auto)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("tune", help="search tracker settings on training sequences (Ray Tune), "
                       "score the choice on held-out ones, write it as a preset")
    _add_run_options(p, f"pooling mode: {modes}; gem:P sets GeM's p")
    p.add_argument("--holdout", required=True, metavar="SEQ_OR_SPLIT",
                   help="sequences the search never sees, to score its choice")
    p.add_argument("--space", action="append", metavar="KEY=KIND:LOW:HIGH",
                   help="a searched key: int:LOW:HIGH, float:LOW:HIGH, log:LOW:HIGH or "
                        "choice:A,B (repeatable; default: the preset's association settings)")
    p.add_argument("--metric", choices=("idf1", "hota"), default="idf1",
                   help="what to maximise, combined over the training runs")
    p.add_argument("--samples", type=_number("--samples", int, 1, 100_000), default=20,
                   help="trials")
    p.add_argument("--searcher", choices=("auto", "optuna", "random"), default="auto",
                   help="auto: Optuna's TPE if optuna is installed, else random search")
    p.add_argument("--seed", type=_number("--seed", int, 0, 2**31 - 1), default=0,
                   help="the searcher's seed")
    p.add_argument("--workers", type=_number("--workers", int, 1, 4096),
                   help="trials at once on a local Ray instance (default: the cores)")
    p.add_argument("--ray-address", metavar="ADDRESS",
                   help="run the trials on the Ray cluster at ADDRESS (HEAD:6379, or auto)")
    p.add_argument("--out", default="runs/tuned.yaml", help="the preset file to write")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("demo", help="track a synthetic scene with and without appearance")
    p.add_argument("--objects", type=_number("--objects", int, 1, DEMO_MAX_OBJECTS), default=20,
                   help=f"objects in view (1..{DEMO_MAX_OBJECTS})")
    p.add_argument("--frames", type=_number("--frames", int, 1, DEMO_MAX_FRAMES), default=600,
                   help=f"frames (1..{DEMO_MAX_FRAMES:,})")
    p.add_argument("--seed", type=_number("--seed", int, 0, 2**63 - 1), default=0,
                   help="seed of the scene (>= 0)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("render", help="draw a tracker's results on a sequence's frames")
    p.add_argument("seq", metavar="SEQ", help="a MOTChallenge sequence folder, with its images")
    p.add_argument("--results", required=True, metavar="DIR_OR_FILE",
                   help="folder of <sequence>.txt, or the result file (any tracker's)")
    p.add_argument("--out", required=True, metavar="FILE",
                   help="FILE.mp4 (needs the render extra), .gif, .webp or .png (a strip)")
    p.add_argument("--gt", action="store_true", help="mark what the evaluation counts against "
                   "gt/gt.txt (false positives, misses, identity switches), running MOTA/IDF1")
    p.add_argument("--benchmark", help="with --gt: MOT15, MOT16, MOT17 or MOT20 (default: "
                   "inferred)")
    p.add_argument("--frames", type=_frame_range, metavar="A:B",
                   help="frames A to B, inclusive (A: or :B open; default all)")
    p.add_argument("--step", type=_number("--step", int, 1, 10_000), default=1,
                   help="draw every N-th frame (default 1)")
    p.add_argument("--scale", type=_number("--scale", float, 0, 4, low_open=True), default=0.5,
                   help="frame size relative to the sequence's (0 < value <= 4; default 0.5)")
    p.add_argument("--trail", type=_number("--trail", int, 0, 1000), default=20,
                   help="frames of centres drawn behind each box (0: none; default 20)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_render)
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
