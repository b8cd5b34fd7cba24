"""Parity with the official MOTChallenge evaluation (TrackEval 1.3.0) on identical files.

TrackEval runs end to end here (``Evaluator`` + ``MotChallenge2DBox`` + HOTA, CLEAR,
Identity), which works on NumPy 2; our numbers come from reading the same files with
``deeptrack.io`` and evaluating them with ``deeptrack.eval``. Every metric must agree to
1e-9 (counts exactly). A few cases also show where motmetrics' own matching would
disagree with the official numbers, which is why ``deeptrack.eval.clear`` chooses the
correspondences itself.
"""

from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path

import numpy as np
import pytest

from deeptrack.boxes import iou_matrix, tlwh_to_xyxy
from deeptrack.eval import evaluate
from deeptrack.io import find_sequences, load_evaluation_inputs

trackeval = pytest.importorskip("trackeval")
motmetrics = pytest.importorskip("motmetrics")

TOL = 1e-9
MEAN_FIELDS = {"hota": "HOTA", "deta": "DetA", "assa": "AssA", "loca": "LocA",
               "detre": "DetRe", "detpr": "DetPr", "assre": "AssRe", "asspr": "AssPr"}
CLEAR_FIELDS = {"mota": "MOTA", "motp": "MOTP", "moda": "MODA", "recall": "CLR_Re",
                "precision": "CLR_Pr", "tp": "CLR_TP", "fn": "CLR_FN", "fp": "CLR_FP",
                "idsw": "IDSW", "frag": "Frag", "mt": "MT", "pt": "PT", "ml": "ML"}
ID_FIELDS = {"idf1": "IDF1", "idp": "IDP", "idr": "IDR", "idtp": "IDTP", "idfn": "IDFN",
             "idfp": "IDFP"}


def _lines(rows) -> str:
    return "".join(",".join(str(v) for v in r) + "\n" for r in rows)


def write_case(root: Path, seqs: dict[str, tuple[str, str, int]]) -> tuple[Path, Path]:
    """Write ``{name: (gt text, result text, frames)}`` as gt folder + tracker folder."""
    for name, (gt, res, n_frames) in seqs.items():
        seq = root / "gt" / name
        (seq / "gt").mkdir(parents=True)
        (seq / "gt" / "gt.txt").write_text(gt)
        (seq / "seqinfo.ini").write_text(
            f"[Sequence]\nname={name}\nimDir=img1\nframeRate=30\nseqLength={n_frames}\n"
            "imWidth=1920\nimHeight=1080\nimExt=.jpg\n")
        data = root / "trk" / "me" / "data"
        data.mkdir(parents=True, exist_ok=True)
        (data / f"{name}.txt").write_text(res)
    return root / "gt", root / "trk" / "me" / "data"


def run_trackeval(root: Path, benchmark: str) -> dict[str, dict]:
    """Run the official evaluation on ``write_case``'s folders; rows by sequence name."""
    names = [p.name for p in sorted((root / "gt").iterdir())]
    eval_config = {"USE_PARALLEL": False, "PRINT_RESULTS": False, "PRINT_CONFIG": False,
                   "TIME_PROGRESS": False, "OUTPUT_SUMMARY": False, "OUTPUT_DETAILED": False,
                   "PLOT_CURVES": False, "LOG_ON_ERROR": None}
    dataset_config = {"GT_FOLDER": str(root / "gt"), "TRACKERS_FOLDER": str(root / "trk"),
                      "BENCHMARK": benchmark, "SKIP_SPLIT_FOL": True,
                      "SEQ_INFO": dict.fromkeys(names), "TRACKERS_TO_EVAL": ["me"],
                      "PRINT_CONFIG": False}
    quiet = {"PRINT_CONFIG": False}
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = trackeval.Evaluator(eval_config)
        res, msg = evaluator.evaluate(
            [trackeval.datasets.MotChallenge2DBox(dataset_config)],
            [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR(quiet),
             trackeval.metrics.Identity(quiet)])
    assert msg["MotChallenge2DBox"]["me"] == "Success", msg
    return {k: v["pedestrian"] for k, v in res["MotChallenge2DBox"]["me"].items()}


def assert_parity(root: Path, benchmark: str) -> dict[str, dict]:
    """Evaluate ``root`` both ways and compare every metric of every row."""
    ref = run_trackeval(root, benchmark)
    report = evaluate(load_evaluation_inputs(root / "gt", root / "trk" / "me" / "data"),
                      benchmark=benchmark)
    ours = {s.name: s for s in report.sequences}
    ours["COMBINED_SEQ"] = report.combined
    assert set(ours) == set(ref)
    for name, row in ours.items():
        d, r = row.to_dict(), ref[name]
        for key, te in MEAN_FIELDS.items():
            assert abs(d[key] - float(np.mean(r["HOTA"][te]))) <= TOL, (name, key)
        np.testing.assert_allclose(row.hota.hota_alpha, r["HOTA"]["HOTA"], rtol=0, atol=TOL)
        np.testing.assert_allclose(row.hota.tp, r["HOTA"]["HOTA_TP"], rtol=0, atol=0)
        for fields, metric in ((CLEAR_FIELDS, "CLEAR"), (ID_FIELDS, "Identity")):
            for key, te in fields.items():
                assert abs(d[key] - float(r[metric][te])) <= TOL, (name, key, d[key], r[metric][te])
    return {name: row.to_dict() for name, row in ours.items()}


# ------------------------------------------------------------------ hand-made sequences


def _hand_case(layout: str) -> tuple[str, str, int]:
    from test_eval_hand import GT15, GT17, RESULTS

    gt = GT15 if layout == "MOT15" else GT17
    return _lines(gt), _lines([r + [1, -1, -1, -1] for r in RESULTS]), 5


@pytest.mark.parametrize("bench", ["MOT15", "MOT17", "MOT20"])
def test_parity_on_hand_made_sequence(tmp_path, bench):
    layout = "MOT15" if bench == "MOT15" else "MOT17"
    write_case(tmp_path, {"HAND": _hand_case(layout), "HAND-B": _hand_case(layout)})
    rows = assert_parity(tmp_path, bench)
    assert rows["HAND"]["mota"] == pytest.approx({"MOT15": 0.0, "MOT17": 0.1, "MOT20": 0.2}[bench])


def _motmetrics_alone(gt_rows, res_rows) -> dict:
    """What motmetrics' own matching reports on MOT15-layout rows (flag in column 7)."""
    acc = motmetrics.MOTAccumulator()
    for f in sorted({r[0] for r in gt_rows} | {r[0] for r in res_rows}):
        g = [r for r in gt_rows if r[0] == f and r[6] != 0]
        h = [r for r in res_rows if r[0] == f]
        iou = iou_matrix(tlwh_to_xyxy([r[2:6] for r in g]), tlwh_to_xyxy([r[2:6] for r in h]))
        acc.update([r[1] for r in g], [r[1] for r in h],
                   np.where(iou >= 0.5, 1 - iou, np.nan), frameid=f)
    names = ["num_switches", "num_fragmentations", "mostly_tracked", "num_matches", "mota"]
    return motmetrics.metrics.create().compute(acc, metrics=names, return_dataframe=False)


def B(x: float) -> list[float]:
    return [x, 1, 10, 10]


DIVERGENT = {
    # object 1 is found by result 1, missed in frame 2 (result 2 is elsewhere), and in
    # frame 3 covered by result 3 (IoU 1) and result 1 (IoU 0.67). Officially the pair
    # 1-1 is not continued across the miss: result 3 wins, an identity switch.
    # motmetrics keeps 1-1: no switch, MOTA 0 instead of -1/3.
    "continuation": (
        [[f, 1, *B(1), 1] for f in (1, 2, 3)],
        [[1, 1, *B(1)], [2, 2, *B(500)], [3, 1, *B(3)], [3, 3, *B(1)]],
        {"idsw": (1, 0), "mota": (-1 / 3, 0.0)},
    ),
    # three objects and three results on a line, 3 px apart: officially the assignment
    # maximises summed IoU (two pairs at IoU 1), motmetrics maximises the number of pairs
    # (three at IoU 7/13): TP 2 instead of 3.
    "cardinality": (
        [[1, 1, *B(1), 1], [1, 2, *B(4), 1], [1, 3, *B(-2), 1]],
        [[1, 11, *B(1)], [1, 12, *B(4)], [1, 13, *B(7)]],
        {"tp": (2, 3), "mota": (1 / 3, 1.0)},
    ),
    # object 1 is absent in frame 2 while object 2 is tracked: officially tracking of 1
    # restarts in frame 3 (a fragmentation); motmetrics sees no miss in between.
    "absence": (
        [[1, 1, *B(1), 1], [3, 1, *B(1), 1]] + [[f, 2, *B(101), 1] for f in (1, 2, 3)],
        [[1, 1, *B(1)], [3, 1, *B(1)]] + [[f, 2, *B(101)] for f in (1, 2, 3)],
        {"frag": (1, 0)},
    ),
    # object tracked in exactly 4 of 5 frames: officially not mostly tracked (> 80%),
    # for motmetrics it is (>= 80%).
    "mostly-tracked": (
        [[f, 1, *B(1), 1] for f in range(1, 6)],
        [[f, 1, *B(1)] for f in range(1, 5)],
        {"mt": (0, 1)},
    ),
}
_MM_NAMES = {"idsw": "num_switches", "frag": "num_fragmentations", "mt": "mostly_tracked",
             "mota": "mota"}


@pytest.mark.parametrize("case", sorted(DIVERGENT))
def test_parity_where_motmetrics_alone_differs(tmp_path, case):
    gt_rows, res_rows, expected = DIVERGENT[case]
    n_frames = max(r[0] for r in gt_rows)
    write_case(tmp_path, {"S": (_lines([r + [-1, -1, -1] for r in gt_rows]),
                                _lines([r + [1, -1, -1, -1] for r in res_rows]), n_frames)})
    ours = assert_parity(tmp_path, "MOT15")["S"]
    alone = _motmetrics_alone(gt_rows, res_rows)
    for key, (official, motmetrics_value) in expected.items():
        assert ours[key] == pytest.approx(official), key
        mm_value = (alone["num_matches"] + alone["num_switches"] if key == "tp"
                    else alone[_MM_NAMES[key]])
        assert mm_value == pytest.approx(motmetrics_value), key


# ------------------------------------------------------------------ random crowded scenes


def random_sequence(rng: np.random.Generator, layout: str, n_frames: int = 15,
                    n_objects: int = 10) -> tuple[str, str, int]:
    """Crowded random scene and an ambiguous tracker: loose boxes, a second "shadow"
    track near some objects, new ids, swapped ids and false positives."""
    gt, res = [], []
    next_id = 100
    track_of, shadow_of = {}, {}
    for obj in range(1, n_objects + 1):
        start = int(rng.integers(1, n_frames))
        stop = int(rng.integers(start, n_frames + 1))
        x, y = rng.uniform(0, 150), rng.uniform(0, 60)
        w, h = rng.uniform(10, 30), rng.uniform(20, 60)
        cls = int(rng.choice([1, 1, 1, 1, 1, 2, 7, 8, 12, 3, 6]))
        flag = int(cls == 1 and rng.random() > 0.1) if layout == "MOT17" else int(
            rng.random() > 0.15)
        track_of[obj], shadow_of[obj] = obj, 500 + obj
        for f in range(start, stop + 1):
            x, y = x + rng.normal(0, 3), y + rng.normal(0, 2)
            tail = [flag, cls, round(float(rng.uniform(0, 1)), 2)] if layout == "MOT17" else [
                flag, -1, -1, -1]
            gt.append([f, obj, round(x, 2), round(y, 2), round(w, 2), round(h, 2), *tail])
            if rng.random() < 0.08:  # the tracker gives this object a new id
                track_of[obj] = next_id
                next_id += 1
            for tid, p_keep, spread in ((track_of[obj], 0.85, 0.12), (shadow_of[obj], 0.3, 0.2)):
                if rng.random() < p_keep:
                    jx, jy = rng.normal(0, spread, 2) * (w, h)
                    res.append([f, tid, round(x + jx, 2), round(y + jy, 2),
                                round(w * rng.uniform(0.8, 1.2), 2), round(h, 2)])
    for f in range(1, n_frames + 1):
        if rng.random() < 0.2:  # two objects' tracks swap ids
            a, b = rng.choice(n_objects, 2, replace=False) + 1
            track_of[a], track_of[b] = track_of[b], track_of[a]
        for _ in range(int(rng.poisson(1.0))):
            res.append([f, next_id, round(rng.uniform(0, 150), 2), round(rng.uniform(0, 60), 2),
                        20, 40])
            next_id += 1
    # a swap can give one id to two boxes of a frame: keep the first
    seen, unique = set(), []
    for r in res:
        if (r[0], r[1]) not in seen:
            seen.add((r[0], r[1]))
            unique.append(r)
    order = rng.permutation(len(unique))  # result files need not be sorted
    res = [unique[i] + [round(float(rng.uniform(0, 1)), 3), -1, -1, -1] for i in order]
    return _lines(gt), _lines(res), n_frames


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("bench", ["MOT15", "MOT17", "MOT20"])
def test_parity_on_random_scenes(tmp_path, bench, seed):
    rng = np.random.default_rng(seed)
    layout = "MOT15" if bench == "MOT15" else "MOT17"
    write_case(tmp_path, {f"RND-{k}": random_sequence(rng, layout) for k in range(3)})
    assert_parity(tmp_path, bench)


# ------------------------------------------------------------------ real sequences


def _scored_rows_as_results(gt_text: str) -> str:
    """The ground truth a perfect tracker would output: scored pedestrians, as results."""
    out = []
    for line in gt_text.split():
        f = line.split(",")
        if float(f[6]) != 0 and (len(f) == 10 or float(f[7]) == 1):
            out.append(",".join(f[:6]) + ",1,-1,-1,-1")
    return "\n".join(out) + "\n"


def fake_tracker(gt_text: str, rng: np.random.Generator) -> str:
    """A deterministic imperfect tracker built from ground truth (all rows, distractors too).

    Boxes jittered by 5% of their size, 10% of rows dropped, the first two ids swapped
    after the middle frame, a third id replaced from the 70th percentile frame on, and
    5% false positives.
    """
    a = np.array([[float(v) for v in line.split(",")[:6]] for line in gt_text.split()])
    frame, ids = a[:, 0], a[:, 1].copy()
    u = np.unique(ids)
    late = frame > np.median(frame)
    ids[late & (a[:, 1] == u[0])], ids[late & (a[:, 1] == u[1])] = u[1], u[0]
    ids[(a[:, 1] == u[2]) & (frame > np.percentile(frame, 70))] = 10_000
    b = a.copy()
    b[:, 1] = ids
    b[:, 2:4] += rng.normal(0, 0.05, (len(a), 2)) * b[:, 4:6]
    b[:, 4:6] *= np.exp(rng.normal(0, 0.05, (len(a), 2)))
    b = b[rng.random(len(b)) > 0.1]
    n_fp = len(b) // 20
    fp = np.column_stack([rng.choice(np.unique(frame), n_fp), 20_000 + np.arange(n_fp),
                          rng.uniform(0, 1500, n_fp), rng.uniform(0, 800, n_fp),
                          rng.uniform(30, 100, n_fp), rng.uniform(80, 250, n_fp)])
    b = np.vstack([b, fp])
    return "".join(
        f"{int(r[0])},{int(r[1])},{r[2]:.2f},{r[3]:.2f},{r[4]:.2f},{r[5]:.2f},1,-1,-1,-1\n"
        for r in b)


REAL = [("MOT15/train", "MOT15"), ("MOT17-mini/train", "MOT17")]


def _real_case(tmp_path: Path, data_root: Path, split: str, make) -> None:
    seqs = {}
    for path in find_sequences(data_root / split):
        gt = (path / "gt" / "gt.txt").read_text()
        seqs[path.name] = (gt, make(gt), len(list((path / "img1").glob("*.jpg"))))
    write_case(tmp_path, seqs)


@pytest.mark.integration
@pytest.mark.parametrize(("split", "bench"), REAL)
def test_real_ground_truth_against_itself(tmp_path, data_root, split, bench):
    _real_case(tmp_path, data_root, split, _scored_rows_as_results)
    rows = assert_parity(tmp_path, bench)
    for name, row in rows.items():
        for key in ("mota", "motp", "idf1", "hota", "deta", "assa", "loca"):
            assert row[key] == pytest.approx(1.0, abs=1e-12), (name, key)
        assert row["fp"] == row["fn"] == row["idsw"] == 0


@pytest.mark.integration
@pytest.mark.parametrize(("split", "bench"), REAL)
def test_real_sequences_with_a_fake_tracker(tmp_path, data_root, split, bench):
    rng = np.random.default_rng(7)
    _real_case(tmp_path, data_root, split, lambda gt: fake_tracker(gt, rng))
    rows = assert_parity(tmp_path, bench)
    combined = rows["COMBINED_SEQ"]
    assert 0 < combined["mota"] < 1 and combined["idsw"] > 0 and combined["fp"] > 0


@pytest.mark.integration
def test_evaluating_adl_rundle_6_is_fast(tmp_path, data_root):
    path = data_root / "MOT15" / "train" / "ADL-Rundle-6"
    rng = np.random.default_rng(0)
    (tmp_path / "ADL-Rundle-6.txt").write_text(fake_tracker((path / "gt" / "gt.txt").read_text(),
                                                            rng))
    start = time.perf_counter()
    report = evaluate(load_evaluation_inputs(path, tmp_path))
    elapsed = time.perf_counter() - start
    assert report.combined.benchmark == "MOT15"  # inferred from the path
    assert elapsed < 5.0, f"{elapsed:.2f} s"
