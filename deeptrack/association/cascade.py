"""DeepSORT's association: the matching cascade, then an IoU stage (Wojke et al. 2017, sec. 2.3)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from deeptrack.association.assign import match_pairs, matches_from, solve, solve_pairs
from deeptrack.types import Matches


def matching_cascade(
    cost: NDArray[np.float64],
    frames_since_update: NDArray[np.int64],
    max_cost: float,
    track_idx: NDArray[np.int64] | None = None,
) -> Matches:
    """Match tracks to detections in order of recency.

    Tracks seen most recently choose first: the tracks with the smallest
    ``frames_since_update`` are assigned among all detections, the next
    group among the detections left, and so on. This stops a track that has
    been lost for long (its covariance, hence its gate, has grown) from
    taking a detection from a track seen one frame ago.

    Args:
        cost: (T, N) gated costs.
        frames_since_update: (T,) misses of each track (after this frame's predict).
        max_cost: pairs above it are not matched.
        track_idx: (T,) labels of the rows (default ``arange(T)``).

    Returns:
        Matches with detections labelled ``0..N-1`` and tracks by ``track_idx``.
    """
    t, n = cost.shape
    track_idx = np.arange(t) if track_idx is None else np.asarray(track_idx, np.int64)
    pairs = []
    unmatched_dets = np.arange(n)
    matched_rows = np.zeros(t, bool)
    for level in np.unique(frames_since_update):
        if len(unmatched_dets) == 0:
            break
        rows = np.flatnonzero(frames_since_update == level)
        sub = cost[np.ix_(rows, unmatched_dets)]
        if not (sub <= max_cost).any():  # nothing admissible: solving would match nothing
            continue
        m = solve(sub, max_cost, rows, unmatched_dets)
        if len(m.pairs):
            pairs.append(m.pairs)
            matched_rows[m.pairs[:, 0]] = True
        unmatched_dets = m.unmatched_detections
    pairs_arr = np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64)
    pairs_arr[:, 0] = track_idx[pairs_arr[:, 0]]
    return Matches(pairs_arr, track_idx[~matched_rows], unmatched_dets)


def matching_cascade_pairs(
    rows: NDArray[np.int64],
    cols: NDArray[np.int64],
    cost: NDArray[np.float64],
    frames_since_update: NDArray[np.int64],
    n_dets: int,
    max_cost: float,
) -> Matches:
    """:func:`matching_cascade` for a sparse cost: only the listed pairs may match.

    The cascade's levels only ever compete for detections that two tracks
    both admit, so a pair whose track and detection admit nothing else is
    matched at whatever level its track is; the remaining pairs go through
    :func:`matching_cascade` on the rows and columns they involve. The
    result is the dense cascade's (up to the choice among equally good
    optima), with tracks labelled by row ``0..T-1``.

    Args:
        rows: (P,) track row of each pair (distinct pairs).
        cols: (P,) detection of each pair.
        cost: (P,) costs.
        frames_since_update: (T,) misses of each track.
        n_dets: number of detections.
        max_cost: pairs above it are not matched.
    """
    levels = np.asarray(frames_since_update)
    return solve_pairs(rows, cols, cost, len(levels), n_dets, max_cost,
                       _dense_cascade(levels, max_cost))


def _dense_cascade(levels: NDArray[np.int64], max_cost: float):
    """The dense solver :func:`match_pairs` calls on the competing pairs: the cascade itself."""

    def cascade(sub, sub_rows, sub_cols):
        m = matching_cascade(sub, levels[sub_rows], max_cost, sub_rows)
        return Matches(np.stack([m.pairs[:, 0], sub_cols[m.pairs[:, 1]]], axis=1),
                       m.unmatched_tracks, sub_cols[m.unmatched_detections])

    return cascade


def matching_cascade_lazy(
    rows: NDArray[np.int64],
    cols: NDArray[np.int64],
    cost_of: Callable[[NDArray[np.int64], NDArray[np.int64]], NDArray[np.float64]],
    frames_since_update: NDArray[np.int64],
    n_dets: int,
    max_cost: float,
) -> Matches:
    """:func:`matching_cascade_pairs`, computing the costs only of pairs the cascade can use.

    The first level (the tracks seen most recently, usually nearly all of
    them) is matched first; later levels only see the detections it left,
    so the pairs of older tracks with detections already taken, often most
    of their pairs since their gates have grown, are never costed.

    Args:
        rows, cols: (P,) the admissible pairs (distinct).
        cost_of: ``cost_of(rows, cols) -> (len(rows),) costs``.
        frames_since_update: (T,) misses of each track.
        n_dets: number of detections.
        max_cost: pairs above it are not matched.
    """
    r, c = cascade_lazy(rows, cols, cost_of, frames_since_update, n_dets, max_cost)
    order = np.argsort(r, kind="stable")
    return matches_from(r[order], c[order], len(frames_since_update), n_dets)


def cascade_lazy(rows, cols, cost_of, frames_since_update, n_dets, max_cost):
    """The matched (rows, cols) of :func:`matching_cascade_lazy`, unordered (the hot path)."""
    levels = np.asarray(frames_since_update)
    n_tracks = len(levels)
    if len(rows) == 0:
        return rows, cols
    lv = levels[rows]
    top = lv == lv.min()
    if top.all():
        return match_pairs(rows, cols, cost_of(rows, cols), n_tracks, n_dets, max_cost)
    r, c = rows[top], cols[top]
    r1, c1 = match_pairs(r, c, cost_of(r, c), n_tracks, n_dets, max_cost)
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
    r2, c2 = match_pairs(r[ok], c[ok], cost[ok], n_tracks, n_dets, max_cost,
                         _dense_cascade(levels, max_cost))
    return np.concatenate([r1, r2]), np.concatenate([c1, c2])
