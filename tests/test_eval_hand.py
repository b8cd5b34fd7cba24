"""Evaluation on tiny hand-made sequences whose metrics are computed by hand here.

Boxes are written 1-based tlwh like MOTChallenge files, all 10 x 10 pixels unless
a comment says otherwise. ``B(x)`` is a box whose left edge is at file x = ``x``.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from deeptrack.errors import InputError
from deeptrack.eval import (
    ALPHAS,
    Benchmark,
    evaluate,
    evaluate_sequence,
    infer_benchmark,
    prepare_sequence,
)
from deeptrack.io import read_ground_truth, read_results


def B(x: float, w: float = 10, h: float = 10) -> list[float]:
    return [x, 1, w, h]


def load(tmp_path: Path, gt_rows: list[list[float]], res_rows: list[list[float]]):
    """Write gt rows (complete lines) and result rows (frame, id, x, y, w, h), read them back."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "gt.txt").write_text("".join(",".join(map(str, r)) + "\n" for r in gt_rows))
    (tmp_path / "res.txt").write_text(
        "".join(",".join(map(str, r)) + ",1,-1,-1,-1\n" for r in res_rows))
    return read_ground_truth(tmp_path / "gt.txt"), read_results(tmp_path / "res.txt")


# Objects, present in frames 1..5 (frame, id, tlwh, flag, class, visibility):
#   1, 2 pedestrians (scored); 3 pedestrian with flag 0; 4 static person (class 7,
#   a distractor); 5 car (class 3, not a distractor); 6 non-motorised vehicle
#   (class 6, a distractor on MOT20 only).
OBJECTS = {1: (B(1), 1, 1), 2: (B(101), 1, 1), 3: (B(201), 0, 1), 4: (B(301), 0, 7),
           5: (B(401), 0, 3), 6: (B(501), 0, 6)}
GT17 = [[f, i, *box, flag, cls, 1] for f in range(1, 6) for i, (box, flag, cls) in OBJECTS.items()]
GT15 = [[f, i, *box, flag, -1, -1, -1] for f in range(1, 6)
        for i, (box, flag, _) in OBJECTS.items()]
RESULTS = [
    # frame 1: a on 1, b on 2 (2 TP); c on the static person (removed: distractor),
    #          d on the car, e on the flag-0 pedestrian, f on the vehicle (FPs)
    [1, 11, *B(1)], [1, 12, *B(101)], [1, 13, *B(301)], [1, 14, *B(401)], [1, 15, *B(201)],
    [1, 16, *B(501)],
    # frame 2: a one pixel off (IoU 90/110), b exact: 2 TP
    [2, 11, *B(2)], [2, 12, *B(101)],
    # frame 3: no result boxes at all: 2 FN
    # frame 4: a and b swap objects: 2 TP, 2 identity switches
    [4, 11, *B(101)], [4, 12, *B(1)],
    # frame 5: a stays on 2 (TP); b drifts 7 px from 1 (IoU 30/170 < 0.5): 1 FN, 1 FP
    [5, 11, *B(101)], [5, 12, *B(8)],
]


def test_clear_and_identity_by_hand_mot17(tmp_path):
    gt, res = load(tmp_path, GT17, RESULTS)
    m = evaluate_sequence(gt, res, benchmark="MOT17")
    c = m.clear
    # TP 2+2+0+2+1, FN 0+0+2+0+1, FP 3+0+0+0+1 (c removed), IDSW 2 in frame 4
    assert (c.tp, c.fn, c.fp, c.idsw) == (7, 3, 4, 2)
    assert c.mota == pytest.approx((7 - 4 - 2) / 10)
    assert c.motp == pytest.approx((6 + 90 / 110) / 7)  # mean IoU of the 7 matches
    # object 1 matched in 3 of 5 frames, object 2 in 4 of 5: 80% is not "more than 80%"
    assert (c.mt, c.pt, c.ml) == (0, 2, 0)
    # frame 3 has no result boxes, so it does not interrupt tracking officially
    assert c.frag == 0
    # ids: 1-a in frames 1, 2 and 2-b in frames 1, 2 -> IDTP 4 of 10 gt and 11 result boxes
    i = m.identity
    assert (i.idtp, i.idfn, i.idfp) == (4, 6, 7)
    assert i.idf1 == pytest.approx(8 / 21)
    assert (i.idp, i.idr) == (pytest.approx(4 / 11), pytest.approx(4 / 10))


def test_preprocessing_by_hand(tmp_path):
    gt, res = load(tmp_path, GT17, RESULTS)
    p17 = prepare_sequence(gt, res, Benchmark.MOT17)
    assert p17.n_removed == 1 and p17.n_gt_ids == 2 and p17.n_gt_dets == 10
    assert p17.n_res_ids == 5 and p17.n_res_dets == 11  # c (13) is gone
    p20 = prepare_sequence(gt, res, Benchmark.MOT20)
    assert p20.n_removed == 2 and p20.n_res_dets == 10  # f (16) on the vehicle also goes
    m20 = evaluate_sequence(gt, res, benchmark="MOT20")
    assert (m20.clear.fp, m20.clear.mota) == (3, pytest.approx(0.2))
    assert m20.identity.idf1 == pytest.approx(8 / 20)


def test_previous_match_is_kept_over_a_better_box(tmp_path):
    gt, res = load(tmp_path, [[f, 1, *B(1), 1, -1, -1, -1] for f in (1, 2)],
                   # frame 1: result 1 exactly on the object (TP)
                   # frame 2: result 1 two px off (IoU 80/120), result 2 exact: the pair
                   #          matched in the previous frame continues (TP), 2 is a FP
                   [[1, 1, *B(1)], [2, 1, *B(3)], [2, 2, *B(1)]])
    c = evaluate_sequence(gt, res).clear
    assert (c.tp, c.fp, c.fn, c.idsw) == (2, 1, 0, 0)
    assert c.motp == pytest.approx((1 + 80 / 120) / 2)


def test_mot15_scores_flags_only(tmp_path):
    gt, res = load(tmp_path, GT15, RESULTS)
    assert gt.n_columns == 10
    m = evaluate_sequence(gt, res)  # MOT15 inferred from the 10 columns
    assert m.benchmark == "MOT15"
    # nothing is removed: c, d, e, f are all false positives in frame 1
    assert (m.clear.tp, m.clear.fn, m.clear.fp, m.clear.idsw) == (7, 3, 5, 2)
    assert m.clear.mota == pytest.approx(0.0)


def test_hota_by_hand_identity_split(tmp_path):
    # one object in frames 1-4, found exactly; result id 1 in frames 1-2, id 2 in 3-4
    gt, res = load(tmp_path, [[f, 1, *B(1), 1, -1, -1, -1] for f in range(1, 5)],
                   [[f, 1 if f <= 2 else 2, *B(1)] for f in range(1, 5)])
    h = evaluate_sequence(gt, res).hota
    # every alpha: TP 4, so DetA 1; each TP's id pair has TPA 2, FNA 4 - 2, FPA 0
    assert h.det_a == pytest.approx(1.0)
    assert h.ass_a_mean == pytest.approx(0.5)
    assert h.hota == pytest.approx(math.sqrt(0.5))
    assert (h.ass_re_mean, h.ass_pr_mean, h.loc_a_mean) == (
        pytest.approx(0.5), pytest.approx(1.0), pytest.approx(1.0))


def test_hota_by_hand_localisation(tmp_path):
    # one object in frames 1-3; the result box is 6.2 px tall instead of 10 (IoU 0.62)
    # in frames 1-2 and missing in frame 3
    gt, res = load(tmp_path, [[f, 1, *B(1), 1, -1, -1, -1] for f in range(1, 4)],
                   [[f, 1, *B(1, h=6.2)] for f in range(1, 3)])
    h = evaluate_sequence(gt, res).hota
    n_ok = int((ALPHAS <= 0.62).sum())
    assert n_ok == 12  # alphas 0.05 .. 0.60
    # alpha <= 0.6: TP 2, FN 1 -> DetA 2/3, AssA 2/3; above: TP 0, FN 3, FP 2 -> 0
    assert h.det_a == pytest.approx(n_ok / 19 * 2 / 3)
    assert h.ass_a_mean == pytest.approx(n_ok / 19 * 2 / 3)
    assert h.hota == pytest.approx(n_ok / 19 * 2 / 3)
    assert h.det_pr == pytest.approx(n_ok / 19)
    # LocA is the TPs' IoU where there are TPs, 1 by convention where there are none
    assert h.loc_a_mean == pytest.approx((n_ok * 0.62 + 19 - n_ok) / 19)


def test_empty_sides(tmp_path):
    gt, res = load(tmp_path, GT17, [])
    m = evaluate_sequence(gt, res, benchmark="MOT17")
    assert (m.clear.tp, m.clear.fn, m.clear.fp, m.clear.ml) == (0, 10, 0, 2)
    assert (m.clear.mota, m.identity.idf1, m.hota.hota) == (0.0, 0.0, 0.0)
    empty_gt, res = load(tmp_path, [], RESULTS)
    m = evaluate_sequence(empty_gt, res, benchmark="MOT17")
    # no scored ground truth: the official convention divides by max(1, GT)
    assert (m.clear.fp, m.clear.mota, m.hota.loc_a_mean) == (12, -12.0, 1.0)


def test_ground_truth_against_itself_is_perfect(tmp_path):
    scored = [r for r in GT17 if r[6] == 1 and r[7] == 1]
    gt, res = load(tmp_path, GT17, [r[:6] for r in scored])
    d = evaluate_sequence(gt, res, benchmark="MOT17").to_dict()
    for key in ("mota", "motp", "idf1", "hota", "deta", "assa", "loca"):
        assert d[key] == pytest.approx(1.0), key


def test_combined_row_sums_counts(tmp_path):
    # sequence A: 1 object, 1 frame, found; sequence B: 1 object in 3 frames, never found
    gt_a, res_a = load(tmp_path / "a", [[1, 1, *B(1), 1, -1, -1, -1]], [[1, 1, *B(1)]])
    gt_b, res_b = load(tmp_path / "b", [[f, 1, *B(1), 1, -1, -1, -1] for f in (1, 2, 3)], [])
    report = evaluate([SimpleNamespace(name="A", path=None, gt=gt_a, results=res_a),
                       SimpleNamespace(name="B", path=None, gt=gt_b, results=res_b)])
    assert report["A"].clear.mota == 1.0 and report["B"].clear.mota == 0.0
    combined = report.combined
    # summed counts: (1 - 0 - 0) / 4, not the mean of 1.0 and 0.0
    assert combined.clear.mota == pytest.approx(0.25)
    assert combined.identity.idf1 == pytest.approx(2 * 1 / (4 + 1))
    d = report.to_dict()
    assert set(d["sequences"]) == {"A", "B"} and d["combined"]["name"] == "COMBINED"
    assert d["combined"]["gt"] == 4 and d["combined"]["tp"] == 1
    table = report.table()
    assert table.splitlines()[0].split()[:4] == ["Sequence", "HOTA", "DetA", "AssA"]
    assert table.splitlines()[-1].startswith("COMBINED") and " 25.000 " in table


def test_duck_typed_inputs_and_errors():
    gt = SimpleNamespace(frame=np.array([1, 1]), track_id=np.array([1, 1]),
                         boxes=np.array([[0, 0, 10, 10], [20, 0, 30, 10.0]]),
                         flag=np.array([1, 1]), class_id=np.array([1, 1]))
    res = SimpleNamespace(frame=np.array([1]), track_id=np.array([5]),
                          boxes=np.array([[0, 0, 10, 10.0]]))
    with pytest.raises(InputError, match="ground-truth id 1 appears twice in frame 1"):
        evaluate_sequence(gt, res, benchmark="MOT17")
    gt.track_id = np.array([1, 2])
    assert evaluate_sequence(gt, res, benchmark="MOT17").clear.tp == 1
    gt.class_id = np.array([-1, -1])
    with pytest.raises(InputError, match="class -1 is not a MOTChallenge class"):
        evaluate_sequence(gt, res, benchmark="MOT17")
    assert evaluate_sequence(gt, res, benchmark="MOT15").clear.tp == 1
    with pytest.raises(ValueError, match="cannot infer the benchmark"):
        evaluate_sequence(gt, res)
    with pytest.raises(ValueError, match="unknown benchmark 'MOT99'"):
        evaluate_sequence(gt, res, benchmark="MOT99")


@pytest.mark.parametrize(
    ("path", "columns", "expected"),
    [
        ("/data/MOT17/train/MOT17-02-FRCNN", 9, "MOT17"),
        ("/data/MOT20/train/MOT20-01", 9, "MOT20"),
        ("/data/MOT20/train/MOT17-02-FRCNN", 9, "MOT17"),  # the closest name wins
        ("/data/2DMOT2015/train/KITTI-17", 10, "MOT15"),
        ("/data/MOT16/train/MOT16-02", None, "MOT16"),
        ("/data/mine/seq", 10, "MOT15"),
        ("/data/mine/seq", 9, "MOT17"),
        (None, 10, "MOT15"),
        ("/data/MOT170/x", 9, "MOT17"),  # MOT170 is not a benchmark name: column count decides
    ],
)
def test_infer_benchmark(path, columns, expected):
    assert infer_benchmark(path, columns).value == expected


def test_infer_benchmark_conflict():
    with pytest.raises(ValueError, match=r"looks like MOT17 but .* 10-column"):
        infer_benchmark("/data/MOT17/train/X", 10)
