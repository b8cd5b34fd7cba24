"""Sweeps: many runs as independent tasks, here, on a process pool or on a Ray cluster.

One :class:`SweepSpec` describes the sweep (sequences x detection files x
variants: pooling modes, backbones, association and tracker settings);
:func:`run_sweep` runs it on a backend from :func:`make_backend` (serial, a
local process pool, a local Ray instance or a Ray cluster) with the same
results everywhere. :mod:`deeptrack.sweeps.tune` searches tracker settings with
Ray Tune. Importing this package does not import Ray (an optional extra:
``pip install 'deeptrack[ray]'``).
"""

from __future__ import annotations

from deeptrack.sweeps.executor import (
    Outcome,
    PoolBackend,
    RayBackend,
    SerialBackend,
    Task,
    make_backend,
    ray_available,
    run_tasks,
)
from deeptrack.sweeps.jobs import RunResult
from deeptrack.sweeps.runner import SweepResult, plan, results_equal, run_sweep
from deeptrack.sweeps.spec import (
    MOTION_ONLY,
    SweepSpec,
    Variant,
    grid_settings,
    pooling_settings,
    product,
)

__all__ = [
    "MOTION_ONLY", "Outcome", "PoolBackend", "RayBackend", "RunResult", "SerialBackend",
    "SweepResult", "SweepSpec", "Task", "Variant", "grid_settings", "make_backend", "plan",
    "pooling_settings", "product", "ray_available", "results_equal", "run_sweep", "run_tasks",
]
