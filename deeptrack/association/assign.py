"""Minimum-cost assignment with a threshold (Hungarian, scipy)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from deeptrack.types import Matches

#: Cost of an inadmissible pair. Finite, because scipy's linear_sum_assignment
#: refuses rows that are all ``inf``, and far above any real cost.
GATED = 1e5


def solve(
    cost: NDArray[np.floating],
    max_cost: float,
    track_idx: NDArray[np.int64] | None = None,
    det_idx: NDArray[np.int64] | None = None,
) -> Matches:
    """Solve the linear assignment on ``cost`` and drop pairs costing more than ``max_cost``.

    As in DeepSORT, every entry above ``max_cost`` is first set to just
    above it, so inadmissible pairs cannot distort the optimum among the
    admissible ones: the matches kept are then a maximum-weight matching of
    the admissible pairs with weights ``max_cost + 1e-5 - cost``.

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
    clipped = np.where(cost > max_cost, max_cost + 1e-5, cost)
    rows, cols = linear_sum_assignment(clipped)
    ok = cost[rows, cols] <= max_cost
    rows, cols = rows[ok], cols[ok]
    row_used = np.zeros(t, bool)
    row_used[rows] = True
    col_used = np.zeros(n, bool)
    col_used[cols] = True
    return Matches(
        np.stack([track_idx[rows], det_idx[cols]], axis=1).astype(np.int64),
        track_idx[~row_used],
        det_idx[~col_used],
    )


def solve_pairs(
    rows: NDArray[np.int64],
    cols: NDArray[np.int64],
    cost: NDArray[np.floating],
    n_rows: int,
    n_cols: int,
    max_cost: float,
    dense_solver: Callable[..., Matches] | None = None,
) -> Matches:
    """:func:`solve` for a sparse cost: only the listed pairs may match.

    Gives the matches :func:`solve` gives on the dense (n_rows, n_cols)
    matrix holding ``cost`` at the listed pairs and ``GATED`` elsewhere
    (up to the choice among equally good optima), without building it: the
    optimum is a maximum-weight matching of the admissible pairs (see
    :func:`solve`), and a pair whose track and detection admit nothing else
    belongs to every such matching. Only the pairs that compete for a track
    or a detection go to the Hungarian solver, on the rows and columns
    they involve.

    Args:
        rows: (P,) row of each pair, in ``0..n_rows-1``; pairs are distinct.
        cols: (P,) column of each pair, in ``0..n_cols-1``.
        cost: (P,) costs.
        n_rows, n_cols: size of the problem.
        max_cost: pairs with a cost above this are not matched.
        dense_solver: ``dense_solver(sub_cost, sub_rows, sub_cols) -> Matches``
            for the competing pairs, labelled by ``sub_rows``/``sub_cols``
            (default :func:`solve`; the matching cascade passes itself).

    Returns:
        Matches labelled ``0..n_rows-1`` / ``0..n_cols-1``, pairs sorted by row.
    """
    r, c = match_pairs(rows, cols, cost, n_rows, n_cols, max_cost, dense_solver)
    order = np.argsort(r, kind="stable")
    return matches_from(r[order], c[order], n_rows, n_cols)


def match_pairs(
    rows: NDArray[np.int64],
    cols: NDArray[np.int64],
    cost: NDArray[np.floating],
    n_rows: int,
    n_cols: int,
    max_cost: float,
    dense_solver: Callable[..., Matches] | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The matched (rows, cols) of :func:`solve_pairs`, in no particular order (the hot path)."""
    ok = cost <= max_cost
    if not ok.all():
        rows, cols, cost = rows[ok], cols[ok], cost[ok]
    alone = (np.bincount(rows, minlength=n_rows)[rows] == 1) & (
        np.bincount(cols, minlength=n_cols)[cols] == 1)
    if alone.all():
        return rows, cols
    rest = ~alone
    sub_rows, r = np.unique(rows[rest], return_inverse=True)
    sub_cols, c = np.unique(cols[rest], return_inverse=True)
    sub = np.full((len(sub_rows), len(sub_cols)), GATED)
    sub[r, c] = cost[rest]
    m = (solve(sub, max_cost, sub_rows, sub_cols) if dense_solver is None
         else dense_solver(sub, sub_rows, sub_cols))
    return (np.concatenate([rows[alone], m.pairs[:, 0]]),
            np.concatenate([cols[alone], m.pairs[:, 1]]))


def matches_from(
    rows: NDArray[np.int64], cols: NDArray[np.int64], n_rows: int, n_cols: int
) -> Matches:
    """Build :class:`Matches` from matched ``rows``/``cols`` of an (n_rows, n_cols) problem."""
    row_used = np.zeros(n_rows, bool)
    row_used[rows] = True
    col_used = np.zeros(n_cols, bool)
    col_used[cols] = True
    pairs = np.empty((len(rows), 2), np.int64)
    pairs[:, 0] = rows
    pairs[:, 1] = cols
    return Matches(pairs, np.flatnonzero(~row_used), np.flatnonzero(~col_used))
