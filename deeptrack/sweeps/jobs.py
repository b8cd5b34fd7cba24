"""What a sweep's tasks do where they run: extract a sequence's RoI maps, or track and score it.

Both go through the public paths of a single run
(:func:`deeptrack.pipeline.sequence_features`, :func:`deeptrack.pipeline.run_sequence`,
:func:`deeptrack.eval.evaluate_sequence`), so a task computes exactly what a
serial run computes. The jobs are small frozen records: they travel to the
workers by pickle and name the sequence folder, not its contents.

RoI maps reach the tracking tasks in one of two ways (``transport``):

- ``object_store``: the feature task returns the maps themselves; Ray hands
  them to the tracking tasks through its object store (the pool, through pickle).
- ``cache``: the feature task writes the maps into the feature cache and
  returns a :class:`CachedFeatures` handle; the tracking tasks open the entry
  (memory-mapped). Needs a cache folder every worker sees (one machine, or a
  shared file system). A handle whose entry has gone (evicted meanwhile) is
  computed again: slower, never different.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deeptrack.config import AppearanceConfig, RunConfig, to_dict

__all__ = ["CachedFeatures", "FeatureJob", "RunJob", "RunResult", "extract_features", "track"]

logger = logging.getLogger(__name__)

TRANSPORTS = ("object_store", "cache")
#: torch threads of a feature task, wherever it runs (see :func:`extract_features`).
FEATURE_THREADS = 1

#: Sequences and RoI maps this worker process opened last: a worker that runs
#: several settings of one sequence parses its files and opens its maps once.
_MEMO_SIZE = 2
_sequences: OrderedDict[tuple, Any] = OrderedDict()
_features: OrderedDict[str, Any] = OrderedDict()


def _remember(memo: OrderedDict, key: Any, make: Callable[[], Any]) -> Any:
    if key in memo:
        memo.move_to_end(key)
        return memo[key]
    value = make()
    memo[key] = value
    while len(memo) > _MEMO_SIZE:
        memo.popitem(last=False)
    return value


@dataclass(frozen=True)
class FeatureJob:
    """Extract the RoI maps of one sequence's detections under one appearance setting.

    Attributes:
        sequence: the sequence folder.
        det_file: detection file inside ``det/``.
        min_confidence: detections scoring below it are dropped first.
        appearance: backbone, layer, scale, weights, cache.
        transport: ``object_store`` or ``cache`` (see the module docstring).
        embedder: factory ``AppearanceConfig -> embedder``; None: ``RoIEmbedder``.
    """

    sequence: str
    det_file: str
    min_confidence: float | None
    appearance: AppearanceConfig
    transport: str = "object_store"
    embedder: Callable[[AppearanceConfig], Any] | None = None


@dataclass(frozen=True)
class RunJob:
    """Track one sequence with one variant, and score it.

    Attributes:
        sequence: the sequence folder.
        label: the variant's label.
        config: the run (its ``det_file`` is the detection file read).
        evaluate: score against ``gt/gt.txt`` when the sequence has it.
    """

    sequence: str
    label: str
    config: RunConfig
    evaluate: bool = True


@dataclass(frozen=True)
class CachedFeatures:
    """Where a feature task left a sequence's maps: a cache entry any worker can open."""

    root: str
    key: Mapping[str, Any]
    max_bytes: int | None


@dataclass(frozen=True)
class RunResult:
    """One tracking task's result.

    Attributes:
        sequence: the sequence's name (``seqinfo.ini``).
        path: its folder, as the job gave it.
        det_file: the detection file tracked.
        label: the variant's label.
        run: tracks and cost (:class:`deeptrack.pipeline.TrackRun`).
        metrics: :class:`deeptrack.eval.report.SequenceMetrics`, or None
            without ground truth or when not asked for.
    """

    sequence: str
    path: str
    det_file: str
    label: str
    run: Any
    metrics: Any = None


def load(sequence: str, det_file: str, min_confidence: float | None):
    """Return the sequence (remembered per worker process, as it is read-only)."""
    from deeptrack.io.sequence import load_sequence

    key = (str(Path(sequence).resolve()), det_file, min_confidence)
    return _remember(_sequences, key, lambda: load_sequence(sequence, det_file=det_file,
                                                            min_confidence=min_confidence))


def extract_features(job: FeatureJob):
    """Compute (or fetch from the cache) the maps of ``job``; return them or a cache handle.

    The backbone runs on :data:`FEATURE_THREADS` torch threads wherever the task
    runs (this process, a pool worker, a Ray node): torch's sums depend on its
    thread count (KITTI-17's MobileNetV2 maps differ by up to 1.4e-5 between one
    and two threads), so one count everywhere makes a serial sweep and a
    parallel one compute the same maps, not merely close ones.
    """
    from deeptrack.pipeline import sequence_features

    seq = load(job.sequence, job.det_file, job.min_confidence)
    embedder = job.embedder(job.appearance) if job.embedder is not None else None
    with _torch_threads(FEATURE_THREADS):
        features = sequence_features(seq, job.appearance, embedder=embedder)
    if job.transport == "cache" and features.path is not None:
        _features[_key_text(features.key)] = features
        return CachedFeatures(str(job.appearance.cache_dir), features.key,
                              job.appearance.cache_max_bytes)
    return features


@contextlib.contextmanager
def _torch_threads(n: int):
    """Run the block with torch on ``n`` intra-op threads; restore the count after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _key_text(key: Mapping[str, Any]) -> str:
    return json.dumps(key, sort_keys=True, default=str)


def _open(handle: CachedFeatures, job: RunJob, seq):
    """The maps behind ``handle``: from this process's memo, the cache, or computed again."""
    def make():
        from deeptrack.appearance import FeatureCache
        from deeptrack.pipeline import sequence_features

        # The feature task of this sweep has just written or verified the entry: reading
        # its 0.6 GB again for the SHA-256 in every worker would cost each ~1 s per entry.
        # The size and header are still checked.
        hit = FeatureCache(handle.root, handle.max_bytes, verify=False).load(handle.key)
        if hit is not None:
            return hit
        logger.warning("%s: feature cache entry gone from %s (evicted, or not a shared "
                       "folder); computing the maps again", seq.name, handle.root)
        return sequence_features(seq, job.config.appearance)

    return _remember(_features, _key_text(handle.key), make)


def track(job: RunJob, features=None) -> RunResult:
    """Track ``job``'s sequence (on ``features`` when given) and score it.

    Args:
        job: the run.
        features: the sequence's maps (``SequenceFeatures``), a
            :class:`CachedFeatures` handle, or None (motion only, or extract here).
    """
    from deeptrack.eval import evaluate_sequence
    from deeptrack.pipeline import run_sequence

    cfg = job.config
    seq = load(job.sequence, cfg.det_file, cfg.min_confidence)
    if isinstance(features, CachedFeatures):
        features = _open(features, job, seq)
    run = run_sequence(seq, cfg, features=features)
    metrics = None
    if job.evaluate and seq.gt is not None:
        metrics = evaluate_sequence(seq.gt, run.results, name=seq.name, path=seq.path)
    return RunResult(seq.name, job.sequence, cfg.det_file, job.label, run, metrics)


def appearance_key(job: FeatureJob) -> str:
    """The feature task's identity: sequence, detections and every appearance setting."""
    return json.dumps({"sequence": str(Path(job.sequence).resolve()), "det_file": job.det_file,
                       "min_confidence": job.min_confidence,
                       "appearance": to_dict(job.appearance)}, sort_keys=True, default=str)
