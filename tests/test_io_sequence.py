"""Sequence folders: discovery, metadata, frames, per-frame detections, evaluation inputs."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from deeptrack.errors import DataFormatError, InputError
from deeptrack.io import (
    find_sequences,
    is_sequence_folder,
    load_evaluation_inputs,
    load_sequence,
)
from deeptrack.types import Detections

SEQINFO = """[Sequence]
name={name}
imDir=img1
frameRate={fps}
seqLength={length}
imWidth=640
imHeight=480
imExt=.jpg
"""


def make_sequence(
    root: Path,
    name: str = "SEQ-01",
    n_images: int | None = 4,
    length: int = 4,
    det: str | None = "4,-1,1,1,10,10,0.3\n1,-1,1,1,10,10,0.9\n1,-1,21,21,5,5,0.4\n",
    gt: str | None = "1,1,1,1,10,10,1,1,1\n2,1,2,2,10,10,1,1,1\n",
    fps: float = 25,
) -> Path:
    """Write a small sequence folder; images are empty files (only their names matter)."""
    seq = root / name
    seq.mkdir(parents=True)
    (seq / "seqinfo.ini").write_text(SEQINFO.format(name=name, fps=fps, length=length))
    if n_images is not None:
        (seq / "img1").mkdir()
        for i in range(1, n_images + 1):
            (seq / "img1" / f"{i:06d}.jpg").touch()
        (seq / "img1" / "Thumbs.db").touch()  # ignored, as in some MOT15 copies
    if det is not None:
        (seq / "det").mkdir()
        (seq / "det" / "det.txt").write_text(det)
    if gt is not None:
        (seq / "gt").mkdir()
        (seq / "gt" / "gt.txt").write_text(gt)
    return seq


def test_load_sequence_metadata_and_frames(tmp_path):
    seq = load_sequence(make_sequence(tmp_path))
    assert (seq.name, seq.frame_rate, seq.width, seq.height) == ("SEQ-01", 25.0, 640, 480)
    assert seq.n_frames == len(seq) == 4
    np.testing.assert_array_equal(seq.frames, [1, 2, 3, 4])
    assert [p.name for p in seq.image_paths] == [f"{i:06d}.jpg" for i in range(1, 5)]
    assert seq.gt is not None and len(seq.gt) == 2


def test_detections_per_frame(tmp_path):
    seq = load_sequence(make_sequence(tmp_path))
    d1 = seq.detections(1)
    assert isinstance(d1, Detections)
    np.testing.assert_array_equal(d1.boxes, [[0, 0, 10, 10], [20, 20, 25, 25]])  # file order
    np.testing.assert_array_equal(d1.scores, [0.9, 0.4])
    assert len(seq.detections(2)) == 0 and seq.detections(2).boxes.shape == (0, 4)
    np.testing.assert_array_equal(seq.detections(4).scores, [0.3])
    for bad in (0, 5):
        with pytest.raises(InputError, match=rf"frame {bad} is not in 1..4"):
            seq.detections(bad)


def test_min_confidence_and_detection_file_choice(tmp_path):
    path = make_sequence(tmp_path)
    (path / "det" / "det_frcnn.txt").write_text("2,-1,1,1,3,3,0.99,-1,-1,-1\n")
    assert len(load_sequence(path, min_confidence=0.5).detections(1)) == 1
    seq = load_sequence(path, det_file="det_frcnn.txt")
    assert len(seq.detections(1)) == 0 and len(seq.detections(2)) == 1
    with pytest.raises(DataFormatError, match=r"det_x.txt: detection file not found "
                                              r"\(det/ holds: det.txt, det_frcnn.txt\)"):
        load_sequence(path, det_file="det_x.txt")
    seq = load_sequence(path, det_file=None)
    with pytest.raises(InputError, match="without a detection file"):
        seq.detections(1)


def test_images_decide_the_frame_count(tmp_path, caplog):
    # seqinfo says 600 frames, img1/ holds 4, det.txt covers the whole sequence (MOT17 mini)
    path = make_sequence(tmp_path, length=600,
                         det="1,-1,1,1,10,10,0.9\n450,-1,1,1,10,10,0.9\n",
                         gt="1,1,1,1,10,10,1,1,1\n7,1,1,1,10,10,1,1,1\n")
    with caplog.at_level(logging.WARNING, logger="deeptrack.io.sequence"):
        seq = load_sequence(path)
    assert seq.n_frames == 4 and seq.seq_length == 600
    assert len(seq.gt) == 1
    text = caplog.text
    assert "seqLength=600" in text and "using 4" in text
    assert "det.txt: dropped 1 rows" in text and "gt.txt: dropped 1 rows" in text


def test_rows_beyond_the_sequence_are_an_error(tmp_path):
    path = make_sequence(tmp_path, det="1,-1,1,1,10,10,0.9\n5,-1,1,1,10,10,0.9\n")
    with pytest.raises(DataFormatError, match=r"det.txt:2: frame 5 is beyond"):
        load_sequence(path)


def test_ground_truth_only_folder_uses_seq_length(tmp_path):
    seq = load_sequence(make_sequence(tmp_path, n_images=None, length=7, det=None),
                        det_file=None)
    assert seq.n_frames == 7 and seq.image_paths == ()


def test_gap_in_images_is_an_error(tmp_path):
    path = make_sequence(tmp_path)
    (path / "img1" / "000002.jpg").unlink()
    with pytest.raises(DataFormatError, match=r"3 images but frame 2 is missing"):
        load_sequence(path)


@pytest.mark.parametrize(
    ("ini", "pattern"),
    [
        ("[Sequence]\nname=x\nframeRate=30\nimWidth=1\nimHeight=1\n", r"key seqLength is missing"),
        ("[Sequence]\nframeRate=abc\nseqLength=4\nimWidth=1\nimHeight=1\n",
         r"frameRate='abc' is not a number"),
        ("[Sequence]\nframeRate=30\nseqLength=0\nimWidth=1\nimHeight=1\n",
         r"seqLength=0 must be > 0"),
        ("[Other]\nx=1\n", r"no \[Sequence\] section"),
        ("not an ini file\n", r"cannot read"),
    ],
)
def test_bad_seqinfo(tmp_path, ini, pattern):
    path = make_sequence(tmp_path)
    (path / "seqinfo.ini").write_text(ini)
    with pytest.raises(DataFormatError, match=pattern):
        load_sequence(path)


def test_find_sequences(tmp_path):
    split = tmp_path / "train"
    a = make_sequence(split, "B-seq")
    b = make_sequence(split, "A-seq")
    (split / "notes").mkdir()  # unrelated folder: ignored
    assert find_sequences(split) == [b, a]
    assert find_sequences(a) == [a]
    assert is_sequence_folder(a) and not is_sequence_folder(split)
    with pytest.raises(DataFormatError, match="neither a sequence folder"):
        find_sequences(split / "notes")
    with pytest.raises(DataFormatError, match="no such folder"):
        find_sequences(tmp_path / "nowhere")
    (split / "C-seq" / "img1").mkdir(parents=True)
    with pytest.raises(DataFormatError, match=r"C-seq: looks like a sequence folder but has no "
                                              r"seqinfo.ini"):
        find_sequences(split)


def test_load_evaluation_inputs(tmp_path):
    split = tmp_path / "gt"
    make_sequence(split, "S1")
    make_sequence(split, "S2")
    results = tmp_path / "res"
    results.mkdir()
    (results / "S1.txt").write_text("1,3,1,1,10,10,1,-1,-1,-1\n")
    with pytest.raises(DataFormatError, match=r"no result file for sequence\(s\) S2 "
                                              r"\(expected S2.txt\)"):
        load_evaluation_inputs(split, results)
    (results / "S2.txt").write_text("")
    inputs = load_evaluation_inputs(split, results)
    assert [i.name for i in inputs] == ["S1", "S2"]
    assert len(inputs[0].results) == 1 and len(inputs[1].results) == 0
    assert inputs[0].n_frames == 4 and len(inputs[0].gt) == 2
    (results / "S2.txt").write_text("9,1,1,1,10,10,1,-1,-1,-1\n")
    with pytest.raises(DataFormatError, match=r"S2.txt:1: frame 9 is beyond"):
        load_evaluation_inputs(split, results)


# ------------------------------------------------------------------ real data


@pytest.mark.integration
def test_real_mot15_sequences(data_root):
    split = data_root / "MOT15" / "train"
    seqs = find_sequences(split)
    assert [s.name for s in seqs] == ["ADL-Rundle-6", "KITTI-17"]
    expected = {  # frames, gt rows, det.txt rows, det_frcnn.txt rows
        "ADL-Rundle-6": (525, 5009, 4902, 4325),
        "KITTI-17": (145, 782, 552, 592),
    }
    for path in seqs:
        frames, gt_rows, det_rows, frcnn_rows = expected[path.name]
        seq = load_sequence(path)
        assert seq.n_frames == frames and seq.gt is not None and len(seq.gt) == gt_rows
        assert seq.gt.n_columns == 10
        assert sum(len(seq.detections(f)) for f in seq.frames) == det_rows
        frcnn = load_sequence(path, det_file="det_frcnn.txt")
        assert sum(len(frcnn.detections(f)) for f in frcnn.frames) == frcnn_rows
    kitti = load_sequence(split / "KITTI-17", det_file=None)
    assert int((kitti.gt.flag == 0).sum()) == 99
    adl = load_sequence(split / "ADL-Rundle-6")
    # first det.txt line: 1,-1,1689,385,146.62,332.71,67.567,-1,-1,-1
    np.testing.assert_allclose(adl.detections(1).boxes[0], [1688, 384, 1834.62, 716.71])


@pytest.mark.integration
def test_real_mot17_mini_sequences(data_root, caplog):
    seqs = find_sequences(data_root / "MOT17-mini" / "train")
    assert len(seqs) == 7
    with caplog.at_level(logging.WARNING, logger="deeptrack.io.sequence"):
        for path in seqs:
            seq = load_sequence(path)
            n_images = len(list((path / "img1").glob("*.jpg")))
            assert seq.n_frames == n_images < seq.seq_length
            assert seq.gt is not None and seq.gt.n_columns == 9
            assert int(seq.gt.frame.max()) <= seq.n_frames
            assert all(len(seq.detections(f)) > 0 for f in seq.frames)
    assert "frames not present in img1/" in caplog.text
