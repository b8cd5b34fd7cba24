"""Evaluation at its thresholds' equality cases, computed by hand.

The official definitions (TrackEval, which the MOTChallenge server runs):

- CLEAR MOT (Bernardin & Stiefelhagen 2008) and identity (Ristani et al. 2016):
  a ground-truth/result pair may match when IoU >= 0.5, so IoU exactly 0.5
  matches; preprocessing removes a result matched (IoU >= 0.5) to a distractor.
- Mostly tracked: tracked in *more than* 80% of the object's frames; mostly
  lost: *less than* 20%; partly tracked: the rest (20% included).
- HOTA (Luiten et al. 2021): a matched pair is a true positive at alpha when
  ``IoU >= alpha - eps``; the alphas are ``np.arange(0.05, 0.99, 0.05)``, so
  alpha "0.6" is 0.6000000000000001 and an IoU of exactly 0.6 still counts.

Whole-pixel boxes produce these values: ``W(w, h)`` is a w x h box with its top
left corner at file pixel (1, 1), inside the 10 x 10 box ``W(10, 10)``, so its
IoU with that box is ``w * h / 100`` exactly (0.5 for 5 x 10, 0.6 for 6 x 10,
0.49 for 7 x 7). Files are written 1-based tlwh, as MOTChallenge files are.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from deeptrack.eval import ALPHAS, Benchmark, evaluate, evaluate_sequence, prepare_sequence
from deeptrack.io import read_ground_truth, read_results


def W(w: float = 10, h: float = 10, x: float = 1) -> list[float]:
    return [x, 1, w, h]


def load(tmp_path: Path, gt_rows, res_rows, name: str = "s"):
    """gt rows are complete 9-column MOT17 lines; result rows are (frame, id, x, y, w, h)."""
    d = tmp_path / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "gt.txt").write_text("".join(",".join(map(str, r)) + "\n" for r in gt_rows))
    (d / "res.txt").write_text("".join(",".join(map(str, r)) + ",1,-1,-1,-1\n" for r in res_rows))
    return read_ground_truth(d / "gt.txt"), read_results(d / "res.txt")


def ped(frame: int, oid: int, box: list[float], cls: int = 1, flag: int = 1) -> list[float]:
    return [frame, oid, *box, flag, cls, 1]


def test_whole_pixel_ious_are_exact():
    from deeptrack.boxes import iou_matrix, tlwh_to_xyxy

    full = tlwh_to_xyxy([[0, 0, 10, 10]])
    for (w, h), iou in [((5, 10), 0.5), ((6, 10), 0.6), ((7, 7), 0.49)]:
        assert iou_matrix(full, tlwh_to_xyxy([[0, 0, w, h]]))[0, 0] == iou
    assert ALPHAS[9] == 0.5 and ALPHAS[11] == 0.6000000000000001


def test_iou_exactly_one_half_is_a_match(tmp_path):
    # frame 1: result exactly on the object; frame 2: result 5 x 10, IoU 0.5
    gt, res = load(tmp_path, [ped(1, 1, W()), ped(2, 1, W())],
                   [[1, 1, *W()], [2, 1, *W(5, 10)]])
    m = evaluate_sequence(gt, res, benchmark="MOT17")
    c = m.clear
    assert (c.tp, c.fp, c.fn, c.idsw) == (2, 0, 0, 0)
    assert c.motp == pytest.approx(0.75)  # (1 + 0.5) / 2
    assert (c.mt, c.pt, c.ml) == (1, 0, 0)
    assert (m.identity.idtp, m.identity.idfp, m.identity.idfn) == (2, 0, 0)
    h = m.hota
    # alphas 0.05 .. 0.50 (10): TP 2, DetA 1, AssA 1.
    # alphas 0.55 .. 0.95 (9): TP 1, FN 1, FP 1: DetA 1/3; the pair's TPA 1,
    #   FNA 2 - 1, FPA 2 - 1: AssA 1/3; HOTA sqrt(1/3 * 1/3) = 1/3.
    np.testing.assert_array_equal(h.tp, [2] * 10 + [1] * 9)
    assert h.hota == pytest.approx((10 + 9 / 3) / 19)
    assert h.det_a == pytest.approx((10 + 9 / 3) / 19)
    assert h.ass_a_mean == pytest.approx((10 + 9 / 3) / 19)
    assert h.det_re == pytest.approx((10 + 9 / 2) / 19)
    assert h.ass_re_mean == pytest.approx((10 + 9 / 2) / 19)
    assert h.loc_a_mean == pytest.approx((10 * 0.75 + 9 * 1.0) / 19)


def test_iou_just_below_one_half_is_not_a_match(tmp_path):
    # frame 2: result 7 x 7, IoU 0.49
    gt, res = load(tmp_path, [ped(1, 1, W()), ped(2, 1, W())],
                   [[1, 1, *W()], [2, 1, *W(7, 7)]])
    m = evaluate_sequence(gt, res, benchmark="MOT17")
    assert (m.clear.tp, m.clear.fp, m.clear.fn) == (1, 1, 1)
    assert (m.identity.idtp, m.identity.idfp, m.identity.idfn) == (1, 1, 1)
    # HOTA has its own thresholds: the 0.49 pair is a TP for alpha <= 0.45 (9 alphas)
    np.testing.assert_array_equal(m.hota.tp, [2] * 9 + [1] * 10)


def test_hota_alpha_equal_to_the_iou_counts(tmp_path):
    # One object, one frame, result 6 x 10: IoU exactly 0.6, a TP for the 12
    # alphas 0.05 .. "0.6" (0.6000000000000001 - eps <= 0.6), not for the 7 above.
    gt, res = load(tmp_path, [ped(1, 1, W())], [[1, 1, *W(6, 10)]])
    h = evaluate_sequence(gt, res, benchmark="MOT17").hota
    np.testing.assert_array_equal(h.tp, [1] * 12 + [0] * 7)
    np.testing.assert_array_equal(h.fn, [0] * 12 + [1] * 7)
    np.testing.assert_array_equal(h.fp, [0] * 12 + [1] * 7)
    assert h.hota == pytest.approx(12 / 19)
    assert h.ass_a_mean == pytest.approx(12 / 19)
    assert h.loc_a_mean == pytest.approx((12 * 0.6 + 7 * 1.0) / 19)


def test_continuation_holds_at_iou_one_half(tmp_path):
    # frame 1: result 1 exact; frame 2: result 1 at IoU 0.5 and result 2 exact.
    # The pair of the previous frame continues as long as IoU >= 0.5, even
    # against a better box: TP, one FP, no identity switch.
    gt, res = load(tmp_path, [ped(1, 1, W()), ped(2, 1, W())],
                   [[1, 1, *W()], [2, 1, *W(5, 10)], [2, 2, *W()]])
    c = evaluate_sequence(gt, res, benchmark="MOT17").clear
    assert (c.tp, c.fp, c.fn, c.idsw) == (2, 1, 0, 0)
    assert c.motp == pytest.approx(0.75)


def test_distractor_match_at_iou_one_half_is_removed(tmp_path):
    # A pedestrian (1) and a static person (class 7, 2) far apart. Result 11 sits
    # on the static person at IoU 0.5 (removed); result 12 at IoU 0.49 (kept: FP).
    gt_rows = [ped(1, 1, W()), ped(1, 2, W(x=101), cls=7, flag=0)]
    gt, res = load(tmp_path, gt_rows, [[1, 10, *W()], [1, 11, *W(5, 10, x=101)]], "a")
    p = prepare_sequence(gt, res, Benchmark.MOT17)
    assert p.n_removed == 1 and p.n_res_dets == 1
    c = evaluate_sequence(gt, res, benchmark="MOT17").clear
    assert (c.tp, c.fp) == (1, 0)
    gt, res = load(tmp_path, gt_rows, [[1, 10, *W()], [1, 12, *W(7, 7, x=101)]], "b")
    p = prepare_sequence(gt, res, Benchmark.MOT17)
    assert p.n_removed == 0 and p.n_res_dets == 2
    assert evaluate_sequence(gt, res, benchmark="MOT17").clear.fp == 1


def test_mostly_tracked_partly_lost_boundaries(tmp_path):
    # Four objects in frames 1..5, far apart, tracked (each by its own result id) in
    #   object 1: 5 of 5 (100%: MT)   object 2: 4 of 5, missed in frame 3 (80%: PT)
    #   object 3: 1 of 5, frame 3 (20%: PT)   object 4: never (0%: ML)
    tracked = {1: {1, 2, 3, 4, 5}, 2: {1, 2, 4, 5}, 3: {3}, 4: set()}
    gt_rows = [ped(f, o, W(x=1 + 100 * o)) for f in range(1, 6) for o in tracked]
    res_rows = [[f, 10 + o, *W(x=1 + 100 * o)] for o, frames in tracked.items()
                for f in sorted(frames)]
    m = evaluate_sequence(*load(tmp_path, gt_rows, res_rows), benchmark="MOT17")
    c = m.clear
    assert (c.mt, c.pt, c.ml) == (1, 2, 1)
    assert (c.tp, c.fn, c.fp, c.idsw) == (10, 10, 0, 0)
    # object 2 is lost in frame 3 (which has results) and resumed in frame 4
    assert c.frag == 1
    assert c.mota == pytest.approx(0.5) and c.recall == pytest.approx(0.5)
    assert (m.identity.idtp, m.identity.idfn, m.identity.idfp) == (10, 10, 0)


def test_absent_object_interrupts_tracking(tmp_path):
    # Object 1 is in frames 1, 2 and 4 (absent in 3), tracked whenever present;
    # object 2 is in every frame, tracked. Officially the object's absence in a
    # frame with results is an interruption: one fragmentation, no switch.
    gt_rows = [ped(f, 1, W()) for f in (1, 2, 4)] + [ped(f, 2, W(x=101)) for f in (1, 2, 3, 4)]
    res_rows = [[f, 7, *W()] for f in (1, 2, 4)] + [[f, 8, *W(x=101)] for f in (1, 2, 3, 4)]
    c = evaluate_sequence(*load(tmp_path, gt_rows, res_rows), benchmark="MOT17").clear
    assert (c.tp, c.fp, c.fn, c.idsw, c.frag) == (7, 0, 0, 0, 1)
    assert (c.mt, c.pt, c.ml) == (2, 0, 0)


def test_result_id_zero_is_a_real_track(tmp_path):
    # Results renumber to 0..n-1; the object tracked by the result renumbered 0
    # (file id 0) in every frame is continuously tracked: no fragmentation.
    gt, res = load(tmp_path, [ped(f, 1, W()) for f in (1, 2, 3)],
                   [[f, 0, *W()] for f in (1, 2, 3)])
    c = evaluate_sequence(gt, res, benchmark="MOT17").clear
    assert (c.tp, c.idsw, c.frag) == (3, 0, 0)


def test_hota_combines_association_weighted_by_true_positives(tmp_path):
    # A: one object in one frame, found (TP 1, AssA 1).
    # B: one object in 2 frames, found exactly by result 1 then result 2
    #    (TP 2; each TP's pair has TPA 1, FNA 1, FPA 0: AssA 1/2, AssRe 1/2, AssPr 1).
    gt_a, res_a = load(tmp_path, [ped(1, 1, W())], [[1, 1, *W()]], "a")
    gt_b, res_b = load(tmp_path, [ped(1, 1, W()), ped(2, 1, W())],
                       [[1, 1, *W()], [2, 2, *W()]], "b")
    report = evaluate([SimpleNamespace(name="A", path=None, gt=gt_a, results=res_a),
                       SimpleNamespace(name="B", path=None, gt=gt_b, results=res_b)],
                      benchmark="MOT17")
    assert report["B"].hota.ass_a_mean == pytest.approx(0.5)
    h = report.combined.hota
    np.testing.assert_array_equal(h.tp, [3] * 19)
    # TP-weighted: (1 * 1 + 2 * 1/2) / 3, not the mean of 1 and 1/2
    assert h.ass_a_mean == pytest.approx(2 / 3)
    assert h.ass_re_mean == pytest.approx(2 / 3)
    assert h.ass_pr_mean == pytest.approx(1.0)
    assert h.hota == pytest.approx(math.sqrt(2 / 3))
    assert h.loc_a_mean == pytest.approx(1.0)


def test_hota_localisation_combines_weighted_by_true_positives(tmp_path):
    # A: one TP at IoU 0.6 (alphas <= 0.6); B: two exact TPs. Combined LocA at the
    # 12 low alphas: (0.6 * 1 + 1 * 2) / 3; at the 7 high ones only B's: 1.
    gt_a, res_a = load(tmp_path, [ped(1, 1, W())], [[1, 1, *W(6, 10)]], "a")
    gt_b, res_b = load(tmp_path, [ped(1, 1, W()), ped(2, 1, W())],
                       [[1, 1, *W()], [2, 1, *W()]], "b")
    report = evaluate([SimpleNamespace(name="A", path=None, gt=gt_a, results=res_a),
                       SimpleNamespace(name="B", path=None, gt=gt_b, results=res_b)],
                      benchmark="MOT17")
    h = report.combined.hota
    np.testing.assert_array_equal(h.tp, [3] * 12 + [2] * 7)
    np.testing.assert_allclose(h.loc_a, [2.6 / 3] * 12 + [1.0] * 7, rtol=1e-12)
    # DetA: 1 at low alphas; TP 2, FN 1, FP 1 at the high ones
    np.testing.assert_allclose(h.det_a_alpha, [1.0] * 12 + [0.5] * 7, rtol=1e-12)


# ------------------------------------------------------------------ the same scenes, officially

EDGE_SCENES = {
    "HALF": ([ped(1, 1, W()), ped(2, 1, W())], [[1, 1, *W()], [2, 1, *W(5, 10)]]),
    "BELOW-HALF": ([ped(1, 1, W()), ped(2, 1, W())], [[1, 1, *W()], [2, 1, *W(7, 7)]]),
    "ALPHA-0.6": ([ped(1, 1, W())], [[1, 1, *W(6, 10)]]),
    "CONTINUE": ([ped(1, 1, W()), ped(2, 1, W())],
                 [[1, 1, *W()], [2, 1, *W(5, 10)], [2, 2, *W()]]),
    "DISTRACTOR": ([ped(1, 1, W()), ped(1, 2, W(x=101), cls=7, flag=0),
                    ped(1, 3, W(x=201), cls=7, flag=0)],
                   [[1, 10, *W()], [1, 11, *W(5, 10, x=101)], [1, 12, *W(7, 7, x=201)]]),
    "MT-PT-ML": ([ped(f, o, W(x=1 + 100 * o)) for f in range(1, 6) for o in (1, 2, 3, 4)],
                 [[f, 10 + o, *W(x=1 + 100 * o)]
                  for o, frames in {1: range(1, 6), 2: (1, 2, 4, 5), 3: (3,)}.items()
                  for f in frames]),
}


def test_edge_scenes_agree_with_trackeval(tmp_path):
    # Every scene above through the official evaluation (TrackEval) and ours, all
    # metrics to 1e-9 and counts exactly (test_eval_parity's comparison).
    parity = pytest.importorskip("test_eval_parity")
    cases = {}
    for name, (gt_rows, res_rows) in EDGE_SCENES.items():
        n_frames = max(r[0] for r in gt_rows + res_rows)
        cases[name] = ("".join(",".join(map(str, r)) + "\n" for r in gt_rows),
                       "".join(",".join(map(str, r)) + ",1,-1,-1,-1\n" for r in res_rows),
                       n_frames)
    parity.write_case(tmp_path, cases)
    rows = parity.assert_parity(tmp_path, "MOT17")
    assert rows["HALF"]["tp"] == 2 and rows["BELOW-HALF"]["tp"] == 1
    assert (rows["MT-PT-ML"]["mt"], rows["MT-PT-ML"]["pt"], rows["MT-PT-ML"]["ml"]) == (1, 2, 1)
    assert rows["DISTRACTOR"]["fp"] == 1


def test_hota_of_a_sequence_with_one_side_empty(tmp_path):
    # No scored ground truth, two result boxes: 2 FP at every alpha (not FN); and the
    # other way round. In a combined row those counts weigh on DetA.
    gt_none, res_two = load(tmp_path, [], [[1, 1, *W()], [2, 1, *W()]], "a")
    m = evaluate_sequence(gt_none, res_two, benchmark="MOT17")
    assert (m.identity.idtp, m.identity.idfn, m.identity.idfp) == (0, 0, 2)
    h = m.hota
    np.testing.assert_array_equal(h.fp, [2] * 19)
    np.testing.assert_array_equal(h.fn, [0] * 19)
    gt_three, res_none = load(tmp_path, [ped(f, 1, W()) for f in (1, 2, 3)], [], "b")
    m = evaluate_sequence(gt_three, res_none, benchmark="MOT17")
    assert (m.identity.idtp, m.identity.idfn, m.identity.idfp) == (0, 3, 0)
    assert (m.clear.fn, m.clear.ml) == (3, 1)
    h = m.hota
    np.testing.assert_array_equal(h.fn, [3] * 19)
    np.testing.assert_array_equal(h.fp, [0] * 19)
    gt_one, res_one = load(tmp_path, [ped(1, 1, W())], [[1, 1, *W()]], "c")
    report = evaluate([SimpleNamespace(name=n, path=None, gt=g, results=r) for n, g, r in
                       (("A", gt_none, res_two), ("B", gt_three, res_none),
                        ("C", gt_one, res_one))], benchmark="MOT17")
    # TP 1, FN 3, FP 2 at every alpha; AssA 1 (C's only pair)
    assert report.combined.hota.det_a == pytest.approx(1 / 6)
    assert report.combined.hota.hota == pytest.approx(math.sqrt(1 / 6))
    assert report.combined.identity.idf1 == pytest.approx(2 * 1 / (2 * 1 + 2 + 3))


def test_ground_truth_and_results_in_disjoint_frames(tmp_path):
    # One object in frame 1, one result box in frame 2: nothing can match. Officially
    # (TrackEval): TP 0, FN 1, FP 1 at every alpha; AssA 0; LocA 1 (no TP); HOTA 0.
    gt, res = load(tmp_path, [ped(1, 1, W())], [[2, 1, *W()]])
    m = evaluate_sequence(gt, res, benchmark="MOT17")
    assert (m.clear.tp, m.clear.fn, m.clear.fp) == (0, 1, 1)
    np.testing.assert_array_equal(m.hota.tp, [0] * 19)
    np.testing.assert_array_equal(m.hota.fn, [1] * 19)
    np.testing.assert_array_equal(m.hota.fp, [1] * 19)
    assert (m.hota.hota, m.hota.ass_a_mean, m.hota.loc_a_mean) == (0.0, 0.0, 1.0)


# ------------------------------------------------------------------ duck-typed inputs


def _gt(**kw):
    base = {"frame": np.array([1, 2]), "track_id": np.array([1, 1]),
                "boxes": np.array([[0, 0, 10, 10], [0, 0, 10, 10.0]]), "flag": np.array([1, 1]),
                "class_id": np.array([1, 1])}
    return SimpleNamespace(**{**base, **kw})


def _res(**kw):
    base = {"frame": np.array([1, 2]), "track_id": np.array([5, 5]),
                "boxes": np.array([[0, 0, 10, 10], [0, 0, 10, 10.0]])}
    return SimpleNamespace(**{**base, **kw})


@pytest.mark.parametrize(("gt", "res", "message"), [
    (_gt(track_id=np.array([1.0, 1.5])), _res(), r"^gt\.track_id must hold integers$"),
    (_gt(frame=np.array([1.0, np.nan])), _res(), r"^gt\.frame must hold integers$"),
    (_gt(flag=np.array([1])), _res(), r"^gt\.flag must have shape \(2,\), got \(1,\)$"),
    (_gt(class_id=np.array([1, 1, 1])), _res(), r"^gt\.class_id must have shape \(2,\)"),
    (_gt(frame=np.array([[1, 2]])), _res(), r"^gt\.frame must have shape \(N,\), got \(1, 2\)$"),
    (_gt(track_id=np.array(["a", "b"])), _res(), r"^gt\.track_id must be numeric, got dtype"),
    (_gt(boxes=np.array([[0, 0, 10, 10.0]])), _res(), r"^gt\.boxes has 1 rows but gt\.frame has 2$"),
    (_gt(boxes=np.array([[0, 0, 10, 10], [5, 0, 5, 10.0]])), _res(),
     r"^gt\.boxes\[1\] has zero or negative width/height"),
    (_gt(track_id=np.array([1])), _res(), r"^gt\.track_id must have shape \(2,\), got \(1,\)$"),
    (_gt(), _res(track_id=np.array([5, 5, 5])),
     r"^results\.track_id must have shape \(2,\), got \(3,\)$"),
    (_gt(), _res(track_id=np.array([5.0, 5.25])), r"^results\.track_id must hold integers$"),
    (_gt(), _res(frame=np.array([1.5, 2])), r"^results\.frame must hold integers$"),
    (_gt(), _res(boxes=np.zeros((3, 4))), r"^results\.boxes has 3 rows but results\.frame has 2$"),
    (_gt(), _res(boxes=np.array([[0, 0, 10, 10], [0, 0, np.inf, 10]])),
     r"^results\.boxes contains NaN or inf$"),
    # a repeat in the second frame (the first is not the only one checked)
    (_gt(frame=np.array([1, 2, 2]), track_id=np.array([1, 1, 1]), boxes=np.zeros((3, 4)) + [0, 0, 1, 1],
         flag=np.ones(3, int), class_id=np.ones(3, int)), _res(),
     r"^ground-truth id 1 appears twice in frame 2$"),
    (_gt(), _res(frame=np.array([1, 2, 2]), track_id=np.array([5, 5, 5]),
                 boxes=np.zeros((3, 4)) + [0, 0, 1, 1]), r"^result id 5 appears twice in frame 2$"),
])
def test_prepare_sequence_names_the_bad_column(gt, res, message):
    from deeptrack.errors import InputError

    with pytest.raises(InputError, match=message):
        prepare_sequence(gt, res, Benchmark.MOT17)


def test_prepare_sequence_accepts_integral_floats():
    p = prepare_sequence(_gt(frame=np.array([1.0, 2.0]), track_id=np.array([7.0, 7.0])),
                         _res(track_id=np.array([5.0, 5.0])), Benchmark.MOT17)
    assert (p.n_gt_dets, p.n_res_dets, p.n_gt_ids, p.n_res_ids) == (2, 2, 1, 1)
    empty = prepare_sequence(_gt(frame=np.zeros(0), track_id=np.zeros(0), boxes=np.zeros((0, 4)),
                                 flag=np.zeros(0), class_id=np.zeros(0)), _res(), Benchmark.MOT17)
    assert (empty.n_gt_dets, empty.n_res_dets) == (0, 2)


def test_evaluate_infers_each_sequence_benchmark_from_its_path(tmp_path):
    # A non-motorised vehicle (class 6) is a distractor on MOT20 only: the result on it
    # is removed when the sequence's path names MOT20, a false positive otherwise.
    gt, res = load(tmp_path, [ped(1, 1, W()), ped(1, 2, W(x=101), cls=6, flag=0)],
                   [[1, 1, *W()], [1, 2, *W(x=101)]])
    report = evaluate([SimpleNamespace(name="A", path=tmp_path / "MOT20" / "train" / "MOT20-01",
                                       gt=gt, results=res),
                       SimpleNamespace(name="B", path=tmp_path / "mine" / "seq", gt=gt,
                                       results=res)])
    assert (report["A"].benchmark, report["A"].clear.fp) == ("MOT20", 0)
    assert (report["B"].benchmark, report["B"].clear.fp) == ("MOT17", 1)


def test_infer_benchmark_conflict_message_in_full():
    from deeptrack.eval import infer_benchmark

    with pytest.raises(ValueError) as info:
        infer_benchmark("/data/MOT20/train/MOT20-01", 10)
    assert str(info.value) == (
        "/data/MOT20/train/MOT20-01 looks like MOT20 but its ground truth has the 10-column "
        "MOT15 layout (no class column); pass the benchmark explicitly")
