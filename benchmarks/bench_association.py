"""Frames per second of ``Tracker.update()`` alone: no I/O, embeddings given.

For each number of objects per frame and embedding dimension, a seeded
synthetic scene is generated up front; the tracker first runs ``--warmup``
frames (so that galleries fill to their budget: the steady state of a long
video), then ``--frames`` frames are timed, ``--repeats`` times from copies of
the warmed-up tracker, and the fastest run is kept (the machine is shared:
the fastest run is the one least disturbed). When ``deep-sort-realtime`` is
installed, its ``DeepSort.update_tracks(..., embeds=...)`` runs on the same
frames in the same process, and deeptrack's speed is printed as a ratio to it.

The ``read floor`` column bounds what any exact nearest-neighbour gallery can
do on this machine: the frames/s of doing nothing but reading every live
track's full gallery once per frame (one batched matrix-vector product over
a (tracks, budget, dim) float32 array, timed in the same process).

Usage:
    python benchmarks/bench_association.py [--objects 10,30,100,300] [--dims 128,2048]
        [--memory gallery,ema] [--out benchmarks/results/bench_association.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from deeptrack import Tracker, TrackerConfig, __version__
from deeptrack.boxes import xyxy_to_tlwh
from deeptrack.synthetic import make_scene
from deeptrack.tracking.track import TrackState


def time_deeptrack(frames, memory: str, warmup: int, repeats: int) -> tuple[float, int, int]:
    """Return (best frames/s, gallery bytes, confirmed tracks) after the warm-up."""
    warm = Tracker(TrackerConfig(appearance_memory=memory))
    for f in frames[:warmup]:
        warm.update(f.boxes, f.scores, f.embeddings)
    best = float("inf")
    for _ in range(repeats):
        tracker = copy.deepcopy(warm)
        start = time.perf_counter()
        for f in frames[warmup:]:
            tracker.update(f.boxes, f.scores, f.embeddings)
        best = min(best, time.perf_counter() - start)
    confirmed = sum(t.state == TrackState.CONFIRMED for t in tracker.tracks)
    return (len(frames) - warmup) / best, tracker.gallery_bytes, confirmed


def read_floor(tracks: int, budget: int, dim: int, repeats: int = 20) -> float:
    """Frames/s of only reading ``tracks`` full galleries once (batched matrix-vector product)."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    galleries = rng.standard_normal((tracks, budget, dim)).astype(np.float32)
    vectors = rng.standard_normal((tracks, dim, 1)).astype(np.float32)
    best = float("inf")
    with threadpool_limits(1, user_api="blas"):  # as update() runs
        for _ in range(repeats):
            start = time.perf_counter()
            np.matmul(galleries, vectors)
            best = min(best, time.perf_counter() - start)
    return 1.0 / best


def time_deep_sort_realtime(frames, warmup: int) -> float | None:
    try:
        from deep_sort_realtime.deepsort_tracker import DeepSort
    except ImportError:
        return None
    from threadpoolctl import threadpool_limits

    # Same BLAS threading as deeptrack's update() (blas_threads: 1), so the ratio
    # compares the trackers, not OpenBLAS's thread hand-offs.
    with threadpool_limits(1, user_api="blas"):
        return _time_dsr(DeepSort, frames, warmup)


def _time_dsr(DeepSort, frames, warmup: int) -> float:
    tracker = DeepSort(max_age=30, n_init=3, nn_budget=100, max_cosine_distance=0.2,
                       max_iou_distance=0.7, embedder=None)
    # Its input format is built before timing, as deeptrack's arrays are.
    inputs = [([(list(b), float(s), "person") for b, s in zip(xyxy_to_tlwh(f.boxes), f.scores)],
               list(f.embeddings)) for f in frames]
    for dets, embeds in inputs[:warmup]:
        tracker.update_tracks(dets, embeds=embeds)
    start = time.perf_counter()
    for dets, embeds in inputs[warmup:]:
        tracker.update_tracks(dets, embeds=embeds)
    return (len(frames) - warmup) / (time.perf_counter() - start)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--objects", default="10,30,100,300")
    ap.add_argument("--dims", default="128,2048")
    ap.add_argument("--memory", default="gallery,ema",
                    help="appearance memories to time (gallery = DeepSORT, ema = StrongSORT)")
    ap.add_argument("--warmup", type=int, default=150)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per case; the best is kept")
    ap.add_argument("--baseline-max-objects", type=int, default=100,
                    help="run deep-sort-realtime only up to this many objects (it is slow)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/bench_association.json")
    args = ap.parse_args(argv)

    rows = []
    header = (f"{'objects':>7} {'dim':>5} {'memory':>7} {'fps':>9} {'gallery MB':>10} "
              f"{'read floor':>10} {'dsr fps':>8} {'ratio':>6}")
    print(header)
    print("-" * len(header))
    for n in [int(x) for x in args.objects.split(",")]:
        for d in [int(x) for x in args.dims.split(",")]:
            scene = make_scene(n, args.warmup + args.frames, seed=args.seed, embedding_dim=d,
                               fp_per_frame=0.05 * n)
            baseline = (time_deep_sort_realtime(scene.frames, args.warmup)
                        if n <= args.baseline_max_objects else None)
            for memory in args.memory.split(","):
                fps, gallery, confirmed = time_deeptrack(scene.frames, memory, args.warmup,
                                                         args.repeats)
                floor = (read_floor(confirmed, TrackerConfig().nn_budget, d)
                         if memory == "gallery" else None)
                # deep-sort-realtime keeps a gallery; it is compared with ours only.
                ratio = fps / baseline if baseline and memory == "gallery" else None
                rows.append({"objects": n, "dim": d, "memory": memory, "fps": fps,
                             "gallery_bytes": gallery, "confirmed_tracks": confirmed,
                             "gallery_read_floor_fps": floor,
                             "deep_sort_realtime_fps": baseline, "ratio": ratio})
                print(f"{n:>7} {d:>5} {memory:>7} {fps:>9.1f} {gallery / 1e6:>10.1f} "
                      f"{(f'{floor:.0f}' if floor else '-'):>10} "
                      f"{(f'{baseline:.1f}' if baseline else '-'):>8} "
                      f"{(f'{ratio:.1f}x' if ratio else '-'):>6}", flush=True)

    result = {
        "benchmark": "bench_association", "deeptrack": __version__, "numpy": np.__version__,
        "python": sys.version.split()[0], "machine": platform.machine(),
        "processor": platform.processor() or "unknown", "cpus": os.cpu_count(),
        "warmup_frames": args.warmup, "timed_frames": args.frames, "repeats": args.repeats,
        "rows": rows,
        "command": " ".join(["python", "benchmarks/bench_association.py", *(argv or sys.argv[1:])]),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
