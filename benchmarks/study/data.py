"""The study's inputs: sequences with every detection set, their RoI maps, and pooled vectors."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deeptrack.config import AppearanceConfig
from study.common import Mode, StudyError, log


@dataclass
class StudySequence:
    """One sequence folder: its detection sets, ground-truth boxes and RoI maps per layer.

    Attributes:
        name: the folder's name.
        runs: detection file name -> the ``deeptrack.io.Sequence`` loaded with it.
        min_confidence: detection file name -> the threshold it was loaded with.
        gt_frames, gt_ids, gt_boxes: the scored ground-truth rows (flag != 0),
            sorted by frame; boxes xyxy.
        maps: layer -> detection file name (or ``"gt"``) -> per-frame maps.
    """

    name: str
    runs: dict[str, Any]
    min_confidence: dict[str, float | None]
    gt_frames: NDArray[np.int64]
    gt_ids: NDArray[np.int64]
    gt_boxes: NDArray[np.float64]
    maps: dict[str, dict[str, list[NDArray[np.floating]]]] = field(default_factory=dict)
    extraction_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def first(self):
        return next(iter(self.runs.values()))

    def gt_maps(self, layer: str) -> NDArray[np.floating]:
        """(G, C, R, R) maps of the scored ground-truth boxes, in ``gt_frames`` order."""
        parts = [m for m in self.maps[layer]["gt"] if len(m)]
        return np.concatenate(parts) if parts else np.zeros((0, 1, 1, 1), np.float32)


def parse_det_sets(text: str) -> list[tuple[str, float | None]]:
    """``"det.txt:20,det_frcnn.txt:0.9"`` -> [("det.txt", 20.0), ("det_frcnn.txt", 0.9)]."""
    out = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        name, _, conf = item.partition(":")
        try:
            out.append((name.strip(), float(conf) if conf.strip() else None))
        except ValueError:
            raise StudyError(f"--det-sets: bad minimum confidence in {item!r} "
                             "(use FILE:NUMBER, e.g. det.txt:20)") from None
    if not out:
        raise StudyError("--det-sets: give at least one detection file")
    return out


def load_study_sequences(data: Path, names: list[str] | None,
                         det_sets: list[tuple[str, float | None]]) -> list[StudySequence]:
    """Load every sequence (or the named ones) with each detection file it has."""
    from deeptrack.io.sequence import find_sequences

    folders = find_sequences(data)
    if names:
        known = {p.name: p for p in folders}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise StudyError(f"--sequences: {', '.join(unknown)} not in {data} "
                             f"(found: {', '.join(known)})")
        folders = [known[n] for n in names]
    return [_load_one(folder, det_sets) for folder in folders]


def _load_one(folder: Path, det_sets: list[tuple[str, float | None]]) -> StudySequence:
    from deeptrack.io.sequence import load_sequence

    runs, confs = {}, {}
    for det_file, conf in det_sets:
        if (folder / "det" / det_file).is_file():
            runs[det_file] = load_sequence(folder, det_file=det_file, min_confidence=conf)
            confs[det_file] = conf
    if not runs:
        raise StudyError(f"{folder}: none of the detection files "
                         f"{', '.join(d for d, _ in det_sets)} is in det/")
    seq = next(iter(runs.values()))
    if seq.gt is None:
        raise StudyError(f"{folder}: no gt/gt.txt, cannot evaluate")
    if not seq.image_paths:
        raise StudyError(f"{folder}: no frames in img1/, cannot compute appearance")
    gt = seq.gt
    keep = np.flatnonzero(gt.flag != 0)
    order = keep[np.argsort(gt.frame[keep], kind="stable")]
    return StudySequence(folder.name, runs, confs, gt.frame[order].astype(np.int64),
                         gt.track_id[order].astype(np.int64), gt.boxes[order].astype(np.float64))


# ---------------------------------------------------------------- RoI maps


def extract_maps(seq: StudySequence, appearance: AppearanceConfig, embedder) -> None:
    """Fill ``seq.maps[layer]``: one backbone pass per frame for all box sets, cached.

    RoIAlign treats each box on its own, so a box's map does not depend on the
    others: every detection set and the ground truth go through one extraction.
    """
    from deeptrack.appearance import FeatureCache, extract_sequence

    layer = embedder.spec.layer
    names = [*seq.runs, "gt"]
    union, splits = _union_boxes(seq)
    cache = FeatureCache(appearance.cache_dir) if appearance.cache_dir else None
    start = time.perf_counter()
    feats = extract_sequence(embedder, seq.first.image_paths, union, cache=cache,
                             cache_key_extra=_cache_extra(seq),
                             progress=_progress_log(f"{seq.name} {layer}"), sequence=seq.name)
    seq.extraction_seconds[layer] = time.perf_counter() - start
    log(f"  {seq.name} {layer}: maps {'from the cache' if feats.from_cache else 'computed'} "
        f"in {seq.extraction_seconds[layer]:.1f} s ({int(feats.counts.sum())} boxes)")
    per_set: dict[str, list[NDArray[np.floating]]] = {n: [] for n in names}
    for i in range(len(seq.first)):
        maps = feats[i]
        bounds = [0, *splits[i].tolist()]
        for k, n in enumerate(names):
            per_set[n].append(maps[bounds[k]:bounds[k + 1]])
    seq.maps[layer] = per_set


def _union_boxes(seq: StudySequence) -> tuple[list[NDArray[np.float64]], list[NDArray[np.int64]]]:
    """Per frame: every detection set's boxes then the ground truth's, and where each part ends."""
    first = seq.first
    gt_starts = np.searchsorted(seq.gt_frames, np.arange(1, len(first) + 2))
    union, splits = [], []
    for i, frame in enumerate(first.frames):
        parts = [run.detections(int(frame)).boxes for run in seq.runs.values()]
        parts.append(seq.gt_boxes[gt_starts[i]:gt_starts[i + 1]])
        union.append(np.concatenate(parts) if parts else np.zeros((0, 4)))
        splits.append(np.cumsum([len(p) for p in parts]))
    return union, splits


def _cache_extra(seq: StudySequence) -> dict[str, Any]:
    """The cache key's extra part: which detections and ground truth the boxes came from."""
    from deeptrack.appearance import file_sha256

    first = seq.first
    return {
        "study": "pooling_study",
        "detections": {n: {"sha256": file_sha256(run.det_path),
                           "min_confidence": seq.min_confidence[n]}
                       for n, run in seq.runs.items()},
        "gt_sha256": file_sha256(first.gt.path) if first.gt.path else None,
        "gt_rows": "flag != 0",
    }


def _progress_log(what: str):
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if time.perf_counter() - last[0] > 30 or done == total:
            last[0] = time.perf_counter()
            log(f"  {what}: {done}/{total} frames")

    return progress


# ---------------------------------------------------------------- vectors


def pool_all(frame_maps: Sequence[NDArray[np.floating]], mode: Mode,
             chunk: int = 512) -> NDArray[np.float32]:
    """Make vectors of the maps of all frames (rows in frame order) as the tracker does.

    The study's one path from maps to vectors is the tracker's:
    ``deeptrack.appearance.EmbeddingHead`` (pool, then the seeded random
    projection of ``reduce_dim``). Both act row by row, so chunking only
    bounds the float32 copies in memory.
    """
    from deeptrack.appearance import EmbeddingHead

    nonempty = [m for m in frame_maps if len(m)]
    if not nonempty:
        return np.zeros((0, 1), np.float32)
    head = EmbeddingHead(mode.head())
    rows = []
    buffer: list[NDArray[np.floating]] = []
    size = 0
    for m in nonempty:
        buffer.append(m)
        size += len(m)
        if size >= chunk:
            rows.append(head(np.concatenate(buffer)))
            buffer, size = [], 0
    if buffer:
        rows.append(head(np.concatenate(buffer)))
    return np.concatenate(rows)

