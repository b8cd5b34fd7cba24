"""What the study's parts share: the backbones and modes compared, progress, errors."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

from deeptrack.config import HeadConfig
from deeptrack.errors import DeepTrackError

#: The keys of ``SequenceMetrics.to_dict()`` reported per run.
METRICS = ("mota", "idf1", "hota", "assa", "deta", "idsw", "fp", "fn")

#: Every detection file of a run, with no minimum confidence: the fused presets
#: set none (``min_confidence: null``); their ``min_score_quantile`` drops the
#: weakest boxes per sequence instead.
DEFAULT_DET_SETS = "det.txt,det_frcnn.txt"

#: Adaptations studied by default (``TrackerConfig.adaptation`` values).
DEFAULT_ADAPTATIONS = ("none", "centre")


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
        layer: the backbone layer whose maps this mode pools; None for the
            backbone preset's own layer.
    """

    name: str
    pooling: str | None
    params: dict[str, Any] = field(default_factory=dict)
    layer: str | None = None

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
#: Every pooling mode of a map (the appearance modes of a RoI backbone).
POOLING_MODES = (
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
)
QUICK_MODES = ("avg", "max", "gem p=3", "flatten+RP512")


@dataclass(frozen=True)
class Backbone:
    """One level of the backbone axis: a fused preset's appearance and lifecycle.

    Attributes:
        name: the ``--backbones`` value.
        label: the name in tables.
        preset: the file in ``configs/`` whose tracker (lifecycle), appearance
            and default head this backbone runs with.
        weights: the weights file's name in the weights folder.
        pooled: whether the preset's layer gives maps that every pooling mode
            applies to; False when it gives one vector per box (OSNet on crops).
        extra: further modes over other layers of the same network (OSNet's
            own head on the RoIs).
    """

    name: str
    label: str
    preset: str
    weights: str
    pooled: bool = True
    extra: tuple[Mode, ...] = ()

    def modes(self, quick: bool = False) -> list[Mode]:
        """The appearance modes studied on this backbone."""
        if not self.pooled:
            return [Mode(self.label, "avg")]  # (N, 512, 1, 1): avg is the identity, then L2
        return [m for m in POOLING_MODES if not quick or m.name in QUICK_MODES] + list(self.extra)


BACKBONES = (
    Backbone("mobilenet_v2", "MobileNetV2 ImageNet RoI", "fused.yaml",
             "mobilenet_v2_imagenet_features.pth"),
    Backbone("osnet_roi", "OSNet x0.25 RoI", "fused_osnet_roi.yaml", "osnet_x0_25_msmt17.pth",
             extra=(Mode("OSNet head", "avg", layer="head"),)),
    Backbone("osnet_crops", "OSNet x0.25 crops", "fused_osnet.yaml", "osnet_x0_25_msmt17.pth",
             pooled=False),
)
BACKBONE_NAMES = tuple(b.name for b in BACKBONES)
