"""The pooling study's core on a tiny synthetic sequence folder, with random weights."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location(
        "pooling_study", REPO / "benchmarks" / "pooling_study.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["pooling_study"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("pooling_study", None)


def _brute_auc(pos, neg):
    wins = sum((p < n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_roc_auc_matches_pair_counting_with_ties(study):
    rng = np.random.default_rng(3)
    pos = rng.integers(0, 5, 40).astype(float)  # many ties, within and across sides
    neg = rng.integers(2, 8, 30).astype(float)
    assert study.roc_auc(pos, neg) == pytest.approx(_brute_auc(pos, neg), abs=1e-12)
    assert study.roc_auc([0.1, 0.2], [0.3, 0.4]) == 1.0
    assert study.roc_auc([0.3, 0.4], [0.1, 0.2]) == 0.0
    assert study.roc_auc([0.5], [0.5]) == 0.5
    assert np.isnan(study.roc_auc([], [0.5]))


def test_sample_pairs_respects_window_and_is_deterministic(study):
    frames = np.array([1, 1, 2, 3, 3, 5, 9])
    ids = np.array([1, 2, 1, 2, 1, 1, 2])
    pos, neg = study.sample_pairs(frames, ids, window=2, n_max=100, seed=0)
    everything = np.concatenate([pos, neg])
    gaps = frames[everything[:, 1]] - frames[everything[:, 0]]
    assert gaps.min() >= 1 and gaps.max() <= 2
    assert (ids[pos[:, 0]] == ids[pos[:, 1]]).all()
    assert (ids[neg[:, 0]] != ids[neg[:, 1]]).all()
    brute = {(i, j) for i in range(7) for j in range(7) if 1 <= frames[j] - frames[i] <= 2}
    assert {tuple(p) for p in everything.tolist()} == brute
    a = study.sample_pairs(frames, ids, 2, 2, seed=5)
    b = study.sample_pairs(frames, ids, 2, 2, seed=5)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert len(a[0]) <= 2 and len(a[1]) <= 2


def _write_sequence(root: Path, name: str = "TINY-01", n_frames: int = 8) -> Path:
    """Two people walking right on a 96 x 64 frame; det.txt and det_frcnn.txt with a miss."""
    from PIL import Image

    seq = root / name
    (seq / "img1").mkdir(parents=True)
    (seq / "det").mkdir()
    (seq / "gt").mkdir()
    (seq / "seqinfo.ini").write_text(
        f"[Sequence]\nname={name}\nimDir=img1\nframeRate=10\nseqLength={n_frames}\n"
        "imWidth=96\nimHeight=64\nimExt=.jpg\n")
    rng = np.random.default_rng(0)
    gt, det, frcnn = [], [], []
    for f in range(1, n_frames + 1):
        img = rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)
        Image.fromarray(img).save(seq / "img1" / f"{f:06d}.jpg")
        for pid, (x0, y) in enumerate(((5.0, 10.0), (50.0, 20.0)), start=1):
            x = x0 + 3 * f
            gt.append(f"{f},{pid},{x},{y},16,32,1,-1,-1,-1")
            det.append(f"{f},-1,{x + 1},{y},16,32,{30 + pid},-1,-1,-1")
            if not (pid == 2 and f == 4):
                frcnn.append(f"{f},-1,{x},{y + 1},16,32,0.95,-1,-1,-1")
    (seq / "gt" / "gt.txt").write_text("\n".join(gt) + "\n")
    (seq / "det" / "det.txt").write_text("\n".join(det) + "\n")
    (seq / "det" / "det_frcnn.txt").write_text("\n".join(frcnn) + "\n")
    return seq


def _run_study(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    # Random weights: no cache (their tiny activations would underflow the float16 cache).
    argv = ["--data", str(tmp_path / "data"), "--weights", "random", "--no-cache",
            "--out", str(tmp_path / "out"), "--quick", "--image-scale", "1.0", "--pairs", "50",
            *extra]
    # As a user runs it: a fresh process, where the script limits OpenBLAS to one thread.
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([sys.executable, str(REPO / "benchmarks" / "pooling_study.py"), *argv],
                          check=False, capture_output=True, text=True, env=env, timeout=600)


def test_study_runs_both_axes_end_to_end_on_a_tiny_sequence(study, tmp_path):
    _write_sequence(tmp_path / "data")
    done = _run_study(tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    out = tmp_path / "out"
    res = json.loads((out / "pooling_study.json").read_text())
    md = (out / "pooling_study.md").read_text()
    # The backbone axis: every backbone (weights 'random' counts as found), with its preset.
    assert [b["name"] for b in res["backbones"]] == ["mobilenet_v2", "osnet_roi", "osnet_crops"]
    assert [b["preset"] for b in res["backbones"]] == [
        "configs/fused.yaml", "configs/fused_osnet_roi.yaml", "configs/fused_osnet.yaml"]
    assert res["adaptations"] == ["none", "centre"]
    sep = res["identity_separation"]
    assert set(sep["mobilenet_v2"]["modes"]) == set(study.QUICK_MODES)
    assert set(sep["osnet_roi"]["modes"]) == {*study.QUICK_MODES, "OSNet head"}
    assert list(sep["osnet_crops"]["modes"]) == ["OSNet x0.25 crops"]  # one vector per box
    for backbone in sep.values():
        for per_adaptation in backbone["modes"].values():
            assert set(per_adaptation) == {"none", "centre"}
            for cell in per_adaptation.values():
                assert 0.0 <= cell["all"]["auc"] <= 1.0
                assert set(cell["sequences"]) == {"TINY-01"}
    # The adaptation path is wired in: centring moves some mode's AUC on every backbone.
    assert all(any(c["none"]["all"] != c["centre"]["all"] for c in b["modes"].values())
               for b in sep.values())
    # OSNet's own head and the crops are 512-d whatever the RoI size; conv5 avg is 128-d.
    dims = {(r["backbone"], r["mode"]): r["embedding_dim"] for r in res["runs"]}
    assert dims[("osnet_crops", "OSNet x0.25 crops")] == 512
    assert dims[("osnet_roi", "gem p=3")] == 128  # the preset's own pooling, always tracked
    assert dims[("mobilenet_v2", "avg")] == 1280
    # Tracking: each tracked mode with each adaptation over both runs; motion once per lifecycle.
    for b, modes in res["tracked_modes"].items():
        assert 1 <= len(modes) <= 2
        for m in modes:
            for a in ("none", "centre"):
                row = next(r for r in res["tracking"]
                           if (r["backbone"], r["mode"], r["adaptation"]) == (b, m, a))
                assert set(row["runs"]) == {"TINY-01/det.txt", "TINY-01/det_frcnn.txt"}
                assert row["idf1"]["min"] <= row["idf1"]["mean"] <= row["idf1"]["max"]
    motion = [r for r in res["tracking"] if r["backbone"] == "-"]
    assert sorted(r["lifecycle"] for r in motion) == [
        "fused.yaml", "fused_osnet_roi.yaml, fused_osnet.yaml"]
    for heading in ("## Identity separation: backbone x adaptation",
                    "## Identity separation per mode",
                    "## Does the ranking of pooling modes carry over",
                    "## Tracking under the fused association", "## Conclusion"):
        assert heading in md
    assert "| OSNet x0.25 crops | 1 |" in md  # the AUC summary's row
    assert "motion only (fused.yaml)" in md and "Spearman rho" in md
    assert (out / "pooling_study_auc.png").stat().st_size > 1000
    # Re-rendering from the JSON gives the same report.
    (out / "pooling_study.md").unlink()
    assert study.main(["--from-json", str(out / "pooling_study.json"), "--out", str(out)]) == 0
    assert (out / "pooling_study.md").read_text() == md


def test_centre_adaptation_changes_the_vectors_and_their_auc(study):
    """A shared direction dominates every vector; online centring removes it, causally."""
    from study.data import StudySequence
    from study.separation import adapted_vectors, identity_auc

    rng = np.random.default_rng(0)
    n_frames, dim = 200, 16  # the adapter's mean weighs n / (n + prior) after n vectors
    common = np.zeros(dim)
    common[0] = 6.0
    identity = rng.normal(size=(3, dim))
    maps = []
    for _ in range(n_frames):
        v = common + identity + rng.normal(scale=0.8, size=(3, dim))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        maps.append(v.astype(np.float32)[:, :, None, None])  # (N, D, 1, 1): avg is identity
    ids = np.tile([1, 2, 3], n_frames)
    seq = StudySequence("SYN", {"det.txt": [None] * n_frames}, {"det.txt": None},
                        np.repeat(np.arange(1, n_frames + 1), 3), ids,
                        np.zeros((len(ids), 4)), maps={"x": {"gt": maps}})
    per_frame = [m[:, :, 0, 0] for m in maps]
    ids_per_frame = [np.array([1, 2, 3])] * n_frames
    none = adapted_vectors(per_frame, ids_per_frame, "none")
    centre = adapted_vectors(per_frame, ids_per_frame, "centre")
    assert np.array_equal(none, np.concatenate(per_frame))
    np.testing.assert_allclose(np.linalg.norm(centre, axis=1), 1.0, rtol=1e-5)
    # The shared direction is gone from the late frames (the running mean has settled)...
    assert none[-30:, 0].mean() > 0.7 and abs(centre[-30:, 0].mean()) < 0.3 * none[-30:, 0].mean()
    # ...and causally: the first frame is centred by itself alone, whatever comes later.
    assert np.allclose(adapted_vectors(per_frame[:1], ids_per_frame[:1], "centre"), centre[:3])
    auc = identity_auc([seq], [study_mode("avg")], ["none", "centre"], window=5,
                       n_pairs=10_000, seed=0, layer_of=lambda m: "x")
    cells = auc["modes"]["avg"]
    assert cells["centre"]["all"]["auc"] != cells["none"]["all"]["auc"]
    assert cells["none"]["sequences"]["SYN"] == cells["none"]["all"]


def test_tracking_runs_the_preset_with_the_adaptation_and_mode(study):
    from study.common import BACKBONES, MOTION
    from study.run import REPO as STUDY_REPO
    from study.run import run_config

    from deeptrack.config import load_yaml
    from deeptrack.types import AdaptationMode

    for backbone in BACKBONES:
        preset = load_yaml(STUDY_REPO / "configs" / backbone.preset)
        mode = backbone.modes()[-1]
        cfg = run_config(preset, mode, "centre")
        assert cfg.tracker.adaptation is AdaptationMode.CENTRE
        assert cfg.head == mode.head() and cfg.use_appearance
        # Everything else of the lifecycle is the preset's.
        assert cfg.tracker == dataclasses.replace(preset.tracker, adaptation="centre")
        assert run_config(preset, mode, "none").tracker == preset.tracker
        assert not run_config(preset, MOTION, "none").use_appearance


def study_mode(name: str):
    from study.common import Mode

    return Mode(name, name)


def test_findings_rank_statistics_and_verdicts(study):
    from study.findings import ranks, spearman, verdict

    assert ranks([0.9, 0.7, 0.8]).tolist() == [1.0, 3.0, 2.0]
    assert ranks([0.5, 0.5, 0.1]).tolist() == [1.5, 1.5, 3.0]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert verdict([0.01, 0.02, 0.03, -0.001]) == "helps"
    assert verdict([-0.01, -0.02, 0.01, -0.001]) == "hurts"
    assert verdict([0.01, 0.02, 0.0, -0.001]) == "mixed"  # a run that stays counts against
    assert verdict([-0.2, 0.0, 0.0, 0.0]) == "mixed"  # one run moving is not evidence
    assert verdict([0.05, -0.01, -0.01, 0.0]) == "mixed"
    assert verdict([0.0, 0.0]) == "no change"


@pytest.mark.parametrize("argv, message", [
    (["--backbones", "resnet"], "--backbones: resnet unknown"),
    (["--adaptation", "sideways"], "--adaptation: sideways unknown"),
    (["--adaptation", "none,whiten"], "--adaptation: whiten is not studied here"),
    (["--sequences", "NOPE"], "--sequences: NOPE not in"),
])
def test_bad_axes_are_one_line_and_status_2(study, tmp_path, capsys, argv, message):
    _write_sequence(tmp_path / "data")
    args = ["--data", str(tmp_path / "data"), "--weights", "random", "--no-cache",
            "--out", str(tmp_path / "out"), "--quick", *argv]
    assert study.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"pooling_study: error: {message}")
    assert not (tmp_path / "out").exists()


def test_missing_weights_of_an_asked_backbone_is_an_error(study, tmp_path, capsys):
    _write_sequence(tmp_path / "data")
    (tmp_path / "w").mkdir()
    assert study.main(["--data", str(tmp_path / "data"), "--weights", str(tmp_path / "w"),
                       "--backbones", "osnet_crops", "--out", str(tmp_path / "out")]) == 2
    assert "osnet_x0_25_msmt17.pth not found" in capsys.readouterr().err
