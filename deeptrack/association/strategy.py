"""The interface between the tracker and an association strategy.

The tracker owns the tracks' lifecycle (predict, update, birth, death); a
strategy only decides, once per frame, which live track takes which
detection. It sees the tracks through a :class:`TrackView` and the frame's
detections through a :class:`DetectionView`, and answers with matched
(track rows, detection indices). DeepSORT's matching cascade plus IoU stage
(:class:`~deeptrack.association.deepsort.DeepSortAssociation`) is one such
strategy; :class:`~deeptrack.association.fused.FusedAssociation` (one
fused cost, calibrated appearance, a second stage for low-score detections)
is another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from deeptrack.association.assign import Pairs
from deeptrack.association.gallery import Gallery

__all__ = ["Association", "DetectionView", "TrackView"]


@dataclass(frozen=True)
class TrackView:
    """The live tracks after this frame's Kalman predict, one row per track.

    Attributes:
        confirmed: (T,) bool, the track has been confirmed (is visible).
        frames_since_update: (T,) int64 consecutive misses, this frame counted.
        boxes: (T, 4) float64 predicted boxes, xyxy pixels.
        slots: (T,) int64 each track's slot in ``memory`` (-1: no appearance).
        memory: the tracks' appearance memory (compare with ``pair_cost``).
        project: ``project(rows) -> (mean (K, 4), cov)``: the Kalman state of
            the tracks at ``rows`` projected to measurement space (xyah), with
            the innovation covariance, (K, 4, 4) or its (K, 4) diagonal.
        max_age: a track missed more than this many frames is deleted after
            this frame whatever happens; it must not be matched.
    """

    confirmed: NDArray[np.bool_]
    frames_since_update: NDArray[np.int64]
    boxes: NDArray[np.float64]
    slots: NDArray[np.int64]
    memory: Gallery
    project: Callable[[NDArray[np.int64]], tuple[NDArray[np.float64], NDArray[np.float64]]]
    max_age: int

    def __len__(self) -> int:
        return len(self.frames_since_update)


@dataclass(frozen=True)
class DetectionView:
    """One frame's detections as the association sees them.

    Attributes:
        boxes: (N, 4) float64 xyxy pixels.
        xyah: (N, 4) float64 the same boxes as (centre x, centre y, w/h, h).
        scores: (N,) float64 confidences.
        features: (N, D) float32 unit appearance vectors, or None (motion only).
        low: (N,) bool, the detection scored below the tracker's score cut: it
            may extend a track (ByteTrack's second stage) but never starts
            one. None: every detection is high (low ones were dropped).
    """

    boxes: NDArray[np.float64]
    xyah: NDArray[np.float64]
    scores: NDArray[np.float64]
    features: NDArray[np.float32] | None
    low: NDArray[np.bool_] | None = None

    def __len__(self) -> int:
        return len(self.boxes)


class Association(Protocol):
    """Decides which track takes which detection.

    A strategy may learn from the sequence as it runs (the fused strategy
    calibrates its appearance evidence); :meth:`reset` forgets it.
    """

    def reset(self) -> None:
        """Forget what was learnt from the current sequence."""
        ...

    def associate(self, tracks: TrackView, detections: DetectionView) -> Pairs:
        """Return the matched (track rows, detection indices) of one frame.

        Called only when there are tracks and detections. Each row and each
        detection appears at most once; order does not matter.
        """
        ...
