"""Annotated videos of a tracked sequence: MP4 through PyAV; GIF, WebP or a PNG strip through Pillow.

The output format follows the file's suffix (:data:`OUTPUT_FORMATS`). MP4 needs
the ``render`` extra (``pip install "deeptrack[render]"``, which brings PyAV
and its own FFmpeg); the other formats need only Pillow, a core dependency,
which holds every frame in memory until it writes the file, so they suit short
clips. A PNG strip tiles the frames, :data:`STRIP_COLUMNS` to a row, in 256 colours.

The output is written to a temporary file next to it, which replaces it only
once complete: an error or an interrupt leaves the previous file, or none.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deeptrack.errors import DataFormatError, DeepTrackError, InputError
from deeptrack.render.events import EvaluationEvents, evaluation_events
from deeptrack.render.overlay import Overlay

if TYPE_CHECKING:
    from PIL import Image

    from deeptrack.io import Sequence, TrackResults

__all__ = [
    "MAX_HELD_BYTES", "OUTPUT_FORMATS", "RENDER_EXTRA", "STRIP_COLUMNS", "MissingExtraError",
    "RenderInfo", "describe", "draw_frames", "frame_numbers", "output_format", "output_size",
    "render_from_files", "render_sequence", "results_file",
]

#: Output formats by file suffix.
OUTPUT_FORMATS = {
    ".mp4": "H.264 video through PyAV",
    ".gif": "animated GIF through Pillow",
    ".webp": "animated WebP through Pillow",
    ".png": "a strip of the frames through Pillow",
}
#: How to install what MP4 output needs.
RENDER_EXTRA = 'pip install "deeptrack[render]"'
#: Frames a PNG strip puts side by side before starting a new row.
STRIP_COLUMNS = 4
#: The most frame memory (RGB bytes) a Pillow format may hold before writing.
MAX_HELD_BYTES = 1 << 30
#: Largest ``scale`` accepted (the frames are upscaled beyond 1).
MAX_SCALE = 4.0


class MissingExtraError(DeepTrackError, ImportError):
    """An optional dependency is not installed; the message says which extra brings it."""


@dataclass(frozen=True)
class RenderInfo:
    """What :func:`render_sequence` wrote.

    Attributes:
        path: the file.
        format: its suffix without the dot (``mp4``, ``gif``, ``webp`` or ``png``).
        frames: the frame numbers drawn, in order.
        width: width of each frame drawn, in pixels.
        height: height of each frame drawn, in pixels.
        fps: frames per second of an animation.
    """

    path: Path
    format: str
    frames: tuple[int, ...]
    width: int
    height: int
    fps: float

    @property
    def n_frames(self) -> int:
        """Frames drawn."""
        return len(self.frames)


def output_format(path: str | Path) -> str:
    """Return the output format named by ``path``'s suffix (``mp4``, ``gif``, ``webp``, ``png``).

    Raises:
        InputError: another suffix, or ``path`` is a folder.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        known = ", ".join(OUTPUT_FORMATS)
        raise InputError(f"{path}: cannot tell the output format from {suffix or 'no suffix'!r};"
                         f" use one of {known}")
    if path.is_dir():
        raise InputError(f"{path}: is a folder; name the file to write")
    return suffix[1:]


def frame_numbers(n_frames: int, frames: tuple[int | None, int | None] | None = None,
                  step: int = 1) -> range:
    """Return the frames to draw: ``first..last`` (inclusive, 1-based) every ``step``.

    Args:
        n_frames: frames of the sequence.
        frames: (first, last); None on either side reaches the sequence's end.
        step: draw every ``step``-th frame.

    Raises:
        InputError: the range is empty, outside ``1..n_frames``, or ``step`` < 1.
    """
    first, last = frames if frames is not None else (None, None)
    first = 1 if first is None else int(first)
    last = n_frames if last is None else int(last)
    if int(step) < 1:
        raise InputError(f"step {step} must be >= 1")
    if not 1 <= first <= last <= n_frames:
        raise InputError(f"frames {first}:{last} are not a range within the sequence's frames "
                         f"1:{n_frames}")
    return range(first, last + 1, int(step))


def output_size(width: int, height: int, scale: float, fmt: str) -> tuple[int, int]:
    """Return the size of the drawn frames: the sequence's, times ``scale``.

    H.264 in MP4 (4:2:0 colour) needs even sides: an odd side is one pixel shorter there.

    Raises:
        InputError: ``scale`` is not a finite number in ``(0, 4]``.
    """
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and 0 < scale <= MAX_SCALE):
        raise InputError(f"scale {scale!r} must be a number in 0 < scale <= {MAX_SCALE:g}")
    w, h = max(2, round(width * scale)), max(2, round(height * scale))
    if fmt == "mp4":
        w, h = w - w % 2, h - h % 2
    return w, h


# ------------------------------------------------------------------ frames


def _load_frame(path: Path, size: tuple[int, int]) -> Image.Image:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.draft("RGB", size)  # JPEG decodes at 1/2, 1/4 or 1/8 when that still covers size
            return im.convert("RGB").resize(size, Image.BILINEAR)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as e:
        raise DataFormatError(f"cannot read image {path}: {e}") from None


def draw_frames(sequence: Sequence, overlay: Overlay, numbers: range,
                size: tuple[int, int]) -> Iterator[tuple[int, Image.Image]]:
    """Yield each frame of ``numbers`` resized to ``size``, with ``overlay`` drawn on it.

    Args:
        sequence: the sequence (``deeptrack.io.load_sequence``), with its images.
        overlay: what to draw.
        numbers: frame numbers (1-based), e.g. from :func:`frame_numbers`.
        size: (width, height) of the frames yielded.

    Yields:
        (frame number, RGB image).

    Raises:
        DataFormatError: an image cannot be read, or the sequence has none.
    """
    if not sequence.image_paths:
        raise DataFormatError(f"{sequence.path}: no images to draw on (no image folder)")
    scale = (size[0] / sequence.width, size[1] / sequence.height)
    for f in numbers:
        image = _load_frame(sequence.image_paths[f - 1], size)
        overlay.draw(image, f, scale)
        yield f, image


# ------------------------------------------------------------------ writers


def _import_av() -> Any:
    try:
        import av
    except ImportError:
        raise MissingExtraError(
            f"writing MP4 needs PyAV, which is not installed: {RENDER_EXTRA} "
            "(or write .gif, .webp or .png, which need only Pillow)") from None
    return av


class _Mp4Writer:
    """H.264 (MPEG-4 part 2 where this FFmpeg lacks an H.264 encoder) in an MP4 file."""

    def __init__(self, path: Path, size: tuple[int, int], fps: float) -> None:
        av = _import_av()
        self._av = av
        self.container = av.open(str(path), mode="w", format="mp4")
        try:
            rate = Fraction(fps).limit_denominator(1001)
            codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
            self.stream = self.container.add_stream(codec, rate=rate)
            self.stream.width, self.stream.height = size
            self.stream.pix_fmt = "yuv420p"
            if codec == "libx264":
                self.stream.options = {"crf": "23", "preset": "veryfast"}
            else:
                self.stream.bit_rate = 4_000_000
        except BaseException:
            self.container.close()
            raise

    def add(self, image: Image.Image) -> None:
        frame = self._av.VideoFrame.from_image(image).reformat(format="yuv420p")
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def finish(self) -> None:
        for packet in self.stream.encode(None):  # flush the encoder
            self.container.mux(packet)
        self.container.close()

    def abandon(self) -> None:
        with contextlib.suppress(Exception):
            self.container.close()


class _PillowWriter:
    """GIF, WebP or a PNG strip: frames held until :meth:`finish` writes them."""

    def __init__(self, path: Path, fmt: str, fps: float) -> None:
        self.path, self.fmt, self.fps = path, fmt, fps
        self.images: list[Image.Image] = []

    def add(self, image: Image.Image) -> None:
        self.images.append(image)

    def finish(self) -> None:
        from PIL import Image

        first, rest = self.images[0], self.images[1:]
        if self.fmt == "png":
            # 256 colours: a quarter of the bytes of full colour, small enough for a README
            sheet = _strip(self.images).quantize(256, method=Image.Quantize.MEDIANCUT,
                                                 dither=Image.Dither.NONE)
            sheet.save(self.path, format="PNG", optimize=True)
            return
        duration = max(10, round(1000 / self.fps))  # GIF counts in hundredths of a second
        if self.fmt == "gif":
            first.save(self.path, format="GIF", save_all=True, append_images=rest,
                       duration=duration, loop=0)
        else:
            first.save(self.path, format="WEBP", save_all=True, append_images=rest,
                       duration=duration, loop=0, quality=80)

    def abandon(self) -> None:
        self.images.clear()


def _strip(images: list[Image.Image]) -> Image.Image:
    """Tile equal-sized images, :data:`STRIP_COLUMNS` to a row, 4 px apart."""
    from PIL import Image

    gap = 4
    w, h = images[0].size
    cols = min(len(images), STRIP_COLUMNS)
    rows = -(-len(images) // cols)
    sheet = Image.new("RGB", (cols * w + (cols - 1) * gap, rows * h + (rows - 1) * gap),
                      (32, 32, 32))
    for k, image in enumerate(images):
        sheet.paste(image, ((k % cols) * (w + gap), (k // cols) * (h + gap)))
    return sheet


@contextlib.contextmanager
def _atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; it replaces ``path`` if the block succeeds."""
    from deeptrack.io.resultset import file_mode

    path.parent.mkdir(parents=True, exist_ok=True)
    mode = file_mode(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, mode)  # mkstemp makes it 0600
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


# ------------------------------------------------------------------ rendering


def render_sequence(
    sequence: Sequence,
    results: TrackResults,
    out: str | Path,
    *,
    events: EvaluationEvents | None = None,
    frames: tuple[int | None, int | None] | None = None,
    step: int = 1,
    scale: float = 0.5,
    trail: int = 20,
    progress: Callable[[int, int], None] | None = None,
) -> RenderInfo:
    """Draw a tracker's results on a sequence's frames and write them as a video or a strip.

    Args:
        sequence: the sequence (``deeptrack.io.load_sequence``), with its images.
        results: any tracker's rows for it (``deeptrack.io.read_results``).
        out: the file to write; its suffix picks the format (:data:`OUTPUT_FORMATS`).
        events: what the evaluation counted (:func:`evaluation_events` of
            ``sequence.gt`` and ``results``) to mark false positives, misses and
            identity switches, with the running MOTA and IDF1; None for none.
        frames: (first, last) frame numbers, inclusive; None for all.
        step: draw every ``step``-th frame (an animation then plays at the
            frame rate divided by ``step``, in real time).
        scale: size of the drawn frames relative to the sequence's (0 < scale <= 4).
        trail: frames of centres drawn behind each box (0: none).
        progress: called as ``progress(done, total)`` after each frame.

    Returns:
        What was written.

    Raises:
        InputError: a bad format, range, scale or trail, or too many frames
            for a Pillow format to hold.
        MissingExtraError: MP4 asked for without PyAV installed.
        DataFormatError: an image cannot be read.
        OSError: the file cannot be written (then nothing was).
    """
    out = Path(out)
    fmt = output_format(out)
    if fmt == "mp4":
        _import_av()
    numbers = frame_numbers(sequence.n_frames, frames, step)
    size = output_size(sequence.width, sequence.height, scale, fmt)
    if isinstance(trail, bool) or not isinstance(trail, int) or trail < 0:
        raise InputError(f"trail {trail!r} must be an integer >= 0")
    held = len(numbers) * size[0] * size[1] * 3
    if fmt != "mp4" and held > MAX_HELD_BYTES:
        raise InputError(
            f"{len(numbers)} frames of {size[0]}x{size[1]} would hold {held / 1e9:.1f} GB in "
            f"memory to write a {fmt.upper()}; draw fewer frames, a smaller scale, or an MP4")
    fps = sequence.frame_rate / numbers.step
    overlay = Overlay(results, events=events,
                      gt_boxes=sequence.gt.boxes if sequence.gt is not None else None,
                      title=sequence.name, n_frames=sequence.n_frames, trail=trail,
                      hold=max(1, round(sequence.frame_rate / 2 / numbers.step)))
    with _atomic_path(out) as tmp:
        writer: _Mp4Writer | _PillowWriter = (
            _Mp4Writer(tmp, size, fps) if fmt == "mp4" else _PillowWriter(tmp, fmt, fps))
        try:
            for done, (_, image) in enumerate(draw_frames(sequence, overlay, numbers, size), 1):
                writer.add(image)
                if progress is not None:
                    progress(done, len(numbers))
            writer.finish()
        except BaseException:
            writer.abandon()
            raise
    return RenderInfo(out, fmt, tuple(numbers), size[0], size[1], fps)


def describe(info: RenderInfo, events: EvaluationEvents | None = None) -> str:
    """Return a line or two saying what was written and, with ``events``, what was found."""
    first, last = info.frames[0], info.frames[-1]
    text = (f"{info.n_frames} frames ({first}-{last}, {info.width}x{info.height}) written to "
            f"{info.path}")
    if events is None:
        return text
    score = events.score_through(last)
    switches = events.switch_frames
    shown = switches[(switches >= first) & (switches <= last)].tolist()
    n_shown = sum(events.at(f).n_switches for f in shown)
    listed = ", ".join(map(str, shown[:12])) + (", ..." if len(shown) > 12 else "")
    return (f"{text}\nframes 1-{last}: MOTA {100 * score.mota:.1f}%, IDF1 "
            f"{100 * score.idf1:.1f}%, {score.clear.idsw} identity switches; in the frames "
            f"drawn: {n_shown}{f' (frames {listed})' if shown else ''}")


def results_file(results: str | Path, sequence: Sequence) -> Path:
    """Return the result file of ``sequence``: ``results`` itself, or ``results/<folder>.txt``.

    Raises:
        DataFormatError: neither exists.
    """
    results = Path(results)
    if results.is_dir():
        path = results / f"{sequence.path.name}.txt"
        if not path.is_file():
            raise DataFormatError(f"{results}: no result file for sequence {sequence.path.name} "
                                  f"(expected {path.name})")
        return path
    if not results.is_file():
        raise DataFormatError(f"{results}: no such result file or folder")
    return results


def render_from_files(
    sequence: str | Path,
    results: str | Path,
    out: str | Path,
    *,
    gt: bool = False,
    benchmark: str | None = None,
    **options: Any,
) -> tuple[RenderInfo, EvaluationEvents | None]:
    """Render a sequence folder with a result file, as ``deeptrack render`` does.

    Args:
        sequence: a MOTChallenge sequence folder (with ``seqinfo.ini`` and its images).
        results: the tracker's result file, or a folder holding ``<sequence folder>.txt``
            (any tracker's MOTChallenge output; files of a deeptrack result set
            are checked against its manifest, as ``deeptrack eval`` does).
        out: the file to write (see :func:`render_sequence`).
        gt: mark what the evaluation counts against the sequence's ``gt/gt.txt``.
        benchmark: MOT15/16/17/20 rules for ``gt``; None infers them as
            ``deeptrack eval`` does.
        **options: ``frames``, ``step``, ``scale``, ``trail``, ``progress`` of
            :func:`render_sequence`.

    Returns:
        What was written, and the events marked (None without ``gt``).

    Raises:
        DataFormatError: a missing or malformed folder or file.
        InputError: see :func:`render_sequence`; an unknown benchmark.
        MissingExtraError: MP4 asked for without PyAV installed.
    """
    from deeptrack.io import check_result_file, load_sequence, read_results

    if output_format(out) == "mp4":  # before reading anything
        _import_av()
    seq = load_sequence(sequence, det_file=None)
    path = results_file(results, seq)
    check_result_file(path)
    res = read_results(path, max_frame=seq.n_frames)
    events = None
    if gt:
        if seq.gt is None:
            raise DataFormatError(f"{seq.path}: no gt/gt.txt to score the results against")
        try:
            events = evaluation_events(seq.gt, res, benchmark=benchmark, path=seq.path)
        except ValueError as e:  # an unknown or un-inferable benchmark
            if isinstance(e, DeepTrackError):
                raise
            raise InputError(str(e)) from None
    return render_sequence(seq, res, out, events=events, **options), events
