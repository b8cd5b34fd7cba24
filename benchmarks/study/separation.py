"""Identity separation without tracking: same- against different-identity distances, as ROC AUC."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from study.common import Mode
from study.data import StudySequence, pool_all


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


def frame_vectors(frame_maps: Sequence[NDArray[np.floating]], mode: Mode) -> list[NDArray[np.float32]]:
    """Pool every frame's maps with ``mode``; one (N_i, D) array per frame (empty ones too)."""
    rows = pool_all(frame_maps, mode)
    bounds = np.cumsum([0, *(len(m) for m in frame_maps)])
    return [rows[bounds[i]:bounds[i + 1]] if bounds[i + 1] > bounds[i]
            else np.zeros((0, rows.shape[1]), np.float32) for i in range(len(frame_maps))]


def adapted_vectors(frames: list[NDArray[np.float32]], ids: list[NDArray[np.int64]],
                    adaptation: str, prior: float | None = None) -> NDArray[np.float32]:
    """The vectors as the tracker's online adapter turns them, frame by frame; rows in order.

    ``benchmarks/adaptation_auc.py``'s causal pass (this frame and earlier ones
    only); with ``centre_scale`` the ground-truth identities stand in for the
    tracker's tracks. ``prior``: the adapter's safeguard
    (``TrackerConfig.adaptation_prior``); None for the adapter's default.
    """
    from adaptation_auc import adapted

    if not any(len(v) for v in frames):
        return np.zeros((0, frames[0].shape[1] if frames else 1), np.float32)
    return adapted(frames, ids, adaptation, prior=prior)


def identity_auc(sequences: list[StudySequence], modes: Sequence[Mode],
                 adaptations: Sequence[str], window: int, n_pairs: int,
                 seed: int, layer_of: Callable[[Mode], str],
                 prior: float | None = None) -> dict[str, Any]:
    """AUC of same- vs different-identity cosine distances on ground-truth boxes.

    Args:
        sequences: with ``maps[layer]["gt"]`` filled for every mode's layer.
        modes: appearance modes; each pools the maps of ``layer_of(mode)``.
        adaptations: ``TrackerConfig.adaptation`` values, each applied causally.
        prior: the adapter's safeguard, as the tracker's ``adaptation_prior``.
        window, n_pairs, seed: the pairs (:func:`sample_pairs`).

    Returns:
        ``{"pairs": {sequence: counts}, "modes": {mode: {adaptation: {"sequences":
        {sequence: separation}, "all": separation}}}}``.
    """
    out: dict[str, Any] = {"pairs": {}, "modes": {}}
    pairs, ids = {}, {}
    for seq in sequences:
        pos, neg = sample_pairs(seq.gt_frames, seq.gt_ids, window, n_pairs, seed)
        pairs[seq.name] = (pos, neg)
        starts = np.searchsorted(seq.gt_frames, np.arange(1, len(seq.first) + 2))
        ids[seq.name] = [seq.gt_ids[starts[i]:starts[i + 1]] for i in range(len(seq.first))]
        out["pairs"][seq.name] = {"same_identity": len(pos), "different_identity": len(neg)}
    for mode in modes:
        dist: dict[str, tuple[list, list, dict]] = {a: ([], [], {}) for a in adaptations}
        for seq in sequences:
            frames = frame_vectors(seq.maps[layer_of(mode)]["gt"], mode)
            pos, neg = pairs[seq.name]
            for a in adaptations:
                v = adapted_vectors(frames, ids[seq.name], a, prior)
                dp, dn = pair_distances(v, pos), pair_distances(v, neg)
                dist[a][0].append(dp)
                dist[a][1].append(dn)
                dist[a][2][seq.name] = _separation(dp, dn)
            del frames
        out["modes"][mode.name] = {
            a: {"sequences": per_seq, "all": _separation(np.concatenate(dp), np.concatenate(dn))}
            for a, (dp, dn, per_seq) in dist.items()}
    return out


def _separation(dp: NDArray[np.float64], dn: NDArray[np.float64]) -> dict[str, float]:
    def q(x: NDArray[np.float64], p: float) -> float:
        return round(float(np.quantile(x, p)), 4) if len(x) else float("nan")

    return {"auc": round(roc_auc(dp, dn), 4), "same_median": q(dp, 0.5),
            "same_p90": q(dp, 0.9), "diff_median": q(dn, 0.5), "diff_p10": q(dn, 0.1)}
