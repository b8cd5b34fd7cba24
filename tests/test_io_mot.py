"""MOTChallenge file reading and writing: conversions, tolerance, strictness, atomicity."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from deeptrack.errors import DataFormatError, InputError
from deeptrack.io import (
    TrackResults,
    format_results,
    read_detections,
    read_ground_truth,
    read_results,
    write_results,
)
from deeptrack.io import mot as mot_module
from deeptrack.types import TrackOutput


def _write(tmp_path: Path, text: str, name: str = "f.txt") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode())
    return p


# ------------------------------------------------------------------ conversions


def test_detection_boxes_become_zero_based_xyxy(tmp_path):
    p = _write(tmp_path, "1,-1,1,1,10,20,0.9,-1,-1,-1\n2,-1,101.5,-3,4,5,-0.3,-1,-1,-1\n")
    det = read_detections(p)
    # x1 = x - 1, y1 = y - 1, x2 = x1 + w, y2 = y1 + h
    np.testing.assert_array_equal(det.boxes, [[0, 0, 10, 20], [100.5, -4, 104.5, 1]])
    np.testing.assert_array_equal(det.frame, [1, 2])
    np.testing.assert_array_equal(det.scores, [0.9, -0.3])  # ACF scores can be negative


def test_seven_column_unsorted_detections_keep_file_order(tmp_path):
    p = _write(tmp_path, "3,-1,1,1,5,5,0.5\n1,-1,2,2,5,5,0.6\n3,-1,3,3,5,5,0.7\n")
    det = read_detections(p)
    np.testing.assert_array_equal(det.frame, [3, 1, 3])
    np.testing.assert_array_equal(det.scores, [0.5, 0.6, 0.7])


def test_min_confidence_drops_low_scores(tmp_path):
    p = _write(tmp_path, "1,-1,1,1,5,5,0.2\n1,-1,1,1,5,5,0.5\n1,-1,1,1,5,5,0.9\n")
    np.testing.assert_array_equal(read_detections(p, min_confidence=0.5).scores, [0.5, 0.9])


def test_mot17_ground_truth_columns(tmp_path):
    p = _write(tmp_path, "1,7,-5,3,10,20,1,1,0.25\n2,7,1,1,10,20,0,8,1\n")
    gt = read_ground_truth(p)
    assert gt.n_columns == 9 and gt.has_classes
    np.testing.assert_array_equal(gt.track_id, [7, 7])
    np.testing.assert_array_equal(gt.boxes[0], [-6, 2, 4, 22])  # partly outside the image
    np.testing.assert_array_equal(gt.flag, [1, 0])
    np.testing.assert_array_equal(gt.class_id, [1, 8])
    np.testing.assert_array_equal(gt.visibility, [0.25, 1.0])


def test_mot15_ground_truth_has_no_class(tmp_path):
    p = _write(tmp_path, "1,1,1703,385,157,339,1,-1,-1,-1\n1,6,485,145,16.667,55.039,0,-1,-1,-1\n")
    gt = read_ground_truth(p)
    assert gt.n_columns == 10 and not gt.has_classes
    np.testing.assert_array_equal(gt.class_id, [-1, -1])
    assert np.isnan(gt.visibility).all()
    np.testing.assert_array_equal(gt.flag, [1, 0])


@pytest.mark.parametrize(
    "text",
    [
        "1,1,1,1,5,5,1,-1,-1,-1",  # no newline at the end
        "1,1,1,1,5,5,1,-1,-1,-1\n\n\n",  # blank lines at the end
        "1,1,1,1,5,5,1,-1,-1,-1  \r\n",  # trailing whitespace, CRLF
        " 1, 1, 1, 1, 5, 5, 1, -1, -1, -1\n",  # spaces after commas
    ],
)
def test_tolerated_whitespace(tmp_path, text):
    res = read_results(_write(tmp_path, text))
    assert len(res) == 1
    np.testing.assert_array_equal(res.boxes, [[0, 0, 5, 5]])


def test_empty_file_is_no_boxes(tmp_path):
    assert len(read_results(_write(tmp_path, ""))) == 0
    assert len(read_detections(_write(tmp_path, "\n"))) == 0
    gt = read_ground_truth(_write(tmp_path, ""))
    assert len(gt) == 0 and gt.n_columns == 0


# ------------------------------------------------------------------ strictness

MALFORMED = [
    # (reader, text, line, message pattern)
    ("det", "1,-1,1,1,5,5,0.9\n1,-1,1,1,5,5\n", 2,
     r"expected 7 columns like the lines above, got 6"),
    ("det", "1,-1,1,1,5,5,0.9,-1\n", 1,
     r"expected 7 \(.*\) or 10 \(.*\) comma-separated columns, got 8"),
    ("gt", "1,1,1,1,5,5,1,1\n", 1, r"got 8"),
    ("det", "frame,id,x,y,w,h,score\n", 1, r"column 1 \(frame\) is not a number: 'frame'"),
    ("det", "1,-1,1,1,5,abc,0.9\n", 1, r"column 6 \(height\) is not a number: 'abc'"),
    ("det", "1,-1,1,1,5,,0.9\n", 1, r"column 6 \(height\) is not a number: ''"),
    ("det", "1,-1,1,1,5,5,nan\n", 1, r"column 7 \(score\) is nan; expected a finite number"),
    ("res", "1,1,inf,1,5,5,1\n", 1, r"column 3 \(x\) is inf"),
    ("det", "1,-1,1,1,0,5,0.9\n", 1, r"width 0 <= 0"),
    ("det", "1,-1,1,1,5,-2,0.9\n", 1, r"height -2 <= 0"),
    ("res", "1,1,1,1,5,0,1\n", 1, r"height 0 <= 0"),
    ("det", "0,-1,1,1,5,5,0.9\n", 1, r"frame 0 < 1"),
    ("det", "1.5,-1,1,1,5,5,0.9\n", 1, r"frame 1.5 is not an integer"),
    ("det", "1,3,1,1,5,5,0.9\n", 1, r"id column is 3; a detection file has -1 there"),
    ("res", "1,2.5,1,1,5,5,1\n", 1, r"id 2.5 is not an integer"),
    ("res", "1,-1,1,1,5,5,1\n", 1, r"id -1 is negative"),
    ("res", "1,1,1,1,5,5,1\n2,1,1,1,5,5,1\n1,1,9,9,5,5,1\n", 3,
     r"id 1 appears twice in frame 1 \(also on line 1\)"),
    ("gt", "1,1,1,1,5,5,2,1,1\n", 1, r"flag \(consider flag\) is 2; expected 0 or 1"),
    ("gt", "1,1,1,1,5,5,1,14,1\n", 1, r"class 14 is not a MOTChallenge class id"),
    ("gt", "1,1,1,1,5,5,1,1,1.5\n", 1, r"visibility 1.5 is not in \[0, 1\]"),
    ("gt", "1,1,1,1,5,5,1,-1,-1,-1\n\n2,1,1,1,5,5,1,-1,-1,-1\n", 2, r"empty line before the end"),
]


@pytest.mark.parametrize(("reader", "text", "line", "pattern"), MALFORMED)
def test_malformed_line_names_file_and_line(tmp_path, reader, text, line, pattern):
    p = _write(tmp_path, text)
    read = {"det": read_detections, "gt": read_ground_truth, "res": read_results}[reader]
    with pytest.raises(DataFormatError) as info:
        read(p)
    message = str(info.value)
    assert message.startswith(f"{p}:{line}: "), message
    assert re.search(pattern, message), message


def test_frame_beyond_the_sequence_is_an_error(tmp_path):
    p = _write(tmp_path, "1,1,1,1,5,5,1\n9,1,1,1,5,5,1\n")
    pattern = rf"{re.escape(str(p))}:2: frame 9 is beyond .* \(8\)"
    with pytest.raises(DataFormatError, match=pattern):
        read_results(p, max_frame=8)


def test_not_utf8_and_missing_file(tmp_path):
    p = tmp_path / "bin.txt"
    p.write_bytes(b"1,1,1,1,5,5,1\n\xff\xfe\n")
    with pytest.raises(DataFormatError, match=r"bin.txt:2: not UTF-8"):
        read_results(p)
    with pytest.raises(DataFormatError, match=r"missing.txt: cannot read file"):
        read_results(tmp_path / "missing.txt")


# ------------------------------------------------------------------ writing


def _results() -> TrackResults:
    return TrackResults(
        frame=np.array([2, 1, 1, 10]),
        track_id=np.array([5, 3, 1, 3]),
        boxes=np.array([[0.1, 0.2, 10.3, 20.4], [-3.25, 5.0, 7.0, 9.5],
                        [100.0, 200.0, 150.0, 300.0], [1 / 3, 2 / 3, 5.0, 6.0]]),
        scores=np.array([0.5, 1.0, 0.25, 0.123456789]),
    )


def test_format_has_no_float_noise():
    # x2 = 1688 + 146.62 is not exact in binary; the width is still written 146.62
    res = TrackResults(np.array([1]), np.array([1]), np.array([[1688.0, -1e-9, 1688 + 146.62, 5]]),
                       np.array([0.995616]))
    assert format_results(res) == "1,1,1689,1,146.62,5,0.995616,-1,-1,-1\n"


def test_format_is_one_based_tlwh_sorted_by_frame_then_id():
    text = format_results(_results())
    assert text.splitlines()[:2] == [
        "1,1,101,201,50,100,0.25,-1,-1,-1",
        "1,3,-2.25,6,10.25,4.5,1,-1,-1,-1",
    ]
    assert [line.split(",")[:2] for line in text.splitlines()] == [
        ["1", "1"], ["1", "3"], ["2", "5"], ["10", "3"]]


def test_round_trip(tmp_path):
    res = _results()
    path = tmp_path / "out" / "SEQ.txt"
    write_results(path, res)
    back = read_results(path)
    order = np.lexsort((res.track_id, res.frame))
    np.testing.assert_array_equal(back.frame, res.frame[order])
    np.testing.assert_array_equal(back.track_id, res.track_id[order])
    # numbers are written with 6 decimals
    np.testing.assert_allclose(back.boxes, res.boxes[order], rtol=0, atol=1e-6)
    np.testing.assert_allclose(back.scores, res.scores[order], rtol=0, atol=5e-7)
    # the same rows give the same text
    write_results(tmp_path / "again.txt", res)
    assert (tmp_path / "again.txt").read_text() == path.read_text()


def test_from_outputs_and_empty(tmp_path):
    outs = [
        (1, TrackOutput(np.array([1, 2]), np.array([[0, 0, 5, 5], [10, 10, 20, 30.0]]),
                        np.array([0.9, 0.8]), np.array([0, 1]))),
        (2, TrackOutput.empty()),
        (3, TrackOutput(np.array([2]), np.array([[11, 11, 21, 31.0]]), np.array([0.7]),
                        np.array([-1]))),
    ]
    res = TrackResults.from_outputs(outs)
    np.testing.assert_array_equal(res.frame, [1, 1, 3])
    write_results(tmp_path / "a.txt", res)
    assert len(read_results(tmp_path / "a.txt")) == 3
    write_results(tmp_path / "empty.txt", TrackResults.from_outputs([]))
    assert (tmp_path / "empty.txt").read_text() == ""


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"track_id": [1, 1]}, r"track id 1 appears twice in frame 1"),
        ({"frame": [0, 1]}, r"frame\[0\] = 0"),
        ({"track_id": [-1, 2]}, r"track_id\[0\] = -1"),
        ({"boxes": [[0, 0, 5, 5], [5, 5, 5, 9]]}, r"boxes\[1\] has zero or negative width"),
        ({"scores": [0.5, np.nan]}, r"scores\[1\] is NaN"),
        ({"scores": [0.5]}, r"scores has 1 rows"),
        ({"frame": [1.5, 1]}, r"frame\[0\] = 1.5 is not an integer"),
    ],
)
def test_invalid_results_are_rejected(kwargs, pattern):
    args = {"frame": [1, 1], "track_id": [1, 2], "boxes": [[0, 0, 5, 5], [5, 5, 9, 9]],
            "scores": [0.5, 0.6]}
    args.update(kwargs)
    with pytest.raises(InputError, match=pattern):
        TrackResults(**{k: np.asarray(v) for k, v in args.items()})


def test_failed_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "SEQ.txt"
    path.write_text("old\n")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(mot_module.os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        write_results(path, _results())
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["SEQ.txt"]


def test_failed_replace_leaves_no_file(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise OSError("cross-device")

    monkeypatch.setattr(mot_module.os, "replace", boom)
    with pytest.raises(OSError):
        write_results(tmp_path / "SEQ.txt", _results())
    assert os.listdir(tmp_path) == []
