"""Peers: deeptrack's presets side by side with the trackers a user would pick instead.

On the same detections of every sequence under ``--data`` that has both
detection files (``det/det.txt``, ACF; ``det/det_frcnn.txt``, Faster R-CNN),
this runs:

- deeptrack's presets (``configs/*.yaml``, or the files given), through the
  library: ``load_sequence`` -> ``sequence_features`` -> ``run_sequence``;
- deep-sort-realtime (``embedder=None``, its defaults) fed ready embeddings:
  ``+roi`` the avg-pooled ImageNet MobileNetV2 RoI vectors of deeptrack's
  deepsort preset, ``+osnet`` OSNet x0.25 (MSMT17) vectors of 256x128 crops
  (onnxruntime; cached in ``~/.cache/deeptrack/peers``);
- every motion tracker roboflow's ``trackers`` package ships (found by
  inspecting the installed package), with its defaults;
- norfair (IoU distance) and motpy (``MultiObjectTracker`` defaults);
- boxmot's trackers only if ``import boxmot`` works (it does not here; see the
  report). boxmot is AGPL-3.0: nothing outside this script may import it.

Every tracker is scored with deeptrack's evaluator
(``deeptrack.eval.evaluate_sequence``). Speed is association frames/s: only
the tracker's per-frame update call is timed (with the adapter's format
conversion around it), never image reading or feature extraction.

Scores: deeptrack's presets get the file's raw scores (a preset's
``min_confidence`` decides). Peers expect confidences in [0, 1]: ACF scores
(``det.txt``, roughly -1..150) become ``clip(score / 100, 0, 1)``; Faster
R-CNN scores (0.5..1) are passed as they are. Every tracker gets every box of
the file; only a library's own default thresholds filter.

Usage::

    python benchmarks/peers.py [--data DIR] [--weights-dir DIR] [--weights FILE]
        [--configs A.yaml B.yaml ...] [--only NAME,...] [--out benchmarks/results]

Writes ``peers.json`` and ``peers.md`` into ``--out`` (atomically, after every
run succeeded). Errors in the inputs print one line on stderr (exit status 2).
"""

from __future__ import annotations

import os

if __name__ == "__main__":
    # Before numpy loads: small per-frame products; BLAS thread hand-offs on a
    # shared 2-core machine cost more than they save (see pooling_study.py).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import importlib.metadata
import inspect
import io
import json
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from deeptrack import __version__
from deeptrack.config import (
    AppearanceConfig,
    RunConfig,
    default_cache_dir,
    load_yaml,
    with_overrides,
)
from deeptrack.errors import DeepTrackError
from deeptrack.io.mot import TrackResults, write_atomic
from deeptrack.io.sequence import Sequence as MotSequence
from deeptrack.io.sequence import load_sequence

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("DEEPTRACK_DATA") or REPO.parent / "shared" / "data")
DEFAULT_WEIGHTS_DIR = Path(os.environ.get("DEEPTRACK_WEIGHTS") or REPO.parent / "shared" / "weights")
MOBILENET_FILE = "mobilenet_v2_imagenet_features.pth"
OSNET_FILE = "osnet_x0_25_msmt17.onnx"
#: The OSNet weights deeptrack's own OSNet presets load (other weights than the .onnx).
OSNET_PTH_FILE = "osnet_x0_25_msmt17.pth"
#: The preset whose OSNet crop vectors deep-sort-realtime+osnet-pth is fed.
OSNET_PRESET = REPO / "configs" / "fused_osnet.yaml"
PEERS_CACHE = Path("~/.cache/deeptrack/peers").expanduser()
DET_FILES = ("det.txt", "det_frcnn.txt")
#: The preset whose RoI vectors deep-sort-realtime+roi is fed.
ROI_PRESET = REPO / "configs" / "deepsort.yaml"
FIRST_PRESETS = ("deepsort.yaml", "sort.yaml")

#: ACF (det.txt) scores are unbounded (about -1..150): peers get clip(score / 100, 0, 1).
ACF_SCALE = 100.0
#: norfair has no default distance; "iou" is its box distance, 0.7 (IoU >= 0.3)
#: the threshold of norfair's own bounding-box demo.
NORFAIR_DISTANCE, NORFAIR_THRESHOLD = "iou", 0.7
#: OSNet's input: (height, width), RGB scaled to [0, 1], then ImageNet mean/std.
OSNET_SIZE = (256, 128)
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
#: Bumped when the crop or its normalisation changes, so old cache files miss.
OSNET_CACHE_VERSION = 1

#: SequenceMetrics.to_dict() keys kept per run.
METRICS = ("mota", "idf1", "hota", "deta", "assa", "idsw", "fp", "fn")
DEEPTRACK = "deeptrack"
BOXMOT_NOTE = ("not importable. `pip install --dry-run boxmot` (boxmot 25.0.0) would downgrade "
               "opencv-python 5.0.0.93 -> 4.14.0.94 in the shared environment and add about 25 "
               "packages (pandas, pyarrow, scikit-learn, timm, huggingface_hub, gdown, lapx, "
               "...), so it was not installed and no adapter was written")


class PeersError(DeepTrackError):
    """A usage error of the benchmark (exit status 2)."""


def log(message: str) -> None:
    """Progress on stderr with the time of day."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- frames in, results out


@dataclass(frozen=True)
class FrameInput:
    """One frame as every peer receives it.

    Attributes:
        frame: 1-based frame number.
        boxes: (N, 4) float64 xyxy pixels.
        scores: (N,) float64 confidences in [0, 1] (see :func:`peer_scores`).
        embeddings: (N, D) float32 unit vectors, or None for motion-only peers.
    """

    frame: int
    boxes: NDArray[np.float64]
    scores: NDArray[np.float64]
    embeddings: NDArray[np.float32] | None = None


@dataclass(frozen=True)
class FrameOutput:
    """What a peer reports for one frame: (M,) int ids, (M, 4) xyxy boxes, (M,) scores."""

    track_ids: NDArray[np.int64]
    boxes: NDArray[np.float64]
    scores: NDArray[np.float64]

    @classmethod
    def from_rows(cls, ids: Iterable[int], boxes: Iterable[Any],
                  scores: Iterable[float]) -> FrameOutput:
        """Build from per-track values (lists or arrays)."""
        return cls(np.asarray(list(ids), np.int64).reshape(-1),
                   np.asarray(list(boxes), np.float64).reshape(-1, 4),
                   np.asarray(list(scores), np.float64).reshape(-1))


class PeerTracker(Protocol):
    """A peer library's tracker behind one call per frame."""

    def update(self, frame: FrameInput) -> FrameOutput: ...


@dataclass(frozen=True)
class TimedRun:
    """A tracker's results on one sequence and the seconds its update calls took.

    Attributes:
        results: the reported boxes per frame.
        seconds: wall time of the per-frame update calls only.
        frames: frames tracked.
        dropped: reported rows left out because their box was not finite or
            had no area (predicted boxes can collapse).
    """

    results: TrackResults
    seconds: float
    frames: int
    dropped: int = 0

    @property
    def fps(self) -> float:
        """Frames per second of the update calls."""
        return self.frames / self.seconds if self.seconds > 0 else float("inf")


def collect(outputs: Sequence[tuple[int, FrameOutput]]) -> tuple[TrackResults, int]:
    """Stack per-frame outputs into ``TrackResults``; drop rows whose box is unusable.

    Returns:
        The results and how many rows were dropped (non-finite box, or width
        or height not positive).
    """
    if not outputs:
        return TrackResults.empty(), 0
    frame = np.concatenate([np.full(len(o.track_ids), f, np.int64) for f, o in outputs])
    ids = np.concatenate([o.track_ids for _, o in outputs])
    boxes = np.concatenate([o.boxes for _, o in outputs])
    scores = np.concatenate([o.scores for _, o in outputs])
    ok = (np.isfinite(boxes).all(1) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
          & np.isfinite(scores))
    results = TrackResults(frame[ok], ids[ok], boxes[ok], scores[ok])
    return results, int((~ok).sum())


def run_peer(tracker: PeerTracker, frames: Iterable[FrameInput]) -> TimedRun:
    """Feed every frame to ``tracker`` in order; time only its ``update`` calls."""
    outputs = []
    elapsed = 0.0
    for f in frames:
        start = time.perf_counter()
        out = tracker.update(f)
        elapsed += time.perf_counter() - start
        outputs.append((f.frame, out))
    results, dropped = collect(outputs)
    return TimedRun(results, elapsed, len(outputs), dropped)


def peer_scores(scores: NDArray[np.floating], det_file: str) -> NDArray[np.float64]:
    """Map a detection file's scores to the [0, 1] confidences peers expect.

    ACF scores (``det.txt``) are unbounded and become ``clip(score / 100, 0, 1)``;
    other files (Faster R-CNN, 0.5..1) keep their scores, clipped to [0, 1]
    (a no-op for them).
    """
    scale = ACF_SCALE if det_file == "det.txt" else 1.0
    return np.clip(np.asarray(scores, np.float64) / scale, 0.0, 1.0)


def peer_frames(seq: MotSequence, embeddings: Sequence[NDArray[np.float32]] | None = None
                ) -> list[FrameInput]:
    """Return every frame of ``seq`` with all its detections, scores mapped for peers."""
    det_file = seq.det_path.name if seq.det_path is not None else ""
    frames = []
    for i, number in enumerate(seq.frames):
        dets = seq.detections(int(number))
        emb = embeddings[i] if embeddings is not None else None
        frames.append(FrameInput(int(number), dets.boxes, peer_scores(dets.scores, det_file), emb))
    return frames


# ---------------------------------------------------------------- adapters


class DeepSortRealtimePeer:
    """deep-sort-realtime's ``DeepSort`` with its defaults, fed ready embeddings.

    Output rule (its README's loop): every confirmed track, ``to_ltrb()`` (the
    Kalman box), including tracks that were only predicted this frame. With
    ``matched_only`` only the confirmed tracks matched this frame, as deeptrack
    reports them (``output_max_gap: 0``): the output rule alone moves MOTA by
    tens of points, so both are measured.
    """

    def __init__(self, frame_rate: float, matched_only: bool = False) -> None:
        from deep_sort_realtime.deepsort_tracker import DeepSort

        del frame_rate  # its max_age and n_init are frame counts, used as they are
        self._tracker = DeepSort(embedder=None)
        self._matched_only = matched_only

    def update(self, frame: FrameInput) -> FrameOutput:
        """Run ``update_tracks`` on one frame; return the confirmed tracks."""
        if frame.embeddings is None:
            raise ValueError("deep-sort-realtime without an embedder needs embeddings")
        raw = [([b[0], b[1], b[2] - b[0], b[3] - b[1]], float(s), "person")
               for b, s in zip(frame.boxes.tolist(), frame.scores.tolist())]
        tracks = self._tracker.update_tracks(raw, embeds=list(frame.embeddings))
        shown = [t for t in tracks if t.is_confirmed()
                 and not (self._matched_only and t.time_since_update > 0)]
        return FrameOutput.from_rows(
            (int(t.track_id) for t in shown), (t.to_ltrb() for t in shown),
            (t.get_det_conf() or 0.0 for t in shown))


class RoboflowPeer:
    """A tracker class of roboflow's ``trackers`` package with its defaults.

    Output rule: the returned detections that carry a track id (``tracker_id
    >= 0``), with the detection's box.
    """

    def __init__(self, tracker_cls: type, frame_rate: float) -> None:
        params = inspect.signature(tracker_cls).parameters
        kwargs = {"frame_rate": frame_rate} if "frame_rate" in params else {}
        self._tracker = tracker_cls(**kwargs)
        self._tracker.reset()  # its id counters are class attributes: start at 0 per sequence

    def update(self, frame: FrameInput) -> FrameOutput:
        """Run the tracker on one ``supervision.Detections``; keep rows with an id."""
        import supervision as sv

        n = len(frame.boxes)
        dets = sv.Detections(xyxy=frame.boxes.astype(np.float32).reshape(n, 4),
                             confidence=frame.scores.astype(np.float32),
                             class_id=np.zeros(n, int))
        out = self._tracker.update(dets)
        ids = np.asarray(out.tracker_id if out.tracker_id is not None else [], np.int64)
        keep = ids >= 0
        conf = out.confidence if out.confidence is not None else np.zeros(len(ids))
        return FrameOutput(ids[keep], np.asarray(out.xyxy, np.float64)[keep],
                           np.asarray(conf, np.float64)[keep])


class NorfairPeer:
    """norfair's ``Tracker`` on box corners, IoU distance, otherwise its defaults.

    Each detection is two points (top-left, bottom-right), both with the
    detection's score; norfair ignores points scoring at or below its
    ``detection_threshold`` (default 0). Output rule: what ``update`` returns
    (initialised objects), box = the Kalman estimate of the two corners.
    """

    def __init__(self, frame_rate: float) -> None:
        from norfair import Tracker

        del frame_rate  # norfair counts frames
        self._tracker = Tracker(distance_function=NORFAIR_DISTANCE,
                                distance_threshold=NORFAIR_THRESHOLD)

    def update(self, frame: FrameInput) -> FrameOutput:
        """Run ``Tracker.update`` on one frame's detections."""
        from norfair import Detection

        dets = [Detection(points=b.reshape(2, 2), scores=np.array([s, s]))
                for b, s in zip(frame.boxes, frame.scores)]
        objects = self._tracker.update(detections=dets)
        return FrameOutput.from_rows(
            (int(o.id) for o in objects), (np.asarray(o.estimate).reshape(4) for o in objects),
            (float(np.mean(o.last_detection.scores)) if o.last_detection.scores is not None
             else 0.0 for o in objects))


class MotpyPeer:
    """motpy's ``MultiObjectTracker(dt=1/fps)`` with its defaults.

    Output rule: the active tracks ``step`` returns (its default
    ``active_tracks`` filter), with their Kalman boxes; motpy's UUID track ids
    are numbered 1, 2, 3 ... in order of first appearance.
    """

    def __init__(self, frame_rate: float) -> None:
        from motpy import MultiObjectTracker

        self._tracker = MultiObjectTracker(dt=1.0 / frame_rate)
        self._ids: dict[str, int] = {}

    def update(self, frame: FrameInput) -> FrameOutput:
        """Run ``MultiObjectTracker.step`` on one frame's detections."""
        from motpy import Detection

        tracks = self._tracker.step([Detection(box=b, score=float(s))
                                     for b, s in zip(frame.boxes, frame.scores)])
        ids = [self._ids.setdefault(t.id, len(self._ids) + 1) for t in tracks]
        return FrameOutput.from_rows(ids, (t.box for t in tracks),
                                     (float(t.score) if t.score is not None else 0.0
                                      for t in tracks))


# ---------------------------------------------------------------- the peers on offer


@dataclass(frozen=True)
class Peer:
    """A peer tracker: how to build it and what it is given.

    Attributes:
        name: the row's label.
        group: the library (what ``--only`` may name too).
        make: builds a fresh tracker for a sequence of the given frame rate.
        embedding: ``"roi"``, ``"osnet"`` or None (motion only).
        gets: what the tracker receives and its settings, for the report.
    """

    name: str
    group: str
    make: Callable[[float], PeerTracker]
    embedding: str | None
    gets: str


def _version(dist: str) -> str:
    """The installed version of a distribution, or ``not installed``."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


DSR_SETTINGS = ("DeepSort(embedder=None) defaults: max_age=30, n_init=3 (frames, not scaled by "
                "frame rate), max_cosine_distance=0.2, max_iou_distance=0.7, nn_budget=None "
                "(unbounded), nms_max_overlap=1.0 (off); scores mapped")
DSR_OUTPUT = {False: "output: every confirmed track, to_ltrb() Kalman box, also tracks only "
                     "predicted this frame (its README's rule)",
              True: "output: confirmed tracks matched this frame only, to_ltrb() Kalman box "
                    "(deeptrack's rule; not its README's)"}
DSR_EMBEDDINGS = {"roi": "avg-pooled ImageNet MobileNetV2 RoI maps of deeptrack's deepsort "
                         "preset appearance (1280-d)",
                  "osnet": f"OSNet x0.25 MSMT17 ({OSNET_FILE}, onnxruntime) of 256x128 RGB "
                           "crops, ImageNet mean/std (512-d)",
                  "osnet-pth": f"OSNet x0.25 MSMT17 ({OSNET_PTH_FILE}) of 256x128 crops, the "
                               f"very vectors of deeptrack's {OSNET_PRESET.name} (512-d)"}


def deep_sort_realtime_peers(osnet_file: Path, osnet_pth: bool = False
                             ) -> tuple[list[Peer], dict[str, str]]:
    """deep-sort-realtime fed RoI vectors and, when onnxruntime works, OSNet vectors.

    Each embedding runs with its README's output rule and with deeptrack's
    (matched this frame only), named ``... matched-only``.
    """
    try:
        import deep_sort_realtime.deepsort_tracker  # noqa: F401
    except ImportError as e:
        return [], {"deep-sort-realtime": f"not importable ({e})"}
    kinds, skipped = ["roi"], {}
    try:
        import onnxruntime  # noqa: F401
    except ImportError as e:
        skipped["deep-sort-realtime+osnet"] = f"onnxruntime not importable ({e})"
    else:
        if osnet_file.is_file():
            kinds.append("osnet")
        else:
            skipped["deep-sort-realtime+osnet"] = f"weights file {osnet_file} not found"
    if osnet_pth:
        kinds.append("osnet-pth")
    version = f"deep-sort-realtime {_version('deep-sort-realtime')}, "
    peers = [Peer(f"deep-sort-realtime+{kind}" + (" matched-only" if matched else ""),
                  "deep-sort-realtime",
                  lambda fps, m=matched: DeepSortRealtimePeer(fps, matched_only=m), kind,
                  f"{version}{DSR_SETTINGS}; {DSR_OUTPUT[matched]}; embeddings: "
                  f"{DSR_EMBEDDINGS[kind]}")
             for matched in (False, True) for kind in kinds]
    return peers, skipped


def roboflow_peers() -> tuple[list[Peer], dict[str, str]]:
    """Every detection-only tracker the installed ``trackers`` package exports."""
    try:
        import trackers
        from trackers.core.base import BaseTracker
    except ImportError as e:
        return [], {"trackers": f"not importable ({e})"}
    peers, skipped = [], {}
    for attr in sorted(getattr(trackers, "__all__", dir(trackers))):
        cls = getattr(trackers, attr, None)
        if not (inspect.isclass(cls) and attr.endswith("Tracker")):
            continue
        name = f"trackers {attr.removesuffix('Tracker')}"
        if not issubclass(cls, BaseTracker):
            skipped[name] = "needs image frames (a ReID model of its own); not a box tracker"
            continue
        defaults = ", ".join(f"{p.name}={p.default}" for p in
                             inspect.signature(cls).parameters.values()
                             if p.default is not inspect.Parameter.empty and p.name != "frame_rate")
        peers.append(Peer(name, "trackers", lambda fps, c=cls: RoboflowPeer(c, fps), None,
                          f"trackers {_version('trackers')} {attr} defaults ({defaults}), "
                          "frame_rate = the sequence's; scores mapped; output: detections "
                          "with tracker_id >= 0, detection box"))
    return peers, skipped


def other_peers() -> tuple[list[Peer], dict[str, str]]:
    """norfair and motpy when importable; boxmot's note."""
    peers, skipped = [], {}
    try:
        import norfair  # noqa: F401
        peers.append(Peer("norfair", "norfair", NorfairPeer, None,
                          f"norfair {_version('norfair')} Tracker(distance_function="
                          f"{NORFAIR_DISTANCE!r}, distance_threshold={NORFAIR_THRESHOLD}) "
                          "(its box distance; threshold of its box demo), other defaults "
                          "(hit_counter_max=15, initialization_delay=7, detection_threshold=0); "
                          "scores mapped, both corners get the detection's score; output: "
                          "initialised objects, Kalman estimate"))
    except ImportError as e:
        skipped["norfair"] = f"not importable ({e})"
    try:
        import motpy  # noqa: F401
        peers.append(Peer("motpy", "motpy", MotpyPeer, None,
                          f"motpy {_version('motpy')} MultiObjectTracker(dt=1/fps), defaults "
                          "(constant-velocity model, min_iou=0.1, active_tracks defaults); "
                          "scores mapped; output: active tracks, Kalman box"))
    except ImportError as e:
        skipped["motpy"] = f"not importable ({e})"
    try:
        import boxmot  # noqa: F401  (AGPL-3.0: imported here only, never by deeptrack)
        skipped["boxmot"] = "importable, but no adapter was written (it was not installable here)"
    except ImportError:
        skipped["boxmot"] = BOXMOT_NOTE
    return peers, skipped


def available_peers(osnet_file: Path, osnet_pth: bool = False
                    ) -> tuple[list[Peer], dict[str, str]]:
    """Return the peers whose libraries import, and a reason for each that does not.

    ``osnet_pth``: also run deep-sort-realtime on deeptrack's OSNet (.pth) vectors.
    """
    peers: list[Peer] = []
    skipped: dict[str, str] = {}
    for found, missing in (deep_sort_realtime_peers(osnet_file, osnet_pth), roboflow_peers(),
                           other_peers()):
        peers += found
        skipped |= missing
    return peers, skipped


# ---------------------------------------------------------------- embeddings for peers


def roi_embeddings(features: Sequence[NDArray[np.floating]]) -> list[NDArray[np.float32]]:
    """Avg-pool per-frame (N, C, H, W) RoI maps into (N, C) unit vectors."""
    from deeptrack.appearance import pool

    return [pool(m, "avg") for m in features]


def osnet_crop(image: NDArray[np.uint8], box: NDArray[np.floating]) -> NDArray[np.float32]:
    """Return the (3, 256, 128) OSNet input for one xyxy box of an HxWx3 RGB image.

    The box is clipped to the image (a box entirely outside keeps a one-pixel
    strip at the nearest edge), resized bilinearly to 128 x 256 (w x h),
    scaled to [0, 1] and normalised with the ImageNet mean and std.
    """
    from PIL import Image

    h, w = image.shape[:2]
    x1 = int(np.clip(np.floor(box[0]), 0, w - 1))
    y1 = int(np.clip(np.floor(box[1]), 0, h - 1))
    x2 = int(np.clip(np.ceil(box[2]), x1 + 1, w))
    y2 = int(np.clip(np.ceil(box[3]), y1 + 1, h))
    patch = Image.fromarray(image[y1:y2, x1:x2]).resize(OSNET_SIZE[::-1], Image.BILINEAR)
    a = (np.asarray(patch, np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(a.transpose(2, 0, 1))


class OsnetEmbedder:
    """OSNet x0.25 through onnxruntime: image + boxes -> (N, 512) unit vectors."""

    def __init__(self, onnx_file: Path) -> None:
        import onnxruntime as ort

        self._session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def __call__(self, image: NDArray[np.uint8], boxes: NDArray[np.float64]
                 ) -> NDArray[np.float32]:
        """Embed each box's crop; the exported model takes one crop at a time."""
        out = np.zeros((len(boxes), 0), np.float32)
        rows = [self._session.run(None, {self._input: osnet_crop(image, b)[None]})[0][0]
                for b in boxes]
        if rows:
            out = np.stack(rows).astype(np.float32)
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out


def osnet_cache_file(seq: MotSequence, onnx_file: Path, root: Path) -> Path:
    """Cache file of a sequence's OSNet vectors: keyed by sequence, det file and both SHA-256s."""
    from deeptrack.appearance import file_sha256

    if seq.det_path is None:
        raise PeersError(f"sequence {seq.name} was loaded without detections")
    det_sha = file_sha256(seq.det_path)[:16]
    model_sha = file_sha256(onnx_file)[:12]
    return root / (f"{seq.name}__{seq.det_path.name}__{det_sha}__osnet-{model_sha}"
                   f"__v{OSNET_CACHE_VERSION}.npy")


def osnet_embeddings(seq: MotSequence, onnx_file: Path, root: Path = PEERS_CACHE
                     ) -> list[NDArray[np.float32]]:
    """Return per-frame OSNet vectors of ``seq``'s detections, from the cache when present."""
    from deeptrack.appearance import load_image

    counts = [len(seq.detections(int(f))) for f in seq.frames]
    path = osnet_cache_file(seq, onnx_file, root)
    data = None
    if path.is_file():
        data = np.load(path, allow_pickle=False)
        if data.ndim != 2 or len(data) != sum(counts):
            log(f"{path}: {data.shape} does not fit {sum(counts)} boxes; recomputing")
            data = None
    if data is None:
        log(f"OSNet embeddings of {seq.name} {seq.det_path.name} ({sum(counts)} boxes)")
        embed = OsnetEmbedder(onnx_file)
        parts = [embed(load_image(seq.image_paths[i]), seq.detections(int(f)).boxes)
                 for i, f in enumerate(seq.frames) if counts[i]]
        data = np.concatenate(parts) if parts else np.zeros((0, 512), np.float32)
        buf = io.BytesIO()
        np.save(buf, data, allow_pickle=False)
        write_atomic(path, buf.getvalue())
    return np.split(data, np.cumsum(counts)[:-1])


# ---------------------------------------------------------------- deeptrack's presets


@dataclass(frozen=True)
class Preset:
    """A deeptrack preset ready to run.

    Attributes:
        name: the YAML file's stem.
        path: the YAML file.
        config: the loaded run configuration.
        appearance: the appearance settings with weights and cache resolved;
            None for a motion-only preset.
    """

    name: str
    path: Path
    config: RunConfig
    appearance: AppearanceConfig | None


def default_configs() -> list[Path]:
    """``configs/*.yaml``, deepsort and sort first."""
    paths = sorted((REPO / "configs").glob("*.yaml"))
    first = [p for name in FIRST_PRESETS for p in paths if p.name == name]
    return first + [p for p in paths if p not in first]


def torchvision_weights_cached(name: str) -> bool:
    """Whether torchvision weights ``name`` sit in torch's hub cache (usable offline)."""
    from urllib.parse import urlparse

    import torch
    import torchvision

    try:
        enum = torchvision.models.get_weight(name)
    except (ValueError, KeyError, AttributeError):
        return False
    file = Path(urlparse(enum.url).path).name
    return (Path(torch.hub.get_dir()) / "checkpoints" / file).is_file()


def resolve_weights(app: AppearanceConfig, mobilenet: Path,
                    osnet_pth: Path | None = None) -> tuple[str | None, str | None]:
    """Choose the weights a preset's appearance runs with.

    A local file the preset names is used; a MobileNetV2 preset otherwise gets
    ``mobilenet`` (the ``--weights`` file), an OSNet x0.25 preset ``osnet_pth``;
    a torchvision weights name is used
    only when torch's hub cache already holds it (there is no internet here).

    Returns:
        ``(weights, None)``, or ``(None, reason)`` when none are available.
    """
    if app.weights is not None and Path(app.weights).expanduser().is_file():
        return str(Path(app.weights).expanduser()), None
    if app.backbone == "mobilenet_v2" and mobilenet.is_file():
        return str(mobilenet), None
    if app.backbone == "osnet_x0_25" and osnet_pth is not None and osnet_pth.is_file():
        return str(osnet_pth), None
    if app.weights is None:
        return None, f"backbone {app.backbone} has no weights (random weights measure nothing)"
    if torchvision_weights_cached(app.weights):
        return app.weights, None
    return None, (f"needs weights {app.weights} for backbone {app.backbone}: not a local file "
                  "and not in torch's hub cache (no internet here)")


def load_preset(path: Path, mobilenet: Path,
                osnet_pth: Path | None = None) -> tuple[Preset | None, str | None]:
    """Load one YAML preset; return ``(preset, None)`` or ``(None, reason to skip)``."""
    try:
        config = load_yaml(path)
    except DeepTrackError as e:
        return None, f"does not load: {e}"
    appearance = None
    if config.use_appearance:
        weights, reason = resolve_weights(config.appearance, mobilenet, osnet_pth)
        if weights is None:
            return None, reason
        appearance = with_overrides(config.appearance, weights=weights,
                                    cache_dir=str(default_cache_dir()))
    return Preset(path.stem, path, config, appearance), None


def load_presets(paths: Sequence[Path], mobilenet: Path, osnet_pth: Path | None = None
                 ) -> tuple[list[Preset], dict[str, str]]:
    """Load the presets that can run; print and return a reason for each one skipped."""
    presets, skipped = [], {}
    for path in paths:
        preset, reason = load_preset(path, mobilenet, osnet_pth)
        if preset is None:
            skipped[f"{DEEPTRACK} {path.stem}"] = f"{path.name}: {reason}"
            print(f"skipping preset {path.name}: {reason}", file=sys.stderr)
        else:
            presets.append(preset)
    return presets, skipped


def describe_preset(preset: Preset) -> str:
    """One line on what a preset gets: scores, filtering, tracker keys, appearance."""
    from deeptrack.config import to_dict

    min_conf = getattr(preset.config, "min_confidence", None)
    tracker = ", ".join(f"{k}={v}" for k, v in to_dict(preset.config.tracker).items())
    shown = preset.path.relative_to(REPO) if preset.path.is_relative_to(REPO) else preset.path
    text = (f"deeptrack {__version__}, {shown}: raw detection scores, "
            f"min_confidence={min_conf}; tracker: {tracker}")
    if preset.appearance is None:
        return text + "; motion only"
    app = preset.appearance
    return (text + f"; appearance: {app.backbone} {app.layer or 'default layer'}, "
            f"roi_size={app.roi_size}, image_scale={app.image_scale}, "
            f"weights={Path(app.weights).name if app.weights else None}")


def select_features(full: MotSequence, seq: MotSequence, maps: Any, min_confidence: float
                    ) -> list[NDArray[np.floating]]:
    """Pick the maps of the detections ``seq`` kept (score >= ``min_confidence``).

    RoIAlign treats each box on its own, so the maps of a filtered detection
    set are rows of the unfiltered set's maps; this reuses the cached maps of
    all detections instead of extracting again.

    Raises:
        PeersError: the filtered boxes are not the unfiltered ones selected by score.
    """
    out = []
    for i, number in enumerate(full.frames):
        every, kept = full.detections(int(number)), seq.detections(int(number))
        keep = every.scores >= min_confidence
        if not np.array_equal(every.boxes[keep], kept.boxes):
            raise PeersError(f"{seq.name} frame {number}: filtered detections are not the "
                             f"boxes scoring >= {min_confidence}")
        out.append(maps[i][keep])
    return out


class FeatureMemo:
    """RoI maps of one sequence and detection file, extracted (or read from cache) once."""

    def __init__(self, full: MotSequence) -> None:
        self.full = full
        self._maps: dict[AppearanceConfig, Any] = {}

    def get(self, app: AppearanceConfig) -> Any:
        """Return ``SequenceFeatures`` of every detection for ``app``."""
        from deeptrack.pipeline import sequence_features

        if app not in self._maps:
            start = time.perf_counter()
            maps = sequence_features(self.full, app)
            log(f"RoI maps of {self.full.name} {self.full.det_path.name}: "
                f"{'cache' if maps.from_cache else 'extracted'}, "
                f"{time.perf_counter() - start:.0f} s")
            self._maps[app] = maps
        return self._maps[app]


def run_preset(preset: Preset, memo: FeatureMemo) -> TimedRun:
    """Track one sequence with a preset through the library; time only ``update``.

    deeptrack's ``update`` pools the RoI maps itself, so its time includes pooling.
    """
    from deeptrack.pipeline import run_sequence

    full = memo.full
    min_conf = getattr(preset.config, "min_confidence", None)
    seq = full if min_conf is None else load_sequence(
        full.path, det_file=full.det_path.name, min_confidence=min_conf)
    features = None
    if preset.appearance is not None:
        maps = memo.get(preset.appearance)
        features = maps if min_conf is None else select_features(full, seq, maps, min_conf)
    run = run_sequence(seq, preset.config, features=features)
    return TimedRun(run.results, run.seconds, run.frames)


# ---------------------------------------------------------------- runs


@dataclass
class Plan:
    """What one benchmark invocation runs.

    Attributes:
        runs: (sequence folder, detection file) pairs.
        presets: deeptrack presets to run.
        peers: peer trackers to run.
        roi_appearance: appearance settings of the ``+roi`` vectors (None: no ``+roi``).
        osnet_pth_appearance: appearance settings of the ``+osnet-pth`` vectors.
        osnet_file: the OSNet ONNX file.
        skipped: tracker name -> why it does not run.
    """

    runs: list[tuple[Path, str]]
    presets: list[Preset]
    peers: list[Peer]
    roi_appearance: AppearanceConfig | None
    osnet_file: Path
    skipped: dict[str, str] = field(default_factory=dict)
    osnet_pth_appearance: AppearanceConfig | None = None


def find_runs(data: Path, det_files: Sequence[str]) -> list[tuple[Path, str]]:
    """Every (sequence folder, detection file) under ``data`` with all ``det_files`` and gt.

    Raises:
        PeersError: ``data`` is not a folder, or no sequence has them all.
    """
    if not data.is_dir():
        raise PeersError(f"data folder {data} not found (--data or DEEPTRACK_DATA)")
    seqs = sorted({p.parent for p in data.rglob("seqinfo.ini")
                   if (p.parent / "gt" / "gt.txt").is_file()
                   and all((p.parent / "det" / d).is_file() for d in det_files)})
    if not seqs:
        raise PeersError(f"no sequence under {data} has gt/gt.txt and det/{', det/'.join(det_files)}")
    return [(s, d) for s in seqs for d in det_files]


def score(seq: MotSequence, run: TimedRun) -> dict[str, Any]:
    """Evaluate a run with deeptrack's evaluator; one flat row of metrics and speed."""
    from deeptrack.eval import evaluate_sequence

    metrics = evaluate_sequence(seq.gt, run.results, name=seq.name, path=seq.path).to_dict()
    row: dict[str, Any] = {k: metrics[k] for k in METRICS}
    row |= {"fps": round(run.fps, 1), "update_seconds": round(run.seconds, 3),
            "frames": run.frames, "rows": len(run.results), "dropped_rows": run.dropped}
    return row


def peer_embeddings(kind: str | None, memo: FeatureMemo, plan: Plan
                    ) -> list[NDArray[np.float32]] | None:
    """The per-frame vectors a peer is fed: None, ``roi`` or ``osnet``."""
    if kind is None:
        return None
    if kind == "roi":
        if plan.roi_appearance is None:
            raise PeersError("the +roi vectors need the deepsort preset's weights")
        return roi_embeddings(memo.get(plan.roi_appearance))
    if kind == "osnet":
        return osnet_embeddings(memo.full, plan.osnet_file)
    if kind == "osnet-pth":
        return roi_embeddings(memo.get(plan.osnet_pth_appearance))
    raise PeersError(f"unknown embedding kind {kind!r}")


def guarded(name: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one tracker; a library's failure becomes an ``error`` row instead of ending the run."""
    try:
        return work()
    except DeepTrackError:
        raise
    except Exception as e:  # noqa: BLE001 - a peer library may raise anything
        log(f"{name} failed: {type(e).__name__}: {e}")
        return {"error": f"{type(e).__name__}: {e}"}


def bench_run(seq_path: Path, det_file: str, plan: Plan) -> dict[str, Any]:
    """Run every preset and peer on one sequence and detection file."""
    full = load_sequence(seq_path, det_file=det_file)
    memo = FeatureMemo(full)
    rows: dict[str, dict[str, Any]] = {}
    for preset in plan.presets:
        name = f"{DEEPTRACK} {preset.name}"
        rows[name] = guarded(name, lambda p=preset: score(full, run_preset(p, memo)))
        log(f"{full.name} {det_file} {name}: {brief(rows[name])}")
    vectors: dict[str | None, Any] = {}
    for peer in plan.peers:
        if peer.embedding not in vectors:
            vectors[peer.embedding] = peer_embeddings(peer.embedding, memo, plan)
        frames = peer_frames(full, vectors[peer.embedding])
        rows[peer.name] = guarded(
            peer.name, lambda p=peer, f=frames: score(full, run_peer(p.make(full.frame_rate), f)))
        log(f"{full.name} {det_file} {peer.name}: {brief(rows[peer.name])}")
    n_dets = sum(len(full.detections(int(f))) for f in full.frames)
    return {"sequence": full.name, "det_file": det_file, "frames": full.n_frames,
            "frame_rate": full.frame_rate, "detections": n_dets, "results": rows}


def brief(row: dict[str, Any]) -> str:
    """A short progress line for one row."""
    if "error" in row:
        return f"failed ({row['error']})"
    return (f"MOTA {100 * row['mota']:.1f} IDF1 {100 * row['idf1']:.1f} "
            f"HOTA {100 * row['hota']:.1f} IDsw {row['idsw']} {row['fps']:.0f} fps")


# ---------------------------------------------------------------- tables and files


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown pipe table, padded to line up in a terminal too; numbers right-aligned."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)]
    numeric = [all(_is_number(r[i]) for r in rows) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).rjust(w) if num else str(c).ljust(w)
                                 for c, w, num in zip(cells, widths, numeric)) + " |"

    rule = "|" + "|".join("-" * (w + 1) + (":" if num else "-")
                          for w, num in zip(widths, numeric)) + "|"
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def _is_number(text: str) -> bool:
    """Whether a cell is a number or blank (such columns are right-aligned)."""
    try:
        float(text or 0)
    except ValueError:
        return False
    return True


def _pct(x: float) -> str:
    """A fraction as a percentage with two decimals."""
    return f"{100 * x:.2f}"


def run_table(run: dict[str, Any]) -> str:
    """One run's table: a row per tracker."""
    rows = []
    for name, r in run["results"].items():
        if "error" in r:
            rows.append([name, "failed", "", "", "", "", "", ""])
            continue
        rows.append([name, _pct(r["mota"]), _pct(r["idf1"]), _pct(r["hota"]), str(r["idsw"]),
                     str(r["fp"]), str(r["fn"]), f"{r['fps']:.0f}"])
    return render_table(["Tracker", "MOTA", "IDF1", "HOTA", "IDsw", "FP", "FN", "fps"], rows)


def mean_over_runs(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per tracker, the mean of its per-run IDF1, HOTA and MOTA (runs without error only)."""
    names = list(dict.fromkeys(n for run in runs for n in run["results"]))
    out = {}
    for name in names:
        ok = [run["results"][name] for run in runs
              if name in run["results"] and "error" not in run["results"][name]]
        if ok:
            out[name] = {k: float(np.mean([r[k] for r in ok])) for k in ("idf1", "hota", "mota")}
            out[name] |= {"fps": float(np.mean([r["fps"] for r in ok])), "runs": len(ok)}
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["idf1"]))


def mean_table(means: dict[str, dict[str, Any]], n_runs: int) -> str:
    """The mean-over-runs table, best mean IDF1 first."""
    rows = [[name, _pct(m["idf1"]), _pct(m["hota"]), _pct(m["mota"]), f"{m['fps']:.0f}",
             f"{m['runs']}/{n_runs}"] for name, m in means.items()]
    return render_table(["Tracker", "mean IDF1", "mean HOTA", "mean MOTA", "mean fps", "runs"],
                        rows)


def best_per_run(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per run, the peer with the best IDF1 and the deeptrack preset with the best IDF1."""
    out = []
    for run in runs:
        ok = {n: r for n, r in run["results"].items() if "error" not in r}
        peers = {n: r for n, r in ok.items() if not n.startswith(DEEPTRACK + " ")}
        ours = {n: r for n, r in ok.items() if n.startswith(DEEPTRACK + " ")}
        best_peer = max(peers, key=lambda n: peers[n]["idf1"], default=None)
        best_ours = max(ours, key=lambda n: ours[n]["idf1"], default=None)
        out.append({"run": f"{run['sequence']} {run['det_file']}", "best_peer": best_peer,
                    "best_peer_idf1": peers[best_peer]["idf1"] if best_peer else None,
                    "best_peer_hota": peers[best_peer]["hota"] if best_peer else None,
                    "best_deeptrack": best_ours,
                    "best_deeptrack_idf1": ours[best_ours]["idf1"] if best_ours else None,
                    "best_deeptrack_hota": ours[best_ours]["hota"] if best_ours else None})
    return out


def best_table(best: Sequence[dict[str, Any]]) -> str:
    """The per-run best-peer table, with the best deeptrack preset beside it."""
    def cell(x: float | None) -> str:
        return "" if x is None else _pct(x)

    rows = [[b["run"], b["best_peer"] or "-", cell(b["best_peer_idf1"]),
             cell(b["best_peer_hota"]), b["best_deeptrack"] or "-",
             cell(b["best_deeptrack_idf1"]), cell(b["best_deeptrack_hota"])] for b in best]
    return render_table(["Run", "best peer (IDF1)", "IDF1", "HOTA", "best deeptrack preset",
                         "IDF1", "HOTA"], rows)


def machine() -> dict[str, Any]:
    """CPU, cores, versions of Python, numpy, torch and every tracker library, deeptrack commit."""
    model = platform.processor() or platform.machine()
    try:
        text = subprocess.run(["lscpu"], check=False, capture_output=True, text=True,
                              timeout=10).stdout
        model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines()
                      if ln.startswith("Model name")), model)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=False, cwd=REPO,
                                capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "deeptrack"], check=False,
                               cwd=REPO, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "unknown", ""
    libs = ("numpy", "torch", "deep-sort-realtime", "trackers", "supervision", "norfair",
            "motpy", "onnxruntime", "boxmot")
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "deeptrack": __version__,
            "deeptrack_commit": commit + (" + uncommitted changes in deeptrack/"
                                          if dirty.strip() else ""),
            "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
            "load_average_1_5_15_min_at_end": [round(x, 2) for x in os.getloadavg()],
            "versions": {lib: _version(lib) for lib in libs}}


def command_line(argv: Sequence[str]) -> str:
    """The command as typed from the repository root."""
    script = Path(__file__).resolve()
    shown = script.relative_to(REPO) if script.is_relative_to(REPO) else script
    return "python " + " ".join(shlex.quote(str(a)) for a in [shown, *argv])


def describe(plan: Plan) -> dict[str, str]:
    """Tracker name -> what it is given and with which settings."""
    out = {f"{DEEPTRACK} {p.name}": describe_preset(p) for p in plan.presets}
    return out | {p.name: p.gets for p in plan.peers}


def build_report(plan: Plan, runs: list[dict[str, Any]], args: argparse.Namespace,
                 argv: Sequence[str], elapsed: float) -> dict[str, Any]:
    """Everything the JSON file holds."""
    return {
        "command": command_line(argv),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "elapsed_seconds": round(elapsed, 1),
        "machine": machine(),
        "settings": {
            "data": str(args.data), "weights": str(args.weights),
            "osnet": str(plan.osnet_file), "feature_cache": str(default_cache_dir()),
            "peers_cache": str(PEERS_CACHE), "det_files": list(DET_FILES),
            "score_mapping": {"det.txt": f"clip(score / {ACF_SCALE:g}, 0, 1) for peers",
                              "det_frcnn.txt": "as given (0.5..1) for peers",
                              "deeptrack presets": "raw scores; the preset's min_confidence"},
            "timing": "the per-frame update calls only, with the adapter's format "
                      "conversion; deeptrack's update pools the RoI maps itself; no image "
                      "reading or feature extraction",
        },
        "trackers": describe(plan),
        "skipped": plan.skipped,
        "runs": runs,
        "mean_over_runs": mean_over_runs(runs),
        "best_per_run": best_per_run(runs),
    }


def markdown(report: dict[str, Any]) -> str:
    """The Markdown report: per-run tables, the mean table, the best peer per run, settings."""
    runs = report["runs"]
    m = report["machine"]
    parts = [
        "# deeptrack's presets and peer trackers on the same detections", "",
        f"Command: `{report['command']}`  ",
        (f"Date: {report['date']}; {report['elapsed_seconds']:.0f} s in all; "
         f"{m['cpu']}, {m['cores']} cores; deeptrack {m['deeptrack']} "
         f"({m['deeptrack_commit']}); load average at the end "
         f"{'/'.join(str(x) for x in m['load_average_1_5_15_min_at_end'])} (a shared "
         "machine: fps are indicative)."), "",
        ("Metrics by deeptrack's evaluator (MOTChallenge rules), in percent. fps: frames per "
         "second of " + report["settings"]["timing"] + "."),
        "",
        ("Scores: peers get ACF scores (det.txt) as clip(score / 100, 0, 1) and Faster R-CNN "
         "scores (det_frcnn.txt) as given; deeptrack's presets get the raw scores. Every "
         "tracker gets every box of the file; only a library's own default thresholds filter."),
        "",
    ]
    for run in runs:
        parts += [(f"## {run['sequence']}, {run['det_file']} ({run['frames']} frames, "
                   f"{run['frame_rate']:g} fps, {run['detections']} detections)"), "",
                  run_table(run), ""]
        dropped = [f"{n} {r['dropped_rows']}" for n, r in run["results"].items()
                   if r.get("dropped_rows")]
        if dropped:
            parts += ["Reported rows left out (box not finite or without area): "
                      + ", ".join(dropped) + ".", ""]
    parts += [f"## Mean over the {len(runs)} runs (mean of per-run values)", "",
              mean_table(report["mean_over_runs"], len(runs)), "",
              "## Best peer per run (by IDF1), beside the best deeptrack preset", "",
              best_table(report["best_per_run"]), "", "## What each tracker gets", ""]
    parts += [f"- **{name}**: {text}" for name, text in report["trackers"].items()]
    if report["skipped"]:
        parts += ["", "## Not run", ""]
        parts += [f"- **{name}**: {why}" for name, why in report["skipped"].items()]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    parts += ["", f"Versions: Python {m['python']}, {versions}.", ""]
    return "\n".join(parts)


# ---------------------------------------------------------------- command line


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help="folder searched for sequences with both detection files "
                        "(default: $DEEPTRACK_DATA or ../shared/data)")
    p.add_argument("--weights-dir", type=Path, default=DEFAULT_WEIGHTS_DIR,
                   help="folder of the MobileNetV2 and OSNet weights "
                        "(default: $DEEPTRACK_WEIGHTS or ../shared/weights)")
    p.add_argument("--weights", type=Path, default=None,
                   help=f"MobileNetV2 state_dict for the RoI maps (default: WEIGHTS_DIR/"
                        f"{MOBILENET_FILE})")
    p.add_argument("--configs", type=Path, nargs="+", default=None,
                   help="deeptrack preset YAML files (default: configs/*.yaml)")
    p.add_argument("--only", default=None,
                   help="comma-separated tracker names or libraries (deeptrack, "
                        "deep-sort-realtime, trackers, norfair, motpy)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results",
                   help="folder for peers.json and peers.md (default: benchmarks/results)")
    args = p.parse_args(argv)
    if args.weights is None:
        args.weights = args.weights_dir / MOBILENET_FILE
    return args


def select(plan: Plan, only: str | None) -> None:
    """Keep the presets and peers named in ``only`` (names or library names).

    Raises:
        PeersError: a name matches nothing (the valid ones are listed).
    """
    if not only:
        return
    wanted = {w.strip().lower() for w in only.split(",") if w.strip()}
    items = [(f"{DEEPTRACK} {p.name}", DEEPTRACK) for p in plan.presets]
    items += [(p.name, p.group) for p in plan.peers]
    known = {n.lower() for pair in items for n in pair}
    unknown = sorted(wanted - known - {k.lower() for k in plan.skipped})
    if unknown:
        raise PeersError(f"--only: unknown tracker(s) {', '.join(unknown)}; valid: "
                         + ", ".join(sorted(known)))

    def chosen(name: str, group: str) -> bool:
        return name.lower() in wanted or group.lower() in wanted

    plan.presets = [p for p in plan.presets if chosen(f"{DEEPTRACK} {p.name}", DEEPTRACK)]
    plan.peers = [p for p in plan.peers if chosen(p.name, p.group)]


def make_plan(args: argparse.Namespace) -> Plan:
    """Find the runs, load the presets and peers, apply ``--only``."""
    runs = find_runs(args.data, DET_FILES)
    configs = args.configs or default_configs()
    missing = [str(c) for c in configs if not c.is_file()]
    if missing:
        raise PeersError(f"config file(s) not found: {', '.join(missing)}")
    osnet_pth = args.weights_dir / OSNET_PTH_FILE
    presets, skipped = load_presets(configs, args.weights, osnet_pth)
    roi, reason = load_preset(ROI_PRESET, args.weights)
    osnet_preset, _ = load_preset(OSNET_PRESET, args.weights, osnet_pth)
    osnet_file = args.weights_dir / OSNET_FILE
    peers, missing_peers = available_peers(osnet_file, osnet_preset is not None)
    skipped |= missing_peers
    if roi is None or roi.appearance is None:
        skipped["deep-sort-realtime+roi"] = f"{ROI_PRESET.name}: {reason}"
        peers = [p for p in peers if p.embedding != "roi"]
    plan = Plan(runs, presets, peers, roi.appearance if roi else None, osnet_file, skipped,
                osnet_preset.appearance if osnet_preset else None)
    select(plan, args.only)
    if not plan.presets and not plan.peers:
        raise PeersError("no tracker left to run")
    return plan


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the tables; write peers.json and peers.md. Exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        plan = make_plan(args)
        for name, why in plan.skipped.items():
            log(f"not run: {name}: {why}")
        runs = [bench_run(path, det_file, plan) for path, det_file in plan.runs]
    except DeepTrackError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report = build_report(plan, runs, args, argv, time.perf_counter() - start)
    for run in runs:
        print(f"\n{run['sequence']} {run['det_file']}\n{run_table(run)}")
    print(f"\nMean over {len(runs)} runs\n{mean_table(report['mean_over_runs'], len(runs))}")
    print(f"\n{best_table(report['best_per_run'])}")
    write_atomic(args.out / "peers.json", json.dumps(report, indent=2) + "\n")
    write_atomic(args.out / "peers.md", markdown(report))
    print(f"\nwrote {args.out / 'peers.json'} and {args.out / 'peers.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
