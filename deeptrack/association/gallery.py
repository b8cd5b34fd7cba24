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
from deeptrack.types import AppearanceMemory

#: trim() calls (frames) the upper half of the store must stay unused before it is given back.
TRIM_AFTER = 1000

#: Gallery size (budget x dim floats) from which the nearest-neighbour cost loops over
#: tracks rather than batching them (see ``Gallery._nearest``).
_LOOP_ABOVE = 16384


class Gallery:
    """Feature store for up to any number of tracks, each bounded by ``budget`` vectors.

    Args:
        budget: vectors kept per track (``gallery`` memory).
        memory: :class:`~deeptrack.types.AppearanceMemory` (or its name).
        ema_alpha: EMA momentum; ``new = alpha * old + (1 - alpha) * x``.
    """

    def __init__(self, budget: int = 100,
                 memory: AppearanceMemory | str = AppearanceMemory.GALLERY,
                 ema_alpha: float = 0.9):
        try:
            memory = AppearanceMemory(memory)
        except ValueError:
            raise ValueError(f"memory must be 'gallery' or 'ema', got {memory!r}") from None
        self.budget = budget if memory is AppearanceMemory.GALLERY else 1
        self.memory = memory
        self.ema_alpha = ema_alpha
        self.dim: int | None = None
        self._store = np.zeros((0, self.budget, 0), np.float32)
        self._count = np.zeros(0, np.int64)
        self._pos = np.zeros(0, np.int64)
        self._free: list[int] = []
        self._idle = 0  # consecutive trim() calls with the upper half of the store unused

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

    def trim(self, patience: int = TRIM_AFTER) -> None:
        """Give back the upper half of the store once it has gone unused ``patience`` calls in a row.

        Call it once per frame. The store doubles when more tracks need a slot
        at once than it holds, so without this its size would be the largest
        number of simultaneous tracks ever seen; with it, storage follows the
        recent number of live tracks. Slots are handed out lowest first, so
        live tracks settle in the lower half and no slot ever moves: a store
        is only cut where every slot is free. The patience keeps a scene whose
        track count hovers near a boundary from copying the store back and
        forth.
        """
        cap = len(self._count)
        half = cap // 2
        k = cap - half  # the upper half is free iff the k largest free slots are exactly it
        if half < 8 or len(self._free) < k or self._free[k - 1] != half:
            self._idle = 0
            return
        self._idle += 1
        if self._idle < patience:
            return
        self._store = self._store[:half].copy()
        self._count = self._count[:half].copy()
        self._pos = self._pos[:half].copy()
        self._free = self._free[k:]
        self._idle = 0

    def add(self, slots: NDArray[np.int64], features: NDArray[np.float32]) -> None:
        """Store one unit vector per slot.

        Args:
            slots: (K,) distinct slots.
            features: (K, D) unit vectors.
        """
        if len(slots) == 0:
            return
        count = self._count[slots]
        if self.memory is AppearanceMemory.GALLERY:
            pos = self._pos[slots]
            self._store[slots, pos] = features
            self._pos[slots] = (pos + 1) % self.budget
        elif not count.any():  # new tracks: the average starts at their (unit) vector
            self._store[slots, 0] = features
        else:
            mixed = self._store[slots, 0]  # a copy (fancy indexing)
            mixed *= self.ema_alpha
            mixed += (1.0 - self.ema_alpha) * features
            first = count == 0
            if first.any():
                mixed[first] = features[first]
            norm = np.sqrt(np.einsum("kd,kd->k", mixed, mixed))
            norm[norm == 0] = 1.0  # zero vectors (no evidence) stay zero
            mixed /= norm[:, None]
            self._store[slots, 0] = mixed
        self._count[slots] = np.minimum(count + 1, self.budget)

    def pair_cost(
        self, slots: NDArray[np.int64], cols: NDArray[np.int64], features: NDArray[np.float32]
    ) -> NDArray[np.float64]:
        """Smallest cosine distance between the pairs (memory ``slots[p]``, ``features[cols[p]]``).

        Only the pairs the caller asks for are computed: with motion gating
        this is a few detections per track, whereas the dense (T, N) product
        with full 100-vector galleries would cost N times more arithmetic.
        A slot with nothing stored yet gives ``GATED``.

        Args:
            slots: (P,) slot of each pair.
            cols: (P,) row of ``features`` of each pair.
            features: (N, D) detection unit vectors.

        Returns:
            (P,) float64 costs ``1 - max_j <m_j, f>`` over the slot's stored vectors.
        """
        p = len(slots)
        if p == 0:
            return np.zeros(0)
        if self.memory is AppearanceMemory.EMA:
            sims = np.einsum("pd,pd->p", self._store[slots, 0], features[cols])
        else:
            sims = self._nearest(slots, cols, features)
        cost = 1.0 - sims.astype(np.float64)
        cost[self._count[slots] == 0] = GATED
        return cost

    def _nearest(self, slots, cols, features) -> NDArray[np.float32]:
        """Largest similarity of each pair's detection to its slot's stored vectors.

        Each slot's stored vectors are read once, with all the detections its
        track admits: reading them, not the arithmetic, is the cost.
        """
        order = np.argsort(slots, kind="stable")
        s_sorted = slots[order]
        first = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
        run = np.diff(np.r_[first, len(slots)])
        out = np.empty(len(slots), np.float32)
        if self.budget * self.dim >= _LOOP_ABOVE:
            # Large galleries (100 x 2048 floats = 800 kB): one product per track; the
            # loop's few microseconds per track are small beside reading the gallery.
            looped = np.ones(len(first), bool)
        else:
            # Small galleries: one batched product over the tracks admitting at most 4
            # detections, rank r of a slot's pairs as column r of a (slots, D, R)
            # right-hand side, R padded to 1, 2 or 4 (OpenBLAS's kernels were 1.5-4x
            # slower at 3 columns than at 4 here); the few tracks admitting more (lost
            # ones, whose gates have grown) are looped.
            looped = run > 4
            self._batched(order, first, run, ~looped, slots, cols, features, out)
        for j in np.flatnonzero(looped).tolist():
            a = first[j]
            idx = order[a:a + run[j]]
            s = s_sorted[a]
            k = self._count[s]
            out[idx] = (self._store[s, :k] @ features[cols[idx]].T).max(axis=0) if k else -np.inf
        return out

    def _batched(self, order, first, run, chosen, slots, cols, features, out) -> None:
        """One product for the tracks ``chosen`` (each admitting at most 4 detections)."""
        if not chosen.any():
            return
        pick = np.repeat(chosen, run)  # pairs of the chosen tracks, in sorted order
        idx = order[pick]
        rank = (np.arange(len(slots)) - np.repeat(first, run))[pick]
        uniq = slots[order[first[chosen]]]
        lo, hi = int(uniq[0]), int(uniq[-1]) + 1
        if hi - lo <= 2 * len(uniq):
            # Live slots are mostly contiguous (the lowest free slot is reused first):
            # reading a few unused galleries in the range costs less than copying.
            block, row = self._store[lo:hi], slots[idx] - lo
            count = self._count[lo:hi]
        else:
            block, row = self._store[uniq], np.repeat(np.arange(len(uniq)), run[chosen])
            count = self._count[uniq]
        width = int(run[chosen].max())
        width = 4 if width == 3 else width
        rhs = np.zeros((len(block), self.dim, width), np.float32)
        rhs[row, :, rank] = features[cols[idx]]
        sims = np.matmul(block, rhs)  # (S, B, width)
        if not (count >= self.budget).all():  # entries past a young slot's count are stale
            sims[np.arange(self.budget)[None, :] >= count[:, None]] = -np.inf
        # A max over the middle axis is slow in numpy; over a contiguous last axis it is not.
        best = np.ascontiguousarray(sims.transpose(0, 2, 1)).max(axis=2)  # (S, width)
        out[idx] = best[row, rank]

    def lagged_cost(self, slot: int, features: NDArray[np.float32],
                    lags: tuple[int, ...]) -> NDArray[np.float64]:
        """Cosine costs of ``features`` to one slot as if it had last been updated ``lag`` ago.

        Row ``i`` is the smallest distance to the vectors stored at least
        ``lags[i] - 1`` updates ago (the newest ones masked), which is what a
        track missed for ``lags[i] - 1`` frames would be compared with. An
        EMA memory cannot be rolled back: every row is its current cost.
        Rows with nothing old enough hold ``GATED``.

        Args:
            slot: the slot.
            features: (N, D) unit vectors.
            lags: increasing lags, each >= 1.

        Returns:
            (len(lags), N) float64 costs.
        """
        k = int(self._count[slot])
        out = np.full((len(lags), len(features)), GATED)
        if k == 0 or len(features) == 0:
            return out
        sims = (self._store[slot, :k] @ features.T).astype(np.float64)  # (k, N)
        if self.memory is AppearanceMemory.EMA:
            out[:] = 1.0 - sims[0]
            return out
        # Stored at position p, a vector is (pos - 1 - p) mod budget updates old.
        age = (self._pos[slot] - 1 - np.arange(k)) % self.budget
        by_age = np.full((k, len(features)), -np.inf)
        by_age[age] = sims
        # Best similarity among the vectors at least a given age old: a reversed running max.
        best = np.maximum.accumulate(by_age[::-1], axis=0)[::-1]
        for i, lag in enumerate(lags):
            if lag - 1 < k:
                out[i] = 1.0 - best[lag - 1]
        return out

    def features(self, slot: int) -> NDArray[np.float32]:
        """Return a copy of the vectors stored for one slot (oldest order not guaranteed)."""
        return self._store[slot, : self._count[slot]].copy()
