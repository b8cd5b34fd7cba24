"""The tests' oracle: dense reference formulations of the association stage.

Nothing in the library imports this module. Each function here is the
textbook (T, N)-matrix form of something the hot path computes sparsely and
lazily (:func:`~deeptrack.association.assign.assign`,
:func:`~deeptrack.association.cascade.cascade`,
:meth:`~deeptrack.association.gallery.Gallery.pair_cost`); the tests check
the fast versions against these on hand-made and random problems. They are
written independently of the fast code (none calls it), so a bug in one is
not copied into the other, and they favour plainness over speed.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from deeptrack.types import Matches

__all__ = ["cosine_cost", "matches", "matching_cascade", "solve"]


def cosine_cost(a: NDArray[np.float32], b: NDArray[np.float32]) -> NDArray[np.float32]:
    """Return the (T, N) cosine distance ``1 - a.b`` between unit rows of (T, D) and (N, D)."""
    return 1.0 - a @ b.T


def solve(
    cost: NDArray[np.floating],
    max_cost: float,
    track_idx: NDArray[np.int64] | None = None,
    det_idx: NDArray[np.int64] | None = None,
) -> Matches:
    """Solve the linear assignment on ``cost`` and drop pairs costing more than ``max_cost``.

    DeepSORT's rule: every entry above ``max_cost`` is set to ``max_cost +
    1e-5`` before solving, so inadmissible pairs cannot distort the optimum
    among the admissible ones.

    Args:
        cost: (T, N) cost matrix; gated pairs hold a large finite value.
        max_cost: pairs with a cost above this are not matched.
        track_idx: (T,) labels of the rows to report (default ``arange(T)``).
        det_idx: (N,) labels of the columns to report (default ``arange(N)``).

    Returns:
        Matches in terms of ``track_idx``/``det_idx`` labels.
    """
    t, n = cost.shape
    track_idx = np.arange(t) if track_idx is None else np.asarray(track_idx, np.int64)
    det_idx = np.arange(n) if det_idx is None else np.asarray(det_idx, np.int64)
    if t == 0 or n == 0:
        return Matches(np.zeros((0, 2), np.int64), track_idx.copy(), det_idx.copy())
    rows, cols = linear_sum_assignment(np.where(cost > max_cost, max_cost + 1e-5, cost))
    ok = cost[rows, cols] <= max_cost
    rows, cols = rows[ok], cols[ok]
    return Matches(
        np.stack([track_idx[rows], det_idx[cols]], axis=1).astype(np.int64),
        np.delete(track_idx, rows),
        np.delete(det_idx, cols),
    )


def matching_cascade(
    cost: NDArray[np.float64],
    frames_since_update: NDArray[np.int64],
    max_cost: float,
    track_idx: NDArray[np.int64] | None = None,
) -> Matches:
    """Match tracks to detections in order of recency (DeepSORT's matching cascade).

    The tracks with the smallest ``frames_since_update`` are assigned by
    :func:`solve` among all detections, the next group among the detections
    left, and so on.

    Args:
        cost: (T, N) gated costs.
        frames_since_update: (T,) misses of each track.
        max_cost: pairs above it are not matched.
        track_idx: (T,) labels of the rows (default ``arange(T)``).

    Returns:
        Matches with detections labelled ``0..N-1`` and tracks by ``track_idx``.
    """
    t, n = cost.shape
    track_idx = np.arange(t) if track_idx is None else np.asarray(track_idx, np.int64)
    levels = np.asarray(frames_since_update)
    pairs = [np.zeros((0, 2), np.int64)]
    free = np.arange(n)
    for level in sorted(set(levels.tolist())):
        rows = np.flatnonzero(levels == level)
        m = solve(cost[np.ix_(rows, free)], max_cost, rows, free)
        pairs.append(m.pairs)
        free = m.unmatched_detections
    found = np.concatenate(pairs)
    matched = np.isin(np.arange(t), found[:, 0])
    found[:, 0] = track_idx[found[:, 0]]
    return Matches(found, track_idx[~matched], free)


def matches(rows: NDArray[np.int64], cols: NDArray[np.int64], n_rows: int, n_cols: int) -> Matches:
    """Return the matched ``rows``/``cols`` of an (n_rows, n_cols) problem as sorted Matches."""
    order = np.argsort(rows, kind="stable")
    pairs = np.stack([rows[order], cols[order]], axis=1).astype(np.int64).reshape(-1, 2)
    return Matches(pairs, np.setdiff1d(np.arange(n_rows), rows).astype(np.int64),
                   np.setdiff1d(np.arange(n_cols), cols).astype(np.int64))
