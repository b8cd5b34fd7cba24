"""The pooling study: which vector should a tracker make of a detection's RoI feature map?

One command runs, on every sequence of a MOTChallenge split, with the same
detections and the same cached RoI feature maps:

- motion only (no appearance);
- every pooling mode (avg, max, avgmax, GeM p = 1.5 / 3 / 6, flatten,
  maxpool_flatten k = 2, pyramid) and flatten reduced by a seeded random
  projection (``TrackerConfig.reduce_dim``) or by PCA fitted on the
  sequence's own flattened maps;
- deep-sort-realtime (when installed) fed the same detections and the same
  avg-pooled embeddings;
- for every detection file of the sequence (``det/det.txt``, ``det/det_frcnn.txt``).

The matching threshold ``max_cosine_distance`` is tuned per mode on ONE
sequence and detection set (default ADL-Rundle-6 with det_frcnn.txt, by IDF1)
and every other run uses the tuned value. Each mode is also run at two fixed
thresholds (0.1 and DeepSORT's 0.2) to show how much the threshold alone moves
the metrics. Identity separation without tracking: on the ground-truth boxes,
same-identity against different-identity cosine distances of pairs at most
``--pair-window`` frames apart, summarised as ROC AUC per mode. The backbone
layer (stride 32 / 16 / 8 for MobileNetV2) is a further axis for the two best
modes, and for the AUC of every mode.

Cost: one backbone pass per frame per layer. Per sequence and layer, the boxes
of all detection sets and of the ground truth go through one
:func:`deeptrack.appearance.extract_sequence` call (RoIAlign treats each box on
its own, so a box's map does not depend on the others), cached on disk with
:class:`deeptrack.appearance.FeatureCache`; every mode pools those same maps.

Usage::

    python benchmarks/pooling_study.py [--data DIR] [--weights FILE] [--cache DIR]
        [--out benchmarks/results] [--sequences A,B] [--quick] [--image-scale 0.5]

Writes ``pooling_study.md``, ``pooling_study.json`` and ``pooling_study_*.png``
into ``--out``. Errors in the inputs print one line on stderr (exit status 2).
"""

from __future__ import annotations

import os

if __name__ == "__main__":
    # Before numpy loads: on a small machine shared with other jobs, OpenBLAS's
    # worker threads wait on busy cores; a (2, 62720) @ (62720, 512) product then
    # took 1.1 s instead of 0.05 s with one thread. Tracker.update scopes this
    # itself; the PCA fits and pair distances here need it too. Set it to override.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import dataclasses
import io
import json
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deeptrack import __version__
from deeptrack.config import AppearanceConfig, TrackerConfig, default_cache_dir
from deeptrack.errors import DeepTrackError
from deeptrack.pipeline import TrackRun, track_sequence

REPO = Path(__file__).resolve().parents[1]
WEIGHTS_FILE = "mobilenet_v2_imagenet_features.pth"

#: The keys of ``SequenceMetrics.to_dict()`` reported per run.
METRICS = ("mota", "idf1", "hota", "assa", "deta", "idsw", "fp", "fn")

#: DeepSORT's published threshold and a stricter one: the two fixed settings
#: every mode is also run with, to size the threshold's own effect.
FIXED_THRESHOLDS = (0.1, 0.2)
#: Wide enough that no mode's optimum sits on an edge: centred (PCA) vectors have
#: cosine distances up to 2, uncentred ReLU features rarely beyond 0.5.
FULL_GRID = (0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8)
QUICK_GRID = (0.1, 0.2, 0.3)

#: Default minimum detection confidence per detection file (see the report).
DEFAULT_DET_SETS = "det.txt:20,det_frcnn.txt:0.9"


class StudyError(DeepTrackError):
    """A usage error of the study (exit status 2)."""


# ---------------------------------------------------------------- modes


@dataclass(frozen=True)
class Mode:
    """One way of turning RoI maps into the vector the tracker compares.

    Attributes:
        name: the label in tables and plots.
        pooling: ``TrackerConfig.pooling`` value; None for motion only.
        params: further ``TrackerConfig`` fields (``gem_p``, ``maxpool_kernel``,
            ``reduce_dim``).
        pca_dim: PCA components fitted on the sequence's own flattened maps
            (then ``pooling`` must be ``flatten``); None for no PCA.
    """

    name: str
    pooling: str | None
    params: dict[str, Any] = field(default_factory=dict)
    pca_dim: int | None = None

    @property
    def appearance(self) -> bool:
        return self.pooling is not None

    def pool_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``deeptrack.appearance.pool`` for this mode."""
        return {"p": float(self.params.get("gem_p", 3.0)),
                "kernel": int(self.params.get("maxpool_kernel", 2))}


MOTION = Mode("motion only", None)
#: Poolings that keep no spatial layout, and those that keep some (by mode name).
GLOBAL_POOLING = ("avg", "max", "avgmax", "gem")
SPATIAL_POOLING = ("flatten", "maxpool_flatten", "pyramid")
ALL_MODES = (
    MOTION,
    Mode("avg", "avg"),
    Mode("max", "max"),
    Mode("avgmax", "avgmax"),
    Mode("gem p=1.5", "gem", {"gem_p": 1.5}),
    Mode("gem p=3", "gem", {"gem_p": 3.0}),
    Mode("gem p=6", "gem", {"gem_p": 6.0}),
    Mode("flatten", "flatten"),
    Mode("maxpool_flatten k=2", "maxpool_flatten", {"maxpool_kernel": 2}),
    Mode("pyramid", "pyramid"),
    Mode("flatten+RP512", "flatten", {"reduce_dim": 512}),
    Mode("flatten+PCA256", "flatten", pca_dim=256),
)
QUICK_MODES = ("motion only", "avg", "max", "gem p=3", "flatten+RP512", "flatten+PCA256")
BASELINE = "deep-sort-realtime (avg)"


# ---------------------------------------------------------------- small helpers


def log(message: str) -> None:
    """Progress on stderr with the time of day (the study runs for a while)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write a file so that it is either whole or absent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def roc_auc(positive: NDArray[np.floating], negative: NDArray[np.floating]) -> float:
    """Return P(a same-identity distance < a different-identity distance), ties counting half.

    The Mann-Whitney form of the ROC AUC: rank all distances together
    (ascending, tied values share their average rank); the negatives' rank sum
    minus its smallest possible value counts the (positive, negative) pairs
    ordered correctly.

    Args:
        positive: (P,) distances of same-identity pairs.
        negative: (Q,) distances of different-identity pairs.

    Returns:
        The AUC in [0, 1]; NaN when either side is empty.
    """
    pos = np.asarray(positive, np.float64).ravel()
    neg = np.asarray(negative, np.float64).ravel()
    n_pos, n_neg = len(pos), len(neg)
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    values = np.concatenate([pos, neg])
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)  # 1-based rank of each group's last member
    average_rank = ends - (counts - 1) / 2.0
    rank_sum_neg = average_rank[inverse[n_pos:]].sum()
    return float((rank_sum_neg - n_neg * (n_neg + 1) / 2.0) / (n_pos * n_neg))


def sample_pairs(frames: NDArray[np.int64], ids: NDArray[np.int64], window: int,
                 n_max: int, seed: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Return (same-identity, different-identity) index pairs of boxes 1..window frames apart.

    All pairs (i, j) with ``1 <= frames[j] - frames[i] <= window`` are listed,
    split by identity, and each side is subsampled to at most ``n_max`` pairs
    by a seeded generator (in the listing order, so the choice is reproducible).

    Args:
        frames: (N,) frame numbers, sorted ascending.
        ids: (N,) identities.
        window: largest frame gap.
        n_max: most pairs kept per side.
        seed: seed of the subsampling.

    Returns:
        Two (K, 2) int64 arrays of row indices into ``frames``.
    """
    frames = np.asarray(frames, np.int64)
    lo = np.searchsorted(frames, frames + 1, side="left")
    hi = np.searchsorted(frames, frames + window, side="right")
    n = hi - lo
    first = np.repeat(np.arange(len(frames)), n)
    offsets = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    second = np.repeat(lo, n) + offsets
    pairs = np.stack([first, second], axis=1)
    same = ids[pairs[:, 0]] == ids[pairs[:, 1]]
    rng = np.random.default_rng(seed)
    out = []
    for part in (pairs[same], pairs[~same]):
        if len(part) > n_max:
            part = part[np.sort(rng.choice(len(part), n_max, replace=False))]
        out.append(part)
    return out[0], out[1]


def pair_distances(vectors: NDArray[np.float32], pairs: NDArray[np.int64],
                   chunk: int = 4096) -> NDArray[np.float64]:
    """Cosine distances ``1 - <v_i, v_j>`` of unit rows for (K, 2) index pairs."""
    out = np.empty(len(pairs), np.float64)
    for s in range(0, len(pairs), chunk):
        p = pairs[s:s + chunk]
        out[s:s + chunk] = 1.0 - np.einsum("kd,kd->k", vectors[p[:, 0]], vectors[p[:, 1]])
    return out


# ---------------------------------------------------------------- data


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
    from deeptrack.io.sequence import find_sequences, load_sequence

    folders = find_sequences(data)
    if names:
        known = {p.name: p for p in folders}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise StudyError(f"--sequences: {', '.join(unknown)} not in {data} "
                             f"(found: {', '.join(known)})")
        folders = [known[n] for n in names]
    out = []
    for folder in folders:
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
        out.append(StudySequence(folder.name, runs, confs, gt.frame[order].astype(np.int64),
                                 gt.track_id[order].astype(np.int64),
                                 gt.boxes[order].astype(np.float64)))
    return out


def extract_maps(seq: StudySequence, appearance: AppearanceConfig, embedder) -> None:
    """Fill ``seq.maps[layer]``: one backbone pass per frame for all box sets, cached."""
    from deeptrack.appearance import FeatureCache, extract_sequence, file_sha256

    layer = embedder.spec.layer
    names = list(seq.runs)
    first = seq.first
    gt_starts = np.searchsorted(seq.gt_frames, np.arange(1, len(first) + 2))
    union, splits = [], []
    for i, frame in enumerate(first.frames):
        parts = [seq.runs[n].detections(int(frame)).boxes for n in names]
        parts.append(seq.gt_boxes[gt_starts[i]:gt_starts[i + 1]])
        union.append(np.concatenate(parts) if parts else np.zeros((0, 4)))
        splits.append(np.cumsum([len(p) for p in parts]))
    extra = {
        "study": "pooling_study",
        "detections": {n: {"sha256": file_sha256(seq.runs[n].det_path),
                           "min_confidence": seq.min_confidence[n]} for n in names},
        "gt_sha256": file_sha256(first.gt.path) if first.gt.path else None,
        "gt_rows": "flag != 0",
    }
    cache = FeatureCache(appearance.cache_dir) if appearance.cache_dir else None
    start = time.perf_counter()
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if time.perf_counter() - last[0] > 30 or done == total:
            last[0] = time.perf_counter()
            log(f"  {seq.name} {layer}: {done}/{total} frames")

    feats = extract_sequence(embedder, first.image_paths, union, cache=cache,
                             cache_key_extra=extra, progress=progress, sequence=seq.name)
    seq.extraction_seconds[layer] = time.perf_counter() - start
    log(f"  {seq.name} {layer}: maps {'from the cache' if feats.from_cache else 'computed'} "
        f"in {seq.extraction_seconds[layer]:.1f} s ({int(feats.counts.sum())} boxes)")
    per_set: dict[str, list[NDArray[np.floating]]] = {n: [] for n in [*names, "gt"]}
    for i in range(len(first)):
        maps = feats[i]
        bounds = [0, *splits[i].tolist()]
        for k, n in enumerate([*names, "gt"]):
            per_set[n].append(maps[bounds[k]:bounds[k + 1]])
    seq.maps[layer] = per_set


def pool_all(frame_maps: Sequence[NDArray[np.floating]], mode: Mode,
             chunk: int = 512) -> NDArray[np.float32]:
    """Pool the maps of all frames (rows in frame order), ``chunk`` RoIs at a time.

    Pooling is row by row, so chunking only bounds the float32 copies in memory.
    Random projection (``reduce_dim``) is applied as the tracker does; PCA is not.
    """
    from deeptrack.appearance import RandomProjection, pool

    nonempty = [m for m in frame_maps if len(m)]
    if not nonempty:
        return np.zeros((0, 1), np.float32)
    rows = []
    buffer: list[NDArray[np.floating]] = []
    size = 0
    for m in nonempty:
        buffer.append(m)
        size += len(m)
        if size >= chunk:
            rows.append(pool(np.concatenate(buffer), mode.pooling, **mode.pool_kwargs()))
            buffer, size = [], 0
    if buffer:
        rows.append(pool(np.concatenate(buffer), mode.pooling, **mode.pool_kwargs()))
    out = np.concatenate(rows)
    reduce_dim = mode.params.get("reduce_dim")
    if reduce_dim is not None:
        seed = int(mode.params.get("reduce_seed", TrackerConfig().reduce_seed))
        out = RandomProjection(out.shape[1], int(reduce_dim), seed)(out)
    return out


def fit_pca(vectors: NDArray[np.float32], dim: int, seed: int = 0):
    """Fit a PCAReducer with ``min(dim, M, D)`` components; return it and the projection."""
    from deeptrack.appearance import PCAReducer

    k = max(1, min(dim, *vectors.shape))
    reducer = PCAReducer(k, seed=seed)
    projected = reducer.fit_transform(vectors)
    return reducer, projected


# ---------------------------------------------------------------- runs


@dataclass
class RunRecord:
    """One tracking run and its scores."""

    sequence: str
    det_file: str
    layer: str
    mode: str
    threshold: float | None
    metrics: Any  # deeptrack.eval.SequenceMetrics
    dim: int
    ms_per_frame: float
    peak_gallery_bytes: int
    frames: int
    note: str = ""

    def row(self) -> dict[str, Any]:
        m = self.metrics.to_dict()
        return {"sequence": self.sequence, "det_file": self.det_file, "layer": self.layer,
                "mode": self.mode, "max_cosine_distance": self.threshold,
                **{k: m[k] for k in METRICS}, "embedding_dim": self.dim,
                "ms_per_frame": round(self.ms_per_frame, 3),
                "peak_gallery_mb": round(self.peak_gallery_bytes / 1e6, 3),
                "frames": self.frames, **({"note": self.note} if self.note else {})}


class Runner:
    """Runs (and remembers) tracking runs of the study on prepared sequences."""

    def __init__(self, sequences: list[StudySequence], base: TrackerConfig, pca_seed: int = 0):
        self.sequences = {s.name: s for s in sequences}
        self.base = base
        self.pca_seed = pca_seed
        self.records: dict[tuple, RunRecord] = {}
        self._pca: dict[tuple, tuple[list[NDArray[np.float32]], dict[str, Any]]] = {}
        self.pca_info: dict[str, dict[str, Any]] = {}

    def config(self, mode: Mode, threshold: float | None) -> TrackerConfig:
        changes: dict[str, Any] = {}
        if mode.appearance:
            changes = {"pooling": mode.pooling, **mode.params}
            if threshold is not None:
                changes["max_cosine_distance"] = float(threshold)
        return dataclasses.replace(self.base, **changes)

    def _pca_embeddings(self, seq: StudySequence, det_file: str, layer: str, mode: Mode):
        key = (seq.name, det_file, layer, mode.name)
        if key not in self._pca:
            start = time.perf_counter()
            frame_maps = seq.maps[layer][det_file]
            flat = pool_all(frame_maps, dataclasses.replace(mode, params={}))
            reducer, projected = fit_pca(flat, int(mode.pca_dim), self.pca_seed)
            del flat
            counts = np.cumsum([0, *(len(m) for m in frame_maps)])
            k = projected.shape[1]
            per_frame = [projected[counts[i]:counts[i + 1]] if counts[i + 1] > counts[i]
                         else np.zeros((0, k), np.float32) for i in range(len(frame_maps))]
            evr = reducer.explained_variance_ratio_
            info = {"components": int(k), "fitted_on": len(projected),
                    "explained_variance": round(float(np.sum(evr)), 4),
                    "seconds": round(time.perf_counter() - start, 2)}
            self._pca[key] = (per_frame, info)
            self.pca_info[f"{seq.name}/{det_file}/{layer}/{mode.name}"] = info
        return self._pca[key]

    def run(self, seq_name: str, det_file: str, layer: str, mode: Mode,
            threshold: float | None) -> RunRecord:
        """Track one sequence with one detection set, layer, mode and threshold (memoised)."""
        from deeptrack.eval import evaluate_sequence

        if not mode.appearance:
            threshold, layer = None, "-"
        key = (seq_name, det_file, layer, mode.name, threshold)
        if key in self.records:
            return self.records[key]
        seq = self.sequences[seq_name]
        data = seq.runs[det_file]
        cfg = self.config(mode, threshold)
        note = ""
        if not mode.appearance:
            run = track_sequence(data, cfg)
        elif mode.pca_dim is not None:
            embeddings, info = self._pca_embeddings(seq, det_file, layer, mode)
            run = track_sequence(data, cfg, embeddings=embeddings)
            note = (f"PCA fitted offline on the sequence's {info['fitted_on']} flattened "
                    f"maps ({info['seconds']} s, not in ms/frame)")
        else:
            run = track_sequence(data, cfg, seq.maps[layer][det_file])
        metrics = evaluate_sequence(data.gt, run.results, name=seq.name, path=data.path)
        rec = RunRecord(seq_name, det_file, layer, mode.name, threshold, metrics,
                        self._dim(run, mode, seq, layer, det_file), run.ms_per_frame,
                        run.peak_gallery_bytes, run.frames, note)
        self.records[key] = rec
        return rec

    @staticmethod
    def _dim(run: TrackRun, mode: Mode, seq: StudySequence, layer: str, det_file: str) -> int:
        if run.embedding_dim or not mode.appearance:
            return int(run.embedding_dim)
        from deeptrack.appearance import out_dim

        shape = next((m.shape for m in seq.maps[layer][det_file] if len(m)), None)
        if shape is None:
            return 0
        if mode.params.get("reduce_dim"):
            return int(mode.params["reduce_dim"])
        return out_dim(mode.pooling, shape[1], shape[2], shape[3],
                       int(mode.params.get("maxpool_kernel", 2)))


def run_baseline(seq: StudySequence, det_file: str, layer: str, threshold: float,
                 budget: int) -> RunRecord | None:
    """deep-sort-realtime on the same detections and avg-pooled embeddings; None if absent."""
    try:
        from deep_sort_realtime.deepsort_tracker import DeepSort
    except ImportError:
        return None
    from deeptrack.appearance import pool
    from deeptrack.boxes import xyxy_to_tlwh
    from deeptrack.eval import evaluate_sequence
    from deeptrack.io.mot import TrackResults

    data = seq.runs[det_file]
    tracker = DeepSort(max_age=30, n_init=3, nn_budget=budget, max_cosine_distance=threshold,
                       max_iou_distance=0.7, embedder=None)
    frames, ids, boxes, scores = [], [], [], []
    elapsed, peak = 0.0, 0
    maps = seq.maps[layer][det_file]
    for i, frame in enumerate(data.frames):
        dets = data.detections(int(frame))
        raw = [(list(b), float(s), "person") for b, s in zip(xyxy_to_tlwh(dets.boxes), dets.scores)]
        start = time.perf_counter()
        embeds = list(pool(maps[i], "avg")) if len(dets) else []
        tracks = tracker.update_tracks(raw, embeds=embeds)
        elapsed += time.perf_counter() - start
        for t in tracks:
            # Like deeptrack's output: confirmed tracks updated this frame, Kalman box.
            if t.is_confirmed() and t.time_since_update == 0:
                ltrb = np.asarray(t.to_ltrb(), np.float64)
                if ltrb[2] > ltrb[0] and ltrb[3] > ltrb[1]:
                    frames.append(int(frame))
                    ids.append(int(t.track_id))
                    boxes.append(ltrb)
                    scores.append(float(t.get_det_conf() or 0.0)
                                  if hasattr(t, "get_det_conf") else 1.0)
        peak = max(peak, sum(int(np.asarray(f).nbytes) for feats in
                             tracker.tracker.metric.samples.values() for f in feats))
    results = TrackResults(np.asarray(frames, np.int64), np.asarray(ids, np.int64),
                           np.asarray(boxes, np.float64).reshape(-1, 4),
                           np.asarray(scores, np.float64))
    metrics = evaluate_sequence(data.gt, results, name=seq.name, path=data.path)
    dim = next((m.shape[1] for m in maps if len(m)), 0)
    return RunRecord(seq.name, det_file, layer, BASELINE, threshold, metrics, int(dim),
                     1000.0 * elapsed / max(len(data), 1), peak, len(data),
                     "max_age=30, n_init=3 in frames at every frame rate")


# ---------------------------------------------------------------- identity separation


def identity_auc(sequences: list[StudySequence], layer: str, modes: Sequence[Mode],
                 window: int, n_pairs: int, seed: int) -> dict[str, Any]:
    """AUC of same- vs different-identity cosine distances on ground-truth boxes, per mode."""
    out: dict[str, Any] = {"pairs": {}, "modes": {}}
    pairs = {}
    for seq in sequences:
        pos, neg = sample_pairs(seq.gt_frames, seq.gt_ids, window, n_pairs, seed)
        pairs[seq.name] = (pos, neg)
        out["pairs"][seq.name] = {"same_identity": len(pos), "different_identity": len(neg)}
    for mode in modes:
        if not mode.appearance:
            continue
        per_seq, all_pos, all_neg = {}, [], []
        for seq in sequences:
            maps = seq.maps[layer]["gt"]
            if mode.pca_dim is not None:
                flat = pool_all(maps, dataclasses.replace(mode, params={}))
                _, vectors = fit_pca(flat, int(mode.pca_dim), seed)
                del flat
            else:
                vectors = pool_all(maps, mode)
            pos, neg = pairs[seq.name]
            dp, dn = pair_distances(vectors, pos), pair_distances(vectors, neg)
            del vectors
            all_pos.append(dp)
            all_neg.append(dn)
            per_seq[seq.name] = _separation(dp, dn)
        pooled = _separation(np.concatenate(all_pos), np.concatenate(all_neg))
        out["modes"][mode.name] = {"sequences": per_seq, "all": pooled}
    return out


def _separation(dp: NDArray[np.float64], dn: NDArray[np.float64]) -> dict[str, float]:
    def q(x: NDArray[np.float64], p: float) -> float:
        return round(float(np.quantile(x, p)), 4) if len(x) else float("nan")

    return {"auc": round(roc_auc(dp, dn), 4), "same_median": q(dp, 0.5),
            "same_p90": q(dp, 0.9), "diff_median": q(dn, 0.5), "diff_p10": q(dn, 0.1)}


# ---------------------------------------------------------------- the study


def combine(records: Sequence[RunRecord]) -> dict[str, Any]:
    """Counts summed over runs (the official way); ms/frame weighted by frames."""
    from deeptrack.eval.report import SequenceMetrics

    m = SequenceMetrics.combine([r.metrics for r in records]).to_dict()
    frames = sum(r.frames for r in records)
    return {**{k: m[k] for k in METRICS},
            "ms_per_frame": round(sum(r.ms_per_frame * r.frames for r in records)
                                  / max(frames, 1), 3),
            "peak_gallery_mb": round(max(r.peak_gallery_bytes for r in records) / 1e6, 3),
            "embedding_dim": records[0].dim, "runs": len(records)}


def _best(results: dict[float, dict[str, Any]], metric: str) -> float:
    # Highest metric; ties go to HOTA, then to the smaller threshold (stricter gate).
    return min(results, key=lambda t: (-results[t][metric], -results[t]["hota"], t))


def run_study(args: argparse.Namespace) -> dict[str, Any]:
    """Run everything; return the JSON-able results."""
    t_start = time.perf_counter()
    det_sets = parse_det_sets(args.det_sets)
    names = [s.strip() for s in args.sequences.split(",") if s.strip()] if args.sequences else None
    sequences = load_study_sequences(Path(args.data), names, det_sets)
    tune_seq = next((s for s in sequences if s.name == args.tune_sequence), None)
    if tune_seq is None or args.tune_det not in tune_seq.runs:
        raise StudyError(f"tuning run {args.tune_sequence}/{args.tune_det} is not among the "
                         f"sequences and detection files studied (--tune-sequence, --tune-det)")
    modes = [m for m in ALL_MODES if not args.quick or m.name in QUICK_MODES]
    grid = tuple(sorted(set(QUICK_GRID if args.quick else FULL_GRID) | set(FIXED_THRESHOLDS)))
    weights = None if args.weights == "random" else str(args.weights)
    appearance = AppearanceConfig(backbone=args.backbone, weights=weights, layer=args.layer,
                                  image_scale=args.image_scale, batch_size=args.batch_size,
                                  cache_dir=None if args.no_cache else str(args.cache))
    from deeptrack.appearance.embedder import RoIEmbedder

    embedder = RoIEmbedder(appearance)
    main_layer = embedder.spec.layer
    layer_axis = [s.strip() for s in args.layer_axis.split(",") if s.strip()]
    log(f"{len(sequences)} sequence(s): " + ", ".join(
        f"{s.name} ({', '.join(s.runs)})" for s in sequences))

    # 1. RoI maps: one backbone pass per frame per layer, all box sets at once.
    log(f"RoI maps, {args.backbone} {main_layer}, image scale {args.image_scale}")
    for seq in sequences:
        extract_maps(seq, appearance, embedder)
    del embedder

    base = TrackerConfig()
    runner = Runner(sequences, base)
    pairs_seed = 0

    # 2. Identity separation on ground-truth boxes.
    log("identity separation (ROC AUC) on ground-truth boxes")
    auc = {main_layer: identity_auc(sequences, main_layer, modes, args.pair_window,
                                    args.pairs, pairs_seed)}

    # 3. Threshold tuning on one run.
    log(f"tuning max_cosine_distance on {tune_seq.name}/{args.tune_det} by {args.tune_metric}")
    tuning: dict[str, dict[float, dict[str, Any]]] = {}
    tuned: dict[str, float | None] = {}
    for mode in modes:
        if not mode.appearance:
            tuned[mode.name] = None
            continue
        tuning[mode.name] = {}
        for thr in grid:
            rec = runner.run(tune_seq.name, args.tune_det, main_layer, mode, thr)
            tuning[mode.name][thr] = rec.row()
        tuned[mode.name] = _best(tuning[mode.name], args.tune_metric)
        best = tuning[mode.name][tuned[mode.name]]
        log(f"  {mode.name:<22} tuned {tuned[mode.name]:.2f}: IDF1 {100 * best['idf1']:.2f} "
            f"HOTA {100 * best['hota']:.2f} ({best['ms_per_frame']:.1f} ms/frame)")

    # 4. Every sequence x detection set x mode at the tuned threshold and the fixed ones.
    log("all runs at the tuned and the fixed thresholds")
    combos = [(s.name, d) for s in sequences for d in s.runs]
    for mode in modes:
        thresholds = [tuned[mode.name]] if not mode.appearance else sorted(
            {tuned[mode.name], *FIXED_THRESHOLDS})
        for seq_name, det_file in combos:
            for thr in thresholds:
                runner.run(seq_name, det_file, main_layer, mode, thr)
        log(f"  {mode.name} done")

    baseline_records: list[RunRecord] = []
    baseline_thresholds = sorted({tuned["avg"], 0.2}) if "avg" in tuned else []
    for seq_name, det_file in combos:
        for thr in baseline_thresholds:
            rec = run_baseline(runner.sequences[seq_name], det_file, main_layer, thr,
                               base.nn_budget)
            if rec is None:
                break
            baseline_records.append(rec)
    log(f"baseline: {len(baseline_records)} run(s)"
        + ("" if baseline_records or not baseline_thresholds else
           " (deep-sort-realtime not installed)"))

    # 5. The layer axis for the two best modes (by the tuned result on the tuning run).
    ranked = sorted((m for m in modes if m.appearance),
                    key=lambda m: (-tuning[m.name][tuned[m.name]][args.tune_metric],
                                   -tuning[m.name][tuned[m.name]]["hota"]))
    top = ranked[:2]
    layer_tuning: dict[str, dict[str, dict[float, dict[str, Any]]]] = {}
    layer_tuned: dict[str, dict[str, float]] = {}
    for layer in layer_axis:
        if layer == main_layer:
            continue
        log(f"layer axis: {layer} for {', '.join(m.name for m in top)}")
        emb = RoIEmbedder(dataclasses.replace(appearance, layer=layer))
        for seq in sequences:
            extract_maps(seq, appearance, emb)
        del emb
        auc[layer] = identity_auc(sequences, layer, modes, args.pair_window, args.pairs,
                                  pairs_seed)
        layer_tuning[layer], layer_tuned[layer] = {}, {}
        for mode in top:
            res = {thr: runner.run(tune_seq.name, args.tune_det, layer, mode, thr).row()
                   for thr in grid}
            layer_tuning[layer][mode.name] = res
            layer_tuned[layer][mode.name] = _best(res, args.tune_metric)
            for seq_name, det_file in combos:
                runner.run(seq_name, det_file, layer, mode, layer_tuned[layer][mode.name])
    layer_tuned[main_layer] = {m.name: tuned[m.name] for m in top}

    # 6. Reproducibility: the tuning run again, maps fetched afresh from the cache.
    log("reproducibility: the tuning run again at every tuned threshold")
    repro = check_repro(args, appearance, sequences, tune_seq, main_layer, modes, tuned,
                        runner)

    elapsed = time.perf_counter() - t_start
    res = assemble(args, sequences, modes, grid, runner, tuning, tuned, baseline_records,
                   auc, top, layer_tuning, layer_tuned, main_layer, repro, elapsed)
    res["gt_box_cells"] = box_cells(sequences, args, [main_layer, *layer_tuning])
    return res


def box_cells(sequences: list[StudySequence], args: argparse.Namespace,
              layers: list[str]) -> dict[str, Any]:
    """Median ground-truth box width and height in cells of each layer's feature map.

    A box spanning few cells gives a 7 x 7 RoIAlign map that interpolates few
    distinct feature vectors, which limits what any pooling can tell apart.
    """
    from deeptrack.appearance.backbone import resolve_spec

    out: dict[str, Any] = {}
    for seq in sequences:
        w = seq.gt_boxes[:, 2] - seq.gt_boxes[:, 0]
        h = seq.gt_boxes[:, 3] - seq.gt_boxes[:, 1]
        med_w, med_h = (float(np.median(w)), float(np.median(h))) if len(w) else (0.0, 0.0)
        out[seq.name] = {"median_width_px": round(med_w, 1), "median_height_px": round(med_h, 1)}
        for layer in layers:
            stride = resolve_spec(args.backbone, layer).stride / args.image_scale
            out[seq.name][layer] = [round(med_w / stride, 2), round(med_h / stride, 2)]
    return out


def check_repro(args, appearance: AppearanceConfig, sequences: list[StudySequence],
                tune_seq: StudySequence, layer: str, modes: Sequence[Mode],
                tuned: dict[str, float | None], runner: Runner) -> dict[str, Any]:
    """Re-run the tuning run of every mode on freshly loaded maps; compare the metrics."""
    from deeptrack.appearance.embedder import RoIEmbedder

    if appearance.cache_dir is None or appearance.weights is None:
        # Random weights are never cached (each model is new); without a cache
        # the check would only rerun the tracker on the same arrays.
        fresh_seq = tune_seq
        how = "same in-memory maps (no cache or random weights)"
    else:
        fresh_seq = dataclasses.replace(tune_seq, maps={}, extraction_seconds={})
        extract_maps(fresh_seq, appearance, RoIEmbedder(appearance))
        how = "maps loaded again from the feature cache"
    fresh = Runner([fresh_seq], runner.base)
    same, differ = [], []
    for mode in modes:
        a = runner.run(tune_seq.name, args.tune_det, layer, mode, tuned[mode.name])
        b = fresh.run(tune_seq.name, args.tune_det, layer, mode, tuned[mode.name])
        (same if a.metrics.to_dict() == b.metrics.to_dict() else differ).append(mode.name)
    return {"run": f"{tune_seq.name}/{args.tune_det}", "how": how, "identical": same,
            "different": differ, "all_identical": not differ}


# ---------------------------------------------------------------- outputs


def machine() -> dict[str, Any]:
    import torch

    model = platform.processor() or ""
    try:
        text = subprocess.run(["lscpu"], check=False, capture_output=True, text=True, timeout=10).stdout
        model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines()
                      if ln.startswith("Model name")), model)
    except (OSError, subprocess.SubprocessError):
        pass
    commit = "unknown"
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=False, cwd=REPO,
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "deeptrack"], check=False,
                               cwd=REPO, capture_output=True, text=True, timeout=10).stdout
        commit = (head + (" + uncommitted changes in deeptrack/" if dirty.strip() else "")
                  if head else commit)
    except (OSError, subprocess.SubprocessError):
        pass
    return {"cpu": model, "cores": os.cpu_count(), "deeptrack_commit": commit, "torch_threads": torch.get_num_threads(),
            "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
            "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "platform": platform.platform(),
            "deeptrack": __version__}


def assemble(args, sequences, modes, grid, runner: Runner, tuning, tuned, baseline_records,
             auc, top, layer_tuning, layer_tuned, main_layer, repro, elapsed) -> dict[str, Any]:
    recs = list(runner.records.values())
    combos = [(s.name, d) for s in sequences for d in s.runs]
    tune_key = (args.tune_sequence, args.tune_det)

    def pick(mode: Mode, thr, layer=main_layer, where=None):
        lay = layer if mode.appearance else "-"
        t = thr if mode.appearance else None
        return [r for r in recs if r.mode == mode.name and r.layer == lay and r.threshold == t
                and (where is None or where((r.sequence, r.det_file)))]

    det_files = list(dict.fromkeys(d for _, d in combos))
    summary = {}
    for mode in modes:
        thr = tuned[mode.name]
        entry = {"tuned_threshold": thr,
                 "all": combine(pick(mode, thr)),
                 "held_out": (combine(pick(mode, thr, where=lambda k: k != tune_key))
                              if len(combos) > 1 else None),
                 "per_det_file": {d: combine(pick(mode, thr, where=lambda k, d=d: k[1] == d))
                                  for d in det_files}}
        if mode.appearance:
            entry["fixed"] = {str(t): combine(pick(mode, t)) for t in FIXED_THRESHOLDS}
        summary[mode.name] = entry
    baseline = {}
    for thr in sorted({r.threshold for r in baseline_records}):
        group = [r for r in baseline_records if r.threshold == thr]
        baseline[str(thr)] = {
            "all": combine(group),
            "held_out": (combine([r for r in group if (r.sequence, r.det_file) != tune_key])
                         if len(combos) > 1 else None),
            "per_det_file": {d: combine([r for r in group if r.det_file == d])
                             for d in det_files}}
    layers = {}
    for layer in sorted(layer_tuned, key=lambda lay: lay != main_layer):  # main layer first
        chosen = layer_tuned[layer]
        layers[layer] = {}
        for name, thr in chosen.items():
            mode = next(m for m in modes if m.name == name)
            layers[layer][name] = {"tuned_threshold": thr, "all": combine(pick(mode, thr, layer)),
                                   "tuning_run": next(r.row() for r in pick(
                                       mode, thr, layer, where=lambda k: k == tune_key))}
    cmd = "python " + " ".join(shlex.quote(a) for a in [
        os.path.relpath(sys.argv[0], Path.cwd()) if sys.argv[0] else "benchmarks/pooling_study.py",
        *sys.argv[1:]])
    return {
        "command": cmd,
        "elapsed_seconds": round(elapsed, 1),
        "machine": machine(),
        "settings": {
            "data": str(args.data), "weights": str(args.weights), "backbone": args.backbone,
            "layer": main_layer, "layer_axis": [main_layer, *[x for x in layer_tuned
                                                              if x != main_layer]],
            "image_scale": args.image_scale, "roi_size": AppearanceConfig().roi_size,
            "cache": None if args.no_cache else str(args.cache),
            "det_sets": {s.name: s.min_confidence for s in sequences},
            "det_sets_arg": args.det_sets,
            "tuning_run": f"{args.tune_sequence}/{args.tune_det}",
            "tuning_metric": args.tune_metric, "threshold_grid": list(grid),
            "fixed_thresholds": list(FIXED_THRESHOLDS), "quick": bool(args.quick),
            "tracker": dataclasses.asdict(TrackerConfig()) | {"pooling": "(per mode)"},
            "pair_window_frames": args.pair_window, "max_pairs_per_side": args.pairs,
            "pair_seed": 0, "pca_seed": 0,
            "frame_rates": {s.name: s.first.frame_rate for s in sequences},
        },
        "extraction_seconds": {s.name: {k: round(v, 1) for k, v in s.extraction_seconds.items()}
                               for s in sequences},
        "modes": [{"name": m.name, "pooling": m.pooling, **m.params,
                   **({"pca_dim": m.pca_dim} if m.pca_dim else {})} for m in modes],
        "tuned_thresholds": tuned,
        "tuning": {m: {str(t): row for t, row in res.items()} for m, res in tuning.items()},
        "summary": summary,
        "baseline": baseline,
        "top_modes": [m.name for m in top],
        "layers": layers,
        "layer_tuning": {lay: {m: {str(t): row for t, row in res.items()}
                               for m, res in v.items()} for lay, v in layer_tuning.items()},
        "identity_separation": auc,
        "pca": runner.pca_info,
        "reproducibility": repro,
        "runs": [r.row() for r in recs] + [r.row() for r in baseline_records],
    }


def compare_previous(res: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any] | None:
    """Compare the accuracy numbers with an earlier run's JSON of the same settings."""
    if old is None:
        return None
    res = json.loads(json.dumps(res, default=str))  # compare as both are stored
    ignore = ("cache",)
    same_settings = ({k: v for k, v in old.get("settings", {}).items() if k not in ignore}
                     == {k: v for k, v in res["settings"].items() if k not in ignore})
    if not same_settings:
        return {"compared": 0, "note": "the previous JSON in --out had other settings"}

    def key(r: dict[str, Any]) -> tuple:
        return (r["sequence"], r["det_file"], r["layer"], r["mode"], r["max_cosine_distance"])

    before = {key(r): r for r in old.get("runs", [])}
    fields = [*METRICS, "embedding_dim"]
    differ = [" / ".join(str(x) for x in key(r)) for r in res["runs"]
              if key(r) in before and any(before[key(r)][f] != r[f] for f in fields)]
    matched = sum(key(r) in before for r in res["runs"])
    auc_same = old.get("identity_separation") == res["identity_separation"]
    return {"compared": matched, "runs_total": len(res["runs"]), "different": differ,
            "auc_identical": auc_same, "previous_elapsed_seconds": old.get("elapsed_seconds"),
            "all_identical": not differ and matched == len(res["runs"]) and auc_same}


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def _table(head: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _metric_cells(m: dict[str, Any]) -> list[Any]:
    return [_pct(m["mota"]), _pct(m["idf1"]), _pct(m["hota"]), _pct(m["assa"]), m["idsw"],
            m["fp"], m["fn"]]


METRIC_HEAD = ["MOTA", "IDF1", "HOTA", "AssA", "IDsw", "FP", "FN"]


def conclusion(res: dict[str, Any]) -> list[str]:
    """Findings computed from the numbers, so that a rerun rewrites them consistently."""
    s = res["summary"]
    metric = res["settings"]["tuning_metric"]
    appearance = [m for m in s if s[m]["tuned_threshold"] is not None]
    if not appearance:
        return []
    view = "held_out" if all(s[m]["held_out"] for m in s) else "all"
    where = ("on the runs not used for tuning" if view == "held_out" else "over all runs")
    order = sorted(appearance, key=lambda m: (s[m][view][metric], s[m][view]["hota"]),
                   reverse=True)
    best = order[0]
    second = order[1] if len(order) > 1 else best
    b, c = s[best][view], s[second][view]
    out = [(f"Best appearance mode by {metric.upper()} {where} ({b['runs']} sequence x "
           f"detection-file runs, counts summed): **{best}** (IDF1 {_pct(b['idf1'])}, HOTA "
           f"{_pct(b['hota'])}, MOTA {_pct(b['mota'])}; {b['embedding_dim']}-d, "
           f"{b['ms_per_frame']:.1f} ms/frame), ahead of {second} by "
           f"{100 * (b['idf1'] - c['idf1']):+.2f} IDF1 and {100 * (b['hota'] - c['hota']):+.2f} "
           f"HOTA.")]
    if "avg" in s and best != "avg":
        a = s["avg"][view]
        out.append(f"Against avg pooling (DeepSORT-style global average): "
                   f"{100 * (b['idf1'] - a['idf1']):+.2f} IDF1, "
                   f"{100 * (b['hota'] - a['hota']):+.2f} HOTA.")
    if "motion only" in s:
        mo = s["motion only"][view]
        beat_idf1 = [m for m in appearance if s[m][view]["idf1"] > mo["idf1"]]
        beat_hota = [m for m in appearance if s[m][view]["hota"] > mo["hota"]]
        out.append(f"Against motion only (no appearance; IDF1 {_pct(mo['idf1'])}, HOTA "
                   f"{_pct(mo['hota'])}): the best mode is {100 * (b['idf1'] - mo['idf1']):+.2f} "
                   f"IDF1, {100 * (b['hota'] - mo['hota']):+.2f} HOTA, "
                   f"{b['idsw'] - mo['idsw']:+d} ID switches. "
                   f"{len(beat_idf1)} of {len(appearance)} appearance modes beat motion only on "
                   f"IDF1 {where}, {len(beat_hota)} on HOTA.")
    groups = {"global": [m for m in appearance if m.split()[0] in GLOBAL_POOLING],
              "spatial": [m for m in appearance if m.split()[0] in SPATIAL_POOLING]}
    if groups["global"] and groups["spatial"]:
        g_best = max(groups["global"], key=lambda m: s[m][view]["idf1"])
        sp_worst = min(groups["spatial"], key=lambda m: s[m][view]["idf1"])
        margin = 100 * (s[sp_worst][view]["idf1"] - s[g_best][view]["idf1"])
        hota_margin = 100 * (min(s[m][view]["hota"] for m in groups["spatial"])
                             - max(s[m][view]["hota"] for m in groups["global"]))
        keys = {(r["sequence"], r["det_file"]) for r in res["runs"] if r["mode"] == best}
        tune = tuple(res["settings"]["tuning_run"].split("/", 1))
        if view == "held_out":
            keys.discard(tune)
        layer = res["settings"]["layer"]

        def idf1(mode: str, k: tuple) -> float:
            return next(r["idf1"] for r in res["runs"] if r["mode"] == mode
                        and (r["sequence"], r["det_file"]) == k and r["layer"] == layer
                        and r["max_cosine_distance"] == s[mode]["tuned_threshold"])

        wins = sum(min(idf1(m, k) for m in groups["spatial"])
                   > max(idf1(m, k) for m in groups["global"]) for k in keys)
        out.append(f"Spatial layouts kept ({', '.join(groups['spatial'])}) against global "
                   f"pooling ({', '.join(groups['global'])}), {where}: the worst spatial mode "
                   f"({sp_worst}) is {margin:+.2f} IDF1 from the best global one ({g_best}), "
                   f"and the worst spatial HOTA {hota_margin:+.2f} from the best global HOTA; "
                   f"every spatial mode beats every global mode on {wins} of {len(keys)} of "
                   f"these runs separately.")
    spread = [100 * s[m][view]["idf1"] for m in appearance]
    moves = [100 * abs(s[m]["fixed"]["0.1"]["idf1"] - s[m]["fixed"]["0.2"]["idf1"])
             for m in appearance]
    tuned_vs_02 = [100 * abs(s[m]["all"]["idf1"] - s[m]["fixed"]["0.2"]["idf1"])
                   for m in appearance]
    gap = 100 * (b["idf1"] - c["idf1"])
    med = float(np.median(moves))
    out.append(f"Threshold against mode: the tuned IDF1 of all appearance modes spans "
               f"{min(spread):.2f} to {max(spread):.2f} ({max(spread) - min(spread):.2f} points); "
               f"moving max_cosine_distance from 0.1 to 0.2 changes a mode's IDF1 (all runs) by "
               f"{min(moves):.2f} to {max(moves):.2f} points (median {med:.2f}), and tuned vs "
               f"0.2 by up to {max(tuned_vs_02):.2f}. The gap between the best two modes "
               f"({gap:.2f}) is " + ("larger" if gap > med else "smaller")
               + " than the median threshold effect: "
               + ("the winner is ahead by more than the threshold setting moves."
                  if gap > med else
                  "the top modes are not separated beyond what the threshold setting moves."))
    base = res.get("baseline", {})
    avg_thr = s.get("avg", {}).get("tuned_threshold")
    if base and avg_thr is not None:
        runs = res["runs"]
        fps = res["settings"]["frame_rates"]
        ref = [r for r in runs if r["mode"] == "avg" and r["max_cosine_distance"] == avg_thr
               and r["layer"] == res["settings"]["layer"]]
        pairs = []
        for r in ref:
            if fps.get(r["sequence"]) != 30:
                continue
            o = next((x for x in runs if x["mode"] == BASELINE and x["sequence"] == r["sequence"]
                      and x["det_file"] == r["det_file"] and x["max_cosine_distance"] == avg_thr),
                     None)
            if o is not None:
                pairs.append(max(abs(o[k] - r[k]) for k in ("idf1", "hota", "mota")))
        if pairs:
            out.append(f"Cross-check: on the 30 fps runs (where its frame counts equal ours) "
                       f"deep-sort-realtime fed the same avg vectors at the same threshold "
                       f"differs from deeptrack's avg by at most {100 * max(pairs):.2f} points of "
                       f"IDF1/HOTA/MOTA ({len(pairs)} runs).")
    layer = res["settings"]["layer"]
    sep = res["identity_separation"].get(layer, {}).get("modes", {})
    cells = res.get("gt_box_cells")
    if cells:
        out.append("Box size in feature cells (median ground-truth width x height, at "
                   f"image scale {res['settings']['image_scale']}): " + "; ".join(
                       f"{seq}: " + ", ".join(f"{lay} {v[lay][0]:.1f} x {v[lay][1]:.1f}"
                                              for lay in v if isinstance(v[lay], list))
                       for seq, v in cells.items())
                   + ". Where a person spans only a few cells, the 7 x 7 RoI map interpolates "
                     "a handful of vectors, which leaves the pooling modes little to differ on.")
        spreads = []
        for lay, v in res["identity_separation"].items():
            aucs = [m["all"]["auc"] for name, m in v["modes"].items() if "PCA" not in name]
            if aucs:
                spreads.append(f"{lay} {min(aucs):.3f}-{max(aucs):.3f}")
        if spreads:
            out.append("AUC range across pooling modes (PCA aside) per layer: "
                       + ", ".join(spreads) + ".")
    if sep:
        by_auc = sorted(sep, key=lambda m: sep[m]["all"]["auc"], reverse=True)
        out.append(f"Identity separation on ground-truth boxes ({layer}, no tracking): AUC "
                   f"{sep[by_auc[-1]]['all']['auc']:.3f} ({by_auc[-1]}) to "
                   f"{sep[by_auc[0]]['all']['auc']:.3f} ({by_auc[0]})"
                   + (f"; avg {sep['avg']['all']['auc']:.3f}" if "avg" in sep else "") + ".")
        layers = res["identity_separation"]
        if len(layers) > 1:
            best_layer = {m: max(layers, key=lambda lay: layers[lay]["modes"][m]["all"]["auc"])
                          for m in sep}
            counts = {lay: sum(v == lay for v in best_layer.values()) for lay in layers}
            out.append("Layer with the highest AUC, counted over modes: "
                       + ", ".join(f"{lay} {n}" for lay, n in counts.items()) + ".")
    if res.get("layers"):
        for name in res.get("top_modes", []):
            per = {lay: v[name]["all"] for lay, v in res["layers"].items() if name in v}
            if len(per) > 1:
                top = max(per, key=lambda lay: per[lay]["idf1"])
                out.append(f"Layer axis, {name} (all runs): " + ", ".join(
                    f"{lay} IDF1 {_pct(v['idf1'])} / HOTA {_pct(v['hota'])}"
                    for lay, v in per.items()) + f"; best IDF1 at {top}.")
    return out


def caveats(res: dict[str, Any]) -> list[str]:
    """What limits the conclusion, stated from the run's own settings."""
    st = res["settings"]
    seqs = list(st["frame_rates"])
    out = []
    if st["backbone"] == "mobilenet_v2":
        out.append("The backbone is an ImageNet classifier (MobileNetV2), not a "
                   "re-identification network: its RoI features are generic, and the ranking of "
                   "pooling modes may differ with re-ID features.")
    out.append(f"{len(seqs)} sequence(s) only ({', '.join(seqs)}), frames resized by "
               f"{st['image_scale']} before the backbone; differences of a point or two of "
               f"IDF1 are of the size one threshold step moves (see the tuning table).")
    out.append(f"The threshold is tuned on one run ({st['tuning_run']}), which is also part of "
               f"the 'all' rows; the held-out rows exclude it.")
    out.append("PCA is fitted on each sequence's own detections (offline, transductive); an "
               "online tracker would need a projection fitted elsewhere. Its vectors are "
               "centred, so their cosine distances are on another scale (up to 2).")
    if any(m["name"] == "flatten+RP512" for m in res["modes"]):
        out.append("flatten+RP512 projects every 62720-d vector through a 62720 x 512 matrix (128 MB) "
                   "inside Tracker.update, which dominates its ms/frame; a 1280-d projection "
                   "(2.5 x the matrix) was left out of the default modes for that reason.")
    out.append("ms/frame is measured on a shared machine with other jobs running; compare "
               "orders of magnitude, not single milliseconds.")
    return out


def render_markdown(res: dict[str, Any], plots: list[str]) -> str:
    st = res["settings"]
    mc = res["machine"]
    s = res["summary"]
    L: list[str] = []
    L.append("# Pooling study: which vector should a tracker use?\n")
    L.append("Generated by `benchmarks/pooling_study.py`; every number below comes from the run "
             "recorded in `pooling_study.json` next to this file.\n")
    L.append("## Command, machine, time\n")
    L.append(f"```\n{res['command']}\n```\n")
    L.append(f"- machine: {mc['cpu']}, {mc['cores']} cores ({mc['torch_threads']} torch "
             f"threads; numpy's OpenBLAS threads: {mc['openblas_threads']}), shared with other "
             f"jobs; Python {mc['python']}, torch {mc['torch']}, numpy {mc['numpy']}, "
             f"deeptrack {mc['deeptrack']} at commit {mc.get('deeptrack_commit', 'unknown')}")
    extraction = [sec for v in res["extraction_seconds"].values() for sec in v.values()]
    L.append(f"- total run time: {res['elapsed_seconds'] / 60:.1f} min "
             f"({res['elapsed_seconds']:.0f} s), of which RoI map extraction: "
             + ", ".join(f"{seq} {lay} {sec:.0f} s" for seq, v in
                         res["extraction_seconds"].items() for lay, sec in v.items())
             + (" (every map came from the feature cache, filled by an earlier run of the same "
                "command; a cold cache adds one backbone pass per frame and layer)"
                if extraction and max(extraction) < 10 else ""))
    L.append(f"- backbone {st['backbone']}, weights `{st['weights']}`, RoIs pooled from layer "
             f"{st['layer']} (RoIAlign {st['roi_size']}x{st['roi_size']}), frames resized by "
             f"{st['image_scale']} before the backbone (CPU budget)")
    dets = "; ".join(f"{seq}: " + ", ".join(f"{d} >= {c}" for d, c in v.items())
                     for seq, v in st["det_sets"].items())
    L.append(f"- detections: min confidence fixed per detection file, for all modes: {dets}."
             + (" These defaults were chosen once, before this study, from a motion-only check "
                "on ADL-Rundle-6 (det.txt: ACF, scores about -1..127; det_frcnn.txt: Faster "
                "R-CNN, scores 0.5..1)." if st.get("det_sets_arg") == DEFAULT_DET_SETS else ""))
    L.append(f"- tracker: DeepSORT defaults (max_age 30 and n_init 3 at 30 fps, scaled with "
             f"the frame rate: {', '.join(f'{k} {v:g} fps' for k, v in st['frame_rates'].items())}"
             f"; nn_budget 100; gallery memory), the same for every mode.")
    L.append(f"- threshold: max_cosine_distance tuned per mode on **{st['tuning_run']}** only, "
             f"by **{st['tuning_metric'].upper()}** (ties: HOTA, then the smaller value), grid "
             f"{', '.join(f'{t:g}' for t in st['threshold_grid'])}; every other run uses that "
             f"value. Every mode is also run at {' and '.join(map(str, st['fixed_thresholds']))}.")
    L.append("- ms/frame: `TrackRun.ms_per_frame`, the time of `Tracker.update` per frame "
             "(pooling of the cached maps plus association), not the backbone; the CPU is shared, "
             "so timings are indicative (+-20 % between runs is normal). PCA modes: the "
             "projection is fitted and applied before tracking and is not in ms/frame.")
    L.append("- gallery MB: `TrackRun.peak_gallery_bytes`, the most memory the per-track "
             "galleries held at once.\n")

    L.append("## Combined results (tuned threshold)\n")
    L.append("Counts summed over runs before the ratios (the official way of combining). "
             "*held-out* excludes the tuning run.\n")
    head = ["mode", "thr", "dim", *METRIC_HEAD, "IDF1 held-out", "HOTA held-out", "ms/frame",
            "gallery MB"]
    rows = []
    for name, e in s.items():
        a, h = e["all"], e["held_out"]
        rows.append([name, "-" if e["tuned_threshold"] is None else f"{e['tuned_threshold']:g}",
                     a["embedding_dim"], *_metric_cells(a),
                     _pct(h["idf1"]) if h else "-", _pct(h["hota"]) if h else "-",
                     f"{a['ms_per_frame']:.1f}", f"{a['peak_gallery_mb']:.1f}"])
    for thr, e in res["baseline"].items():
        a, h = e["all"], e["held_out"]
        rows.append([BASELINE, thr, a["embedding_dim"], *_metric_cells(a),
                     _pct(h["idf1"]) if h else "-", _pct(h["hota"]) if h else "-",
                     f"{a['ms_per_frame']:.1f}", f"{a['peak_gallery_mb']:.1f}"])
    L.append(_table(head, rows) + "\n")
    if res["baseline"]:
        L.append("Baseline: deep-sort-realtime 1.3.2 `DeepSort(max_age=30, n_init=3, "
                 "nn_budget=100, max_cosine_distance=thr, embedder=None)`, fed the same "
                 "detections and the same avg-pooled embeddings, scored on its confirmed tracks "
                 "updated in the frame (as deeptrack outputs). thr: avg's tuned value and 0.2. "
                 "Its frame counts are not scaled with the frame rate (ours are): on KITTI-17 "
                 "(10 fps) it keeps lost tracks 30 frames (3 s) and confirms after 3 hits, "
                 "deeptrack 10 frames (1 s) and 1 hit. Its ms/frame includes its own avg "
                 "pooling per frame, like ours.\n")

    L.append("### Per detection file (tuned threshold, both sequences combined)\n")
    dfs = list(next(iter(s.values()))["per_det_file"])
    head = ["mode", *[f"{d} {k}" for d in dfs for k in ("IDF1", "HOTA", "MOTA")]]
    rows = []
    for name, e in s.items():
        rows.append([name, *[_pct(e["per_det_file"][d][k]) for d in dfs
                             for k in ("idf1", "hota", "mota")]])
    for thr, e in res["baseline"].items():
        rows.append([f"{BASELINE} {thr}", *[_pct(e["per_det_file"][d][k]) for d in dfs
                                             for k in ("idf1", "hota", "mota")]])
    L.append(_table(head, rows) + "\n")

    L.append("## Threshold effect\n")
    L.append("Combined over all runs: the same mode at 0.1, at 0.2 (DeepSORT's value) and at "
             "its tuned value.\n")
    head = ["mode", "tuned", "IDF1 @0.1", "IDF1 @0.2", "IDF1 @tuned", "HOTA @0.1", "HOTA @0.2",
            "HOTA @tuned", "|dIDF1| 0.1 vs 0.2"]
    rows = []
    for name, e in s.items():
        if e["tuned_threshold"] is None:
            continue
        f1, f2, a = e["fixed"]["0.1"], e["fixed"]["0.2"], e["all"]
        rows.append([name, f"{e['tuned_threshold']:g}", _pct(f1["idf1"]), _pct(f2["idf1"]),
                     _pct(a["idf1"]), _pct(f1["hota"]), _pct(f2["hota"]), _pct(a["hota"]),
                     f"{100 * abs(f1['idf1'] - f2['idf1']):.2f}"])
    L.append(_table(head, rows) + "\n")

    L.append(f"### Tuning run {st['tuning_run']}: {st['tuning_metric'].upper()} per threshold\n")
    grid = [str(t) for t in st["threshold_grid"]]
    head = ["mode", *grid]
    rows = []
    for name, res_m in res["tuning"].items():
        best = s[name]["tuned_threshold"]
        rows.append([name, *[(f"**{_pct(res_m[t][st['tuning_metric']])}**"
                              if float(t) == best else _pct(res_m[t][st['tuning_metric']]))
                             for t in grid]])
    L.append(_table(head, rows) + "\n")

    L.append("## Identity separation on ground-truth boxes (no tracking)\n")
    any_layer = next(iter(res["identity_separation"].values()))
    pairs = ", ".join(f"{k}: {v['same_identity']} same / {v['different_identity']} different"
                      for k, v in any_layer["pairs"].items())
    L.append(f"Cosine distances between pooled vectors of scored ground-truth boxes (flag 1) "
             f"1..{st['pair_window_frames']} frames apart; pairs subsampled with seed "
             f"{st['pair_seed']} to at most {st['max_pairs_per_side']} per side ({pairs}). "
             f"AUC = P(same-identity distance < different-identity distance), ties half "
             f"(Mann-Whitney). PCA: fitted on the sequence's own ground-truth boxes' flattened "
             f"maps (no labels used).\n")
    layers = list(res["identity_separation"])
    seq_names = list(any_layer["pairs"])
    head = ["mode", *[f"AUC {lay}" for lay in layers],
            *[f"{q} {layers[0]} {n}" for n in seq_names for q in ("AUC",)],
            f"same median {layers[0]}", f"diff median {layers[0]}"]
    rows = []
    for name in any_layer["modes"]:
        row = [name]
        for lay in layers:
            row.append(f"{res['identity_separation'][lay]['modes'][name]['all']['auc']:.3f}")
        first = any_layer["modes"][name]
        row += [f"{first['sequences'][n]['auc']:.3f}" for n in seq_names]
        row += [f"{first['all']['same_median']:.3f}", f"{first['all']['diff_median']:.3f}"]
        rows.append(row)
    L.append(_table(head, rows) + "\n")

    L.append("## Layer axis (two best modes on the tuning run)\n")
    L.append(f"Modes: {', '.join(res['top_modes'])}. Threshold tuned again per layer on the "
             f"tuning run; combined over all runs.\n")
    head = ["layer", "mode", "thr", "dim", *METRIC_HEAD, "ms/frame", "tuning-run IDF1"]
    rows = []
    for lay, v in res["layers"].items():
        for name, e in v.items():
            a = e["all"]
            rows.append([lay, name, f"{e['tuned_threshold']:g}", a["embedding_dim"],
                         *_metric_cells(a), f"{a['ms_per_frame']:.1f}",
                         _pct(e["tuning_run"]["idf1"])])
    L.append(_table(head, rows) + "\n")

    L.append("## Every run (tuned threshold)\n")
    head = ["sequence", "det", "mode", "thr", "dim", *METRIC_HEAD, "ms/frame", "gallery MB"]
    rows = []
    tuned = res["tuned_thresholds"]
    for r in res["runs"]:
        if r["layer"] not in (st["layer"], "-"):
            continue
        if r["mode"] != BASELINE and r["max_cosine_distance"] != tuned.get(r["mode"]):
            continue
        rows.append([r["sequence"], r["det_file"], r["mode"],
                     "-" if r["max_cosine_distance"] is None else f"{r['max_cosine_distance']:g}",
                     r["embedding_dim"], *_metric_cells(r), f"{r['ms_per_frame']:.1f}",
                     f"{r['peak_gallery_mb']:.1f}"])
    order = {name: i for i, name in enumerate([*s, BASELINE])}
    rows.sort(key=lambda x: (x[0], x[1], order.get(x[2], len(order))))
    L.append(_table(head, rows) + "\n")

    if res["pca"]:
        L.append("PCA fits: " + "; ".join(
            f"{k}: {v['components']} components on {v['fitted_on']} vectors, "
            f"{100 * v['explained_variance']:.1f} % of the variance, {v['seconds']} s"
            for k, v in res["pca"].items()) + ".\n")

    rp = res["reproducibility"]
    L.append("## Reproducibility\n")
    L.append(f"The tuning run ({rp['run']}) was tracked and scored a second time for every mode "
             f"at its tuned threshold ({rp['how']}): "
             + ("all metrics identical." if rp["all_identical"] else
                f"DIFFERENT for {', '.join(rp['different'])}.") + "\n")
    prev = res.get("previous_run")
    if prev and prev.get("compared"):
        L.append(f"The whole command had been run before with the same settings, writing the "
                 f"JSON this run replaced (that run took "
                 f"{(prev['previous_elapsed_seconds'] or 0) / 60:.1f} min). Of this run's "
                 f"{prev['runs_total']} tracking runs, {prev['compared']} were in it; "
                 + ("every one has identical MOTA, IDF1, HOTA, AssA, DetA, IDsw, FP, FN and "
                    "dimension, and the identity-separation numbers are identical too."
                    if prev["all_identical"] else
                    f"differences: {', '.join(prev['different']) or 'none in the runs'}; "
                    f"identity separation identical: {prev['auc_identical']}.") + "\n")

    L.append("## Plots\n")
    L += [f"![{p}]({p})" for p in plots]
    L.append("")
    L.append("## Conclusion (computed from the numbers above)\n")
    L += [f"- {c}" for c in conclusion(res)]
    L.append("")
    L.append("Caveats:\n")
    L += [f"- {c}" for c in caveats(res)]
    L.append("")
    return "\n".join(L)


def render_plots(res: dict[str, Any]) -> dict[str, bytes]:
    """PNG bytes per file name."""
    import matplotlib

    matplotlib.use("Agg")  # chosen when drawing, never at import time
    import matplotlib.pyplot as plt

    def png(fig) -> bytes:
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        return buf.getvalue()

    s = res["summary"]
    out = {}
    palette = plt.get_cmap("tab20").colors
    colour = {m["name"]: palette[(2 * i) % 20 + (2 * i) // 20] for i, m in enumerate(res["modes"])}
    names = list(s) + [f"{BASELINE} {t}" for t in res["baseline"]]
    dfs = list(next(iter(s.values()))["per_det_file"])
    fig, axes = plt.subplots(1, len(dfs), figsize=(7 * len(dfs), 5), squeeze=False)
    for ax, d in zip(axes[0], dfs):
        vals = [s[n]["per_det_file"][d] for n in s] + [
            e["per_det_file"][d] for e in res["baseline"].values()]
        x = np.arange(len(names))
        for k, key in enumerate(("idf1", "hota")):
            ax.bar(x + (k - 0.5) * 0.4, [100 * v[key] for v in vals], 0.4, label=key.upper())
        ax.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
        ax.set_ylabel("%")
        lo = min(100 * min(v["hota"], v["idf1"]) for v in vals)
        ax.set_ylim(max(0, lo - 10), None)
        ax.set_title(f"{d} (both sequences, tuned threshold)")
        ax.legend()
    out["pooling_study_tracking.png"] = png(fig)

    sep = res["identity_separation"]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    modes = list(next(iter(sep.values()))["modes"])
    x = np.arange(len(modes))
    width = 0.8 / len(sep)
    for k, (lay, v) in enumerate(sep.items()):
        ax.bar(x + (k - (len(sep) - 1) / 2) * width, [v["modes"][m]["all"]["auc"] for m in modes],
               width, label=lay)
    ax.set_xticks(x, modes, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("ROC AUC (same vs different identity)")
    allv = [v["modes"][m]["all"]["auc"] for v in sep.values() for m in modes]
    ax.set_ylim(max(0.0, min(allv) - 0.05), min(1.0, max(allv) + 0.02))
    ax.set_title("Identity separation on ground-truth boxes, per mode and layer")
    ax.legend()
    out["pooling_study_auc.png"] = png(fig)

    fig, ax = plt.subplots(figsize=(8, 4.5))
    st = res["settings"]
    for name, rows in res["tuning"].items():
        ts = sorted(rows, key=float)
        ax.plot([float(t) for t in ts], [100 * rows[t][st["tuning_metric"]] for t in ts],
                marker="o", ms=3, label=name, color=colour.get(name))
    if "motion only" in s:
        mo = [r for r in res["runs"] if r["mode"] == "motion only"
              and f"{r['sequence']}/{r['det_file']}" == st["tuning_run"]]
        if mo:
            ax.axhline(100 * mo[0][st["tuning_metric"]], color="k", ls="--", label="motion only")
    ax.set_xlabel("max_cosine_distance")
    ax.set_ylabel(f"{st['tuning_metric'].upper()} %")
    ax.set_title(f"Threshold tuning on {st['tuning_run']}")
    ax.legend(fontsize=7, ncol=2)
    out["pooling_study_threshold.png"] = png(fig)

    if res["layers"]:
        layers = list(res["layers"])
        order = sorted(layers, key=lambda lay: int("".join(c for c in lay if c.isdigit()) or 0))
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        for name in res["top_modes"]:
            ls = [lay for lay in order if name in res["layers"][lay]]
            axes[0].plot(ls, [100 * res["layers"][lay][name]["all"]["idf1"] for lay in ls],
                         marker="o", label=f"{name} IDF1", color=colour.get(name))
            axes[0].plot(ls, [100 * res["layers"][lay][name]["all"]["hota"] for lay in ls],
                         marker="s", ls="--", label=f"{name} HOTA", color=colour.get(name))
        if "motion only" in s:
            mo = s["motion only"]["all"]
            axes[0].axhline(100 * mo["idf1"], color="k", lw=1, label="motion only IDF1")
            axes[0].axhline(100 * mo["hota"], color="k", lw=1, ls="--",
                            label="motion only HOTA")
        axes[0].set_title("Tracking, all runs combined (threshold tuned per layer)")
        axes[0].set_ylabel("%")
        axes[0].legend(fontsize=7)
        for name in modes:
            ls = [lay for lay in order if lay in sep]
            axes[1].plot(ls, [sep[lay]["modes"][name]["all"]["auc"] for lay in ls], marker="o",
                         label=name, color=colour.get(name))
        axes[1].set_title("Identity-separation AUC")
        axes[1].legend(fontsize=6, ncol=2)
        out["pooling_study_layers.png"] = png(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, e in s.items():
        a = e["all"]
        if e["tuned_threshold"] is None:
            continue
        ax.scatter(a["ms_per_frame"], 100 * a["idf1"], color=colour.get(name))
        ax.annotate(f"{name} ({a['embedding_dim']}-d)", (a["ms_per_frame"], 100 * a["idf1"]),
                    fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("ms per frame (pooling + association), log")
    ax.set_ylabel("IDF1 % (all runs)")
    ax.set_title("Accuracy against cost")
    out["pooling_study_cost.png"] = png(fig)
    return out


# ---------------------------------------------------------------- command line


def _default_data() -> Path:
    env = os.environ.get("DEEPTRACK_DATA")
    if env:
        p = Path(env)
        return p / "MOT15" / "train" if (p / "MOT15" / "train").is_dir() else p
    return REPO.parent / "shared" / "data" / "MOT15" / "train"


def _default_weights() -> Path:
    env = os.environ.get("DEEPTRACK_WEIGHTS")
    root = Path(env) if env else REPO.parent / "shared" / "weights"
    return root / WEIGHTS_FILE


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pooling_study",
        description="Which pooled vector should a tracker use? Tracks every sequence with every "
                    "pooling mode on the same detections and cached RoI maps.")
    p.add_argument("--data", type=Path, default=_default_data(),
                   help="split folder of MOTChallenge sequences (default ../shared/data/MOT15/"
                        "train, or $DEEPTRACK_DATA)")
    p.add_argument("--weights", default=str(_default_weights()),
                   help="backbone state_dict file or torchvision weights name ('random': tests)")
    p.add_argument("--backbone", default="mobilenet_v2")
    p.add_argument("--layer", default=None, help="layer the RoIs are pooled from (default: the "
                                                 "backbone's default, stride32 for MobileNetV2)")
    p.add_argument("--layer-axis", default=None,
                   help="further layers for the two best modes (default for mobilenet_v2: "
                        "stride16,stride8; '' for none)")
    p.add_argument("--cache", type=Path, default=default_cache_dir(),
                   help="RoI feature cache (default ~/.cache/deeptrack/features or "
                        "$DEEPTRACK_CACHE)")
    p.add_argument("--no-cache", action="store_true", help="keep maps in memory only")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--sequences", default=None, help="comma-separated sequence names")
    p.add_argument("--det-sets", default=DEFAULT_DET_SETS,
                   help=f"detection files and min confidences (default {DEFAULT_DET_SETS})")
    p.add_argument("--tune-sequence", default="ADL-Rundle-6")
    p.add_argument("--tune-det", default="det_frcnn.txt")
    p.add_argument("--tune-metric", default="idf1", choices=("idf1", "hota"))
    p.add_argument("--image-scale", type=float, default=0.5)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--pair-window", type=int, default=30)
    p.add_argument("--pairs", type=int, default=20000, help="most pairs per side per sequence")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke test: modes {', '.join(QUICK_MODES)}; thresholds "
                        f"{', '.join(map(str, QUICK_GRID))}")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--from-json", type=Path, default=None,
                   help="only re-render the report and plots from an earlier run's JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.layer_axis is None:
        args.layer_axis = "stride16,stride8" if args.backbone == "mobilenet_v2" else ""
    if args.weights != "random" and Path(args.weights).suffix in (".pth", ".pt") \
            and not Path(args.weights).is_file():
        print(f"pooling_study: error: weights file {args.weights} not found (--weights)",
              file=sys.stderr)
        return 2
    previous = args.out / "pooling_study.json"
    try:
        old = json.loads(previous.read_text()) if previous.is_file() else None
    except (OSError, ValueError):
        old = None
    try:
        if args.from_json:
            res = json.loads(args.from_json.read_text())
        else:
            res = run_study(args)
            res["previous_run"] = compare_previous(res, old)
    except (DeepTrackError, OSError) as e:
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"pooling_study: error: {message}", file=sys.stderr)
        return 2
    plots = {} if args.no_plots else render_plots(res)
    out: Path = args.out
    for name, data in plots.items():
        write_atomic(out / name, data)
    if not args.from_json:
        write_atomic(out / "pooling_study.json", json.dumps(res, indent=1, default=str))
    write_atomic(out / "pooling_study.md", render_markdown(res, list(plots)))
    log(f"done in {res['elapsed_seconds'] / 60:.1f} min; wrote {out}/pooling_study.md"
        + ("" if args.from_json else ", .json") + (f" and {len(plots)} plots" if plots else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
