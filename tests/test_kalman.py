"""The batched Kalman engine equals filterpy's KalmanFilter step for step."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deeptrack.motion.gating import chi2_quantile, mahalanobis_sq
from deeptrack.motion.kalman import BatchedKalman, FilterpyKalman, to_compact, to_full


def _random_walk(rng, n_tracks, n_steps):
    start = np.column_stack([
        rng.uniform(50, 1800, n_tracks), rng.uniform(50, 1000, n_tracks),
        rng.uniform(0.3, 0.6, n_tracks), rng.uniform(30, 300, n_tracks),
    ])
    vel = rng.normal(0, 3, (n_tracks, 4)) * [1, 1, 0.001, 0.2]
    return [start + vel * k + rng.normal(0, 1, (n_tracks, 4)) * [2, 2, 0.01, 2]
            for k in range(n_steps)]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_tracks=st.integers(1, 6),
       skips=st.lists(st.booleans(), min_size=10, max_size=10))
def test_batched_equals_filterpy_step_for_step(seed, n_tracks, skips):
    rng = np.random.default_rng(seed)
    meas = _random_walk(rng, n_tracks, 11)
    batched, reference = BatchedKalman(), FilterpyKalman()
    m_b, c_b = batched.initiate(meas[0])
    m_r, c_r = reference.initiate(meas[0])
    np.testing.assert_array_equal(m_b, m_r)
    np.testing.assert_array_equal(to_full(c_b), c_r)
    for k, skip in enumerate(skips, start=1):
        m_b, c_b = batched.predict(m_b, c_b)
        m_r, c_r = reference.predict(m_r, c_r)
        np.testing.assert_allclose(m_b, m_r, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(to_full(c_b), c_r, rtol=1e-12, atol=1e-9)
        p_b, s_b = batched.project(m_b, c_b)
        p_r, s_r = reference.project(m_r, c_r)
        np.testing.assert_allclose(p_b, p_r, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(np.stack([np.diag(x) for x in s_b]), s_r, rtol=1e-12, atol=1e-9)
        dets = meas[k] + 5.0
        np.testing.assert_allclose(mahalanobis_sq(p_b, s_b, dets), mahalanobis_sq(p_r, s_r, dets),
                                   rtol=1e-9)
        if not skip:  # a missed frame is a predict without update
            m_b, c_b = batched.update(m_b, c_b, meas[k])
            m_r, c_r = reference.update(m_r, c_r, meas[k])
            np.testing.assert_allclose(m_b, m_r, rtol=1e-12, atol=1e-9)
            np.testing.assert_allclose(to_full(c_b), c_r, rtol=1e-12, atol=1e-9)
            # the blocks stay decoupled: outside them filterpy holds only round-off
            np.testing.assert_allclose(to_full(to_compact(c_r)), c_r, rtol=1e-12, atol=1e-9)


def test_noise_scales_with_height():
    kf = BatchedKalman(1 / 20, 1 / 160)
    _mean, cov = kf.initiate(np.array([[0, 0, 0.5, 100.0], [0, 0, 0.5, 200.0]]))
    cov = to_full(cov)
    # Initial position std = 2 * h / 20; velocity std = 10 * h / 160.
    assert cov[0, 0, 0] == pytest.approx((2 * 100 / 20) ** 2)
    assert cov[1, 0, 0] == pytest.approx((2 * 200 / 20) ** 2)
    assert cov[0, 4, 4] == pytest.approx((10 * 100 / 160) ** 2)
    assert cov[0, 2, 2] == pytest.approx(1e-4)


def test_predict_moves_by_velocity():
    kf = BatchedKalman()
    mean = np.array([[10.0, 20.0, 0.5, 100.0, 3.0, -1.0, 0.0, 0.5]])
    cov = to_compact(np.broadcast_to(np.eye(8), (1, 8, 8)).copy())
    m2, _ = kf.predict(mean, cov)
    np.testing.assert_allclose(m2[0], [13, 19, 0.5, 100.5, 3, -1, 0, 0.5])


def test_chi2_gate_value():
    # The DeepSORT table: 0.95 quantile with 4 dof.
    assert chi2_quantile(0.95, 4) == pytest.approx(9.4877, abs=1e-4)


def test_mahalanobis_hand_computed():
    proj = np.array([[0.0, 0.0, 0.0, 0.0]])
    s = np.diag([4.0, 1.0, 1.0, 9.0])[None]
    det = np.array([[2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 3.0], [2.0, 1.0, 0.0, 3.0]])
    np.testing.assert_allclose(mahalanobis_sq(proj, s, det), [[1.0, 1.0, 3.0]])
    assert mahalanobis_sq(proj, s, np.zeros((0, 4))).shape == (1, 0)
