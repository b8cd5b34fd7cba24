"""MOTChallenge text files: strict reading, and atomic writing of results.

On disk every file is comma-separated text, one box per line, with 1-based pixel
``tlwh`` boxes. Inside deeptrack boxes are 0-based ``xyxy``::

    x1 = x - 1,  y1 = y - 1,  x2 = x1 + w,  y2 = y1 + h

Layouts (columns, 1-based):

    detections   frame, -1, x, y, w, h, score [, -1, -1, -1]        7 or 10 columns
    ground truth MOT15:       frame, id, x, y, w, h, flag, wx, wy, wz   10 columns
                 MOT16/17/20: frame, id, x, y, w, h, flag, class, vis    9 columns
    results      frame, id, x, y, w, h, conf [, x, y, z]               7 or 10 columns

``flag`` is the "consider" flag (0 = not scored); the MOT15 world coordinates
``wx, wy, wz`` and the results' ``x, y, z`` are read and ignored. Results are
written with 10 columns, the last three ``-1``.

Tolerated, because the real MOTChallenge files contain it:

- 7-column (MOT17 FRCNN re-exports) and 10-column detection files;
- a newline after the last line, or several blank lines at the end of the file;
- whitespace around fields and at the end of a line (also ``\\r`` of CRLF files);
- rows in any order (MOT17 ``det.txt`` and ``gt.txt`` are not sorted by frame);
  within one frame the file order is kept (it decides ties in the evaluation);
- negative ``x``/``y`` for boxes partly outside the image (MOT17 gt);
- negative detection scores (the MOT15 ACF detector's scores go below 0);
- an empty file (a sequence without any box).

Anything else is a :class:`~deeptrack.errors.DataFormatError` whose message
starts with ``path:line:`` and says what is wrong: a wrong or changing column
count, a field that is not a number, NaN or infinity, a frame number that is not
an integer >= 1 or lies beyond the frames of the sequence, an id that is not an
integer (not ``-1`` in a detection file, negative elsewhere), a width or height
<= 0, a consider flag other than 0/1, a class outside 1..13, a visibility
outside [0, 1], the same id twice in one frame, a blank line before the end of
the file, or bytes that are not UTF-8.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from deeptrack.boxes import tlwh_to_xyxy, validate_xyxy, xyxy_to_tlwh
from deeptrack.errors import DataFormatError, InputError
from deeptrack.types import TrackOutput

logger = logging.getLogger(__name__)

DET_COLUMNS = ("frame", "id", "x", "y", "width", "height", "score", "wx", "wy", "wz")
GT15_COLUMNS = ("frame", "id", "x", "y", "width", "height", "flag", "wx", "wy", "wz")
GT17_COLUMNS = ("frame", "id", "x", "y", "width", "height", "flag", "class", "visibility")
RESULT_COLUMNS = ("frame", "id", "x", "y", "width", "height", "conf", "x3d", "y3d", "z3d")

#: Class ids the MOT16/17/20 ground truth may use (1 = pedestrian ... 13 = crowd).
VALID_CLASSES = tuple(range(1, 14))


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
        frame = _as_int_vector(self.frame, "frame")
        track_id = _as_int_vector(self.track_id, "track_id")
        n = len(frame)
        if len(track_id) != n:
            raise InputError(f"track_id has {len(track_id)} rows but frame has {n}")
        boxes = validate_xyxy(self.boxes)
        if len(boxes) != n:
            raise InputError(f"boxes has {len(boxes)} rows but frame has {n}")
        scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        if len(scores) != n:
            raise InputError(f"scores has {len(scores)} rows but frame has {n}")
        if not np.isfinite(scores).all():
            i = int(np.flatnonzero(~np.isfinite(scores))[0])
            raise InputError(f"scores[{i}] is NaN or inf")
        if n and frame.min() < 1:
            i = int(np.flatnonzero(frame < 1)[0])
            raise InputError(f"frame[{i}] = {frame[i]}: frame numbers start at 1")
        if n and track_id.min() < 0:
            i = int(np.flatnonzero(track_id < 0)[0])
            raise InputError(f"track_id[{i}] = {track_id[i]}: ids must be >= 0")
        dup = _first_duplicate(frame, track_id)
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


def _as_int_vector(x: ArrayLike, name: str) -> NDArray[np.int64]:
    a = np.asarray(x)
    if a.size == 0:
        return np.zeros(0, np.int64)
    if a.ndim != 1:
        raise InputError(f"{name} must have shape (N,), got {a.shape}")
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a) | (a != np.round(a))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(f"{name}[{i}] = {a[i]} is not an integer")
    elif a.dtype.kind not in "iub":
        raise InputError(f"{name} must be integers, got dtype {a.dtype}")
    return a.astype(np.int64)


def _first_duplicate(frame: NDArray[np.int64], ids: NDArray[np.int64]) -> tuple[int, int] | None:
    """Return (earlier row, later row) of the first repeated (frame, id) pair, or None."""
    if len(frame) < 2:
        return None
    order = np.lexsort((ids, frame))  # stable: equal keys keep their row order
    same = (frame[order][1:] == frame[order][:-1]) & (ids[order][1:] == ids[order][:-1])
    if not same.any():
        return None
    later = order[1:][same]
    k = int(np.argmin(later))  # report the duplicate that occurs first in the file
    return int(order[:-1][same][k]), int(later[k])


# --------------------------------------------------------------------------- reading


def _read_lines(path: Path) -> list[str]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataFormatError(f"{path}: cannot read file: {e.strerror or e}") from None
    try:
        return data.decode("utf-8").split("\n")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DataFormatError(f"{path}:{line}: not UTF-8 text") from None


def _parse_table(
    path: Path, layouts: dict[int, tuple[str, ...]]
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Parse a comma-separated numeric file whose column count is a key of ``layouts``.

    Returns:
        (N, C) float64 values and (N,) int64 1-based line numbers; (0, C) for an
        empty file, C the largest layout.
    """
    lines = _read_lines(path)
    stripped = [line.strip() for line in lines]
    n = len(stripped)
    while n and not stripped[n - 1]:
        n -= 1
    rows: list[list[float]] = []
    n_cols = 0
    names: tuple[str, ...] = ()
    for i in range(n):
        text = stripped[i]
        lineno = i + 1
        if not text:
            raise DataFormatError(f"{path}:{lineno}: empty line before the end of the file")
        fields = text.split(",")
        if n_cols == 0:
            if len(fields) not in layouts:
                expected = " or ".join(f"{c} ({','.join(v)})" for c, v in layouts.items())
                raise DataFormatError(
                    f"{path}:{lineno}: expected {expected} comma-separated columns, "
                    f"got {len(fields)}"
                )
            n_cols = len(fields)
            names = layouts[n_cols]
        elif len(fields) != n_cols:
            raise DataFormatError(
                f"{path}:{lineno}: expected {n_cols} columns like the lines above, "
                f"got {len(fields)}"
            )
        try:
            rows.append([float(f) for f in fields])
        except ValueError:
            for j, f in enumerate(fields):
                try:
                    float(f)
                except ValueError:
                    raise DataFormatError(
                        f"{path}:{lineno}: column {j + 1} ({names[j]}) is not a number: "
                        f"{f.strip()!r}"
                    ) from None
    if not rows:
        return np.zeros((0, max(layouts))), _empty_i64()
    values = np.array(rows, dtype=np.float64)
    linenos = np.arange(1, n + 1, dtype=np.int64)
    bad = ~np.isfinite(values)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataFormatError(
            f"{path}:{linenos[r]}: column {c + 1} ({names[c]}) is {float(values[r, c])}; "
            "expected a finite number"
        )
    return values, linenos


def _fail_first(
    path: Path, linenos: NDArray[np.int64], bad: NDArray[np.bool_], message: str,
    values: NDArray[np.float64] | None = None,
) -> None:
    """Raise naming the first row where ``bad`` is true; ``{v}`` in message is its value."""
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        v = "" if values is None else _fmt(values[r])
        raise DataFormatError(f"{path}:{linenos[r]}: " + message.format(v=v))


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _check_frames(
    path: Path, values: NDArray[np.float64], linenos: NDArray[np.int64], max_frame: int | None
) -> NDArray[np.int64]:
    f = values[:, 0]
    _fail_first(path, linenos, f != np.round(f), "frame {v} is not an integer", f)
    _fail_first(path, linenos, f < 1, "frame {v} < 1; frame numbers start at 1", f)
    if max_frame is not None:
        _fail_first(path, linenos, f > max_frame,
                    f"frame {{v}} is beyond the last frame of the sequence ({max_frame})", f)
    return f.astype(np.int64)


def _check_ids(
    path: Path, values: NDArray[np.float64], linenos: NDArray[np.int64]
) -> NDArray[np.int64]:
    ids = values[:, 1]
    _fail_first(path, linenos, ids != np.round(ids), "id {v} is not an integer", ids)
    _fail_first(path, linenos, ids < 0, "id {v} is negative; ids must be >= 0", ids)
    return ids.astype(np.int64)


def _check_sizes(path: Path, values: NDArray[np.float64], linenos: NDArray[np.int64]) -> None:
    _fail_first(path, linenos, values[:, 4] <= 0, "width {v} <= 0", values[:, 4])
    _fail_first(path, linenos, values[:, 5] <= 0, "height {v} <= 0", values[:, 5])


def _check_unique(
    path: Path, frame: NDArray[np.int64], ids: NDArray[np.int64], linenos: NDArray[np.int64]
) -> None:
    dup = _first_duplicate(frame, ids)
    if dup is not None:
        first, second = dup
        raise DataFormatError(
            f"{path}:{linenos[second]}: id {ids[second]} appears twice in frame "
            f"{frame[second]} (also on line {linenos[first]})"
        )


def _to_xyxy(values: NDArray[np.float64]) -> NDArray[np.float64]:
    tlwh = values[:, 2:6].copy()
    tlwh[:, :2] -= 1.0  # 1-based file pixels -> 0-based
    return tlwh_to_xyxy(tlwh)


def read_detections(
    path: str | Path, max_frame: int | None = None, min_confidence: float | None = None
) -> DetectionTable:
    """Read a MOTChallenge detection file (``det/det.txt`` or another file in ``det/``).

    Args:
        path: the file.
        max_frame: the last valid frame number; a row beyond it is an error.
        min_confidence: rows scoring below it are dropped (None keeps all).

    Returns:
        The detections in file order.

    Raises:
        DataFormatError: a malformed line (see the module docstring); the
            message names ``path:line``.
    """
    path = Path(path)
    values, linenos = _parse_table(path, {7: DET_COLUMNS[:7], 10: DET_COLUMNS})
    if len(values) == 0:
        return DetectionTable(_empty_i64(), np.zeros((0, 4)), np.zeros(0))
    frame = _check_frames(path, values, linenos, max_frame)
    _fail_first(path, linenos, values[:, 1] != -1,
                "id column is {v}; a detection file has -1 there", values[:, 1])
    _check_sizes(path, values, linenos)
    boxes = _to_xyxy(values)
    scores = values[:, 6].copy()
    if min_confidence is not None:
        keep = scores >= min_confidence
        frame, boxes, scores = frame[keep], boxes[keep], scores[keep]
    return DetectionTable(frame, boxes, scores)


def read_ground_truth(path: str | Path, max_frame: int | None = None) -> GroundTruth:
    """Read a MOTChallenge ``gt.txt`` in the MOT15 (10 columns) or MOT16/17/20 (9) layout.

    Args:
        path: the file.
        max_frame: the last valid frame number; a row beyond it is an error.

    Returns:
        All rows in file order (flag-0 and non-pedestrian rows included: the
        evaluation needs them).

    Raises:
        DataFormatError: a malformed line (see the module docstring); the
            message names ``path:line``.
    """
    path = Path(path)
    values, linenos = _parse_table(path, {9: GT17_COLUMNS, 10: GT15_COLUMNS})
    if len(values) == 0:
        return GroundTruth(_empty_i64(), _empty_i64(), np.zeros((0, 4)), _empty_i64(),
                           _empty_i64(), np.zeros(0), 0, path)
    n_columns = values.shape[1]
    names = GT15_COLUMNS if n_columns == 10 else GT17_COLUMNS
    frame = _check_frames(path, values, linenos, max_frame)
    ids = _check_ids(path, values, linenos)
    _check_sizes(path, values, linenos)
    flag = values[:, 6]
    _fail_first(path, linenos, (flag != 0) & (flag != 1),
                f"{names[6]} (consider flag) is {{v}}; expected 0 or 1", flag)
    if n_columns == 9:
        cls = values[:, 7]
        _fail_first(path, linenos, ~np.isin(cls, VALID_CLASSES),
                    "class {v} is not a MOTChallenge class id (1..13)", cls)
        vis = values[:, 8]
        _fail_first(path, linenos, (vis < 0) | (vis > 1), "visibility {v} is not in [0, 1]", vis)
        class_id = cls.astype(np.int64)
        visibility = vis.copy()
    else:
        class_id = np.full(len(values), -1, np.int64)
        visibility = np.full(len(values), np.nan)
    _check_unique(path, frame, ids, linenos)
    return GroundTruth(frame, ids, _to_xyxy(values), flag.astype(np.int64), class_id,
                       visibility, n_columns, path)


def read_results(path: str | Path, max_frame: int | None = None) -> TrackResults:
    """Read a tracker's MOTChallenge result file (``<sequence>.txt``).

    Args:
        path: the file.
        max_frame: the last valid frame number; a row beyond it is an error.

    Returns:
        The rows in file order.

    Raises:
        DataFormatError: a malformed line (see the module docstring); the
            message names ``path:line``.
    """
    path = Path(path)
    values, linenos = _parse_table(path, {7: RESULT_COLUMNS[:7], 10: RESULT_COLUMNS})
    if len(values) == 0:
        return TrackResults.empty()
    frame = _check_frames(path, values, linenos, max_frame)
    ids = _check_ids(path, values, linenos)
    _check_sizes(path, values, linenos)
    _check_unique(path, frame, ids, linenos)
    return TrackResults(frame, ids, _to_xyxy(values), values[:, 6].copy())


# --------------------------------------------------------------------------- writing


def _num(v: float) -> str:
    # 1e-6 px is far below any IoU threshold's resolution, and the text stays free of
    # float noise (x1 + w - x1 = 146.6199999999999 is written 146.62)
    text = f"{v:.6f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def format_results(results: TrackResults) -> str:
    """Return the MOTChallenge text of ``results``, sorted by frame then id."""
    order = np.lexsort((results.track_id, results.frame))
    tlwh = xyxy_to_tlwh(results.boxes[order])
    tlwh[:, :2] += 1.0  # 0-based -> 1-based file pixels
    frames = results.frame[order].tolist()
    ids = results.track_id[order].tolist()
    lines = [
        f"{f},{i},{_num(x)},{_num(y)},{_num(w)},{_num(h)},{_num(c)},-1,-1,-1\n"
        for f, i, (x, y, w, h), c in zip(
            frames, ids, tlwh.tolist(), results.scores[order].tolist(), strict=True
        )
    ]
    return "".join(lines)


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` so that the file is either whole or as it was.

    The text goes to a temporary file in the same folder, which then replaces
    ``path`` (``os.replace``); on any failure the temporary file is removed.
    Missing parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_results(path: str | Path, results: TrackResults) -> None:
    """Write results in the MOTChallenge format, atomically.

    The text goes to a temporary file in the same folder, which then replaces
    ``path`` (``os.replace``); on any failure ``path`` is left as it was and
    the temporary file is removed. Missing parent folders are created.

    Args:
        path: the result file, usually ``<results_dir>/<sequence>.txt``.
        results: the rows; written sorted by frame then id as
            ``frame,id,x,y,w,h,conf,-1,-1,-1`` with 1-based tlwh boxes, numbers
            rounded to 6 decimals.
    """
    path = Path(path)
    write_atomic(path, format_results(results))  # formatting fails before any write
    logger.debug("wrote %d result rows to %s", len(results), path)
