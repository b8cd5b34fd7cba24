"""Offline post-processing of a whole sequence's tracks (needs future frames).

Everything in :class:`deeptrack.Tracker` is online: a frame's output depends
on that frame and the ones before. :func:`interpolate_gaps` is not: it
fills a track's short gap once the track has been seen again after it, so it
can only run once the sequence (or a window longer than the gap) is over.
Runs that use it record ``interpolate_max_gap`` in their ``config.json``, and
the rows it adds carry the score :data:`INTERPOLATED` (no detection stands
behind them).
"""

from __future__ import annotations

import numpy as np

from deeptrack.io.records import TrackResults

__all__ = ["INTERPOLATED", "interpolate_gaps"]

#: Score of the rows :func:`interpolate_gaps` adds (real scores are confidences).
INTERPOLATED = -1.0


def interpolate_gaps(results: TrackResults, max_gap: int) -> TrackResults:
    """Fill each track's gaps of at most ``max_gap`` frames by linear interpolation.

    A gap is a run of missing frames between two frames where the same
    track id is output; its boxes are interpolated corner by corner between
    the boxes on either side. Longer gaps, and frames before a track's first
    or after its last row, are left empty.

    Args:
        results: one sequence's results.
        max_gap: longest gap filled, in frames (0 returns ``results``).

    Returns:
        The rows of ``results`` plus the added ones (score ``INTERPOLATED``),
        sorted by frame, then track id.
    """
    if max_gap < 0:
        raise ValueError(f"max_gap must be >= 0, got {max_gap}")
    if max_gap == 0 or len(results) == 0:
        return results
    order = np.lexsort((results.frame, results.track_id))
    frame, ids, boxes = results.frame[order], results.track_id[order], results.boxes[order]
    step = np.diff(frame)
    # A fillable gap: the next row is the same track, 2..max_gap+1 frames later.
    at = np.flatnonzero((ids[1:] == ids[:-1]) & (step > 1) & (step <= max_gap + 1))
    if len(at) == 0:
        return results
    missing = step[at] - 1
    start = np.repeat(at, missing)
    k = np.arange(missing.sum()) - np.repeat(np.cumsum(missing) - missing, missing) + 1
    t = (k / np.repeat(step[at], missing))[:, None]
    new_boxes = boxes[start] * (1.0 - t) + boxes[start + 1] * t
    all_frame = np.concatenate([results.frame, frame[start] + k])
    all_ids = np.concatenate([results.track_id, ids[start]])
    all_boxes = np.concatenate([results.boxes, new_boxes])
    all_scores = np.concatenate([results.scores, np.full(len(start), INTERPOLATED)])
    out = np.lexsort((all_ids, all_frame))
    return TrackResults(all_frame[out], all_ids[out], all_boxes[out], all_scores[out])
