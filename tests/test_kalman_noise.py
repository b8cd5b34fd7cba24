"""The Kalman noise model at every step, not only at initiation.

DeepSORT (Wojke et al. 2017, sec. 2.1; the constant-velocity model in
(cx, cy, a, h)) scales the noise with the box height of the *current* mean:

- predict, process noise Q, from the mean before the step:
  std = (wp h, wp h, 1e-2, wp h, wv h, wv h, 1e-5, wv h);
- project and update, measurement noise R, from the predicted mean:
  std = (wp h, wp h, 1e-1, wp h);
- initiate: std = (2 wp h, 2 wp h, 1e-2, 2 wp h, 10 wv h, 10 wv h, 1e-5, 10 wv h),

with wp = 1/20 and wv = 1/160. The filterpy-backed engine of the package
shares the noise functions with the batched one, so comparing the two cannot
catch a wrong noise term; here Q and R are written out from these definitions
and handed to a ``filterpy.kalman.KalmanFilter`` built in the test.
"""

from __future__ import annotations

import numpy as np
import pytest
from filterpy.kalman import KalmanFilter
from hypothesis import given, settings
from hypothesis import strategies as st

from deeptrack.motion.gating import chi2_quantile
from deeptrack.motion.kalman import BatchedKalman, FilterpyKalman, KalmanModel, to_compact, to_full

WP, WV = 1 / 20, 1 / 160


def paper_q(h: float, wp: float = WP, wv: float = WV) -> np.ndarray:
    return np.diag(np.square([wp * h, wp * h, 1e-2, wp * h, wv * h, wv * h, 1e-5, wv * h]))


def paper_r(h: float, wp: float = WP) -> np.ndarray:
    return np.diag(np.square([wp * h, wp * h, 1e-1, wp * h]))


def paper_p0(h: float, wp: float = WP, wv: float = WV) -> np.ndarray:
    return np.diag(np.square([2 * wp * h, 2 * wp * h, 1e-2, 2 * wp * h,
                              10 * wv * h, 10 * wv * h, 1e-5, 10 * wv * h]))


def paper_filter(mean: np.ndarray, cov: np.ndarray) -> KalmanFilter:
    """A filterpy filter with the paper's F (dt = 1) and H, built here."""
    kf = KalmanFilter(dim_x=8, dim_z=4)
    kf.F = np.eye(8)
    for i in range(4):
        kf.F[i, 4 + i] = 1.0
    kf.H = np.zeros((4, 8))
    kf.H[np.arange(4), np.arange(4)] = 1.0
    kf.x = mean.reshape(8, 1).copy()
    kf.P = cov.copy()
    return kf


def assert_blocks_close(batched_cov, full, rtol=1e-10):
    """Compare compact (T, 3, 4) blocks with full covariances, element by element, relatively.

    atol = 0: the aspect-velocity variance is ~1e-10 and must still be right.
    """
    np.testing.assert_allclose(batched_cov, to_compact(full), rtol=rtol, atol=0)


# ------------------------------------------------------------------ one step by hand


def test_one_cycle_by_hand():
    # h = 100, at rest. Initial variances: pos (2 * 100/20)^2 = 100, a 1e-4,
    # vel (10 * 100/160)^2 = 39.0625, va 1e-10.
    kf = BatchedKalman()
    mean, cov = kf.initiate(np.array([[50.0, 80.0, 0.5, 100.0]]))
    np.testing.assert_array_equal(cov[0, 0], [100.0, 100.0, 1e-4, 100.0])
    np.testing.assert_array_equal(cov[0, 1], [0, 0, 0, 0])
    np.testing.assert_allclose(cov[0, 2], [39.0625, 39.0625, 1e-10, 39.0625], rtol=1e-15)

    # predict: Q pos (100/20)^2 = 25, a 1e-4; vel (100/160)^2 = 0.390625, va 1e-10
    # P_pp = pp + 2 pv + vv + q = 100 + 0 + 39.0625 + 25; P_pv = pv + vv; P_vv = vv + q
    mean, cov = kf.predict(mean, cov)
    np.testing.assert_allclose(cov[0, 0], [164.0625, 164.0625, 2e-4 + 1e-10, 164.0625],
                               rtol=1e-14)
    np.testing.assert_allclose(cov[0, 1], [39.0625, 39.0625, 1e-10, 39.0625], rtol=1e-14)
    np.testing.assert_allclose(cov[0, 2], [39.453125, 39.453125, 2e-10, 39.453125], rtol=1e-14)

    # project: S = P_pp + R, R pos (100/20)^2 = 25, a (1e-1)^2
    proj, s = kf.project(mean, cov)
    np.testing.assert_array_equal(proj, [[50.0, 80.0, 0.5, 100.0]])
    np.testing.assert_allclose(s, [[189.0625, 189.0625, 1e-2 + 2e-4 + 1e-10, 189.0625]],
                               rtol=1e-14)

    # update with z = (60, 80, 0.5, 100): gain k1 = P / S on the position,
    # k2 = P_pv / S on the velocity; variance P R / (P + R)
    z = np.array([[60.0, 80.0, 0.5, 100.0]])
    new_mean, new_cov = kf.update(mean, cov, z)
    k1, k2 = 164.0625 / 189.0625, 39.0625 / 189.0625
    np.testing.assert_allclose(new_mean[0], [50 + 10 * k1, 80, 0.5, 100, 10 * k2, 0, 0, 0],
                               rtol=1e-14, atol=1e-12)
    np.testing.assert_allclose(new_cov[0, 0, 0], 164.0625 * 25 / 189.0625, rtol=1e-12)
    # P_pv' = (1 - k1) P_pv; P_vv' = P_vv - P_pv^2 / S
    np.testing.assert_allclose(new_cov[0, 1, 0], (1 - k1) * 39.0625, rtol=1e-12)
    np.testing.assert_allclose(new_cov[0, 2, 0], 39.453125 - 39.0625**2 / 189.0625, rtol=1e-12)


def test_noise_uses_the_current_height_not_the_initial_one():
    # A box growing by 20 px a frame: Q at the second predict uses h = 120
    # (the mean's height before that predict), R at update uses the predicted height.
    kf = BatchedKalman()
    mean = np.array([[0.0, 0.0, 0.5, 100.0, 0.0, 0.0, 0.0, 20.0]])
    cov = np.zeros((1, 3, 4))
    m1, c1 = kf.predict(mean, cov)  # Q from h = 100; the mean's h becomes 120
    np.testing.assert_allclose(c1[0, 0], [25.0, 25.0, 1e-4, 25.0], rtol=1e-14)
    np.testing.assert_allclose(c1[0, 2], [100 / 256, 100 / 256, 1e-10, 100 / 256], rtol=1e-14)
    m2, c2 = kf.predict(m1, c1)  # Q from h = 120: pos 36, vel (120/160)^2 = 0.5625
    assert m2[0, 3] == 140.0
    np.testing.assert_allclose(c2[0, 2, 0], 100 / 256 + 0.5625, rtol=1e-14)
    # pp'' = pp' + 2 pv' + vv' + q = 25 + 0 + 100/256 + 36 (pv' = 0: P started at 0)
    np.testing.assert_allclose(c2[0, 0, 0], 25 + 100 / 256 + 36, rtol=1e-14)
    np.testing.assert_allclose(c2[0, 1, 0], 100 / 256, rtol=1e-14)
    # R from the predicted h = 140: (140/20)^2 = 49, whatever the measured height
    _, s = kf.project(m2, c2)
    np.testing.assert_allclose(s[0] - c2[0, 0], [49.0, 49.0, 1e-2, 49.0], rtol=1e-12)
    z = np.array([[0.0, 0.0, 0.5, 60.0]])
    _, c3 = kf.update(m2, c2, z)
    p = c2[0, 0, 0]
    np.testing.assert_allclose(c3[0, 0, 0], p * 49 / (p + 49), rtol=1e-12)


@pytest.mark.parametrize(("wp", "wv"), [(1 / 20, 1 / 160), (0.1, 0.02)])
def test_noise_functions_are_the_paper_diagonals(wp, wv):
    model = KalmanModel(wp, wv)
    mean = np.zeros((2, 8))
    mean[:, 3] = [80.0, 300.0]
    mean[:, 7] = [5.0, -40.0]
    q = model.process_noise(mean)
    r = model.measurement_noise(mean)
    for i, h in enumerate([80.0, 300.0]):
        np.testing.assert_allclose(q[i], np.diag(paper_q(h, wp, wv)), rtol=1e-14)
        np.testing.assert_allclose(r[i], np.diag(paper_r(h, wp)), rtol=1e-14)
    _, cov = model.initiate(mean[:, :4])
    for i, h in enumerate([80.0, 300.0]):
        np.testing.assert_allclose(cov[i], paper_p0(h, wp, wv), rtol=1e-14)


# ------------------------------------------------------------------ filterpy built here


def _random_state(rng, n):
    xyah = np.column_stack([rng.uniform(20, 1900, n), rng.uniform(20, 1000, n),
                            rng.uniform(0.25, 0.8, n), rng.uniform(20, 400, n)])
    return xyah


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 4),
       steps=st.lists(st.booleans(), min_size=3, max_size=8),
       weights=st.sampled_from([(1 / 20, 1 / 160), (0.08, 0.01)]))
def test_batched_filter_equals_filterpy_with_the_papers_q_and_r(seed, n, steps, weights):
    wp, wv = weights
    rng = np.random.default_rng(seed)
    first = _random_state(rng, n)
    kf = BatchedKalman(wp, wv)
    mean, cov = kf.initiate(first)
    ref = [paper_filter(mean[i], paper_p0(first[i, 3], wp, wv)) for i in range(n)]
    assert_blocks_close(cov, np.stack([f.P for f in ref]), rtol=1e-14)
    # a fast-growing box (height velocity up to +-15 px/frame) makes "which height"
    # matter: the heights before and after a predict differ by several percent
    vel = rng.normal(0, 4, (n, 4)) * [1, 1, 0.002, 3]
    truth = first.copy()
    for update in steps:
        truth = truth + vel
        h_before = [float(f.x[3, 0]) for f in ref]
        for f, h in zip(ref, h_before, strict=True):
            f.predict(Q=paper_q(h, wp, wv))
        mean, cov = kf.predict(mean, cov)
        np.testing.assert_allclose(mean, np.stack([f.x.ravel() for f in ref]), rtol=1e-12)
        assert_blocks_close(cov, np.stack([f.P for f in ref]))
        # project: S = H P H^T + R(h of the predicted mean)
        _, s = kf.project(mean, cov)
        for i, f in enumerate(ref):
            expected_s = f.H @ f.P @ f.H.T + paper_r(float(f.x[3, 0]), wp)
            np.testing.assert_allclose(s[i], np.diag(expected_s), rtol=1e-10, atol=0)
        if update:
            z = truth + rng.normal(0, 1, (n, 4)) * [2, 2, 0.01, 2]
            for i, f in enumerate(ref):
                f.update(z[i].reshape(4, 1), R=paper_r(float(f.x[3, 0]), wp))
            mean, cov = kf.update(mean, cov, z)
            np.testing.assert_allclose(mean, np.stack([f.x.ravel() for f in ref]), rtol=1e-10)
            assert_blocks_close(cov, np.stack([f.P for f in ref]), rtol=1e-9)


def test_reference_engine_uses_the_papers_q_and_r():
    # The package's filterpy engine, step for step against the filter built here.
    rng = np.random.default_rng(3)
    first = _random_state(rng, 2)
    eng = FilterpyKalman()
    mean, cov = eng.initiate(first)
    mean[:, 7] = [12.0, -9.0]
    ref = [paper_filter(mean[i], cov[i]) for i in range(2)]
    for f in ref:
        f.predict(Q=paper_q(float(f.x[3, 0])))
    mean, cov = eng.predict(mean, cov)
    np.testing.assert_allclose(cov, np.stack([f.P for f in ref]), rtol=1e-12, atol=0)
    z = mean[:, :4] + [[3.0, -2.0, 0.01, 5.0], [-4.0, 1.0, -0.02, -6.0]]
    _, s = eng.project(mean, cov)
    for i, f in enumerate(ref):
        np.testing.assert_allclose(s[i], f.H @ f.P @ f.H.T + paper_r(float(f.x[3, 0])),
                                   rtol=1e-12, atol=0)
        f.update(z[i].reshape(4, 1), R=paper_r(float(f.x[3, 0])))
    mean, cov = eng.update(mean, cov, z)
    np.testing.assert_allclose(mean, np.stack([f.x.ravel() for f in ref]), rtol=1e-12)
    np.testing.assert_allclose(cov, np.stack([f.P for f in ref]), rtol=1e-10, atol=1e-12)


def test_compact_and_full_round_trip():
    rng = np.random.default_rng(0)
    compact = rng.uniform(0.1, 2.0, (3, 3, 4))
    full = to_full(compact)
    i = np.arange(4)
    np.testing.assert_array_equal(full[:, i, i + 4], compact[:, 1])
    np.testing.assert_array_equal(full[:, i + 4, i], compact[:, 1])
    np.testing.assert_array_equal(full[:, i + 4, i + 4], compact[:, 2])
    np.testing.assert_array_equal(to_compact(full), compact)
    assert np.count_nonzero(full[0]) == 16


def test_gate_value_table():
    # DeepSORT's chi2inv95 table (degrees of freedom 1..4 are those used)
    for dof, value in [(1, 3.8415), (2, 5.9915), (3, 7.8147), (4, 9.4877)]:
        assert chi2_quantile(0.95, dof) == pytest.approx(value, abs=1e-4)
    assert chi2_quantile() == pytest.approx(9.4877, abs=1e-4)


@pytest.mark.parametrize("engine", [BatchedKalman, FilterpyKalman])
def test_no_tracks(engine):
    kf = engine()
    mean, cov = kf.initiate(np.zeros((0, 4)))
    assert mean.shape == (0, 8) and cov.shape == (0, *engine.cov_shape)
    mean, cov = kf.predict(mean, cov)
    proj, s = kf.project(mean, cov)
    assert proj.shape == (0, 4) and s.shape[0] == 0
    assert s.shape == ((0, 4) if engine is BatchedKalman else (0, 4, 4))
    mean, cov = kf.update(mean, cov, np.zeros((0, 4)))
    assert mean.shape == (0, 8) and cov.shape == (0, *engine.cov_shape)


def test_initiate_computes_in_float64_whatever_the_input_dtype():
    xyah = np.array([[512.3, 300.7, 0.41, 77.7]])
    for kf in (BatchedKalman(), FilterpyKalman()):
        m32, c32 = kf.initiate(xyah.astype(np.float32))
        m64, c64 = kf.initiate(xyah.astype(np.float32).astype(np.float64))
        assert m32.dtype == c32.dtype == np.float64
        np.testing.assert_array_equal(m32, m64)
        np.testing.assert_array_equal(c32, c64)
