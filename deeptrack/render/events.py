"""What the evaluation counted, frame by frame: the pairs, misses, false positives and switches.

Nothing here decides a match. The boxes scored and ignored come from
:func:`deeptrack.eval.prepare_sequence`, the correspondences and identity
switches from :func:`deeptrack.eval.frame_matches`: the same code that
``deeptrack eval`` counts MOTA with. This module only maps them back to rows of
the ground truth and result files, so that they can be drawn, and keeps the
running totals.

The running IDF1 is the identity metric of the sequence cut after a frame: its
IDTP is the largest number of (ground truth, result) boxes with IoU >= 0.5 that
a one-to-one pairing of the ids explains, which is how the official evaluation
assigns ids. After the last frame it equals ``deeptrack eval``'s IDF1 (a test
checks this).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from deeptrack.eval import (
    Benchmark,
    ClearMetrics,
    IdentityMetrics,
    frame_matches,
    infer_benchmark,
    prepare_sequence,
)
from deeptrack.eval.preprocess import IOU_THRESHOLD, GroundTruthLike, ResultsLike

__all__ = ["EvaluationEvents", "FrameEvents", "RunningScore", "evaluation_events"]

_NONE = np.zeros(0, np.int64)


@dataclass(frozen=True)
class FrameEvents:
    """What the evaluation counted in one frame; rows index the ground truth and results given.

    Attributes:
        frame: the frame number (1-based).
        matched_gt: (M,) int64 ground-truth rows matched (true positives).
        matched_res: (M,) int64 the result rows they were matched to.
        switched: (M,) bool, the match is an identity switch.
        previous_id: (M,) int64 the result id the object was matched to last
            before this frame; -1 for its first match.
        missed: (K,) int64 ground-truth rows not matched (false negatives).
        false_positives: (P,) int64 result rows matched to nothing.
        ignored: (Q,) int64 result rows that matched a distractor (a static
            person, a reflection...) and are not scored (MOT16/17/20).
    """

    frame: int
    matched_gt: NDArray[np.int64]
    matched_res: NDArray[np.int64]
    switched: NDArray[np.bool_]
    previous_id: NDArray[np.int64]
    missed: NDArray[np.int64]
    false_positives: NDArray[np.int64]
    ignored: NDArray[np.int64]

    @classmethod
    def empty(cls, frame: int) -> FrameEvents:
        """The events of a frame without any scored box."""
        return cls(frame, _NONE, _NONE, np.zeros(0, bool), _NONE, _NONE, _NONE, _NONE)

    @property
    def n_switches(self) -> int:
        """Identity switches in this frame."""
        return int(self.switched.sum())


@dataclass(frozen=True)
class RunningScore:
    """CLEAR and identity counts from the first frame through one frame.

    Attributes:
        clear: TP, FP, FN and IDSW so far (MT/PT/ML and Frag are left at 0).
        identity: IDTP, IDFP and IDFN of the sequence cut after the frame.
    """

    clear: ClearMetrics
    identity: IdentityMetrics

    @property
    def mota(self) -> float:
        """MOTA so far."""
        return self.clear.mota

    @property
    def idf1(self) -> float:
        """IDF1 so far."""
        return self.identity.idf1


@dataclass(frozen=True)
class EvaluationEvents:
    """Every frame's events of one sequence, and the running scores.

    Attributes:
        benchmark: the preprocessing rules applied (MOT15/16/17/20).
        frames: (F,) int64 the frames with a scored or ignored box, ascending.
        events: per frame of ``frames``, what was counted.
        gt_ids: (N_gt,) int64 the object id of every ground-truth row given.
        res_ids: (N_res,) int64 the track id of every result row given.
    """

    benchmark: str
    frames: NDArray[np.int64]
    events: tuple[FrameEvents, ...]
    gt_ids: NDArray[np.int64]
    res_ids: NDArray[np.int64]
    # the frames with a scored box, and through each: TP, FP, FN, IDSW, GT boxes, result boxes
    _scored_frames: NDArray[np.int64]
    _cumulative: NDArray[np.int64]
    # identity pairs (IoU >= 0.5): index in ``_scored_frames``, renumbered object and track ids
    _pair_frame: NDArray[np.int64]
    _pair_gt: NDArray[np.int64]
    _pair_res: NDArray[np.int64]

    def at(self, frame: int) -> FrameEvents:
        """Return the events of ``frame`` (empty for a frame without scored boxes)."""
        k = int(np.searchsorted(self.frames, frame))
        if k < len(self.frames) and self.frames[k] == frame:
            return self.events[k]
        return FrameEvents.empty(int(frame))

    @property
    def switch_frames(self) -> NDArray[np.int64]:
        """(S,) int64 the frames with at least one identity switch."""
        return np.asarray([e.frame for e in self.events if e.switched.any()], np.int64)

    def score_through(self, frame: int) -> RunningScore:
        """Return the counts of frames ``1..frame`` (the whole sequence once past its end)."""
        k = int(np.searchsorted(self._scored_frames, frame, side="right"))  # frames counted
        if k == 0:
            return RunningScore(ClearMetrics(), IdentityMetrics())
        tp, fp, fn, idsw, n_gt, n_res = (int(v) for v in self._cumulative[k - 1])
        idtp = self._idtp(k)
        return RunningScore(ClearMetrics(tp=tp, fn=fn, fp=fp, idsw=idsw),
                            IdentityMetrics(idtp=idtp, idfn=n_gt - idtp, idfp=n_res - idtp))

    def _idtp(self, n_frames: int) -> int:
        """Largest count of id-consistent pairs in the first ``n_frames`` scored frames."""
        upto = int(np.searchsorted(self._pair_frame, n_frames))  # pairs sorted by frame
        if upto == 0:
            return 0
        g_ids, g = np.unique(self._pair_gt[:upto], return_inverse=True)
        r_ids, r = np.unique(self._pair_res[:upto], return_inverse=True)
        counts = np.zeros((len(g_ids), len(r_ids)), np.int64)
        np.add.at(counts, (g, r), 1)
        rows, cols = linear_sum_assignment(counts, maximize=True)
        return int(counts[rows, cols].sum())


def evaluation_events(
    gt: GroundTruthLike, results: ResultsLike, *, benchmark: Benchmark | str | None = None,
    path: object = None,
) -> EvaluationEvents:
    """Lay out, frame by frame, what the MOTChallenge evaluation counts for one sequence.

    Args:
        gt: every ground-truth row of the sequence (``deeptrack.io.GroundTruth``).
        results: any tracker's rows (``deeptrack.io.TrackResults``), boxes xyxy
            in the pixel frame of ``gt``.
        benchmark: MOT15/16/17/20; None infers it from ``path`` (or
            ``gt.path``), else from the ground truth's column count, as
            ``deeptrack eval`` does.
        path: the sequence folder, for inferring the benchmark.

    Returns:
        The events, with rows indexing ``gt`` and ``results`` as given.

    Raises:
        InputError: malformed arrays (see :func:`deeptrack.eval.prepare_sequence`).
        ValueError: the benchmark is unknown or cannot be inferred.
    """
    if benchmark is not None:
        bench = Benchmark.parse(benchmark)
    else:
        where = path if path is not None else getattr(gt, "path", None)
        bench = infer_benchmark(where, getattr(gt, "n_columns", None) or None)
    seq = prepare_sequence(gt, results, bench)
    gt_ids = np.asarray(gt.track_id, np.int64).reshape(-1)
    res_ids = np.asarray(results.track_id, np.int64).reshape(-1)
    res_frame = np.asarray(results.frame, np.int64).reshape(-1)

    kept = np.zeros(len(res_ids), bool)
    for rows in seq.res_rows:
        kept[rows] = True
    ignored_rows = np.flatnonzero(~kept)
    ignored_rows = ignored_rows[np.argsort(res_frame[ignored_rows], kind="stable")]
    ignored_frames = res_frame[ignored_rows]
    frames = np.union1d(seq.frames, ignored_frames)

    last_id = np.full(seq.n_gt_ids, -1, np.int64)  # original result id, per renumbered object
    by_frame: dict[int, FrameEvents] = {}
    counts = np.zeros((len(seq.frames), 6), np.int64)
    pairs: list[tuple[NDArray[np.int64], ...]] = []
    for k, (frame, g, r, sim, g_rows, r_rows, m) in enumerate(zip(
            seq.frames.tolist(), seq.gt_ids, seq.res_ids, seq.similarity, seq.gt_rows,
            seq.res_rows, frame_matches(seq), strict=True)):
        matched_g = g[m.gt]
        previous_id = last_id[matched_g]
        last_id[matched_g] = res_ids[r_rows[m.res]]
        by_frame[frame] = FrameEvents(
            frame=frame, matched_gt=g_rows[m.gt], matched_res=r_rows[m.res],
            switched=m.switched, previous_id=previous_id,
            missed=np.delete(g_rows, m.gt), false_positives=np.delete(r_rows, m.res),
            ignored=_NONE,
        )
        tp = len(m.gt)
        counts[k] = (tp, len(r) - tp, len(g) - tp, m.switched.sum(), len(g), len(r))
        gi, ri = np.nonzero(sim >= IOU_THRESHOLD)
        pairs.append((np.full(len(gi), k, np.int64), g[gi], r[ri]))

    events = []
    starts = np.searchsorted(ignored_frames, frames)
    ends = np.searchsorted(ignored_frames, frames, side="right")
    for frame, a, b in zip(frames.tolist(), starts.tolist(), ends.tolist(), strict=True):
        e = by_frame.get(frame) or FrameEvents.empty(frame)
        if b > a:
            e = dataclasses.replace(e, ignored=ignored_rows[a:b])
        events.append(e)
    if pairs:
        pair_frame, pair_gt, pair_res = (np.concatenate(c) for c in zip(*pairs, strict=True))
    else:
        pair_frame = pair_gt = pair_res = _NONE
    return EvaluationEvents(
        benchmark=bench.value, frames=frames.astype(np.int64), events=tuple(events),
        gt_ids=gt_ids, res_ids=res_ids, _scored_frames=seq.frames,
        _cumulative=np.cumsum(counts, axis=0), _pair_frame=pair_frame, _pair_gt=pair_gt,
        _pair_res=pair_res,
    )
