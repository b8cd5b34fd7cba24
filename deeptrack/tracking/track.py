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


# Column name -> (dtype, trailing shape). One row per live track.
_COLUMNS: dict[str, tuple[type, tuple[int, ...]]] = {
    "mean": (np.float64, (8,)),
    "cov": (np.float64, (8, 8)),  # the Kalman engine's cov_shape replaces it
    "state": (np.int8, ()),
    "track_id": (np.int64, ()),
    "hits": (np.int64, ()),
    "age": (np.int64, ()),
    "frames_since_update": (np.int64, ()),
    "score": (np.float64, ()),
    "slot": (np.int64, ()),
    "det_index": (np.int64, ()),
}


class TrackTable:
    """Live tracks stored column-wise, one row per track, in creation order."""

    mean: NDArray[np.float64]
    cov: NDArray[np.float64]
    state: NDArray[np.int8]
    track_id: NDArray[np.int64]
    hits: NDArray[np.int64]
    age: NDArray[np.int64]
    frames_since_update: NDArray[np.int64]
    score: NDArray[np.float64]
    slot: NDArray[np.int64]
    det_index: NDArray[np.int64]

    def __init__(self, cov_shape: tuple[int, ...] = (8, 8)) -> None:
        for name, (dtype, shape) in _COLUMNS.items():
            setattr(self, name, np.zeros((0, *(cov_shape if name == "cov" else shape)), dtype))

    def __len__(self) -> int:
        return len(self.state)

    def append(self, **columns: NDArray) -> None:
        """Add rows; every column must be given, with the same number of rows."""
        missing = set(_COLUMNS) - set(columns)
        if missing:
            raise TypeError(f"missing columns: {sorted(missing)}")
        for name, (dtype, _) in _COLUMNS.items():
            setattr(self, name, np.concatenate([getattr(self, name), columns[name].astype(dtype)]))

    def keep(self, mask: NDArray[np.bool_]) -> None:
        """Drop the rows where ``mask`` is false."""
        for name in _COLUMNS:
            setattr(self, name, getattr(self, name)[mask])

    @property
    def nbytes(self) -> int:
        """Bytes held by the columns."""
        return sum(getattr(self, name).nbytes for name in _COLUMNS)
