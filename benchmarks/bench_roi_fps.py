"""Frames per second of MobileNetV2 RoI features at 960x540 with 30 boxes: forward, RoIAlign, pooling.

The whole per-frame appearance cost the tracker pays with the default
preset's appearance (``RoIEmbedder.roi_features`` then ``EmbeddingHead``
average pooling), on real ADL-Rundle-6 frames resized to 960x540 with 30
boxes each (synthetic ones when the data is absent). Settings measured
alternately, frame by frame, so that load from other jobs falls on all of
them alike:

- ``image_scale`` 1.0 (the backbone sees 960x540) and 0.5 (480x270, the
  presets' setting);
- torch intra-op threads 1 and 2 (ONNX Runtime is given the same count);
- ``runtime`` torch (eager, channels-last) and onnxruntime (the trunk exported
  to ONNX and run by ONNX Runtime; RoIAlign and pooling in torch), when
  onnxruntime is installed.

Each row gives the median and the fastest frame; the load average before
and after is recorded (the machine is shared: compare rows, and read the
fastest frame as what the code can do on an idle core).

    python benchmarks/bench_roi_fps.py [--frames 20] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import torch
from bench_embedding import find_sequence, real_frames, synthetic_frames
from hostinfo import cpu_model

from deeptrack.appearance.embedder import RoIEmbedder
from deeptrack.appearance.head import EmbeddingHead
from deeptrack.config import AppearanceConfig
from deeptrack.io.mot import write_atomic
from deeptrack.types import Runtime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=20, help="timed frames per setting")
    ap.add_argument("--boxes", type=int, default=30)
    ap.add_argument("--weights", default=None, help="MobileNetV2 weights (default: the shared "
                    "file when present, else random: speed does not depend on the values)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    weights = args.weights
    if weights is None:
        f = Path(os.environ.get("DEEPTRACK_WEIGHTS", REPO.parent / "shared" / "weights")) \
            / "mobilenet_v2_imagenet_features.pth"
        weights = str(f) if f.is_file() else None
    rng = np.random.default_rng(0)
    seq = find_sequence()
    n = args.frames + 1
    frames, boxes, source = (real_frames(seq, n, args.boxes, rng) if seq is not None
                             else synthetic_frames(n, args.boxes, rng))
    head = EmbeddingHead()
    runtimes = [Runtime.TORCH]
    if importlib.util.find_spec("onnxruntime") is not None:
        runtimes.append(Runtime.ONNXRUNTIME)
    settings = [(scale, threads, rt) for scale in (1.0, 0.5) for rt in runtimes
                for threads in (1, 2)]
    embedders = {(s, rt): RoIEmbedder(AppearanceConfig(backbone="mobilenet_v2", weights=weights,
                                                       image_scale=s, runtime=rt))
                 for s in (1.0, 0.5) for rt in runtimes}
    before = [round(v, 2) for v in os.getloadavg()]
    times: dict[tuple[float, int, Runtime], list[float]] = {s: [] for s in settings}
    for i in range(n):
        for scale, threads, rt in settings:
            torch.set_num_threads(threads)
            start = time.perf_counter()
            vectors = head(embedders[(scale, rt)].roi_features(frames[i], boxes[i]))
            elapsed = time.perf_counter() - start
            assert vectors.shape == (len(boxes[i]), 1280)
            if i:  # the first frame warms up
                times[(scale, threads, rt)].append(elapsed)
    after = [round(v, 2) for v in os.getloadavg()]
    rows = [{"image_scale": s, "threads": t, "runtime": rt.value,
             "median_ms": round(1000 * statistics.median(v), 1),
             "fastest_ms": round(1000 * min(v), 1),
             "median_fps": round(1 / statistics.median(v), 2), "fastest_fps": round(1 / min(v), 2)}
            for (s, t, rt), v in times.items()]
    busy = max(before + after) > (os.cpu_count() or 1)
    command = "python benchmarks/bench_roi_fps.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    lines = [f"Command: `{command}`", "",
             (f"Machine: {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}; "
              f"load average (1/5/15 min) before {before}, after {after}"
              + (" (above the core count: other jobs shared the CPU)." if busy else ".")), "",
             (f"Frames: {source}; {args.boxes} boxes per frame; {args.frames} timed frames per "
              "setting after one warm-up, the settings alternating frame by frame. Per frame: "
              "MobileNetV2 forward (inference mode; torch channels-last, or ONNX Runtime), "
              "RoIAlign 7x7 at stride 32, average pooling to 1280-d unit vectors."), "",
             ("| image_scale (backbone input) | runtime | threads | median ms | fastest ms | "
              "median frames/s | fastest frames/s |"), "|---|---|---|---|---|---|---|"]
    for r in rows:
        size = f"{int(960 * r['image_scale'])}x{int(540 * r['image_scale'])}"
        lines.append(f"| {r['image_scale']} ({size}) | {r['runtime']} | {r['threads']} | "
                     f"{r['median_ms']} | "
                     f"{r['fastest_ms']} | {r['median_fps']} | {r['fastest_fps']} |")
    md = "\n".join(lines) + "\n"
    out = Path(args.out)
    write_atomic(out / "bench_roi_fps.json", json.dumps(
        {"command": command, "cpu": cpu_model(), "load_before": before, "load_after": after,
         "source": source, "rows": rows}, indent=2))
    write_atomic(out / "bench_roi_fps.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
