"""Whole-sequence extraction: the RoI maps of every box of a sequence, cached when asked.

Comparing pooling modes should cost one backbone pass per frame, not one per
mode: :func:`extract_sequence` stores the (N_f, C, H, W) RoI maps of every
frame once (in a :class:`~deeptrack.appearance.cache.FeatureCache`), and
pooling runs on the stored maps.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from deeptrack.appearance.cache import CACHE_FORMAT, FeatureCache, SequenceFeatures
from deeptrack.appearance.digest import boxes_digest, frames_digest
from deeptrack.appearance.frames import load_image
from deeptrack.boxes import validate_xyxy
from deeptrack.errors import DataFormatError, InputError

__all__ = ["Embedder", "extract_sequence", "sequence_key"]

ImageLoader = Callable[[str | os.PathLike[str]], NDArray[np.uint8]]
Progress = Callable[[int, int], None]


class Embedder(Protocol):
    """Image + boxes -> RoI feature maps (e.g. ``RoIEmbedder``): the one embedder protocol.

    The tracker calls :meth:`roi_features` on one frame (``Tracker(config,
    embedder=..., head=...)``); :func:`extract_sequence` calls
    :meth:`roi_features_batch` and caches the maps under :attr:`key`.
    """

    key: Mapping[str, Any]
    out_channels: int
    roi_size: int
    batch_size: int

    def roi_features(
        self, image: NDArray[np.uint8], boxes: NDArray[np.float64]
    ) -> NDArray[np.float32]:
        """Return (N, C, R, R) maps for (N, 4) xyxy boxes in an HxWx3 uint8 RGB image."""
        ...

    def roi_features_batch(
        self, images: Sequence[NDArray[np.uint8]], boxes_list: Sequence[NDArray[np.float64]]
    ) -> list[NDArray[np.float32]]: ...


def _sequence_name(image_paths: Sequence[str | os.PathLike[str]]) -> str:
    folder = Path(image_paths[0]).resolve().parent if image_paths else Path("empty")
    return folder.parent.name if folder.name == "img1" else folder.name


def sequence_key(embedder: Embedder, image_paths: Sequence[str | os.PathLike[str]],
                 boxes: Sequence[NDArray[np.float64]], sequence: str | None = None,
                 extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return the cache key of a sequence's maps: every input that changes them."""
    return {
        "format": CACHE_FORMAT,
        "embedder": dict(embedder.key),
        "sequence": sequence if sequence is not None else _sequence_name(image_paths),
        "n_frames": len(boxes),
        "boxes_sha256": boxes_digest(boxes),
        "frames_sha256": frames_digest(image_paths),
        "extra": dict(extra) if extra else None,
    }


def extract_sequence(
    embedder: Embedder,
    image_paths: Sequence[str | os.PathLike[str]],
    boxes_per_frame: Sequence[ArrayLike],
    cache: FeatureCache | None = None,
    cache_key_extra: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    *,
    sequence: str | None = None,
    load: ImageLoader = load_image,
) -> SequenceFeatures:
    """Compute (or fetch from the cache) the RoI maps of every box of a sequence.

    The backbone runs only on a cache miss, ``embedder.batch_size`` frames per
    forward; frames without boxes are not even decoded. On a miss with a
    cache, the maps are streamed into the entry and the stored entry is what
    is returned, so a miss and a later hit give identical arrays.

    Args:
        embedder: e.g. a ``RoIEmbedder`` (see :class:`Embedder`).
        image_paths: F frame files, in order.
        boxes_per_frame: F arrays of (N_f, 4) float xyxy boxes in original pixels.
        cache: where to look and store; None computes float32 maps in memory.
        cache_key_extra: more JSON-able key entries, e.g. ``{"det_sha256": ...}``.
        progress: called as ``progress(frames_done, F)`` after each batch.
        sequence: the name recorded in the key; default: the frames' folder
            (its parent when the folder is ``img1``, as in MOTChallenge).
        load: reads one frame as HxWx3 uint8 RGB.

    Returns:
        :class:`SequenceFeatures`; ``features[f]`` is frame f's (N_f, C, R, R) maps.

    Raises:
        InputError: boxes and frames differ in number, or bad boxes.
        DataFormatError: a frame cannot be read.
    """
    if len(image_paths) != len(boxes_per_frame):
        raise InputError(f"{len(image_paths)} frames but {len(boxes_per_frame)} box arrays")
    boxes = [validate_xyxy(b, name=f"boxes of frame {i}") for i, b in enumerate(boxes_per_frame)]
    counts = np.array([len(b) for b in boxes], dtype=np.int64)
    key = sequence_key(embedder, image_paths, boxes, sequence, cache_key_extra)
    shape = (int(embedder.out_channels), int(embedder.roi_size), int(embedder.roi_size))

    def compute(sink: Callable[[NDArray[np.floating]], None]) -> None:
        _run_backbone(embedder, image_paths, boxes, shape, sink, load, progress)

    if cache is None:
        chunks: list[NDArray[np.float32]] = []
        compute(lambda m: chunks.append(np.asarray(m, dtype=np.float32)))
        data = np.concatenate(chunks) if chunks else np.zeros((0, *shape), np.float32)
        return SequenceFeatures(data, counts, key)
    hit = _cached(cache, key, counts)
    if hit is not None:
        if progress is not None:
            progress(len(boxes), len(boxes))
        return hit
    return _compute_into(cache, key, counts, shape, compute)


def _cached(cache: FeatureCache, key: Mapping[str, Any],
            counts: NDArray[np.int64]) -> SequenceFeatures | None:
    """Return the stored maps for ``key`` if they hold ``counts`` boxes per frame."""
    hit = cache.load(key)
    if hit is not None and not np.array_equal(hit.counts, counts):
        # meta.json is not covered by the maps' checksum: a damaged one can lie
        cache.discard(hit.path, "box counts differ from the sequence's")
        return None
    return hit


def _run_backbone(embedder: Embedder, image_paths: Sequence[str | os.PathLike[str]],
                  boxes: Sequence[NDArray[np.float64]], shape: tuple[int, int, int],
                  sink: Callable[[NDArray[np.floating]], None], load: ImageLoader,
                  progress: Progress | None) -> None:
    """Hand each frame's (N_f, C, R, R) maps to ``sink``, in frame order, skipping empty frames."""
    busy = [i for i in range(len(boxes)) if len(boxes[i])]
    step = max(1, int(getattr(embedder, "batch_size", 1)))
    for start in range(0, len(busy), step):
        idx = busy[start:start + step]
        maps = embedder.roi_features_batch([load(image_paths[i]) for i in idx],
                                           [boxes[i] for i in idx])
        for i, m in zip(idx, maps, strict=False):
            if m.shape != (len(boxes[i]), *shape):
                raise InputError(f"embedder returned maps of shape {m.shape} for frame {i}, "
                                 f"expected {(len(boxes[i]), *shape)}")
            sink(m)
        if progress is not None:
            done = busy[start + len(idx)] if start + len(idx) < len(busy) else len(boxes)
            progress(done, len(boxes))
    if not busy and progress is not None:
        progress(len(boxes), len(boxes))


def _compute_into(cache: FeatureCache, key: Mapping[str, Any], counts: NDArray[np.int64],
                  shape: tuple[int, int, int],
                  compute: Callable[[Callable[[NDArray[np.floating]], None]], None],
                  ) -> SequenceFeatures:
    """Stream the computed maps into a new cache entry; return the stored entry."""
    writer = cache.writer(key, counts, shape)
    try:
        compute(writer.write)
        final = writer.commit()
    except BaseException:
        writer.abort()
        raise
    if not isinstance(final, Path):  # too large for the cache: the maps, not stored
        return SequenceFeatures(final, counts, key)
    cache.evict(keep=final)
    stored = cache.load(key)
    if stored is None:  # pragma: no cover - only if someone removed it in between
        raise DataFormatError(f"feature cache entry {final} vanished right after it was written")
    return SequenceFeatures(stored.data, stored.counts, key, from_cache=False, path=final)
