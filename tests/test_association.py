"""Assignment, the matching cascade (the oracle's dense forms) and the appearance memory."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from deeptrack._arrays import nonzero_2d
from deeptrack.association.costs import GATED, iou_cost
from deeptrack.association.gallery import Gallery
from deeptrack.association.oracle import cosine_cost, matching_cascade, solve


def _unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def test_solve_drops_pairs_above_threshold():
    cost = np.array([[0.1, 0.9], [0.5, 0.3]])
    m = solve(cost, 0.4)
    assert m.pairs.tolist() == [[0, 0], [1, 1]]
    m = solve(cost, 0.2)
    assert m.pairs.tolist() == [[0, 0]]
    assert m.unmatched_tracks.tolist() == [1]
    assert m.unmatched_detections.tolist() == [1]


def test_solve_clips_inadmissible_costs_like_deepsort():
    # Unclipped, the optimum is (0,1)+(1,0) = 0.15+GATED... vs (0,0)+(1,1); with gated
    # entries clipped to just above max_cost the admissible pair (0,0) is kept.
    cost = np.array([[0.15, GATED], [GATED, GATED]])
    m = solve(cost, 0.2)
    assert m.pairs.tolist() == [[0, 0]]
    assert solve(np.zeros((0, 3)), 0.2).unmatched_detections.tolist() == [0, 1, 2]


def test_cascade_prefers_the_recently_seen_track():
    # Two tracks want the one detection; track 1 fits it slightly better, but
    # track 0 was seen one frame ago and track 1 five frames ago.
    cost = np.array([[0.15], [0.05]])
    m = matching_cascade(cost, np.array([1, 5]), 0.2, np.array([7, 8]))
    assert m.pairs.tolist() == [[7, 0]]
    assert m.unmatched_tracks.tolist() == [8]
    # Plain Hungarian over both would have given it to track 1.
    assert solve(cost, 0.2).pairs.tolist() == [[1, 0]]


def test_cascade_later_level_takes_what_is_left():
    cost = np.array([[0.1, 0.15], [0.05, 0.1]])
    m = matching_cascade(cost, np.array([1, 2]), 0.2)
    assert sorted(m.pairs.tolist()) == [[0, 0], [1, 1]]


def test_iou_cost_hand_computed():
    a = np.array([[0.0, 0.0, 10.0, 10.0]])
    b = np.array([[5.0, 0.0, 15.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    np.testing.assert_allclose(iou_cost(a, b), [[1 - 50 / 150, 1.0]])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), t=st.integers(1, 5), n=st.integers(1, 6),
       adds=st.integers(1, 12))
def test_gallery_cost_equals_dense_nearest_neighbour(seed, t, n, adds):
    rng = np.random.default_rng(seed)
    budget, d = 4, 8
    g = Gallery(budget)
    slots = g.allocate(t, d)
    history = [[] for _ in range(t)]
    for _ in range(adds):
        f = _unit(rng.standard_normal((t, d)))
        g.add(slots, f)
        for i in range(t):
            history[i].append(f[i])
    dets = _unit(rng.standard_normal((n, d)))
    admissible = rng.random((t, n)) < 0.6
    rows, cols = nonzero_2d(admissible)
    cost = np.full((t, n), GATED)
    cost[rows, cols] = g.pair_cost(slots[rows], cols, dets)
    for i in range(t):
        kept = np.array(history[i][-budget:])  # the budget keeps the most recent
        dense = cosine_cost(kept, dets).min(axis=0)
        expected = np.where(admissible[i], dense, GATED)
        np.testing.assert_allclose(cost[i], expected, rtol=1e-5, atol=1e-6)


def test_gallery_memory_is_bounded_and_slots_reused():
    g = Gallery(budget=3)
    a = g.allocate(2, 4)
    for _ in range(10):
        g.add(a, _unit(np.ones((2, 4))))
    size = g.nbytes
    g.release(a)
    b = g.allocate(2, 4)
    assert sorted(b.tolist()) == sorted(a.tolist())
    assert g.nbytes == size
    assert len(g.features(int(b[0]))) == 0  # a reused slot starts empty


def test_ema_memory():
    g = Gallery(memory="ema", ema_alpha=0.5)
    s = g.allocate(1, 2)
    g.add(s, np.array([[1.0, 0.0]], np.float32))
    g.add(s, np.array([[0.0, 1.0]], np.float32))
    np.testing.assert_allclose(g.features(int(s[0])), [[np.sqrt(0.5), np.sqrt(0.5)]], rtol=1e-6)
    cost = g.pair_cost(s, np.array([0]), np.array([[1.0, 0.0]], np.float32))
    np.testing.assert_allclose(cost, [1 - np.sqrt(0.5)], rtol=1e-6)
