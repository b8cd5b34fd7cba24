"""Soak test: does a tracker's memory stay flat over a long video?

One :class:`deeptrack.Tracker` runs over a seeded synthetic scene streamed frame by
frame (``deeptrack.synthetic.iter_scene``: nothing of the scene is kept), and the
outputs are dropped as they come, as a streaming consumer would. Objects keep
leaving and new identities keep entering, so tracks are born and deleted all the
time and ids keep growing. Every ``--sample`` frames the process's resident set
size (``VmRSS``) and ``Tracker.memory_bytes`` are read; the table gives, at 1k, 10k
and 100k frames, the value there, the steady level (median over the second half of
the frames up to there) and the peak so far. Memory is flat when the level at the
last frame has grown by at most ``--tolerance`` (5 %) over the level at 10k frames,
for both measures (a leak grows; the tracker's memory also falls and rises with the
number of live tracks, by about 4 % per track at 25 tracks without appearance).

Usage:
    python benchmarks/soak.py [--frames 100000] [--objects 20] [--appearance]
        [--out benchmarks/results/soak]    # writes soak.json and soak.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import itertools
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
from hostinfo import cpu_model

from deeptrack import Tracker, TrackerConfig, __version__
from deeptrack.synthetic import iter_scene

CHECKPOINTS = (1_000, 10_000, 100_000)


def rss_bytes() -> int:
    """The resident set size now (Linux ``/proc/self/status``), else the peak so far."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def soak(frames: int, objects: int, appearance: bool, sample: int, seed: int) -> dict:
    """Run the tracker for ``frames`` frames; return the samples and the checkpoint rows."""
    tracker = Tracker(TrackerConfig(), frame_rate=30)
    scene = iter_scene(objects, frames, seed=seed, embedding_dim=128, p_occlusion=0.01,
                       occlusion_frames=(5, 25), p_miss=0.1, speed=6.0, fp_per_frame=1.0)
    samples = []  # (frame, rss, tracker bytes, live tracks, largest id)
    largest_id = 0
    start = time.perf_counter()
    for i, f in enumerate(scene, start=1):
        out = tracker.update(f.boxes, f.scores, f.embeddings if appearance else None)
        if len(out):
            largest_id = max(largest_id, int(out.track_ids.max()))
        if i % sample == 0 or i == frames:
            gc.collect()
            samples.append((i, rss_bytes(), tracker.memory_bytes, len(tracker.tracks),
                            largest_id))
    seconds = time.perf_counter() - start
    rows = []
    for c in (c for c in CHECKPOINTS if c <= frames):
        upto = [s for s in samples if s[0] <= c]
        at = upto[-1]
        rows.append({
            "frames": c, "rss_mb": at[1] / 1e6, "level_rss_mb": level(samples, c // 2, c, 1) / 1e6,
            "peak_rss_mb": max(s[1] for s in upto) / 1e6, "tracker_kb": at[2] / 1e3,
            "level_tracker_kb": level(samples, c // 2, c, 2) / 1e3,
            "peak_tracker_kb": max(s[2] for s in upto) / 1e3, "live_tracks": at[3],
            "largest_id": at[4]})
    return {"samples": samples, "rows": rows, "seconds": seconds,
            "ms_per_frame": 1000 * seconds / max(frames, 1)}


def level(samples: list, low: int, high: int, index: int) -> float | None:
    """Median of column ``index`` over the samples in (low, high] frames."""
    values = [s[index] for s in samples if low < s[0] <= high]
    return float(np.median(values)) if values else None


def flatness(samples: list, index: int, frames: int) -> float | None:
    """Growth of the steady level of column ``index`` from 10k frames to the end.

    The level at a checkpoint ``c`` is the median over (c/2, c]: the tracker's memory
    follows the number of live tracks, which wanders with the scene, so a single
    sample (or the peak over a window nine times longer) measures the scene, not a leak.
    """
    before = level(samples, 5_000, 10_000, index)
    after = level(samples, frames // 2, frames, index)
    if before is None or after is None or frames <= 10_000:
        return None
    return after / before - 1.0


def machine() -> dict:
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "deeptrack": __version__, "platform": platform.platform(),
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def render(res: dict) -> str:
    m = res["machine"]
    lines = [
        "# Soak: memory over a long video",
        "",
        f"Command: `{res['command']}` (result: [`soak.json`](soak.json)).",
        "",
        (f"Machine: {m['cpu']}, {m['cores']} cores (shared with other jobs), {m['platform']}, "
         f"Python {m['python']}, numpy {m['numpy']}; load average {m['load_average']} at the "
         f"end. Run on {res['date']}."),
        "",
        ("One `Tracker` (the DeepSORT defaults) over a seeded synthetic scene streamed frame "
         "by frame (`deeptrack.synthetic.iter_scene`; objects leave and new identities enter "
         "all the time), outputs dropped as they come. RSS is the whole process's resident "
         "set (`VmRSS`); tracker memory is `Tracker.memory_bytes` (track table and appearance "
         f"memory). Sampled every {res['sample']} frames. 'Level' is the median of the "
         "samples over the second half of the frames up to that point (the tracker's memory "
         "follows the number of live tracks, which wanders with the scene); 'peak' is the "
         "largest sample so far."),
        "",
    ]
    for run in res["runs"]:
        lines += [
            (f"## {run['label']}: {run['objects']} objects in view, "
             f"{run['ms_per_frame']:.2f} ms per frame ({run['seconds']:.0f} s)"),
            "",
            ("| frames | RSS MB | RSS level | RSS peak | tracker KB | tracker level | "
             "tracker peak | live tracks | largest id |"),
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in run["rows"]:
            lines.append(
                f"| {r['frames']:,} | {r['rss_mb']:.1f} | {r['level_rss_mb']:.1f} | "
                f"{r['peak_rss_mb']:.1f} | {r['tracker_kb']:.1f} | {r['level_tracker_kb']:.1f} "
                f"| {r['peak_tracker_kb']:.1f} | {r['live_tracks']} | {r['largest_id']:,} |")
        f = run["flatness"]
        verdict = "flat" if run["flat"] else "NOT flat"
        steps = memory_steps(run["samples"], res["tolerance"])
        if steps:
            lines += ["", "Lasting steps in the tracker memory (every later sample above every "
                      f"earlier one by over {100 * res['tolerance']:.0f} %): " + "; ".join(
                          f"at frame {f:,} from {a / 1e3:.1f} KB to {b / 1e3:.1f} KB"
                          for f, a, b in steps)
                      + ". After its last step the tracker memory moved by "
                      f"{_pct(after_last_step(run['samples'], steps))} up to the end: a step "
                      "that then stays level is a capacity high-water mark (storage grown for "
                      "more tracks at once than before, kept for later), a leak keeps growing."]
        lines += [
            "",
            (f"From 10k frames to the end the RSS level moved by {_pct(f['rss'])} and the "
             f"tracker memory level by {_pct(f['tracker'])} (flat: grown by at most "
             f"{100 * res['tolerance']:.0f} %; the tracker's memory follows the number of "
             f"live tracks, by about one track's share up or down): **{verdict}**."),
            "",
        ]
    return "\n".join(lines)


def memory_steps(samples: list, tolerance: float) -> list[tuple[int, int, int]]:
    """(frame, before, after) wherever the tracker memory rose for good.

    A rise counts when every later sample stays above every earlier one by more than
    ``tolerance``: the memory never went back (one more live track for a while does).
    """
    values = [s[2] for s in samples]
    steps = []
    for i, (a, b) in enumerate(itertools.pairwise(samples), start=1):
        if min(values[i:]) > (1 + tolerance) * max(values[:i]):
            steps.append((b[0], a[2], b[2]))
    return steps


def after_last_step(samples: list, steps: list) -> float | None:
    """Growth of the tracker memory from just after the last step to the end."""
    tail = [s[2] for s in samples if s[0] >= steps[-1][0]]
    return tail[-1] / tail[0] - 1.0 if len(tail) > 1 else None


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:+.2f} %"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=100_000)
    p.add_argument("--objects", type=int, default=20)
    p.add_argument("--sample", type=int, default=500, help="frames between memory samples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--appearance", action="store_true",
                   help="also run with 128-d embeddings (galleries fill to their budget)")
    p.add_argument("--tolerance", type=float, default=0.05)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/soak"),
                   help="writes OUT.json and OUT.md")
    p.add_argument("--render", action="store_true",
                   help="only write OUT.md again from the recorded OUT.json (no run)")
    args = p.parse_args(argv)
    if args.render:
        res = json.loads(args.out.with_suffix(".json").read_text())
        args.out.with_suffix(".md").write_text(render(res) + "\n")
        return 0
    if args.frames < 1 or args.objects < 1 or args.sample < 1:
        p.error("--frames, --objects and --sample must be >= 1")

    runs = []
    for appearance in (False, True) if args.appearance else (False,):
        label = "motion + 128-d appearance" if appearance else "motion only"
        print(f"{label}: {args.frames} frames ...", file=sys.stderr, flush=True)
        run = soak(args.frames, args.objects, appearance, args.sample, args.seed)
        fl = {"rss": flatness(run["samples"], 1, args.frames),
              "tracker": flatness(run["samples"], 2, args.frames)}
        flat = all(v is not None and v <= args.tolerance for v in fl.values())
        runs.append({"label": label, "objects": args.objects, "appearance": appearance,
                     "flatness": fl, "flat": flat, **run})
        for r in run["rows"]:
            print(f"  {r['frames']:>7,} frames: RSS {r['rss_mb']:.1f} MB (level "
                  f"{r['level_rss_mb']:.1f}, peak {r['peak_rss_mb']:.1f}), tracker "
                  f"{r['tracker_kb']:.1f} KB (level {r['level_tracker_kb']:.1f}, peak "
                  f"{r['peak_tracker_kb']:.1f}), {r['live_tracks']} live tracks",
                  file=sys.stderr)
        print(f"  level 10k -> {args.frames}: RSS {_pct(fl['rss'])}, tracker {_pct(fl['tracker'])}: "
              f"{'flat' if flat else 'NOT flat'}", file=sys.stderr)

    res = {
        "command": "python benchmarks/soak.py " + " ".join(argv if argv is not None
                                                         else sys.argv[1:]),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(), "frames": args.frames, "sample": args.sample,
        "tolerance": args.tolerance, "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(res, indent=1))
    args.out.with_suffix(".md").write_text(render(res) + "\n")
    print(f"written to {args.out}.json and {args.out}.md", file=sys.stderr)
    return 0 if all(r["flat"] for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
