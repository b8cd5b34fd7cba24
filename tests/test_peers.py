"""The peer benchmark's adapters and report on tiny synthetic data (seconds, no real sequences)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from deeptrack.eval import evaluate_sequence
from deeptrack.io.mot import TrackResults
from deeptrack.pipeline import scene_ground_truth
from deeptrack.synthetic import make_scene

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def peers():
    spec = importlib.util.spec_from_file_location("peers", REPO / "benchmarks" / "peers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["peers"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("peers", None)


@pytest.fixture(scope="module")
def scene():
    """Four well-separated walkers, no misses, no false positives: every tracker should cope."""
    return make_scene(n_objects=4, n_frames=60, seed=3, p_miss=0.0, p_occlusion=0.0,
                      fp_per_frame=0.0, box_jitter=0.01, speed=3.0)


def _frames(peers, scene, with_embeddings: bool):
    return [peers.FrameInput(i + 1, f.boxes, f.scores, f.embeddings if with_embeddings else None)
            for i, f in enumerate(scene.frames)]


def _check_run(peers, scene, run):
    assert isinstance(run.results, TrackResults)
    assert run.frames == len(scene.frames) and run.seconds > 0
    assert len(run.results) > 0 and run.results.frame.max() <= len(scene.frames)
    metrics = evaluate_sequence(scene_ground_truth(scene), run.results, benchmark="MOT15")
    assert metrics.clear.mota > 0.5, metrics.to_dict()
    assert metrics.identity.idf1 > 0.5, metrics.to_dict()
    assert metrics.clear.idsw <= 4


@pytest.mark.parametrize("library,adapter,embeddings", [
    ("deep_sort_realtime", "DeepSortRealtimePeer", True),
    ("norfair", "NorfairPeer", False),
    ("motpy", "MotpyPeer", False),
])
def test_adapter_tracks_an_easy_scene(peers, scene, library, adapter, embeddings):
    pytest.importorskip(library)
    tracker = getattr(peers, adapter)(scene.frame_rate)
    _check_run(peers, scene, peers.run_peer(tracker, _frames(peers, scene, embeddings)))


def test_every_roboflow_tracker_tracks_an_easy_scene(peers, scene):
    pytest.importorskip("trackers")
    found, skipped = peers.roboflow_peers()
    assert {p.name for p in found} >= {"trackers SORT", "trackers ByteTrack"}, skipped
    for peer in found:
        first = peers.run_peer(peer.make(scene.frame_rate), _frames(peers, scene, False))
        _check_run(peers, scene, first)
        # Their id counters are class attributes: a second run must start again from 0.
        again = peers.run_peer(peer.make(scene.frame_rate), _frames(peers, scene, False))
        np.testing.assert_array_equal(again.results.track_id, first.results.track_id)


def test_deep_sort_realtime_matched_only_reports_a_subset(peers, scene):
    pytest.importorskip("deep_sort_realtime")
    frames = _frames(peers, scene, True)
    # Every object unseen for frames 20..24: the README rule keeps drawing them, ours does not.
    frames = [f if not 20 <= f.frame < 25 else peers.FrameInput(
        f.frame, f.boxes[:0], f.scores[:0], f.embeddings[:0]) for f in frames]
    readme = peers.run_peer(peers.DeepSortRealtimePeer(30.0), frames).results
    matched = peers.run_peer(peers.DeepSortRealtimePeer(30.0, matched_only=True), frames).results
    assert not np.isin(matched.frame, range(20, 25)).any()
    assert np.isin(readme.frame, range(20, 25)).any()
    shown = set(zip(readme.frame.tolist(), readme.track_id.tolist()))
    assert set(zip(matched.frame.tolist(), matched.track_id.tolist())) <= shown
    assert len(matched) < len(readme)


def test_deep_sort_realtime_needs_embeddings(peers, scene):
    pytest.importorskip("deep_sort_realtime")
    tracker = peers.DeepSortRealtimePeer(scene.frame_rate)
    with pytest.raises(ValueError, match="embeddings"):
        tracker.update(_frames(peers, scene, False)[0])


def test_acf_scores_are_scaled_and_clipped_frcnn_scores_kept(peers):
    acf = peers.peer_scores(np.array([-1.0, 0.0, 37.5, 150.0]), "det.txt")
    np.testing.assert_allclose(acf, [0.0, 0.0, 0.375, 1.0])
    frcnn = peers.peer_scores(np.array([0.5, 0.93, 1.0]), "det_frcnn.txt")
    np.testing.assert_allclose(frcnn, [0.5, 0.93, 1.0])


def test_collect_drops_collapsed_and_non_finite_boxes(peers):
    out = peers.FrameOutput.from_rows(
        [1, 2, 3], [[0, 0, 10, 10], [5, 5, 5, 9], [np.nan, 0, 1, 1]], [0.9, 0.8, 0.7])
    results, dropped = peers.collect([(1, out), (2, peers.FrameOutput.from_rows([], [], []))])
    assert dropped == 2
    np.testing.assert_array_equal(results.track_id, [1])
    np.testing.assert_array_equal(results.frame, [1])


def test_osnet_crop_is_normalised_chw_of_the_clipped_box(peers):
    image = np.full((40, 60, 3), 255, np.uint8)
    crop = peers.osnet_crop(image, np.array([-10.0, 5.0, 20.0, 90.0]))  # reaches outside
    assert crop.shape == (3, 256, 128) and crop.dtype == np.float32
    np.testing.assert_allclose(crop[:, 0, 0], (1.0 - peers.IMAGENET_MEAN) / peers.IMAGENET_STD,
                               rtol=1e-5)
    outside = peers.osnet_crop(image, np.array([100.0, 100.0, 120.0, 140.0]))
    assert np.isfinite(outside).all()


def _fake_runs():
    def row(idf1, hota):
        return {"mota": 0.5, "idf1": idf1, "hota": hota, "deta": 0.4, "assa": 0.4, "idsw": 3,
                "fp": 10, "fn": 20, "fps": 100.0}

    return [
        {"sequence": "A", "det_file": "det.txt", "frames": 5, "frame_rate": 30.0,
         "detections": 9, "results": {"deeptrack sort": row(0.4, 0.3), "motpy": row(0.5, 0.2),
                                      "norfair": {"error": "boom"}}},
        {"sequence": "B", "det_file": "det.txt", "frames": 5, "frame_rate": 30.0,
         "detections": 9, "results": {"deeptrack sort": row(0.6, 0.5), "motpy": row(0.3, 0.4),
                                      "norfair": row(0.2, 0.1)}},
    ]


def test_means_are_of_per_run_values_and_best_peer_per_run(peers):
    runs = _fake_runs()
    means = peers.mean_over_runs(runs)
    assert list(means) == ["deeptrack sort", "motpy", "norfair"]  # best mean IDF1 first
    assert means["deeptrack sort"]["idf1"] == pytest.approx(0.5)
    assert means["motpy"]["hota"] == pytest.approx(0.3)
    assert means["norfair"]["runs"] == 1  # its failed run is not averaged
    best = peers.best_per_run(runs)
    assert [b["best_peer"] for b in best] == ["motpy", "motpy"]
    assert [b["best_deeptrack"] for b in best] == ["deeptrack sort"] * 2
    table = peers.run_table(runs[0])
    assert "failed" in table and table.count("\n") == 4


def test_only_rejects_unknown_names(peers):
    plan = peers.Plan([], [], [], None, Path("x.onnx"))
    with pytest.raises(peers.PeersError, match="unknown tracker"):
        peers.select(plan, "no-such-tracker")


def _write_mot_sequence(root: Path, scene) -> Path:
    """The scene as a MOT15 folder without images (enough for motion-only trackers)."""
    seq = root / "MOT15" / "train" / "SYN-01"
    (seq / "det").mkdir(parents=True)
    (seq / "gt").mkdir()
    (seq / "seqinfo.ini").write_text(
        f"[Sequence]\nname=SYN-01\nimDir=img1\nframeRate={scene.frame_rate:g}\n"
        f"seqLength={len(scene.frames)}\nimWidth={scene.width}\nimHeight={scene.height}\n"
        "imExt=.jpg\n")

    def lines(boxes_of, tail_of):
        out = []
        for i, f in enumerate(scene.frames):
            for j, b in enumerate(boxes_of(f)):
                x, y, w, h = b[0] + 1, b[1] + 1, b[2] - b[0], b[3] - b[1]
                out.append(f"{i + 1},{tail_of(f, j)},{x:.2f},{y:.2f},{w:.2f},{h:.2f},-1,-1,-1")
        return "\n".join(out) + "\n"

    (seq / "gt" / "gt.txt").write_text(
        lines(lambda f: f.gt_boxes, lambda f, j: f"{f.gt_ids[j] + 1}").replace(",-1,-1,-1\n",
                                                                               ",1,-1,-1,-1\n"))
    (seq / "det" / "det.txt").write_text(lines(lambda f: f.boxes, lambda f, j: "-1").replace(
        ",-1,-1,-1\n", ",50,-1,-1,-1\n"))
    (seq / "det" / "det_frcnn.txt").write_text(lines(lambda f: f.boxes, lambda f, j: "-1")
                                               .replace(",-1,-1,-1\n", ",0.9,-1,-1,-1\n"))
    return seq


def test_main_writes_tables_for_motion_trackers(peers, scene, tmp_path):
    pytest.importorskip("motpy")
    _write_mot_sequence(tmp_path / "data", scene)
    out = tmp_path / "out"
    argv = ["--data", str(tmp_path / "data"), "--configs", str(REPO / "configs" / "sort.yaml"),
            "--only", "deeptrack,motpy", "--out", str(out)]
    assert peers.main(argv) == 0
    report = json.loads((out / "peers.json").read_text())
    assert [(r["sequence"], r["det_file"]) for r in report["runs"]] == [
        ("SYN-01", "det.txt"), ("SYN-01", "det_frcnn.txt")]
    for run in report["runs"]:
        assert set(run["results"]) == {"deeptrack sort", "motpy"}
        assert run["results"]["deeptrack sort"]["mota"] > 0.5
        assert run["results"]["motpy"]["mota"] > 0.5
    assert report["command"].startswith("python benchmarks/peers.py --data")
    text = (out / "peers.md").read_text()
    assert "## Mean over the 2 runs" in text and "| motpy" in text and "boxmot" in text


def test_main_exits_2_on_a_missing_data_folder(peers, tmp_path, capsys):
    assert peers.main(["--data", str(tmp_path / "nothing"), "--out", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err
    assert not (tmp_path / "peers.json").exists()


@pytest.mark.weights
def test_osnet_embeddings_are_cached_unit_vectors(peers, weights_root, tmp_path):
    pytest.importorskip("onnxruntime")
    from PIL import Image

    from deeptrack.io.sequence import load_sequence

    onnx = weights_root / peers.OSNET_FILE
    if not onnx.is_file():
        pytest.skip(f"{onnx} not found")
    seq_dir = tmp_path / "TINY-01"
    (seq_dir / "img1").mkdir(parents=True)
    (seq_dir / "det").mkdir()
    (seq_dir / "seqinfo.ini").write_text(
        "[Sequence]\nname=TINY-01\nimDir=img1\nframeRate=10\nseqLength=2\n"
        "imWidth=64\nimHeight=96\nimExt=.jpg\n")
    rng = np.random.default_rng(0)
    for f in (1, 2):
        Image.fromarray(rng.integers(0, 255, (96, 64, 3), dtype=np.uint8)).save(
            seq_dir / "img1" / f"{f:06d}.jpg")
    (seq_dir / "det" / "det.txt").write_text("1,-1,5,5,20,60,0.9,-1,-1,-1\n"
                                             "1,-1,30,10,20,60,0.8,-1,-1,-1\n")
    seq = load_sequence(seq_dir, det_file="det.txt")
    first = peers.osnet_embeddings(seq, onnx, root=tmp_path / "cache")
    assert [e.shape for e in first] == [(2, 512), (0, 512)]
    np.testing.assert_allclose(np.linalg.norm(first[0], axis=1), 1.0, rtol=1e-5)
    (cached,) = list((tmp_path / "cache").glob("TINY-01__det.txt__*.npy"))
    again = peers.osnet_embeddings(seq, onnx, root=tmp_path / "cache")
    np.testing.assert_array_equal(again[0], first[0])
    assert cached.is_file()
