"""Association on one fused cost: calibrated appearance evidence, overlap and motion gating.

DeepSORT (:mod:`deeptrack.association.deepsort`) uses appearance as a veto at a
hand-set cosine threshold whose right value depends on the features, the
layer, the pooling mode and the sequence. Here appearance is evidence,
calibrated on the sequence as it runs (:mod:`deeptrack.association.calibration`),
and added to the overlap evidence of a single cost:

    cost = w * (1 - IoU) + (1 - w) * (1 - sigmoid(LLR(d)))

for the pairs the Kalman (Mahalanobis) gate admits. ``1 - sigmoid(LLR)`` is
the probability that the pair are different identities, 0.5 when appearance
says nothing (before calibration, or a distance the two kinds share), so the
cost means the same with any backbone, layer or pooling mode. Without
appearance the second term is that neutral 0.5 and the cost reduces to
overlap: with ``w`` 0.5 and a cap of 0.6 it is then DeepSORT's motion-only
association exactly (``1 - IoU <= 0.7``; tests/test_fused.py compares them
frame by frame). A confirmed track seen on the previous frame must overlap
its detection by at least ``1 - max_iou_distance`` whatever appearance says:
two people may look alike, and the true box may be missed.

Matching order (measured, benchmarks/results/association.md):

1. confirmed tracks seen on the previous frame, with the frame's detections;
2. the confirmed tracks missed for longer, by recency (the cascade), with the
   detections left: their predicted boxes drift, so overlap says less and the
   calibrated appearance more;
3. the tracks seen on the previous frame and still unmatched (tentative
   ones, and confirmed ones the motion gate refused), with the high-score
   detections left, on overlap alone and ungated, as DeepSORT's IoU stage;
4. optionally (ByteTrack, Zhang et al. 2022), the confirmed tracks still
   unmatched and seen on the previous frame, with the frame's low-score
   detections, on overlap alone (a low-score box is often occluded, its
   appearance unreliable).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from deeptrack._arrays import nonzero_2d
from deeptrack.association.assign import NO_PAIRS, Pairs, assign
from deeptrack.association.calibration import LAGS, AppearanceCalibration
from deeptrack.association.cascade import cascade
from deeptrack.association.costs import GATED
from deeptrack.association.strategy import DetectionView, TrackView
from deeptrack.boxes import iou_matrix, iou_pairs
from deeptrack.motion.gating import gate_pairs

__all__ = ["FusedAssociation"]

#: Tracks whose pairs are labelled per frame, at most (a rotating choice): the calibration
#: needs a steady trickle of pairs, not all of them, and each costs a gallery read.
_LABELLED_PER_FRAME = 4

#: Different-identity pairs labelled per labelled track: the detections nearest its partner.
_NEGATIVES_PER_TRACK = 4

#: A track and a detection are labelled "same identity" when their boxes overlap at least
#: this much and neither overlaps any other detection or track by more than ``_ALONE``.
_SAME_IOU = 0.6
_ALONE = 0.2


class FusedAssociation:
    """Confirmed tracks on the fused cost (by recency), then DeepSORT's IoU stage, then low scores.

    Args:
        max_cost: pairs whose fused cost exceeds it are not matched.
        iou_weight: ``w``, the weight of overlap in the fused cost.
        max_iou_distance: cap on 1 - IoU in the IoU and low-score stages, and for
            a confirmed track seen last frame in the fused stage too.
        gating_threshold: squared Mahalanobis gate on the projected state.
        calibrated: False adds the raw cosine distance instead of the
            calibrated probability (the ablation's "no calibration").
        lost_appearance: False: appearance says nothing for tracks missed on
            the previous frame (their re-identification is left to overlap).
        levels: 2: the confirmed tracks seen last frame first, then all the
            others at once; 0: one cascade level per number of misses.
        calibration: learns the appearance evidence; a fresh one by default.
    """

    def __init__(self, max_cost: float, iou_weight: float, max_iou_distance: float,
                 gating_threshold: float, levels: int = 0, lost_appearance: bool = True,
                 calibrated: bool = True,
                 calibration: AppearanceCalibration | None = None) -> None:
        self.max_cost = max_cost
        self.iou_weight = iou_weight
        self.max_iou_distance = max_iou_distance
        self.gating_threshold = gating_threshold
        self.levels = levels
        self.lost_appearance = lost_appearance
        self.calibrated = calibrated
        self.calibration = AppearanceCalibration() if calibration is None else calibration
        self._frame = 0

    def reset(self) -> None:
        """Forget the sequence's calibration."""
        self.calibration.reset()
        self._frame = 0

    def associate(self, tracks: TrackView, detections: DetectionView) -> Pairs:
        """Return the matched (track rows, detection indices) of one frame."""
        self._frame += 1
        high = np.ones(len(detections), bool) if detections.low is None else ~detections.low
        if detections.features is not None and self.calibrated:
            self._learn(tracks, detections, high)
        ti, di = self._confirmed(tracks, detections, high)
        taken = np.zeros(len(detections), bool)
        taken[di] = True
        free_track = np.ones(len(tracks), bool)
        free_track[ti] = False
        recent = free_track & (tracks.frames_since_update == 1)
        pairs = [(ti, di), self._iou_stage(tracks, detections, recent, high & ~taken)]
        if detections.low is not None:  # ByteTrack's second stage
            free_track[pairs[-1][0]] = False
            recent = free_track & (tracks.frames_since_update == 1)
            pairs.append(self._iou_stage(tracks, detections, recent & tracks.confirmed,
                                         detections.low & ~taken))
        return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])

    # ------------------------------------------------------------------ stages

    def _confirmed(self, tracks: TrackView, dets: DetectionView, high: NDArray[np.bool_]) -> Pairs:
        fsu = tracks.frames_since_update
        confirmed = np.flatnonzero(tracks.confirmed & (fsu <= tracks.max_age))
        cols_ok = np.flatnonzero(high)
        if len(confirmed) == 0 or len(cols_ok) == 0:
            return NO_PAIRS
        proj_mean, proj_cov = tracks.project(confirmed)
        rows, c = gate_pairs(proj_mean, proj_cov, dets.xyah[cols_ok], self.gating_threshold)
        cols = cols_ok[c]
        boxes, slots = tracks.boxes[confirmed], tracks.slots[confirmed]
        recent = fsu[confirmed] == 1

        def cost_of(r: NDArray[np.int64], c: NDArray[np.int64]) -> NDArray[np.float64]:
            overlap = 1.0 - iou_pairs(boxes[r], dets.boxes[c])
            cost = self.iou_weight * overlap + (1.0 - self.iou_weight) * self._different(
                slots[r], c, fsu[confirmed[r]], tracks, dets)
            # A track seen last frame must still overlap: appearance alone cannot move it
            # to another box (two people may look alike; the true box may be missed).
            cost[recent[r] & (overlap > self.max_iou_distance)] = GATED
            return cost

        levels = fsu[confirmed] if self.levels == 0 else np.minimum(fsu[confirmed], 2)
        r, di = cascade(rows, cols, cost_of, levels, len(dets), self.max_cost)
        return confirmed[r], di

    def _different(self, slots: NDArray[np.int64], cols: NDArray[np.int64],
                   fsu: NDArray[np.int64], tracks: TrackView,
                   dets: DetectionView) -> NDArray[np.float64]:
        """Probability that each pair are different identities, by appearance (0.5: no say)."""
        if dets.features is None:
            return np.full(len(cols), 0.5)
        d = tracks.memory.pair_cost(slots, cols, dets.features)
        if not self.calibrated:
            different = np.minimum(d, 1.0)
            if not self.lost_appearance:
                different[fsu > 1] = 0.5
            return different
        llr = self.calibration.llr(np.minimum(d, 2.0), fsu)
        llr[d >= GATED] = 0.0  # a track with nothing stored yet
        if not self.lost_appearance:
            llr[fsu > 1] = 0.0
        return 1.0 / (1.0 + np.exp(llr))

    def _iou_stage(self, tracks: TrackView, dets: DetectionView, track_ok: NDArray[np.bool_],
                   det_ok: NDArray[np.bool_]) -> Pairs:
        """Match the chosen tracks and detections by 1 - IoU, capped at ``max_iou_distance``."""
        if not (track_ok.any() and det_ok.any()):
            return NO_PAIRS
        cand, rest = np.flatnonzero(track_ok), np.flatnonzero(det_ok)
        cost = 1.0 - iou_matrix(tracks.boxes[cand], dets.boxes[rest])
        r, c = nonzero_2d(cost <= self.max_iou_distance)
        r, c = assign(r, c, cost[r, c], len(cand), len(rest), self.max_iou_distance)
        return cand[r], rest[c]

    # ------------------------------------------------------------------ calibration

    def _learn(self, tracks: TrackView, dets: DetectionView, high: NDArray[np.bool_]) -> None:
        """Label this frame's unambiguous pairs and feed their distances to the calibration."""
        recent = np.flatnonzero((tracks.frames_since_update == 1) & (tracks.slots >= 0))
        cols = np.flatnonzero(high)
        if len(recent) == 0 or len(cols) < 1:
            return
        iou = iou_matrix(tracks.boxes[recent], dets.boxes[cols])
        # Unambiguous: one strong overlap, nothing else near the track or the detection.
        near = iou > _ALONE
        alone = (near.sum(axis=1)[:, None] == 1) & (near.sum(axis=0)[None, :] == 1)
        r, c = nonzero_2d((iou >= _SAME_IOU) & alone)
        if len(r) == 0:
            return
        if len(r) > _LABELLED_PER_FRAME:  # a different few each frame, reproducibly
            start = (self._frame * _LABELLED_PER_FRAME) % len(r)
            pick = (start + np.arange(_LABELLED_PER_FRAME)) % len(r)
            r, c = r[pick], c[pick]
        # Different: the same tracks against the other detections nearest their partner
        # (the ones association must tell apart), those not overlapping it.
        partner = iou_matrix(dets.boxes[cols[c]], dets.boxes[cols]) <= _ALONE  # (K, N)
        centre = dets.xyah[cols, :2]
        dist = np.linalg.norm(centre[c][:, None, :] - centre[None, :, :], axis=2)
        dist[~partner] = np.inf
        nearest = np.argsort(dist, axis=1)[:, :_NEGATIVES_PER_TRACK]
        partner[:] = False
        np.put_along_axis(partner, nearest, True, axis=1)
        partner &= np.isfinite(dist)
        same, diff = [], []
        for k, slot in enumerate(tracks.slots[recent[r]].tolist()):
            others = cols[partner[k]]
            cost = tracks.memory.lagged_cost(  # (L, 1 + negatives)
                slot, dets.features[np.r_[cols[c[k]], others]], LAGS)
            same.append(cost[:, 0])
            diff.append(cost[:, 1:])
        self.calibration.add(np.stack(same, axis=1), np.concatenate(diff, axis=1))
