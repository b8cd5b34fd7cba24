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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from deeptrack.errors import DataFormatError, InputError
from deeptrack.io.mot import (
    DetectionTable,
    GroundTruth,
    TrackResults,
    read_detections,
    read_ground_truth,
    read_results,
)
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
        frames: (N,) int64 frame numbers ``1..N``.
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
    frames: NDArray[np.int64]
    image_paths: tuple[Path, ...]
    seq_length: int
    det_path: Path | None = None
    gt: GroundTruth | None = None
    _det: DetectionTable | None = field(default=None, repr=False)
    _det_starts: NDArray[np.int64] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def n_frames(self) -> int:
        """Number of frames present."""
        return len(self.frames)

    def detections(self, frame: int) -> Detections:
        """Return the detections of ``frame`` (1-based); empty when it has none.

        Raises:
            InputError: ``frame`` is not in ``1..n_frames``, or the sequence
                was loaded without a detection file.
        """
        if self._det is None or self._det_starts is None:
            raise InputError(f"sequence {self.name} was loaded without a detection file")
        if not 1 <= frame <= self.n_frames:
            raise InputError(f"frame {frame} is not in 1..{self.n_frames} of sequence {self.name}")
        a, b = int(self._det_starts[frame - 1]), int(self._det_starts[frame])
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
    parser = configparser.ConfigParser()
    try:
        with ini.open(encoding="utf-8") as f:
            parser.read_file(f)
    except (OSError, UnicodeDecodeError, configparser.Error) as e:
        raise DataFormatError(f"{ini}: cannot read: {e}") from None
    if not parser.has_section("Sequence"):
        raise DataFormatError(f"{ini}: no [Sequence] section")
    return dict(parser["Sequence"])


def _ini_number(info: dict[str, str], key: str, ini: Path, kind: type) -> float:
    if key.lower() not in info:
        raise DataFormatError(f"{ini}: key {key} is missing")
    raw = info[key.lower()].strip()
    try:
        value = kind(raw)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise DataFormatError(f"{ini}: {key}={raw!r} is not {what}") from None
    if not value > 0:
        raise DataFormatError(f"{ini}: {key}={raw} must be > 0")
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
    frame_rate = float(_ini_number(info, "frameRate", ini, float))
    seq_length = int(_ini_number(info, "seqLength", ini, int))
    width = int(_ini_number(info, "imWidth", ini, int))
    height = int(_ini_number(info, "imHeight", ini, int))
    img_dir = path / info.get("imdir", "img1").strip()
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

    det_path = det = starts = None
    if det_file is not None:
        det_path = path / "det" / det_file
        if not det_path.is_file():
            present = ", ".join(sorted(p.name for p in (path / "det").glob("*.txt")))
            raise DataFormatError(
                f"{det_path}: detection file not found (det/ holds: {present or 'nothing'})"
            )
        table = read_detections(det_path, max_frame=max_frame, min_confidence=min_confidence)
        keep = _drop_beyond(table.frame, n_frames, det_path)
        order = np.argsort(table.frame[keep], kind="stable")
        det = DetectionTable(table.frame[keep][order], table.boxes[keep][order],
                             table.scores[keep][order])
        starts = np.searchsorted(det.frame, np.arange(1, n_frames + 2)).astype(np.int64)

    gt = None
    gt_path = path / "gt" / "gt.txt"
    if gt_path.is_file():
        gt = read_ground_truth(gt_path, max_frame=max_frame)
        keep = _drop_beyond(gt.frame, n_frames, gt_path)
        if not keep.all():
            gt = gt.subset(keep)

    return Sequence(
        name=name, path=path, frame_rate=frame_rate, width=width, height=height,
        frames=np.arange(1, n_frames + 1, dtype=np.int64), image_paths=tuple(image_paths),
        seq_length=seq_length, det_path=det_path, gt=gt, _det=det, _det_starts=starts,
    )


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
            (all missing ones are named), or a file is malformed.
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
    return [
        EvaluationInput(s.path.name, s.path, s.n_frames, gt,
                        read_results(results_dir / f"{s.path.name}.txt", max_frame=s.n_frames))
        for s in seqs
        if (gt := s.gt) is not None
    ]
