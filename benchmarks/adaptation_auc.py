"""Identity separation of each backbone's vectors, with and without online adaptation.

On the scored ground-truth boxes of every shared sequence, the pooling
study's protocol (same- against different-identity cosine distances of pairs
at most ``--pair-window`` frames apart, ROC AUC; ``benchmarks/study``):

- MobileNetV2 ImageNet RoI features at stride 32 and stride 16 (average
  pooling), OSNet x0.25 as a RoI backbone (its own head on 8x8 RoIs of one
  frame pass), OSNet x0.25 on 256x128 crops;
- MobileNetV2 stride 16 and stride 32 concatenated (each unit vector
  weighted by sqrt(1/2)): the multi-layer option;
- each as given, mean-centred online (``centre``) and also weighted per
  dimension by across-object over within-track spread (``centre_scale``),
  exactly as :class:`deeptrack.appearance.adapt.OnlineAdapter` does in the
  tracker: frame by frame in order, causal. The tracker learns the
  within-track spread from its own tracks; with no tracker here, the
  consecutive boxes of each ground-truth identity stand in for them;
- ``whiten``: centred, then whitened by the within-track covariance learnt
  from the same steps (WCCN, ``OnlineAdapter``'s ``whiten``);
- ``centre`` at the safeguard's neighbouring priors (0 and 100 vectors, the
  default being 30), and centring on the whole sequence's mean: not causal,
  the bound that online centring approaches.

Usage::

    python benchmarks/adaptation_auc.py --weights ../shared/weights/mobilenet_v2_imagenet_features.pth \\
        --osnet-weights ../shared/weights/osnet_x0_25_msmt17.pth [--out benchmarks/results]

Writes ``adaptation_auc.json`` and ``adaptation_auc.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from hostinfo import cpu_model
from study.data import extract_maps, load_study_sequences
from study.separation import pair_distances, roc_auc, sample_pairs

from deeptrack.appearance import EmbeddingHead
from deeptrack.appearance.adapt import OnlineAdapter
from deeptrack.appearance.embedder import RoIEmbedder
from deeptrack.appearance.pooling import l2_normalize
from deeptrack.config import AppearanceConfig, HeadConfig, default_cache_dir
from deeptrack.io.mot import write_atomic

MODES = ("none", "centre", "centre_scale", "whiten")
#: centre at other priors than the default, and the non-causal whole-sequence mean
EXTRA = ("centre prior 0", "centre prior 100", "whole-sequence mean")
CONCAT = "MobileNetV2 stride16 + stride32"


def sources(weights: str, osnet: str | None) -> dict[str, AppearanceConfig]:
    cache = str(default_cache_dir())
    out = {f"MobileNetV2 {layer}": AppearanceConfig(backbone="mobilenet_v2", weights=weights,
                                                    layer=layer, image_scale=0.5, cache_dir=cache)
           for layer in ("stride32", "stride16")}
    if osnet:
        out["OSNet x0.25 RoI (head)"] = AppearanceConfig(
            backbone="osnet_x0_25", weights=osnet, layer="head", roi_size=8, image_scale=0.5,
            cache_dir=cache)
        out["OSNet x0.25 crops"] = AppearanceConfig(backbone="osnet_x0_25", weights=osnet,
                                                    layer="crops", cache_dir=cache)
    return out


def adapted(frame_vectors: list[np.ndarray], frame_ids: list[np.ndarray],
            mode: str, prior: float | None = None) -> np.ndarray:
    """Run the online adapter over the frames in order; rows in frame order.

    ``prior`` None: the adapter's default safeguard."""
    adapter = OnlineAdapter(mode) if prior is None else OnlineAdapter(mode, prior=prior)
    last: dict[int, np.ndarray] = {}
    rows = []
    for v, ids in zip(frame_vectors, frame_ids):
        if len(v) == 0:
            continue
        rows.append(adapter(v))
        if mode in ("centre_scale", "whiten"):
            seen = [(last[i], v[k]) for k, i in enumerate(ids.tolist()) if i in last]
            if seen:
                adapter.observe(np.stack([a for a, _ in seen]), np.stack([b for _, b in seen]))
            last.update({i: v[k] for k, i in enumerate(ids.tolist())})
    return np.concatenate(rows)


def adapter_cost(frames: int = 500, n: int = 10, dims: tuple[int, ...] = (128, 512, 1280),
                 seed: int = 0) -> dict[str, dict[str, list[float]]]:
    """Per-frame ms of :class:`OnlineAdapter` with N vectors and N within-track steps a frame:
    [mean, median, slowest frame] per mode and dimension, refits included; one BLAS thread."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, list[float]]] = {}
    with threadpool_limits(1):
        for dim in dims:
            x = [l2_normalize(rng.normal(size=(n, dim)).astype(np.float32)) for _ in range(frames)]
            out[str(dim)] = {}
            for mode in MODES[1:]:
                adapter = OnlineAdapter(mode)
                t = []
                for i in range(frames):
                    start = time.perf_counter()
                    adapter(x[i])
                    if i:
                        adapter.observe(x[i - 1], x[i])
                    t.append(1000 * (time.perf_counter() - start))
                out[str(dim)][mode] = [round(float(np.mean(t)), 3), round(float(np.median(t)), 3),
                                       round(max(t), 1)]
    return out


#: frame-gap bands of the lag table: where motion alone decides, and where a lost track is re-found
LAG_BANDS = ((1, 10), (30, 150))


def lag_bands(seq, n_max: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(same, different) ground-truth pairs per :data:`LAG_BANDS` band, from one sample of
    pairs at most the last band's end apart (seed 1)."""
    pos, neg = sample_pairs(seq.gt_frames, seq.gt_ids, LAG_BANDS[-1][1], 2 * n_max, 1)
    gap = [np.abs(seq.gt_frames[p[:, 1]] - seq.gt_frames[p[:, 0]]) for p in (pos, neg)]
    return {f"{lo}-{hi}": (pos[(gap[0] >= lo) & (gap[0] <= hi)], neg[(gap[1] >= lo) & (gap[1] <= hi)])
            for lo, hi in LAG_BANDS}


def score(per_seq: dict[str, tuple]) -> dict[str, dict[str, float]]:
    """AUC per sequence and over all pairs, for every mode and the extra rows."""
    out: dict[str, dict[str, float]] = {}
    pooled: dict[str, tuple[list, list]] = {m: ([], []) for m in MODES + EXTRA}
    for seq_name, (vectors, ids, pos, neg, bands) in per_seq.items():
        for mode in MODES + EXTRA:
            if mode == "whole-sequence mean":
                flat = np.concatenate([v for v in vectors if len(v)])
                v = l2_normalize((flat - flat.mean(axis=0)).astype(np.float32))
            elif mode.startswith("centre prior"):
                v = adapted(vectors, ids, "centre", prior=float(mode.split()[-1]))
            else:
                v = adapted(vectors, ids, mode)
            dp, dn = pair_distances(v, pos), pair_distances(v, neg)
            out[f"{seq_name} {mode}"] = {"auc": round(roc_auc(dp, dn), 4)}
            for band, (bp, bn) in bands.items():
                out[f"{seq_name} {mode} lag {band}"] = {
                    "auc": round(roc_auc(pair_distances(v, bp), pair_distances(v, bn)), 4),
                    "pairs": [len(bp), len(bn)]}
            pooled[mode][0].append(dp)
            pooled[mode][1].append(dn)
    for mode, (dp, dn) in pooled.items():
        out[f"all {mode}"] = {"auc": round(roc_auc(np.concatenate(dp), np.concatenate(dn)), 4)}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", required=True)
    p.add_argument("--osnet-weights", default=None)
    p.add_argument("--data", default=os.environ.get("DEEPTRACK_DATA",
                                                    REPO.parent / "shared" / "data"))
    p.add_argument("--pair-window", type=int, default=30)
    p.add_argument("--pairs", type=int, default=20000)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = p.parse_args(argv)
    start = time.perf_counter()
    data = Path(args.data)
    if (data / "MOT15" / "train").is_dir():  # the shared data folder: its MOT15 split
        data = data / "MOT15" / "train"
    seqs = load_study_sequences(data, None, [("det.txt", None),
                                                        ("det_frcnn.txt", None)])
    head = EmbeddingHead(HeadConfig(pooling="avg"))
    table: dict[str, dict[str, dict[str, float]]] = {}
    # per source: per sequence (frame vectors, frame ids, positive pairs, negative pairs,
    # pairs by frame-gap band)
    kept: dict[str, dict[str, tuple]] = {}
    for name, appearance in sources(args.weights, args.osnet_weights).items():
        embedder = RoIEmbedder(appearance)
        kept[name] = {}
        for seq in seqs:
            extract_maps(seq, appearance, embedder)
            maps = seq.maps[embedder.spec.layer]["gt"]
            starts = np.searchsorted(seq.gt_frames, np.arange(1, len(maps) + 2))
            vectors = [head(m) if len(m) else np.zeros((0, 1), np.float32) for m in maps]
            ids = [seq.gt_ids[starts[i]:starts[i + 1]] for i in range(len(maps))]
            pairs = sample_pairs(seq.gt_frames, seq.gt_ids, args.pair_window, args.pairs, 0)
            kept[name][seq.name] = (vectors, ids, *pairs, lag_bands(seq, args.pairs))
            seq.maps.clear()
        table[name] = score(kept[name])
        print(name, {k: v["auc"] for k, v in table[name].items()}, file=sys.stderr, flush=True)
        if name == "MobileNetV2 stride16":  # both layers are in: their concatenation
            both = {}
            for seq_name, (v16, ids, *rest) in kept[name].items():
                v32 = kept["MobileNetV2 stride32"][seq_name][0]
                both[seq_name] = ([np.concatenate([a, b], axis=1) * np.float32(np.sqrt(0.5))
                                   if len(a) else a for a, b in zip(v16, v32, strict=True)],
                                  ids, *rest)
            table[CONCAT] = score(both)
        kept = {k: v for k, v in kept.items() if k in ("MobileNetV2 stride32", name)}
    command = "python benchmarks/adaptation_auc.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    names = [s.name for s in seqs]
    lines = [f"Command: `{command}`", "",
             (f"Machine: {cpu_model()}, {os.cpu_count()} cores; "
              f"{time.perf_counter() - start:.0f} s."), "",
             ("ROC AUC of same- vs different-identity cosine distances on ground-truth boxes "
              f"(pairs at most {args.pair_window} frames apart). Columns: each sequence and "
              "all pairs together, for the vectors as given / centred online / centred and "
              "scaled / centred and whitened by the within-track covariance. The within-track "
              "statistics come from each ground-truth identity's consecutive boxes, standing in "
              "for the tracker's own tracks (which the tracker uses)."),
             "", ("| vectors | " + " | ".join(names) + " | all pairs | mean gain (centre) "
                  "| mean gain (centre_scale) | mean gain (whiten) |"),
             "|---|" + "---|" * (len(names) + 4)]
    for name, t in table.items():
        cells = [" / ".join(f"{t[f'{s} {m}']['auc']:.3f}" for m in MODES) for s in names]
        cells.append(" / ".join(f"{t[f'all {m}']['auc']:.3f}" for m in MODES))
        gains = [np.mean([t[f"{s} {m}"]["auc"] - t[f"{s} none"]["auc"] for s in names])
                 for m in MODES[1:]]
        lines.append(f"| {name} | " + " | ".join(cells) +
                     " | " + " | ".join(f"{g:+.3f}" for g in gains) + " |")
    lines += ["", ("Centring's safeguard and its bound: mean gain over the sequences of `centre` "
                   "at the default prior (30 vectors) and its neighbours 0 and 100, and of "
                   "centring on the whole sequence's mean (uses later frames: not causal, not "
                   "usable online; the bound online centring approaches)."), "",
              "| vectors | prior 0 | prior 30 (default) | prior 100 | whole-sequence mean |",
              "|---|---|---|---|---|"]
    for name, t in table.items():
        gain = {m: np.mean([t[f"{s} {m}"]["auc"] - t[f"{s} none"]["auc"] for s in names])
                for m in ("centre", *EXTRA)}
        lines.append(f"| {name} | {gain['centre prior 0']:+.3f} | {gain['centre']:+.3f} | "
                     f"{gain['centre prior 100']:+.3f} | {gain['whole-sequence mean']:+.3f} |")
    bands = [f"{lo}-{hi}" for lo, hi in LAG_BANDS]
    lines += ["", ("By frame gap: AUC of pairs 1-10 frames apart (where motion alone already "
                   "decides) and 30-150 frames apart (where a lost track is re-found by its "
                   "looks), from a second sample of ground-truth pairs (seed 1), as given / "
                   "centred / whitened. Cells: " + ", ".join(names) + "."), "",
              "| vectors | " + " | ".join(f"lag {b}" for b in bands) + " |",
              "|---|" + "---|" * len(bands)]
    for name, t in table.items():
        cells = [", ".join(" / ".join(f"{t[f'{s} {m} lag {b}']['auc']:.3f}"
                                      for m in ("none", "centre", "whiten")) for s in names)
                 for b in bands]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    cost = adapter_cost()
    lines += ["", ("Cost of the adapter per frame in ms (mean / median / slowest frame over 500 "
                   "frames of 10 vectors and 10 within-track steps each, about the shared "
                   "sequences' rate; `whiten`'s slowest frames are its refits, an O(D^3) "
                   "eigendecomposition about 20 times a sequence; one BLAS thread):"), "",
              "| dimension | " + " | ".join(MODES[1:]) + " |", "|---|" + "---|" * len(MODES[1:])]
    for dim, row in cost.items():
        lines.append(f"| {dim} | " + " | ".join(" / ".join(f"{v:g}" for v in row[m])
                                                for m in MODES[1:]) + " |")
    md = "\n".join(lines) + "\n"
    out = Path(args.out)
    write_atomic(out / "adaptation_auc.json", json.dumps(
        {"command": command, "cpu": cpu_model(), "table": table, "adapter_ms_per_frame": cost},
        indent=2))
    write_atomic(out / "adaptation_auc.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
