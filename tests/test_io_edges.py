"""MOTChallenge files at the edges of what is valid: each bound is inclusive or exclusive as stated.

The module docstring of ``deeptrack.io.mot`` says: frame an integer >= 1 and
not beyond the sequence's last frame; width and height > 0; consider flag 0
or 1; visibility in [0, 1]; ``min_confidence`` drops rows scoring *below* it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deeptrack.errors import DataFormatError
from deeptrack.io import (
    TrackResults,
    format_results,
    read_detections,
    read_ground_truth,
    read_results,
)


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "f.txt"
    p.write_text(text)
    return p


def test_last_frame_of_the_sequence_is_valid(tmp_path):
    p = _write(tmp_path, "1,1,1,1,5,5,1\n8,1,1,1,5,5,1\n")
    assert read_results(p, max_frame=8).frame.tolist() == [1, 8]
    with pytest.raises(DataFormatError, match="frame 8 is beyond"):
        read_results(p, max_frame=7)
    det = _write(tmp_path, "8,-1,1,1,5,5,0.5\n")
    assert read_detections(det, max_frame=8).frame.tolist() == [8]


def test_visibility_and_flag_bounds_are_inclusive(tmp_path):
    gt = read_ground_truth(_write(tmp_path, "1,1,1,1,5,5,0,1,0\n1,2,1,1,5,5,1,1,1\n"))
    np.testing.assert_array_equal(gt.visibility, [0.0, 1.0])
    np.testing.assert_array_equal(gt.flag, [0, 1])
    with pytest.raises(DataFormatError, match=r"visibility -0.01 is not in \[0, 1\]"):
        read_ground_truth(_write(tmp_path, "1,1,1,1,5,5,1,1,-0.01\n"))
    with pytest.raises(DataFormatError, match="expected 0 or 1"):
        read_ground_truth(_write(tmp_path, "1,1,1,1,5,5,-1,1,1\n"))
    for cls in (1, 13):
        assert read_ground_truth(_write(tmp_path, f"1,1,1,1,5,5,1,{cls},1\n")).class_id[0] == cls
    with pytest.raises(DataFormatError, match="class 0 is not"):
        read_ground_truth(_write(tmp_path, "1,1,1,1,5,5,1,0,1\n"))


def test_sizes_just_above_zero_are_valid(tmp_path):
    res = read_results(_write(tmp_path, "1,0,1,1,0.001,0.5,1\n"))
    np.testing.assert_allclose(res.boxes, [[0, 0, 0.001, 0.5]])
    assert res.track_id.tolist() == [0]  # id 0 is valid, only negative ids are not


def test_min_confidence_is_inclusive_and_scores_are_kept_exactly(tmp_path):
    p = _write(tmp_path, "1,-1,1,1,5,5,-0.5\n1,-1,1,1,5,5,0.3\n2,-1,1,1,5,5,0.30001\n")
    assert read_detections(p, min_confidence=0.3).scores.tolist() == [0.3, 0.30001]
    assert read_detections(p, min_confidence=-0.5).scores.tolist() == [-0.5, 0.3, 0.30001]


def test_one_based_tlwh_both_ways():
    # A 0-based xyxy box (0, 0, 10, 20) is the file's 1-based tlwh (1, 1, 10, 20).
    res = TrackResults(np.array([3]), np.array([0]), np.array([[0.0, 0.0, 10.0, 20.0]]),
                       np.array([0.5]))
    assert format_results(res) == "3,0,1,1,10,20,0.5,-1,-1,-1\n"
