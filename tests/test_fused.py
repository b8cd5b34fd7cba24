"""The fused association: calibrated appearance evidence, its stages, and offline interpolation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from deeptrack import Tracker, TrackerConfig
from deeptrack.association.calibration import BINS, LAGS, AppearanceCalibration, DistanceModel
from deeptrack.association.costs import GATED
from deeptrack.association.gallery import Gallery
from deeptrack.errors import ConfigError
from deeptrack.io.records import TrackResults
from deeptrack.pipeline import track_scene
from deeptrack.synthetic import make_crossing_scene, make_scene
from deeptrack.tracking.offline import INTERPOLATED, interpolate_gaps

FUSED = TrackerConfig(association="fused")


def separated(n, rng):
    """Same-identity distances near 0.05, different near 0.4."""
    return rng.normal(0.05, 0.02, n).clip(0, 2), rng.normal(0.4, 0.08, n).clip(0, 2)


# ---------------------------------------------------------------- calibration


def test_no_evidence_until_min_pairs_of_each_kind():
    m = DistanceModel(min_pairs=20)
    same, diff = separated(19, np.random.default_rng(0))
    m.add(same, diff)
    assert not m.llr(np.linspace(0, 2, 50)).any()
    m.add(np.array([0.05]), np.array([]))  # 20 same, still 19 different
    assert not m.llr(np.linspace(0, 2, 50)).any()
    m.add(np.array([]), np.array([0.4]))
    assert m.llr(np.array([0.05]))[0] > 0


def test_evidence_separates_and_never_rises_with_distance():
    m = DistanceModel(clip=4.0)
    m.add(*separated(1000, np.random.default_rng(1)))
    d = np.linspace(0, 2, 401)
    llr = m.llr(d)
    assert llr[d == 0.05][0] > 2.5 and m.llr(np.array([0.4]))[0] < -2.5
    assert (np.diff(llr) <= 1e-12).all()
    assert np.abs(llr).max() <= 4.0
    # The two densities are equal half way between (by symmetry of the spreads, roughly).
    assert m.llr(np.array([0.05]))[0] > m.llr(np.array([0.2]))[0] > m.llr(np.array([0.4]))[0]


def test_few_pairs_give_weaker_evidence_than_many():
    rng = np.random.default_rng(2)
    same, diff = separated(30, rng)
    shrunk, raw = DistanceModel(prior_pairs=50, clip=100), DistanceModel(prior_pairs=0, clip=100)
    shrunk.add(same, diff)
    raw.add(same, diff)
    d = np.linspace(0, 1, 21)
    # Shrinkage n / (n + prior_pairs): 30 pairs keep 30 / 80 of the evidence.
    np.testing.assert_allclose(shrunk.llr(d), raw.llr(d) * 30 / 80)
    many = DistanceModel(prior_pairs=50, clip=100)
    many.add(*separated(2000, rng))
    assert many.llr(np.array([0.05]))[0] > shrunk.llr(np.array([0.05]))[0] > 0


def test_capacity_keeps_the_most_recent_distances():
    m = DistanceModel(capacity=100, min_pairs=10)
    m.add(np.full(100, 0.8), np.full(100, 0.1))  # an old regime, inverted
    rng = np.random.default_rng(3)
    m.add(*separated(100, rng))  # the new one replaces it entirely
    assert m.counts == (100, 100)
    assert m.llr(np.array([0.05]))[0] > 0 > m.llr(np.array([0.4]))[0]


def test_out_of_range_and_gated_distances_are_ignored():
    m = DistanceModel(min_pairs=1)
    m.add(np.array([GATED, -0.1, 2.5, np.nan]), np.array([GATED]))
    assert m.counts == (0, 0)


def test_each_track_uses_the_lag_of_its_misses():
    cal = AppearanceCalibration(min_pairs=5)
    rng = np.random.default_rng(4)
    same, diff = separated(200, rng)
    # Only the lag-4 model learns, and learns the opposite of the others would.
    cal.models[LAGS.index(4)].add(diff, same)
    d = np.full(6, 0.05)
    llr = cal.llr(d, np.array([1, 3, 4, 5, 7, 8]))
    assert (llr[[0, 1, 5]] == 0).all()  # lags 1, 2 and 8 know nothing
    assert (llr[[2, 3, 4]] < 0).all()  # 4, 5 and 7 misses use lag 4


def test_calibration_table_has_one_value_per_bin():
    m = DistanceModel()
    m.add(*separated(500, np.random.default_rng(5)))
    assert m.table().shape == (BINS,)


# ---------------------------------------------------------------- gallery lags


def unit(i, d=4):
    v = np.zeros(d, np.float32)
    v[i] = 1.0
    return v


def test_lagged_cost_masks_the_newest_vectors():
    g = Gallery(budget=10)
    s = g.allocate(1, 4)
    for i in range(3):  # e0, e1, e2 in this order
        g.add(s, unit(i)[None])
    dets = np.stack([unit(0), unit(2)])
    cost = g.lagged_cost(int(s[0]), dets, (1, 2, 3, 4))
    np.testing.assert_allclose(cost[:3, 0], 0.0)  # e0 is old enough for every lag up to 3
    np.testing.assert_allclose(cost[:, 1], [0.0, 1.0, 1.0, GATED])  # e2 is the newest
    assert cost[3, 0] == GATED  # nothing is 3 updates old


def test_lagged_cost_after_the_ring_wraps():
    g = Gallery(budget=2)
    s = g.allocate(1, 4)
    for i in range(3):  # e0 is overwritten by e2: the ring holds e1 (older), e2
        g.add(s, unit(i)[None])
    cost = g.lagged_cost(int(s[0]), np.stack([unit(1), unit(2), unit(0)]), (1, 2, 3))
    np.testing.assert_allclose(cost[0], [0.0, 0.0, 1.0])
    np.testing.assert_allclose(cost[1], [0.0, 1.0, 1.0])
    assert (cost[2] == GATED).all()


# ---------------------------------------------------------------- the strategy


@pytest.mark.parametrize("seed", [0, 1])
def test_without_appearance_fused_is_deepsort_motion_only(seed):
    # The appearance term is then a neutral 0.5: 0.5 * (1 - IoU) + 0.25 <= 0.6 is exactly
    # 1 - IoU <= 0.7, the same stages in the same order: the same tracks, frame by frame.
    scene = make_scene(8, 120, seed=seed, fp_per_frame=1, p_miss=0.1, p_occlusion=0.02)
    base = TrackerConfig(output_max_gap=1)
    fused = dataclasses.replace(base, association="fused")
    a = track_scene(scene, base, use_appearance=False).results
    b = track_scene(scene, fused, use_appearance=False).results
    assert len(a) > 500
    for k in ("frame", "track_id", "boxes", "scores"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))


def identities(config, scene, use_appearance):
    tr = Tracker(config)
    seen = {}
    for fr in scene.frames:
        out = tr.update(fr.boxes, fr.scores, fr.embeddings if use_appearance else None)
        for tid, di in zip(out.track_ids, out.det_index):
            seen.setdefault(int(tid), set()).add(int(fr.det_ids[di]))
    return seen, tr


def test_calibrated_appearance_reidentifies_after_the_crossing():
    scene = make_crossing_scene(seed=3)
    seen, tr = identities(FUSED, scene, True)
    assert seen == {1: {0}, 2: {1}}
    assert min(tr._association.calibration.models[0].counts) >= 20
    # Without appearance for lost tracks (or at all), motion decides, and swaps them.
    no_lost = dataclasses.replace(FUSED, lost_appearance=False)
    assert identities(no_lost, scene, True)[0] == {1: {0, 1}, 2: {0, 1}}
    assert identities(FUSED, scene, False)[0] == {1: {0, 1}, 2: {0, 1}}


def test_reset_forgets_the_calibration():
    scene = make_crossing_scene(seed=3)
    _, tr = identities(FUSED, scene, True)
    tr.reset()
    assert tr._association.calibration.models[0].counts == (0, 0)


def test_low_score_detection_extends_a_track_but_starts_none():
    cfg = dataclasses.replace(FUSED, min_score_quantile=0.5, low_score_stage=True, n_init=1,
                              score_history=4)
    tr = Tracker(cfg)
    b = np.array([[100.0, 100, 140, 200], [400, 100, 440, 200]])
    emb = np.eye(2, 8, dtype=np.float32)
    out = tr.update(b, [0.9, 0.9], emb)
    out = tr.update(b + 2, [0.9, 0.9], emb)
    assert list(out.track_ids) == [1, 2]
    stored = tr._gallery._count.copy()
    # The first box now scores low (below the median of the recent scores): it still
    # moves its track, a low box far from any track starts nothing, and the low box's
    # appearance is not remembered.
    far = np.array([[800.0, 100, 840, 200]])
    out = tr.update(np.vstack([b + 4, far]), [0.1, 0.95, 0.05], np.vstack([emb, emb[:1]]))
    assert list(out.track_ids) == [1, 2]
    assert list(out.det_index) == [0, 1]
    assert len(tr.tracks) == 2
    slot1 = tr._tracks.slot[0]
    assert tr._gallery._count[slot1] == stored[slot1]


def test_a_prediction_shrunk_through_zero_is_not_output():
    cfg = TrackerConfig(n_init=1, output_max_gap=30)
    tr = Tracker(cfg)
    for h in (200.0, 150, 100, 50):  # height falling 50 px a frame
        tr.update([[100.0, 100, 140, 100 + h]], [1.0])
    for _ in range(10):  # lost: the prediction keeps shrinking
        out = tr.update(np.zeros((0, 4)), np.zeros(0))
        assert (out.boxes[:, 2:] > out.boxes[:, :2]).all()
    assert len(out) == 0 and len(tr.tracks) == 1


@pytest.mark.parametrize("key,value", [
    ("fused_max_cost", 0.0), ("fused_max_cost", float("nan")), ("iou_weight", 1.5),
    ("fused_levels", 1), ("appearance_evidence", "likelihood"),
])
def test_bad_fused_settings_are_refused(key, value):
    with pytest.raises(ConfigError, match=key):
        TrackerConfig(association="fused", **{key: value})


def test_low_score_stage_needs_fused_and_a_score_cut():
    with pytest.raises(ConfigError, match="low_score_stage.*fused"):
        TrackerConfig(low_score_stage=True, min_score_quantile=0.2)
    with pytest.raises(ConfigError, match="min_score_quantile"):
        TrackerConfig(association="fused", low_score_stage=True)


# ---------------------------------------------------------------- offline interpolation


def results(rows):
    a = np.array(rows, float)
    return TrackResults(a[:, 0].astype(np.int64), a[:, 1].astype(np.int64), a[:, 2:6], a[:, 6])


def test_interpolation_fills_short_gaps_corner_by_corner():
    r = results([[1, 7, 0, 0, 10, 10, 0.9], [4, 7, 30, 3, 40, 13, 0.8],
                 [1, 8, 0, 0, 5, 5, 0.9], [10, 8, 0, 0, 5, 5, 0.9]])
    out = interpolate_gaps(r, max_gap=2)
    assert list(out.frame) == [1, 1, 2, 3, 4, 10]
    assert list(out.track_id) == [7, 8, 7, 7, 7, 8]
    np.testing.assert_allclose(out.boxes[2], [10, 1, 20, 11])
    np.testing.assert_allclose(out.boxes[3], [20, 2, 30, 12])
    assert list(out.scores[2:4]) == [INTERPOLATED] * 2
    # Track 8's gap of 8 frames is too long; a larger max_gap fills it.
    assert (interpolate_gaps(r, max_gap=8).track_id == 8).sum() == 10
    assert interpolate_gaps(r, 0) is r
    assert len(interpolate_gaps(interpolate_gaps(r, 2), 2)) == len(out)


def test_interpolation_refuses_a_negative_gap():
    with pytest.raises(ValueError, match="max_gap"):
        interpolate_gaps(TrackResults.empty(), -1)


def test_interpolate_max_gap_is_checked_in_the_run_config():
    from deeptrack.config import RunConfig

    with pytest.raises(ConfigError, match="interpolate_max_gap"):
        RunConfig(interpolate_max_gap=-1)


def test_cli_interpolation_is_recorded_and_only_adds_rows(capsys, split, tmp_path):
    import json

    from cli_support import run

    det = split / "SEQ-01" / "det" / "det.txt"
    lines = det.read_text().splitlines()
    # The first person is not detected on frames 7 and 8 (rows 2 * (f - 1)).
    det.write_text("\n".join(r for i, r in enumerate(lines) if i not in (12, 14)) + "\n")
    rows = {}
    for gap in (0, 30):
        out = tmp_path / f"res{gap}"
        code, _, err = run(capsys, "track", split / "SEQ-01", "--no-appearance", "--out", out,
                           "--quiet", "--set", f"interpolate_max_gap={gap}",
                           "--set", "tracker.output_max_gap=0")
        assert code == 0, err
        assert json.loads((out / "config.json").read_text())["interpolate_max_gap"] == gap
        rows[gap] = {tuple(r.split(",")[:2]): r.split(",")[6]
                     for r in (out / "SEQ-01.txt").read_text().splitlines()}
    online, offline = rows[0], rows[30]
    assert set(online) <= set(offline)
    added = set(offline) - set(online)
    assert {k[0] for k in added} == {"7", "8"} and len({k[1] for k in added}) == 1
    assert {float(offline[k]) for k in added} == {INTERPOLATED}
