"""DeepSORT's association (Wojke et al. 2017, sec. 2.3): matching cascade, then IoU.

Every stage works on the sparse list of admissible (track, detection)
pairs, not on (T, N) matrices: the motion gate admits a few detections per
track, and costs and assignments are computed for those only. The result is
the dense formulation's (:mod:`deeptrack.association.oracle`; the tests
compare the two, and tests/test_parity_deepsort.py the whole tracker with
deep-sort-realtime).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from deeptrack._arrays import nonzero_2d
from deeptrack.association.assign import NO_PAIRS, Pairs, assign
from deeptrack.association.cascade import cascade
from deeptrack.association.costs import iou_cost
from deeptrack.association.strategy import DetectionView, TrackView
from deeptrack.boxes import iou_pairs
from deeptrack.motion.gating import gate_pairs

__all__ = ["DeepSortAssociation"]


class DeepSortAssociation:
    """The matching cascade over confirmed tracks, then IoU for the recently seen rest.

    Stage 1: confirmed tracks are matched by recency (the cascade), each
    only to the detections its Kalman gate admits, at the smallest cosine
    distance to its appearance memory (or, without appearance, at 1 - IoU
    with ``max_iou_distance`` as the cap). Stage 2: the detections left and
    the unmatched tracks seen on the previous frame (tentative ones, which
    always are, and confirmed ones) are matched by 1 - IoU.

    Args:
        max_cosine_distance: cap on the appearance cost in the cascade.
        max_iou_distance: cap on 1 - IoU (the IoU stage; the cascade without appearance).
        gating_threshold: squared Mahalanobis gate on the projected state.
    """

    def __init__(
        self, max_cosine_distance: float, max_iou_distance: float, gating_threshold: float
    ) -> None:
        self.max_cosine_distance = max_cosine_distance
        self.max_iou_distance = max_iou_distance
        self.gating_threshold = gating_threshold

    def reset(self) -> None:
        """Nothing to forget: DeepSORT learns nothing from the sequence."""

    def associate(self, tracks: TrackView, detections: DetectionView) -> Pairs:
        """Return the matched (track rows, detection indices) of one frame."""
        ti, di = self._cascade(tracks, detections)
        return self._iou_stage(tracks, detections, ti, di)

    def _cascade(self, tracks: TrackView, dets: DetectionView) -> Pairs:
        fsu = tracks.frames_since_update
        # DeepSORT's cascade stops at max_age: older tracks are never matched.
        confirmed = np.flatnonzero(tracks.confirmed & (fsu <= tracks.max_age))
        if len(confirmed) == 0:
            return NO_PAIRS
        proj_mean, proj_cov = tracks.project(confirmed)
        rows, cols = gate_pairs(proj_mean, proj_cov, dets.xyah, self.gating_threshold)
        cost_of: Callable[[NDArray[np.int64], NDArray[np.int64]], NDArray[np.float64]]
        if dets.features is not None:
            slots, features, memory = tracks.slots[confirmed], dets.features, tracks.memory

            def cost_of(r: NDArray[np.int64], c: NDArray[np.int64]) -> NDArray[np.float64]:
                return memory.pair_cost(slots[r], c, features)

            max_cost = self.max_cosine_distance
        else:  # motion only: IoU takes the place of appearance in the cascade
            boxes = tracks.boxes[confirmed]

            def cost_of(r: NDArray[np.int64], c: NDArray[np.int64]) -> NDArray[np.float64]:
                return 1.0 - iou_pairs(boxes[r], dets.boxes[c])

            max_cost = self.max_iou_distance
        r, di = cascade(rows, cols, cost_of, fsu[confirmed], len(dets.boxes), max_cost)
        return confirmed[r], di

    def _iou_stage(
        self, tracks: TrackView, dets: DetectionView, ti: NDArray[np.int64],
        di: NDArray[np.int64],
    ) -> Pairs:
        """Add IoU matches between the detections left and the tracks seen last frame."""
        candidate = tracks.frames_since_update == 1
        candidate[ti] = False
        left = np.ones(len(dets.boxes), bool)
        left[di] = False
        if not (candidate.any() and left.any()):
            return ti, di
        cand, rest = np.flatnonzero(candidate), np.flatnonzero(left)
        cost = iou_cost(tracks.boxes[cand], dets.boxes[rest])
        r, c = nonzero_2d(cost <= self.max_iou_distance)
        r, c = assign(r, c, cost[r, c], len(cand), len(rest), self.max_iou_distance)
        return np.concatenate([ti, cand[r]]), np.concatenate([di, rest[c]])
