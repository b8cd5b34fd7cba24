"""Frozen configuration dataclasses, loaded from dicts or YAML with strict keys.

YAML keys equal field names. Unknown keys, wrong types and out-of-range values
raise :class:`~deeptrack.errors.ConfigError` naming the key.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deeptrack.errors import ConfigError
from deeptrack.types import (
    AdaptationMode,
    AppearanceEvidence,
    AppearanceMemory,
    AssociationMode,
    KalmanEngine,
    PoolingMode,
    ResizeMode,
    Runtime,
)

#: chi-square 0.95 quantile with 4 degrees of freedom (DeepSORT's gate on xyah).
CHI2_95_4DOF = 9.4877


def _enum(config: Any, key: str, kind: type[enum.Enum]) -> None:
    """Turn the string at ``config.key`` into its ``kind`` member (strings are the YAML/CLI edge)."""
    value = getattr(config, key)
    if isinstance(value, kind):
        return
    try:
        member = kind(str(value).lower())
    except ValueError:
        valid = ", ".join(m.value for m in kind)
        raise ConfigError(f"config key {key!r} = {value!r} is not valid; expected one of: "
                          f"{valid}") from None
    object.__setattr__(config, key, member)


def _check(cond: bool, key: str, value: Any, expected: str) -> None:
    # NaN passes no comparison but inf passes many (inf > 0): refuse both here, for every
    # key checked, however the config was built.
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"config key {key!r} = {value!r} is not a finite number: expected "
                          f"{expected}")
    if not cond:
        raise ConfigError(f"config key {key!r} = {value!r} is out of range: expected {expected}")


#: Largest integer a config key may hold: beyond it float arithmetic (frame-rate scaling)
#: is no longer exact, and numpy's int64 overflows soon after.
MAX_CONFIG_INT = 2**53


@dataclass(frozen=True)
class TrackerConfig:
    """Settings of :class:`deeptrack.Tracker`; defaults are the DeepSORT paper's.

    Frame counts (``max_age``, ``n_init``) are in frames, as in the paper.
    ``n_init`` counts evidence (hits), never time; ``max_age`` is rescaled to
    the sequence's frame rate only when ``reference_fps`` is set (opt-in).

    Attributes:
        max_cosine_distance: appearance gate; a track/detection pair whose
            cosine distance exceeds it is not matched in the cascade.
        max_iou_distance: IoU stage gate (1 - IoU).
        max_age: misses after which a confirmed track is deleted; a track
            missed more than ``max_age`` times is no longer matched.
        n_init: hits that confirm a tentative track (confirmation happens on
            a matched frame, never at birth, as in DeepSORT).
        nn_budget: gallery size per track (most recent embeddings kept).
        appearance_memory: ``gallery`` (nearest neighbour over the last
            ``nn_budget`` embeddings, DeepSORT) or ``ema`` (one exponential
            moving average per track, StrongSORT).
        ema_alpha: EMA momentum: ``new = alpha * old + (1 - alpha) * current``.
        gating_threshold: squared Mahalanobis gate (chi-square 0.95, 4 dof).
        kalman: ``batched`` (vectorised over tracks, the fast path) or
            ``filterpy`` (filterpy's KalmanFilter track by track; the
            reference the batched engine is tested against).
        association: the association strategy (``deepsort``: matching
            cascade, then IoU; ``fused``: one cost of calibrated appearance
            evidence and overlap, see :mod:`deeptrack.association.fused`).
        fused_max_cost: ``fused`` only: pairs whose fused cost exceeds it
            are not matched (the cost is in [0, 1] whatever the features).
        iou_weight: ``fused`` only: weight of ``1 - IoU`` in the fused cost;
            the calibrated appearance term has ``1 - iou_weight``.
        appearance_evidence: ``fused`` only: ``calibrated`` (learnt on the
            sequence, no threshold) or ``cosine`` (raw distance, for the ablation).
        lost_appearance: ``fused`` only: false leaves the re-identification of
            tracks missed on the previous frame to overlap alone.
        fused_levels: ``fused`` only: ``2`` matches the confirmed tracks
            seen last frame first, then all the others at once; ``0`` runs
            the full cascade (one level per number of misses).
        adaptation: online, causal adaptation of the appearance vectors to the
            sequence (``none``, ``centre``, ``centre_scale``, ``whiten``; see
            :mod:`deeptrack.appearance.adapt`). It changes cosine distances
            (centring roughly triples them), so pair it with the ``fused``
            association's calibrated evidence rather than a fixed threshold.
            On the shared runs it raised identity AUC but not IDF1
            (benchmarks/results/adaptation_tracking.md), so presets leave it off.
        adaptation_prior: the adaptation's safeguard, in vectors: the running
            mean enters with weight ``n / (n + prior)`` after ``n`` vectors
            (and the ``centre_scale`` weights are shrunk likewise). 30 was
            level with or above 0 and 100 in identity AUC on the shared
            sequences (benchmarks/results/adaptation_auc.md).
        low_score_stage: ``fused`` only: detections ranking below
            ``min_score_quantile`` are kept for a second stage (ByteTrack)
            that extends tracks seen last frame but never starts one.
        std_weight_position: position noise as a fraction of the box height.
        std_weight_velocity: velocity noise as a fraction of the box height.
        reference_fps: null keeps ``max_age`` in frames at every frame rate;
            a number says ``max_age`` is given for that frame rate and scales
            it to the sequence's (``max_age`` 30 with ``reference_fps`` 30 is
            one second at any rate).
        output_max_gap: output the confirmed tracks missed for at most this
            many consecutive frames, at their predicted box (``det_index``
            -1); 0 outputs only tracks matched this frame, 1 is
            deep_sort_app's rule (a confirmed track's predicted box is also
            written on its first missed frame).
        min_score_quantile: detections whose score ranks below this quantile
            of the scores seen so far in the sequence (this frame included)
            are not tracked; 0 tracks every detection. A rank, not a score,
            so one setting holds for detectors with any score scale.
        score_history: how many recent scores the quantile is taken over.
        blas_threads: BLAS threads while ``update`` runs (restored after);
            null leaves the process setting alone. The per-frame products are
            small, so thread hand-offs cost more than they save: on 2 shared
            cores one thread made update() 2-6x faster (bench_association.py).

    How RoI feature maps become vectors is not the tracker's setting: see
    :class:`HeadConfig` and :class:`deeptrack.appearance.EmbeddingHead`.
    """

    max_cosine_distance: float = 0.2
    max_iou_distance: float = 0.7
    max_age: int = 30
    n_init: int = 3
    nn_budget: int = 100
    appearance_memory: AppearanceMemory = AppearanceMemory.GALLERY
    ema_alpha: float = 0.9
    gating_threshold: float = CHI2_95_4DOF
    kalman: KalmanEngine = KalmanEngine.BATCHED
    association: AssociationMode = AssociationMode.DEEPSORT
    fused_max_cost: float = 0.6
    iou_weight: float = 0.5
    appearance_evidence: AppearanceEvidence = AppearanceEvidence.CALIBRATED
    lost_appearance: bool = True
    fused_levels: int = 0
    low_score_stage: bool = False
    adaptation: AdaptationMode = AdaptationMode.NONE
    adaptation_prior: float = 30.0
    std_weight_position: float = 1.0 / 20
    std_weight_velocity: float = 1.0 / 160
    reference_fps: float | None = None
    output_max_gap: int = 0
    min_score_quantile: float = 0.0
    score_history: int = 10_000
    blas_threads: int | None = 1

    def __post_init__(self) -> None:
        _check(0.0 < self.max_cosine_distance <= 2.0, "max_cosine_distance",
               self.max_cosine_distance, "0 < value <= 2")
        _check(0.0 < self.max_iou_distance <= 1.0, "max_iou_distance",
               self.max_iou_distance, "0 < value <= 1")
        # Upper bounds: counts this large are typos, and would allocate or loop for ever.
        _check(1 <= self.max_age <= 100_000, "max_age", self.max_age,
               "an integer in [1, 100000]")
        _check(1 <= self.n_init <= 1000, "n_init", self.n_init, "an integer in [1, 1000]")
        _check(1 <= self.nn_budget <= 10_000, "nn_budget", self.nn_budget,
               "an integer in [1, 10000]")
        _enum(self, "appearance_memory", AppearanceMemory)
        _check(0.0 <= self.ema_alpha < 1.0, "ema_alpha", self.ema_alpha, "0 <= value < 1")
        _check(self.gating_threshold > 0, "gating_threshold", self.gating_threshold, "> 0")
        _enum(self, "kalman", KalmanEngine)
        _enum(self, "association", AssociationMode)
        _check(0.0 < self.fused_max_cost <= 1.0, "fused_max_cost", self.fused_max_cost,
               "0 < value <= 1")
        _check(0.0 <= self.iou_weight <= 1.0, "iou_weight", self.iou_weight, "0 <= value <= 1")
        _enum(self, "appearance_evidence", AppearanceEvidence)
        _enum(self, "adaptation", AdaptationMode)
        _check(0.0 <= self.adaptation_prior <= 1e9, "adaptation_prior", self.adaptation_prior,
               "0 <= value <= 1e9")
        _check(self.fused_levels in (0, 2), "fused_levels", self.fused_levels, "0 or 2")
        _check(not self.low_score_stage or self.association is AssociationMode.FUSED,
               "low_score_stage", self.low_score_stage,
               "false unless association is 'fused' (DeepSORT has no low-score stage)")
        _check(not self.low_score_stage or self.min_score_quantile > 0, "low_score_stage",
               self.low_score_stage, "false unless min_score_quantile > 0 (it marks low scores)")
        _check(self.std_weight_position > 0, "std_weight_position",
               self.std_weight_position, "> 0")
        _check(self.std_weight_velocity > 0, "std_weight_velocity",
               self.std_weight_velocity, "> 0")
        _check(self.reference_fps is None or 0 < self.reference_fps <= 1000, "reference_fps",
               self.reference_fps, "null or 0 < value <= 1000")
        _check(0 <= self.output_max_gap <= self.max_age, "output_max_gap",
               self.output_max_gap, f"an integer in [0, max_age = {self.max_age}]")
        _check(0.0 <= self.min_score_quantile < 1.0, "min_score_quantile",
               self.min_score_quantile, "0 <= value < 1")
        _check(1 <= self.score_history <= 10_000_000, "score_history", self.score_history,
               "an integer in [1, 10000000]")
        _check(self.blas_threads is None or self.blas_threads >= 1, "blas_threads",
               self.blas_threads, "null or an integer >= 1")

    def max_age_frames(self, frame_rate: float) -> int:
        """Return ``max_age`` in frames at ``frame_rate`` (scaled only if ``reference_fps``)."""
        if self.reference_fps is None:
            return self.max_age
        return max(1, round(self.max_age * frame_rate / self.reference_fps))


@dataclass(frozen=True)
class HeadConfig:
    """Settings of :class:`deeptrack.appearance.EmbeddingHead`: RoI maps -> vectors.

    Attributes:
        pooling: how a (C, H, W) map becomes one vector (see
            :mod:`deeptrack.appearance.pooling`).
        gem_p: GeM exponent (``pooling: gem``).
        maxpool_kernel: kernel and stride of ``maxpool_flatten``.
        reduce_dim: optional output dimension of a seeded random projection
            applied after pooling (flatten modes); null keeps all dims.
        reduce_seed: seed of that projection.
    """

    pooling: PoolingMode = PoolingMode.AVG
    gem_p: float = 3.0
    maxpool_kernel: int = 2
    reduce_dim: int | None = None
    reduce_seed: int = 0

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "pooling", PoolingMode.parse(self.pooling))
        except ValueError as e:
            raise ConfigError(f"config key 'pooling': {e}") from None
        _check(self.gem_p > 0, "gem_p", self.gem_p, "> 0")
        _check(self.maxpool_kernel >= 1, "maxpool_kernel", self.maxpool_kernel, "an integer >= 1")
        _check(self.reduce_dim is None or 1 <= self.reduce_dim <= 1_000_000, "reduce_dim",
               self.reduce_dim, "null or an integer in [1, 1000000]")
        _check(self.reduce_seed >= 0, "reduce_seed", self.reduce_seed, "an integer >= 0")


@dataclass(frozen=True)
class AppearanceConfig:
    """Settings of RoI feature extraction (see :mod:`deeptrack.appearance`).

    Attributes:
        backbone: model name, e.g. ``mobilenet_v2``, ``resnet50_c4``,
            ``resnet101_c4``, ``resnet50``, ``resnet101``, ``fasterrcnn_resnet50_fpn``.
        weights: a local weights file, a torchvision weights name (downloads;
            needs the internet), or null for random weights (tests only).
        layer: which layer the RoIs are pooled from; null = the backbone's default.
        roi_size: RoIAlign output size (square).
        image_scale: frames are resized by this factor before the forward.
        resize: how that resize resamples (``area``, ``bilinear`` or
            ``bilinear_antialias``); part of the feature cache key. Area
            averaging is the default: torch's antialiased bilinear filter
            blurs more, and cost 1.1 mean IDF1 over the four shared runs
            (benchmarks/results/presets.md). At exactly 0.5x plain bilinear
            gives the same frames as area averaging.
        runtime: what runs the trunk: ``torch`` or ``onnxruntime`` (CPU only;
            needs the onnx and onnxruntime packages; see :class:`~deeptrack.types.Runtime`).
            Part of the feature cache key: the two agree to 1e-4 (tested), not bit for bit.
        device: ``cpu`` or ``cuda``/``cuda:N``.
        batch_size: frames per forward.
        fp16: half precision on CUDA.
        cache_dir: where RoI feature maps are cached; null disables the cache.
        cache_max_bytes: bound on the cache's total size (least recently used
            entries go first); null: ``$DEEPTRACK_CACHE_MAX_BYTES``, else 8 GiB.
            For scale: ADL-Rundle-6's 4,902 boxes of MobileNetV2 1280x7x7 maps
            take 615 MB as float16.
    """

    backbone: str = "mobilenet_v2"
    weights: str | None = None
    layer: str | None = None
    roi_size: int = 7
    image_scale: float = 1.0
    resize: ResizeMode = ResizeMode.AREA
    runtime: Runtime = Runtime.TORCH
    device: str = "cpu"
    batch_size: int = 4
    fp16: bool = False
    cache_dir: str | None = None
    cache_max_bytes: int | None = None

    def __post_init__(self) -> None:
        _check(self.cache_max_bytes is None or self.cache_max_bytes >= 1, "cache_max_bytes",
               self.cache_max_bytes, "null or an integer >= 1")
        _check(bool(self.backbone), "backbone", self.backbone, "a backbone name")
        _check(1 <= self.roi_size <= 64, "roi_size", self.roi_size, "an integer in 1..64")
        _check(0.0 < self.image_scale <= 4.0, "image_scale", self.image_scale, "0 < value <= 4")
        _enum(self, "resize", ResizeMode)
        _enum(self, "runtime", Runtime)
        _check(1 <= self.batch_size <= 4096, "batch_size", self.batch_size,
               "an integer in 1..4096")


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    """Check ``value`` against a field's type annotation; convert ints to floats and enums."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for opt in options:
            if opt is type(None):
                continue
            try:
                return _coerce(key, value, opt)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"config key {key!r}: bad value {value!r}")
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        if isinstance(value, annotation):
            return value
        try:
            return annotation(str(value).lower())
        except ValueError:
            valid = ", ".join(m.value for m in annotation)
            raise ConfigError(
                f"config key {key!r} = {value!r} is not valid; expected one of: {valid}"
            ) from None
    if annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            if abs(value) > MAX_CONFIG_INT:
                raise ConfigError(f"config key {key!r} = {value!r} is out of range: expected "
                                  f"an integer within +-2**53")
            return value
    elif annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an int beyond float's range
                number = math.inf
            if not math.isfinite(number):  # YAML's .nan and .inf, or a huge int
                raise ConfigError(f"config key {key!r} = {value!r} is not a finite number")
            return number
    elif annotation is str:
        if isinstance(value, str):
            return value
    elif dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if isinstance(value, Mapping):
            return from_dict(annotation, value, prefix=f"{key}.")
    else:  # pragma: no cover - every field type is handled above
        return value
    name = getattr(annotation, "__name__", str(annotation))
    raise ConfigError(f"config key {key!r} = {value!r} has the wrong type: expected {name}")


def from_dict(cls: type, data: Mapping[str, Any] | None, prefix: str = "") -> Any:
    """Build the frozen config dataclass ``cls`` from a mapping with strict keys.

    Raises:
        ConfigError: an unknown key (listing the valid ones), a value of the
            wrong type, or an out-of-range value; the message names the key.
    """
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise ConfigError(f"config section {prefix.rstrip('.') or cls.__name__!r} must be a "
                          f"mapping of keys to values, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted((k for k in data if k not in fields), key=str)  # YAML keys may be ints
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join(prefix + str(k) for k in unknown)}; "
            f"valid keys: {', '.join(prefix + k for k in fields)}"
        )
    hints = typing.get_type_hints(cls)  # resolves the string annotations of this module
    kwargs = {k: _coerce(prefix + k, v, hints[k]) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as e:
        if prefix and "config key '" in str(e):
            raise ConfigError(str(e).replace("config key '", f"config key '{prefix}", 1)) from None
        raise


def to_dict(config: Any) -> dict[str, Any]:
    """Return a plain dict (enums as strings) that ``from_dict`` reads back."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        v = getattr(config, f.name)
        if dataclasses.is_dataclass(v):
            v = to_dict(v)
        elif isinstance(v, enum.Enum):
            v = v.value
        out[f.name] = v
    return out


@dataclass(frozen=True)
class RunConfig:
    """A whole run: tracker settings, appearance extraction and detection filtering.

    This is the shape of the YAML files in ``configs/``: top-level sections
    ``tracker``, ``head`` and ``appearance`` with field names as keys, plus
    the detection keys below.

    Attributes:
        tracker: the :class:`TrackerConfig`.
        head: the :class:`HeadConfig` (RoI maps -> vectors); ignored when
            ``use_appearance`` is false.
        appearance: the :class:`AppearanceConfig`; ignored when
            ``use_appearance`` is false.
        use_appearance: false gives the motion-only (SORT-like) tracker.
        det_file: detection file name inside each sequence's ``det/`` folder.
        min_confidence: detections scoring below it are dropped (null keeps all).
        interpolate_max_gap: OFFLINE: once the sequence is tracked, fill each
            track's gaps of at most this many frames by linear interpolation
            (:func:`deeptrack.tracking.offline.interpolate_gaps`; added rows
            score -1). 0, the default, keeps the run online.
    """

    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    appearance: AppearanceConfig = field(default_factory=AppearanceConfig)
    use_appearance: bool = True
    det_file: str = "det.txt"
    min_confidence: float | None = None
    interpolate_max_gap: int = 0

    def __post_init__(self) -> None:
        name = Path(str(self.det_file))
        _check(0 <= self.interpolate_max_gap <= 100_000, "interpolate_max_gap",
               self.interpolate_max_gap, "an integer in [0, 100000] (0: online)")
        _check(bool(self.det_file) and name.name == str(self.det_file) and name.name != "..",
               "det_file", self.det_file, "a file name inside the sequence's det/ folder")
        _check(self.min_confidence is None or math.isfinite(self.min_confidence),
               "min_confidence", self.min_confidence, "null or a finite number")


def load_yaml(path: str | Path, cls: type = RunConfig) -> Any:
    """Read a YAML file into the config dataclass ``cls`` with strict keys.

    Raises:
        ConfigError: the file is missing, is not valid YAML, or has a bad key.
    """
    import yaml

    path = Path(path)
    try:
        if path.stat().st_size > 1 << 20:  # presets are a few hundred bytes
            raise ConfigError(f"config file {path} is larger than 1 MiB; not a deeptrack config")
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    try:
        return from_dict(cls, data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


# ---------------------------------------------------------------- helpers of callers

#: Environment variable naming the RoI feature cache folder.
CACHE_DIR_ENV = "DEEPTRACK_CACHE"


def default_cache_dir() -> Path:
    """Return the RoI feature cache folder: ``$DEEPTRACK_CACHE``, else ``~/.cache/deeptrack/features``.

    Read at each call, not at import, so a process (or a test) that sets the
    variable later is obeyed.
    """
    import os

    return Path(os.environ.get(CACHE_DIR_ENV) or "~/.cache/deeptrack/features").expanduser()


def with_overrides(config: Any, **changes: Any) -> Any:
    """Return the frozen config ``config`` with the non-None ``changes`` applied (validated again).

    Raises:
        ConfigError: an unknown key or a bad value, naming the key.
    """
    data = to_dict(config)
    data.update({k: v for k, v in changes.items() if v is not None})
    return from_dict(type(config), data)


def parse_scalar(text: str) -> Any:
    """Read a command-line value as a YAML scalar: ``0.3``, ``60``, ``null``, ``true``, ``gem``.

    Raises:
        ConfigError: ``text`` is not valid YAML.
    """
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{text!r} is not a YAML value: {str(e).splitlines()[0]}") from None


def with_settings(config: Any, settings: Mapping[str, Any]) -> Any:
    """Return ``config`` with dotted keys set: ``{"tracker.max_age": 60, "det_file": "x.txt"}``.

    A key names a field of ``config``'s dataclass, nested sections joined by
    dots; the result is built again by :func:`from_dict`, so an unknown key is
    refused with the valid ones listed, and every value is checked.

    Raises:
        ConfigError: an unknown section or key, or a bad value, naming the key.
    """
    data = to_dict(config)
    for key, value in settings.items():
        *sections, name = key.split(".")
        node = data
        for depth, section in enumerate(sections):
            if section in node and not isinstance(node[section], dict):
                raise ConfigError(f"config key {'.'.join(sections[:depth + 1])!r} is not a "
                                  f"section: {key!r} cannot be set")
            if section not in node:
                prefix = ".".join(sections[:depth])
                valid = [f"{prefix}.{k}" if prefix else k for k, v in node.items()
                         if isinstance(v, dict)]
                raise ConfigError(f"unknown config section {'.'.join(sections[:depth + 1])!r} "
                                  f"in {key!r}; valid sections: {', '.join(valid) or 'none'}")
            node = node[section]
        node[name] = value
    return from_dict(type(config), data)
