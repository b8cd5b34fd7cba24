"""Identity separation without tracking: same- against different-identity distances, as ROC AUC."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from study.common import Mode
from study.data import StudySequence, pca_vectors, pool_all


def roc_auc(positive: NDArray[np.floating], negative: NDArray[np.floating]) -> float:
    """Return P(a same-identity distance < a different-identity distance), ties counting half.

    The Mann-Whitney form of the ROC AUC: rank all distances together
    (ascending, tied values share their average rank); the negatives' rank sum
    minus its smallest possible value counts the (positive, negative) pairs
    ordered correctly.

    Args:
        positive: (P,) distances of same-identity pairs.
        negative: (Q,) distances of different-identity pairs.

    Returns:
        The AUC in [0, 1]; NaN when either side is empty.
    """
    pos = np.asarray(positive, np.float64).ravel()
    neg = np.asarray(negative, np.float64).ravel()
    n_pos, n_neg = len(pos), len(neg)
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    values = np.concatenate([pos, neg])
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)  # 1-based rank of each group's last member
    average_rank = ends - (counts - 1) / 2.0
    rank_sum_neg = average_rank[inverse[n_pos:]].sum()
    return float((rank_sum_neg - n_neg * (n_neg + 1) / 2.0) / (n_pos * n_neg))


def sample_pairs(frames: NDArray[np.int64], ids: NDArray[np.int64], window: int,
                 n_max: int, seed: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Return (same-identity, different-identity) index pairs of boxes 1..window frames apart.

    All pairs (i, j) with ``1 <= frames[j] - frames[i] <= window`` are listed,
    split by identity, and each side is subsampled to at most ``n_max`` pairs
    by a seeded generator (in the listing order, so the choice is reproducible).

    Args:
        frames: (N,) frame numbers, sorted ascending.
        ids: (N,) identities.
        window: largest frame gap.
        n_max: most pairs kept per side.
        seed: seed of the subsampling.

    Returns:
        Two (K, 2) int64 arrays of row indices into ``frames``.
    """
    frames = np.asarray(frames, np.int64)
    lo = np.searchsorted(frames, frames + 1, side="left")
    hi = np.searchsorted(frames, frames + window, side="right")
    n = hi - lo
    first = np.repeat(np.arange(len(frames)), n)
    offsets = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    second = np.repeat(lo, n) + offsets
    pairs = np.stack([first, second], axis=1)
    same = ids[pairs[:, 0]] == ids[pairs[:, 1]]
    rng = np.random.default_rng(seed)
    out = []
    for part in (pairs[same], pairs[~same]):
        if len(part) > n_max:
            part = part[np.sort(rng.choice(len(part), n_max, replace=False))]
        out.append(part)
    return out[0], out[1]


def pair_distances(vectors: NDArray[np.float32], pairs: NDArray[np.int64],
                   chunk: int = 4096) -> NDArray[np.float64]:
    """Cosine distances ``1 - <v_i, v_j>`` of unit rows for (K, 2) index pairs."""
    out = np.empty(len(pairs), np.float64)
    for s in range(0, len(pairs), chunk):
        p = pairs[s:s + chunk]
        out[s:s + chunk] = 1.0 - np.einsum("kd,kd->k", vectors[p[:, 0]], vectors[p[:, 1]])
    return out


def identity_auc(sequences: list[StudySequence], layer: str, modes: Sequence[Mode],
                 window: int, n_pairs: int, seed: int) -> dict[str, Any]:
    """AUC of same- vs different-identity cosine distances on ground-truth boxes, per mode."""
    out: dict[str, Any] = {"pairs": {}, "modes": {}}
    pairs = {}
    for seq in sequences:
        pos, neg = sample_pairs(seq.gt_frames, seq.gt_ids, window, n_pairs, seed)
        pairs[seq.name] = (pos, neg)
        out["pairs"][seq.name] = {"same_identity": len(pos), "different_identity": len(neg)}
    for mode in modes:
        if mode.appearance:
            out["modes"][mode.name] = _mode_separation(sequences, layer, mode, pairs, seed)
    return out


def _mode_separation(sequences: list[StudySequence], layer: str, mode: Mode,
                     pairs: dict[str, tuple[NDArray[np.int64], NDArray[np.int64]]],
                     seed: int) -> dict[str, Any]:
    """One mode's separation per sequence and over all sequences' pairs together."""
    per_seq, all_pos, all_neg = {}, [], []
    for seq in sequences:
        maps = seq.maps[layer]["gt"]
        if mode.pca_dim is not None:
            _, vectors = pca_vectors(maps, mode, seed)
        else:
            vectors = pool_all(maps, mode)
        pos, neg = pairs[seq.name]
        dp, dn = pair_distances(vectors, pos), pair_distances(vectors, neg)
        del vectors
        all_pos.append(dp)
        all_neg.append(dn)
        per_seq[seq.name] = _separation(dp, dn)
    return {"sequences": per_seq, "all": _separation(np.concatenate(all_pos),
                                                      np.concatenate(all_neg))}


def _separation(dp: NDArray[np.float64], dn: NDArray[np.float64]) -> dict[str, float]:
    def q(x: NDArray[np.float64], p: float) -> float:
        return round(float(np.quantile(x, p)), 4) if len(x) else float("nan")

    return {"auc": round(roc_auc(dp, dn), 4), "same_median": q(dp, 0.5),
            "same_p90": q(dp, 0.9), "diff_median": q(dn, 0.5), "diff_p10": q(dn, 0.1)}
