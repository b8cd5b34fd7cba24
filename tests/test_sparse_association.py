"""The sparse hot path equals the dense reference formulation (the oracle).

The tracker computes gates, costs and assignments on the list of
admissible (track, detection) pairs only. Each sparse function here is
checked against the dense one it replaces, on random problems whose costs
are continuous (so the optimum is unique and both must find the same).
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from deeptrack._arrays import nonzero_2d
from deeptrack.association.assign import assign
from deeptrack.association.cascade import cascade
from deeptrack.association.costs import GATED
from deeptrack.association.gallery import Gallery
from deeptrack.association.oracle import cosine_cost, matches, matching_cascade, solve
from deeptrack.boxes import iou_matrix, iou_pairs
from deeptrack.motion.gating import gate_pairs, mahalanobis_sq

SEEDS = st.integers(0, 2**32 - 1)


def _unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _pairs(m):
    return sorted(map(tuple, m.pairs.tolist()))


def test_nonzero_2d_equals_nonzero():
    mask = np.random.default_rng(0).random((7, 11)) < 0.3
    r, c = nonzero_2d(mask)
    r2, c2 = np.nonzero(mask)
    assert r.dtype == np.int64 and (r == r2).all() and (c == c2).all()
    assert [len(x) for x in nonzero_2d(np.zeros((3, 0), bool))] == [0, 0]


@settings(max_examples=60, deadline=None)
@given(seed=SEEDS, t=st.integers(1, 40), n=st.integers(1, 40),
       scale=st.sampled_from([1.0, 1e3, 1e5]))
def test_gate_pairs_is_exactly_the_dense_gate(seed, t, n, scale):
    rng = np.random.default_rng(seed)
    mean = np.column_stack([rng.uniform(0, 2 * scale, t), rng.uniform(0, scale, t),
                            rng.uniform(0.2, 2, t), rng.uniform(5, 0.3 * scale + 10, t)])
    var = rng.uniform(0.01, 0.02 * scale + 1, (t, 4))
    dets = mean[rng.integers(0, t, n)] + rng.normal(0, 1, (n, 4)) * np.sqrt(var.mean(0)) * 3
    thr = 9.4877
    rows, cols = gate_pairs(mean, var, dets, thr)
    dense = mahalanobis_sq(mean, var, dets)
    r2, c2 = np.nonzero(dense <= thr)
    assert rows.tolist() == r2.tolist() and cols.tolist() == c2.tolist()
    # Pairs right at the gate: the bound must not drop them.
    d = mahalanobis_sq(mean[:1], var[:1], dets)[0]
    rows, cols = gate_pairs(mean[:1], var[:1], dets, float(d.min()))
    assert int(np.argmin(d)) in cols.tolist()


def test_gate_pairs_full_covariance_and_empty():
    s = np.tile(np.eye(4), (2, 1, 1))
    mean = np.zeros((2, 4))
    mean[1] = 10
    rows, cols = gate_pairs(mean, s, np.zeros((1, 4)), 9.0)
    assert rows.tolist() == [0] and cols.tolist() == [0]
    assert [len(x) for x in gate_pairs(mean, np.ones((2, 4)), np.zeros((0, 4)), 9.0)] == [0, 0]


@settings(max_examples=40, deadline=None)
@given(seed=SEEDS, p=st.integers(1, 30))
def test_iou_pairs_is_the_iou_matrix_diagonal(seed, p):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0, 50, (p, 4))
    b = rng.uniform(0, 50, (p, 4))
    a[:, 2:] = a[:, :2] + rng.uniform(1, 30, (p, 2))
    b[:, 2:] = b[:, :2] + rng.uniform(1, 30, (p, 2))
    np.testing.assert_array_equal(iou_pairs(a, b), np.diag(iou_matrix(a, b)))


def _sparse_problem(rng, t, n, density):
    admissible = rng.random((t, n)) < density
    cost = np.where(admissible, rng.uniform(0, 0.4, (t, n)), GATED)
    rows, cols = nonzero_2d(admissible)
    return cost, rows, cols


@settings(max_examples=80, deadline=None)
@given(seed=SEEDS, t=st.integers(0, 25), n=st.integers(0, 25),
       density=st.sampled_from([0.05, 0.15, 0.5, 1.0]))
def test_assign_equals_dense_solve(seed, t, n, density):
    rng = np.random.default_rng(seed)
    cost, rows, cols = _sparse_problem(rng, t, n, density)
    sparse = matches(*assign(rows, cols, cost[rows, cols], t, n, 0.2), t, n)
    dense = solve(cost, 0.2)
    assert _pairs(sparse) == _pairs(dense)
    assert sorted(sparse.unmatched_tracks.tolist()) == sorted(dense.unmatched_tracks.tolist())
    assert sorted(sparse.unmatched_detections.tolist()) == sorted(
        dense.unmatched_detections.tolist())


def test_solve_treats_costs_just_above_the_threshold_as_inadmissible():
    # Row 0 could take column 1 at 0.2 + 5e-6 (rejected): DeepSORT sets every
    # cost above the threshold to max + 1e-5, so row 1 keeps column 0 and
    # row 0 is not pushed onto the rejected pair.
    cost = np.array([[0.1, 0.2 + 5e-6], [0.1000001, GATED]])
    assert solve(cost, 0.2).pairs.tolist() == [[0, 0]]


@settings(max_examples=40, deadline=None)
@given(seed=SEEDS, t=st.integers(1, 12), n=st.integers(1, 12), adds=st.integers(0, 9),
       memory=st.sampled_from(["gallery", "ema"]), dim=st.sampled_from([8, 200]),
       density=st.sampled_from([0.2, 0.6, 1.0]))
def test_pair_cost_equals_dense_nearest_neighbour(seed, t, n, adds, memory, dim, density):
    # dim 200 x budget 100 is above the loop threshold, dim 8 below: both paths run.
    rng = np.random.default_rng(seed)
    budget = 100 if dim == 200 else 4
    g = Gallery(budget, memory, ema_alpha=0.7)
    spare = g.allocate(3, dim)  # released below: live slots are not contiguous from 0
    slots = g.allocate(t, dim)
    g.release(spare[1:2])
    history = [[] for _ in range(t)]
    ema = [None] * t
    for _ in range(adds):
        f = _unit(rng.standard_normal((t, dim)))
        keep = rng.random(t) < 0.8  # tracks are not all updated every frame
        g.add(slots[keep], f[keep])
        for i in np.flatnonzero(keep):
            history[i].append(f[i])
            e = f[i] if ema[i] is None else 0.7 * ema[i] + 0.3 * f[i]
            ema[i] = e / np.linalg.norm(e)
    dets = _unit(rng.standard_normal((n, dim)))
    rows, cols = nonzero_2d(rng.random((t, n)) < density)
    got = g.pair_cost(slots[rows], cols, dets)
    for p, (i, j) in enumerate(zip(rows, cols)):
        if not history[i]:
            assert got[p] == GATED
            continue
        kept = np.array(history[i][-budget:]) if memory == "gallery" else ema[i][None]
        np.testing.assert_allclose(got[p], cosine_cost(kept, dets[j:j + 1]).min(),
                                   rtol=1e-5, atol=1e-5)


def test_pair_cost_track_admitting_many_detections():
    # More than 4 detections for one track goes through the looped path.
    rng = np.random.default_rng(1)
    g = Gallery(4)
    s = g.allocate(2, 8)
    stored = _unit(rng.standard_normal((2, 8)))
    g.add(s, stored)
    dets = _unit(rng.standard_normal((9, 8)))
    rows = np.r_[np.zeros(9, int), 1]
    cols = np.r_[np.arange(9), 3]
    got = g.pair_cost(s[rows], cols, dets)
    np.testing.assert_allclose(got, 1 - np.sum(stored[rows] * dets[cols], axis=1), rtol=1e-5)


@settings(max_examples=80, deadline=None)
@given(seed=SEEDS, t=st.integers(0, 25), n=st.integers(0, 25),
       density=st.sampled_from([0.05, 0.15, 0.5, 1.0]), max_level=st.integers(1, 6))
def test_lazy_cascade_equals_dense_cascade_and_skips_taken_detections(
        seed, t, n, density, max_level):
    rng = np.random.default_rng(seed)
    cost, rows, cols = _sparse_problem(rng, t, n, density)
    levels = rng.integers(1, max_level + 1, t)
    asked = []

    def cost_of(r, c):
        asked.extend(zip(r.tolist(), c.tolist()))
        return cost[r, c]

    lazy = matches(*cascade(rows, cols, cost_of, levels, n, 0.2), t, n)
    dense = matching_cascade(cost, levels, 0.2)
    assert _pairs(lazy) == _pairs(dense)
    assert sorted(lazy.unmatched_tracks.tolist()) == sorted(dense.unmatched_tracks.tolist())
    assert sorted(lazy.unmatched_detections.tolist()) == sorted(
        dense.unmatched_detections.tolist())
    assert len(asked) == len(set(asked)) <= len(rows)  # each pair costed at most once
    if len(rows):
        top = levels[rows].min()
        first_level = {(i, j) for i, j in zip(rows.tolist(), cols.tolist()) if levels[i] == top}
        assert first_level <= set(asked)
        taken = {j for i, j in _pairs(lazy) if levels[i] == top}
        assert not any(j in taken and levels[i] != top for i, j in asked)
