"""Online adaptation of appearance vectors: hand-computed transforms, causality, tracker wiring."""

from __future__ import annotations

import numpy as np
import pytest

from deeptrack import Tracker, TrackerConfig
from deeptrack.appearance.adapt import OnlineAdapter
from deeptrack.errors import ConfigError, InputError
from deeptrack.synthetic import make_scene

S = np.sqrt(0.5)


def test_none_returns_the_vectors_untouched():
    x = np.eye(3, dtype=np.float32)
    assert OnlineAdapter("none")(x) is x


def test_centre_subtracts_the_running_mean_then_normalises():
    a = OnlineAdapter("centre", prior=0)
    out = a(np.array([[1, 0], [0, 1]], np.float32))  # mean (0.5, 0.5)
    np.testing.assert_allclose(out, [[S, -S], [-S, S]], atol=1e-6)
    # Next frame: mean of three vectors (1/3, 2/3); (0, 1) - mean = (-1/3, 1/3).
    out = a(np.array([[0, 1]], np.float32))
    np.testing.assert_allclose(out, [[-S, S]], atol=1e-6)
    assert a.count == 3


def test_the_mean_enters_gradually_while_few_vectors_are_seen():
    a = OnlineAdapter("centre", prior=2)  # weight n / (n + 2) = 0.5 after two vectors
    out = a(np.array([[1, 0], [0, 1]], np.float32))
    v = np.array([1, 0]) - 0.5 * np.array([0.5, 0.5])  # (0.75, -0.25)
    np.testing.assert_allclose(out[0], v / np.linalg.norm(v), atol=1e-6)


def test_adaptation_is_causal():
    rng = np.random.default_rng(0)
    frames = [rng.normal(size=(4, 8)).astype(np.float32) for _ in range(12)]
    for mode in ("centre", "centre_scale"):
        short, long = OnlineAdapter(mode), OnlineAdapter(mode)
        a = [short(f) for f in frames[:6]]
        b = [long(f) for f in frames]
        for x, y in zip(a, b[:6]):
            np.testing.assert_array_equal(x, y)


def _steps(cov_diag, n, rng):
    """(before, after) pairs whose half squared difference has expectation ``cov_diag``."""
    d = rng.normal(size=(n, len(cov_diag))) * np.sqrt(2 * np.asarray(cov_diag))
    before = rng.normal(size=(n, len(cov_diag)))
    return before.astype(np.float32), (before + d).astype(np.float32)


def test_whiten_by_hand_in_two_dimensions():
    # Within-track steps of covariance diag(9, 1), no cross term. After many steps,
    # shrinkage 0.1 towards level 5 (the mean variance): diag(0.9 * 9 + 0.5, 0.9 + 0.5)
    # = diag(8.6, 1.4); the whitener is diag(sqrt(5 / 8.6), sqrt(5 / 1.4)).
    rng = np.random.default_rng(1)
    a = OnlineAdapter("whiten", prior=0, min_steps=10)
    a(np.array([[0.0, 0.0]], np.float32))  # mean (0, 0) from here on
    a.observe(*_steps([9.0, 1.0], 200_000, rng))
    out = a(np.array([[0.0, 0.0]], np.float32) + np.array([[1.0, 1.0]], np.float32))
    w = a._whitener
    np.testing.assert_allclose(np.diag(w), [np.sqrt(5 / 8.6), np.sqrt(5 / 1.4)], rtol=0.01)
    assert abs(w[0, 1]) < 0.01 * w[0, 0]
    # (1, 1) minus the mean (1/2, 1/2) of the two vectors seen, whitened, normalised.
    v = 0.5 * np.array([np.sqrt(5 / 8.6), np.sqrt(5 / 1.4)])
    np.testing.assert_allclose(out[0], v / np.linalg.norm(v), rtol=0.01)


def test_whiten_is_centre_until_min_steps_then_refits_at_a_quarter_more():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(5, 6)).astype(np.float32)
    w, c = OnlineAdapter("whiten", min_steps=40), OnlineAdapter("centre")
    w.observe(*_steps(np.ones(6), 39, rng))
    np.testing.assert_allclose(w(x), c(x), atol=1e-6)  # 39 < 40 steps: no whitening yet
    assert w._whitener is None
    w.observe(*_steps(np.arange(1, 7), 1, rng))
    w(x)
    first = w._whitener.copy()
    w.observe(*_steps(np.arange(1, 7), 9, rng))  # 49 < 1.25 * 40 = 50: kept
    w(x)
    np.testing.assert_array_equal(w._whitener, first)
    w.observe(*_steps(np.arange(1, 7) ** 2, 1, rng))  # 50: refit
    w(x)
    assert not np.array_equal(w._whitener, first)
    np.testing.assert_allclose(w._whitener, w._whitener.T, atol=1e-12)  # symmetric: no rotation


def test_whiten_is_causal_and_refuses_huge_vectors():
    rng = np.random.default_rng(3)
    frames = [rng.normal(size=(4, 8)).astype(np.float32) for _ in range(30)]
    steps = [_steps(np.arange(1, 9), 5, rng) for _ in range(30)]

    def run(n):
        a = OnlineAdapter("whiten", min_steps=10)
        outs = []
        for f, st in zip(frames[:n], steps[:n]):
            outs.append(a(f))
            a.observe(*st)
        return outs

    for x, y in zip(run(15), run(30)[:15]):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(InputError, match="whiten.*4097"):
        OnlineAdapter("whiten")(np.ones((1, 4097), np.float32))
    OnlineAdapter("centre")(np.ones((1, 4097), np.float32))  # only whiten keeps a DxD matrix


def test_scale_weights_favour_dimensions_that_differ_across_objects():
    a = OnlineAdapter("centre_scale", prior=0, max_weight=100)
    # Two objects apart along dim 0; each jitters along dim 1 only.
    x = np.array([[1, 0.1], [-1, -0.1]], np.float32)
    a(x)
    a.observe(x, np.array([[1, -0.1], [-1, 0.1]], np.float32))
    # total var: dim 0 = 1, dim 1 = 0.01; within var (half the mean squared step):
    # dim 0 = 0, dim 1 = 0.5 * 0.04 = 0.02. Ratios sqrt(1 / 1e-12) = 1e6 and sqrt(0.5);
    # divided by their mean: ~2 and ~1.4e-6, the second clipped up to 1 / 100.
    w = a.weights()
    assert w[0] / w[1] == pytest.approx(2 / 0.01, rel=1e-5)
    assert w.mean() == pytest.approx(1.0)


def test_scale_weights_stay_one_until_steps_are_seen():
    a = OnlineAdapter("centre_scale", prior=50)
    a(np.eye(4, dtype=np.float32))
    np.testing.assert_array_equal(a.weights(), np.ones(4))


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        OnlineAdapter("centre", prior=-1)
    with pytest.raises(ValueError):
        OnlineAdapter("sideways")
    with pytest.raises(ConfigError, match="adaptation"):
        TrackerConfig(adaptation="sideways")
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="adaptation_prior"):
            TrackerConfig(adaptation="centre", adaptation_prior=bad)


def test_tracker_uses_the_configured_prior():
    # One frame of two vectors with prior 2: the mean enters at weight 2 / (2 + 2).
    x = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    tr = Tracker(TrackerConfig(association="fused", adaptation="centre", adaptation_prior=2.0))
    np.testing.assert_allclose(tr._adapter(x), OnlineAdapter("centre", prior=2.0)(x))
    assert tr._adapter.prior == 2.0
    assert Tracker(TrackerConfig(adaptation="centre"))._adapter.prior == 30.0


def test_tracker_refuses_whitening_huge_vectors_before_touching_its_state():
    tr = Tracker(TrackerConfig(association="fused", adaptation="whiten"))
    boxes = np.array([[0.0, 0.0, 10.0, 20.0]])
    with pytest.raises(InputError, match="whiten.*4097"):
        tr.update(boxes, np.ones(1), np.ones((1, 4097), np.float32))
    assert tr.frame_count == 0 and tr._adapter.count == 0
    tr.update(boxes, np.ones(1), np.ones((1, 64), np.float32))  # a usable dimension still works


@pytest.mark.parametrize("mode", ["centre", "centre_scale", "whiten"])
def test_tracker_adapts_and_a_failed_update_changes_nothing(mode):
    scene = make_scene(6, 60, seed=1, embedding_dim=16, p_miss=0.05)
    tr = Tracker(TrackerConfig(association="fused", adaptation=mode))
    for f in scene.frames[:30]:
        tr.update(f.boxes, f.scores, f.embeddings)
    seen = tr._adapter.count
    steps = dict(tr._raw_last)
    bad = scene.frames[30].boxes.copy()
    bad[0, 0] = np.nan
    with pytest.raises(InputError):
        tr.update(bad, scene.frames[30].scores, scene.frames[30].embeddings)
    assert tr._adapter.count == seen and tr._raw_last.keys() == steps.keys()
    for f in scene.frames[30:]:
        out = tr.update(f.boxes, f.scores, f.embeddings)
    assert tr._adapter.count == sum(len(f.boxes) for f in scene.frames)
    assert len(out) >= 5
    if mode != "centre":
        assert tr._adapter._m > 0  # within-track steps reached the adapter
    if mode == "whiten":
        assert tr._adapter._whitener is not None  # 60 frames of 6 tracks: past min_steps
