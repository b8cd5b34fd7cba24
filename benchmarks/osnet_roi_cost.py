"""OSNet as a RoI backbone vs OSNet on crops, on the shared sequences' own frames and boxes.

Issue 12 asks whether one OSNet pass over the frame, then RoIAlign, can give
what crops give "at a fraction of the cost". The cost of either is set by the
pixels the network sees: N crops of 256x128, against the whole frame at the
scale that brings people near OSNet's 256-pixel training height. This prints,
per sequence and detection file:

- the pixel bound: detections per frame, their median height, the crops'
  pixels per frame, and the frame's pixels at image_scale 0.5 and 1.0;
- the measured cost per frame (the sequence's real frames and all of its
  detections in that frame; MOT15 ADL-Rundle-6 and KITTI-17, whose tracking
  scores are recorded, and the crowded MOT17-04 and MOT17-02 of MOT17-mini,
  a few frames each, for the cost side only) of: ``crops`` (the fused_osnet preset's
  appearance), RoI conv5 8x8 at image_scale 1.0 + max-pool-then-flatten (the
  RoI setting that came within 1 IDF1 of crops in tracking,
  pooling_fused_osnet_roi.md), and RoI conv5 at 0.5 + GeM (the
  fused_osnet_roi preset); each with ``runtime`` torch and onnxruntime. The
  settings alternate frame by frame, so load from other jobs falls on all of
  them alike; the median and the fastest frame are given, with the load.

    python benchmarks/osnet_roi_cost.py [--frames 20] [--threads 2] [--out benchmarks/results]
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
from hostinfo import cpu_model

from deeptrack.appearance import EmbeddingHead, RoIEmbedder
from deeptrack.appearance.frames import load_image
from deeptrack.config import AppearanceConfig, HeadConfig
from deeptrack.io.mot import write_atomic
from deeptrack.io.sequence import load_sequence

CROP_PIXELS = 256 * 128
#: (split folder under the data root, sequence, detection files); the first file is timed
RUNS = (("MOT15/train", "ADL-Rundle-6", ("det.txt", "det_frcnn.txt")),
        ("MOT15/train", "KITTI-17", ("det.txt", "det_frcnn.txt")),
        # A few frames each, but crowded (MOT17-04: 27 boxes per frame): the cost side only.
        ("MOT17-mini/train", "MOT17-04-FRCNN", ("det.txt",)),
        ("MOT17-mini/train", "MOT17-02-FRCNN", ("det.txt",)))


def settings(weights: str, runtimes: list[str]) -> dict[str, tuple[AppearanceConfig, HeadConfig]]:
    out = {}
    for rt in runtimes:
        out[f"crops ({rt})"] = (AppearanceConfig(backbone="osnet_x0_25", weights=weights,
                                                 layer="crops", runtime=rt), HeadConfig())
        out[f"RoI conv5 @1.0 maxpool_flatten ({rt})"] = (
            AppearanceConfig(backbone="osnet_x0_25", weights=weights, layer="conv5", roi_size=8,
                             image_scale=1.0, runtime=rt), HeadConfig(pooling="maxpool_flatten"))
        out[f"RoI conv5 @0.5 GeM ({rt})"] = (
            AppearanceConfig(backbone="osnet_x0_25", weights=weights, layer="conv5", roi_size=8,
                             image_scale=0.5, runtime=rt), HeadConfig(pooling="gem"))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("DEEPTRACK_DATA",
                                                     str(REPO.parent / "shared" / "data")))
    ap.add_argument("--weights", default=str(REPO.parent / "shared" / "weights"
                                             / "osnet_x0_25_msmt17.pth"))
    ap.add_argument("--frames", type=int, default=20, help="timed frames per sequence (at most "
                    "the frames it has)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    root = Path(args.data)
    if not Path(args.weights).is_file():
        print(f"error: OSNet weights {args.weights} not found", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    runtimes = ["torch"] + (["onnxruntime"] if importlib.util.find_spec("onnxruntime") else [])
    conf = settings(args.weights, runtimes)
    embedders = {k: (RoIEmbedder(a), EmbeddingHead(h)) for k, (a, h) in conf.items()}
    before = [round(v, 2) for v in os.getloadavg()]
    bound, timing = [], {}
    for split, name, det_files in RUNS:
        if not (root / split / name).is_dir():
            print(f"skipped {split}/{name}: not under {root}", file=sys.stderr)
            continue
        for det in det_files:
            seq = load_sequence(root / split / name, det)
            dets = [seq.detections(f) for f in seq.frames]
            n_det = [len(d) for d in dets]
            heights = np.concatenate([d.boxes[:, 3] - d.boxes[:, 1] for d in dets])
            per = float(np.mean(n_det))
            bound.append({"run": f"{name}/{det}", "size": f"{seq.width}x{seq.height}",
                          "boxes_per_frame": round(per, 1),
                          "median_height": round(float(np.median(heights))),
                          "crop_mpix": round(per * CROP_PIXELS / 1e6, 3),
                          "frame_mpix_0.5": round(seq.width * seq.height / 4e6, 3),
                          "frame_mpix_1.0": round(seq.width * seq.height / 1e6, 3)})
            if det != det_files[0]:
                continue  # timing on one detection file per sequence: similar box counts
            picks = [int(f) for f in np.unique(np.linspace(1, seq.n_frames,
                                                           args.frames + 1).round())
                     if n_det[int(f) - 1] > 0]
            times: dict[str, list[float]] = {k: [] for k in conf}
            for i, f in enumerate(picks):
                image = load_image(seq.image_paths[f - 1])
                boxes = dets[f - 1].boxes
                order = list(conf)[i % len(conf):] + list(conf)[:i % len(conf)]
                for k in order:
                    emb, head = embedders[k]
                    start = time.perf_counter()
                    head(emb.roi_features(image, boxes))
                    if i:  # the first frame warms up
                        times[k].append(time.perf_counter() - start)
            timing[name] = {"boxes_per_frame": round(float(np.mean(
                [n_det[f - 1] for f in picks[1:]])), 1), "frames": len(picks) - 1,
                "ms": {k: {"median": round(1000 * statistics.median(v), 1),
                           "fastest": round(1000 * min(v), 1)} for k, v in times.items()}}
            print(name, timing[name], file=sys.stderr, flush=True)
    after = [round(v, 2) for v in os.getloadavg()]
    command = "python benchmarks/osnet_roi_cost.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    lines = [f"Command: `{command}`", "",
             (f"Machine: {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, "
              f"{args.threads} threads; load average (1/5/15 min) before {before}, after "
              f"{after}."), "",
             "## The pixel bound", "",
             ("| run | frame | detections / frame | median height | crops Mpx / frame | "
              "frame Mpx @0.5 | frame Mpx @1.0 |"), "|---|---|---|---|---|---|---|"]
    for b in bound:
        lines.append(f"| {b['run']} | {b['size']} | {b['boxes_per_frame']} | "
                     f"{b['median_height']} | {b['crop_mpix']} | {b['frame_mpix_0.5']} | "
                     f"{b['frame_mpix_1.0']} |")
    lines += ["", "## Measured cost per frame (ms, median / fastest frame)", "",
              "| setting | " + " | ".join(
                  f"{n} ({t['boxes_per_frame']} boxes, {t['frames']} frames)"
                  for n, t in timing.items()) + " |",
              "|---|" + "---|" * len(timing)]
    for k in conf:
        lines.append(f"| {k} | " + " | ".join(
            f"{t['ms'][k]['median']} / {t['ms'][k]['fastest']}" for t in timing.values()) + " |")
    lines += ["", "## Reading", ""]
    for b in bound:
        lines.append(f"- {b['run']}: the frame at image_scale 1.0 has "
                     f"{b['frame_mpix_1.0'] / b['crop_mpix']:.1f}x the crops' pixels "
                     f"(at 0.5: {b['frame_mpix_0.5'] / b['crop_mpix']:.1f}x); median detection "
                     f"height {b['median_height']} px against OSNet's 256.")
    for n, t in timing.items():
        for rt in runtimes:
            crop = t["ms"][f"crops ({rt})"]["fastest"]
            full = t["ms"][f"RoI conv5 @1.0 maxpool_flatten ({rt})"]["fastest"]
            half = t["ms"][f"RoI conv5 @0.5 GeM ({rt})"]["fastest"]
            lines.append(f"- {n}, {rt}: RoI @1.0 costs {full / crop:.2f}x the crops, RoI @0.5 "
                         f"{half / crop:.2f}x (fastest frames).")
    md = "\n".join(lines) + "\n"
    out = Path(args.out)
    write_atomic(out / "osnet_roi_cost.json", json.dumps(
        {"command": command, "cpu": cpu_model(), "threads": args.threads, "load_before": before,
         "load_after": after, "bound": bound, "timing": timing}, indent=2))
    write_atomic(out / "osnet_roi_cost.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
