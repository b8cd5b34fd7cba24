"""MOTChallenge files: sequence folders, detections, ground truth and results.

Boxes on disk are 1-based tlwh; everything returned here is 0-based xyxy.
This package does not import ``deeptrack.eval`` (nor the reverse); the
containers it returns have the attributes the evaluation reads.
"""

from __future__ import annotations

from deeptrack.io.mot import (
    DetectionTable,
    GroundTruth,
    TrackResults,
    format_results,
    read_detections,
    read_ground_truth,
    read_results,
    write_atomic,
    write_results,
)
from deeptrack.io.resultset import ResultSetError, check_result_file, write_result_set
from deeptrack.io.sequence import (
    EvaluationInput,
    Sequence,
    find_sequences,
    is_sequence_folder,
    load_evaluation_inputs,
    load_sequence,
)

__all__ = [
    "DetectionTable",
    "EvaluationInput",
    "GroundTruth",
    "ResultSetError",
    "Sequence",
    "TrackResults",
    "check_result_file",
    "find_sequences",
    "format_results",
    "is_sequence_folder",
    "load_evaluation_inputs",
    "load_sequence",
    "read_detections",
    "read_ground_truth",
    "read_results",
    "write_atomic",
    "write_result_set",
    "write_results",
]
