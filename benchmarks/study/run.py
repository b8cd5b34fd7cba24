"""What runs: RoI maps per backbone, identity separation, then the tracking runs, memoised."""

from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deeptrack.config import AppearanceConfig, RunConfig, load_yaml, to_dict
from deeptrack.pipeline import run_sequence
from study.common import (
    BACKBONE_NAMES,
    BACKBONES,
    METRICS,
    MOTION,
    Backbone,
    Mode,
    StudyError,
    log,
)
from study.data import StudySequence, extract_maps, load_study_sequences, parse_det_sets
from study.separation import identity_auc

#: Seed of the pair subsampling (recorded in the results).
PAIR_SEED = 0
REPO = Path(__file__).resolve().parents[2]


@dataclass
class RunRecord:
    """One tracking run and its scores."""

    sequence: str
    det_file: str
    backbone: str  # "-" for motion only
    mode: str
    adaptation: str
    lifecycle: str  # the preset whose tracker settings ran
    metrics: Any  # deeptrack.eval.SequenceMetrics
    dim: int
    ms_per_frame: float
    frames: int

    def row(self) -> dict[str, Any]:
        m = self.metrics.to_dict()
        return {"sequence": self.sequence, "det_file": self.det_file, "backbone": self.backbone,
                "mode": self.mode, "adaptation": self.adaptation, "lifecycle": self.lifecycle,
                **{k: m[k] for k in METRICS}, "embedding_dim": self.dim,
                "ms_per_frame": round(self.ms_per_frame, 3), "frames": self.frames}


@dataclass
class Arm:
    """One backbone as studied: its preset, its appearance settings, its modes."""

    backbone: Backbone
    preset: RunConfig  # tracker (lifecycle) and default head from configs/<preset>
    appearance: AppearanceConfig  # with the weights, cache and any --image-scale
    main_layer: str
    modes: list[Mode]

    def layer(self, mode: Mode) -> str:
        return mode.layer or self.main_layer

    def appearance_for(self, layer: str) -> AppearanceConfig:
        return (self.appearance if layer == self.main_layer
                else dataclasses.replace(self.appearance, layer=layer))

    @property
    def preset_mode(self) -> Mode | None:
        """The mode equal to the preset's own head (always tracked), if studied."""
        return next((m for m in self.modes
                     if m.layer is None and m.head() == self.preset.head), None)


@dataclass
class Study:
    """What the phases share: the inputs, the settings, and the results as they come in."""

    args: argparse.Namespace
    sequences: list[StudySequence]
    arms: list[Arm]
    adaptations: list[str]
    auc: dict[str, Any] = dataclasses.field(default_factory=dict)
    tracked: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    records: dict[tuple, RunRecord] = dataclasses.field(default_factory=dict)
    extraction_seconds: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)

    @property
    def combos(self) -> list[tuple[StudySequence, str]]:
        """Every (sequence, detection file) run."""
        return [(s, d) for s in self.sequences for d in s.runs]

    def track(self, arm: Arm | None, mode: Mode, adaptation: str, lifecycle: str,
              preset: RunConfig) -> list[RunRecord]:
        """Track every run with ``mode`` (maps of ``arm``) under ``preset``'s lifecycle."""
        from deeptrack.eval import evaluate_sequence

        out = []
        for seq, det_file in self.combos:
            key = (seq.name, det_file, arm.backbone.name if arm else "-", mode.name, adaptation,
                   lifecycle)
            if key not in self.records:
                data = seq.runs[det_file]
                cfg = run_config(preset, mode, adaptation)
                run = run_sequence(data, cfg, features=seq.maps[arm.layer(mode)][det_file]
                                   if mode.appearance else None)
                metrics = evaluate_sequence(data.gt, run.results, name=seq.name, path=data.path)
                self.records[key] = RunRecord(seq.name, det_file, key[2], mode.name, adaptation,
                                              lifecycle, metrics, int(run.embedding_dim),
                                              run.ms_per_frame, run.frames)
            out.append(self.records[key])
        return out


def run_config(preset: RunConfig, mode: Mode, adaptation: str) -> RunConfig:
    """``preset``'s tracker with ``adaptation``, pooling by ``mode`` (maps come from the study)."""
    tracker = dataclasses.replace(preset.tracker, adaptation=adaptation)
    if not mode.appearance:
        return RunConfig(tracker=tracker, use_appearance=False)
    return RunConfig(tracker=tracker, head=mode.head(), use_appearance=True)


def resolve_backbones(args: argparse.Namespace) -> list[Backbone]:
    """The ``--backbones`` asked for; by default every one whose weights file is found."""
    known = {b.name: b for b in BACKBONES}
    if args.backbones:
        names = [s.strip() for s in args.backbones.split(",") if s.strip()]
        unknown = [n for n in names if n not in known]
        if unknown or not names:
            raise StudyError(f"--backbones: {', '.join(unknown) or '(none)'} unknown "
                             f"(choose from {', '.join(BACKBONE_NAMES)})")
        chosen = [known[n] for n in dict.fromkeys(names)]
        missing = [b for b in chosen if not _has_weights(args, b)]
        if missing:
            raise StudyError(f"--backbones {missing[0].name}: weights file {missing[0].weights} "
                             f"not found in {args.weights} (--weights)")
        return chosen
    chosen = [b for b in BACKBONES if _has_weights(args, b)]
    if not chosen:
        files = ", ".join(dict.fromkeys(b.weights for b in BACKBONES))
        raise StudyError(f"no weights file of any backbone ({files}) in {args.weights} "
                         "(--weights)")
    return chosen


def _has_weights(args: argparse.Namespace, backbone: Backbone) -> bool:
    return args.weights == "random" or (Path(args.weights) / backbone.weights).is_file()


def resolve_adaptations(text: str) -> list[str]:
    from deeptrack.types import AdaptationMode

    names = [s.strip() for s in text.split(",") if s.strip()]
    # whiten keeps a DxD matrix and refuses the flatten modes' dimensions (up to 62,720):
    # every mode would need it; its AUC and tracking are in adaptation_auc.py and
    # adaptation_tracking.md for the presets' vectors.
    allowed = [m.value for m in AdaptationMode if m is not AdaptationMode.WHITEN]
    if AdaptationMode.WHITEN.value in names:
        raise StudyError("--adaptation: whiten is not studied here (the flatten modes exceed "
                         "its 4096-dimension cap); benchmarks/adaptation_auc.py measures it")
    bad = [n for n in names if n not in allowed]
    if bad or not names:
        raise StudyError(f"--adaptation: {', '.join(bad) or '(none)'} unknown "
                         f"(choose from {', '.join(allowed)})")
    return list(dict.fromkeys(names))


def prepare(args: argparse.Namespace) -> Study:
    """Check the axes, load the sequences and the presets; return the Study."""
    from deeptrack.appearance.backbone_specs import resolve_spec

    backbones = resolve_backbones(args)
    adaptations = resolve_adaptations(args.adaptation)
    names = [s.strip() for s in args.sequences.split(",") if s.strip()] if args.sequences else None
    sequences = load_study_sequences(Path(args.data), names, parse_det_sets(args.det_sets))
    arms = []
    for b in backbones:
        preset = load_yaml(REPO / "configs" / b.preset)
        changes: dict[str, Any] = {
            "weights": None if args.weights == "random" else str(Path(args.weights) / b.weights),
            "cache_dir": None if args.no_cache else str(args.cache)}
        if args.image_scale is not None:
            changes["image_scale"] = args.image_scale
        appearance = dataclasses.replace(preset.appearance, **changes)
        main = resolve_spec(appearance.backbone, appearance.layer, appearance.roi_size).layer
        arms.append(Arm(b, preset, appearance, main, b.modes(args.quick)))
    return Study(args, sequences, arms, adaptations)


def run_study(args: argparse.Namespace) -> dict[str, Any]:
    """Run everything; return the JSON-able results."""
    from study.results import assemble

    t_start = time.perf_counter()
    study = prepare(args)
    log(f"{len(study.sequences)} sequence(s): " + ", ".join(
        f"{s.name} ({', '.join(s.runs)})" for s in study.sequences)
        + f"; backbones {', '.join(a.backbone.name for a in study.arms)}; adaptation "
        + ", ".join(study.adaptations))
    for arm in study.arms:
        run_backbone(study, arm)
    lifecycles: dict[str, tuple[str, RunConfig]] = {}
    for arm in study.arms:  # motion only, once per distinct lifecycle
        key = repr(to_dict(arm.preset.tracker))
        if key in lifecycles:
            lifecycles[key] = (f"{lifecycles[key][0]}, {arm.backbone.preset}", arm.preset)
        else:
            lifecycles[key] = (arm.backbone.preset, arm.preset)
    for label, preset in lifecycles.values():
        log(f"motion only, lifecycle of {label}")
        study.track(None, MOTION, "none", label, preset)
    return assemble(study, time.perf_counter() - t_start)


def run_backbone(study: Study, arm: Arm) -> None:
    """One backbone: its maps, every mode's AUC, then the best modes tracked."""
    from deeptrack.appearance.embedder import RoIEmbedder

    args = study.args
    layers = list(dict.fromkeys(arm.layer(m) for m in arm.modes))
    for layer in layers:
        appearance = arm.appearance_for(layer)
        log(f"{arm.backbone.label}: maps of layer {layer}, image scale {appearance.image_scale}")
        embedder = RoIEmbedder(appearance)
        for seq in study.sequences:
            extract_maps(seq, appearance, embedder)
            study.extraction_seconds.setdefault(seq.name, {})[
                f"{arm.backbone.name} {layer}"] = round(seq.extraction_seconds[layer], 1)
        del embedder
    log(f"{arm.backbone.label}: identity separation (ROC AUC) on ground-truth boxes")
    auc = identity_auc(study.sequences, arm.modes, study.adaptations, args.pair_window,
                       args.pairs, PAIR_SEED, arm.layer, arm.preset.tracker.adaptation_prior)
    study.auc[arm.backbone.name] = auc
    top = rank_by_auc(auc, study.adaptations)[:args.top]
    own = arm.preset_mode
    if own is not None and own.name not in top:
        top.append(own.name)
    study.tracked[arm.backbone.name] = top
    for name in top:
        mode = next(m for m in arm.modes if m.name == name)
        for adaptation in study.adaptations:
            recs = study.track(arm, mode, adaptation, arm.backbone.preset, arm.preset)
            idf1 = sum(r.metrics.to_dict()["idf1"] for r in recs) / len(recs)
            log(f"  tracked {arm.backbone.name} / {name} / {adaptation}: mean IDF1 "
                f"{100 * idf1:.2f}")
    for seq in study.sequences:  # ADL-Rundle-6's MobileNetV2 maps alone are ~1.8 GB
        seq.maps.clear()


def rank_by_auc(auc: dict[str, Any], adaptations: list[str]) -> list[str]:
    """Modes by their all-pairs AUC averaged over the adaptations studied, best first."""
    def score(name: str) -> float:
        return sum(auc["modes"][name][a]["all"]["auc"] for a in adaptations) / len(adaptations)

    return sorted(auc["modes"], key=lambda n: (-score(n), n))
