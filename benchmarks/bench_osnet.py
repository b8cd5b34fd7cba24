"""OSNet appearance cost: one pass per frame + RoIAlign (+ OSNet's head) vs one pass per crop.

Not a test: a measurement, printed and written to benchmarks/results/bench_osnet.{json,md}.

Sections (torch inference mode, ``--threads`` torch threads, 2 by default):

* ``paths``: per frame of 960x540 with 10 / 30 / 100 boxes, in one process,
  alternating frame by frame (the order rotating): ``roi_head`` (``layer:
  head``, RoIAlign 8x8 on conv5, OSNet's GAP + fc per RoI), ``roi_conv5``
  (``layer: conv5``, the 128x8x8 maps), ``crops`` (``layer: crops``: each box
  cropped, resized to 256x128, the whole network on the batch of crops), and
  with onnxruntime the same crops through the ONNX export (batched, and one
  crop per run as the file's fixed 1x3x256x128 input is meant).
* ``network``: the bare network on one 960x540 frame and on 30 crops,
  contiguous (NCHW) vs channels-last, BatchNorm layers vs folded into the convs.
* ``scale``: 1920x1080 frames (MOT15's ADL-Rundle-6) through ``roi_head`` at
  image_scale 0.5 and 1.0, the preset's choice.
* ``separation`` (with the MOT15 data and the .pth): ROC AUC of cosine
  distance between ground-truth boxes of the same identity (positives) and of
  different identities (negatives) within ``--pair-window`` frames, per path
  and scale; how well each arrangement tells people apart, not a tracking score.

The timing sections run ``--passes`` times, spread over the run. On a CPU
shared with other jobs, which only ever add time, each figure is the fastest
frame over all passes (medians kept beside them), and ratios are of fastest
frames.

Frames: ADL-Rundle-6 frames resized to 960x540 with their det.txt boxes, topped
up with boxes from other frames (DEEPTRACK_DATA or ../shared/data); synthetic
frames and boxes when absent. Weights: the shared osnet_x0_25_msmt17.pth
(DEEPTRACK_WEIGHTS or ../shared/weights) when present, random otherwise (speed
does not depend on the values); onnxruntime runs the shared .onnx.

    python benchmarks/bench_osnet.py [--frames N] [--passes P] [--boxes 10,30,100] [--out DIR]
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch
import torch.nn.functional as F
from hostinfo import cpu_model, uptime
from PIL import Image

from deeptrack.appearance.backbone import IMAGENET_MEAN, IMAGENET_STD
from deeptrack.appearance.embedder import RoIEmbedder
from deeptrack.appearance.osnet import INPUT_SIZE, OSNET_WIDTHS, OSNet, check_osnet_state
from deeptrack.appearance.pooling import pool
from deeptrack.config import AppearanceConfig

WIDTH, HEIGHT = 960, 540
SEQ = ("MOT15", "train", "ADL-Rundle-6")
SEPARATION = {  # sequence: scales for the RoI paths (people ~257 px / ~120 px tall)
    "ADL-Rundle-6": (0.5, 1.0),
    "KITTI-17": (1.0, 2.0),
}


def _root(env: str, name: str) -> Path:
    value = os.environ.get(env)
    return Path(value) if value else REPO.parent / "shared" / name


def load_det(seq: Path, name: str = "det/det.txt") -> np.ndarray:
    """(K, 7) frame, id, x1, y1, x2, y2, score (0-based xyxy) from a MOTChallenge file."""
    d = np.loadtxt(seq / name, delimiter=",", ndmin=2)
    return np.column_stack([d[:, 0], d[:, 1], d[:, 2] - 1, d[:, 3] - 1, d[:, 2] - 1 + d[:, 4],
                            d[:, 3] - 1 + d[:, 5], d[:, 6]])


def read_frame(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    with Image.open(path) as im:
        im = im.convert("RGB")
        return np.asarray(im.resize(size, Image.BILINEAR) if size else im)


def frames_with_boxes(seq: Path | None, n: int, n_boxes: int, rng: np.random.Generator,
                      size: tuple[int, int] = (WIDTH, HEIGHT)):
    """n frames at ``size`` with exactly n_boxes boxes each (own detections first)."""
    w, h = size
    if seq is None:
        frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]
        out = []
        for _ in range(n):
            bh = rng.uniform(40, 0.6 * h, n_boxes)
            bw = bh * rng.uniform(0.35, 0.5, n_boxes)
            x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            out.append(np.stack([x, y, x + bw, y + bh], axis=1))
        return frames, out, f"synthetic random {w}x{h} frames and boxes"
    det = load_det(seq)
    paths = sorted((seq / "img1").glob("*.jpg"))[:n]
    with Image.open(paths[0]) as im:
        sx, sy = w / im.size[0], h / im.size[1]
    xyxy = det[:, 2:6] * [sx, sy, sx, sy]
    xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, w - 1)
    xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, h - 1)
    ok = (xyxy[:, 2] - xyxy[:, 0] >= 4) & (xyxy[:, 3] - xyxy[:, 1] >= 4)
    frames, boxes = [], []
    for i, p in enumerate(paths, start=1):
        frames.append(read_frame(p, (w, h)))
        mine = np.flatnonzero((det[:, 0] == i) & ok)
        mine = mine[np.argsort(-det[mine, 6])][:n_boxes]
        others = np.flatnonzero((det[:, 0] != i) & ok)
        extra = rng.choice(others, n_boxes - len(mine), replace=False)
        boxes.append(xyxy[np.concatenate([mine, extra])])
    return frames, boxes, (f"{seq.name} frames 1-{n} resized to {w}x{h}, det.txt boxes topped "
                           f"up from other frames")


def interleaved(fns: dict[str, Callable], frames, boxes) -> tuple[dict, dict]:
    """Seconds per frame of each function, alternating frame by frame; frame 0 warms up.

    The order rotates from frame to frame, so no path always runs right after
    the same other one (a thread pool still busy from the previous call slows
    whatever comes next).
    """
    last = {k: fn(frames[0], boxes[0]) for k, fn in fns.items()}
    times: dict[str, list[float]] = {k: [] for k in fns}
    keys = list(fns)
    for i, (f, b) in enumerate(zip(frames[1:], boxes[1:], strict=True)):
        for k in keys[i % len(keys):] + keys[:i % len(keys)]:
            t = time.perf_counter()
            last[k] = fns[k](f, b)
            times[k].append(time.perf_counter() - t)
    return times, last


def ms(times: list[float]) -> float:
    return round(1000 * statistics.median(times), 2)


def ms_min(times: list[float]) -> float:
    """The fastest frame: on a CPU shared with other jobs, the closest to the path's own cost."""
    return round(1000 * min(times), 2)


def paired_ratio(num: list[float], den: list[float]) -> float:
    return round(statistics.median(a / b for a, b in zip(num, den, strict=True)), 3)


def fastest_ratio(num: list[float], den: list[float]) -> float:
    """Ratio of the fastest runs: other jobs only ever add time, so on a shared CPU this
    is the steadiest estimate of the ratio of the paths' own costs."""
    return round(min(num) / min(den), 3)


def crop_batch(image: np.ndarray, boxes: np.ndarray) -> torch.Tensor:
    """The crops path's input, as MapExtractor.crops makes it (for onnxruntime)."""
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1).float().div_(255.0)
    h, w = x.shape[-2:]
    crops = []
    for x1, y1, x2, y2 in boxes:
        c0, r0 = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
        c1, r1 = min(w, int(np.ceil(x2))), min(h, int(np.ceil(y2)))
        crops.append(F.interpolate(x[None, :, r0:r1, c0:c1], size=INPUT_SIZE, mode="bilinear",
                                   align_corners=False))
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (torch.cat(crops) - mean) / std


def ort_sessions(path: Path, threads: int):
    """(batched session, batch-1 session) or None: the file's batch is fixed at 1, so the
    batched one gets a symbolic batch and its flatten Reshape copies dim 0 (in memory only)."""
    try:
        import onnx
        import onnxruntime as ort
    except ImportError:
        return None
    if not path.is_file():
        return None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # onnxruntime's workers spin-wait after each run by default, taking the 2 cores from
    # the torch path timed next (it made the RoI rows 2x slower in a first run).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    model = onnx.load(str(path))
    single = ort.InferenceSession(model.SerializeToString(), opts,
                                  providers=["CPUExecutionProvider"])
    for v in (*model.graph.input, *model.graph.output):
        v.type.tensor_type.shape.dim[0].dim_param = "N"
    for init in model.graph.initializer:
        if init.name in {n.input[1] for n in model.graph.node if n.op_type == "Reshape"}:
            init.CopyFrom(onnx.numpy_helper.from_array(np.array([0, -1], np.int64), init.name))
    batched = ort.InferenceSession(model.SerializeToString(), opts,
                                   providers=["CPUExecutionProvider"])
    return batched, single, ort.__version__


def paths_section(weights: str | None, seq: Path | None, n_boxes: int, n_frames: int,
                  sessions) -> tuple[Callable[[], None], Callable[[], dict]]:
    """Per-frame paths at ``n_boxes`` boxes: (run one pass, summarise all passes)."""
    rng = np.random.default_rng(n_boxes)
    frames, boxes, source = frames_with_boxes(seq, n_frames, n_boxes, rng)
    emb = {layer: RoIEmbedder(AppearanceConfig(backbone="osnet_x0_25", weights=weights,
                                               layer=layer, roi_size=8, batch_size=1))
           for layer in ("head", "conv5", "crops")}
    fns: dict[str, Callable] = {
        "roi_head": emb["head"].roi_features,
        "roi_conv5": emb["conv5"].roi_features,
        "crops": emb["crops"].roi_features,
    }
    if sessions is not None:
        batched, single, _ = sessions
        fns["crops_ort"] = lambda f, b: batched.run(
            None, {"images": crop_batch(f, b).numpy()})[0]
        fns["crops_ort_b1"] = lambda f, b: np.concatenate(
            [single.run(None, {"images": c[None]})[0] for c in crop_batch(f, b).numpy()])
    times: dict[str, list[float]] = {k: [] for k in fns}
    last: dict = {}

    def run() -> None:
        with torch.inference_mode():
            t, out = interleaved(fns, frames, boxes)
        for k, v in t.items():
            times[k].extend(v)
        last.update(out)

    def summary() -> dict:
        head = pool(last["roi_head"], "avg")
        crop = pool(last["crops"], "avg")
        row = {"boxes": n_boxes, "frames_timed": len(times["crops"]), "source": source,
               "ms_min_per_frame": {k: ms_min(v) for k, v in times.items()},
               "ms_per_frame": {k: ms(v) for k, v in times.items()},
               "crops_over_roi_head": fastest_ratio(times["crops"], times["roi_head"]),
               "crops_over_roi_head_paired_median": paired_ratio(times["crops"],
                                                                 times["roi_head"]),
               "crops_over_roi_conv5": fastest_ratio(times["crops"], times["roi_conv5"]),
               "cosine_roi_head_vs_crops_median": round(float(np.median((head * crop).sum(1))),
                                                        4)}
        if sessions is not None:
            row["crops_over_crops_ort"] = fastest_ratio(times["crops"], times["crops_ort"])
            row["crops_over_crops_ort_paired_median"] = paired_ratio(times["crops"],
                                                                     times["crops_ort"])
        return row

    return run, summary


def network_section(weights: str | None, seq: Path | None, n_crops: int,
                    repeats: int) -> tuple[Callable[[], None], Callable[[], dict]]:
    """The bare network: NCHW vs channels-last, BatchNorm layers vs folded into the convs.

    Real weights and a real frame where available: random weights on noise can
    make denormal activations, which alone slow a CPU several-fold.
    """
    torch.manual_seed(0)
    base = OSNet(OSNET_WIDTHS["osnet_x0_25"])
    if weights is not None:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        base.load_state_dict(check_osnet_state(base, state, weights), strict=True)
    base.eval()
    frames, boxes, _ = frames_with_boxes(seq, 1, n_crops, np.random.default_rng(2))
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    frame = torch.from_numpy(np.array(frames[0])).permute(2, 0, 1)[None].float() / 255.0
    frame = (frame - mean) / std
    nets = {}
    for fused in (False, True):
        for fmt, mf in (("contiguous", torch.contiguous_format),
                        ("channels_last", torch.channels_last)):
            net = copy.deepcopy(base)
            net = net.fuse_batchnorm_() if fused else net
            nets[f"{'fused' if fused else 'bn'}_{fmt}"] = (net.to(memory_format=mf), mf)
    inputs = {"frame_960x540": frame, f"crops_{n_crops}x256x128": crop_batch(frames[0], boxes[0])}
    times = {name: {k: [] for k in nets} for name in inputs}
    keys = list(nets)

    def run() -> None:
        with torch.inference_mode():
            for name, x in inputs.items():
                for r in range(repeats + 1):  # the first round warms up; the order rotates
                    for k in keys[r % len(keys):] + keys[:r % len(keys)]:
                        net, mf = nets[k]
                        xi = x.contiguous(memory_format=mf)
                        t = time.perf_counter()
                        net(xi)
                        if r:
                            times[name][k].append(time.perf_counter() - t)

    def summary() -> dict:
        return {name: {"ms_min": {k: ms_min(v) for k, v in t.items()},
                       "ms": {k: ms(v) for k, v in t.items()},
                       "contiguous_over_channels_last": fastest_ratio(
                           t["fused_contiguous"], t["fused_channels_last"]),
                       "bn_over_fused_channels_last": fastest_ratio(
                           t["bn_channels_last"], t["fused_channels_last"])}
                for name, t in times.items()}

    return run, summary


def scale_section(weights: str | None, seq: Path,
                  n_frames: int) -> tuple[Callable[[], None], Callable[[], dict]]:
    rng = np.random.default_rng(1)
    frames, boxes, source = frames_with_boxes(seq, n_frames, 30, rng, size=(1920, 1080))
    fns = {f"roi_head@{s}": RoIEmbedder(AppearanceConfig(
        backbone="osnet_x0_25", weights=weights, layer="head", roi_size=8, image_scale=s,
        batch_size=1)).roi_features for s in (0.5, 1.0)}
    times: dict[str, list[float]] = {k: [] for k in fns}

    def run() -> None:
        with torch.inference_mode():
            t, _ = interleaved(fns, frames, boxes)
        for k, v in t.items():
            times[k].extend(v)

    def summary() -> dict:
        return {"source": source, "boxes": 30,
                "ms_min_per_frame": {k: ms_min(v) for k, v in times.items()},
                "ms_per_frame": {k: ms(v) for k, v in times.items()},
                "scale1_over_scale05": fastest_ratio(times["roi_head@1.0"],
                                                     times["roi_head@0.5"])}

    return run, summary


def roc_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a positive distance < a negative one), ties counting half (Mann-Whitney U)."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([pos, neg]))
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
    return float(1.0 - u / (len(pos) * len(neg)))


def bench_separation(weights: str, data: Path, n_frames: int, window: int) -> dict:
    """ROC AUC of same- vs different-identity cosine distances on ground-truth boxes."""
    out = {}
    for name, scales in SEPARATION.items():
        seq = data / "MOT15" / "train" / name
        if not (seq / "gt" / "gt.txt").is_file():
            continue
        gt = np.loadtxt(seq / "gt" / "gt.txt", delimiter=",", ndmin=2)
        gt = gt[gt[:, 6] != 0]  # considered boxes only
        paths = sorted((seq / "img1").glob("*.jpg"))
        picks = np.linspace(1, len(paths), n_frames).round().astype(int)
        configs = {f"roi_head@{s}": {"layer": "head", "image_scale": s} for s in scales}
        configs.update({f"roi_conv5_avg@{s}": {"layer": "conv5", "image_scale": s}
                        for s in scales})
        configs["crops"] = {"layer": "crops"}
        embs = {k: RoIEmbedder(AppearanceConfig(backbone="osnet_x0_25", weights=weights,
                                                roi_size=8, batch_size=1, **v))
                for k, v in configs.items()}
        vecs: dict[str, list[np.ndarray]] = {k: [] for k in configs}
        ids, frames = [], []
        for f in picks:
            rows = gt[gt[:, 0] == f]
            image = read_frame(paths[f - 1])
            h, w = image.shape[:2]
            b = np.column_stack([rows[:, 2] - 1, rows[:, 3] - 1, rows[:, 2] - 1 + rows[:, 4],
                                 rows[:, 3] - 1 + rows[:, 5]])
            inside = (b[:, 2] > 1) & (b[:, 3] > 1) & (b[:, 0] < w - 1) & (b[:, 1] < h - 1)
            rows, b = rows[inside], b[inside]
            if not len(b):
                continue
            with torch.inference_mode():
                for k, e in embs.items():
                    vecs[k].append(pool(e.roi_features(image, b), "avg"))
            ids.append(rows[:, 1])
            frames.append(np.full(len(rows), f))
        ids_a, fr = np.concatenate(ids), np.concatenate(frames)
        iu = np.triu_indices(len(ids_a), 1)
        near = np.abs(fr[iu[0]] - fr[iu[1]]) <= window
        same = (ids_a[iu[0]] == ids_a[iu[1]]) & near & (fr[iu[0]] != fr[iu[1]])
        diff = (ids_a[iu[0]] != ids_a[iu[1]]) & near
        res = {"frames": len(ids), "boxes": len(ids_a), "positives": int(same.sum()),
               "negatives": int(diff.sum()), "auc": {}}
        if not same.any() or not diff.any():
            continue  # too few frames for pairs within the window
        for k, v in vecs.items():
            x = np.concatenate(v)
            d = 1.0 - (x[iu[0]] * x[iu[1]]).sum(1)
            res["auc"][k] = round(roc_auc(d[same], d[diff]), 4)
        out[name] = res
    return out


def render(res: dict) -> str:
    lines = ["# OSNet x0.25: RoI pass vs per-crop pass", "",
             f"Command: `{res['command']}`  ", f"Date: {res['date']}  ",
             f"Machine: {res['machine']}  ",
             f"`uptime` before: `{res['uptime_before']}`  ",
             f"`uptime` after: `{res['uptime_after']}`  ",
             f"1-minute load at the start of each timing pass: {res['pass_loadavg_1min']}", "",
             (f"Weights: {res['weights']}. torch inference mode, {res['threads']} torch threads"
              + (f", onnxruntime {res['onnxruntime']} ({res['threads']} intra-op threads)"
                 if res.get("onnxruntime") else "") + ". Frames: "
              + res["paths"][0]["source"] + f"; {res['paths'][0]['frames_timed']} timed frames "
              f"per row ({res['passes']} passes spread over the run, each after one warm-up "
              "frame), every path on every frame in turn (the order rotating). The CPU was shared with other jobs (see the load), which only ever "
              "add time: each cell is the fastest frame, the median in brackets, and ratios "
              "are of the fastest frames (the JSON also has medians of per-frame ratios)."), "",
             "## Per frame (960x540), by number of boxes", ""]
    cols = list(res["paths"][0]["ms_per_frame"])
    lines += ["| boxes | " + " | ".join(f"{c} ms" for c in cols)
              + " | crops / roi_head | (median of per-frame) | crops / roi_conv5 |"
              + (" crops / crops_ort |" if "crops_over_crops_ort" in res["paths"][0] else "")
              + " cos(roi_head, crops) |",
              "|---|" + "---|" * (len(cols) + 4 + ("crops_over_crops_ort" in res["paths"][0]))]
    for r in res["paths"]:
        lines.append(f"| {r['boxes']} | " + " | ".join(
            f"{r['ms_min_per_frame'][c]:.0f} ({r['ms_per_frame'][c]:.0f})" for c in cols)
                     + f" | {r['crops_over_roi_head']:.2f}x | "
                     f"{r['crops_over_roi_head_paired_median']:.2f}x | "
                     f"{r['crops_over_roi_conv5']:.2f}x |"
                     + (f" {r['crops_over_crops_ort']:.2f}x |" if "crops_over_crops_ort" in r
                        else "")
                     + f" {r['cosine_roi_head_vs_crops_median']:.3f} |")
    lines += ["", ("roi_head: one pass over the frame, RoIAlign 8x8 on conv5 (stride 16), "
                   "OSNet's GAP + fc/BN/ReLU per RoI -> 512-d. roi_conv5: same pass, the "
                   "128x8x8 RoI maps. crops: every box cut out, resized to 256x128, the whole "
                   "network on the batch. crops_ort: the same crops through the ONNX export in "
                   "onnxruntime, one batched run; crops_ort_b1: one run per crop (the file's "
                   "fixed batch of 1). cos(roi_head, crops): median cosine between the two "
                   "embeddings of a box (last frame): how far the frame-pass embedding is from "
                   "the crop one at this scale."), "",
              "## Memory format and BatchNorm folding (bare network, one frame and its crops)", "",
              ("bn: the network as loaded (BatchNorm after every conv); fused: BatchNorm folded "
              "into the convs (OSNet.fuse_batchnorm_, what the embedder runs); channels_last: "
              "weights and input in NHWC (the embedder's layout)."), "",
              "| input | " + " | ".join(f"{k} ms" for k in next(iter(
                  res["network"].values()))["ms"])
              + " | contiguous / channels-last (fused) | bn / fused (channels-last) |",
              "|---|---|---|---|---|---|---|"]
    for name, r in res["network"].items():
        lines.append(f"| {name} | " + " | ".join(f"{v:.0f} ({r['ms'][k]:.0f})"
                                                 for k, v in r["ms_min"].items())
                     + f" | {r['contiguous_over_channels_last']:.2f}x | "
                     f"{r['bn_over_fused_channels_last']:.2f}x |")
    if res.get("scale"):
        s = res["scale"]
        lines += ["", "## Frame scale (1920x1080 frames, 30 boxes, roi_head)", "",
                  f"{s['source']}.", "", "| path | ms/frame, fastest (median) |", "|---|---|"]
        lines += [f"| {k} | {v:.0f} ({s['ms_per_frame'][k]:.0f}) |"
                  for k, v in s["ms_min_per_frame"].items()]
        lines += ["", f"Scale 1.0 costs {s['scale1_over_scale05']:.2f}x scale 0.5."]
    if res.get("separation"):
        lines += ["", "## Identity separation (ground-truth boxes, ROC AUC)", "",
                  (f"Cosine distance between boxes of the same person in different frames "
                   f"(positives) against boxes of different people (negatives), frames at most "
                   f"{res['pair_window']} apart, {res['separation_frames']} frames spread over "
                   "each sequence; embeddings L2-normalised (conv5 maps average-pooled). "
                   "1.0 = every same-person pair closer than every different-person pair."), ""]
        keys = sorted({k for v in res["separation"].values() for k in v["auc"]})
        lines += ["| sequence | boxes | pos / neg pairs | " + " | ".join(keys) + " |",
                  "|---|---|---|" + "---|" * len(keys)]
        for name, v in res["separation"].items():
            lines.append(f"| {name} | {v['boxes']} | {v['positives']} / {v['negatives']} | "
                         + " | ".join(f"{v['auc'][k]:.3f}" if k in v["auc"] else "-"
                                      for k in keys) + " |")
    if res.get("notes"):
        lines += ["", "## Reading", ""] + [f"- {n}" for n in res["notes"]]
    return "\n".join(lines) + "\n"


def notes(res: dict) -> list[str]:
    """Plain readings of the numbers above (computed, so they follow a rerun)."""
    out = []
    by = {r["boxes"]: r for r in res["paths"]}
    ratios = ", ".join(f"{n} boxes {r['crops_over_roi_head']:.2f}x" for n, r in by.items())
    out.append(f"Crops time / RoI-head time per frame: {ratios}. The RoI pass costs one "
               f"{WIDTH}x{HEIGHT} frame ({WIDTH * HEIGHT / (INPUT_SIZE[0] * INPUT_SIZE[1]):.1f} "
               "crops' worth of pixels) whatever the number of boxes; the crops' cost grows "
               "with it, so the RoI path wins from about 16 boxes on, by pixel count.")
    if "crops_over_crops_ort" in res["paths"][0]:
        ort = ", ".join(f"{n} boxes {r['crops_over_crops_ort']:.2f}x" for n, r in by.items())
        out.append(f"onnxruntime runs the same crops faster than torch (torch time / "
                   f"onnxruntime batched): {ort}. It needs the network as an ONNX file with a "
                   "batch dimension (the shared one has a fixed batch of 1, patched in memory "
                   "here, and other weights than the .pth), so deeptrack's crop path stays in "
                   "torch.")
    for name, r in res["network"].items():
        out.append(f"Bare network, {name}: NCHW time / channels-last time "
                   f"{r['contiguous_over_channels_last']:.2f}x (BatchNorm folded); BatchNorm "
                   f"layers / folded {r['bn_over_fused_channels_last']:.2f}x (channels-last).")
    if res.get("scale"):
        out.append(f"At 1080p, image_scale 1.0 costs {res['scale']['scale1_over_scale05']:.2f}x "
                   "image_scale 0.5 per frame.")
    for name, v in (res.get("separation") or {}).items():
        auc = v["auc"]
        if not auc:
            continue
        best = max(auc, key=auc.get)
        out.append(f"{name}: best identity separation {best} (AUC {auc[best]:.3f}); "
                   + ", ".join(f"{k} {a:.3f}" for k, a in auc.items() if k != best) + ".")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=11,
                    help="frames per row, the first a warm-up (default: %(default)s)")
    ap.add_argument("--boxes", default="10,30,100", help="boxes per frame (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=2, help="torch / onnxruntime threads")
    ap.add_argument("--format-repeats", type=int, default=8,
                    help="rounds of the bare-network timings per pass (default: %(default)s)")
    ap.add_argument("--passes", type=int, default=3,
                    help="times every timing section runs, spread over the run; each figure "
                         "uses all passes (default: %(default)s)")
    ap.add_argument("--separation-frames", type=int, default=30,
                    help="frames per sequence for the AUC (0 skips it) (default: %(default)s)")
    ap.add_argument("--pair-window", type=int, default=30)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    if args.frames < 2:
        ap.error("--frames must be >= 2 (one warm-up, one timed frame)")
    torch.set_num_threads(args.threads)
    command = " ".join(["python benchmarks/bench_osnet.py",
                        *(argv if argv is not None else sys.argv[1:])])
    before = uptime()
    data, wroot = _root("DEEPTRACK_DATA", "data"), _root("DEEPTRACK_WEIGHTS", "weights")
    seq = data.joinpath(*SEQ)
    seq = seq if (seq / "img1").is_dir() and (seq / "det" / "det.txt").is_file() else None
    pth = wroot / "osnet_x0_25_msmt17.pth"
    weights = str(pth) if pth.is_file() else None
    sessions = ort_sessions(wroot / "osnet_x0_25_msmt17.onnx", args.threads)
    res: dict = {"command": command, "date": dt.datetime.now(dt.timezone.utc).isoformat(
        timespec="seconds"), "uptime_before": before,
        "machine": (f"{os.cpu_count()}-core CPU ({cpu_model()}), torch {torch.__version__}, "
                    f"python {platform.python_version()}"),
        "threads": args.threads, "weights": pth.name if weights else "random",
        "onnxruntime": sessions[2] if sessions else None}
    sections = {f"paths {n} boxes": paths_section(weights, seq, n, args.frames, sessions)
                for n in (int(v) for v in args.boxes.split(","))}
    sections["network"] = network_section(weights, seq, 30, args.format_repeats)
    if seq is not None:
        sections["scale"] = scale_section(weights, seq, args.frames)
    # Several passes spread over the run: a stretch of heavy load from other jobs then
    # spoils one pass of a row, not every measurement of it.
    res["pass_loadavg_1min"] = []
    for p in range(args.passes):
        res["pass_loadavg_1min"].append(round(os.getloadavg()[0], 2))
        for name, (run, _) in sections.items():
            t = time.perf_counter()
            run()
            print(f"pass {p + 1}/{args.passes}: {name} [{time.perf_counter() - t:.0f} s]",
                  flush=True)
    res["passes"] = args.passes
    res["paths"] = [summary() for name, (_, summary) in sections.items()
                    if name.startswith("paths")]
    res["network"] = sections["network"][1]()
    res["scale"] = sections["scale"][1]() if "scale" in sections else None
    for row in res["paths"]:
        print(f"{row['boxes']:4d} boxes, fastest frame: " + ", ".join(
            f"{k} {v:.1f} ms" for k, v in row["ms_min_per_frame"].items())
            + f"; crops/roi_head {row['crops_over_roi_head']:.2f}x", flush=True)
    if args.separation_frames and weights and data.is_dir():
        res["pair_window"] = args.pair_window
        res["separation_frames"] = args.separation_frames
        res["separation"] = bench_separation(weights, data, args.separation_frames,
                                             args.pair_window)
        print("separation:", json.dumps(res["separation"]), flush=True)
    res["uptime_after"] = uptime()
    res["notes"] = notes(res)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_osnet.json").write_text(json.dumps(res, indent=2) + "\n")
    (out / "bench_osnet.md").write_text(render(res))
    print(render(res))
    print(f"wrote {out / 'bench_osnet.json'} and {out / 'bench_osnet.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
