"""MOTChallenge evaluation: official preprocessing, CLEAR MOT, identity and HOTA.

The numbers agree with the official evaluation (TrackEval's MotChallenge2DBox
with HOTA, CLEAR and Identity). This package does not import ``deeptrack.io``
(nor the reverse): it takes any objects with the attributes of
``deeptrack.io.GroundTruth`` and ``deeptrack.io.TrackResults``.
"""

from __future__ import annotations

from deeptrack.eval.clear import ClearMetrics, FrameMatches, IdentityMetrics, frame_matches
from deeptrack.eval.evaluate import evaluate, evaluate_sequence
from deeptrack.eval.hota import ALPHAS, HotaMetrics
from deeptrack.eval.preprocess import Benchmark, PreparedSequence, infer_benchmark, prepare_sequence
from deeptrack.eval.report import COMBINED, EvalReport, SequenceMetrics

__all__ = [
    "ALPHAS",
    "COMBINED",
    "Benchmark",
    "ClearMetrics",
    "EvalReport",
    "FrameMatches",
    "HotaMetrics",
    "IdentityMetrics",
    "PreparedSequence",
    "SequenceMetrics",
    "evaluate",
    "evaluate_sequence",
    "frame_matches",
    "infer_benchmark",
    "prepare_sequence",
]
