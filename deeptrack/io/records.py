"""The record types of MOTChallenge files: detections, ground truth and tracker results.

Boxes are 0-based ``xyxy`` here; the text layouts and the 1-based ``tlwh`` boxes on disk
are :mod:`deeptrack.io.mot`'s business, which reads and writes these records.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from deeptrack.boxes import validate_xyxy
from deeptrack.errors import InputError
from deeptrack.types import TrackOutput

DET_COLUMNS = ("frame", "id", "x", "y", "width", "height", "score", "wx", "wy", "wz")
GT15_COLUMNS = ("frame", "id", "x", "y", "width", "height", "flag", "wx", "wy", "wz")
GT17_COLUMNS = ("frame", "id", "x", "y", "width", "height", "flag", "class", "visibility")
RESULT_COLUMNS = ("frame", "id", "x", "y", "width", "height", "conf", "x3d", "y3d", "z3d")

#: Class ids the MOT16/17/20 ground truth may use (1 = pedestrian ... 13 = crowd).
VALID_CLASSES = tuple(range(1, 14))

#: Largest frame number accepted (files, seqinfo.ini): 10 million, over 90 hours at 30 fps.
MAX_FRAME = 10_000_000

#: Largest object or track id accepted: the int32 range the official evaluation uses.
MAX_ID = 2**31 - 1


def _empty_i64() -> NDArray[np.int64]:
    return np.zeros(0, np.int64)


@dataclass(frozen=True)
class DetectionTable:
    """All detections of one detection file.

    Attributes:
        frame: (N,) int64 frame numbers, 1-based.
        boxes: (N, 4) float64 xyxy pixels, 0-based.
        scores: (N,) float64 detector confidences.
    """

    frame: NDArray[np.int64]
    boxes: NDArray[np.float64]
    scores: NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.frame)


@dataclass(frozen=True)
class GroundTruth:
    """All ground-truth boxes of one ``gt.txt``.

    Attributes:
        frame: (N,) int64 frame numbers, 1-based.
        track_id: (N,) int64 object ids.
        boxes: (N, 4) float64 xyxy pixels, 0-based.
        flag: (N,) int64 consider flag; 0 = not scored.
        class_id: (N,) int64 object class (1 = pedestrian); -1 for MOT15 files,
            which have no class column.
        visibility: (N,) float64 visible fraction in [0, 1]; NaN for MOT15 files.
        n_columns: columns of the file: 10 (MOT15 layout) or 9 (MOT16/17/20);
            0 for an empty file.
        path: the file read, if any.
    """

    frame: NDArray[np.int64]
    track_id: NDArray[np.int64]
    boxes: NDArray[np.float64]
    flag: NDArray[np.int64]
    class_id: NDArray[np.int64]
    visibility: NDArray[np.float64]
    n_columns: int
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def has_classes(self) -> bool:
        """Whether the file had class and visibility columns (MOT16/17/20 layout)."""
        return self.n_columns == 9

    def subset(self, keep: NDArray[np.bool_] | NDArray[np.int64]) -> GroundTruth:
        """Return the rows selected by a boolean mask or index array, in order."""
        return GroundTruth(
            self.frame[keep], self.track_id[keep], self.boxes[keep], self.flag[keep],
            self.class_id[keep], self.visibility[keep], self.n_columns, self.path,
        )


@dataclass(frozen=True)
class TrackResults:
    """A tracker's output for one sequence, validated on construction.

    Attributes:
        frame: (N,) int64 frame numbers, 1-based.
        track_id: (N,) int64 track ids (>= 0), unique within a frame.
        boxes: (N, 4) float64 xyxy pixels, 0-based, positive width and height.
        scores: (N,) float64 confidences.
    """

    frame: NDArray[np.int64]
    track_id: NDArray[np.int64]
    boxes: NDArray[np.float64]
    scores: NDArray[np.float64]

    def __post_init__(self) -> None:
        frame = _as_int_vector(self.frame, "frame", 1, MAX_FRAME)
        track_id = _as_int_vector(self.track_id, "track_id", 0, MAX_ID)
        n = len(frame)
        if len(track_id) != n:
            raise InputError(f"track_id has {len(track_id)} rows but frame has {n}")
        boxes = validate_xyxy(self.boxes)
        if len(boxes) != n:
            raise InputError(f"boxes has {len(boxes)} rows but frame has {n}")
        scores = np.asarray(self.scores)
        if scores.dtype.kind not in "biuf":
            raise InputError(f"scores must be numeric (real numbers), got dtype {scores.dtype}")
        scores = scores.astype(np.float64, copy=False).reshape(-1)
        if len(scores) != n:
            raise InputError(f"scores has {len(scores)} rows but frame has {n}")
        if not np.isfinite(scores).all():
            i = int(np.flatnonzero(~np.isfinite(scores))[0])
            raise InputError(f"scores[{i}] is NaN or inf")
        dup = first_duplicate(frame, track_id)
        if dup is not None:
            first, second = dup
            raise InputError(
                f"track id {track_id[second]} appears twice in frame {frame[second]} "
                f"(rows {first} and {second})"
            )
        object.__setattr__(self, "frame", frame)
        object.__setattr__(self, "track_id", track_id)
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "scores", scores)

    def __len__(self) -> int:
        return len(self.frame)

    @classmethod
    def empty(cls) -> TrackResults:
        """Return results without any box."""
        return cls(_empty_i64(), _empty_i64(), np.zeros((0, 4)), np.zeros(0))

    @classmethod
    def from_outputs(cls, outputs: Iterable[tuple[int, TrackOutput]]) -> TrackResults:
        """Collect per-frame tracker outputs.

        Args:
            outputs: ``(frame, TrackOutput)`` pairs, frame 1-based.

        Returns:
            The rows of all outputs in the order given.
        """
        frames, ids, boxes, scores = [], [], [], []
        for frame, out in outputs:
            n = len(out)
            frames.append(np.full(n, int(frame), np.int64))
            ids.append(np.asarray(out.track_ids, np.int64).reshape(-1))
            boxes.append(np.asarray(out.boxes, np.float64).reshape(-1, 4))
            scores.append(np.asarray(out.scores, np.float64).reshape(-1))
        if not frames:
            return cls.empty()
        return cls(np.concatenate(frames), np.concatenate(ids), np.concatenate(boxes),
                   np.concatenate(scores))


def _as_int_vector(x: ArrayLike, name: str, low: int, high: int) -> NDArray[np.int64]:
    """Return ``x`` as (N,) int64, or raise naming the first value not an integer in low..high."""
    try:
        a = np.asarray(x)
    except (TypeError, ValueError) as e:
        raise InputError(f"{name} must be a vector of integers: {e}") from None
    if a.size == 0:
        return np.zeros(0, np.int64)
    if a.ndim != 1:
        raise InputError(f"{name} must have shape (N,), got {a.shape}")
    if a.dtype.kind not in "iubf":
        raise InputError(f"{name} must be integers, got dtype {a.dtype}")
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a) | (a != np.round(a))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(f"{name}[{i}] = {a[i]} is not an integer")
    # compared before the cast: a float such as 1e30 has no int64 value
    bad = (a < low) | (a > high)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"{name}[{i}] = {a[i]} is not in {low}..{high}")
    return a.astype(np.int64, copy=False)


def first_duplicate(frame: NDArray[np.int64], ids: NDArray[np.int64]) -> tuple[int, int] | None:
    """Return (earlier row, later row) of the first repeated (frame, id) pair, or None.

    ``frame`` must lie in 1..MAX_FRAME and ``ids`` in 0..MAX_ID (checked before).
    """
    if len(frame) < 2:
        return None
    # One int64 key per row, sorted in place: the common (no duplicate) case in 8 bytes a row.
    key = frame * (MAX_ID + 1) + ids
    key.sort()
    if not (key[1:] == key[:-1]).any():
        return None
    order = np.lexsort((ids, frame))  # stable: equal keys keep their row order
    same = (frame[order][1:] == frame[order][:-1]) & (ids[order][1:] == ids[order][:-1])
    later = order[1:][same]
    k = int(np.argmin(later))  # report the duplicate that occurs first in the file
    return int(order[:-1][same][k]), int(later[k])


# --------------------------------------------------------------------------- reading
