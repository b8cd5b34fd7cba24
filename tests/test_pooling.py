"""Pooling maths, dimensions, normalisation, reductions, and that pooling needs no torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from deeptrack.appearance.pooling import (
    GEM_EPS,
    PCAReducer,
    PoolingMode,
    RandomProjection,
    l2_normalize,
    out_dim,
    pool,
)
from deeptrack.errors import ConfigError, InputError


def unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


@pytest.fixture
def two_maps():
    # Two RoIs, two channels, a 2 x 2 grid; values chosen so every mode differs.
    return np.array(
        [
            [[[1.0, 2.0], [3.0, 6.0]], [[0.0, 0.0], [0.0, 4.0]]],
            [[[5.0, 5.0], [5.0, 5.0]], [[1.0, 0.0], [2.0, 1.0]]],
        ],
        dtype=np.float32,
    )


def test_avg_and_max_exact(two_maps):
    # avg of channel 0 of RoI 0 = (1+2+3+6)/4 = 3, channel 1 = 1 -> direction (3, 1)
    np.testing.assert_allclose(pool(two_maps, "avg"), unit([[3, 1], [5, 1]]), rtol=1e-6)
    # max: (6, 4) and (5, 2)
    np.testing.assert_allclose(pool(two_maps, PoolingMode.MAX), unit([[6, 4], [5, 2]]), rtol=1e-6)
    np.testing.assert_allclose(
        pool(two_maps, "avgmax"), unit([[3, 1, 6, 4], [5, 1, 5, 2]]), rtol=1e-6
    )


def test_flatten_is_channel_major(two_maps):
    np.testing.assert_allclose(pool(two_maps, "flatten"), unit(two_maps.reshape(2, -1)),
                               rtol=1e-6)


def test_gem_p1_equals_avg_and_large_p_tends_to_max():
    rng = np.random.default_rng(1)
    maps = rng.uniform(0.0, 3.0, size=(5, 8, 7, 7)).astype(np.float32)
    np.testing.assert_allclose(pool(maps, "gem", p=1.0), pool(maps, "avg"), atol=1e-6)
    np.testing.assert_allclose(pool(maps, "gem", p=500.0), pool(maps, "max"), atol=2e-3)
    # ... and monotonically approaches it
    errs = [np.abs(pool(maps, "gem", p=p) - pool(maps, "max")).max() for p in (1, 3, 10, 100)]
    assert errs == sorted(errs, reverse=True)


def test_gem_default_p3_hand_computed():
    maps = np.array([[[[1.0, 2.0]], [[3.0, 3.0]]]])  # (1, 2, 1, 2)
    g0 = ((1 + 8) / 2) ** (1 / 3)  # cube root of the mean of cubes
    np.testing.assert_allclose(pool(maps, "gem"), unit([[g0, 3.0]]), rtol=1e-6)


def test_gem_is_safe_for_huge_p_and_large_values():
    maps = np.full((2, 3, 7, 7), 1e30, dtype=np.float64)
    maps[0, 0, 0, 0] = 3e30
    out = pool(maps, "gem", p=1e4)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-6)


def test_gem_clamps_negative_inputs():
    maps = np.full((1, 2, 3, 3), -5.0, dtype=np.float32)
    maps[0, 1] = 2.0
    out = pool(maps, "gem")
    # channel 0 clamps to GEM_EPS everywhere: tiny next to channel 1's 2.0
    np.testing.assert_allclose(out, unit([[GEM_EPS, 2.0]]), atol=1e-7)


def test_maxpool_flatten_ceil_mode():
    # 3 x 3 map, k = 2, ceil mode -> 2 x 2 windows: {0,1,3,4} {2,5} {6,7} {8}
    maps = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
    np.testing.assert_allclose(pool(maps, "maxpool_flatten"), unit([[4, 5, 7, 8]]), rtol=1e-6)
    np.testing.assert_allclose(pool(maps, "maxpool_flatten", kernel=1), pool(maps, "flatten"))


def test_pyramid_bins_on_7x7():
    maps = np.zeros((1, 1, 7, 7), dtype=np.float32)
    maps[0, 0, 3, 3] = 1.0  # the centre cell is in every 2x2 bin (adaptive bins overlap)
    out = pool(maps, "pyramid")
    assert out.shape == (1, 21)
    raw = out[0] / out[0].max()
    assert raw[0] == 1.0                       # 1 x 1 level
    np.testing.assert_array_equal(raw[1:5], 1.0)   # 2 x 2: rows [0,4) and [3,7) both hold 3
    # 4 x 4 bins: rows [0,2) [1,4) [3,6) [5,7); row 3 is in bins 1 and 2
    grid = raw[5:].reshape(4, 4)
    expect = np.zeros((4, 4))
    expect[1:3, 1:3] = 1.0
    np.testing.assert_array_equal(grid, expect)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("avg", 2048), ("max", 2048), ("avgmax", 4096), ("gem", 2048),
        ("flatten", 100352), ("maxpool_flatten", 2048 * 16), ("pyramid", 21 * 2048),
    ],
)
def test_out_dim_resnet_c5(mode, expected):
    assert out_dim(mode, 2048, 7, 7) == expected


@pytest.mark.parametrize("mode", list(PoolingMode))
def test_every_mode_shape_dtype_unit_norm(mode):
    rng = np.random.default_rng(3)
    maps = rng.random((4, 6, 7, 5)).astype(np.float32)
    out = pool(maps, mode)
    assert out.shape == (4, out_dim(mode, 6, 7, 5))
    assert out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("mode", list(PoolingMode))
@pytest.mark.parametrize("shape", [(3, 4, 1, 1), (3, 4, 7, 7), (3, 4, 1, 5)])
def test_pool_leaves_its_input_unchanged(mode, shape):
    # GeM works in place on its channels-last copy; a 1 x 1 map once got no copy.
    maps = np.random.default_rng(1).uniform(0.0, 5.0, shape).astype(np.float32)
    before = maps.copy()
    pool(maps, mode)
    np.testing.assert_array_equal(maps, before)


@pytest.mark.parametrize("mode", list(PoolingMode))
def test_every_mode_big_map_dimension(mode):
    maps = np.ones((2, 2048, 7, 7), dtype=np.float16)
    assert pool(maps, mode).shape == (2, out_dim(mode, 2048, 7, 7))


@pytest.mark.parametrize("mode", list(PoolingMode))
def test_zero_map_gives_zero_vector_not_nan(mode):
    maps = np.zeros((2, 3, 4, 4), dtype=np.float32)
    maps[1] = 1.0
    out = pool(maps, mode)
    if mode is PoolingMode.GEM:  # clamped to eps, then normalised: a unit vector
        np.testing.assert_allclose(np.linalg.norm(out[0]), 1.0, rtol=1e-5)
    else:
        np.testing.assert_array_equal(out[0], 0.0)
    assert np.isfinite(out).all()


@pytest.mark.parametrize("mode", list(PoolingMode))
def test_empty_batch(mode):
    out = pool(np.zeros((0, 8, 7, 7), np.float32), mode)
    assert out.shape == (0, out_dim(mode, 8, 7, 7))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_dtypes_in_float32_out(dtype):
    maps = np.random.default_rng(0).random((3, 4, 7, 7)).astype(dtype)
    out = pool(maps, "gem")
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, pool(maps.astype(np.float64), "gem"), atol=2e-3)


def test_torch_tensor_input_matches_numpy():
    torch = pytest.importorskip("torch")
    maps = np.random.default_rng(0).random((3, 4, 7, 7)).astype(np.float32)
    for mode in PoolingMode:
        np.testing.assert_allclose(pool(torch.from_numpy(maps), mode), pool(maps, mode))


def test_tiny_values_do_not_underflow():
    maps = np.full((1, 2, 2, 2), 1e-30, dtype=np.float32)
    np.testing.assert_allclose(pool(maps, "avg"), unit([[1, 1]]), rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"mode": "median"}, ConfigError, "unknown pooling mode 'median'"),
        ({"mode": "gem", "p": 0.0}, ConfigError, "GeM exponent"),
        ({"mode": "gem", "p": float("nan")}, ConfigError, "GeM exponent"),
        ({"mode": "gem", "p": "3"}, ConfigError, "GeM exponent"),
        ({"mode": "maxpool_flatten", "kernel": 0}, ConfigError, "kernel"),
        ({"mode": "maxpool_flatten", "kernel": 1.5}, ConfigError, "kernel"),
    ],
)
def test_bad_parameters(kwargs, err, match):
    with pytest.raises(err, match=match):
        pool(np.ones((1, 2, 3, 3), np.float32), **kwargs)


def test_bad_maps():
    with pytest.raises(InputError, match=r"\(N, C, H, W\)"):
        pool(np.ones((2, 3, 3), np.float32), "avg")
    with pytest.raises(InputError, match="dtype int64"):
        pool(np.ones((1, 2, 3, 3), np.int64), "avg")
    bad = np.ones((2, 2, 3, 3), np.float32)
    bad[1, 0, 1, 1] = np.nan
    with pytest.raises(InputError, match="map 1 contains NaN"):
        pool(bad, "max")
    with pytest.raises(InputError, match=r"H = 0"):
        out_dim("avg", 3, 0, 3)
    assert issubclass(ConfigError, ValueError) and issubclass(InputError, ValueError)


@settings(max_examples=60, deadline=None)
@given(
    maps=arrays(np.float32, st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 5),
                                      st.integers(1, 5)),
                elements=st.floats(0, 1e3, width=32)),
    mode=st.sampled_from(list(PoolingMode)),
)
def test_property_unit_or_zero_and_dim(maps, mode):
    out = pool(maps, mode)
    n, c, h, w = maps.shape
    assert out.shape == (n, out_dim(mode, c, h, w))
    norms = np.linalg.norm(out, axis=1)
    assert np.all((np.abs(norms - 1) < 1e-4) | (norms == 0))


@settings(max_examples=40, deadline=None)
@given(
    maps=arrays(np.float64, (2, 3, 4, 4), elements=st.floats(0.01, 100)),
    scale=st.floats(0.1, 10),
    mode=st.sampled_from(list(PoolingMode)),
)
def test_property_positive_scale_invariance(maps, scale, mode):
    np.testing.assert_allclose(pool(maps * scale, mode), pool(maps, mode), atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(maps=arrays(np.float64, (2, 3, 3, 3), elements=st.floats(0, 10)),
       mode=st.sampled_from(["avg", "max", "gem", "avgmax"]))
def test_property_global_modes_ignore_spatial_order(maps, mode):
    perm = np.random.default_rng(0).permutation(9)
    shuffled = maps.reshape(2, 3, 9)[:, :, perm].reshape(2, 3, 3, 3)
    np.testing.assert_allclose(pool(shuffled, mode), pool(maps, mode), atol=1e-6)


def test_l2_normalize_keeps_zero_rows():
    out = l2_normalize(np.array([[0.0, 0.0], [3.0, 4.0]]))
    np.testing.assert_allclose(out, [[0, 0], [0.6, 0.8]])


def test_random_projection_deterministic_and_shape():
    x = pool(np.random.default_rng(0).random((10, 16, 7, 7)).astype(np.float32), "flatten")
    a, b = RandomProjection(784, 64, seed=3), RandomProjection(784, 64, seed=3)
    np.testing.assert_array_equal(a(x), b(x))
    assert a(x).shape == (10, 64) and a(x).dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a(x), axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(a(x), RandomProjection(784, 64, seed=4)(x))
    assert a(np.zeros((0, 784))).shape == (0, 64)
    with pytest.raises(InputError, match=r"\(N, 784\)"):
        a(np.zeros((2, 100)))
    with pytest.raises(ConfigError, match="out_dim"):
        RandomProjection(784, 0)


def test_random_projection_preserves_cosine_roughly():
    rng = np.random.default_rng(0)
    x = l2_normalize(rng.standard_normal((40, 4000)))
    proj = RandomProjection(4000, 1024, seed=0)(x)
    err = np.abs(proj @ proj.T - x @ x.T)
    assert err.max() < 6 / np.sqrt(1024)  # JL: error of order 1/sqrt(k)


def test_pca_reducer_fit_transform():
    rng = np.random.default_rng(0)
    # data on a 3-d subspace of 50-d plus small noise: 3 components keep nearly all of it
    basis = rng.standard_normal((3, 50))
    x = rng.standard_normal((200, 3)) @ basis + 0.01 * rng.standard_normal((200, 50))
    pca = PCAReducer(3).fit(x)
    assert pca.explained_variance_ratio_.sum() > 0.99
    y = pca.transform(x)
    assert y.shape == (200, 3) and y.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(PCAReducer(3).fit_transform(x), y)
    with pytest.raises(RuntimeError, match="before fit"):
        PCAReducer(3).transform(x)
    with pytest.raises(ConfigError, match="exceeds"):
        PCAReducer(60).fit(x)


def test_pca_randomized_finds_the_dominant_subspace():
    rng = np.random.default_rng(1)
    basis, _ = np.linalg.qr(rng.standard_normal((5000, 5)))  # orthonormal columns
    x = (rng.standard_normal((1000, 5)) * [10, 8, 6, 4, 2]) @ basis.T
    x += 0.01 * rng.standard_normal(x.shape)
    pca = PCAReducer(5, seed=0).fit(x)  # 1000 x 5000 takes the randomised route
    # cosines of the principal angles between the fitted and the true subspace
    overlap = np.linalg.svd(pca.components_.astype(np.float64) @ basis, compute_uv=False)
    np.testing.assert_allclose(overlap, 1.0, atol=1e-4)


def test_importing_pooling_does_not_import_torch():
    code = (
        "import sys, deeptrack, deeptrack.appearance, deeptrack.appearance.pooling, "
        "deeptrack.appearance.cache, deeptrack.appearance.extract; assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
