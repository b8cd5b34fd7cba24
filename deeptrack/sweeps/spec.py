"""One description of a sweep: sequences x detection files x variants of a run.

A :class:`SweepSpec` says what to run and nothing about where: every
(sequence, detection file, variant) is one tracking task, and the runner
(:mod:`deeptrack.sweeps.runner`) adds one feature-extraction task per
(sequence, detection file, appearance setting) that the tracking tasks need.
``deeptrack compare`` builds one from its pooling modes, ``benchmarks/sweep.py``
from its grid, and :func:`product` from the usual axes: pooling modes x
backbones x any other config keys (association and tracker settings).

Settings are the dotted keys of :func:`deeptrack.config.with_settings`
(``tracker.max_age``, ``head.pooling``, ``appearance.layer``, ``min_confidence``),
so a sweep can vary every key a preset has and nothing else.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deeptrack.config import AppearanceConfig, RunConfig, with_settings
from deeptrack.errors import ConfigError
from deeptrack.types import PoolingMode

__all__ = ["MOTION_ONLY", "SweepSpec", "Variant", "grid_settings", "pooling_settings",
           "product"]

#: Pooling "mode" that turns appearance off (motion and IoU only), as in ``deeptrack compare``.
MOTION_ONLY = "none"


@dataclass(frozen=True)
class Variant:
    """One setting of the run, applied to every sequence and detection file.

    Attributes:
        label: how results and failures name it (unique within a sweep).
        config: the whole run's configuration.
    """

    label: str
    config: RunConfig


@dataclass(frozen=True)
class SweepSpec:
    """Sequences x detection files x variants, each combination an independent task.

    Attributes:
        sequences: sequence folders, made absolute (as strings): a task may run in
            another working directory (Ray Tune's trials do) or on another node.
        variants: the settings to run on each.
        det_files: detection files inside each sequence's ``det/``; empty runs
            each variant with its own ``det_file``.
        evaluate: score each run against its ground truth (where present) in
            the task itself, so scoring runs in parallel too.
        embedder: a picklable factory ``AppearanceConfig -> embedder`` for the
            feature tasks (default: :class:`deeptrack.appearance.RoIEmbedder`);
            e.g. a detector's own RoI maps, or a stand-in in tests.
    """

    sequences: tuple[str, ...]
    variants: tuple[Variant, ...]
    det_files: tuple[str, ...] = ()
    evaluate: bool = True
    embedder: Callable[[AppearanceConfig], Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sequences",
                           tuple(os.path.abspath(os.fspath(s)) for s in self.sequences))
        object.__setattr__(self, "variants", tuple(self.variants))
        object.__setattr__(self, "det_files", tuple(self.det_files))
        if not self.sequences:
            raise ConfigError("a sweep needs at least one sequence")
        if not self.variants:
            raise ConfigError("a sweep needs at least one variant")
        for items, what in ((self.sequences, "sequence"), (self.det_files, "detection file"),
                            ([v.label for v in self.variants], "variant label")):
            seen: set[str] = set()
            for item in items:
                if item in seen:
                    raise ConfigError(f"{what} {item!r} appears twice in the sweep")
                seen.add(item)
        for det in self.det_files:  # checked by the config, which names what is wrong
            dataclasses.replace(RunConfig(), det_file=det)

    def runs(self) -> list[tuple[str, Variant, RunConfig]]:
        """Return every (sequence, variant, config with its detection file) in run order.

        Sequences vary slowest, then detection files, then variants, so the
        runs that share a sequence's RoI maps are next to each other.
        """
        out = []
        for seq in self.sequences:
            dets = self.det_files or (None,)
            for det in dets:
                for v in self.variants:
                    cfg = v.config if det is None else dataclasses.replace(v.config, det_file=det)
                    out.append((seq, v, cfg))
        return out

    def __len__(self) -> int:
        return len(self.sequences) * max(1, len(self.det_files)) * len(self.variants)


def pooling_settings(mode: str) -> dict[str, Any]:
    """Return the settings of one pooling mode as ``compare`` spells it.

    ``avg`` -> ``{"head.pooling": "avg"}``; ``gem:3`` also sets ``head.gem_p``;
    ``maxpool_flatten:2`` sets ``head.maxpool_kernel``; ``none`` turns
    appearance off. Appearance is turned on by every other mode.

    Raises:
        ConfigError: an unknown mode or a bad parameter.
    """
    name, _, param = mode.strip().partition(":")
    if name == MOTION_ONLY and not param:
        return {"use_appearance": False}
    try:
        pooling = PoolingMode.parse(name)
    except ValueError as e:
        raise ConfigError(f"pooling mode {mode!r}: {e} (or '{MOTION_ONLY}' for motion only)"
                          ) from None
    out: dict[str, Any] = {"head.pooling": pooling.value, "use_appearance": True}
    if param:
        key = {PoolingMode.GEM: ("head.gem_p", float),
               PoolingMode.MAXPOOL_FLATTEN: ("head.maxpool_kernel", int)}.get(pooling)
        if key is None:
            raise ConfigError(f"pooling mode {mode!r}: only gem:P and maxpool_flatten:K take "
                              "a parameter")
        try:
            value = key[1](param)
        except ValueError:
            raise ConfigError(f"pooling mode {mode!r}: {param!r} is not a number") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"pooling mode {mode!r}: {param!r} is not a finite number")
        out[key[0]] = value
    return out


def grid_settings(grid: Mapping[str, Sequence[Any]] | Sequence[tuple[str, Sequence[Any]]]
                  ) -> list[dict[str, Any]]:
    """Return every combination of a grid: ``{"k": [1, 2], "j": [a]}`` -> ``[{k: 1, j: a}, ...]``.

    The first key varies slowest. An empty grid gives one empty setting.

    Raises:
        ConfigError: a key with no values.
    """
    items = list(grid.items()) if isinstance(grid, Mapping) else list(grid)
    for key, values in items:
        if len(values) == 0:
            raise ConfigError(f"sweep key {key!r} has no values")
    keys = [k for k, _ in items]
    return [dict(zip(keys, combo, strict=True))
            for combo in itertools.product(*(list(v) for _, v in items))]


def _label(setting: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in setting.items()) or "(preset)"


def product(
    base: RunConfig,
    sequences: Sequence[str | Path],
    *,
    det_files: Sequence[str] = (),
    pooling: Sequence[str] = (),
    backbones: Sequence[str] | Mapping[str, str | None] = (),
    grid: Mapping[str, Sequence[Any]] | Sequence[tuple[str, Sequence[Any]]] = (),
    evaluate: bool = True,
) -> SweepSpec:
    """Return the sweep over pooling modes x backbones x ``grid`` applied to ``base``.

    Args:
        base: the preset every variant starts from.
        sequences: sequence folders.
        det_files: detection files (empty: ``base.det_file``).
        pooling: modes as ``compare`` spells them (``avg``, ``gem:3``, ``none``);
            empty keeps ``base``'s head.
        backbones: backbone names, or a mapping name -> weights file. A
            backbone other than ``base``'s needs its weights (the mapping), and
            runs on its default layer unless ``grid`` sets ``appearance.layer``.
        grid: dotted config keys -> values (``{"tracker.max_age": [30, 60]}``).
        evaluate: score each run in its task.

    Raises:
        ConfigError: an unknown key or mode, a bad value (every variant is
            built and checked here, before any work), or a backbone without weights.
    """
    weights = dict(backbones) if isinstance(backbones, Mapping) else dict.fromkeys(backbones)
    axes: list[list[dict[str, Any]]] = []
    if pooling:
        axes.append([{"pooling": m, **pooling_settings(m)} for m in pooling])
    if weights:
        axis = []
        for name, file in weights.items():
            setting: dict[str, Any] = {"backbone": name, "appearance.backbone": name}
            if name != base.appearance.backbone:
                if file is None:
                    raise ConfigError(f"backbone {name!r} needs its weights: give "
                                      f"{name}=FILE (the preset's are for "
                                      f"{base.appearance.backbone})")
                setting["appearance.layer"] = None
            if file is not None:
                setting["appearance.weights"] = file
            axis.append(setting)
        axes.append(axis)
    axes.append(grid_settings(grid))
    variants = []
    for parts in itertools.product(*axes):
        shown: dict[str, Any] = {}
        settings: dict[str, Any] = {}
        for part in parts:
            for k, v in part.items():
                if k in ("pooling", "backbone"):
                    shown[k] = v
                else:
                    settings[k] = v
        shown.update({k: v for k, v in parts[-1].items()})  # the grid's keys as given
        settings = {k.removeprefix("run."): v for k, v in settings.items()}
        try:
            config = with_settings(base, settings)
        except ConfigError as e:
            raise ConfigError(f"sweep variant {_label(shown)}: {e}") from None
        variants.append(Variant(_label(shown), config))
    return SweepSpec(tuple(str(s) for s in sequences), tuple(variants),
                     det_files=tuple(det_files), evaluate=evaluate)
