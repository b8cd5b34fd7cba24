"""HOTA (Luiten et al. 2021, "HOTA: A Higher Order Metric for Evaluating Multi-Object Tracking").

For each localisation threshold alpha in 0.05, 0.10, ..., 0.95:

- Matching. Per frame one assignment maximises ``A(g, r) * IoU(g, r)`` where
  ``A`` is the global alignment of the two ids over the sequence: their
  co-occurrence, each frame's pair weighted by ``IoU / (row IoU sum + column
  IoU sum - IoU)``, divided by ``|g| + |r| - co-occurrence``. The same
  assignment serves every alpha; a pair counts as a true positive at alpha when
  its IoU >= alpha (this is how the official evaluation does it).
- Detection: ``DetA = TP / (TP + FN + FP)``, ``DetRe = TP / (TP + FN)``,
  ``DetPr = TP / (TP + FP)``.
- Association: for each true positive ``c`` with ids (g, r),
  ``AssA = mean_c TPA / (TPA + FNA + FPA)`` with ``TPA`` the matches of
  (g, r), ``FNA = |g| - TPA`` and ``FPA = |r| - TPA``; AssRe and AssPr drop
  FPA or FNA.
- ``HOTA = sqrt(DetA * AssA)``; ``LocA`` is the mean IoU of the true positives.

Reported values are the means over the 19 alphas. Sequences combine the
official way: TP/FN/FP summed per alpha, AssA/AssRe/AssPr and LocA averaged
weighted by each sequence's TP at that alpha, then HOTA recomputed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from deeptrack.eval.preprocess import EPS, PreparedSequence

#: The 19 localisation thresholds; built like the official code so the floats agree.
ALPHAS = np.arange(0.05, 0.99, 0.05)


def _zeros() -> NDArray[np.float64]:
    return np.zeros(len(ALPHAS))


def _ones() -> NDArray[np.float64]:
    return np.ones(len(ALPHAS))


@dataclass(frozen=True)
class HotaMetrics:
    """HOTA per alpha (arrays of shape (19,), see ``ALPHAS``) and their means.

    Attributes:
        tp: true positives per alpha.
        fn: false negatives per alpha.
        fp: false positives per alpha.
        ass_a: association accuracy per alpha.
        ass_re: association recall per alpha.
        ass_pr: association precision per alpha.
        loc_a: localisation accuracy (mean IoU of the TPs) per alpha; 1 without TPs.
    """

    tp: NDArray[np.float64]
    fn: NDArray[np.float64]
    fp: NDArray[np.float64]
    ass_a: NDArray[np.float64]
    ass_re: NDArray[np.float64]
    ass_pr: NDArray[np.float64]
    loc_a: NDArray[np.float64]

    @classmethod
    def empty(cls, n_gt: int = 0, n_res: int = 0) -> HotaMetrics:
        """Metrics of a sequence where one side has no boxes."""
        return cls(_zeros(), n_gt * _ones(), n_res * _ones(), _zeros(), _zeros(), _zeros(),
                   _ones())

    @property
    def det_re_alpha(self) -> NDArray[np.float64]:
        """Detection recall per alpha."""
        return self.tp / np.maximum(1.0, self.tp + self.fn)

    @property
    def det_pr_alpha(self) -> NDArray[np.float64]:
        """Detection precision per alpha."""
        return self.tp / np.maximum(1.0, self.tp + self.fp)

    @property
    def det_a_alpha(self) -> NDArray[np.float64]:
        """Detection accuracy per alpha."""
        return self.tp / np.maximum(1.0, self.tp + self.fn + self.fp)

    @property
    def hota_alpha(self) -> NDArray[np.float64]:
        """HOTA per alpha."""
        return np.sqrt(self.det_a_alpha * self.ass_a)

    @property
    def hota(self) -> float:
        """HOTA averaged over alpha."""
        return float(np.mean(self.hota_alpha))

    @property
    def det_a(self) -> float:
        """DetA averaged over alpha."""
        return float(np.mean(self.det_a_alpha))

    @property
    def ass_a_mean(self) -> float:
        """AssA averaged over alpha."""
        return float(np.mean(self.ass_a))

    @property
    def det_re(self) -> float:
        """DetRe averaged over alpha."""
        return float(np.mean(self.det_re_alpha))

    @property
    def det_pr(self) -> float:
        """DetPr averaged over alpha."""
        return float(np.mean(self.det_pr_alpha))

    @property
    def ass_re_mean(self) -> float:
        """AssRe averaged over alpha."""
        return float(np.mean(self.ass_re))

    @property
    def ass_pr_mean(self) -> float:
        """AssPr averaged over alpha."""
        return float(np.mean(self.ass_pr))

    @property
    def loc_a_mean(self) -> float:
        """LocA averaged over alpha."""
        return float(np.mean(self.loc_a))

    @classmethod
    def combine(cls, parts: Sequence[HotaMetrics]) -> HotaMetrics:
        """Combine sequences: counts summed, association and LocA TP-weighted."""
        if not parts:
            return cls.empty()
        tp = np.sum([p.tp for p in parts], axis=0)

        def weighted(field: str) -> NDArray[np.float64]:
            total = np.sum([getattr(p, field) * p.tp for p in parts], axis=0)
            return total / np.maximum(1.0, tp)

        loc_sum = np.sum([p.loc_a * p.tp for p in parts], axis=0)
        return cls(
            tp=tp,
            fn=np.sum([p.fn for p in parts], axis=0),
            fp=np.sum([p.fp for p in parts], axis=0),
            ass_a=weighted("ass_a"),
            ass_re=weighted("ass_re"),
            ass_pr=weighted("ass_pr"),
            loc_a=np.maximum(1e-10, loc_sum) / np.maximum(1e-10, tp),
        )

    def to_dict(self) -> dict[str, float]:
        """The alpha-averaged scores (fractions) as plain numbers."""
        return {
            "hota": self.hota, "deta": self.det_a, "assa": self.ass_a_mean,
            "loca": self.loc_a_mean, "detre": self.det_re, "detpr": self.det_pr,
            "assre": self.ass_re_mean, "asspr": self.ass_pr_mean,
        }


def hota(seq: PreparedSequence) -> HotaMetrics:
    """Compute HOTA and its sub-metrics for one preprocessed sequence."""
    n_gt, n_res = seq.n_gt_dets, seq.n_res_dets
    if n_gt == 0 or n_res == 0:
        return HotaMetrics.empty(n_gt, n_res)
    n_r = seq.n_res_ids
    gt_count = np.bincount(np.concatenate(seq.gt_ids), minlength=seq.n_gt_ids).astype(float)
    res_count = np.bincount(np.concatenate(seq.res_ids), minlength=n_r).astype(float)

    # Global alignment of id pairs, kept sparse: only pairs that ever overlap.
    pair_keys, pair_weights, frame_pairs = [], [], []
    for g, r, sim in zip(seq.gt_ids, seq.res_ids, seq.similarity, strict=True):
        if sim.size == 0:
            frame_pairs.append(None)
            continue
        denom = sim.sum(axis=0)[None, :] + sim.sum(axis=1)[:, None] - sim
        weight = np.zeros_like(sim)
        ok = denom > EPS
        weight[ok] = sim[ok] / denom[ok]
        rows, cols = np.nonzero(sim > 0)
        frame_pairs.append((rows, cols))
        pair_keys.append(g[rows] * n_r + r[cols])
        pair_weights.append(weight[rows, cols])
    keys = np.concatenate(pair_keys) if pair_keys else np.zeros(0, np.int64)
    uniq, inverse = np.unique(keys, return_inverse=True)
    co = np.zeros(len(uniq))
    # unbuffered, in frame order: the same additions as a dense running sum
    np.add.at(co, inverse, np.concatenate(pair_weights) if pair_weights else np.zeros(0))
    alignment = co / (gt_count[uniq // n_r] + res_count[uniq % n_r] - co)

    tp, fn, fp, loc_sum = _zeros(), _zeros(), _zeros(), _zeros()
    m_keys, m_sims = [], []
    offset = 0
    for g, r, sim, pairs in zip(seq.gt_ids, seq.res_ids, seq.similarity, frame_pairs,
                                strict=True):
        if len(g) == 0 or len(r) == 0:
            fp += len(r)
            fn += len(g)
            continue
        rows, cols = pairs
        score = np.zeros_like(sim)
        score[rows, cols] = alignment[inverse[offset:offset + len(rows)]] * sim[rows, cols]
        offset += len(rows)
        mr, mc = linear_sum_assignment(-score)
        msim = sim[mr, mc]
        hit = msim[None, :] >= ALPHAS[:, None] - EPS  # (alphas, matches)
        n_hit = hit.sum(axis=1)
        tp += n_hit
        fn += len(g) - n_hit
        fp += len(r) - n_hit
        loc_sum += (hit * msim[None, :]).sum(axis=1)
        m_keys.append(g[mr] * n_r + r[mc])
        m_sims.append(msim)

    # No frame with both ground truth and results: no match at all (not an error).
    all_keys = np.concatenate(m_keys) if m_keys else np.zeros(0, np.int64)
    all_sims = np.concatenate(m_sims) if m_sims else np.zeros(0)
    ass_a, ass_re, ass_pr = _zeros(), _zeros(), _zeros()
    for a, alpha in enumerate(ALPHAS):
        pairs, count = np.unique(all_keys[all_sims >= alpha - EPS], return_counts=True)
        count = count.astype(float)
        gc = gt_count[pairs // n_r]
        rc = res_count[pairs % n_r]
        denom = max(1.0, tp[a])
        ass_a[a] = np.sum(count * count / np.maximum(1.0, gc + rc - count)) / denom
        ass_re[a] = np.sum(count * count / np.maximum(1.0, gc)) / denom
        ass_pr[a] = np.sum(count * count / np.maximum(1.0, rc)) / denom
    loc_a = np.maximum(1e-10, loc_sum) / np.maximum(1e-10, tp)
    return HotaMetrics(tp, fn, fp, ass_a, ass_re, ass_pr, loc_a)
