"""Drawing on one frame: result boxes in their ids' colours, trails, and the evaluation's marks.

:class:`Overlay` holds one sequence's results (and, optionally, what the
evaluation counted) indexed by frame, and draws a frame's share onto a Pillow
image of any size: boxes are 0-based xyxy pixels of the original frame, scaled
to the image. What is drawn:

- every result box in the colour of its track id (:func:`id_colours`), with
  its id, and a line through the centres of its last ``trail`` frames;
- a title bar: the sequence, the frame number, and with the evaluation the
  MOTA, IDF1 and counts of frames ``1..frame``;
- with the evaluation: false positives crossed out in red, missed ground-truth
  boxes dashed white, identity switches outlined yellow (held for ``hold``
  frames, labelled with the frame of the switch and the ids before and after),
  result boxes the evaluation ignores (they cover a distractor) in grey;
- a small legend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from deeptrack.render.events import EvaluationEvents
from deeptrack.render.palette import id_colours

if TYPE_CHECKING:
    from PIL import Image, ImageDraw, ImageFont

    from deeptrack.io import TrackResults

__all__ = ["FALSE_POSITIVE", "IGNORED", "MISSED", "SWITCH", "Overlay"]

Colour = tuple[int, int, int]

#: Colours of the evaluation's marks (RGB).
FALSE_POSITIVE: Colour = (255, 32, 32)
MISSED: Colour = (255, 255, 255)
SWITCH: Colour = (255, 221, 0)
IGNORED: Colour = (150, 150, 150)
_SHADE = (0, 0, 0, 150)  # behind the title and legend texts


@dataclass(frozen=True)
class _Switch:
    frame: int
    track_id: int
    object_id: int
    previous_id: int


class _ByFrame:
    """Row numbers of a table grouped by frame (stable: file order within a frame)."""

    def __init__(self, frame: NDArray[np.int64]) -> None:
        self.order = np.argsort(frame, kind="stable")
        self.sorted = frame[self.order]

    def rows(self, first: int, last: int) -> NDArray[np.int64]:
        """Rows of frames ``first..last``, by frame."""
        a, b = np.searchsorted(self.sorted, (first, last + 1))
        return self.order[a:b]


class Overlay:
    """One sequence's results, and optionally the evaluation's events, ready to draw per frame.

    Args:
        results: any tracker's rows (``deeptrack.io.TrackResults``).
        events: what the evaluation counted (:func:`~deeptrack.render.evaluation_events`
            of the same results), or None to draw the results alone.
        gt_boxes: (N_gt, 4) float64 xyxy boxes of the ground truth ``events``
            was made from (to draw the missed ones); needed with ``events``.
        title: the first words of the title bar (the sequence's name).
        n_frames: frames of the sequence, for the title bar.
        trail: frames of centres behind each box (0: none).
        hold: frames an identity switch stays outlined after it happened.
    """

    def __init__(
        self, results: TrackResults, *, events: EvaluationEvents | None = None,
        gt_boxes: NDArray[np.float64] | None = None, title: str = "", n_frames: int = 0,
        trail: int = 20, hold: int = 15,
    ) -> None:
        if events is not None and gt_boxes is None:
            raise ValueError("gt_boxes are needed to draw the evaluation's events")
        self.results, self.events, self.gt_boxes = results, events, gt_boxes
        self.title, self.n_frames = title, n_frames
        self.trail, self.hold = max(0, int(trail)), max(1, int(hold))
        self._by_frame = _ByFrame(results.frame)
        self._centres = (results.boxes[:, :2] + results.boxes[:, 2:]) / 2
        self._switches = self._switch_list()

    def _switch_list(self) -> list[_Switch]:
        if self.events is None:
            return []
        ev = self.events
        return [_Switch(e.frame, int(ev.res_ids[r]), int(ev.gt_ids[g]), int(p))
                for e in ev.events if e.switched.any()
                for g, r, p in zip(e.matched_gt[e.switched], e.matched_res[e.switched],
                                   e.previous_id[e.switched], strict=True)]

    # ------------------------------------------------------------------ drawing

    def draw(self, image: Image.Image, frame: int, scale: tuple[float, float]) -> None:
        """Draw ``frame``'s share onto ``image`` (an RGB frame resized by ``scale``), in place.

        Args:
            image: the frame, RGB, already resized.
            frame: its number (1-based).
            scale: (sx, sy) from original pixels to ``image`` pixels.
        """
        from PIL import ImageDraw

        held = [s for s in self._switches if frame - self.hold < s.frame <= frame]
        title = self._title_lines(frame, [s for s in held if s.frame == frame])
        pen = _Pen(ImageDraw.Draw(image, "RGBA"), image.size, scale, len(title))
        rows = self._by_frame.rows(frame, frame)
        ids = self.results.track_id[rows]
        colours = [tuple(c) for c in id_colours(ids).tolist()]
        if self.trail:
            self._draw_trails(pen, frame, ids, colours)
        events = self.events.at(frame) if self.events is not None else None
        if events is not None and self.gt_boxes is not None:
            for r in events.ignored.tolist():
                pen.box(self.results.boxes[r], IGNORED, 1)
            for g in events.missed.tolist():
                pen.dashed_box(self.gt_boxes[g], MISSED)
        for r, c in zip(rows.tolist(), colours, strict=True):
            pen.box(self.results.boxes[r], c, pen.width)
        switched_ids = {s.track_id: s for s in held}
        if events is not None:
            for r in events.false_positives.tolist():
                pen.cross(self.results.boxes[r], FALSE_POSITIVE)
        for r, i, c in zip(rows.tolist(), ids.tolist(), colours, strict=True):
            s = switched_ids.get(i)
            if s is not None:
                pen.box(self.results.boxes[r], SWITCH, 2 * pen.width, outset=pen.width)
                pen.label(self.results.boxes[r], _switch_text(s), SWITCH, below=True)
            pen.label(self.results.boxes[r], str(i), c)
        if events is not None:
            for r in events.false_positives.tolist():
                pen.label(self.results.boxes[r], "FP", FALSE_POSITIVE, below=True)
        pen.text_block(title)
        self._draw_legend(pen)

    def _draw_trails(self, pen: _Pen, frame: int, ids: NDArray[np.int64],
                     colours: Sequence[Colour]) -> None:
        past = self._by_frame.rows(frame - self.trail + 1, frame)
        past = past[np.isin(self.results.track_id[past], ids)]
        past_ids = self.results.track_id[past]
        for i, c in zip(ids.tolist(), colours, strict=True):
            centres = self._centres[past[past_ids == i]]  # in frame order
            if len(centres) > 1:
                pen.polyline(centres, c)

    def _title_lines(self, frame: int, switches: list[_Switch]) -> list[tuple[str, Colour]]:
        of = f"/{self.n_frames}" if self.n_frames else ""
        lines: list[tuple[str, Colour]] = [(f"{self.title}  frame {frame}{of}".strip(),
                                            (255, 255, 255))]
        if self.events is not None:
            score = self.events.score_through(frame)
            c = score.clear
            counts = (f"MOTA {100 * score.mota:.1f}%  IDF1 {100 * score.idf1:.1f}%  FP {c.fp}  "
                      f"FN {c.fn}  IDSW {c.idsw}  (frames 1-{frame})")
            lines.append((counts, (255, 255, 255)))
            if switches:
                text = "; ".join(f"object {s.object_id}: track {s.previous_id} -> {s.track_id}"
                                 for s in switches)
                lines.append((f"ID switch: {text}", SWITCH))
        return lines

    def _draw_legend(self, pen: _Pen) -> None:
        if self.events is None:
            tail = f"; line: last {self.trail} frames" if self.trail else ""
            pen.legend([("id", f"track (colour = id){tail}")])
            return
        entries = [("id", "matched track (colour = id)"), ("fp", "false positive"),
                   ("miss", "missed object"), ("switch", "identity switch")]
        if self.events.benchmark != "MOT15":
            entries.append(("ignored", "ignored (on a distractor)"))
        pen.legend(entries)


def _switch_text(s: _Switch) -> str:
    return f"IDSW @{s.frame}: {s.previous_id}->{s.track_id}"


def _ink(colour: Colour) -> Colour:
    """Black or white, whichever reads better on ``colour``."""
    r, g, b = colour
    return (0, 0, 0) if 0.3 * r + 0.59 * g + 0.11 * b > 140 else (255, 255, 255)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the small bitmap font, whatever the size
        return ImageFont.load_default()


class _Pen:
    """Drawing primitives in original-frame pixels, scaled to the image, sized by its height."""

    def __init__(self, draw: ImageDraw.ImageDraw, size: tuple[int, int],
                 scale: tuple[float, float], title_lines: int = 0) -> None:
        self.draw, self.size, (self.sx, self.sy) = draw, size, scale
        unit = size[1] / 540  # line widths and text follow the image height
        self.width = max(2, round(2 * unit))  # 2 px survive 4:2:0 video colour
        self.font_size = max(10, round(15 * unit))
        self.font = _font(self.font_size)
        self.step = self.font_size + 4  # between lines of text
        self.top = self.step * title_lines + 4 if title_lines else 0  # labels stay below

    def _xyxy(self, box: NDArray[np.float64]) -> list[int]:
        x1, y1, x2, y2 = box.tolist()
        return [round(x1 * self.sx), round(y1 * self.sy), round(x2 * self.sx),
                round(y2 * self.sy)]

    def box(self, box: NDArray[np.float64], colour: Colour, width: int, outset: int = 0) -> None:
        x1, y1, x2, y2 = self._xyxy(box)
        self.draw.rectangle([x1 - outset, y1 - outset, x2 + outset, y2 + outset],
                            outline=colour, width=width)

    def dashed_box(self, box: NDArray[np.float64], colour: Colour) -> None:
        x1, y1, x2, y2 = self._xyxy(box)
        dash = 4 * self.width + 2
        for a, b, horizontal, at in ((x1, x2, True, y1), (x1, x2, True, y2),
                                     (y1, y2, False, x1), (y1, y2, False, x2)):
            for s in range(a, b + 1, 2 * dash):
                e = min(s + dash, b)
                seg = [(s, at), (e, at)] if horizontal else [(at, s), (at, e)]
                self.draw.line(seg, fill=(0, 0, 0), width=self.width + 2)
                self.draw.line(seg, fill=colour, width=self.width)

    def cross(self, box: NDArray[np.float64], colour: Colour) -> None:
        x1, y1, x2, y2 = self._xyxy(box)
        self.draw.line([(x1, y1), (x2, y2)], fill=colour, width=self.width)
        self.draw.line([(x1, y2), (x2, y1)], fill=colour, width=self.width)

    def polyline(self, points: NDArray[np.float64], colour: Colour) -> None:
        xy = [(x * self.sx, y * self.sy) for x, y in points.tolist()]
        self.draw.line(xy, fill=colour, width=max(1, self.width), joint="curve")

    def label(self, box: NDArray[np.float64], text: str, colour: Colour,
              below: bool = False) -> None:
        """Write ``text`` on a ``colour`` tag at the box's top-left corner (or bottom-left)."""
        x1, y1, _, y2 = self._xyxy(box)
        left, top, right, bottom = self.font.getbbox(text)
        w, h = right - left + 4, bottom - top + 4
        y = y2 if below else y1 - h
        y = min(max(y, self.top), self.size[1] - h)
        self.draw.rectangle([x1, y, x1 + w - 1, y + h - 1], fill=colour)
        self.draw.text((x1 + 2 - left, y + 2 - top), text, font=self.font, fill=_ink(colour))

    def text_block(self, lines: list[tuple[str, Colour]]) -> None:
        """Write lines on a shaded band across the image's top."""
        self.draw.rectangle([0, 0, self.size[0], self.step * len(lines) + 4], fill=_SHADE)
        for k, (text, colour) in enumerate(lines):
            self.draw.text((6, 3 + k * self.step), text, font=self.font, fill=colour)

    def legend(self, entries: list[tuple[str, str]]) -> None:
        """Draw a swatch and a text per entry in a shaded box at the bottom-left."""
        step = self.step
        sw = 2 * self.font_size  # swatch width
        widths = [self.font.getbbox(text)[2] for _, text in entries]
        h = step * len(entries) + 6
        top = self.size[1] - h
        self.draw.rectangle([0, top, sw + max(widths) + 16, self.size[1]], fill=_SHADE)
        colours = id_colours([0, 1, 2]).tolist()
        for k, (kind, text) in enumerate(entries):
            y0 = top + 4 + k * step
            y1 = y0 + self.font_size
            x0, x1 = 6, 6 + sw
            if kind == "id":  # three ids' colours side by side
                third = (x1 - x0) // 3
                for j, c in enumerate(colours):
                    self.draw.rectangle([x0 + j * third, y0 + 2, x0 + (j + 1) * third - 2, y1 - 2],
                                        outline=tuple(c), width=self.width)
            elif kind == "fp":
                self.draw.rectangle([x0, y0 + 2, x1, y1 - 2], outline=(200, 200, 200), width=1)
                self.draw.line([(x0, y0 + 2), (x1, y1 - 2)], fill=FALSE_POSITIVE, width=self.width)
                self.draw.line([(x0, y1 - 2), (x1, y0 + 2)], fill=FALSE_POSITIVE, width=self.width)
            elif kind == "miss":
                for s in range(x0, x1, 6):
                    self.draw.line([(s, y0 + 2), (min(s + 3, x1), y0 + 2)], fill=MISSED, width=1)
                    self.draw.line([(s, y1 - 2), (min(s + 3, x1), y1 - 2)], fill=MISSED, width=1)
            elif kind == "switch":
                self.draw.rectangle([x0, y0 + 1, x1, y1 - 1], outline=SWITCH, width=2 * self.width)
            else:
                self.draw.rectangle([x0, y0 + 2, x1, y1 - 2], outline=IGNORED, width=1)
            self.draw.text((x1 + 8, y0 - 1), text, font=self.font, fill=(255, 255, 255))
