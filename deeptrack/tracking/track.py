"""Track records: the lifecycle state and counters, no maths.

The tracker keeps its tracks as columns (:class:`TrackTable`) so that the
per-frame work is a handful of array operations whatever the number of
tracks; :class:`Track` is the read-only record handed to users.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

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


#: Integer columns, in their order in ``TrackTable.ints`` (public: the tracker indexes it).
INT_COLUMNS = ("state", "track_id", "hits", "age", "frames_since_update", "slot", "det_index")


class TrackTable:
    """Live tracks stored column-wise, one row per track, in creation order.

    All float columns (Kalman mean and covariance, score) live in one 2-D
    array and all integer columns in another, so that adding and dropping
    tracks, which happens on most frames, is two array operations; the
    named columns are views into them.
    """

    # Integer columns (views into ``ints``; properties defined below the class).
    state: NDArray[np.int64]
    track_id: NDArray[np.int64]
    hits: NDArray[np.int64]
    age: NDArray[np.int64]
    frames_since_update: NDArray[np.int64]
    slot: NDArray[np.int64]
    det_index: NDArray[np.int64]

    def __init__(self, cov_shape: tuple[int, ...] = (8, 8)) -> None:
        self.cov_shape = tuple(cov_shape)
        self._cov_end = 8 + int(np.prod(cov_shape))
        self.floats = np.zeros((0, self._cov_end + 1))
        self.ints = np.zeros((0, len(INT_COLUMNS)), np.int64)

    def __len__(self) -> int:
        return len(self.ints)

    @property
    def mean(self) -> NDArray[np.float64]:
        """(T, 8) Kalman means (a view)."""
        return self.floats[:, :8]

    @mean.setter
    def mean(self, value: NDArray[np.float64]) -> None:
        self.floats[:, :8] = value

    @property
    def cov(self) -> NDArray[np.float64]:
        """(T, *cov_shape) Kalman covariances (a view)."""
        view = self.floats[:, 8:self._cov_end].reshape(-1, *self.cov_shape)
        assert view.base is not None  # a view: writes through it reach the table
        return view

    @cov.setter
    def cov(self, value: NDArray[np.float64]) -> None:
        self.floats[:, 8:self._cov_end] = value.reshape(len(value), -1)

    @property
    def score(self) -> NDArray[np.float64]:
        """(T,) score of the last associated detection (a view)."""
        return self.floats[:, self._cov_end]

    @score.setter
    def score(self, value: NDArray[np.float64]) -> None:
        self.floats[:, self._cov_end] = value

    def append(self, **columns: NDArray) -> None:
        """Add rows; every column must be given, with the same number of rows."""
        names = {"mean", "cov", "score", *INT_COLUMNS}
        missing = names - set(columns)
        if missing:
            raise TypeError(f"missing columns: {sorted(missing)}")
        k = len(columns["mean"])
        floats = np.empty((k, self.floats.shape[1]))
        floats[:, :8] = columns["mean"]
        floats[:, 8:self._cov_end] = np.asarray(columns["cov"]).reshape(k, -1)
        floats[:, self._cov_end] = columns["score"]
        ints = np.empty((k, len(INT_COLUMNS)), np.int64)
        for j, name in enumerate(INT_COLUMNS):
            ints[:, j] = columns[name]
        self.floats = np.concatenate([self.floats, floats])
        self.ints = np.concatenate([self.ints, ints])

    def set_rows(self, rows: NDArray[np.int64], mean: NDArray, cov: NDArray,
                 score: NDArray) -> None:
        """Write the Kalman state and score of the tracks at ``rows``."""
        self.floats[rows, :8] = mean
        self.floats[rows, 8:self._cov_end] = cov.reshape(len(rows), -1)
        self.floats[rows, self._cov_end] = score

    def keep(self, mask: NDArray[np.bool_]) -> None:
        """Drop the rows where ``mask`` is false."""
        self.floats = self.floats[mask]
        self.ints = self.ints[mask]

    @property
    def nbytes(self) -> int:
        """Bytes held by the columns."""
        return self.floats.nbytes + self.ints.nbytes


def _int_column(j: int, name: str) -> property:
    def get(self: TrackTable) -> NDArray[np.int64]:
        return self.ints[:, j]

    def put(self: TrackTable, value: NDArray) -> None:
        self.ints[:, j] = value

    return property(get, put, doc=f"(T,) {name.replace('_', ' ')} (a view).")


for _j, _name in enumerate(INT_COLUMNS):
    setattr(TrackTable, _name, _int_column(_j, _name))
