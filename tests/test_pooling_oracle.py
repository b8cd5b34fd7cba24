"""Pooling against a loop-by-loop oracle on non-square maps.

The oracle below spells out each mode's definition (module docstring of
``deeptrack.appearance.pooling``) cell by cell, so a swapped H/W index, an
off-by-one window edge or a wrong concatenation order shows up. Maps are
non-square (H != W) and of odd sizes, where ceil-mode windows and the
pyramid's adaptive bins are partial or overlap.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deeptrack.appearance.pooling import GEM_EPS, out_dim, pool


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(n > 0, n, 1.0)


def oracle(maps: np.ndarray, mode: str, p: float = 3.0, kernel: int = 2) -> np.ndarray:
    _, c, h, w = maps.shape
    rows = []
    for m in maps.astype(np.float64):
        if mode == "avg":
            v = [m[k].mean() for k in range(c)]
        elif mode == "max":
            v = [m[k].max() for k in range(c)]
        elif mode == "avgmax":
            v = [m[k].mean() for k in range(c)] + [m[k].max() for k in range(c)]
        elif mode == "gem":
            v = [np.mean(np.maximum(m[k], GEM_EPS) ** p) ** (1 / p) for k in range(c)]
        elif mode == "flatten":
            v = [m[k, i, j] for k in range(c) for i in range(h) for j in range(w)]
        elif mode == "maxpool_flatten":
            gh, gw = math.ceil(h / kernel), math.ceil(w / kernel)
            v = [m[k, i * kernel:min((i + 1) * kernel, h), j * kernel:min((j + 1) * kernel, w)]
                 .max() for k in range(c) for i in range(gh) for j in range(gw)]
        else:  # pyramid: 1x1, 2x2, 4x4 max bins [floor(i s / n), ceil((i + 1) s / n))
            v = [m[k].max() for k in range(c)]
            for level in (2, 4):
                for k in range(c):
                    for i in range(level):
                        y0, y1 = (i * h) // level, math.ceil((i + 1) * h / level)
                        for j in range(level):
                            x0, x1 = (j * w) // level, math.ceil((j + 1) * w / level)
                            v.append(m[k, y0:y1, x0:x1].max())
        rows.append(v)
    return _unit(np.array(rows, dtype=np.float64))


MODES = ["avg", "max", "avgmax", "gem", "flatten", "maxpool_flatten", "pyramid"]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), c=st.integers(1, 3), h=st.integers(1, 9),
       w=st.integers(1, 9), kernel=st.integers(1, 4), mode=st.sampled_from(MODES))
def test_pool_equals_the_oracle(seed, c, h, w, kernel, mode):
    rng = np.random.default_rng(seed)
    maps = rng.uniform(0.0, 5.0, (2, c, h, w)).astype(np.float32)
    got = pool(maps, mode, p=3.0, kernel=kernel)
    expected = oracle(maps, mode, p=3.0, kernel=kernel)
    assert got.shape == expected.shape == (2, out_dim(mode, c, h, w, kernel))
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize(("h", "w"), [(2, 5), (5, 2), (7, 3), (3, 7)])
def test_non_square_windows_by_hand(h, w):
    # One channel holding its own flat index: every window's maximum is its last cell.
    maps = np.arange(h * w, dtype=np.float64).reshape(1, 1, h, w) + 1.0
    got = pool(maps, "maxpool_flatten", kernel=2)[0]
    gh, gw = -(-h // 2), -(-w // 2)
    last = [min(2 * i + 1, h - 1) * w + min(2 * j + 1, w - 1) + 1.0
            for i in range(gh) for j in range(gw)]
    np.testing.assert_allclose(got, _unit(np.array([last]))[0], rtol=1e-6)
    assert out_dim("maxpool_flatten", 1, h, w, 2) == gh * gw


def test_gem_p_between_avg_and_max_and_exact_at_p1():
    rng = np.random.default_rng(1)
    maps = rng.uniform(0.1, 3.0, (3, 4, 3, 5))
    np.testing.assert_allclose(pool(maps, "gem", p=1.0), pool(maps, "avg"), rtol=1e-5)
    np.testing.assert_allclose(pool(maps, "gem", p=4.5), oracle(maps, "gem", p=4.5), rtol=1e-5)
    # p = 16 (the largest by repeated squaring) and p = 17 (np.power) agree with the oracle
    for p in (16.0, 17.0):
        np.testing.assert_allclose(pool(maps, "gem", p=p), oracle(maps, "gem", p=p), rtol=1e-5)
