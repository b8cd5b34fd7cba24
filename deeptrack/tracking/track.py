"""Track records: the lifecycle state and counters, no maths.

The tracker keeps its tracks as columns (:class:`TrackTable`) so that the
per-frame work is a handful of array operations whatever the number of
tracks; :class:`Track` is the read-only record handed to users.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray


class TrackState(IntEnum):
    """Lifecycle: tentative -> confirmed after ``n_init`` hits -> deleted."""

    TENTATIVE = 0
    CONFIRMED = 1


@dataclass(frozen=True)
class Track:
    """A snapshot of one live track.

    Attributes:
        track_id: visible id (1, 2, ...), or 0 while the track is tentative.
        state: tentative or confirmed.
        box: (4,) xyxy box of the current Kalman state.
        hits: detections associated since the track began.
        age: frames since the track began.
        frames_since_update: consecutive frames without a detection.
        score: score of the last associated detection.
    """

    track_id: int
    state: TrackState
    box: NDArray[np.float64]
    hits: int
    age: int
    frames_since_update: int
    score: float


# Plain ints: comparing an array with an IntEnum member, or looking the member up on its
# class, costs microseconds per frame on the hot path (bench_association.py, 30 objects).
_TENTATIVE, _CONFIRMED = int(TrackState.TENTATIVE), int(TrackState.CONFIRMED)

# Positions of the integer columns in TrackTable._ints. age and frames_since_update are
# adjacent so that start_frame() advances both with one slice.
_STATE, _ID, _HITS, _AGE, _FSU, _SLOT, _DET = range(7)
_N_INTS = 7


class _IntColumn:
    """A read-only named integer column of :class:`TrackTable` (a fresh view on each read)."""

    def __init__(self, j: int, doc: str) -> None:
        self.j = j
        self.__doc__ = doc

    def __get__(self, table: Any, owner: type | None = None) -> Any:
        if table is None:
            return self
        return table._ints[:, self.j]

    def __set__(self, table: Any, value: Any) -> None:
        raise AttributeError("TrackTable columns change through its methods only")


class TrackTable:
    """Live tracks stored column-wise, one row per track, in creation order.

    All float columns (Kalman mean and covariance, score) live in one 2-D
    array and all integer columns in another, so that adding and dropping
    tracks, which happens on most frames, is two array operations. The
    lifecycle's changes are methods (:meth:`start_frame`,
    :meth:`record_matches`, :meth:`confirm`, :meth:`append`, :meth:`keep`);
    the named columns are read-only views, fresh on every read (never keep
    one across :meth:`append` or :meth:`keep`, which replace the arrays).
    """

    state = _IntColumn(_STATE, "(T,) int64 TrackState values.")
    track_id = _IntColumn(_ID, "(T,) int64 visible ids, 0 while tentative.")
    hits = _IntColumn(_HITS, "(T,) int64 detections associated since birth.")
    age = _IntColumn(_AGE, "(T,) int64 frames since birth.")
    frames_since_update = _IntColumn(_FSU, "(T,) int64 consecutive misses.")
    slot = _IntColumn(_SLOT, "(T,) int64 appearance memory slot, -1 without appearance.")
    det_index = _IntColumn(_DET, "(T,) int64 input detection matched this frame, or -1.")

    def __init__(self, cov_shape: tuple[int, ...] = (8, 8)) -> None:
        self.cov_shape = tuple(cov_shape)
        self._cov_end = 8 + int(np.prod(cov_shape))
        self._floats = np.zeros((0, self._cov_end + 1))
        self._ints = np.zeros((0, _N_INTS), np.int64)

    def __len__(self) -> int:
        return len(self._ints)

    @property
    def mean(self) -> NDArray[np.float64]:
        """(T, 8) Kalman means (a view)."""
        return self._floats[:, :8]

    @property
    def cov(self) -> NDArray[np.float64]:
        """(T, *cov_shape) Kalman covariances (a view)."""
        return self._floats[:, 8:self._cov_end].reshape(-1, *self.cov_shape)

    @property
    def score(self) -> NDArray[np.float64]:
        """(T,) score of the last associated detection (a view)."""
        return self._floats[:, self._cov_end]

    @property
    def confirmed(self) -> NDArray[np.bool_]:
        """(T,) bool: the track is confirmed."""
        return self._ints[:, _STATE] == _CONFIRMED

    @property
    def tentative(self) -> NDArray[np.bool_]:
        """(T,) bool: the track is still tentative."""
        return self._ints[:, _STATE] == _TENTATIVE

    @property
    def nbytes(self) -> int:
        """Bytes held by the columns."""
        return self._floats.nbytes + self._ints.nbytes

    def set_motion(self, mean: NDArray[np.float64], cov: NDArray[np.float64]) -> None:
        """Replace every track's Kalman state: (T, 8) means, (T, *cov_shape) covariances."""
        self._floats[:, :8] = mean
        self._floats[:, 8:self._cov_end] = cov.reshape(len(cov), -1)

    def start_frame(self) -> None:
        """Count a new frame for every track: one more frame of age and of misses."""
        self._ints[:, _AGE:_FSU + 1] += 1  # both columns in one operation
        self._ints[:, _DET] = -1

    def record_matches(self, rows: NDArray[np.int64], mean: NDArray[np.float64],
                       cov: NDArray[np.float64], score: NDArray[np.float64],
                       det_index: NDArray[np.int64]) -> None:
        """Store the updated Kalman state of the tracks at ``rows`` and count their hit.

        Args:
            rows: (K,) distinct rows.
            mean: (K, 8) posterior means; cov: (K, *cov_shape) covariances.
            score: (K,) the matched detections' scores.
            det_index: (K,) the matched detections' rows in the caller's input.
        """
        self._floats[rows, :8] = mean
        self._floats[rows, 8:self._cov_end] = cov.reshape(len(rows), -1)
        self._floats[rows, self._cov_end] = score
        ints = self._ints
        ints[rows, _HITS] += 1
        ints[rows, _FSU] = 0
        ints[rows, _DET] = det_index

    def confirm(self, rows: NDArray[np.int64], n_init: int, next_id: int) -> int:
        """Confirm the tentative tracks among ``rows`` with ``n_init`` hits; return the next id.

        Ids ``next_id, next_id + 1, ...`` are handed out in row (creation) order.
        """
        ints = self._ints
        ready = np.sort(rows[(ints[rows, _STATE] == _TENTATIVE)
                             & (ints[rows, _HITS] >= n_init)])
        if len(ready) == 0:
            return next_id
        ints[ready, _STATE] = _CONFIRMED
        ints[ready, _ID] = np.arange(next_id, next_id + len(ready))
        return next_id + len(ready)

    def append(self, mean: NDArray[np.float64], cov: NDArray[np.float64],
               score: NDArray[np.float64], slot: NDArray[np.int64],
               det_index: NDArray[np.int64]) -> None:
        """Add new tentative tracks (one hit, age 1, no id yet) after the existing rows.

        Args:
            mean: (K, 8) Kalman means; cov: (K, *cov_shape) covariances.
            score: (K,) their detections' scores.
            slot: (K,) appearance memory slots (-1 without appearance).
            det_index: (K,) their detections' rows in the caller's input.
        """
        k = len(mean)
        floats = np.empty((k, self._floats.shape[1]))
        floats[:, :8] = mean
        floats[:, 8:self._cov_end] = np.asarray(cov).reshape(k, -1)
        floats[:, self._cov_end] = score
        ints = np.empty((k, _N_INTS), np.int64)
        ints[:, _STATE] = _TENTATIVE
        ints[:, _ID] = 0
        ints[:, _HITS] = 1
        ints[:, _AGE] = 1
        ints[:, _FSU] = 0
        ints[:, _SLOT] = slot
        ints[:, _DET] = det_index
        self._floats = np.concatenate([self._floats, floats])
        self._ints = np.concatenate([self._ints, ints])

    def keep(self, mask: NDArray[np.bool_]) -> None:
        """Drop the rows where ``mask`` is false."""
        self._floats = self._floats[mask]
        self._ints = self._ints[mask]
