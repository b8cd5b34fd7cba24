"""Time ``Tracker.update()`` of two source trees on the same machine at the same moment.

Each case (objects, embedding dim, memory) runs in a fresh subprocess per tree, the trees
alternating, ``--rounds`` times; each subprocess times 200 frames after 150 of warm-up, 4 times
from copies of the warmed-up tracker, and keeps the fastest. The fastest per tree is reported:
on a shared machine, alternating runs see the same load, so the ratio is what to read.

Usage:
    git worktree add /tmp/before <commit>
    python benchmarks/ab_update.py --before /tmp/before --after . \\
        --cases "30 2048 gallery;30 2048 ema;300 128 ema" [--rounds 3] [--out ab.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

_CHILD = r"""
import copy, json, sys, time
from deeptrack import Tracker, TrackerConfig
from deeptrack.synthetic import make_scene
n, d, memory = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
frames = make_scene(n, 350, seed=0, embedding_dim=d, fp_per_frame=0.05 * n).frames
warm = Tracker(TrackerConfig(appearance_memory=memory))
for f in frames[:150]:
    warm.update(f.boxes, f.scores, f.embeddings)
best = float("inf")
for _ in range(4):
    tracker = copy.deepcopy(warm)
    start = time.perf_counter()
    for f in frames[150:]:
        tracker.update(f.boxes, f.scores, f.embeddings)
    best = min(best, time.perf_counter() - start)
print(json.dumps(best / 200 * 1e3))
"""


def time_tree(tree: Path, case: list[str]) -> float:
    """Return ms per frame of one subprocess importing deeptrack from ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-c", _CHILD, *case], cwd=tree, env=env, check=False,
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{tree}: {done.stderr.strip().splitlines()[-1]}")
    return json.loads(done.stdout)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", type=Path, required=True, help="source tree of the baseline")
    ap.add_argument("--after", type=Path, required=True, help="source tree to compare")
    ap.add_argument("--cases", default="30 2048 gallery;30 2048 ema",
                    help='";"-separated "objects dim memory" cases')
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    for tree in (args.before, args.after):
        if not (tree / "deeptrack" / "__init__.py").is_file():
            ap.error(f"{tree} has no deeptrack/ package")

    rows = []
    for case in args.cases.split(";"):
        words = case.split()
        if len(words) != 3:
            ap.error(f"case {case!r} is not 'objects dim memory'")
        times = {"before": [], "after": []}
        for _ in range(args.rounds):
            times["before"].append(time_tree(args.before.resolve(), words))
            times["after"].append(time_tree(args.after.resolve(), words))
        before, after = min(times["before"]), min(times["after"])
        rows.append({"case": case, "before_ms": before, "after_ms": after,
                     "speedup": before / after})
        print(f"{case:18s} before {before:.3f} ms ({1e3 / before:.0f} fps)  "
              f"after {after:.3f} ms ({1e3 / after:.0f} fps)  speedup {before / after:.2f}x",
              flush=True)
    if args.out:
        meta = {"command": " ".join(["python", "benchmarks/ab_update.py", *(argv or sys.argv[1:])]),
                "python": sys.version.split()[0], "machine": platform.machine(),
                "cpus": os.cpu_count()}
        args.out.write_text(json.dumps({**meta, "rounds": args.rounds, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
