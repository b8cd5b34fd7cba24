"""What runs: every tracking run of the study, memoised, and the study's phases in order."""

from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deeptrack.config import AppearanceConfig, RunConfig, TrackerConfig
from deeptrack.pipeline import TrackRun, run_sequence
from study.common import (
    ALL_MODES,
    BASELINE,
    FIXED_THRESHOLDS,
    FULL_GRID,
    METRICS,
    QUICK_GRID,
    QUICK_MODES,
    Mode,
    StudyError,
    log,
)
from study.data import (
    StudySequence,
    extract_maps,
    load_study_sequences,
    parse_det_sets,
    pca_vectors,
    pool_all,
)
from study.separation import identity_auc

#: Seeds of the pair subsampling and of the PCA fits (recorded in the results).
PAIR_SEED = 0
PCA_SEED = 0


@dataclass
class RunRecord:
    """One tracking run and its scores."""

    sequence: str
    det_file: str
    layer: str
    mode: str
    threshold: float | None
    metrics: Any  # deeptrack.eval.SequenceMetrics
    dim: int
    ms_per_frame: float
    peak_gallery_bytes: int
    frames: int
    note: str = ""

    def row(self) -> dict[str, Any]:
        m = self.metrics.to_dict()
        return {"sequence": self.sequence, "det_file": self.det_file, "layer": self.layer,
                "mode": self.mode, "max_cosine_distance": self.threshold,
                **{k: m[k] for k in METRICS}, "embedding_dim": self.dim,
                "ms_per_frame": round(self.ms_per_frame, 3),
                "peak_gallery_mb": round(self.peak_gallery_bytes / 1e6, 3),
                "frames": self.frames, **({"note": self.note} if self.note else {})}


class Runner:
    """Runs (and remembers) tracking runs of the study on prepared sequences."""

    def __init__(self, sequences: list[StudySequence], base: TrackerConfig,
                 pca_seed: int = PCA_SEED):
        self.sequences = {s.name: s for s in sequences}
        self.base = base
        self.pca_seed = pca_seed
        self.records: dict[tuple, RunRecord] = {}
        self._pca: dict[tuple, tuple[list[NDArray[np.float32]], dict[str, Any]]] = {}
        self.pca_info: dict[str, dict[str, Any]] = {}

    def config(self, mode: Mode, threshold: float | None) -> RunConfig:
        """The run of ``mode`` at ``threshold`` (RoI maps come from the study, not a backbone)."""
        if not mode.appearance:
            return RunConfig(tracker=self.base, use_appearance=False)
        tracker = (self.base if threshold is None else
                   dataclasses.replace(self.base, max_cosine_distance=float(threshold)))
        return RunConfig(tracker=tracker, head=mode.head(), use_appearance=True)

    def _pca_embeddings(self, seq: StudySequence, det_file: str, layer: str, mode: Mode):
        key = (seq.name, det_file, layer, mode.name)
        if key not in self._pca:
            start = time.perf_counter()
            frame_maps = seq.maps[layer][det_file]
            reducer, projected = pca_vectors(frame_maps, mode, self.pca_seed)
            counts = np.cumsum([0, *(len(m) for m in frame_maps)])
            k = projected.shape[1]
            per_frame = [projected[counts[i]:counts[i + 1]] if counts[i + 1] > counts[i]
                         else np.zeros((0, k), np.float32) for i in range(len(frame_maps))]
            evr = reducer.explained_variance_ratio_
            info = {"components": int(k), "fitted_on": len(projected),
                    "explained_variance": round(float(np.sum(evr)), 4),
                    "seconds": round(time.perf_counter() - start, 2)}
            self._pca[key] = (per_frame, info)
            self.pca_info[f"{seq.name}/{det_file}/{layer}/{mode.name}"] = info
        return self._pca[key]

    def run(self, seq_name: str, det_file: str, layer: str, mode: Mode,
            threshold: float | None) -> RunRecord:
        """Track one sequence with one detection set, layer, mode and threshold (memoised)."""
        from deeptrack.eval import evaluate_sequence

        if not mode.appearance:
            threshold, layer = None, "-"
        key = (seq_name, det_file, layer, mode.name, threshold)
        if key in self.records:
            return self.records[key]
        seq = self.sequences[seq_name]
        data = seq.runs[det_file]
        cfg = self.config(mode, threshold)
        note = ""
        if mode.pca_dim is not None:
            embeddings, info = self._pca_embeddings(seq, det_file, layer, mode)
            run = run_sequence(data, cfg, embeddings=embeddings)
            note = (f"PCA fitted offline on the sequence's {info['fitted_on']} flattened "
                    f"maps ({info['seconds']} s, not in ms/frame)")
        else:
            run = run_sequence(data, cfg, features=seq.maps[layer][det_file]
                               if mode.appearance else None)
        metrics = evaluate_sequence(data.gt, run.results, name=seq.name, path=data.path)
        rec = RunRecord(seq_name, det_file, layer, mode.name, threshold, metrics,
                        self._dim(run, mode, seq, layer, det_file), run.ms_per_frame,
                        run.peak_gallery_bytes, run.frames, note)
        self.records[key] = rec
        return rec

    @staticmethod
    def _dim(run: TrackRun, mode: Mode, seq: StudySequence, layer: str, det_file: str) -> int:
        if run.embedding_dim or not mode.appearance:
            return int(run.embedding_dim)
        from deeptrack.appearance import EmbeddingHead

        shape = next((m.shape for m in seq.maps[layer][det_file] if len(m)), None)
        if shape is None:
            return 0
        return EmbeddingHead(mode.head()).out_dim(shape[1], shape[2], shape[3])


# ---------------------------------------------------------------- the reference tracker


def run_baseline(seq: StudySequence, det_file: str, layer: str, threshold: float,
                 budget: int) -> RunRecord | None:
    """deep-sort-realtime on the same detections and avg-pooled embeddings; None if absent."""
    try:
        from deep_sort_realtime.deepsort_tracker import DeepSort
    except ImportError:
        return None
    from deeptrack.eval import evaluate_sequence

    data = seq.runs[det_file]
    tracker = DeepSort(max_age=30, n_init=3, nn_budget=budget, max_cosine_distance=threshold,
                       max_iou_distance=0.7, embedder=None)
    maps = seq.maps[layer][det_file]
    results, elapsed, peak = _track_baseline(tracker, data, maps)
    metrics = evaluate_sequence(data.gt, results, name=seq.name, path=data.path)
    dim = next((m.shape[1] for m in maps if len(m)), 0)
    return RunRecord(seq.name, det_file, layer, BASELINE, threshold, metrics, int(dim),
                     1000.0 * elapsed / max(len(data), 1), peak, len(data),
                     "max_age=30, n_init=3 in frames at every frame rate")


def _track_baseline(tracker, data, maps):
    """Feed deep-sort-realtime frame by frame; return its results, update time and peak memory."""
    from deeptrack.boxes import xyxy_to_tlwh
    from deeptrack.io.mot import TrackResults

    avg = Mode("avg", "avg")
    frames, ids, boxes, scores = [], [], [], []
    elapsed, peak = 0.0, 0
    for i, frame in enumerate(data.frames):
        dets = data.detections(int(frame))
        raw = [(list(b), float(s), "person") for b, s in zip(xyxy_to_tlwh(dets.boxes), dets.scores)]
        start = time.perf_counter()
        embeds = list(pool_all([maps[i]], avg)) if len(dets) else []
        tracks = tracker.update_tracks(raw, embeds=embeds)
        elapsed += time.perf_counter() - start
        for t in tracks:
            # Like deeptrack's output: confirmed tracks updated this frame, Kalman box.
            if t.is_confirmed() and t.time_since_update == 0:
                ltrb = np.asarray(t.to_ltrb(), np.float64)
                if ltrb[2] > ltrb[0] and ltrb[3] > ltrb[1]:
                    frames.append(int(frame))
                    ids.append(int(t.track_id))
                    boxes.append(ltrb)
                    scores.append(float(t.get_det_conf() or 0.0)
                                  if hasattr(t, "get_det_conf") else 1.0)
        peak = max(peak, sum(int(np.asarray(f).nbytes) for feats in
                             tracker.tracker.metric.samples.values() for f in feats))
    results = TrackResults(np.asarray(frames, np.int64), np.asarray(ids, np.int64),
                           np.asarray(boxes, np.float64).reshape(-1, 4),
                           np.asarray(scores, np.float64))
    return results, elapsed, peak


# ---------------------------------------------------------------- the study's phases


@dataclass
class Study:
    """What the phases share: the inputs, the settings, and the results as they come in."""

    args: argparse.Namespace
    sequences: list[StudySequence]
    tune_seq: StudySequence
    modes: list[Mode]
    grid: tuple[float, ...]
    appearance: AppearanceConfig
    main_layer: str
    runner: Runner
    tuning: dict[str, dict[float, dict[str, Any]]] = dataclasses.field(default_factory=dict)
    tuned: dict[str, float | None] = dataclasses.field(default_factory=dict)
    auc: dict[str, Any] = dataclasses.field(default_factory=dict)
    baseline: list[RunRecord] = dataclasses.field(default_factory=list)
    top: list[Mode] = dataclasses.field(default_factory=list)
    layer_tuning: dict[str, dict[str, dict[float, dict[str, Any]]]] = dataclasses.field(
        default_factory=dict)
    layer_tuned: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)

    @property
    def combos(self) -> list[tuple[str, str]]:
        """Every (sequence, detection file) run."""
        return [(s.name, d) for s in self.sequences for d in s.runs]

    def tune(self, mode: Mode, layer: str) -> tuple[dict[float, dict[str, Any]], float]:
        """Run the tuning run at every grid threshold; return the rows and the best threshold."""
        rows = {thr: self.runner.run(self.tune_seq.name, self.args.tune_det, layer, mode,
                                     thr).row() for thr in self.grid}
        return rows, best_threshold(rows, self.args.tune_metric)


def best_threshold(results: dict[float, dict[str, Any]], metric: str) -> float:
    """The threshold of the highest ``metric``; ties go to HOTA, then to the smaller value."""
    return min(results, key=lambda t: (-results[t][metric], -results[t]["hota"], t))


def prepare(args: argparse.Namespace):
    """Load the sequences, check the tuning run, build the embedder; return a Study and it."""
    from deeptrack.appearance.embedder import RoIEmbedder

    names = [s.strip() for s in args.sequences.split(",") if s.strip()] if args.sequences else None
    sequences = load_study_sequences(Path(args.data), names, parse_det_sets(args.det_sets))
    tune_seq = next((s for s in sequences if s.name == args.tune_sequence), None)
    if tune_seq is None or args.tune_det not in tune_seq.runs:
        raise StudyError(f"tuning run {args.tune_sequence}/{args.tune_det} is not among the "
                         f"sequences and detection files studied (--tune-sequence, --tune-det)")
    modes = [m for m in ALL_MODES if not args.quick or m.name in QUICK_MODES]
    grid = tuple(sorted(set(QUICK_GRID if args.quick else FULL_GRID) | set(FIXED_THRESHOLDS)))
    weights = None if args.weights == "random" else str(args.weights)
    appearance = AppearanceConfig(backbone=args.backbone, weights=weights, layer=args.layer,
                                  image_scale=args.image_scale, batch_size=args.batch_size,
                                  cache_dir=None if args.no_cache else str(args.cache))
    embedder = RoIEmbedder(appearance)
    study = Study(args, sequences, tune_seq, modes, grid, appearance, embedder.spec.layer,
                  Runner(sequences, TrackerConfig()))
    return study, embedder


def run_study(args: argparse.Namespace) -> dict[str, Any]:
    """Run everything; return the JSON-able results."""
    from study.results import assemble, box_cells

    t_start = time.perf_counter()
    study, embedder = prepare(args)
    log(f"{len(study.sequences)} sequence(s): " + ", ".join(
        f"{s.name} ({', '.join(s.runs)})" for s in study.sequences))
    # 1. RoI maps: one backbone pass per frame per layer, all box sets at once.
    log(f"RoI maps, {args.backbone} {study.main_layer}, image scale {args.image_scale}")
    for seq in study.sequences:
        extract_maps(seq, study.appearance, embedder)
    del embedder
    # 2. Identity separation on ground-truth boxes.
    log("identity separation (ROC AUC) on ground-truth boxes")
    study.auc[study.main_layer] = _auc(study, study.main_layer)
    tune_modes(study)
    run_everything(study)
    run_baselines(study)
    layer_axis(study)
    log("reproducibility: the tuning run again at every tuned threshold")
    repro = check_repro(study)
    res = assemble(study, repro, time.perf_counter() - t_start)
    res["gt_box_cells"] = box_cells(study.sequences, args,
                                    [study.main_layer, *study.layer_tuning])
    return res


def _auc(study: Study, layer: str) -> dict[str, Any]:
    return identity_auc(study.sequences, layer, study.modes, study.args.pair_window,
                        study.args.pairs, PAIR_SEED)


def tune_modes(study: Study) -> None:
    """Tune ``max_cosine_distance`` per mode on the one tuning run."""
    args = study.args
    log(f"tuning max_cosine_distance on {study.tune_seq.name}/{args.tune_det} by "
        f"{args.tune_metric}")
    for mode in study.modes:
        if not mode.appearance:
            study.tuned[mode.name] = None
            continue
        study.tuning[mode.name], study.tuned[mode.name] = study.tune(mode, study.main_layer)
        best = study.tuning[mode.name][study.tuned[mode.name]]
        log(f"  {mode.name:<22} tuned {study.tuned[mode.name]:.2f}: IDF1 "
            f"{100 * best['idf1']:.2f} HOTA {100 * best['hota']:.2f} "
            f"({best['ms_per_frame']:.1f} ms/frame)")


def run_everything(study: Study) -> None:
    """Every sequence x detection set x mode at the tuned threshold and the fixed ones."""
    log("all runs at the tuned and the fixed thresholds")
    for mode in study.modes:
        tuned = study.tuned[mode.name]
        thresholds = sorted({tuned, *FIXED_THRESHOLDS}) if mode.appearance else [tuned]
        for seq_name, det_file in study.combos:
            for thr in thresholds:
                study.runner.run(seq_name, det_file, study.main_layer, mode, thr)
        log(f"  {mode.name} done")


def run_baselines(study: Study) -> None:
    """deep-sort-realtime on every run at avg's tuned threshold and at 0.2 (if installed)."""
    thresholds = sorted({study.tuned["avg"], 0.2}) if "avg" in study.tuned else []
    for seq_name, det_file in study.combos:
        for thr in thresholds:
            rec = run_baseline(study.runner.sequences[seq_name], det_file, study.main_layer,
                               thr, study.runner.base.nn_budget)
            if rec is None:
                break
            study.baseline.append(rec)
    log(f"baseline: {len(study.baseline)} run(s)"
        + ("" if study.baseline or not thresholds else " (deep-sort-realtime not installed)"))


def layer_axis(study: Study) -> None:
    """The further layers for the two best modes (by the tuned result on the tuning run)."""
    from deeptrack.appearance.embedder import RoIEmbedder

    metric = study.args.tune_metric
    ranked = sorted((m for m in study.modes if m.appearance),
                    key=lambda m: (-study.tuning[m.name][study.tuned[m.name]][metric],
                                   -study.tuning[m.name][study.tuned[m.name]]["hota"]))
    study.top = ranked[:2]
    layers = [s.strip() for s in study.args.layer_axis.split(",") if s.strip()]
    for layer in layers:
        if layer == study.main_layer:
            continue
        log(f"layer axis: {layer} for {', '.join(m.name for m in study.top)}")
        emb = RoIEmbedder(dataclasses.replace(study.appearance, layer=layer))
        for seq in study.sequences:
            extract_maps(seq, study.appearance, emb)
        del emb
        study.auc[layer] = _auc(study, layer)
        study.layer_tuning[layer], study.layer_tuned[layer] = {}, {}
        for mode in study.top:
            rows, best = study.tune(mode, layer)
            study.layer_tuning[layer][mode.name], study.layer_tuned[layer][mode.name] = rows, best
            for seq_name, det_file in study.combos:
                study.runner.run(seq_name, det_file, layer, mode, best)
    study.layer_tuned[study.main_layer] = {m.name: study.tuned[m.name] for m in study.top}


def check_repro(study: Study) -> dict[str, Any]:
    """Re-run the tuning run of every mode on freshly loaded maps; compare the metrics."""
    from deeptrack.appearance.embedder import RoIEmbedder

    appearance, tune_seq, det = study.appearance, study.tune_seq, study.args.tune_det
    if appearance.cache_dir is None or appearance.weights is None:
        # Random weights are never cached (each model is new); without a cache
        # the check would only rerun the tracker on the same arrays.
        fresh_seq = tune_seq
        how = "same in-memory maps (no cache or random weights)"
    else:
        fresh_seq = dataclasses.replace(tune_seq, maps={}, extraction_seconds={})
        extract_maps(fresh_seq, appearance, RoIEmbedder(appearance))
        how = "maps loaded again from the feature cache"
    fresh = Runner([fresh_seq], study.runner.base)
    same, differ = [], []
    for mode in study.modes:
        thr = study.tuned[mode.name]
        a = study.runner.run(tune_seq.name, det, study.main_layer, mode, thr)
        b = fresh.run(tune_seq.name, det, study.main_layer, mode, thr)
        (same if a.metrics.to_dict() == b.metrics.to_dict() else differ).append(mode.name)
    return {"run": f"{tune_seq.name}/{det}", "how": how, "identical": same,
            "different": differ, "all_identical": not differ}
