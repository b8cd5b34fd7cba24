"""Wall time of one sweep serially, on 1 and 2 local workers, and on a simulated two-node cluster.

The sweep: the four shared runs (MOT15 ADL-Rundle-6 and KITTI-17, each with
det.txt and det_frcnn.txt) x every combination of ``--grid`` applied to the
preset (default: the fused preset, 18 settings, so 72 tracking tasks and 4
feature tasks). The RoI maps come from the feature cache, filled before any
timing, so the feature tasks are cache reads and the tracking tasks dominate.

Every backend runs in this one process, one after another, on the same tasks:

- ``serial``: in this process (the reference);
- ``ray x1`` and ``ray x2``: a local Ray instance with 1 and 2 CPUs;
- ``pool x2``: the process pool used when Ray is not installed;
- ``2 nodes``: a Ray cluster of two nodes started here on loopback addresses
  (``ray start --head`` and ``ray start --address``, one CPU each); the maps
  travel through Ray's object store, as on a cluster without a shared folder;
- ``2 nodes, shared cache``: the same nodes, the maps read from the one cache
  folder, as on a cluster with a shared file system.

Workers are started and warmed (deeptrack and torch imported) before the clock
starts; that start-up is reported apart. Each parallel run's results are
compared with the serial run's, to the last bit. Scheduling overhead per task
is measured twice: on the sweep itself, ``(wall x workers - time inside the
tasks) / tasks``, and with ``--noop`` empty tasks, ``wall x workers / tasks``.

Usage::

    python benchmarks/sweep_scaling.py \\
        --weights ../shared/weights/mobilenet_v2_imagenet_features.pth \\
        --out benchmarks/results/sweep_scaling

Writes ``sweep_scaling.json`` and ``sweep_scaling.md`` into ``--out``.
"""

from __future__ import annotations

import os

if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small products; see peers.py

import argparse
import dataclasses
import itertools
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

from hostinfo import cpu_model, uptime

from deeptrack.config import RunConfig, default_cache_dir, load_yaml, parse_scalar, with_settings
from deeptrack.io.mot import write_atomic
from deeptrack.sweeps import (
    PoolBackend,
    RayBackend,
    SerialBackend,
    SweepSpec,
    Task,
    Variant,
    results_equal,
    run_sweep,
    run_tasks,
)
from deeptrack.sweeps.local_cluster import LocalCluster

REPO = Path(__file__).resolve().parents[1]
SEQUENCES = ("MOT15/train/ADL-Rundle-6", "MOT15/train/KITTI-17")
DET_FILES = ("det.txt", "det_frcnn.txt")
DEFAULT_GRID = ("tracker.max_age=15,30,60", "tracker.iou_weight=0.3,0.5,0.7",
                "tracker.n_init=2,3")


def warm(seconds: float) -> int:
    """A task that imports what the sweep's tasks import, then holds its worker a moment."""
    import deeptrack.appearance.embedder
    import deeptrack.eval
    import deeptrack.pipeline  # noqa: F401

    time.sleep(seconds)
    return os.getpid()


def noop(i: int) -> int:
    """An empty task, for the scheduling overhead."""
    return i


def build_spec(base: RunConfig, grid: list[str], data: Path) -> SweepSpec:
    items = []
    for text in grid:
        key, _, values = text.partition("=")
        items.append((key, [parse_scalar(v) for v in values.split(",")]))
    keys = [k for k, _ in items]
    variants = []
    for combo in itertools.product(*(v for _, v in items)):
        setting = dict(zip(keys, combo, strict=True))
        label = " ".join(f"{k}={v}" for k, v in setting.items())
        variants.append(Variant(label, with_settings(base, setting)))
    return SweepSpec(tuple(str(data / s) for s in SEQUENCES), tuple(variants),
                     det_files=DET_FILES)


def measure(name: str, backend, spec: SweepSpec, reference, noops: int,
            transport: str = "auto") -> dict[str, Any]:
    """Warm ``backend``'s workers, time the sweep on it, then the empty tasks."""
    start = time.perf_counter()
    if isinstance(backend, RayBackend):
        backend.connect()
    pids = run_tasks([Task(f"warm {i}", warm, (1.0,)) for i in range(backend.workers)],
                     backend)
    startup = time.perf_counter() - start
    result = run_sweep(spec, backend, transport=transport)
    tasks = len(result.outcomes)
    busy = result.task_seconds
    start = time.perf_counter()
    run_tasks([Task(f"noop {i}", noop, (i,)) for i in range(noops)], backend)
    noop_wall = time.perf_counter() - start
    row = {
        "backend": name, "where": result.backend, "workers": backend.workers,
        "transport": "memory" if isinstance(backend, SerialBackend) else result.transport,
        "startup_s": round(startup, 2),
        "warm_workers": len({o.value for o in pids}), "tasks": tasks,
        "wall_s": round(result.wall_seconds, 2), "task_s": round(busy, 2),
        "overhead_ms_per_task": round(1000 * (result.wall_seconds * backend.workers - busy)
                                      / tasks, 1),
        "noop_ms_per_task": round(1000 * noop_wall * backend.workers / noops, 2),
        "failed": [o.name for o in result.failures],
        "identical": reference is None or results_equal(reference.runs, result.runs),
        "nodes": len({o.node.rsplit("Ray node ", 1)[-1] for o in result.outcomes}),
    }
    print(f"{name}: {row['wall_s']} s wall, {row['task_s']} s in tasks, "
          f"identical={row['identical']}", file=sys.stderr, flush=True)
    return row | {"_result": result}


def render(report: dict[str, Any]) -> str:
    serial = report["rows"][0]["wall_s"]  # the first serial run; the last one shows the drift
    last = next((r["wall_s"] for r in reversed(report["rows"]) if r["backend"] == "serial again"),
                serial)
    lines = [
        "# Sweep scaling: one sweep serially, on 1 and 2 workers, and on two nodes", "",
        f"Command: `{report['command']}`", "",
        (f"Machine: {report['cpu']}, {report['cores']} cores (shared with other jobs), "
        f"Python {report['python']}, Ray {report['ray']}."),
        f"Load before: `{report['load_before']}`; after: `{report['load_after']}`.", "",
        f"Sweep: {report['sweep']}.", "",
        ("| backend | workers | maps via | wall (s) | speed-up | efficiency | in tasks (s) "
        "| overhead / task (ms) | empty task (ms) | start-up (s) | same results |"),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        speedup = serial / r["wall_s"]
        lines.append(
            f"| {r['backend']} | {r['workers']} | {r['transport']} | {r['wall_s']:.1f} "
            f"| {speedup:.2f}x | {100 * speedup / r['workers']:.0f}% | {r['task_s']:.1f} "
            f"| {r['overhead_ms_per_task']:.0f} | {r['noop_ms_per_task']:.1f} "
            f"| {r['startup_s']:.1f} | {'yes' if r['identical'] else 'NO'} |")
    lines += [
        "",
        ("Speed-up: wall of the first serial run / wall (the serial run is repeated last to "
        "show how much the machine's speed drifted meanwhile). Efficiency: speed-up / workers. "
        "Overhead per task: "
        "(wall x workers - time inside the task functions) / tasks, i.e. worker time not "
        "spent in a task (scheduling, pickling, idle at the end of the sweep). Empty task: "
        f"wall x workers / tasks for {report['noops']} tasks that do nothing. Start-up "
        "(Ray or pool, workers importing deeptrack and torch) is not in the wall time. "
        "Same results: every box and metric equal to the serial run's."),
        "",
        (f"The machine's speed drifted by {100 * (serial / last - 1):+.0f}% between the first "
         "and the last serial run, which bounds the error of each speed-up (an efficiency "
         "above 100% is that drift). The two nodes share this machine's 2 cores with their "
         "raylets and object stores: the maps of a sequence (0.6 GB for ADL-Rundle-6 with "
         "det.txt) are copied into the object store once and then to the other node, and "
         "that copying takes CPU from the tasks; the shared-cache row runs the same nodes "
         "without it. On separate machines the copy runs beside the tasks, over the network."),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(REPO / "configs" / "fused.yaml"))
    p.add_argument("--grid", action="append", default=None, metavar="SECTION.KEY=V1,V2")
    p.add_argument("--weights", required=True, help="backbone weights file")
    p.add_argument("--data", default=os.environ.get("DEEPTRACK_DATA", REPO.parent / "shared"
                                                    / "data"))
    p.add_argument("--noop", type=int, default=200, help="empty tasks per backend")
    p.add_argument("--out", default="runs/sweep_scaling")
    args = p.parse_args(argv)
    import ray

    base = load_yaml(args.config)
    base = dataclasses.replace(base, appearance=dataclasses.replace(
        base.appearance, weights=args.weights, cache_dir=str(default_cache_dir())))
    spec = build_spec(base, args.grid or list(DEFAULT_GRID), Path(args.data))
    load_before = uptime()
    print("filling the feature cache (untimed)", file=sys.stderr, flush=True)
    run_sweep(dataclasses.replace(spec, variants=spec.variants[:1]))

    rows = []
    serial = measure("serial", SerialBackend(), spec, None, args.noop)
    rows.append(serial)
    for name, backend in (("ray x1", RayBackend(workers=1)), ("ray x2", RayBackend(workers=2)),
                          ("pool x2", PoolBackend(workers=2))):
        try:
            rows.append(measure(name, backend, spec, serial["_result"], args.noop))
        finally:
            backend.close()
    with LocalCluster(nodes=2, cpus_per_node=1, object_store_bytes=2 << 30) as cluster:
        backend = RayBackend(address=cluster.address)
        try:
            rows.append(measure("2 nodes", backend, spec, serial["_result"], args.noop))
            # the same nodes reading one cache folder, as on a cluster with a shared file
            # system: what is left of the gap is the maps' trip between the object stores
            rows.append(measure("2 nodes, shared cache", backend, spec, serial["_result"],
                                args.noop, transport="cache"))
        finally:
            backend.close()
            ray.shutdown()
    # the machine's speed drifts: the serial run again, last, bounds the drift
    rows.append(measure("serial again", SerialBackend(), spec, serial["_result"], args.noop))

    command = "python benchmarks/sweep_scaling.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    report = {
        "command": command, "cpu": cpu_model(), "cores": os.cpu_count(),
        "python": platform.python_version(), "ray": ray.__version__,
        "load_before": load_before, "load_after": uptime(), "noops": args.noop,
        "sweep": (f"{len(spec.sequences)} sequences x {len(DET_FILES)} detection files x "
                  f"{len(spec.variants)} settings of {Path(args.config).name} "
                  f"({', '.join(args.grid or DEFAULT_GRID)}) = {len(spec)} tracking tasks and "
                  f"{len(spec.sequences) * len(DET_FILES)} feature tasks (cache reads)"),
        "rows": [{k: v for k, v in r.items() if k != "_result"} for r in rows],
    }
    out = Path(args.out)
    write_atomic(out / "sweep_scaling.json", json.dumps(report, indent=2))
    text = render(report)
    write_atomic(out / "sweep_scaling.md", text)
    print(text)
    return 0 if all(r["identical"] and not r["failed"] for r in report["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
