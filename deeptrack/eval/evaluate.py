"""Entry points: evaluate one sequence, or many with a combined row."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from deeptrack.eval.clear import clear_and_identity
from deeptrack.eval.hota import hota
from deeptrack.eval.preprocess import (
    Benchmark,
    GroundTruthLike,
    ResultsLike,
    infer_benchmark,
    prepare_sequence,
)
from deeptrack.eval.report import EvalReport, SequenceMetrics

logger = logging.getLogger(__name__)


class EvaluationInputLike(Protocol):
    """One sequence to evaluate (``deeptrack.io.EvaluationInput`` has these attributes)."""

    name: str
    path: Any
    gt: GroundTruthLike
    results: ResultsLike


def _benchmark_for(gt: GroundTruthLike, path: str | Path | None,
                   benchmark: Benchmark | str | None) -> Benchmark:
    if benchmark is not None:
        return Benchmark.parse(benchmark)
    return infer_benchmark(path if path is not None else getattr(gt, "path", None),
                           getattr(gt, "n_columns", None) or None)


def evaluate_sequence(
    gt: GroundTruthLike,
    results: ResultsLike,
    *,
    benchmark: Benchmark | str | None = None,
    name: str = "",
    path: str | Path | None = None,
) -> SequenceMetrics:
    """Evaluate one sequence the way the official MOTChallenge evaluation does.

    Args:
        gt: every ground-truth row of the sequence (e.g. ``deeptrack.io.GroundTruth``).
        results: the tracker's rows (e.g. ``deeptrack.io.TrackResults``); boxes
            xyxy in the same pixel frame as ``gt``.
        benchmark: MOT15/16/17/20; None infers it from ``path`` (or
            ``gt.path``), else from ``gt.n_columns`` (10: MOT15, 9: MOT17).
        name: the row's name.
        path: the sequence folder, for inferring the benchmark.

    Returns:
        CLEAR MOT, identity and HOTA metrics.

    Raises:
        InputError: malformed arrays (see ``prepare_sequence``).
        ValueError: the benchmark is unknown or cannot be inferred.
    """
    bench = _benchmark_for(gt, path, benchmark)
    prepared = prepare_sequence(gt, results, bench)
    if prepared.n_removed:
        logger.debug("%s: %d result boxes matched distractors and were ignored",
                     name, prepared.n_removed)
    clear, identity = clear_and_identity(prepared)
    return SequenceMetrics(name, bench.value, clear, identity, hota(prepared))


def evaluate(
    sequences: Iterable[EvaluationInputLike], *, benchmark: Benchmark | str | None = None
) -> EvalReport:
    """Evaluate several sequences and combine them.

    ``deeptrack.io.load_evaluation_inputs(gt_path, results_dir)`` reads the
    inputs from a split or sequence folder and a folder of ``<sequence>.txt``.

    Args:
        sequences: items with ``name``, ``path``, ``gt`` and ``results``.
        benchmark: applies to every sequence; None infers it per sequence.

    Returns:
        A row per sequence and the combined row (counts summed).
    """
    rows = [
        evaluate_sequence(s.gt, s.results, benchmark=benchmark, name=s.name, path=s.path)
        for s in sequences
    ]
    return EvalReport(tuple(rows), SequenceMetrics.combine(rows))
