"""The study's results as one JSON-able dict: summaries, settings, the machine, every run."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deeptrack import __version__
from deeptrack.config import AppearanceConfig, TrackerConfig, to_dict
from study.common import FIXED_THRESHOLDS, METRICS, Mode
from study.data import StudySequence
from study.run import PAIR_SEED, PCA_SEED, RunRecord, Study

REPO = Path(__file__).resolve().parents[2]


def combine(records: Sequence[RunRecord]) -> dict[str, Any]:
    """Counts summed over runs (the official way); ms/frame weighted by frames."""
    from deeptrack.eval.report import SequenceMetrics

    m = SequenceMetrics.combine([r.metrics for r in records]).to_dict()
    frames = sum(r.frames for r in records)
    return {**{k: m[k] for k in METRICS},
            "ms_per_frame": round(sum(r.ms_per_frame * r.frames for r in records)
                                  / max(frames, 1), 3),
            "peak_gallery_mb": round(max(r.peak_gallery_bytes for r in records) / 1e6, 3),
            "embedding_dim": records[0].dim, "runs": len(records)}


def assemble(study: Study, repro: dict[str, Any], elapsed: float) -> dict[str, Any]:
    """Gather everything the report and the plots are rendered from."""
    return {
        "command": _command(),
        "elapsed_seconds": round(elapsed, 1),
        "machine": machine(),
        "settings": _settings(study),
        "extraction_seconds": {s.name: {k: round(v, 1) for k, v in s.extraction_seconds.items()}
                               for s in study.sequences},
        "modes": [{"name": m.name, "pooling": m.pooling, **m.params,
                   **({"pca_dim": m.pca_dim} if m.pca_dim else {})} for m in study.modes],
        "tuned_thresholds": study.tuned,
        "tuning": {m: {str(t): row for t, row in res.items()} for m, res in study.tuning.items()},
        "summary": _summary(study),
        "baseline": _baseline_summary(study),
        "top_modes": [m.name for m in study.top],
        "layers": _layers(study),
        "layer_tuning": {lay: {m: {str(t): row for t, row in res.items()}
                               for m, res in v.items()} for lay, v in study.layer_tuning.items()},
        "identity_separation": study.auc,
        "pca": study.runner.pca_info,
        "reproducibility": repro,
        "runs": ([r.row() for r in study.runner.records.values()]
                 + [r.row() for r in study.baseline]),
    }


def _command() -> str:
    return "python " + " ".join(shlex.quote(a) for a in [
        os.path.relpath(sys.argv[0], Path.cwd()) if sys.argv[0] else "benchmarks/pooling_study.py",
        *sys.argv[1:]])


def _pick(study: Study, mode: Mode, thr: float | None, layer: str | None = None,
          where: Callable[[tuple[str, str]], bool] | None = None) -> list[RunRecord]:
    """The runs of ``mode`` at ``thr`` on ``layer`` (default: the main one) that ``where`` keeps."""
    lay = (layer or study.main_layer) if mode.appearance else "-"
    t = thr if mode.appearance else None
    return [r for r in study.runner.records.values()
            if r.mode == mode.name and r.layer == lay and r.threshold == t
            and (where is None or where((r.sequence, r.det_file)))]


def _det_files(study: Study) -> list[str]:
    return list(dict.fromkeys(d for _, d in study.combos))


def _tune_key(study: Study) -> tuple[str, str]:
    return (study.args.tune_sequence, study.args.tune_det)


def _summary(study: Study) -> dict[str, Any]:
    """Per mode at its tuned threshold: all runs, held-out runs, per detection file, fixed."""
    tune_key, several = _tune_key(study), len(study.combos) > 1
    summary = {}
    for mode in study.modes:
        thr = study.tuned[mode.name]
        entry = {"tuned_threshold": thr,
                 "all": combine(_pick(study, mode, thr)),
                 "held_out": (combine(_pick(study, mode, thr, where=lambda k: k != tune_key))
                              if several else None),
                 "per_det_file": {d: combine(_pick(study, mode, thr,
                                                   where=lambda k, d=d: k[1] == d))
                                  for d in _det_files(study)}}
        if mode.appearance:
            entry["fixed"] = {str(t): combine(_pick(study, mode, t)) for t in FIXED_THRESHOLDS}
        summary[mode.name] = entry
    return summary


def _baseline_summary(study: Study) -> dict[str, Any]:
    """deep-sort-realtime's runs combined per threshold, like a mode's."""
    tune_key, several = _tune_key(study), len(study.combos) > 1
    out = {}
    for thr in sorted({r.threshold for r in study.baseline}):
        group = [r for r in study.baseline if r.threshold == thr]
        out[str(thr)] = {
            "all": combine(group),
            "held_out": (combine([r for r in group if (r.sequence, r.det_file) != tune_key])
                         if several else None),
            "per_det_file": {d: combine([r for r in group if r.det_file == d])
                             for d in _det_files(study)}}
    return out


def _layers(study: Study) -> dict[str, Any]:
    """The layer axis: per layer (main first) and top mode, all runs and the tuning run."""
    tune_key = _tune_key(study)
    layers: dict[str, Any] = {}
    for layer in sorted(study.layer_tuned, key=lambda lay: lay != study.main_layer):
        layers[layer] = {}
        for name, thr in study.layer_tuned[layer].items():
            mode = next(m for m in study.modes if m.name == name)
            layers[layer][name] = {
                "tuned_threshold": thr, "all": combine(_pick(study, mode, thr, layer)),
                "tuning_run": next(r.row() for r in _pick(study, mode, thr, layer,
                                                          where=lambda k: k == tune_key))}
    return layers


def _settings(study: Study) -> dict[str, Any]:
    args, main = study.args, study.main_layer
    return {
        "data": str(args.data), "weights": str(args.weights), "backbone": args.backbone,
        "layer": main, "layer_axis": [main, *[x for x in study.layer_tuned if x != main]],
        "image_scale": args.image_scale, "roi_size": AppearanceConfig().roi_size,
        "cache": None if args.no_cache else str(args.cache),
        "det_sets": {s.name: s.min_confidence for s in study.sequences},
        "det_sets_arg": args.det_sets,
        "tuning_run": f"{args.tune_sequence}/{args.tune_det}",
        "tuning_metric": args.tune_metric, "threshold_grid": list(study.grid),
        "fixed_thresholds": list(FIXED_THRESHOLDS), "quick": bool(args.quick),
        "tracker": to_dict(TrackerConfig()), "head": "(per mode)",
        "pair_window_frames": args.pair_window, "max_pairs_per_side": args.pairs,
        "pair_seed": PAIR_SEED, "pca_seed": PCA_SEED,
        "frame_rates": {s.name: s.first.frame_rate for s in study.sequences},
    }


def box_cells(sequences: list[StudySequence], args: argparse.Namespace,
              layers: list[str]) -> dict[str, Any]:
    """Median ground-truth box width and height in cells of each layer's feature map.

    A box spanning few cells gives a 7 x 7 RoIAlign map that interpolates few
    distinct feature vectors, which limits what any pooling can tell apart.
    """
    from deeptrack.appearance.backbone import resolve_spec

    out: dict[str, Any] = {}
    for seq in sequences:
        w = seq.gt_boxes[:, 2] - seq.gt_boxes[:, 0]
        h = seq.gt_boxes[:, 3] - seq.gt_boxes[:, 1]
        med_w, med_h = (float(np.median(w)), float(np.median(h))) if len(w) else (0.0, 0.0)
        out[seq.name] = {"median_width_px": round(med_w, 1), "median_height_px": round(med_h, 1)}
        for layer in layers:
            stride = resolve_spec(args.backbone, layer).stride / args.image_scale
            out[seq.name][layer] = [round(med_w / stride, 2), round(med_h / stride, 2)]
    return out


def machine() -> dict[str, Any]:
    """The CPU, the library versions and the commit the numbers were made with."""
    import torch

    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "deeptrack_commit": _commit(),
            "torch_threads": torch.get_num_threads(),
            "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
            "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "platform": platform.platform(),
            "deeptrack": __version__}


def _cpu_model() -> str:
    model = platform.processor() or ""
    try:
        text = subprocess.run(["lscpu"], check=False, capture_output=True, text=True,
                              timeout=10).stdout
        model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines()
                      if ln.startswith("Model name")), model)
    except (OSError, subprocess.SubprocessError):
        pass
    return model


def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=False, cwd=REPO,
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "deeptrack"], check=False,
                               cwd=REPO, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not head:
        return "unknown"
    return head + (" + uncommitted changes in deeptrack/" if dirty.strip() else "")


def compare_previous(res: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any] | None:
    """Compare the accuracy numbers with an earlier run's JSON of the same settings."""
    if old is None:
        return None
    res = json.loads(json.dumps(res, default=str))  # compare as both are stored
    ignore = ("cache",)
    same_settings = ({k: v for k, v in old.get("settings", {}).items() if k not in ignore}
                     == {k: v for k, v in res["settings"].items() if k not in ignore})
    if not same_settings:
        return {"compared": 0, "note": "the previous JSON in --out had other settings"}

    def key(r: dict[str, Any]) -> tuple:
        return (r["sequence"], r["det_file"], r["layer"], r["mode"], r["max_cosine_distance"])

    before = {key(r): r for r in old.get("runs", [])}
    fields = [*METRICS, "embedding_dim"]
    differ = [" / ".join(str(x) for x in key(r)) for r in res["runs"]
              if key(r) in before and any(before[key(r)][f] != r[f] for f in fields)]
    matched = sum(key(r) in before for r in res["runs"])
    auc_same = old.get("identity_separation") == res["identity_separation"]
    return {"compared": matched, "runs_total": len(res["runs"]), "different": differ,
            "auc_identical": auc_same, "previous_elapsed_seconds": old.get("elapsed_seconds"),
            "all_identical": not differ and matched == len(res["runs"]) and auc_same}
