"""Whole-sequence runs: RoI features for a sequence's detections, then tracking.

:func:`run_sequence` is the one path from a loaded sequence and a
:class:`~deeptrack.config.RunConfig` to its tracks; the CLI, the benchmarks
and the pooling study call it. Each function is a thin composition of
:mod:`deeptrack.io`, :mod:`deeptrack.appearance` and :class:`deeptrack.Tracker`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from deeptrack.appearance.head import EmbeddingHead
from deeptrack.config import AppearanceConfig, RunConfig, TrackerConfig
from deeptrack.io.mot import GroundTruth, TrackResults
from deeptrack.io.sequence import Sequence
from deeptrack.synthetic import SyntheticScene
from deeptrack.tracking.offline import interpolate_gaps
from deeptrack.tracking.tracker import Tracker


@dataclass(frozen=True)
class TrackRun:
    """A tracker's results on one sequence and what the run cost.

    Attributes:
        results: the confirmed tracks' boxes per frame.
        seconds: wall time of pooling plus association (``update`` calls).
        frames: frames tracked.
        peak_gallery_bytes: most bytes the appearance memory held at once.
        embedding_dim: dimension of the vectors compared, 0 without appearance.
    """

    results: TrackResults
    seconds: float
    frames: int
    peak_gallery_bytes: int
    embedding_dim: int

    @property
    def ms_per_frame(self) -> float:
        """Milliseconds of pooling plus association per frame."""
        return 1000.0 * self.seconds / max(self.frames, 1)


def sequence_features(
    seq: Sequence,
    config: AppearanceConfig,
    *,
    embedder=None,
    progress: Callable[[int, int], None] | None = None,
):
    """Return the RoI maps of every detection of ``seq`` (cached when ``config.cache_dir`` is set).

    Args:
        seq: a sequence loaded with a detection file and images.
        config: backbone, weights, layer, RoI size, image scale, device, cache.
        embedder: a ready ``RoIEmbedder`` for ``config`` (built when omitted).
        progress: called as ``progress(frames_done, frames)``.

    Returns:
        ``deeptrack.appearance.SequenceFeatures``; ``features[i]`` holds the
        maps of ``seq.detections(i + 1)`` in the same order.
    """
    from deeptrack.appearance import FeatureCache, extract_sequence, file_sha256
    from deeptrack.appearance.embedder import RoIEmbedder
    from deeptrack.errors import DataFormatError

    if not seq.image_paths:
        raise DataFormatError(f"{seq.path}: no frames in img1/, cannot compute appearance")
    if embedder is None:
        embedder = RoIEmbedder(config)
    cache = (FeatureCache(config.cache_dir, config.cache_max_bytes) if config.cache_dir
             else None)
    boxes = [seq.detections(int(f)).boxes for f in seq.frames]
    extra = {"det_sha256": file_sha256(seq.det_path)} if seq.det_path else None
    return extract_sequence(embedder, seq.image_paths, boxes, cache=cache,
                            cache_key_extra=extra, progress=progress, sequence=seq.name)


def run_sequence(
    seq: Sequence,
    config: RunConfig,
    *,
    features=None,
    embeddings: list[np.ndarray] | None = None,
    embedder=None,
    feature_progress: Callable[[int, int], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> TrackRun:
    """Run one sequence: its RoI features (unless given), then the tracker.

    Args:
        seq: a sequence loaded with its detections (and images, for appearance).
        config: the run; ``use_appearance`` false tracks on motion and IoU
            alone, and whatever features are given are not used.
        features: the sequence's RoI maps when already at hand (e.g. shared
            by several tracker settings): ``SequenceFeatures`` or a list of
            per-frame (N, C, H, W) arrays.
        embeddings: per-frame (N, D) vectors to track on instead of maps.
        embedder: a ready ``RoIEmbedder`` for ``config.appearance`` (built
            when needed and omitted).
        feature_progress: called as ``progress(frames_done, frames)`` while
            features are extracted.
        progress: called with 1 after each tracked frame.

    Returns:
        The tracks and what tracking cost (see :class:`TrackRun`).
    """
    if not config.use_appearance:
        features = embeddings = None
    elif features is None and embeddings is None:
        features = sequence_features(seq, config.appearance, embedder=embedder,
                                     progress=feature_progress)
    run = track_sequence(seq, config.tracker, features, embeddings=embeddings,
                         head=EmbeddingHead(config.head), progress=progress)
    if config.interpolate_max_gap:  # offline: after the whole sequence
        run = dataclasses.replace(
            run, results=interpolate_gaps(run.results, config.interpolate_max_gap))
    return run


def track_sequence(
    seq: Sequence,
    config: TrackerConfig,
    features=None,
    *,
    embeddings: list[np.ndarray] | None = None,
    head: EmbeddingHead | None = None,
    progress: Callable[[int], None] | None = None,
) -> TrackRun:
    """Track one sequence's detections.

    Args:
        seq: the sequence (with detections).
        config: tracker settings.
        features: per-frame RoI maps (``SequenceFeatures`` or a list), or None;
            ``head`` makes them vectors (default: an average-pooling head).
        embeddings: per-frame (N, D) vectors instead of maps, or None.
        progress: called with 1 after each frame.

    Returns:
        The results and the run's cost. Without features or embeddings the
        tracker runs on motion and IoU alone.
    """
    def frames():
        for i, frame in enumerate(seq.frames):
            dets = seq.detections(int(frame))
            if features is not None:
                yield int(frame), (dets.boxes, dets.scores), {"roi_features": features[i]}
            elif embeddings is not None:
                yield int(frame), (dets.boxes, dets.scores, embeddings[i]), {}
            else:
                yield int(frame), (dets.boxes, dets.scores), {}

    if features is not None and head is None:
        head = EmbeddingHead()
    return _run(Tracker(config, frame_rate=seq.frame_rate, head=head), frames(), progress)


def _run(tracker: Tracker, frames, progress: Callable[[int], None] | None = None) -> TrackRun:
    """Feed ``(frame number, update args, update kwargs)`` to ``tracker``; time only update()."""
    outputs = []
    peak = 0
    elapsed = 0.0
    for frame, args, kwargs in frames:
        start = time.perf_counter()
        out = tracker.update(*args, **kwargs)
        elapsed += time.perf_counter() - start
        outputs.append((frame, out))
        peak = max(peak, tracker.gallery_bytes)
        if progress is not None:
            progress(1)
    return TrackRun(TrackResults.from_outputs(outputs), elapsed, len(outputs), peak,
                    tracker.embedding_dim)


def scene_ground_truth(scene: SyntheticScene) -> GroundTruth:
    """Return a synthetic scene's true boxes as MOT15-style ground truth (ids from 1)."""
    frames = [np.full(len(f.gt_ids), i + 1, np.int64) for i, f in enumerate(scene.frames)]
    frame = np.concatenate(frames) if frames else np.zeros(0, np.int64)
    n = len(frame)
    return GroundTruth(
        frame=frame,
        track_id=np.concatenate([f.gt_ids + 1 for f in scene.frames]) if n else frame.copy(),
        boxes=np.concatenate([f.gt_boxes for f in scene.frames]) if n else np.zeros((0, 4)),
        flag=np.ones(n, np.int64), class_id=np.full(n, -1, np.int64),
        visibility=np.full(n, np.nan), n_columns=10,
    )


def track_scene(scene: SyntheticScene, config: TrackerConfig, use_appearance: bool) -> TrackRun:
    """Track a synthetic scene with or without its appearance vectors."""
    frames = ((i + 1, (f.boxes, f.scores, f.embeddings if use_appearance else None), {})
              for i, f in enumerate(scene.frames))
    return _run(Tracker(config, frame_rate=scene.frame_rate), frames)


__all__ = [
    "TrackRun", "run_sequence", "scene_ground_truth", "sequence_features", "track_scene",
    "track_sequence",
]
