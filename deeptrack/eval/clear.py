"""CLEAR MOT (Bernardin & Stiefelhagen 2008) and identity metrics (Ristani et al. 2016).

Both are computed with ``motmetrics.MOTAccumulator``, fed with our own IoU
distances (``1 - IoU``; NaN where IoU < 0.5): motmetrics' ``iou_matrix``
needs ``np.asfarray``, which NumPy 2 removed.

Which frame-by-frame correspondences CLEAR uses decides MOTA, and motmetrics
chooses them differently from the official MOTChallenge evaluation
(TrackEval), so we choose them the official way and hand motmetrics only those:

- *Continuation.* Official: a result keeps its ground-truth object only if they
  were matched in the previous frame that had both ground truth and results.
  motmetrics: a pair matched at any earlier time is kept, even after the object
  was missed for a while, which hides some identity switches.
- *Assignment of the rest.* Official: maximise the number of continued pairs,
  then the summed IoU. motmetrics: maximise the number of pairs, then minimise
  the summed distance, so it can find more true positives than the official
  evaluation (e.g. three pairs at IoU 0.54 instead of two at IoU 1).

Given the official correspondences (each frame's distance matrix is finite only
on them), motmetrics' event bookkeeping yields the official TP, FP, FN and
identity switches (a switch: the object's last matched result, at any earlier
time, differs). A second accumulator receives every pair with IoU >= 0.5 for
the identity metrics, whose global ID assignment is the official one.

Defined as in the official evaluation rather than as motmetrics defines them:

- MOTP is the mean IoU of the matches (motmetrics reports the mean distance
  ``1 - IoU``).
- Mostly tracked means matched in *more than* 80% of the frames the object is
  in (motmetrics: at least 80%); mostly lost: less than 20%.
- Frag counts, per object, how often tracking resumes after not being tracked
  in the previous frame that had both ground truth and results, where an absent
  object counts as not tracked (motmetrics counts only the misses between the
  first and last match).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import motmetrics
import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from deeptrack.eval.preprocess import EPS, IOU_THRESHOLD, PreparedSequence

#: A match continued from the previous frame outweighs any IoU gain.
CONTINUATION_BONUS = 1000.0
MOSTLY_TRACKED = 0.8
MOSTLY_LOST = 0.2

_CLEAR_COUNTS = ["num_matches", "num_switches", "num_false_positives", "num_misses"]
_ID_COUNTS = ["idtp", "idfp", "idfn"]


def _ratio(num: float, den: float) -> float:
    """The official convention: a denominator below 1 counts as 1 (so 0/0 = 0)."""
    return float(num) / max(1.0, float(den))


@dataclass(frozen=True)
class ClearMetrics:
    """CLEAR MOT counts of one sequence or of several combined.

    Attributes:
        tp: matched ground-truth boxes.
        fn: missed ground-truth boxes.
        fp: result boxes matched to nothing.
        idsw: identity switches.
        frag: fragmentations (tracking of an object resumed after an interruption).
        mt: objects tracked in more than 80% of their frames.
        pt: objects tracked in 20% to 80% of their frames.
        ml: objects tracked in less than 20% of their frames.
        iou_sum: summed IoU of the matches (MOTP's numerator).
    """

    tp: int = 0
    fn: int = 0
    fp: int = 0
    idsw: int = 0
    frag: int = 0
    mt: int = 0
    pt: int = 0
    ml: int = 0
    iou_sum: float = 0.0

    @property
    def n_gt(self) -> int:
        """Scored ground-truth boxes (TP + FN)."""
        return self.tp + self.fn

    @property
    def n_gt_ids(self) -> int:
        """Scored ground-truth objects (MT + PT + ML)."""
        return self.mt + self.pt + self.ml

    @property
    def mota(self) -> float:
        """1 - (FN + FP + IDSW) / GT."""
        return _ratio(self.tp - self.fp - self.idsw, self.n_gt)

    @property
    def moda(self) -> float:
        """1 - (FN + FP) / GT."""
        return _ratio(self.tp - self.fp, self.n_gt)

    @property
    def motp(self) -> float:
        """Mean IoU of the matches (the official definition)."""
        return _ratio(self.iou_sum, self.tp)

    @property
    def recall(self) -> float:
        """TP / GT."""
        return _ratio(self.tp, self.n_gt)

    @property
    def precision(self) -> float:
        """TP / (TP + FP)."""
        return _ratio(self.tp, self.tp + self.fp)

    @classmethod
    def combine(cls, parts: Sequence[ClearMetrics]) -> ClearMetrics:
        """Sum the counts of several sequences (ratios follow from the sums)."""
        return cls(
            *(sum(getattr(p, f) for p in parts) for f in
              ("tp", "fn", "fp", "idsw", "frag", "mt", "pt", "ml")),
            iou_sum=float(sum(p.iou_sum for p in parts)),
        )

    def to_dict(self) -> dict[str, float | int]:
        """Counts and ratios (fractions, not percent) as plain numbers."""
        return {
            "mota": self.mota, "motp": self.motp, "moda": self.moda,
            "recall": self.recall, "precision": self.precision,
            "tp": self.tp, "fp": self.fp, "fn": self.fn, "idsw": self.idsw,
            "frag": self.frag, "mt": self.mt, "pt": self.pt, "ml": self.ml,
            "gt": self.n_gt, "gt_ids": self.n_gt_ids,
        }


@dataclass(frozen=True)
class IdentityMetrics:
    """Identity counts (global one-to-one assignment of ids) of one or more sequences.

    Attributes:
        idtp: boxes whose ids agree under the best id assignment.
        idfn: ground-truth boxes not covered by their assigned result id.
        idfp: result boxes not covering their assigned ground-truth id.
    """

    idtp: int = 0
    idfn: int = 0
    idfp: int = 0

    @property
    def idf1(self) -> float:
        """2 IDTP / (2 IDTP + IDFP + IDFN)."""
        return _ratio(self.idtp, self.idtp + 0.5 * self.idfp + 0.5 * self.idfn)

    @property
    def idp(self) -> float:
        """IDTP / (IDTP + IDFP)."""
        return _ratio(self.idtp, self.idtp + self.idfp)

    @property
    def idr(self) -> float:
        """IDTP / (IDTP + IDFN)."""
        return _ratio(self.idtp, self.idtp + self.idfn)

    @classmethod
    def combine(cls, parts: Sequence[IdentityMetrics]) -> IdentityMetrics:
        """Sum the counts of several sequences."""
        return cls(sum(p.idtp for p in parts), sum(p.idfn for p in parts),
                   sum(p.idfp for p in parts))

    def to_dict(self) -> dict[str, float | int]:
        """Counts and ratios (fractions) as plain numbers."""
        return {"idf1": self.idf1, "idp": self.idp, "idr": self.idr,
                "idtp": self.idtp, "idfp": self.idfp, "idfn": self.idfn}


def official_matches(
    gt_ids: np.ndarray, res_ids: np.ndarray, similarity: np.ndarray, previous: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Choose one frame's CLEAR correspondences the way the official evaluation does.

    Pairs need IoU >= 0.5; among the assignments, the one keeping most of the
    previous frame's pairs wins, then the one with the largest summed IoU.

    Args:
        gt_ids: (G,) ground-truth ids of the frame.
        res_ids: (R,) result ids of the frame.
        similarity: (G, R) IoU.
        previous: (n_gt_ids,) result id each object was matched to in the
            previous frame that had both ground truth and results; -1 for none.

    Returns:
        Row and column indices of the matched pairs.
    """
    continued = res_ids[None, :] == previous[gt_ids][:, None]
    score = CONTINUATION_BONUS * continued + similarity
    score[similarity < IOU_THRESHOLD - EPS] = 0.0
    rows, cols = linear_sum_assignment(-score)
    hit = score[rows, cols] > EPS
    return rows[hit], cols[hit]


@dataclass(frozen=True)
class FrameMatches:
    """One frame's CLEAR correspondences, chosen as the official evaluation chooses them.

    Attributes:
        gt: (M,) int64 positions of the matched boxes in the frame's ``gt_ids``.
        res: (M,) int64 positions of their partners in the frame's ``res_ids``.
        resumed: (M,) bool, the object was not matched in the previous frame
            that had both ground truth and results (tracking starts or resumes).
        switched: (M,) bool, the object's last earlier match, at any time, was
            another result id: an identity switch.
    """

    gt: NDArray[np.int64]
    res: NDArray[np.int64]
    resumed: NDArray[np.bool_]
    switched: NDArray[np.bool_]


_NO_INDEX = np.zeros(0, np.int64)
_NO_FLAG = np.zeros(0, bool)
_NO_MATCHES = FrameMatches(_NO_INDEX, _NO_INDEX, _NO_FLAG, _NO_FLAG)


def frame_matches(seq: PreparedSequence) -> Iterator[FrameMatches]:
    """Yield the CLEAR correspondences of each frame of ``seq``, in ``seq.frames`` order.

    These are the pairs behind MOTA: the metrics here count them, and
    ``deeptrack.render`` draws them.
    """
    previous = np.full(seq.n_gt_ids, -1, np.int64)  # the match in the last frame with both
    last = np.full(seq.n_gt_ids, -1, np.int64)  # the last match at any earlier time
    for g, r, sim in zip(seq.gt_ids, seq.res_ids, seq.similarity, strict=True):
        if not (len(g) and len(r)):
            # frames with only ground truth or only results leave ``previous`` as it is
            yield _NO_MATCHES
            continue
        rows, cols = official_matches(g, r, sim, previous)
        matched_g, matched_r = g[rows], r[cols]
        resumed = previous[matched_g] < 0
        switched = (last[matched_g] >= 0) & (last[matched_g] != matched_r)
        previous[:] = -1
        previous[matched_g] = matched_r
        last[matched_g] = matched_r
        yield FrameMatches(rows, cols, resumed, switched)


def _motmetrics_counts(acc: Any, names: list[str]) -> dict[str, int]:
    host = motmetrics.metrics.create()
    values = host.compute(acc, metrics=names, return_dataframe=False)
    return {k: round(float(values[k])) for k in names}


def clear_and_identity(seq: PreparedSequence) -> tuple[ClearMetrics, IdentityMetrics]:
    """Compute CLEAR MOT and identity metrics of one preprocessed sequence."""
    n_gt, n_res = seq.n_gt_dets, seq.n_res_dets
    if n_gt == 0 or n_res == 0:
        clear = ClearMetrics(fn=n_gt, fp=n_res, ml=seq.n_gt_ids)
        return clear, IdentityMetrics(idfn=n_gt, idfp=n_res)

    clear_acc = motmetrics.MOTAccumulator()
    id_acc = motmetrics.MOTAccumulator()
    present = np.zeros(seq.n_gt_ids, np.int64)
    tracked = np.zeros(seq.n_gt_ids, np.int64)
    starts = np.zeros(seq.n_gt_ids, np.int64)
    iou_sum = 0.0
    for frame, g, r, sim, m in zip(seq.frames.tolist(), seq.gt_ids, seq.res_ids,
                                   seq.similarity, frame_matches(seq), strict=True):
        present[g] += 1
        dist = np.where(sim >= IOU_THRESHOLD, 1.0 - sim, np.nan)
        id_acc.update(g, r, dist, frameid=frame)
        forced = np.full(sim.shape, np.nan)
        forced[m.gt, m.res] = 1.0 - sim[m.gt, m.res]
        matched_g = g[m.gt]
        starts[matched_g[m.resumed]] += 1
        tracked[matched_g] += 1
        iou_sum += float(sim[m.gt, m.res].sum())
        clear_acc.update(g, r, forced, frameid=frame)

    counts = _motmetrics_counts(clear_acc, _CLEAR_COUNTS)
    ratio = tracked[present > 0] / present[present > 0]
    mt = int((ratio > MOSTLY_TRACKED).sum())
    pt = int((ratio >= MOSTLY_LOST).sum()) - mt
    clear = ClearMetrics(
        tp=counts["num_matches"] + counts["num_switches"],
        fn=counts["num_misses"],
        fp=counts["num_false_positives"],
        idsw=counts["num_switches"],
        frag=int(np.maximum(starts - 1, 0).sum()),
        mt=mt, pt=pt, ml=seq.n_gt_ids - mt - pt,
        iou_sum=iou_sum,
    )
    ids = _motmetrics_counts(id_acc, _ID_COUNTS)
    return clear, IdentityMetrics(idtp=ids["idtp"], idfn=ids["idfn"], idfp=ids["idfp"])
