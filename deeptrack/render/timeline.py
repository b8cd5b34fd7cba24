"""Identity timelines: one row per ground-truth object, coloured by the track that covered it.

Each row is an object the evaluation scores, from its first frame on the left,
rows in order of first appearance. A frame where the evaluation matched the
object to a result box takes that track id's colour (the colours of
``deeptrack render``), a frame where it missed the object is grey, and a frame
without the object is white. A black triangle marks an identity switch; the
track id is written on long enough runs. A fragmented object shows grey gaps;
an object handed from track to track changes colour under a triangle.

Drawn with matplotlib's object interface: no pyplot, no global backend.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from deeptrack.errors import DeepTrackError, InputError
from deeptrack.render.events import EvaluationEvents, evaluation_events
from deeptrack.render.palette import id_colours

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["PLOT_FORMATS", "TimelineRows", "identity_timeline", "plot_format",
           "timeline_from_files", "timeline_image", "timeline_rows"]

#: File suffixes ``deeptrack eval --plot`` writes.
PLOT_FORMATS = (".png", ".svg", ".pdf")
MISSED_GREY = (190, 190, 190)
ABSENT = -2  # in TimelineRows.track: the object is not in the frame
MISSED = -1  # ... it is, and no result box was matched to it
#: Rows given a tick label each at most; more rows share them.
MAX_LABELLED_ROWS = 40


@dataclass(frozen=True)
class TimelineRows:
    """The timeline of one sequence as a table.

    Attributes:
        object_ids: (N,) int64 ground-truth ids, in order of first appearance.
        first_frame: the frame of column 0 (1).
        track: (N, F) int64 the track id matched to each object in each frame,
            :data:`MISSED` (-1) or :data:`ABSENT` (-2).
        switches: (S, 2) int64 (row, column) of each identity switch.
    """

    object_ids: NDArray[np.int64]
    first_frame: int
    track: NDArray[np.int64]
    switches: NDArray[np.int64]


def timeline_rows(events: EvaluationEvents, n_frames: int | None = None) -> TimelineRows:
    """Lay out ``events`` as one row per scored object and one column per frame.

    Args:
        events: the evaluation's events of one sequence.
        n_frames: columns (frames ``1..n_frames``); None ends at the last event.
    """
    obj, frame, track, switch = [], [], [], []
    for e in events.events:
        g = np.concatenate([e.matched_gt, e.missed])
        obj.append(events.gt_ids[g])
        frame.append(np.full(len(g), e.frame, np.int64))
        track.append(np.concatenate([events.res_ids[e.matched_res],
                                     np.full(len(e.missed), MISSED, np.int64)]))
        switch.append(np.concatenate([e.switched, np.zeros(len(e.missed), bool)]))
    cat = [np.concatenate(a) if a else np.zeros(0, np.int64) for a in (obj, frame, track)]
    obj_a, frame_a, track_a = cat
    switch_a = np.concatenate(switch) if switch else np.zeros(0, bool)
    last = int(frame_a.max()) if len(frame_a) else 0
    n_cols = max(last, int(n_frames or 0))
    ids, row = np.unique(obj_a, return_inverse=True)
    first = np.full(len(ids), np.iinfo(np.int64).max)
    np.minimum.at(first, row, frame_a)
    order = np.lexsort((ids, first))  # by first frame, then id
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    row = rank[row]
    grid = np.full((len(ids), n_cols), ABSENT, np.int64)
    grid[row, frame_a - 1] = track_a
    switches = np.stack([row[switch_a], frame_a[switch_a] - 1], axis=1)
    return TimelineRows(ids[order], 1, grid, switches.astype(np.int64).reshape(-1, 2))


def _raster(track: NDArray[np.int64]) -> NDArray[np.uint8]:
    """(N, F) track ids -> (N, F, 3) RGB: id colours, grey for missed, white for absent."""
    rgb = np.full((*track.shape, 3), 255, np.uint8)
    ids = track >= 0
    rgb[ids] = id_colours(track[ids])
    rgb[track == MISSED] = MISSED_GREY
    return rgb


def identity_timeline(events: EvaluationEvents, ax: Axes | None = None, *, title: str = "",
                      n_frames: int | None = None) -> Axes:
    """Draw the identity timeline of one sequence.

    Args:
        events: the evaluation's events (:func:`~deeptrack.render.evaluation_events`).
        ax: the matplotlib axes to draw in; None makes a figure of its own.
        title: the sequence's name, put before MOTA, IDF1 and the switch count.
        n_frames: the sequence's frame count (None: up to the last event).

    Returns:
        The axes drawn in (``ax.figure`` is the figure).
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    rows = timeline_rows(events, n_frames)
    if ax is None:
        from matplotlib.figure import Figure

        ax = Figure(figsize=(10, _height(len(rows.object_ids)))).subplots()
    n, f = rows.track.shape
    ax.imshow(_raster(rows.track) if n and f else np.full((1, 1, 3), 255, np.uint8),
              aspect="auto", interpolation="nearest",
              extent=(0.5, max(f, 1) + 0.5, max(n, 1) - 0.5, -0.5))
    if len(rows.switches):
        ax.scatter(rows.switches[:, 1] + 1, rows.switches[:, 0], marker="v", s=30, c="black",
                   edgecolors="white", linewidths=0.5, zorder=3)
    if n <= MAX_LABELLED_ROWS:
        _write_runs(ax, rows.track, f)
    every = max(1, math.ceil(n / MAX_LABELLED_ROWS))
    ax.set_yticks(range(0, n, every), [str(i) for i in rows.object_ids[::every].tolist()],
                  fontsize=7 if n > 20 else 8)
    ax.set_ylabel("ground-truth object")
    ax.set_xlabel("frame")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
    score = events.score_through(np.iinfo(np.int64).max)
    head = f"{title}: " if title else ""
    ax.set_title(f"{head}MOTA {100 * score.mota:.1f}%, IDF1 {100 * score.idf1:.1f}%, "
                 f"{score.clear.idsw} identity switches", fontsize=10)
    handles = [
        Patch(facecolor=tuple(c / 255 for c in id_colours([3])[0]), label="covered (colour = track id)"),
        Patch(facecolor=tuple(c / 255 for c in MISSED_GREY), label="missed"),
        Patch(facecolor="white", edgecolor="0.6", label="not in view"),
        Line2D([], [], marker="v", color="black", markeredgecolor="white", linestyle="",
               label="identity switch"),
    ]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
              frameon=False)
    return ax


def _write_runs(ax: Axes, track: NDArray[np.int64], n_cols: int) -> None:
    """Write the track id on each run of one track long enough to hold it."""
    min_run = max(3, n_cols // 25)
    for r, line in enumerate(track):
        change = np.flatnonzero(np.diff(line)) + 1
        starts = np.concatenate([[0], change])
        ends = np.concatenate([change, [len(line)]])
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            if line[a] >= 0 and b - a >= min_run:
                ax.text((a + b) / 2 + 0.5, r, str(int(line[a])), ha="center", va="center",
                        fontsize=6, color="black")


def _height(n_rows: int) -> float:
    return float(min(12.0, max(2.0, 0.16 * n_rows + 1.2)))


def plot_format(path: str | Path) -> str:
    """Return the format of a timeline file from its suffix (``png``, ``svg`` or ``pdf``).

    Raises:
        InputError: another suffix.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in PLOT_FORMATS:
        raise InputError(f"{path}: cannot tell the plot format from {suffix or 'no suffix'!r}; "
                         f"use one of {', '.join(PLOT_FORMATS)}")
    return suffix[1:]


def timeline_image(sequences: Sequence[tuple[str, EvaluationEvents, int | None]],
                   fmt: str = "png", dpi: int = 120) -> bytes:
    """Return the identity timelines of several sequences, one above the other, as a file's bytes.

    Args:
        sequences: (name, events, frame count or None) per sequence.
        fmt: ``png``, ``svg`` or ``pdf``.
        dpi: resolution of a PNG.
    """
    from matplotlib.figure import Figure

    heights = [_height(len(timeline_rows(ev, n).object_ids)) for _, ev, n in sequences]
    fig = Figure(figsize=(10, sum(heights) or 2.0), layout="constrained")
    axes = fig.subplots(max(1, len(sequences)), 1, squeeze=False,
                        gridspec_kw={"height_ratios": heights or [1]})[:, 0]
    for ax, (name, ev, n) in zip(axes, sequences, strict=False):
        identity_timeline(ev, ax, title=name, n_frames=n)
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi)
    return buf.getvalue()


def timeline_from_files(gt: str | Path, results: str | Path, fmt: str = "png", *,
                        benchmark: str | None = None) -> bytes:
    """Return the identity timelines of ``deeptrack eval --gt GT --results RESULTS``.

    Raises:
        DataFormatError: as :func:`deeptrack.io.load_evaluation_inputs`.
        InputError: an unknown or un-inferable benchmark.
    """
    from deeptrack.io import load_evaluation_inputs

    items: list[tuple[str, EvaluationEvents, Any]] = []
    for s in load_evaluation_inputs(gt, results):
        try:
            ev = evaluation_events(s.gt, s.results, benchmark=benchmark, path=s.path)
        except ValueError as e:
            if isinstance(e, DeepTrackError):
                raise
            raise InputError(str(e)) from None
        items.append((s.name, ev, s.n_frames))
    return timeline_image(items, fmt)
