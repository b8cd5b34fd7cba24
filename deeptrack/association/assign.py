"""Minimum-cost assignment over the admissible (track, detection) pairs (the hot path).

Problems arrive as a sparse list of pairs: motion gating admits a few
detections per track, so the (T, N) matrix is mostly ``GATED``. The dense
formulation these functions must agree with is
:func:`deeptrack.association.oracle.solve`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from deeptrack.association.costs import GATED

__all__ = ["NO_PAIRS", "Pairs", "assign", "solve_dense"]

#: Matched (rows, cols): two int64 arrays of equal length.
Pairs = tuple[NDArray[np.int64], NDArray[np.int64]]

#: No match; shared, hence read-only.
NO_PAIRS: Pairs = (np.zeros(0, np.int64), np.zeros(0, np.int64))
for _a in NO_PAIRS:
    _a.flags.writeable = False

#: ``solve(cost, rows)``: match a dense (R, C) sub-problem whose rows are ``rows``
#: of the whole problem; return local (r, c) indices into it.
ContestedSolver = Callable[[NDArray[np.float64], NDArray[np.int64]], Pairs]


def solve_dense(cost: NDArray[np.floating], max_cost: float) -> Pairs:
    """Solve the linear assignment on a dense ``cost``; keep pairs costing at most ``max_cost``.

    As in DeepSORT, every entry above ``max_cost`` is first set to just
    above it, so inadmissible pairs cannot distort the optimum among the
    admissible ones: the pairs kept are a maximum-weight matching of the
    admissible pairs with weights ``max_cost + 1e-5 - cost``.

    Args:
        cost: (R, C) float costs, R and C >= 1; gated pairs hold ``GATED``.
        max_cost: pairs costing more are not matched.

    Returns:
        Matched (rows, cols), rows ascending.
    """
    clipped = np.where(cost > max_cost, max_cost + 1e-5, cost)
    rows, cols = linear_sum_assignment(clipped)
    ok = cost[rows, cols] <= max_cost
    return rows[ok].astype(np.int64, copy=False), cols[ok].astype(np.int64, copy=False)


def assign(
    rows: NDArray[np.int64],
    cols: NDArray[np.int64],
    cost: NDArray[np.floating],
    n_rows: int,
    n_cols: int,
    max_cost: float,
    contested: ContestedSolver | None = None,
) -> Pairs:
    """Match the listed pairs as :func:`solve_dense` would on the whole (n_rows, n_cols) matrix.

    The matrix holding ``cost`` at the listed pairs and ``GATED`` elsewhere is
    never built. A pair whose track and detection admit nothing else belongs
    to every optimum (weights are positive on admissible pairs), so it is
    matched directly; only the pairs that compete for a track or a detection
    go to a solver, on the rows and columns they involve. The answer is the
    dense one up to the choice among equally good optima.

    Args:
        rows: (P,) row of each pair, in ``0..n_rows-1``; pairs are distinct.
        cols: (P,) column of each pair, in ``0..n_cols-1``.
        cost: (P,) float costs.
        n_rows: rows of the whole problem.
        n_cols: columns of the whole problem.
        max_cost: pairs costing more are not matched.
        contested: solver of the competing pairs' dense sub-problem (default
            :func:`solve_dense`; the matching cascade passes its own).

    Returns:
        Matched (rows, cols), in no particular order.
    """
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
    if contested is None:
        mr, mc = solve_dense(sub, max_cost)
    else:
        mr, mc = contested(sub, sub_rows)
    return (np.concatenate([rows[alone], sub_rows[mr]]),
            np.concatenate([cols[alone], sub_cols[mc]]))
