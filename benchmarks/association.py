"""Ablation of the fused association: each part switched, with and without appearance.

Every variant is the default preset (``configs/fused.yaml``) with one change,
run on the four shared runs (two sequences x two detection files, RoI maps
from the feature cache) once with its ImageNet MobileNetV2 RoI features and
once on motion alone; nearby parameter values show how much of a score is
luck. Beside them:

- the peers of ``benchmarks/results/peers.json`` (same detections), best
  single peer on the mean and best per run;
- with ``--osnet-weights``, the OSNet preset (configs/fused_osnet.yaml: the
  same association on OSNet x0.25 crops, with a lifecycle for re-ID
  features) and its nearby values;
- a bound on what appearance can add in this tracker: the preset, with
  appearance for lost tracks too (and also with long memory and a wide
  gate), fed near-oracle vectors (one direction per ground-truth identity plus noise,
  a random direction for a detection matching no identity);
- association speed at 30 objects (synthetic scene, 1280-d vectors, the
  fused and DeepSORT strategies timed alternately in this process).

Usage::

    python benchmarks/association.py --weights ../shared/weights/mobilenet_v2_imagenet_features.pth \\
        [--osnet-weights ../shared/weights/osnet_x0_25_msmt17.pth] [--data ../shared/data] \\
        [--out benchmarks/results]

Writes ``association.json`` and ``association.md`` into ``--out``.
"""

from __future__ import annotations

import os

if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small products; see peers.py

import argparse
import copy
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostinfo import cpu_model
from sweep import METRICS, RUNS, apply

from deeptrack import Tracker
from deeptrack.boxes import iou_matrix
from deeptrack.config import RunConfig, default_cache_dir, load_yaml, to_dict
from deeptrack.eval import evaluate_sequence
from deeptrack.io.mot import write_atomic
from deeptrack.io.sequence import Sequence, load_sequence
from deeptrack.pipeline import run_sequence, sequence_features
from deeptrack.synthetic import make_scene

REPO = Path(__file__).resolve().parents[1]

#: (name, settings applied to the preset, whether to run it on motion alone too).
VARIANTS: list[tuple[str, dict[str, Any], bool]] = [
    ("preset (fused, calibrated)", {}, True),
    ("DeepSORT cascade (configs/deepsort.yaml)", {"preset": "deepsort.yaml"}, True),
    ("raw cosine instead of calibrated", {"tracker.appearance_evidence": "cosine"}, False),
    ("appearance for lost tracks too", {"tracker.lost_appearance": True}, False),
    ("appearance for lost tracks too, raw cosine", {"tracker.lost_appearance": True,
                                                    "tracker.appearance_evidence": "cosine"},
     False),
    ("recent first, then all lost at once", {"tracker.fused_levels": 2}, True),
    ("EMA memory instead of gallery", {"tracker.appearance_memory": "ema"}, False),
    ("+ low-score stage (ByteTrack)", {"tracker.low_score_stage": True}, True),
    ("+ low-score stage, score cut 0.3", {"tracker.low_score_stage": True,
                                          "tracker.min_score_quantile": 0.3}, True),
    ("output predicted gaps up to 2", {"tracker.output_max_gap": 2}, True),
    ("iou_weight 0.4", {"tracker.iou_weight": 0.4}, False),
    ("iou_weight 0.6", {"tracker.iou_weight": 0.6}, False),
    ("fused_max_cost 0.55", {"tracker.fused_max_cost": 0.55}, True),
    ("fused_max_cost 0.65", {"tracker.fused_max_cost": 0.65}, True),
    ("max_age 60", {"tracker.max_age": 60}, True),
    ("max_age 100, wide gate (chi2 100)", {"tracker.max_age": 100,
                                           "tracker.gating_threshold": 100.0}, True),
    ("OFFLINE: interpolate gaps up to 10", {"run.interpolate_max_gap": 10}, True),
    ("OFFLINE: interpolate gaps up to 20", {"run.interpolate_max_gap": 20}, True),
]


def run_one(cfg: RunConfig, seq_path: Path, det_file: str, cache: dict) -> dict[str, float]:
    """Track one run with ``cfg`` and score it; one run's RoI maps are kept in ``cache``."""
    seq = load_sequence(seq_path, det_file=det_file, min_confidence=cfg.min_confidence)
    features = None
    if cfg.use_appearance:
        key = (str(seq_path), det_file, cfg.min_confidence, json.dumps(to_dict(cfg.appearance)))
        if key not in cache:
            cache.clear()  # one run's maps at a time: ADL-Rundle-6's are 0.6 GB
            cache[key] = sequence_features(seq, cfg.appearance)
        features = cache[key]
    return evaluate(seq, run_sequence(seq, cfg, features=features))


def evaluate(seq: Sequence, run) -> dict[str, float]:
    m = evaluate_sequence(seq.gt, run.results, name=seq.name, path=seq.path).to_dict()
    return {k: 100.0 * m[k] for k in METRICS} | {"idsw": m["idsw"]}


def oracle_embeddings(seq: Sequence, noise: float, seed: int = 0,
                      dim: int = 256) -> list[np.ndarray]:
    """Per-frame vectors: one direction per ground-truth identity (IoU >= 0.5) plus noise."""
    rng = np.random.default_rng(seed)
    gt, ids, out = seq.gt, {}, []
    for f in seq.frames.tolist():
        d = seq.detections(f)
        e = rng.normal(size=(len(d), dim)) * noise / np.sqrt(dim)
        m = gt.frame == f
        if len(d) and m.any():
            iou = iou_matrix(d.boxes, gt.boxes[m])
            best = iou.argmax(axis=1)
            for i in np.flatnonzero(iou[np.arange(len(d)), best] >= 0.5).tolist():
                e[i, ids.setdefault(int(gt.track_id[m][best[i]]), len(ids)) % dim] += 1.0
        unmatched = ~e.any(axis=1)
        e[unmatched] = rng.normal(size=(int(unmatched.sum()), dim))
        out.append(e.astype(np.float32))
    return out


#: Variants of the OSNet preset (``--osnet-weights``; configs/fused_osnet.yaml: OSNet
#: x0.25 on 256x128 crops, appearance for lost tracks too, max_age 100, chi-square gate 30).
OSNET_VARIANTS: list[tuple[str, dict[str, Any], bool]] = [
    ("OSNet preset (configs/fused_osnet.yaml)", {}, True),
    ("OSNet, max_age 60", {"tracker.max_age": 60}, False),
    ("OSNet, max_age 150", {"tracker.max_age": 150}, False),
    ("OSNet, chi2 gate 100", {"tracker.gating_threshold": 100.0}, False),
    ("OSNet, max_age 30, chi2 gate 9.49 (DeepSORT's)", {"tracker.max_age": 30,
                                                       "tracker.gating_threshold": 9.4877},
     False),
    ("OSNet, no appearance for lost tracks", {"tracker.lost_appearance": False}, False),
]

#: Lifecycles the near-oracle vectors run in: appearance used for lost tracks too, and
#: also with long memory and a wide gate (where perfect appearance has the most to do).
ORACLE_VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("lost tracks too", {"tracker.lost_appearance": True}),
    ("lost tracks too, max_age 100, wide gate", {
        "tracker.lost_appearance": True, "tracker.max_age": 100,
        "tracker.gating_threshold": 100.0}),
]


def run_variants(base: RunConfig, data: Path, osnet: RunConfig | None) -> list[dict[str, Any]]:
    rows, cache = [], {}
    deepsort = load_yaml(REPO / "configs" / "deepsort.yaml")
    deepsort = dataclasses.replace(deepsort, appearance=base.appearance)
    variants = [(n, s, m, base) for n, s, m in VARIANTS]
    if osnet is not None:
        variants += [(n, s, m, osnet) for n, s, m in OSNET_VARIANTS]
    for seq_name, det in RUNS:
        for name, setting, motion_too, preset in variants:
            setting = dict(setting)
            cfg = deepsort if setting.pop("preset", None) else preset
            cfg = apply(cfg, setting)
            for use in (True, False) if motion_too else (True,):
                start = time.perf_counter()
                m = run_one(dataclasses.replace(cfg, use_appearance=use), data / seq_name, det,
                            cache)
                rows.append({"variant": name, "appearance": use, "run": f"{Path(seq_name).name}/"
                             f"{det}", **m, "seconds": round(time.perf_counter() - start, 2)})
                print(f"{rows[-1]['run']:<28} {name:<42} {'app' if use else 'motion'} "
                      f"IDF1 {m['idf1']:.2f} HOTA {m['hota']:.2f}", file=sys.stderr, flush=True)
    return rows


def run_oracle(base: RunConfig, data: Path, noises=(0.5, 1.0, 2.0)) -> list[dict[str, Any]]:
    """The preset on near-oracle vectors, in each of :data:`ORACLE_VARIANTS`' lifecycles."""
    rows = []
    for seq_name, det in RUNS:
        seq = load_sequence(data / seq_name, det_file=det, min_confidence=base.min_confidence)
        for noise in noises:
            vectors = oracle_embeddings(seq, noise)
            for label, setting in ORACLE_VARIANTS:
                run = run_sequence(seq, apply(base, setting), embeddings=vectors)
                rows.append({"variant": f"near-oracle vectors ({label}), noise {noise}",
                             "appearance": True,
                             "run": f"{Path(seq_name).name}/{det}", **evaluate(seq, run)})
    return rows


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: dict[tuple[str, bool], dict[str, Any]] = {}
    for r in rows:
        s = out.setdefault((r["variant"], r["appearance"]),
                           {"variant": r["variant"], "appearance": r["appearance"], "runs": {}})
        s["runs"][r["run"]] = {k: r[k] for k in (*METRICS, "idsw")}
    for s in out.values():
        for k in METRICS:
            s[f"mean_{k}"] = float(np.mean([v[k] for v in s["runs"].values()]))
    return list(out.values())


def peers(path: Path) -> dict[str, Any] | None:
    """Best single peer on the mean, and the best peer of each run, from peers.json."""
    if not path.is_file():
        return None
    p = json.loads(path.read_text())
    names = [n for n in p["mean_over_runs"] if not n.startswith("deeptrack")]
    best = max(names, key=lambda n: p["mean_over_runs"][n]["idf1"])
    per_run = {}
    for run in p["runs"]:
        key = f"{run['sequence']}/{run['det_file']}"
        cand = {n: v for n, v in run["results"].items() if n in names}
        top = max(cand, key=lambda n: cand[n]["idf1"])
        per_run[key] = {"peer": top, "idf1": 100 * cand[top]["idf1"],
                        "hota": 100 * cand[top]["hota"]}
    return {"best": best, "idf1": 100 * p["mean_over_runs"][best]["idf1"],
            "hota": 100 * p["mean_over_runs"][best]["hota"], "per_run": per_run,
            "source": f"{path.name} ({p.get('date', '?')})"}


def speed(objects: int = 30, frames: int = 200, warmup: int = 150, repeats: int = 5,
          base: RunConfig | None = None) -> dict[str, float]:
    """Frames/s of update() for the fused and DeepSORT strategies, timed alternately."""
    from deeptrack import TrackerConfig

    scene = make_scene(objects, warmup + frames, seed=0, embedding_dim=1280, fp_per_frame=2,
                       p_miss=0.05)
    configs = {"fused": base.tracker if base else TrackerConfig(association="fused"),
               "deepsort": load_yaml(REPO / "configs" / "deepsort.yaml").tracker}
    warm = {}
    for name, cfg in configs.items():
        t = Tracker(cfg)
        for f in scene.frames[:warmup]:
            t.update(f.boxes, f.scores, f.embeddings)
        warm[name] = t
    best = {name: float("inf") for name in configs}
    for _ in range(repeats):
        for name in configs:
            t = copy.deepcopy(warm[name])
            start = time.perf_counter()
            for f in scene.frames[warmup:]:
                t.update(f.boxes, f.scores, f.embeddings)
            best[name] = min(best[name], time.perf_counter() - start)
    fps = {name: frames / s for name, s in best.items()}
    return {"objects": objects, "fused_fps": fps["fused"], "deepsort_fps": fps["deepsort"],
            "fused_over_deepsort_time": best["fused"] / best["deepsort"]}


def render(summary, peer, spd, command, host) -> str:
    runs = [f"{Path(s).name}/{d}" for s, d in RUNS]
    lines = [f"Command: `{command}`", "",
             (f"Machine: {host.get('cpu', '?')}, {host.get('cores', '?')} cores; "
              f"load at end {host.get('load_average_1_5_15_min_at_end', '?')}."), "",
             ("Cells: IDF1 / HOTA (percent). Each row is the default preset "
              "(configs/fused.yaml) with one change; *motion* is the same row without "
              "appearance. Δ: appearance minus motion on the mean."), "",
             ("| variant | features | " + " | ".join(runs) + " | mean IDF1 | mean HOTA | Δ IDF1 "
              "| Δ HOTA |"), "|---|---|" + "---|" * (len(runs) + 4)]
    by = {(s["variant"], s["appearance"]): s for s in summary}
    for s in summary:
        cells = [f"{s['runs'][r]['idf1']:.2f} / {s['runs'][r]['hota']:.2f}" for r in runs]
        other = by.get((s["variant"], False)) if s["appearance"] else None
        delta = (f"{s['mean_idf1'] - other['mean_idf1']:+.2f} | "
                 f"{s['mean_hota'] - other['mean_hota']:+.2f}") if other else " | "
        feats = "RoI"
        if not s["appearance"]:
            feats = "motion"
        elif s["variant"].startswith("near-oracle"):
            feats = "oracle"
        elif s["variant"].startswith("OSNet"):
            feats = "OSNet"
        lines.append(f"| {s['variant']} | {feats} | " + " | ".join(cells) +
                     f" | {s['mean_idf1']:.2f} | {s['mean_hota']:.2f} | {delta} |")
    if peer:
        presets = [(n, by[(n, True)]) for n in ("preset (fused, calibrated)",
                                                 "OSNet preset (configs/fused_osnet.yaml)")
                   if (n, True) in by]
        lines += ["", (f"Peers ({peer['source']}): best single peer on the mean "
                       f"**{peer['best']}** {peer['idf1']:.2f} / {peer['hota']:.2f}. "
                       + "; ".join(f"{n}: {p['mean_idf1'] - peer['idf1']:+.2f} IDF1, "
                                   f"{p['mean_hota'] - peer['hota']:+.2f} HOTA from it"
                                   for n, p in presets) + "."), "",
                  ("| run | best peer | its IDF1 / HOTA | "
                   + " | ".join(f"{n} - peer (IDF1 / HOTA)" for n, _ in presets) + " |"),
                  "|---|---|---|" + "---|" * len(presets)]
        for r in runs:
            p = peer["per_run"].get(r)
            if p is None:
                continue
            cells = [f"{m['runs'][r]['idf1'] - p['idf1']:+.2f} / "
                     f"{m['runs'][r]['hota'] - p['hota']:+.2f}" for _, m in presets]
            lines.append(f"| {r} | {p['peer']} | {p['idf1']:.2f} / {p['hota']:.2f} | "
                         + " | ".join(cells) + " |")
    if spd:
        lines += ["", (f"Association speed at {spd['objects']} objects (synthetic, 1280-d, "
                       f"best of alternated repeats): fused {spd['fused_fps']:.0f} frames/s, "
                       f"DeepSORT {spd['deepsort_fps']:.0f} frames/s; fused takes "
                       f"{spd['fused_over_deepsort_time']:.2f}x DeepSORT's time.")]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(REPO / "configs" / "fused.yaml"))
    p.add_argument("--weights", help="MobileNetV2 weights file (required unless --from-json)")
    p.add_argument("--data", default=os.environ.get("DEEPTRACK_DATA", REPO.parent / "shared"
                                                    / "data"))
    p.add_argument("--osnet-weights", default=None,
                   help="OSNet x0.25 weights (.pth): adds the re-ID feature variants")
    p.add_argument("--peers", default=str(REPO / "benchmarks" / "results" / "peers.json"))
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    p.add_argument("--from-json", type=Path, default=None,
                   help="re-render association.md from a recorded association.json and the "
                        "current --peers file, without running anything")
    args = p.parse_args(argv)
    if args.from_json:
        rec = json.loads(args.from_json.read_text())
        # The peers are read again: peers.json may have been recorded since.
        md = render(rec["summary"], peers(Path(args.peers)), rec["speed"], rec["command"],
                    rec["machine"])
        write_atomic(Path(args.out) / "association.md", md)
        print(md)
        return 0
    if not args.weights:
        p.error("--weights is required")
    base = load_yaml(args.config)
    base = dataclasses.replace(base, appearance=dataclasses.replace(
        base.appearance, cache_dir=str(default_cache_dir()), weights=args.weights))
    data = Path(args.data)
    start = time.perf_counter()
    osnet = None
    if args.osnet_weights:
        osnet = load_yaml(REPO / "configs" / "fused_osnet.yaml")
        osnet = dataclasses.replace(osnet, appearance=dataclasses.replace(
            osnet.appearance, cache_dir=str(default_cache_dir()), weights=args.osnet_weights))
    rows = run_variants(base, data, osnet) + run_oracle(base, data)
    summary = summarise(rows)
    spd = speed(base=base)
    peer = peers(Path(args.peers))
    command = "python benchmarks/association.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    host = {"cpu": cpu_model(), "cores": os.cpu_count(),
            "load_average_1_5_15_min_at_end": [round(x, 2) for x in os.getloadavg()]}
    out = Path(args.out)
    write_atomic(out / "association.json", json.dumps(
        {"command": command, "machine": host, "elapsed_seconds": round(
            time.perf_counter() - start, 1), "rows": rows, "summary": summary,
         "peers": peer, "speed": spd}, indent=2, default=str))
    md = render(summary, peer, spd, command, host)
    write_atomic(out / "association.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
