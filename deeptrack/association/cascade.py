"""DeepSORT's matching cascade (Wojke et al. 2017, sec. 2.3) on the admissible pairs.

Tracks seen most recently choose first: the tracks with the smallest
``frames_since_update`` are assigned among all detections, the next group
among the detections left, and so on. This stops a track lost for long (its
covariance, hence its gate, has grown) from taking a detection from a track
seen one frame ago. The dense formulation :func:`cascade` must agree with is
:func:`deeptrack.association.oracle.matching_cascade`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from deeptrack.association.assign import ContestedSolver, Pairs, assign, solve_dense

__all__ = ["cascade"]

#: ``cost_of(rows, cols) -> (len(rows),) float costs`` of the pairs asked for.
PairCost = Callable[[NDArray[np.int64], NDArray[np.int64]], NDArray[np.float64]]


def cascade(
    rows: NDArray[np.int64],
    cols: NDArray[np.int64],
    cost_of: PairCost,
    frames_since_update: NDArray[np.int64],
    n_dets: int,
    max_cost: float,
) -> Pairs:
    """Match tracks to detections in order of recency, costing only the pairs it can use.

    The first level (the tracks seen most recently, usually nearly all of
    them) is matched first; later levels only see the detections it left, so
    the pairs of older tracks with detections already taken, often most of
    their pairs since their gates have grown, are never costed. The later
    levels compete for few detections; their contested pairs go through the
    dense cascade.

    Args:
        rows: (P,) track row of each admissible pair (pairs distinct).
        cols: (P,) detection of each pair.
        cost_of: computes the costs of the pairs asked for (each pair is
            asked for at most once).
        frames_since_update: (T,) misses of each track (after this frame's predict).
        n_dets: number of detections N.
        max_cost: pairs costing more are not matched.

    Returns:
        Matched (track rows, detections), in no particular order.
    """
    levels = np.asarray(frames_since_update)
    n_tracks = len(levels)
    if len(rows) == 0:
        return rows, cols
    lv = levels[rows]
    top = lv == lv.min()
    if top.all():
        return assign(rows, cols, cost_of(rows, cols), n_tracks, n_dets, max_cost)
    r, c = rows[top], cols[top]
    r1, c1 = assign(r, c, cost_of(r, c), n_tracks, n_dets, max_cost)
    taken = np.zeros(n_dets, bool)
    taken[c1] = True
    rest = ~top & ~taken[cols]
    if not rest.any():
        return r1, c1
    r, c = rows[rest], cols[rest]
    cost = cost_of(r, c)
    ok = cost <= max_cost  # often none: a lost track's gate holds only false positives
    if not ok.any():
        return r1, c1
    r2, c2 = assign(r[ok], c[ok], cost[ok], n_tracks, n_dets, max_cost,
                    _contested_cascade(levels, max_cost))
    return np.concatenate([r1, r2]), np.concatenate([c1, c2])


def _contested_cascade(levels: NDArray[np.int64], max_cost: float) -> ContestedSolver:
    """The solver :func:`assign` calls on the competing pairs of later levels: a dense cascade."""

    def solve(cost: NDArray[np.float64], sub_rows: NDArray[np.int64]) -> Pairs:
        return _cascade_dense(cost, levels[sub_rows], max_cost)

    return solve


def _cascade_dense(
    cost: NDArray[np.float64], levels: NDArray[np.int64], max_cost: float
) -> Pairs:
    """The cascade on a small dense (R, C) problem; matched (rows, cols) in level order."""
    free = np.arange(cost.shape[1])
    out_r, out_c = [], []
    for level in np.unique(levels):
        if len(free) == 0:
            break
        rows = np.flatnonzero(levels == level)
        sub = cost[np.ix_(rows, free)]
        if not (sub <= max_cost).any():  # nothing admissible: solving would match nothing
            continue
        r, c = solve_dense(sub, max_cost)
        out_r.append(rows[r])
        out_c.append(free[c])
        used = np.zeros(len(free), bool)
        used[c] = True
        free = free[~used]
    if not out_r:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(out_r), np.concatenate(out_c)
