"""Detection scores as ranks: thresholds that hold for any detector's score scale.

Detectors score on different scales: ACF's scores are unbounded (about -1 to
150 on MOT15), Faster R-CNN's lie in 0.5-1. A threshold on a score's rank
among the sequence's recent scores means the same thing for both, and is
learned online from the scores seen so far (no future frames).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


class ScoreHistory:
    """A bounded window of the most recent detection scores of a sequence.

    Args:
        capacity: how many recent scores are kept (a ring buffer), so memory
            stays flat on sequences of any length.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._buf = np.empty(capacity, np.float64)
        self._size = 0
        self._next = 0

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        """Bytes held by the window."""
        return self._buf.nbytes

    def threshold(self, quantile: float, scores: NDArray[np.float64]) -> float:
        """Return the ``quantile`` of the window with ``scores`` added, without adding them.

        The quantile is the order statistic ``floor(quantile * n)`` (0-based)
        of the ``n`` scores, so with ``quantile`` q a score ranks at or above
        it when at most a fraction q of the scores lie strictly below it.
        """
        pool = np.concatenate([self._buf[:self._size], scores])
        if len(pool) == 0:
            return -np.inf
        k = min(int(np.floor(quantile * len(pool))), len(pool) - 1)
        return float(np.partition(pool, k)[k])

    def add(self, scores: NDArray[np.float64]) -> None:
        """Append ``scores``, dropping the oldest ones beyond the capacity."""
        cap = len(self._buf)
        scores = np.asarray(scores, np.float64)[-cap:]
        k = len(scores)
        if k == 0:
            return
        idx = (self._next + np.arange(k)) % cap
        self._buf[idx] = scores
        self._next = (self._next + k) % cap
        self._size = min(cap, self._size + k)
