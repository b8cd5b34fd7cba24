"""Search tracker and association settings with Ray Tune; judge the choice on held-out sequences.

Each trial applies one setting (dotted config keys, as ``--set`` takes them) to
the preset, tracks every training run (sequence x detection file) and reports
the combined IDF1 or HOTA over them (counts summed, the official way). The
RoI maps are extracted once, before the search, by the sweep's feature tasks,
and every trial reads them (cache or object store, as a sweep does). The
searcher is Optuna's TPE through Ray Tune when optuna is installed, else Ray
Tune's random search; the preset's own values are the first point tried. The
best setting on the training runs is then run, with the preset beside it, on
the held-out runs, which the search never saw: their scores are the honest
estimate of what the tuning bought.

Only keys that leave the RoI maps unchanged can be searched (``tracker.*``,
``head.*``, ``interpolate_max_gap``); appearance settings are swept, not tuned.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from deeptrack.config import RunConfig, parse_scalar, to_dict, with_settings
from deeptrack.errors import ConfigError
from deeptrack.sweeps.executor import RayBackend, Task, run_tasks
from deeptrack.sweeps.jobs import FeatureJob, RunJob, extract_features, track
from deeptrack.sweeps.runner import choose_transport, run_sweep
from deeptrack.sweeps.spec import SweepSpec, Variant

__all__ = ["METRICS", "Param", "Scores", "TuneResult", "default_space", "parse_param",
           "preset_yaml", "summary", "tune"]

logger = logging.getLogger(__name__)

#: Metrics a search can maximise (keys of ``SequenceMetrics.to_dict()``).
METRICS = ("idf1", "hota")
#: Keys whose change would change the RoI maps or the detections: not searchable.
_FIXED_PREFIXES = ("appearance.", "det_file", "min_confidence", "use_appearance")
_KINDS = ("int", "float", "log", "choice")


@dataclass(frozen=True)
class Param:
    """One searched key and its range.

    Attributes:
        key: a dotted config key, e.g. ``tracker.max_age``.
        kind: ``int`` (uniform integers, both ends included), ``float``
            (uniform), ``log`` (log-uniform) or ``choice``.
        low, high: the range (``int``, ``float``, ``log``).
        choices: the values (``choice``).
    """

    key: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    choices: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ConfigError(f"search key {self.key!r}: kind {self.kind!r} is not one of "
                              f"{', '.join(_KINDS)}")
        if self.key.removeprefix("run.").startswith(_FIXED_PREFIXES):
            raise ConfigError(f"search key {self.key!r} changes the RoI maps or the detections; "
                              "tune searches tracker and head settings (sweep the others with "
                              "deeptrack compare or benchmarks/sweep.py)")
        if self.kind == "choice":
            if not self.choices:
                raise ConfigError(f"search key {self.key!r}: choice needs values")
            return
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ConfigError(f"search key {self.key!r}: expected low < high, got "
                              f"{self.low:g}..{self.high:g}")
        if self.kind == "log" and self.low <= 0:
            raise ConfigError(f"search key {self.key!r}: a log range needs low > 0")
        if self.kind == "int" and (self.low != int(self.low) or self.high != int(self.high)):
            raise ConfigError(f"search key {self.key!r}: an int range needs integer ends")

    def contains(self, value: Any) -> bool:
        """Whether ``value`` lies in the range (so it can be the first point tried)."""
        if self.kind == "choice":
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.kind == "int" and value != int(value):
            return False
        return self.low <= value <= self.high

    def describe(self) -> str:
        if self.kind == "choice":
            return f"{self.key}=choice:{','.join(str(c) for c in self.choices)}"
        return f"{self.key}={self.kind}:{self.low:g}:{self.high:g}"


def parse_param(text: str) -> Param:
    """``tracker.max_age=int:10:90``, ``tracker.iou_weight=float:0.2:0.8``,
    ``tracker.max_cosine_distance=log:0.05:0.5``, ``tracker.appearance_memory=choice:gallery,ema``.

    Raises:
        ConfigError: anything else, naming the text.
    """
    key, sep, spec = text.partition("=")
    kind, _, rest = spec.partition(":")
    key, kind = key.strip(), kind.strip()
    if not sep or not key or kind not in _KINDS or not rest:
        raise ConfigError(f"--space {text!r}: expected KEY=int:LOW:HIGH, KEY=float:LOW:HIGH, "
                          "KEY=log:LOW:HIGH or KEY=choice:A,B,...")
    if kind == "choice":
        return Param(key, kind, choices=tuple(parse_scalar(v) for v in rest.split(",")))
    low, sep, high = rest.partition(":")
    try:
        lo, hi = float(low), float(high)
    except ValueError:
        raise ConfigError(f"--space {text!r}: {low!r}:{high!r} is not a range of numbers"
                          ) from None
    return Param(key, kind, lo, hi)


def default_space(config: RunConfig) -> list[Param]:
    """The settings worth searching for ``config``'s association (when ``--space`` is not given)."""
    common = [Param("tracker.max_age", "int", 10, 90), Param("tracker.n_init", "int", 1, 5)]
    if config.tracker.association.value == "fused":
        return [Param("tracker.iou_weight", "float", 0.2, 0.8),
                Param("tracker.fused_max_cost", "float", 0.3, 0.9), *common]
    if not config.use_appearance:
        return [Param("tracker.max_iou_distance", "float", 0.5, 0.95), *common]
    return [Param("tracker.max_cosine_distance", "log", 0.05, 0.6),
            Param("tracker.max_iou_distance", "float", 0.5, 0.95), *common]


def _name(key: str) -> str:
    return key.replace(".", "__")  # Ray Tune reads dots and slashes in names as nesting


def _current(config: RunConfig, key: str) -> Any:
    node: Any = to_dict(config)
    for part in key.removeprefix("run.").split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


@dataclass(frozen=True)
class Scores:
    """A setting's combined scores over a split, and per run."""

    combined: dict[str, float]
    per_run: dict[str, dict[str, float]]


@dataclass(frozen=True)
class TuneResult:
    """What the search chose and how it did.

    Attributes:
        metric: ``idf1`` or ``hota``.
        setting: the chosen values, by dotted key.
        config: the preset with them applied.
        searcher: ``optuna`` or ``random``.
        trials: each trial's setting, score (None if it failed) and error.
        train: scores on the training runs: ``{"tuned": Scores, "preset": Scores}``.
        holdout: the same on the held-out runs.
        failed: names and errors of the tasks and trials that failed.
    """

    metric: str
    setting: dict[str, Any]
    config: RunConfig
    searcher: str
    space: list[Param]
    trials: list[dict[str, Any]]
    train: dict[str, Scores]
    holdout: dict[str, Scores]
    failed: list[tuple[str, str]] = field(default_factory=list)


def _combined(results) -> Scores:
    from deeptrack.eval.report import SequenceMetrics

    metrics = [r.metrics for r in results if r.metrics is not None]
    keys = ("idf1", "hota", "mota", "idsw")
    combined = SequenceMetrics.combine(metrics).to_dict() if metrics else {}
    return Scores({k: combined.get(k, math.nan) for k in keys},
                  {f"{r.sequence}/{r.det_file}": {k: r.metrics.to_dict()[k] for k in keys}
                   for r in results if r.metrics is not None})


def _trial(setting: Mapping[str, Any], *, base: RunConfig, runs: Sequence[tuple[str, str]],
           features: Mapping[tuple[str, str], Any], names: Mapping[str, str]) -> None:
    """One Ray Tune trial: track every training run with ``setting``; report the combined scores."""
    from ray import tune as ray_tune

    values = {names[k]: v for k, v in setting.items()}
    try:
        cfg = with_settings(base, {k.removeprefix("run."): v for k, v in values.items()})
    except ConfigError as e:  # e.g. output_max_gap above a sampled max_age: worst score
        ray_tune.report({"idf1": 0.0, "hota": 0.0, "invalid": str(e)})
        return
    results = [track(RunJob(seq, "trial", dataclasses.replace(cfg, det_file=det)),
                     features.get((seq, det))) for seq, det in runs]
    scores = _combined(results).combined
    ray_tune.report({"idf1": scores["idf1"], "hota": scores["hota"], "invalid": ""})


def _searcher(kind: str, seed: int, first: dict[str, Any] | None):
    """Return (name, Ray Tune search algorithm)."""
    if kind not in ("auto", "optuna", "random"):
        raise ConfigError(f"--searcher {kind!r}: expected auto, optuna or random")
    points = [first] if first else None
    if kind in ("auto", "optuna"):
        try:
            import optuna
            from ray.tune.search.optuna import OptunaSearch
        except ImportError:
            if kind == "optuna":
                raise ConfigError("the optuna searcher needs optuna: pip install optuna"
                                  ) from None
        else:
            optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per study otherwise
            return "optuna", OptunaSearch(points_to_evaluate=points, seed=seed)
    from ray.tune.search.basic_variant import BasicVariantGenerator

    return "random", BasicVariantGenerator(points_to_evaluate=points, random_state=seed)


def _domain(p: Param):
    from ray import tune as ray_tune

    if p.kind == "int":
        return ray_tune.randint(int(p.low), int(p.high) + 1)  # high is exclusive in Ray Tune
    if p.kind == "float":
        return ray_tune.uniform(p.low, p.high)
    if p.kind == "log":
        return ray_tune.loguniform(p.low, p.high)
    return ray_tune.choice(list(p.choices))


def tune(
    base: RunConfig,
    train: Sequence[str],
    holdout: Sequence[str],
    backend: RayBackend,
    *,
    space: Sequence[Param] = (),
    metric: str = "idf1",
    samples: int = 20,
    searcher: str = "auto",
    seed: int = 0,
    det_files: Sequence[str] = (),
    embedder: Callable[[Any], Any] | None = None,
    progress: Callable[[str, int, int, bool], None] | None = None,
) -> TuneResult:
    """Search ``space`` on the ``train`` sequences; score the choice on ``holdout``.

    Args:
        base: the preset the settings are applied to.
        train: sequence folders the search sees (each needs ``gt/gt.txt``).
        holdout: sequence folders it never sees, for the final report.
        backend: the Ray connection (local instance or cluster) trials run on.
        space: what to search (default: :func:`default_space`).
        metric: ``idf1`` or ``hota`` (combined over the training runs).
        samples: trials.
        searcher: ``auto`` (Optuna if installed, else random), ``optuna`` or ``random``.
        seed: the searcher's seed. With more than one trial at a time the
            order in which trials finish also steers the search.
        det_files: detection files (empty: the preset's).
        embedder: factory of the feature tasks' embedder (default RoIEmbedder).
        progress: called as ``progress(trial name, done, samples, ok)``.

    Raises:
        ConfigError: a bad metric, key, range, sample count or searcher; no
            training sequence; or every trial failed.
    """
    if metric not in METRICS:
        raise ConfigError(f"--metric {metric!r}: expected one of {', '.join(METRICS)}")
    if samples < 1:
        raise ConfigError(f"--samples {samples}: expected >= 1")
    if not train or not holdout:
        raise ConfigError("tune needs training sequences and held-out sequences")
    train = [os.path.abspath(os.fspath(s)) for s in train]  # trials run in their own folders
    holdout = [os.path.abspath(os.fspath(s)) for s in holdout]
    overlap = set(train) & set(holdout)
    if overlap:
        raise ConfigError(f"held-out sequences must differ from the training ones: "
                          f"{', '.join(sorted(overlap))} in both")
    space = list(space) or default_space(base)
    keys = [p.key for p in space]
    if len(set(keys)) != len(keys):
        raise ConfigError("a key appears twice in the search space")
    backend.connect()
    from ray import tune as ray_tune

    dets = tuple(det_files) or (base.det_file,)
    runs = [(s, d) for s in train for d in dets]
    spec = SweepSpec(tuple(train), (Variant("preset", base),), det_files=dets,
                     embedder=embedder)
    features: dict[tuple[str, str], Any] = {}
    failed: list[tuple[str, str]] = []
    if base.use_appearance:
        how = choose_transport(spec, backend)
        tasks = [Task(f"features {seq}/{det}", extract_features,
                      (FeatureJob(seq, det, base.min_confidence, base.appearance, how,
                                  embedder),)) for seq, det in runs]
        for (seq, det), o in zip(runs, run_tasks(tasks, backend), strict=True):
            if o.ok:
                features[(seq, det)] = o.value
            else:
                failed.append((o.name, o.error))
        if failed:
            raise ConfigError(f"feature extraction failed: {failed[0][0]}: {failed[0][1]}")

    names = {_name(k): k for k in keys}
    first = {_name(p.key): _current(base, p.key) for p in space}
    if not all(p.contains(first[_name(p.key)]) for p in space):
        first = {}
    which, algorithm = _searcher(searcher, seed, first)

    class _Progress(ray_tune.Callback):
        done = 0

        def _tick(self, trial, ok: bool) -> None:
            self.done += 1
            if progress is not None:
                progress(str(trial), self.done, samples, ok)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._tick(trial, True)

        def on_trial_error(self, iteration, trials, trial, **info):
            self._tick(trial, False)

    storage = tempfile.mkdtemp(prefix="deeptrack-tune-")
    try:
        trainable = ray_tune.with_parameters(_trial, base=base, runs=runs, features=features,
                                             names=names)
        tuner = ray_tune.Tuner(
            trainable,
            param_space={_name(p.key): _domain(p) for p in space},
            tune_config=ray_tune.TuneConfig(metric=metric, mode="max", search_alg=algorithm,
                                            num_samples=samples,
                                            max_concurrent_trials=backend.workers,
                                            reuse_actors=True),
            run_config=ray_tune.RunConfig(storage_path=storage, name="deeptrack-tune",
                                          verbose=0, callbacks=[_Progress()]),
        )
        # Ray Tune's own console report names the folder removed below; the caller
        # shows progress instead. The variable is read when fit() starts.
        before = os.environ.get("RAY_AIR_NEW_OUTPUT")
        os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
        try:
            grid = tuner.fit()
        finally:
            if before is None:
                os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
            else:
                os.environ["RAY_AIR_NEW_OUTPUT"] = before
        trials, best, best_score = [], None, -math.inf
        for r in grid:
            setting = {names[k]: v for k, v in (r.config or {}).items() if k in names}
            score = None if r.error is not None else (r.metrics or {}).get(metric)
            invalid = (r.metrics or {}).get("invalid") if r.error is None else ""
            error = str(r.error).strip().splitlines()[0] if r.error is not None else invalid
            trials.append({"setting": setting, metric: score, "error": error or ""})
            if r.error is not None:
                failed.append((f"trial {setting}", error))
            elif score is not None and not invalid and score > best_score:
                best, best_score = setting, score
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    if best is None:
        raise ConfigError("every trial failed or was invalid; first: "
                          + (failed[0][1] if failed else "no trial ran"))
    chosen = with_settings(base, {k.removeprefix("run."): v for k, v in best.items()})

    # Both settings on both splits, through the sweep runner (the same tasks as compare).
    judged = run_sweep(SweepSpec((*train, *holdout),
                                 (Variant("tuned", chosen), Variant("preset", base)),
                                 det_files=dets, embedder=embedder), backend)
    failed += [(o.name, o.error) for o in judged.failures]
    train_set = set(train)
    split: dict[str, dict[str, Scores]] = {"train": {}, "holdout": {}}
    for label, done in judged.by_label().items():
        for part, keep in (("train", True), ("holdout", False)):
            split[part][label] = _combined([r for r in done if (r.path in train_set) == keep])
    return TuneResult(metric, best, chosen, which, space, trials, split["train"],
                      split["holdout"], failed)


def preset_yaml(preset: RunConfig, result: TuneResult, header: Sequence[str] = ()) -> str:
    """Return ``preset`` with the chosen setting applied, as a YAML preset (comments first)."""
    import yaml

    config = with_settings(preset, {k.removeprefix("run."): v for k, v in result.setting.items()})
    lines = [f"# {h}" if h else "#" for h in header]
    text = yaml.safe_dump(to_dict(config), sort_keys=False, default_flow_style=False)
    return "\n".join(lines) + ("\n" if lines else "") + text


def summary(result: TuneResult, train: Sequence[str], holdout: Sequence[str], *, source: str,
            seed: int) -> list[str]:
    """The lines a tuned preset opens with: what was searched, what was chosen, how it held out."""
    def pair(scores: Scores) -> str:
        return f"{100 * scores.combined['idf1']:.2f} / {100 * scores.combined['hota']:.2f}"

    chosen = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in result.setting.items())
    return [
        (f"Tuned by deeptrack tune for {result.metric.upper()} on {', '.join(train)} "
         f"({len(result.trials)} trials, {result.searcher} searcher, seed {seed}), from {source}."),
        "Searched: " + ", ".join(p.describe() for p in result.space) + ".",
        f"Chosen: {chosen}.",
        (f"IDF1 / HOTA on the training runs: {pair(result.train['tuned'])} tuned, "
         f"{pair(result.train['preset'])} with the preset;"),
        (f"on the held-out runs ({', '.join(holdout)}): {pair(result.holdout['tuned'])} tuned, "
         f"{pair(result.holdout['preset'])} with the preset."),
    ]
