"""Run a :class:`~deeptrack.sweeps.spec.SweepSpec` as independent tasks on any backend.

:func:`plan` turns the spec into tasks: one feature task per (sequence,
detection file, appearance setting) that some variant needs, and one tracking
task per (sequence, detection file, variant), placed after the feature task
whose maps it uses. :func:`run_sweep` runs them on a backend of
:mod:`deeptrack.sweeps.executor` and collects a :class:`SweepResult`, which
says what failed by name and whether the sweep is complete. Every backend runs
the same task functions on the same inputs, so the results equal a serial
run's to the last digit (``tests/test_sweeps.py`` checks it).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deeptrack.errors import ConfigError
from deeptrack.sweeps.executor import (
    Backend,
    Outcome,
    Progress,
    RayBackend,
    SerialBackend,
    Task,
    describe,
    run_tasks,
)
from deeptrack.sweeps.jobs import (
    TRANSPORTS,
    FeatureJob,
    RunJob,
    RunResult,
    appearance_key,
    extract_features,
    track,
)
from deeptrack.sweeps.spec import SweepSpec

__all__ = ["SweepResult", "choose_transport", "plan", "results_equal", "run_sweep"]

FEATURES_PREFIX = "features "


def choose_transport(spec: SweepSpec, backend: Backend, transport: str = "auto") -> str:
    """Return how RoI maps reach the tracking tasks (see :mod:`deeptrack.sweeps.jobs`).

    ``auto``: through the feature cache when every worker is on this machine
    and the runs have a cache folder; through Ray's object store (or in
    memory) otherwise: a cluster's nodes need not share a folder.
    """
    if transport not in ("auto", *TRANSPORTS):
        raise ConfigError(f"feature transport {transport!r}: expected auto, "
                          f"{' or '.join(TRANSPORTS)}")
    if transport != "auto":
        return transport
    remote = isinstance(backend, RayBackend) and backend.address is not None
    cached = all(v.config.appearance.cache_dir for v in spec.variants
                 if v.config.use_appearance)
    if remote or isinstance(backend, SerialBackend) or not cached:
        return "object_store"
    return "cache"


def _short(path: str) -> str:
    return Path(path).name or path


def plan(spec: SweepSpec, transport: str = "object_store") -> list[Task]:
    """Return the sweep's tasks: per sequence and detection file, its feature tasks then its runs.

    Task names: ``features SEQ/DET BACKBONE:LAYER xSCALE`` and ``SEQ/DET LABEL``
    (the sequence's folder name; its whole path if two folders share a name).
    """
    names = [_short(s) for s in spec.sequences]
    shown = {s: (n if names.count(n) == 1 else s) for s, n in zip(spec.sequences, names,
                                                                 strict=True)}
    tasks: list[Task] = []
    features: dict[str, str] = {}  # appearance key -> task name
    for seq, variant, cfg in spec.runs():
        where = f"{shown[seq]}/{cfg.det_file}"
        needs: tuple[str, ...] = ()
        if cfg.use_appearance:
            job = FeatureJob(seq, cfg.det_file, cfg.min_confidence, cfg.appearance,
                             transport=transport, embedder=spec.embedder)
            key = appearance_key(job)
            if key not in features:
                a = cfg.appearance
                name = f"{FEATURES_PREFIX}{where} {a.backbone}:{a.layer or 'default'} " \
                       f"x{a.image_scale:g}"
                same = sum(n.startswith(name) for n in features.values())
                features[key] = name if not same else f"{name} #{same + 1}"
                tasks.append(Task(features[key], extract_features, (job,), keep=False))
            needs = (features[key],)
        tasks.append(Task(f"{where} {variant.label}", track,
                          (RunJob(seq, variant.label, cfg, spec.evaluate),), needs=needs))
    return tasks


@dataclass(frozen=True)
class SweepResult:
    """What a sweep produced.

    Attributes:
        spec: the sweep.
        outcomes: every task's outcome (feature tasks included), in plan order.
        runs: the results of the tracking tasks that completed, in plan order.
        wall_seconds: from the first task submitted to the last finished.
        backend: where it ran, in words.
        transport: how RoI maps reached the tracking tasks.
    """

    spec: SweepSpec
    outcomes: list[Outcome]
    runs: list[RunResult]
    wall_seconds: float
    backend: str
    transport: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def failures(self) -> list[Outcome]:
        """The tasks that failed or could not run, by name and why."""
        return [o for o in self.outcomes if not o.ok]

    @property
    def complete(self) -> bool:
        """Whether every task ran to the end."""
        return not self.failures

    @property
    def task_seconds(self) -> float:
        """Time spent inside task functions, summed over tasks."""
        return sum(o.seconds for o in self.outcomes)

    def by_label(self) -> dict[str, list[RunResult]]:
        """Completed runs grouped by variant label, in the spec's variant order."""
        out: dict[str, list[RunResult]] = {v.label: [] for v in self.spec.variants}
        for r in self.runs:
            out[r.label].append(r)
        return out


def run_sweep(spec: SweepSpec, backend: Backend | None = None, *, transport: str = "auto",
              progress: Progress | None = None) -> SweepResult:
    """Run every task of ``spec`` on ``backend`` (default: serially, here).

    A task that fails (a bad sequence file, a worker that dies more often than
    the retries allow) is reported in :attr:`SweepResult.failures` by name; the
    others still run, except those that need its maps.

    Args:
        spec: the sweep.
        backend: from :func:`deeptrack.sweeps.executor.make_backend`.
        transport: ``auto``, ``object_store`` or ``cache`` (see :func:`choose_transport`).
        progress: called after each task as ``progress(outcome, done, total)``.

    Raises:
        ConfigError: an unknown transport.
    """
    backend = backend or SerialBackend()
    how = choose_transport(spec, backend, transport)
    tasks = plan(spec, how)
    start = time.perf_counter()
    outcomes = run_tasks(tasks, backend, progress)
    wall = time.perf_counter() - start
    runs = [o.value for o, t in zip(outcomes, tasks, strict=True)
            if o.ok and not t.name.startswith(FEATURES_PREFIX)]
    return SweepResult(spec, outcomes, runs, wall, describe(backend), how)


def results_equal(a: Sequence[RunResult], b: Sequence[RunResult]) -> bool:
    """Whether two sweeps' runs hold the same tracks and the same metrics, to the last digit.

    Arrays are compared exactly (every bit of every box), and so is every metric.
    """
    import numpy as np

    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if (x.sequence, x.det_file, x.label) != (y.sequence, y.det_file, y.label):
            return False
        rx, ry = x.run.results, y.run.results
        if not all(np.array_equal(getattr(rx, k), getattr(ry, k))
                   for k in ("frame", "track_id", "boxes", "scores")):
            return False
        mx = x.metrics.to_dict() if x.metrics is not None else None
        my = y.metrics.to_dict() if y.metrics is not None else None
        if mx != my:
            return False
    return True
