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
import tempfile
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from deeptrack.boxes import MAX_COORD, MIN_SIZE, box_ok, box_problem, xyxy_to_tlwh
from deeptrack.errors import InputError
from deeptrack.io.parsing import (
    MAX_LINE_BYTES,
    Columns,
    Table,
    count_lines,
    f8,
    fail_first,
    file_boxes_to_xyxy,
    fmt_value,
    i8,
)
from deeptrack.io.records import (
    DET_COLUMNS,
    GT15_COLUMNS,
    GT17_COLUMNS,
    MAX_FRAME,
    MAX_ID,
    RESULT_COLUMNS,
    VALID_CLASSES,
    DetectionTable,
    GroundTruth,
    TrackResults,
    first_duplicate,
)
from deeptrack.io.resultset import file_mode

__all__ = [
    "DET_COLUMNS", "GT15_COLUMNS", "GT17_COLUMNS", "MAX_FRAME", "MAX_ID", "MAX_LINE_BYTES",
    "RESULT_COLUMNS", "VALID_CLASSES", "DetectionTable", "GroundTruth", "TrackResults",
    "format_results", "read_detections", "read_ground_truth", "read_results", "write_atomic",
    "write_results",
]

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- reading


def _check_frames(
    table: Table, row0: int, values: NDArray[np.float64], max_frame: int | None
) -> NDArray[np.int64]:
    f = values[:, 0]
    fail_first(table, row0, f != np.round(f), "frame {v} is not an integer", f)
    fail_first(table, row0, f < 1, "frame {v} < 1; frame numbers start at 1", f)
    if max_frame is not None:
        fail_first(table, row0, f > max_frame,
                   f"frame {{v}} is beyond the last frame of the sequence ({max_frame})", f)
    fail_first(table, row0, f > MAX_FRAME,
               f"frame {{v}} is beyond the largest frame number supported ({MAX_FRAME})", f)
    return f.astype(np.int64)


def _check_ids(table: Table, row0: int, values: NDArray[np.float64]) -> NDArray[np.int64]:
    ids = values[:, 1]
    fail_first(table, row0, ids != np.round(ids), "id {v} is not an integer", ids)
    fail_first(table, row0, ids < 0, "id {v} is negative; ids must be >= 0", ids)
    fail_first(table, row0, ids > MAX_ID,
               f"id {{v}} is beyond the largest id supported ({MAX_ID})", ids)
    return ids.astype(np.int64)


def _check_boxes(table: Table, row0: int, values: NDArray[np.float64]) -> NDArray[np.float64]:
    """Check the x, y, width, height columns; return the boxes as 0-based xyxy."""
    fail_first(table, row0, values[:, 4] <= 0, "width {v} <= 0", values[:, 4])
    fail_first(table, row0, values[:, 5] <= 0, "height {v} <= 0", values[:, 5])
    boxes = file_boxes_to_xyxy(values)
    problem = box_problem(boxes)
    if problem is not None:
        r, what = problem
        x, y, w, h = (fmt_value(v) for v in values[r, 2:6])
        table.fail(row0 + r, f"box (x, y, width, height) = ({x}, {y}, {w}, {h}) {what}")
    return boxes


def _check_unique(
    table: Table, frame: NDArray[np.int64], ids: NDArray[np.int64]
) -> None:
    dup = first_duplicate(frame, ids)
    if dup is not None:
        first, second = dup
        table.fail(second, f"id {ids[second]} appears twice in frame {frame[second]} "
                           f"(also on line {first + 1})")


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
    table = Table(path, {7: DET_COLUMNS[:7], 10: DET_COLUMNS})
    out = Columns(count_lines(path), frame=i8(), boxes=f8(4), scores=f8())
    for row0, values in table:
        frame = _check_frames(table, row0, values, max_frame)
        fail_first(table, row0, values[:, 1] != -1,
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
    table = Table(path, {9: GT17_COLUMNS, 10: GT15_COLUMNS})
    out = Columns(count_lines(path), frame=i8(), ids=i8(), boxes=f8(4), flag=i8(),
                   class_id=i8(), visibility=f8())
    for row0, values in table:
        frame = _check_frames(table, row0, values, max_frame)
        ids = _check_ids(table, row0, values)
        boxes = _check_boxes(table, row0, values)
        flag = values[:, 6]
        fail_first(table, row0, (flag != 0) & (flag != 1),
                   f"{table.names[6]} (consider flag) is {{v}}; expected 0 or 1", flag)
        if table.n_cols == 9:
            cls = values[:, 7]
            fail_first(table, row0, ~np.isin(cls, VALID_CLASSES),
                       "class {v} is not a MOTChallenge class id (1..13)", cls)
            vis = values[:, 8]
            fail_first(table, row0, (vis < 0) | (vis > 1), "visibility {v} is not in [0, 1]",
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
    table = Table(path, {7: RESULT_COLUMNS[:7], 10: RESULT_COLUMNS})
    out = Columns(count_lines(path), frame=i8(), ids=i8(), boxes=f8(4), scores=f8())
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
    for i in np.flatnonzero(~box_ok(file_boxes_to_xyxy(back, 0))).tolist():
        texts[i] = _exact_box_texts(*tlwh[i].tolist())
    return texts


def _exact_box_texts(x: float, y: float, w: float, h: float) -> list[str]:
    size = [w, h]
    for _ in range(64):
        texts = [repr(float(v)) for v in (x, y, *size)]
        back = np.array([texts], dtype=np.float64)
        box = file_boxes_to_xyxy(back, 0)
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
