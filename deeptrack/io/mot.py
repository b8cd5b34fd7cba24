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
an integer in 1..``MAX_FRAME`` (10 million) or lies beyond the frames of the
sequence, an id that is not an integer (not ``-1`` in a detection file, outside
0..``MAX_ID`` = 2**31 - 1 elsewhere), a width or height <= 0, a box that the
tracker would refuse (a coordinate beyond +-1e7 px, a side below 1e-8 px: see
:func:`deeptrack.boxes.validate_xyxy`), a consider flag other than 0/1, a class
outside 1..13, a visibility outside [0, 1], the same id twice in one frame, a
blank line before the end of the file, a line longer than 64 KiB, or bytes that
are not UTF-8.

Files are read block by block into arrays allocated once (numpy's C parser does
the numbers; a line-by-line pass runs only to name a malformed line), so reading
costs about the memory of the table returned, not a multiple of the file.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np
from numpy.typing import ArrayLike, NDArray

from deeptrack.boxes import (
    MAX_COORD,
    MIN_SIZE,
    box_ok,
    box_problem,
    validate_xyxy,
    xyxy_to_tlwh,
)
from deeptrack.errors import DataFormatError, InputError
from deeptrack.io.resultset import file_mode
from deeptrack.types import TrackOutput

logger = logging.getLogger(__name__)

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


def _first_duplicate(frame: NDArray[np.int64], ids: NDArray[np.int64]) -> tuple[int, int] | None:
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

#: Bytes read at a time: a file is parsed block by block, never held whole in memory.
_BLOCK_BYTES = 1 << 20
#: A line longer than this is an error (real lines are under 100 bytes); it is never buffered.
MAX_LINE_BYTES = 1 << 16

# What counts as a number in a file: decimal notation, or the words inf/nan (which the
# finiteness check then rejects with a precise message). ASCII digits only.
_NUMBER = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf(?:inity)?|nan)",
    re.IGNORECASE | re.ASCII,
)


def _is_number(text: str) -> bool:
    text = text.strip()
    if not text:
        return False
    if _NUMBER.fullmatch(text):
        return True
    try:  # whatever numpy's parser takes is a number too (the fast path uses it)
        return _loadtxt([text]).shape == (1, 1)
    except ValueError:
        return False


def _loadtxt(lines: list[str]) -> NDArray[np.float64]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "input contained no data"
        return np.loadtxt(lines, delimiter=",", dtype=np.float64, comments=None, ndmin=2,
                          quotechar=None)


def _count_lines(path: Path) -> int:
    """Return an upper bound of the rows of ``path`` (its newlines plus one), reading blocks."""
    n = 1
    try:
        with open(path, "rb") as f:
            while block := f.read(_BLOCK_BYTES):
                n += block.count(b"\n")
    except OSError as e:
        raise DataFormatError(f"{path}: cannot read file: {e.strerror or e}") from None
    return n


def _text_blocks(path: Path) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(number of the first line, lines)`` of a UTF-8 file, a few MB at a time."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the with below, after the check
    except OSError as e:
        raise DataFormatError(f"{path}: cannot read file: {e.strerror or e}") from None
    with f:
        lineno, rest = 1, b""
        while True:
            try:
                block = f.read(_BLOCK_BYTES)
            except OSError as e:
                raise DataFormatError(f"{path}: cannot read file: {e.strerror or e}") from None
            if not block:
                break
            data = rest + block
            cut = data.rfind(b"\n")
            head, rest = (b"", data) if cut < 0 else (data[:cut], data[cut + 1:])
            if len(rest) > MAX_LINE_BYTES:
                line = lineno + head.count(b"\n") + (1 if cut >= 0 else 0)
                raise DataFormatError(f"{path}:{line}: line longer than {MAX_LINE_BYTES} bytes")
            if cut >= 0:
                lines = _decode(path, head, lineno).split("\n")
                if len(head) > MAX_LINE_BYTES:
                    _check_line_lengths(path, lines, lineno)
                yield lineno, lines
                lineno += len(lines)
        if rest:
            yield lineno, [_decode(path, rest, lineno)]


def _check_line_lengths(path: Path, lines: list[str], lineno: int) -> None:
    # characters, never more than the line's bytes: a line over the limit in characters is
    # over it in bytes too (the rare multi-byte line just under it passes; it is still short)
    lengths = list(map(len, lines))
    if max(lengths) > MAX_LINE_BYTES:
        i = next(i for i, n in enumerate(lengths) if n > MAX_LINE_BYTES)
        raise DataFormatError(f"{path}:{lineno + i}: line longer than {MAX_LINE_BYTES} bytes")


def _decode(path: Path, data: bytes, lineno: int) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = lineno + data[: e.start].count(b"\n")
        raise DataFormatError(f"{path}:{line}: not UTF-8 text") from None


class _Table:
    """Parse a comma-separated numeric file whose column count is a key of ``layouts``.

    Iterating yields ``(row0, values)`` per block: ``values`` is (n, C) float64, every
    value finite, ``row0`` the 0-based row of its first line. Rows and lines
    correspond one to one (line = row + 1): a blank line is allowed only at the end of
    the file. A malformed line raises :class:`DataFormatError` naming ``path:line``.
    """

    def __init__(self, path: Path, layouts: dict[int, tuple[str, ...]]) -> None:
        self.path = path
        self.layouts = layouts
        self.n_cols = 0
        self.names: tuple[str, ...] = ()
        self._blank: int | None = None  # first line of a run of blank lines seen last

    def fail(self, row: int, message: str) -> NoReturn:
        raise DataFormatError(f"{self.path}:{row + 1}: {message}")

    def __iter__(self) -> Iterator[tuple[int, NDArray[np.float64]]]:
        for first, lines in _text_blocks(self.path):
            values = self._fast(lines)
            if values is None:
                values = self._slow(first, lines)
            if len(values):
                bad = ~np.isfinite(values)
                if bad.any():
                    r, c = np.argwhere(bad)[0]
                    self.fail(first - 1 + int(r), f"column {c + 1} ({self.names[c]}) is "
                              f"{float(values[r, c])}; expected a finite number")
                yield first - 1, values

    def _fast(self, lines: list[str]) -> NDArray[np.float64] | None:
        """numpy's C parser on a block without blank lines; None when the block needs a closer look."""
        if self._blank is not None or not lines:
            return None
        try:
            values = _loadtxt(lines)
        except ValueError:
            return None
        if values.shape[0] != len(lines) or values.shape[1] != (self.n_cols or values.shape[1]):
            return None
        if not self.n_cols:
            if values.shape[1] not in self.layouts:
                return None
            self.n_cols, self.names = values.shape[1], self.layouts[values.shape[1]]
        return values

    def _slow(self, first: int, lines: list[str]) -> NDArray[np.float64]:
        """Line by line: find the first malformed line, or parse a block with blank lines."""
        rows: list[list[float]] = []
        for i, text in enumerate(lines):
            row = first - 1 + i
            stripped = text.strip()
            if not stripped:
                if self._blank is None:
                    self._blank = row
                continue
            if self._blank is not None:
                self.fail(self._blank, "empty line before the end of the file")
            fields = stripped.split(",")
            if not self.n_cols:
                if len(fields) not in self.layouts:
                    expected = " or ".join(f"{c} ({','.join(v)})" for c, v in self.layouts.items())
                    self.fail(row, f"expected {expected} comma-separated columns, "
                                   f"got {len(fields)}")
                self.n_cols, self.names = len(fields), self.layouts[len(fields)]
            elif len(fields) != self.n_cols:
                self.fail(row, f"expected {self.n_cols} columns like the lines above, "
                               f"got {len(fields)}")
            for j, field in enumerate(fields):
                if not _is_number(field):
                    self.fail(row, f"column {j + 1} ({self.names[j]}) is not a number: "
                                   f"{field.strip()!r}")
            rows.append(_loadtxt([stripped])[0].tolist())
        return np.array(rows, dtype=np.float64).reshape(-1, self.n_cols or 1)


class _Columns:
    """Output arrays filled block by block, allocated once for ``capacity`` rows."""

    def __init__(self, capacity: int, **dtypes: tuple[np.dtype, tuple[int, ...]]) -> None:
        self.n = 0
        self.arrays = {k: np.empty((capacity, *shape), dt) for k, (dt, shape) in dtypes.items()}

    def append(self, **cols: NDArray) -> None:
        k = len(next(iter(cols.values())))
        for name, a in self.arrays.items():
            if self.n + k > len(a):  # the file grew since it was counted
                a = np.concatenate([a, np.empty_like(a[: max(self.n + k - len(a), len(a))])])
                self.arrays[name] = a
            a[self.n:self.n + k] = cols[name]
        self.n += k

    def result(self) -> dict[str, NDArray]:
        out = {}
        for name, a in self.arrays.items():
            # a view would keep the whole allocation alive; copy when much is unused
            out[name] = a[: self.n].copy() if self.n < 0.9 * len(a) else a[: self.n]
        return out


def _fail_first(
    table: _Table, row0: int, bad: NDArray[np.bool_], message: str,
    values: NDArray[np.float64] | None = None,
) -> None:
    """Raise naming the first row where ``bad`` is true; ``{v}`` in message is its value."""
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        table.fail(row0 + r, message.format(v="" if values is None else _fmt(values[r])))


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e16 else repr(float(v))


def _check_frames(
    table: _Table, row0: int, values: NDArray[np.float64], max_frame: int | None
) -> NDArray[np.int64]:
    f = values[:, 0]
    _fail_first(table, row0, f != np.round(f), "frame {v} is not an integer", f)
    _fail_first(table, row0, f < 1, "frame {v} < 1; frame numbers start at 1", f)
    if max_frame is not None:
        _fail_first(table, row0, f > max_frame,
                    f"frame {{v}} is beyond the last frame of the sequence ({max_frame})", f)
    _fail_first(table, row0, f > MAX_FRAME,
                f"frame {{v}} is beyond the largest frame number supported ({MAX_FRAME})", f)
    return f.astype(np.int64)


def _check_ids(table: _Table, row0: int, values: NDArray[np.float64]) -> NDArray[np.int64]:
    ids = values[:, 1]
    _fail_first(table, row0, ids != np.round(ids), "id {v} is not an integer", ids)
    _fail_first(table, row0, ids < 0, "id {v} is negative; ids must be >= 0", ids)
    _fail_first(table, row0, ids > MAX_ID,
                f"id {{v}} is beyond the largest id supported ({MAX_ID})", ids)
    return ids.astype(np.int64)


def _check_boxes(table: _Table, row0: int, values: NDArray[np.float64]) -> NDArray[np.float64]:
    """Check the x, y, width, height columns; return the boxes as 0-based xyxy."""
    _fail_first(table, row0, values[:, 4] <= 0, "width {v} <= 0", values[:, 4])
    _fail_first(table, row0, values[:, 5] <= 0, "height {v} <= 0", values[:, 5])
    boxes = _to_xyxy(values)
    problem = box_problem(boxes)
    if problem is not None:
        r, what = problem
        x, y, w, h = (_fmt(v) for v in values[r, 2:6])
        table.fail(row0 + r, f"box (x, y, width, height) = ({x}, {y}, {w}, {h}) {what}")
    return boxes


def _check_unique(
    table: _Table, frame: NDArray[np.int64], ids: NDArray[np.int64]
) -> None:
    dup = _first_duplicate(frame, ids)
    if dup is not None:
        first, second = dup
        table.fail(second, f"id {ids[second]} appears twice in frame {frame[second]} "
                           f"(also on line {first + 1})")


def _to_xyxy(values: NDArray[np.float64], first: int = 2) -> NDArray[np.float64]:
    """The x, y, width, height columns (1-based tlwh) from ``first`` on as 0-based xyxy boxes.

    The one conversion of file boxes: the writer checks its text with it too.
    """
    boxes = np.empty((len(values), 4))
    boxes[:, :2] = values[:, first:first + 2] - 1.0  # 1-based file pixels -> 0-based
    boxes[:, 2:] = boxes[:, :2] + values[:, first + 2:first + 4]
    return boxes


def _f8(*shape: int) -> tuple[np.dtype, tuple[int, ...]]:
    return np.dtype(np.float64), shape


def _i8(*shape: int) -> tuple[np.dtype, tuple[int, ...]]:
    return np.dtype(np.int64), shape


def read_detections(
    path: str | Path, max_frame: int | None = None, min_confidence: float | None = None
) -> DetectionTable:
    """Read a MOTChallenge detection file (``det/det.txt`` or another file in ``det/``).

    The file is parsed block by block into arrays allocated once: memory stays
    near the size of the returned table (48 bytes per row), whatever the file size.

    Args:
        path: the file.
        max_frame: the last valid frame number; a row beyond it is an error.
        min_confidence: rows scoring below it are dropped (None keeps all).

    Returns:
        The detections in file order.

    Raises:
        DataFormatError: a malformed line (see the module docstring); the
            message names ``path:line``.
        InputError: ``min_confidence`` is not a finite number.
    """
    path = Path(path)
    if min_confidence is not None and not _finite_number(min_confidence):
        raise InputError(f"min_confidence must be a finite number, got {min_confidence!r}")
    table = _Table(path, {7: DET_COLUMNS[:7], 10: DET_COLUMNS})
    out = _Columns(_count_lines(path), frame=_i8(), boxes=_f8(4), scores=_f8())
    for row0, values in table:
        frame = _check_frames(table, row0, values, max_frame)
        _fail_first(table, row0, values[:, 1] != -1,
                    "id column is {v}; a detection file has -1 there", values[:, 1])
        boxes = _check_boxes(table, row0, values)
        scores = values[:, 6]
        if min_confidence is not None:
            keep = scores >= min_confidence
            frame, boxes, scores = frame[keep], boxes[keep], scores[keep]
        out.append(frame=frame, boxes=boxes, scores=scores)
    cols = out.result()
    return DetectionTable(cols["frame"], cols["boxes"], cols["scores"])


def _finite_number(v: object) -> bool:
    return (isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
            and math.isfinite(v))


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
    table = _Table(path, {9: GT17_COLUMNS, 10: GT15_COLUMNS})
    out = _Columns(_count_lines(path), frame=_i8(), ids=_i8(), boxes=_f8(4), flag=_i8(),
                   class_id=_i8(), visibility=_f8())
    for row0, values in table:
        frame = _check_frames(table, row0, values, max_frame)
        ids = _check_ids(table, row0, values)
        boxes = _check_boxes(table, row0, values)
        flag = values[:, 6]
        _fail_first(table, row0, (flag != 0) & (flag != 1),
                    f"{table.names[6]} (consider flag) is {{v}}; expected 0 or 1", flag)
        if table.n_cols == 9:
            cls = values[:, 7]
            _fail_first(table, row0, ~np.isin(cls, VALID_CLASSES),
                        "class {v} is not a MOTChallenge class id (1..13)", cls)
            vis = values[:, 8]
            _fail_first(table, row0, (vis < 0) | (vis > 1), "visibility {v} is not in [0, 1]",
                        vis)
        else:
            cls, vis = -1, np.nan
        out.append(frame=frame, ids=ids, boxes=boxes, flag=flag, class_id=cls, visibility=vis)
    c = out.result()
    _check_unique(table, c["frame"], c["ids"])
    return GroundTruth(c["frame"], c["ids"], c["boxes"], c["flag"], c["class_id"],
                       c["visibility"], table.n_cols if len(c["frame"]) else 0, path)


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
    table = _Table(path, {7: RESULT_COLUMNS[:7], 10: RESULT_COLUMNS})
    out = _Columns(_count_lines(path), frame=_i8(), ids=_i8(), boxes=_f8(4), scores=_f8())
    for row0, values in table:
        out.append(frame=_check_frames(table, row0, values, max_frame),
                   ids=_check_ids(table, row0, values),
                   boxes=_check_boxes(table, row0, values), scores=values[:, 6])
    c = out.result()
    _check_unique(table, c["frame"], c["ids"])
    return TrackResults(c["frame"], c["ids"], c["boxes"], c["scores"])


# --------------------------------------------------------------------------- writing


def _num(v: float) -> str:
    # 1e-6 px is far below any IoU threshold's resolution, and the text stays free of
    # float noise (x1 + w - x1 = 146.6199999999999 is written 146.62)
    text = f"{v:.6f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _box_texts(tlwh: NDArray[np.float64]) -> list[list[str]]:
    """Return x, y, width, height texts (1-based tlwh) that read back as valid boxes.

    Six decimals suit every ordinary box. A box that they would break (a width of
    1e-7 written as 0, say) is written with the shortest exact text instead, its
    width or height moved by the least amount that keeps the box valid when read
    back with :func:`read_results`' arithmetic.
    """
    texts = [[_num(v) for v in row] for row in tlwh.tolist()]
    if not texts:
        return texts
    back = np.array(texts, dtype=np.float64)
    for i in np.flatnonzero(~box_ok(_to_xyxy(back, 0))).tolist():
        texts[i] = _exact_box_texts(*tlwh[i].tolist())
    return texts


def _exact_box_texts(x: float, y: float, w: float, h: float) -> list[str]:
    size = [w, h]
    for _ in range(64):
        texts = [repr(float(v)) for v in (x, y, *size)]
        back = np.array([texts], dtype=np.float64)
        box = _to_xyxy(back, 0)
        if box_ok(box).all():
            return texts
        for k in (0, 1):  # x then y: nudge the size by one step of the far edge's spacing
            lo, hi = box[0, k], box[0, k + 2]
            if not (hi - lo >= MIN_SIZE or abs(hi) > MAX_COORD):
                size[k] += np.spacing(max(abs(hi), abs(lo), MIN_SIZE))
            elif abs(hi) > MAX_COORD:
                size[k] -= np.spacing(abs(hi))
    raise InputError(f"box (x, y, width, height) = ({x!r}, {y!r}, {w!r}, {h!r}) cannot be "
                     "written so that it reads back as a valid box")


def format_results(results: TrackResults) -> str:
    """Return the MOTChallenge text of ``results``, sorted by frame then id.

    What is written reads back with :func:`read_results` (a valid box stays valid).
    """
    order = np.lexsort((results.track_id, results.frame))
    tlwh = xyxy_to_tlwh(results.boxes[order])
    tlwh[:, :2] += 1.0  # 0-based -> 1-based file pixels
    frames = results.frame[order].tolist()
    ids = results.track_id[order].tolist()
    lines = [
        f"{f},{i},{x},{y},{w},{h},{_num(c)},-1,-1,-1\n"
        for f, i, (x, y, w, h), c in zip(
            frames, ids, _box_texts(tlwh), results.scores[order].tolist(), strict=True
        )
    ]
    return "".join(lines)


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` so that the file is either whole or as it was.

    The text goes to a temporary file in the same folder, which then replaces
    ``path`` (``os.replace``); on any failure the temporary file is removed.
    Missing parent folders are created. The file gets the permissions a plain
    write would give: those of the file it replaces, else 0666 less the umask.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = file_mode(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), mode)  # mkstemp makes it 0600
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
            rounded to 6 decimals, except a box that the rounding would make
            invalid (a width of 1e-7, say): it is written exactly, so that
            :func:`read_results` reads back every box written.
    """
    path = Path(path)
    write_atomic(path, format_results(results))  # formatting fails before any write
    logger.debug("wrote %d result rows to %s", len(results), path)
