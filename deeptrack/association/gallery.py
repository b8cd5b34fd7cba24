"""Bounded per-track appearance memory and its nearest-neighbour cosine cost.

All tracks' features live in one ``(slots, B, D)`` float32 array, with a
count per slot, so memory depends on the number of live tracks and the
budget, never on the sequence length. Slots of deleted tracks are reused.

Two memories (DeepSORT and StrongSORT):

- ``gallery``: the last ``budget`` embeddings of each track (a ring buffer);
  the cost of a pair is the smallest cosine distance to any of them.
- ``ema``: one exponential moving average per track, re-normalised;
  ``B = 1``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from deeptrack.association.costs import GATED


class Gallery:
    """Feature store for up to any number of tracks, each bounded by ``budget`` vectors.

    Args:
        budget: vectors kept per track (``gallery`` memory).
        memory: ``"gallery"`` or ``"ema"``.
        ema_alpha: EMA momentum; ``new = alpha * old + (1 - alpha) * x``.
    """

    def __init__(self, budget: int = 100, memory: str = "gallery", ema_alpha: float = 0.9):
        if memory not in ("gallery", "ema"):
            raise ValueError(f"memory must be 'gallery' or 'ema', got {memory!r}")
        self.budget = budget if memory == "gallery" else 1
        self.memory = memory
        self.ema_alpha = ema_alpha
        self.dim: int | None = None
        self._store = np.zeros((0, self.budget, 0), np.float32)
        self._count = np.zeros(0, np.int64)
        self._pos = np.zeros(0, np.int64)
        self._free: list[int] = []

    @property
    def nbytes(self) -> int:
        """Bytes held by the store and its counters."""
        return self._store.nbytes + self._count.nbytes + self._pos.nbytes

    def allocate(self, n: int, dim: int) -> NDArray[np.int64]:
        """Reserve ``n`` empty slots for new tracks of embedding dimension ``dim``."""
        if self.dim is None:
            self.dim = dim
            self._store = np.zeros((0, self.budget, dim), np.float32)
        missing = n - len(self._free)
        if missing > 0:
            old = len(self._count)
            new_cap = max(old * 2, old + missing, 8)
            store = np.zeros((new_cap, self.budget, self.dim), np.float32)
            store[:old] = self._store
            self._store = store
            self._count = np.concatenate([self._count, np.zeros(new_cap - old, np.int64)])
            self._pos = np.concatenate([self._pos, np.zeros(new_cap - old, np.int64)])
            # Lowest slots are handed out first: pop() takes from the end.
            self._free = sorted(set(self._free) | set(range(old, new_cap)), reverse=True)
        slots = np.array([self._free.pop() for _ in range(n)], np.int64)
        self._count[slots] = 0
        self._pos[slots] = 0
        return slots

    def release(self, slots: NDArray[np.int64]) -> None:
        """Return the slots of deleted tracks for reuse."""
        self._free.extend(int(s) for s in slots)
        self._free.sort(reverse=True)

    def add(self, slots: NDArray[np.int64], features: NDArray[np.float32]) -> None:
        """Store one unit vector per slot.

        Args:
            slots: (K,) distinct slots.
            features: (K, D) unit vectors.
        """
        if len(slots) == 0:
            return
        if self.memory == "gallery":
            self._store[slots, self._pos[slots]] = features
            self._pos[slots] = (self._pos[slots] + 1) % self.budget
        else:
            old = self._store[slots, 0]
            first = (self._count[slots] == 0)[:, None]
            mixed = np.where(first, features, self.ema_alpha * old + (1 - self.ema_alpha) * features)
            norm = np.linalg.norm(mixed, axis=1, keepdims=True)
            mixed /= np.where(norm > 0, norm, 1.0)  # zero vectors (no evidence) stay zero
            self._store[slots, 0] = mixed
        self._count[slots] = np.minimum(self._count[slots] + 1, self.budget)

    def cost(
        self, slots: NDArray[np.int64], features: NDArray[np.float32], admissible: NDArray[np.bool_]
    ) -> NDArray[np.float64]:
        """Smallest cosine distance from each detection to each track's memory.

        Only admissible pairs are computed: with motion gating this is a few
        detections per track, which is what makes full 100-vector galleries
        of 2048-d embeddings affordable per frame. The result equals the
        dense computation on those pairs.

        Args:
            slots: (T,) the tracks' slots.
            features: (N, D) detection unit vectors.
            admissible: (T, N) pairs to compute; the rest get ``GATED``.

        Returns:
            (T, N) float64 costs.
        """
        t, n = admissible.shape
        cost = np.full((t, n), GATED)
        if t == 0 or n == 0:
            return cost
        if self.memory == "ema":
            dense = 1.0 - self._store[slots, 0] @ features.T
            return np.where(admissible & (self._count[slots] > 0)[:, None], dense, GATED)
        rows, cols = np.nonzero(admissible)  # row-major: each track's pairs are contiguous
        if len(rows) == 0:
            return cost
        cuts = np.flatnonzero(np.diff(rows)) + 1
        for lo, hi in zip([0, *cuts.tolist()], [*cuts.tolist(), len(rows)]):
            i = rows[lo]
            k = self._count[slots[i]]
            if k == 0:
                continue
            c = cols[lo:hi]
            cost[i, c] = 1.0 - (self._store[slots[i], :k] @ features[c].T).max(axis=0)
        return cost

    def features(self, slot: int) -> NDArray[np.float32]:
        """Return a copy of the vectors stored for one slot (oldest order not guaranteed)."""
        return self._store[slot, : self._count[slot]].copy()
