"""Minimum-cost assignment with a threshold (Hungarian, scipy)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from deeptrack.types import Matches


def solve(
    cost: NDArray[np.floating],
    max_cost: float,
    track_idx: NDArray[np.int64] | None = None,
    det_idx: NDArray[np.int64] | None = None,
) -> Matches:
    """Solve the linear assignment on ``cost`` and drop pairs costing more than ``max_cost``.

    As in DeepSORT, every entry above ``max_cost`` is first clipped to just
    above it, so inadmissible pairs cannot distort the optimum among the
    admissible ones.

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
    clipped = np.minimum(cost, max_cost + 1e-5)
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
