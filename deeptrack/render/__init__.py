"""See what a tracker did: annotated videos of a sequence and identity timelines.

Reads the MOTChallenge files ``deeptrack eval`` reads, and any tracker's result
file. The marks of the evaluation (false positives, missed objects, identity
switches) come from :mod:`deeptrack.eval`'s own per-frame matching.

Importing this package imports neither PyAV nor matplotlib: MP4 output needs
the ``render`` extra (``pip install "deeptrack[render]"``), GIF, WebP, PNG
output and the timeline need only the core dependencies.
"""

from __future__ import annotations

from deeptrack.render.events import (
    EvaluationEvents,
    FrameEvents,
    RunningScore,
    evaluation_events,
)
from deeptrack.render.overlay import Overlay
from deeptrack.render.palette import id_colours
from deeptrack.render.timeline import identity_timeline, timeline_image
from deeptrack.render.video import (
    OUTPUT_FORMATS,
    RENDER_EXTRA,
    MissingExtraError,
    RenderInfo,
    draw_frames,
    render_from_files,
    render_sequence,
)

__all__ = [
    "OUTPUT_FORMATS",
    "RENDER_EXTRA",
    "EvaluationEvents",
    "FrameEvents",
    "MissingExtraError",
    "Overlay",
    "RenderInfo",
    "RunningScore",
    "draw_frames",
    "evaluation_events",
    "id_colours",
    "identity_timeline",
    "render_from_files",
    "render_sequence",
    "timeline_image",
]
