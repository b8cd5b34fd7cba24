"""MOTChallenge preprocessing: which ground truth is scored, which results are ignored.

This follows the official MOTChallenge evaluation (TrackEval's
``MotChallenge2DBox``), frame by frame:

1. MOT16/17/20: every result box is matched to *all* ground-truth boxes of the
   frame (any class, any flag) by a Hungarian assignment maximising IoU over
   the pairs with IoU >= 0.5. Result boxes matched to a distractor (class 2
   person on vehicle, 7 static person, 8 distractor, 12 reflection, and on MOT20
   also 6 non-motorised vehicle) are removed. A result box matched to another
   non-pedestrian class (e.g. a car) stays, and counts as a false positive.
2. Only ground truth with a non-zero consider flag *and* class 1 (pedestrian)
   is scored. MOT15 files have no class column: step 1 is skipped and every
   row with a non-zero flag is scored.
3. Ground-truth and result ids are renumbered ``0..n-1`` over the boxes that
   remain (so an id whose every box was removed does not count).

The IoU of every remaining (ground truth, result) pair is kept per frame for
the metrics. Frames without any remaining box are left out: no metric depends
on them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from deeptrack.boxes import iou_matrix, validate_xyxy
from deeptrack.errors import InputError

EPS = float(np.finfo(float).eps)
#: IoU a result box needs to match a ground-truth box (CLEAR, identity, preprocessing).
IOU_THRESHOLD = 0.5
PEDESTRIAN = 1
DISTRACTOR_CLASSES = (2, 7, 8, 12)
MOT20_EXTRA_DISTRACTORS = (6,)
VALID_CLASSES = tuple(range(1, 14))


class Benchmark(str, Enum):
    """Which MOTChallenge benchmark's preprocessing rules apply."""

    MOT15 = "MOT15"
    MOT16 = "MOT16"
    MOT17 = "MOT17"
    MOT20 = "MOT20"

    @classmethod
    def parse(cls, value: str | Benchmark) -> Benchmark:
        """Return the benchmark named by ``value``; raise ``ValueError`` listing the valid names."""
        if isinstance(value, cls):
            return value
        text = str(value).upper().replace("2DMOT2015", "MOT15")
        try:
            return cls(text)
        except ValueError:
            valid = ", ".join(b.value for b in cls)
            raise ValueError(f"unknown benchmark {value!r}; expected one of: {valid}") from None

    @property
    def distractor_classes(self) -> tuple[int, ...]:
        """Ground-truth classes whose matched result boxes are removed (none for MOT15)."""
        if self is Benchmark.MOT15:
            return ()
        if self is Benchmark.MOT20:
            return DISTRACTOR_CLASSES + MOT20_EXTRA_DISTRACTORS
        return DISTRACTOR_CLASSES


_BENCHMARK_IN_NAME = re.compile(r"(?:^|[^a-z0-9])(2dmot2015|mot15|mot16|mot17|mot20)(?:$|[^0-9])")


def infer_benchmark(path: str | Path | None = None, gt_columns: int | None = None) -> Benchmark:
    """Guess the benchmark from a path, else from the ground truth's column count.

    The folder names closest to the file win (``.../MOT20/train/MOT17-02`` is
    MOT17). Without a benchmark name in the path, a 10-column ground truth is
    MOT15 and a 9-column one MOT17 (MOT16 and MOT17 share their rules).

    Raises:
        ValueError: the path names a MOT16/17/20 benchmark but the ground
            truth has the 10-column MOT15 layout, or neither gives an answer.
    """
    found = None
    if path is not None:
        for part in reversed(Path(path).parts):
            m = _BENCHMARK_IN_NAME.search(part.lower())
            if m:
                found = Benchmark.parse(m.group(1))
                break
    if found is not None:
        if found is not Benchmark.MOT15 and gt_columns == 10:
            raise ValueError(
                f"{path} looks like {found.value} but its ground truth has the 10-column "
                "MOT15 layout (no class column); pass the benchmark explicitly"
            )
        return found
    if gt_columns == 10:
        return Benchmark.MOT15
    if gt_columns == 9:
        return Benchmark.MOT17
    raise ValueError(
        f"cannot infer the benchmark (path {path}, {gt_columns} gt columns); pass it explicitly"
    )


class GroundTruthLike(Protocol):
    """What the evaluation reads from ground truth (``deeptrack.io.GroundTruth`` has it).

    Attributes:
        frame: (N,) int frame numbers.
        track_id: (N,) int object ids.
        boxes: (N, 4) float xyxy boxes.
        flag: (N,) int consider flag, 0 = not scored.
        class_id: (N,) int classes; -1 (no class) is only valid for MOT15.
    """

    frame: Any
    track_id: Any
    boxes: Any
    flag: Any
    class_id: Any


class ResultsLike(Protocol):
    """What the evaluation reads from results (``deeptrack.io.TrackResults`` has it)."""

    frame: Any
    track_id: Any
    boxes: Any


@dataclass(frozen=True)
class PreparedSequence:
    """One sequence after preprocessing, split by frame.

    Attributes:
        frames: (F,) int64 frame numbers that keep at least one box, ascending.
        gt_ids: per frame, (G_t,) int64 ground-truth ids in ``0..n_gt_ids-1``.
        res_ids: per frame, (R_t,) int64 result ids in ``0..n_res_ids-1``.
        similarity: per frame, (G_t, R_t) float64 IoU.
        n_gt_ids: distinct scored ground-truth ids.
        n_res_ids: distinct remaining result ids.
        n_removed: result boxes removed as matches of distractors.
        gt_rows: per frame, (G_t,) int64 rows of those boxes in the ``gt``
            passed to :func:`prepare_sequence` (to draw them; empty when not
            recorded).
        res_rows: per frame, (R_t,) int64 rows of those boxes in the results
            passed in (empty when not recorded).
    """

    frames: NDArray[np.int64]
    gt_ids: tuple[NDArray[np.int64], ...]
    res_ids: tuple[NDArray[np.int64], ...]
    similarity: tuple[NDArray[np.float64], ...]
    n_gt_ids: int
    n_res_ids: int
    n_removed: int = 0
    gt_rows: tuple[NDArray[np.int64], ...] = ()
    res_rows: tuple[NDArray[np.int64], ...] = ()

    @property
    def n_gt_dets(self) -> int:
        """Scored ground-truth boxes."""
        return int(sum(len(g) for g in self.gt_ids))

    @property
    def n_res_dets(self) -> int:
        """Remaining result boxes."""
        return int(sum(len(r) for r in self.res_ids))


def _int_column(x: Any, name: str, n: int | None) -> NDArray[np.int64]:
    a = np.asarray(x)
    if a.size == 0:
        a = a.reshape(0)
    if a.ndim != 1 or (n is not None and len(a) != n):
        raise InputError(f"{name} must have shape ({n if n is not None else 'N'},), got {a.shape}")
    if a.dtype.kind == "f" and len(a) and not (np.isfinite(a) & (a == np.round(a))).all():
        raise InputError(f"{name} must hold integers")
    if a.dtype.kind not in "iubf":
        raise InputError(f"{name} must be numeric, got dtype {a.dtype}")
    return a.astype(np.int64)


def _check_unique(frame: NDArray[np.int64], ids: NDArray[np.int64], what: str) -> None:
    if len(frame) < 2:
        return
    order = np.lexsort((ids, frame))
    same = (frame[order][1:] == frame[order][:-1]) & (ids[order][1:] == ids[order][:-1])
    if same.any():
        k = order[1:][same][0]
        raise InputError(f"{what} id {ids[k]} appears twice in frame {frame[k]}")


def prepare_sequence(
    gt: GroundTruthLike, results: ResultsLike, benchmark: Benchmark | str
) -> PreparedSequence:
    """Apply the MOTChallenge preprocessing to one sequence.

    Args:
        gt: all ground-truth rows of the sequence (flag-0 and non-pedestrian
            rows included: they decide which result boxes are removed).
        results: the tracker's rows; boxes xyxy in the same pixel frame as gt.
        benchmark: decides the distractor classes, and MOT15 skips step 1.

    Returns:
        The scored boxes per frame with their IoU matrices.

    Raises:
        InputError: mismatched shapes, an id twice in one frame, or a class
            outside 1..13 for a MOT16/17/20 benchmark.
    """
    benchmark = Benchmark.parse(benchmark)
    g_frame = _int_column(gt.frame, "gt.frame", None)
    n_g = len(g_frame)
    g_id = _int_column(gt.track_id, "gt.track_id", n_g)
    g_flag = _int_column(gt.flag, "gt.flag", n_g)
    g_cls = _int_column(gt.class_id, "gt.class_id", n_g)
    g_box = validate_xyxy(gt.boxes, "gt.boxes") if n_g else np.zeros((0, 4))
    if len(g_box) != n_g:
        raise InputError(f"gt.boxes has {len(g_box)} rows but gt.frame has {n_g}")
    r_frame = _int_column(results.frame, "results.frame", None)
    n_r = len(r_frame)
    r_id = _int_column(results.track_id, "results.track_id", n_r)
    r_box = np.asarray(results.boxes, dtype=np.float64).reshape(-1, 4)
    if len(r_box) != n_r:
        raise InputError(f"results.boxes has {len(r_box)} rows but results.frame has {n_r}")
    if not np.isfinite(r_box).all():
        raise InputError("results.boxes contains NaN or inf")
    _check_unique(g_frame, g_id, "ground-truth")
    _check_unique(r_frame, r_id, "result")
    if benchmark is not Benchmark.MOT15:
        bad = ~np.isin(g_cls, VALID_CLASSES)
        if bad.any():
            raise InputError(
                f"ground-truth class {g_cls[bad][0]} is not a MOTChallenge class (1..13); "
                f"{benchmark.value} needs the 9-column gt with a class column "
                "(use benchmark MOT15 for 10-column MOT15 files)"
            )

    # stable sorts keep the file order inside a frame: it breaks assignment ties
    g_order = np.argsort(g_frame, kind="stable")
    r_order = np.argsort(r_frame, kind="stable")
    g_frame, g_id, g_flag, g_cls, g_box = (
        g_frame[g_order], g_id[g_order], g_flag[g_order], g_cls[g_order], g_box[g_order])
    r_frame, r_id, r_box = r_frame[r_order], r_id[r_order], r_box[r_order]
    frames = np.union1d(g_frame, r_frame)
    g_start = np.searchsorted(g_frame, frames)
    g_end = np.searchsorted(g_frame, frames, side="right")
    r_start = np.searchsorted(r_frame, frames)
    r_end = np.searchsorted(r_frame, frames, side="right")

    scored = g_flag != 0
    if benchmark is not Benchmark.MOT15:
        scored &= g_cls == PEDESTRIAN
    distractor = np.isin(g_cls, benchmark.distractor_classes)

    kept_frames, gt_raw, res_raw, sims, gt_rows, res_rows = [], [], [], [], [], []
    n_removed = 0
    for k, frame in enumerate(frames):
        gs, ge, rs, re_ = g_start[k], g_end[k], r_start[k], r_end[k]
        sim = iou_matrix(g_box[gs:ge], r_box[rs:re_])
        keep_r = np.ones(re_ - rs, bool)
        if benchmark is not Benchmark.MOT15 and ge > gs and re_ > rs:
            match = np.where(sim < IOU_THRESHOLD - EPS, 0.0, sim)
            rows, cols = linear_sum_assignment(-match)
            hit = match[rows, cols] > EPS
            removed = cols[hit & distractor[gs:ge][rows]]
            keep_r[removed] = False
            n_removed += len(removed)
        keep_g = scored[gs:ge]
        if not keep_g.any() and not keep_r.any():
            continue
        kept_frames.append(frame)
        gt_raw.append(g_id[gs:ge][keep_g])
        res_raw.append(r_id[rs:re_][keep_r])
        sims.append(sim[np.ix_(keep_g, keep_r)])
        gt_rows.append(g_order[gs:ge][keep_g])
        res_rows.append(r_order[rs:re_][keep_r])

    gt_ids, n_gt_ids = _renumber(gt_raw)
    res_ids, n_res_ids = _renumber(res_raw)
    return PreparedSequence(
        np.asarray(kept_frames, np.int64), gt_ids, res_ids, tuple(sims), n_gt_ids, n_res_ids,
        n_removed, tuple(gt_rows), tuple(res_rows),
    )


def _renumber(per_frame: list[NDArray[np.int64]]) -> tuple[tuple[NDArray[np.int64], ...], int]:
    """Map ids to 0..n-1 in increasing order of the original id."""
    if not per_frame:
        return (), 0
    flat = np.concatenate(per_frame)
    uniq, inverse = np.unique(flat, return_inverse=True)
    split = np.cumsum([len(a) for a in per_frame])[:-1]
    return tuple(np.split(inverse.astype(np.int64), split)), len(uniq)
