"""Small typed containers for the data that flows between pipeline stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deeptrack.boxes import validate_xyxy
from deeptrack.errors import InputError


class PoolingMode(str, Enum):
    """How a (C, H, W) RoI feature map becomes one appearance vector.

    Strings appear only at the config/CLI edge; inside, the enum is used.
    """

    AVG = "avg"
    MAX = "max"
    AVGMAX = "avgmax"
    GEM = "gem"
    FLATTEN = "flatten"
    MAXPOOL_FLATTEN = "maxpool_flatten"
    PYRAMID = "pyramid"

    @classmethod
    def parse(cls, value: str | PoolingMode) -> PoolingMode:
        """Return the mode named by ``value``; raise ``ValueError`` listing the valid names."""
        if isinstance(value, cls):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            valid = ", ".join(m.value for m in cls)
            raise ValueError(f"unknown pooling mode {value!r}; expected one of: {valid}") from None


class AppearanceMemory(str, Enum):
    """What a track remembers of its appearance.

    ``gallery``: its last ``nn_budget`` embeddings, nearest neighbour (DeepSORT);
    ``ema``: one exponential moving average (StrongSORT).
    """

    GALLERY = "gallery"
    EMA = "ema"


class KalmanEngine(str, Enum):
    """Which Kalman implementation runs: ``batched`` over tracks, or ``filterpy`` per track."""

    BATCHED = "batched"
    FILTERPY = "filterpy"


class AssociationMode(str, Enum):
    """Which association strategy the tracker runs.

    ``deepsort``: the matching cascade on appearance, then IoU (Wojke et al. 2017).
    ``fused``: one cost of calibrated appearance evidence and overlap, recent
    tracks first, then low-score and tentative stages
    (:mod:`deeptrack.association.fused`).
    """

    DEEPSORT = "deepsort"
    FUSED = "fused"


class AdaptationMode(str, Enum):
    """How the tracker adapts appearance vectors to the sequence, online.

    ``none``: vectors as given. ``centre``: minus the running mean of the
    sequence's vectors. ``centre_scale``: also each dimension weighted by its
    across-object over within-track spread. ``whiten``: centred, then
    whitened by the within-track covariance learnt from the tracks as they
    form (see :mod:`deeptrack.appearance.adapt`).
    """

    NONE = "none"
    CENTRE = "centre"
    CENTRE_SCALE = "centre_scale"
    WHITEN = "whiten"


class AppearanceEvidence(str, Enum):
    """What the fused association adds to overlap for a pair's appearance.

    ``calibrated``: the probability of different identities, from the
    log-likelihood ratio learnt online on the sequence
    (:mod:`deeptrack.association.calibration`); 0.5 means no evidence.
    ``cosine``: the raw cosine distance (its scale depends on the features).
    """

    CALIBRATED = "calibrated"
    COSINE = "cosine"


class ResizeMode(str, Enum):
    """How a frame is resampled by ``AppearanceConfig.image_scale`` before the backbone.

    ``area`` averages the source pixels under each output pixel (exact 2x2 means at
    0.5x); ``bilinear`` samples without a prefilter; ``bilinear_antialias`` is
    torch's antialiased bilinear filter, which blurs more than area averaging.
    """

    AREA = "area"
    BILINEAR = "bilinear"
    BILINEAR_ANTIALIAS = "bilinear_antialias"


class Runtime(str, Enum):
    """What runs the backbone's convolutional trunk.

    ``torch`` is eager PyTorch (channels-last on the CPU). ``onnxruntime``
    exports the trunk to ONNX once, in memory, and runs it in an ONNX Runtime
    CPU session: 2.1x (2 threads) to 2.7x (1 thread) the frames/s of
    channels-last torch for MobileNetV2 at 960x540 on this project's 2-core
    machine (benchmarks/results/bench_roi_fps.md);
    RoIAlign, pooling and any per-RoI head stay in torch.
    """

    TORCH = "torch"
    ONNXRUNTIME = "onnxruntime"


def _as_array(x: Any, name: str) -> np.ndarray:
    """Return ``np.asarray(x)``, or raise an ``InputError`` naming ``name`` (ragged input)."""
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as e:
        raise InputError(f"{name} is not a rectangular array of numbers: {e}") from None


def _as_float64(x: Any, name: str) -> NDArray[np.float64]:
    """Return ``x`` as a float64 array, or raise an ``InputError`` naming ``name``."""
    a = _as_array(x, name)
    if a.dtype.kind not in "biuf":
        raise InputError(f"{name} must be numeric (real numbers), got dtype {a.dtype}")
    return a.astype(np.float64, copy=False)


def as_2d_float(x: Any, name: str, n: int, *, check_finite: bool = True) -> NDArray[np.float32]:
    """Return ``x`` as a (n, D) float32 array, or raise an ``InputError`` naming ``name``.

    ``check_finite=False`` leaves the NaN/inf check to the caller (the
    tracker folds it into the normalisation, which reads the array anyway).
    """
    a = _as_array(x, name)
    if a.ndim != 2:
        raise InputError(f"{name} must have shape (N, D), got shape {a.shape}")
    if a.shape[0] != n:
        raise InputError(f"{name} has {a.shape[0]} rows but there are {n} boxes")
    if a.dtype.kind not in "biuf":
        raise InputError(f"{name} must be numeric (real numbers), got dtype {a.dtype}")
    with np.errstate(over="ignore"):  # beyond float32: inf, refused as such below
        a = a.astype(np.float32, copy=False)
    # A NaN or inf anywhere makes the sum non-finite (so may an overflow: then look closer).
    if check_finite and n and not np.isfinite(a.sum()) and not np.isfinite(a).all():
        i = int(np.flatnonzero(~np.isfinite(a).all(axis=1))[0])
        raise InputError(f"{name}[{i}] contains NaN or inf")
    return a


@dataclass(frozen=True)
class Detections:
    """One frame's detections, validated once on construction.

    Attributes:
        boxes: (N, 4) float64 xyxy pixels, 0-based.
        scores: (N,) float64 confidences.
        embeddings: optional (N, D) float32 appearance vectors.
        roi_features: optional (N, C, H, W) RoI feature maps (pooled by the tracker).
        class_ids: optional (N,) int64 class labels.
    """

    boxes: NDArray[np.float64]
    scores: NDArray[np.float64]
    embeddings: NDArray[np.float32] | None = None
    roi_features: NDArray[np.float32] | None = None
    class_ids: NDArray[np.int64] | None = None

    def __post_init__(self) -> None:
        boxes = validate_xyxy(self.boxes)
        n = len(boxes)
        scores = _as_float64(self.scores, "scores")
        if scores.ndim == 0 or scores.shape != (n,):
            raise InputError(f"scores must have shape ({n},) to match boxes, got {scores.shape}")
        if not np.isfinite(scores.sum()) and not np.isfinite(scores).all():
            i = int(np.flatnonzero(~np.isfinite(scores))[0])
            raise InputError(f"scores[{i}] is NaN or inf")
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "scores", scores)
        if self.embeddings is not None:
            object.__setattr__(self, "embeddings", as_2d_float(self.embeddings, "embeddings", n))
        if self.roi_features is not None:
            f = _as_array(self.roi_features, "roi_features")
            if f.dtype.kind not in "biuf":
                raise InputError(f"roi_features must be numeric (real numbers), got dtype {f.dtype}")
            if f.ndim != 4 or f.shape[0] != n:
                raise InputError(
                    f"roi_features must have shape ({n}, C, H, W) to match boxes, got {f.shape}"
                )
            with np.errstate(over="ignore"):  # beyond float32: inf, refused below
                f = f.astype(np.float32, copy=False)
            if n and not np.isfinite(f).all():
                raise InputError("roi_features contains NaN or inf")
            object.__setattr__(self, "roi_features", f)
        if self.class_ids is not None:
            c = _as_array(self.class_ids, "class_ids")
            if c.shape != (n,):
                raise InputError(f"class_ids must have shape ({n},), got {c.shape}")
            if c.dtype.kind == "f":
                bad = ~(np.isfinite(c) & (c == np.round(c)) & (np.abs(c) < 2.0**53))
                if bad.any():
                    i = int(np.flatnonzero(bad)[0])
                    raise InputError(f"class_ids[{i}] = {c[i]} is not an integer")
            elif c.dtype.kind not in "iub":
                raise InputError(f"class_ids must be integers, got dtype {c.dtype}")
            elif c.dtype.kind == "u" and n and c.max() > np.iinfo(np.int64).max:
                raise InputError("class_ids hold a value beyond the int64 range")
            object.__setattr__(self, "class_ids", c.astype(np.int64))

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def empty(cls) -> Detections:
        """Return a frame with no detections."""
        return cls(np.zeros((0, 4)), np.zeros(0))

    def subset(self, keep: NDArray[np.bool_] | NDArray[np.int64]) -> Detections:
        """Return the detections selected by a boolean mask or index array."""
        return Detections(
            self.boxes[keep],
            self.scores[keep],
            None if self.embeddings is None else self.embeddings[keep],
            None if self.roi_features is None else self.roi_features[keep],
            None if self.class_ids is None else self.class_ids[keep],
        )


@dataclass(frozen=True)
class TrackOutput:
    """The tracker's answer for one frame.

    Attributes:
        track_ids: (M,) int64 visible track ids (1, 2, 3 ...).
        boxes: (M, 4) float64 xyxy of the track's Kalman state: the posterior
            after this frame's update (as DeepSORT reports it), or the
            prediction for a track that was only predicted. The matched
            detection's own box is ``detections.boxes[det_index]``.
        scores: (M,) float64 matched detection's score (the last matched
            score for a predicted track).
        det_index: (M,) int64 row of the input detection each track was
            matched to this frame, -1 when only predicted.
    """

    track_ids: NDArray[np.int64]
    boxes: NDArray[np.float64]
    scores: NDArray[np.float64]
    det_index: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.track_ids)

    @classmethod
    def empty(cls) -> TrackOutput:
        """Return an output with no tracks."""
        return cls(
            np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64)
        )


@dataclass(frozen=True)
class Matches:
    """Result of one assignment between T tracks and N detections.

    Attributes:
        pairs: (K, 2) int64 rows of (track index, detection index).
        unmatched_tracks: (T - K,) int64 track indices.
        unmatched_detections: (N - K,) int64 detection indices.
    """

    pairs: NDArray[np.int64] = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    unmatched_tracks: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    unmatched_detections: NDArray[np.int64] = field(
        default_factory=lambda: np.zeros(0, np.int64)
    )
