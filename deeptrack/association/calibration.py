"""Appearance evidence calibrated on the sequence itself, online, with no threshold.

A cosine distance means nothing by itself: ImageNet RoI vectors of two
different people may lie 0.1 apart, re-ID vectors of the same person 0.3.
The sequence labels pairs for free, frame by frame:

- **same identity**: a track seen on the previous frame and a detection
  whose box overlaps its predicted box strongly, with no other track or
  detection near either of them (motion alone is then unambiguous);
- **different identities**: that same track and every other detection of
  the frame that does not overlap its partner (one object, one box).

Both distances are the ones the association uses (the track's appearance
memory against a detection), taken before the frame's update, so they are
distributed as the association's own. From the most recent labelled
distances of each kind, :class:`AppearanceCalibration` estimates the two
densities (smoothed histograms) and turns a distance ``d`` into the
log-likelihood ratio ``log p(d | same) / p(d | different)``:

- made non-increasing in ``d`` (pool-adjacent-violators on the histogram
  bins): a larger distance is never more evidence of the same identity;
- shrunk towards 0 (no evidence) while few pairs have been seen, and exactly
  0 until ``min_pairs`` of each kind: a new sequence starts on motion alone;
- clipped to ``[-clip, clip]``: an appearance change (occlusion, pose) can
  outvote motion only so far.

Nothing here uses future frames.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["LAGS", "AppearanceCalibration", "DistanceModel"]

#: Frames since a track's last update at which evidence is calibrated separately: a
#: track missed for a while is compared with older vectors, and its true matches lie
#: farther away. A track missed ``m`` frames uses the largest lag ``<= m``.
LAGS = (1, 2, 4, 8, 16)

#: Histogram bins over cosine distances [0, 2].
BINS = 400
_EDGES = np.linspace(0.0, 2.0, BINS + 1)
_CENTRES = 0.5 * (_EDGES[:-1] + _EDGES[1:])
_WIDTH = _EDGES[1] - _EDGES[0]


class AppearanceCalibration:
    """One :class:`DistanceModel` per lag in :data:`LAGS`.

    Args: as :class:`DistanceModel`, for each lag.
    """

    def __init__(self, capacity: int = 2000, min_pairs: int = 20, prior_pairs: float = 50.0,
                 clip: float = 4.0) -> None:
        self.models = [DistanceModel(capacity, min_pairs, prior_pairs, clip) for _ in LAGS]

    def reset(self) -> None:
        """Forget every labelled distance (a new sequence)."""
        for m in self.models:
            m.reset()

    def add(self, same: NDArray[np.floating], different: NDArray[np.floating]) -> None:
        """Record (len(LAGS), K) and (len(LAGS), M) distances (GATED entries are ignored)."""
        for m, s, d in zip(self.models, same, different):
            m.add(s, d)

    def llr(self, distance: NDArray[np.floating],
            frames_since_update: NDArray[np.integer]) -> NDArray[np.float64]:
        """Evidence per pair, each at the lag of its track's misses."""
        d = np.asarray(distance, np.float64)
        lag = np.searchsorted(LAGS, frames_since_update, side="right") - 1
        out = np.zeros(d.shape)
        for i in np.unique(lag).tolist():
            pick = lag == i
            out[pick] = self.models[max(i, 0)].llr(d[pick])
        return out


class DistanceModel:
    """Online log-likelihood ratio of "same identity" for an appearance distance.

    Args:
        capacity: labelled distances kept per kind (the most recent ones), so
            the estimate follows a scene that changes.
        min_pairs: distances of each kind needed before any evidence is given.
        prior_pairs: shrinkage: the ratio is scaled by ``n / (n + prior_pairs)``,
            ``n`` the smaller of the two counts.
        clip: largest absolute evidence one distance can carry (nats).
    """

    def __init__(self, capacity: int = 2000, min_pairs: int = 20, prior_pairs: float = 50.0,
                 clip: float = 4.0) -> None:
        if not (capacity >= 1 and min_pairs >= 1 and prior_pairs >= 0 and clip > 0):
            raise ValueError("capacity >= 1, min_pairs >= 1, prior_pairs >= 0 and clip > 0 "
                             f"expected; got {capacity}, {min_pairs}, {prior_pairs}, {clip}")
        self.capacity = capacity
        self.min_pairs = min_pairs
        self.prior_pairs = prior_pairs
        self.clip = clip
        self.reset()

    def reset(self) -> None:
        """Forget every labelled distance (a new sequence)."""
        self._rings = [np.zeros(self.capacity), np.zeros(self.capacity)]  # same, different
        self._seen = [0, 0]
        self._table: NDArray[np.float64] | None = None  # LLR per bin; None: never fitted
        self._fresh = 0  # distances added since the last fit

    @property
    def counts(self) -> tuple[int, int]:
        """Labelled distances currently held: (same, different)."""
        return min(self._seen[0], self.capacity), min(self._seen[1], self.capacity)

    def add(self, same: NDArray[np.floating], different: NDArray[np.floating]) -> None:
        """Record newly labelled distances (values outside [0, 2] are ignored)."""
        for kind, values in enumerate((same, different)):
            v = np.asarray(values, np.float64).ravel()
            v = v[(v >= 0.0) & (v <= 2.0)]
            if len(v) == 0:
                continue
            v = v[-self.capacity:]
            pos = (self._seen[kind] + np.arange(len(v))) % self.capacity
            self._rings[kind][pos] = v
            self._seen[kind] += len(v)
            self._fresh += len(v)

    def table(self) -> NDArray[np.float64]:
        """The (BINS,) log-likelihood ratio at the bin centres (all 0 while uncalibrated).

        Refitted once the distances added since the last fit reach a quarter
        of those held (at least ``min_pairs``): a few more pairs barely move
        it, and fitting every frame would cost more than the association.
        """
        held = sum(self.counts)
        ready = min(self.counts) >= self.min_pairs
        if (self._table is None or self._fresh >= max(self.min_pairs, held // 4)
                or (ready and not self._table.any())):
            self._table = self._fit()
            self._fresh = 0
        return self._table

    def llr(self, distance: NDArray[np.floating]) -> NDArray[np.float64]:
        """Evidence (nats) that pairs at ``distance`` are one identity; 0 is no evidence."""
        d = np.asarray(distance, np.float64)
        table = self.table()
        if not table.any():
            return np.zeros(d.shape)
        return np.interp(d, _CENTRES, table)

    def _fit(self) -> NDArray[np.float64]:
        n_same, n_diff = self.counts
        n = min(n_same, n_diff)
        if n < self.min_pairs:
            return np.zeros(BINS)
        dens, weight = [], np.zeros(BINS)
        for kind, count in ((0, n_same), (1, n_diff)):
            x = self._rings[kind][:count]
            hist = np.bincount(np.minimum((x / _WIDTH).astype(np.int64), BINS - 1),
                               minlength=BINS).astype(np.float64)
            smooth = _gauss_smooth(hist, _bandwidth(x) / _WIDTH)
            # A floor (a 1% uniform mixture) keeps the ratio finite where one kind was
            # never seen; the clip then bounds it.
            p = 0.99 * smooth / smooth.sum() + 0.01 / BINS
            dens.append(p)
            weight += hist
        llr = np.log(dens[0]) - np.log(dens[1])
        llr = _non_increasing(llr, weight + 1e-3)
        llr *= n / (n + self.prior_pairs)
        return np.clip(llr, -self.clip, self.clip)


def _bandwidth(x: NDArray[np.float64]) -> float:
    """Silverman's rule of thumb, at least one bin wide."""
    spread = min(float(np.std(x)), float(np.subtract(*np.percentile(x, [75, 25]))) / 1.34)
    if spread <= 0:
        spread = float(np.std(x))
    return max(1.06 * spread * len(x) ** -0.2, _WIDTH)


def _gauss_smooth(hist: NDArray[np.float64], sigma_bins: float) -> NDArray[np.float64]:
    """``hist`` convolved with a Gaussian of ``sigma_bins`` bins (mass kept inside the range)."""
    half = int(np.ceil(3 * sigma_bins))
    k = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma_bins) ** 2)
    padded = np.pad(hist, half, mode="reflect") if half < len(hist) else hist
    out = np.convolve(padded, k / k.sum(), mode="same")
    return out[half:half + len(hist)] if half < len(hist) else out


def _non_increasing(y: NDArray[np.float64], w: NDArray[np.float64]) -> NDArray[np.float64]:
    """Weighted least-squares non-increasing fit of ``y`` (pool adjacent violators)."""
    vals, wts, lens = [], [], []
    for v, wt in zip(y.tolist(), w.tolist()):
        vals.append(v)
        wts.append(wt)
        lens.append(1)
        while len(vals) > 1 and vals[-2] < vals[-1]:
            wsum = wts[-2] + wts[-1]
            merged = (vals[-2] * wts[-2] + vals[-1] * wts[-1]) / wsum
            vals[-2:], wts[-2:], lens[-2:] = [merged], [wsum], [lens[-2] + lens[-1]]
    return np.repeat(vals, lens)
