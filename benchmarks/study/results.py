"""The study's results as one JSON-able dict: settings, the machine, AUC, tracking, every run."""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from deeptrack import __version__
from deeptrack.config import to_dict
from study.common import METRICS
from study.run import PAIR_SEED, RunRecord, Study

REPO = Path(__file__).resolve().parents[2]
#: The per-run numbers the tracking table shows, and their mean and range.
TRACKING_KEYS = ("idf1", "hota", "mota")


def run_label(rec: RunRecord) -> str:
    return f"{rec.sequence}/{rec.det_file}"


def spread(records: list[RunRecord]) -> dict[str, Any]:
    """Per run IDF1/HOTA/MOTA/IDsw, and the mean, min and max of each over the runs."""
    per_run = {run_label(r): {k: r.metrics.to_dict()[k] for k in (*TRACKING_KEYS, "idsw")}
               for r in records}
    out: dict[str, Any] = {"runs": per_run}
    for k in TRACKING_KEYS:
        values = [v[k] for v in per_run.values()]
        out[k] = {"mean": float(np.mean(values)), "min": float(np.min(values)),
                  "max": float(np.max(values))}
    out["embedding_dim"] = records[0].dim
    out["ms_per_frame"] = round(sum(r.ms_per_frame * r.frames for r in records)
                                / max(sum(r.frames for r in records), 1), 3)
    return out


def assemble(study: Study, elapsed: float) -> dict[str, Any]:
    """Gather everything the report and the plots are rendered from."""
    groups: dict[tuple, list[RunRecord]] = {}
    for rec in study.records.values():
        groups.setdefault((rec.backbone, rec.mode, rec.adaptation, rec.lifecycle), []).append(rec)
    labels = {a.backbone.name: a.backbone.label for a in study.arms}
    tracking = [{"backbone": b, "label": labels.get(b, "motion only"), "mode": m,
                 "adaptation": a, "lifecycle": lc, **spread(recs)}
                for (b, m, a, lc), recs in groups.items()]
    return {
        "command": _command(),
        "elapsed_seconds": round(elapsed, 1),
        "machine": machine(),
        "settings": _settings(study),
        "backbones": [{"name": a.backbone.name, "label": a.backbone.label,
                       "preset": f"configs/{a.backbone.preset}",
                       "appearance": to_dict(a.appearance), "layer": a.main_layer,
                       "preset_head": to_dict(a.preset.head),
                       "modes": [{"name": m.name, "pooling": m.pooling, **m.params,
                                  "layer": a.layer(m)} for m in a.modes]}
                      for a in study.arms],
        "adaptations": study.adaptations,
        "extraction_seconds": study.extraction_seconds,
        "identity_separation": study.auc,
        "tracked_modes": study.tracked,
        "tracking": tracking,
        "runs": [r.row() for r in study.records.values()],
    }


def _command() -> str:
    return "python " + " ".join(shlex.quote(a) for a in [
        os.path.relpath(sys.argv[0], Path.cwd()) if sys.argv[0] else "benchmarks/pooling_study.py",
        *sys.argv[1:]])


def _settings(study: Study) -> dict[str, Any]:
    args = study.args
    return {
        "data": str(args.data), "weights": str(args.weights),
        "image_scale_override": args.image_scale,
        "cache": None if args.no_cache else str(args.cache),
        "det_sets": {s.name: s.min_confidence for s in study.sequences},
        "det_sets_arg": args.det_sets, "quick": bool(args.quick), "top": args.top,
        "pair_window_frames": args.pair_window, "max_pairs_per_side": args.pairs,
        "pair_seed": PAIR_SEED,
        "lifecycles": {a.backbone.preset: to_dict(a.preset.tracker) for a in study.arms},
        "frame_rates": {s.name: s.first.frame_rate for s in study.sequences},
    }


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
        return tuple(r.get(k) for k in ("sequence", "det_file", "backbone", "mode",
                                        "adaptation", "lifecycle"))

    before = {key(r): r for r in old.get("runs", [])}
    fields = [*METRICS, "embedding_dim"]
    differ = [" / ".join(str(x) for x in key(r)) for r in res["runs"]
              if key(r) in before and any(before[key(r)][f] != r[f] for f in fields)]
    matched = sum(key(r) in before for r in res["runs"])
    auc_same = old.get("identity_separation") == res["identity_separation"]
    return {"compared": matched, "runs_total": len(res["runs"]), "different": differ,
            "auc_identical": auc_same, "previous_elapsed_seconds": old.get("elapsed_seconds"),
            "all_identical": not differ and matched == len(res["runs"]) and auc_same}
