"""MOTChallenge sequence folders: frames, detections and ground truth.

A sequence folder holds ``seqinfo.ini`` (required), ``img1/000001.jpg ...``,
``det/det.txt`` (or another detection file in ``det/``) and ``gt/gt.txt``; a
split folder (``MOT17/train``) holds sequence folders.

Frame count: when ``img1/`` exists, its images are the frames; they must be
``000001<ext>`` to ``N<ext>`` without gaps (other files, such as the
``Thumbs.db`` of some MOT15 copies, are ignored). When ``N`` differs from
``seqLength`` in ``seqinfo.ini`` a warning is logged and ``N`` is used: MOT17
"mini" copies keep the full ``seqLength`` with only a few images. Without
``img1/`` (a ground-truth-only folder) ``seqLength`` is the frame count.

Rows of ``det``/``gt`` files may name frames up to ``max(N, seqLength)``: rows
for frames that are not present are dropped with one warning (the mini copies
keep the detections of the whole sequence). A frame beyond both is an error.
"""

from __future__ import annotations

import configparser
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from deeptrack.errors import DataFormatError, InputError
from deeptrack.io.mot import (
    MAX_FRAME,
    DetectionTable,
    GroundTruth,
    TrackResults,
    read_detections,
    read_ground_truth,
    read_results,
)
from deeptrack.io.resultset import check_result_file
from deeptrack.types import Detections

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sequence:
    """One sequence: metadata, frames, per-frame detections and ground truth.

    Attributes:
        name: the sequence name from ``seqinfo.ini``.
        path: the sequence folder.
        frame_rate: frames per second.
        width: image width in pixels.
        height: image height in pixels.
        n_frames: N, the number of frames (``frames`` gives ``1..N``).
        image_paths: the N image files in frame order; empty without ``img1/``.
        seq_length: ``seqLength`` as stated in ``seqinfo.ini`` (may differ from N).
        det_path: the detection file read, or None.
        gt: the ground truth (all rows, flag-0 and other classes included), or
            None when ``gt/gt.txt`` is absent.
    """

    name: str
    path: Path
    frame_rate: float
    width: int
    height: int
    n_frames: int
    image_paths: tuple[Path, ...]
    seq_length: int
    det_path: Path | None = None
    gt: GroundTruth | None = None
    _det: DetectionTable | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return self.n_frames

    @property
    def frames(self) -> NDArray[np.int64]:
        """(N,) int64 frame numbers ``1..N`` (made on each access: nothing is kept per frame)."""
        return np.arange(1, self.n_frames + 1, dtype=np.int64)

    def detections(self, frame: int) -> Detections:
        """Return the detections of ``frame`` (1-based); empty when it has none.

        Raises:
            InputError: ``frame`` is not in ``1..n_frames``, or the sequence
                was loaded without a detection file.
        """
        if self._det is None:
            raise InputError(f"sequence {self.name} was loaded without a detection file")
        if not 1 <= frame <= self.n_frames:
            raise InputError(f"frame {frame} is not in 1..{self.n_frames} of sequence {self.name}")
        a, b = np.searchsorted(self._det.frame, (frame, frame + 1))  # rows sorted by frame
        return Detections(self._det.boxes[a:b], self._det.scores[a:b])


def is_sequence_folder(path: str | Path) -> bool:
    """Whether ``path`` is a MOTChallenge sequence folder (it holds ``seqinfo.ini``)."""
    return (Path(path) / "seqinfo.ini").is_file()


def find_sequences(path: str | Path) -> list[Path]:
    """Return the sequence folders at ``path``: itself, or the ones inside a split folder.

    Raises:
        DataFormatError: ``path`` does not exist, is neither kind of folder, or
            holds a folder that looks like a sequence but lacks ``seqinfo.ini``.
    """
    path = Path(path)
    if not path.is_dir():
        raise DataFormatError(f"{path}: no such folder")
    if is_sequence_folder(path):
        return [path]
    found = []
    for child in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if is_sequence_folder(child):
            found.append(child)
        elif any((child / sub).is_dir() for sub in ("img1", "det", "gt")):
            raise DataFormatError(f"{child}: looks like a sequence folder but has no seqinfo.ini")
    if not found:
        raise DataFormatError(
            f"{path}: neither a sequence folder (with seqinfo.ini) nor a split folder "
            "containing sequence folders"
        )
    return found


def _read_seqinfo(path: Path) -> dict[str, str]:
    ini = path / "seqinfo.ini"
    parser = configparser.ConfigParser(interpolation=None)  # a '%' in a name is just a '%'
    try:
        if ini.stat().st_size > 1 << 20:  # a real one has a dozen short lines
            raise DataFormatError(f"{ini}: larger than 1 MiB; not a seqinfo.ini")
        with ini.open(encoding="utf-8") as f:
            parser.read_file(f)
    except (OSError, UnicodeDecodeError, configparser.Error) as e:
        raise DataFormatError(f"{ini}: cannot read: {e}") from None
    if not parser.has_section("Sequence"):
        raise DataFormatError(f"{ini}: no [Sequence] section")
    return dict(parser["Sequence"])


#: Frame rates accepted from ``seqinfo.ini`` (frames per second): 0 < frameRate <= this.
MAX_FRAME_RATE = 1000.0
#: Largest image side accepted from ``seqinfo.ini``, in pixels.
MAX_IMAGE_SIDE = 100_000


def _ini_number(info: dict[str, str], key: str, ini: Path, kind: type, high: float,
                unit: str) -> float:
    """Read ``key`` as a finite number of type ``kind`` in ``0 < value <= high``."""
    if key.lower() not in info:
        raise DataFormatError(f"{ini}: key {key} is missing")
    raw = info[key.lower()].strip()
    try:
        value = kind(raw)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise DataFormatError(f"{ini}: {key}={raw!r} is not {what}") from None
    if not math.isfinite(value):
        raise DataFormatError(f"{ini}: {key}={raw} is not a finite number")
    if not value > 0:
        raise DataFormatError(f"{ini}: {key}={raw} must be > 0")
    if value > high:
        raise DataFormatError(f"{ini}: {key}={raw} is beyond {high:g} {unit}")
    return value


def _list_images(img_dir: Path, ext: str) -> list[Path]:
    by_frame: dict[int, Path] = {}
    for p in img_dir.iterdir():
        if p.suffix != ext or not p.is_file():
            continue
        if not p.stem.isdigit():
            raise DataFormatError(f"{p}: image name is not a frame number")
        by_frame[int(p.stem)] = p
    n = len(by_frame)
    if n and set(by_frame) != set(range(1, n + 1)):
        missing = min(set(range(1, n + 1)) - set(by_frame))
        raise DataFormatError(
            f"{img_dir}: {n} images but frame {missing} is missing; frames must be 1..{n}"
        )
    return [by_frame[i] for i in range(1, n + 1)]


def _drop_beyond(frame: NDArray[np.int64], n_frames: int, what: Path) -> NDArray[np.bool_]:
    keep = frame <= n_frames
    dropped = int((~keep).sum())
    if dropped:
        logger.warning("%s: dropped %d rows for frames after %d (frames not present in img1/)",
                       what, dropped, n_frames)
    return keep


def load_sequence(
    path: str | Path, det_file: str | None = "det.txt", min_confidence: float | None = None
) -> Sequence:
    """Load one MOTChallenge sequence folder.

    Args:
        path: the sequence folder.
        det_file: the detection file inside ``det/`` (e.g. ``det_frcnn.txt``);
            None loads no detections (ground-truth-only folders).
        min_confidence: detections scoring below it are dropped (None keeps all).

    Returns:
        The sequence; ``gt`` is None when ``gt/gt.txt`` is absent.

    Raises:
        DataFormatError: ``seqinfo.ini`` is missing or incomplete, the images
            are not numbered ``1..N``, the detection file is missing, or a line
            of a file is malformed (the message names ``path:line``).
    """
    path = Path(path)
    if not is_sequence_folder(path):
        raise DataFormatError(f"{path}: not a sequence folder (no seqinfo.ini)")
    ini = path / "seqinfo.ini"
    info = _read_seqinfo(path)
    name = info.get("name", path.name).strip() or path.name
    frame_rate = float(_ini_number(info, "frameRate", ini, float, MAX_FRAME_RATE,
                                   "frames per second"))
    seq_length = int(_ini_number(info, "seqLength", ini, int, MAX_FRAME,
                                 "frames (the most deeptrack reads)"))
    width = int(_ini_number(info, "imWidth", ini, int, MAX_IMAGE_SIDE, "pixels"))
    height = int(_ini_number(info, "imHeight", ini, int, MAX_IMAGE_SIDE, "pixels"))
    im_dir = info.get("imdir", "img1").strip()
    if not im_dir or Path(im_dir).is_absolute() or ".." in Path(im_dir).parts:
        raise DataFormatError(f"{ini}: imDir={im_dir!r} must name a folder inside the sequence")
    img_dir = path / im_dir
    ext = info.get("imext", ".jpg").strip()

    if img_dir.is_dir():
        image_paths = _list_images(img_dir, ext)
        n_frames = len(image_paths)
        if n_frames != seq_length:
            logger.warning("%s: seqLength=%d but %s holds %d frames; using %d",
                           ini, seq_length, img_dir, n_frames, n_frames)
    else:
        image_paths = []
        n_frames = seq_length
    max_frame = max(n_frames, seq_length)

    det_path = det = None
    if det_file is not None:
        det_path = path / "det" / det_file
        if not det_path.is_file():
            present = ", ".join(sorted(p.name for p in (path / "det").glob("*.txt")))
            raise DataFormatError(
                f"{det_path}: detection file not found (det/ holds: {present or 'nothing'})"
            )
        det = _by_frame(read_detections(det_path, max_frame=max_frame,
                                        min_confidence=min_confidence), n_frames, det_path)

    gt = None
    gt_path = path / "gt" / "gt.txt"
    if gt_path.is_file():
        gt = read_ground_truth(gt_path, max_frame=max_frame)
        keep = _drop_beyond(gt.frame, n_frames, gt_path)
        if not keep.all():
            gt = gt.subset(keep)

    return Sequence(
        name=name, path=path, frame_rate=frame_rate, width=width, height=height,
        n_frames=n_frames, image_paths=tuple(image_paths), seq_length=seq_length,
        det_path=det_path, gt=gt, _det=det,
    )


def _by_frame(table: DetectionTable, n_frames: int, path: Path) -> DetectionTable:
    """Drop rows for frames not present and sort by frame (stable); no copy when already so."""
    keep = _drop_beyond(table.frame, n_frames, path)
    if not keep.all():
        table = DetectionTable(table.frame[keep], table.boxes[keep], table.scores[keep])
    if len(table) and not (table.frame[1:] >= table.frame[:-1]).all():
        order = np.argsort(table.frame, kind="stable")
        table = DetectionTable(table.frame[order], table.boxes[order], table.scores[order])
    return table


@dataclass(frozen=True)
class EvaluationInput:
    """Ground truth and a tracker's results for one sequence, ready for ``deeptrack.eval``.

    Attributes:
        name: the sequence folder's name (also the result file's stem).
        path: the sequence folder (the evaluation infers the benchmark from it).
        n_frames: frames present.
        gt: the ground truth.
        results: the tracker's results.
    """

    name: str
    path: Path
    n_frames: int
    gt: GroundTruth
    results: TrackResults


def load_evaluation_inputs(gt_path: str | Path, results_dir: str | Path) -> list[EvaluationInput]:
    """Pair each sequence's ground truth with ``<results_dir>/<sequence folder name>.txt``.

    Args:
        gt_path: a split folder or one sequence folder, with ``gt/gt.txt``.
        results_dir: the folder of result files.

    Raises:
        DataFormatError: a sequence has no ``gt/gt.txt`` or no result file
            (all missing ones are named), a file is malformed, or a result file
            differs from what the manifest of its result set lists (see
            :func:`deeptrack.io.resultset.check_result_file`).
    """
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise DataFormatError(f"{results_dir}: results folder not found")
    seqs = [load_sequence(p, det_file=None) for p in find_sequences(gt_path)]
    no_gt = [s.path for s in seqs if s.gt is None]
    if no_gt:
        raise DataFormatError(f"no gt/gt.txt in {', '.join(str(p) for p in no_gt)}")
    missing = [s.path.name for s in seqs if not (results_dir / f"{s.path.name}.txt").is_file()]
    if missing:
        raise DataFormatError(
            f"{results_dir}: no result file for sequence(s) "
            + ", ".join(f"{m} (expected {m}.txt)" for m in missing)
        )
    for s in seqs:  # a file the result set's manifest does not vouch for is refused first
        check_result_file(results_dir / f"{s.path.name}.txt")
    return [
        EvaluationInput(s.path.name, s.path, s.n_frames, gt,
                        read_results(results_dir / f"{s.path.name}.txt", max_frame=s.n_frames))
        for s in seqs
        if (gt := s.gt) is not None
    ]
