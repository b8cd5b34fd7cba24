"""The equality case of every association threshold, computed by hand.

A cost exactly at the cap is admissible everywhere in DeepSORT (Wojke et al.
2017): the assignment keeps pairs with ``cost <= max``, and before solving
sets every cost *above* the cap (not at it) to ``max + 1e-5``. The Mahalanobis
gate admits ``d <= threshold``. Whole-pixel boxes make these equalities
common: a 15 x 100 box inside a 50 x 100 box has IoU exactly 0.3, i.e. IoU
cost exactly 0.7, the default ``max_iou_distance``.

The numbers chosen are exact in binary floating point (``1 - 0.3 == 0.7``,
``1500 / 5000 == 0.3``, ``3 ** 2 / 1 == 9``), so each test fails on a ``<``
for ``<=`` (or ``>=`` for ``>``) at the boundary it names.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deeptrack.association.assign import assign
from deeptrack.association.cascade import cascade
from deeptrack.association.costs import GATED, iou_cost
from deeptrack.association.gallery import Gallery
from deeptrack.association.oracle import cosine_cost, matches, matching_cascade, solve
from deeptrack.boxes import iou_pairs
from deeptrack.motion.gating import gate_pairs, mahalanobis_sq

A = np.array([[100.0, 100.0, 150.0, 200.0]])  # 50 x 100, area 5000
B = np.array([[100.0, 100.0, 115.0, 200.0]])  # 15 x 100 inside A: IoU 1500 / 5000 = 0.3


def _pairs(m):
    return sorted(map(tuple, m.pairs.tolist()))


def fast_solve(rows, cols, cost, n_rows, n_cols, max_cost):
    """The hot path's sparse assignment, as the oracle's Matches."""
    return matches(*assign(rows, cols, cost, n_rows, n_cols, max_cost), n_rows, n_cols)


def fast_cascade(rows, cols, cost_of, levels, n_dets, max_cost):
    """The hot path's lazy cascade, as the oracle's Matches."""
    return matches(*cascade(rows, cols, cost_of, levels, n_dets, max_cost), len(levels), n_dets)


# ------------------------------------------------------------------ assignment


def test_iou_cost_of_whole_pixel_boxes_is_exactly_the_default_cap():
    assert iou_cost(A, B)[0, 0] == 0.7
    assert 1.0 - iou_pairs(A, B)[0] == 0.7


def test_solve_keeps_a_pair_exactly_at_the_cap():
    m = solve(np.array([[0.7]]), 0.7)
    assert m.pairs.tolist() == [[0, 0]]
    assert len(m.unmatched_tracks) == 0 and len(m.unmatched_detections) == 0
    # and a pair one ulp above the cap is not matched
    m = solve(np.array([[np.nextafter(0.7, 1.0)]]), 0.7)
    assert len(m.pairs) == 0 and m.unmatched_tracks.tolist() == [0]


def test_solve_does_not_clip_a_cost_at_the_cap():
    # Only costs *above* the cap become max + 1e-5. The admissible optimum is
    # (0,0)+(1,1) = 0.2 + 0.0 against (0,1)+(1,0) = 0.1 + 0.100005; clipping
    # the 0.2 (at the cap) to 0.20001 would make the second one win.
    cost = np.array([[0.2, 0.1], [0.1 + 5e-6, 0.0]])
    assert _pairs(solve(cost, 0.2)) == [(0, 0), (1, 1)]
    assert _pairs(fast_solve(np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]),
                              cost.ravel(), 2, 2, 0.2)) == [(0, 0), (1, 1)]


def test_solve_clips_above_the_cap_to_just_above_it():
    # One track, its admissible detection 0 at 0.199995 and an inadmissible one
    # at 0.5. Clipped to 0.20001 the inadmissible pair costs more, so the solver
    # takes detection 0; clipped to anything below 0.199995 (e.g. max - 1e-5) it
    # would take detection 1 and then reject it, matching nothing.
    m = solve(np.array([[0.199995, 0.5]]), 0.2)
    assert m.pairs.tolist() == [[0, 0]] and m.unmatched_detections.tolist() == [1]
    # A detection at the cap beats an inadmissible one too.
    assert solve(np.array([[0.5, 0.2]]), 0.2).pairs.tolist() == [[0, 1]]


def test_clipping_makes_inadmissible_pairs_equal():
    # DeepSORT's clip: a huge GATED entry and a pair barely above the cap are the
    # same to the solver. Unclipped, (0,1)+(1,0) = 0.25 + 0.1 beats
    # (0,0)+(1,1) = 0.05 + GATED; clipped, (0,0)+(1,1) = 0.05 + 0.20001 wins
    # and keeps the admissible pair (0, 0) instead of (1, 0).
    cost = np.array([[0.05, 0.25], [0.1, GATED]])
    assert _pairs(solve(cost, 0.2)) == [(0, 0)]


def test_solve_reports_labels_and_leftovers():
    cost = np.array([[0.2, GATED, GATED], [GATED, GATED, 0.1]])
    m = solve(cost, 0.2, np.array([7, 9]), np.array([3, 4, 5]))
    assert _pairs(m) == [(7, 3), (9, 5)]
    assert m.unmatched_tracks.tolist() == [] and m.unmatched_detections.tolist() == [4]


def test_sparse_solver_keeps_pairs_at_the_cap():
    # Uncontested pair at the cap (the shortcut path) ...
    r, c = assign(np.array([0]), np.array([0]), np.array([0.2]), 1, 1, 0.2)
    assert (r.tolist(), c.tolist()) == ([0], [0])
    # ... and contested pairs at the cap (the Hungarian path): two tracks, one
    # detection each at the cap, both wanting detection 0 as well.
    rows, cols = np.array([0, 0, 1, 1]), np.array([0, 1, 0, 2])
    cost = np.array([0.2, 0.2, 0.05, 0.2])
    m = fast_solve(rows, cols, cost, 2, 3, 0.2)
    assert _pairs(m) == [(0, 1), (1, 0)] and m.unmatched_detections.tolist() == [2]


# ------------------------------------------------------------------ cascade


def test_cascade_matches_a_level_whose_only_pair_is_at_the_cap():
    m = matching_cascade(np.array([[0.2]]), np.array([1]), 0.2, np.array([4]))
    assert m.pairs.tolist() == [[4, 0]]
    sparse = fast_cascade(np.array([0]), np.array([0]), lambda r, c: np.array([0.2]),
                          np.array([1]), 1, 0.2)
    assert sparse.pairs.tolist() == [[0, 0]]


def test_cascade_later_level_pair_at_the_cap():
    # Level 1 (track 0) takes detection 0; level 3 (track 1) has detection 0 at
    # 0.05 (taken) and detection 1 exactly at the cap: it gets detection 1.
    cost = np.array([[0.1, GATED], [0.05, 0.2]])
    levels = np.array([1, 3])
    assert _pairs(matching_cascade(cost, levels, 0.2)) == [(0, 0), (1, 1)]
    rows, cols = np.array([0, 1, 1]), np.array([0, 0, 1])
    lazy = fast_cascade(rows, cols, lambda r, c: cost[r, c], levels, 2, 0.2)
    assert _pairs(lazy) == [(0, 0), (1, 1)]
    assert lazy.unmatched_tracks.tolist() == [] and lazy.unmatched_detections.tolist() == []


def test_lazy_cascade_older_level_competing_at_the_cap():
    # Two level-2 tracks compete for detections 1 and 2 at the cap after level 1
    # took detection 0; the later level goes through the dense cascade.
    cost = np.array([[0.1, GATED, GATED], [GATED, 0.2, 0.2], [GATED, 0.2, GATED]])
    levels = np.array([1, 2, 2])
    rows, cols = np.nonzero(cost < GATED)
    lazy = fast_cascade(rows, cols, lambda r, c: cost[r, c], levels, 3, 0.2)
    assert _pairs(lazy) == [(0, 0), (1, 2), (2, 1)]
    assert _pairs(matching_cascade(cost, levels, 0.2)) == [(0, 0), (1, 2), (2, 1)]


def test_cascade_gives_a_detection_to_the_recent_track_even_at_the_cap():
    # Track 0 (seen 1 frame ago) has the detection exactly at the cap; track 1
    # (seen 4 frames ago) fits it far better, yet the recent track chooses first.
    cost = np.array([[0.2], [0.0]])
    m = matching_cascade(cost, np.array([1, 4]), 0.2)
    assert m.pairs.tolist() == [[0, 0]] and m.unmatched_tracks.tolist() == [1]
    lazy = fast_cascade(np.array([0, 1]), np.array([0, 0]),
                        lambda r, c: cost[r, c], np.array([1, 4]), 1, 0.2)
    assert lazy.pairs.tolist() == [[0, 0]] and lazy.unmatched_tracks.tolist() == [1]


def test_cosine_distance_exactly_at_the_cap_through_the_gallery():
    # Unit vectors at 60 degrees: float32 dot product 0.5 exactly, distance 0.5.
    g = Gallery(budget=3)
    slots = g.allocate(2, 2)
    g.add(slots, np.array([[1.0, 0.0], [0.0, 1.0]], np.float32))
    dets = np.array([[0.5, np.sqrt(0.75)], [-1.0, 0.0]], np.float32)
    cost = g.pair_cost(slots[[0, 0, 1]], np.array([0, 1, 1]), dets)
    assert cost[0] == 0.5 and cost[1] == 2.0
    assert cosine_cost(np.array([[1.0, 0.0]], np.float32), dets[:1])[0, 0] == 0.5

    def cost_of(r, c):
        return g.pair_cost(slots[r], c, dets)

    m = fast_cascade(np.array([0]), np.array([0]), cost_of, np.array([1, 1]), 2, 0.5)
    assert m.pairs.tolist() == [[0, 0]]
    m = fast_cascade(np.array([0]), np.array([0]), cost_of, np.array([1, 1]), 2,
                     float(np.nextafter(0.5, 0.0)))
    assert len(m.pairs) == 0


def test_gallery_nearest_neighbour_is_the_smallest_distance():
    # Three stored vectors; the detection is nearest to the second (distance 0.5)
    g = Gallery(budget=3)
    s = g.allocate(1, 2)
    for v in ([-1.0, 0.0], [1.0, 0.0], [0.0, -1.0]):
        g.add(s, np.array([v], np.float32))
    det = np.array([[0.5, np.sqrt(0.75)]], np.float32)
    assert g.pair_cost(s, np.array([0]), det)[0] == 0.5
    # an empty slot is inadmissible, not distance 1
    empty = g.allocate(1, 2)
    assert g.pair_cost(empty, np.array([0]), det)[0] == GATED


# ------------------------------------------------------------------ gate


def _gate_problem(t, n):
    """T tracks at 0 with unit variances; N detections at squared distances 9, 9.5, 8, ..."""
    mean = np.zeros((t, 4))
    var = np.ones((t, 4))
    dets = np.zeros((n, 4))
    dets[0::3, 0] = 3.0  # d = 9 exactly: at the gate
    dets[1::3, 3] = np.sqrt(9.5)  # above
    dets[2::3, 1] = 2.0  # d = 4 + 4 = 8: inside
    dets[2::3, 2] = 2.0
    return mean, var, dets


@pytest.mark.parametrize(("t", "n"), [(1, 3), (70, 66)])  # dense formula, then expansion path
def test_gate_admits_a_distance_exactly_at_the_threshold(t, n):
    mean, var, dets = _gate_problem(t, n)
    d = mahalanobis_sq(mean, var, dets)
    assert d[0, 0] == 9.0 and d[0, 2] == 8.0
    rows, cols = gate_pairs(mean, var, dets, 9.0)
    expected_cols = [j for j in range(n) if j % 3 != 1]
    assert rows.tolist() == np.repeat(np.arange(t), len(expected_cols)).tolist()
    assert cols.tolist() == expected_cols * t
    # just below 9 the detections at 9 leave the gate
    _, cols = gate_pairs(mean, var, dets, float(np.nextafter(9.0, 0.0)))
    assert cols.tolist() == [j for j in range(n) if j % 3 == 2] * t


def test_gate_full_covariance_at_the_threshold():
    s = np.tile(np.diag([4.0, 1.0, 1.0, 9.0]), (1, 1, 1))
    dets = np.array([[6.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 9.1]])  # d = 9, then 9.2
    assert mahalanobis_sq(np.zeros((1, 4)), s, dets)[0].tolist()[0] == 9.0
    rows, cols = gate_pairs(np.zeros((1, 4)), s, dets, 9.0)
    assert rows.tolist() == [0] and cols.tolist() == [0]


def test_diagonal_mahalanobis_by_hand():
    # diag S = (4, 1, 1, 9) and (1, 1, 1, 1); d = sum (x - m)^2 / s per coordinate
    mean = np.array([[1.0, 2.0, 0.5, 10.0], [0.0, 0.0, 0.0, 0.0]])
    var = np.array([[4.0, 1.0, 1.0, 9.0], [1.0, 1.0, 1.0, 1.0]])
    dets = np.array([[3.0, 2.0, 0.5, 10.0], [1.0, 3.0, 1.5, 13.0]])
    expected = [[1.0, 0.0 + 1.0 + 1.0 + 1.0], [9 / 1 + 4 + 0.25 + 100, 1 + 9 + 2.25 + 169]]
    np.testing.assert_allclose(mahalanobis_sq(mean, var, dets), expected, rtol=1e-15)
    full = np.stack([np.diag(v) for v in var])
    np.testing.assert_allclose(mahalanobis_sq(mean, full, dets), expected, rtol=1e-12)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), t=st.integers(65, 90), n=st.integers(65, 90),
       scale=st.sampled_from([1.0, 1e3, 1e5]),
       layout=st.sampled_from(["boxes", "edge", "centred", "stiff"]))
def test_expanded_gate_equals_the_dense_gate(seed, t, n, scale, layout):
    # Above 4096 pairs the gate runs its expanded (T, 9) x (9, N) form; the pairs
    # must be exactly the dense formula's, including pairs right at the threshold
    # (several thresholds, each the exact distance of some pair: the expansion's
    # rounding can put such a pair on either side, and the recheck must keep it).
    # Layouts: boxes; "edge", centres straddling 0 (boxes at the image's left or
    # top edge); "centred", every coordinate straddling 0, where the cross term
    # -2 m x / s changes sign; "stiff", large values with tiny variances, where the
    # expansion's cancellation error is largest (its rounding bound must cover it).
    rng = np.random.default_rng(seed)
    mean = np.column_stack([rng.uniform(0, 2 * scale, t), rng.uniform(0, scale, t),
                            rng.uniform(0.2, 2, t), rng.uniform(5, 0.3 * scale + 10, t)])
    var = rng.uniform(0.01, 0.02 * scale + 1, (t, 4))
    if layout == "stiff":
        var = rng.uniform(1e-4, 1e-3, (t, 4))
    k = {"boxes": 0, "edge": 2, "centred": 4, "stiff": 0}[layout]
    mean[:, :k] = rng.normal(0, 3, (t, k)) * np.sqrt(var[:, :k])
    dets = mean[rng.integers(0, t, n)] + rng.normal(0, 1, (n, 4)) * np.sqrt(var.mean(0)) * 3
    dense = mahalanobis_sq(mean, var, dets)
    ranked = np.sort(dense.ravel())
    at = [float(ranked[k]) for k in (0, t, t * n // 50, t * n // 20, t * n // 5)]
    for thr in (9.4877, *at):
        rows, cols = gate_pairs(mean, var, dets, thr)
        r2, c2 = np.nonzero(dense <= thr)
        assert rows.tolist() == r2.tolist() and cols.tolist() == c2.tolist()


def test_expanded_gate_bound_holds_for_the_track_with_the_largest_values():
    # The expansion cancels terms of size m^2 / s. Track 0 sits at 1e5 in every
    # coordinate with variances 1e-4 (terms ~1e14, rounding ~1e-2) and owns the
    # largest detection values; 64 far tracks make it an expanded-path problem. Each
    # of its 40 detections, at its own exact distance as the gate, must be kept.
    rng = np.random.default_rng(11)
    t, n = 65, 70
    mean = np.vstack([np.full((1, 4), 1e5), rng.uniform(10, 50, (t - 1, 4))])
    var = np.vstack([np.full((1, 4), 1e-4), np.ones((t - 1, 4))])
    dets = np.vstack([mean[0] + rng.normal(0, 1, (40, 4)) * 1e-2,
                      rng.uniform(10, 50, (n - 40, 4))])
    d = mahalanobis_sq(mean, var, dets)
    for j in range(40):
        rows, cols = gate_pairs(mean, var, dets, float(d[0, j]))
        r2, c2 = np.nonzero(d <= d[0, j])
        assert rows.tolist() == r2.tolist() and cols.tolist() == c2.tolist()


def test_expanded_gate_rechecks_a_lone_candidate():
    # 70 x 66 pairs (expanded path); the only pair anywhere near the gate is at
    # d = 9 exactly, and the gate is one ulp below it: the pair is a candidate of
    # the expansion (within its rounding bound) but the exact recheck rejects it.
    mean, var = np.zeros((70, 4)), np.ones((70, 4))
    dets = np.full((66, 4), 100.0)
    dets[5] = [3.0, 0.0, 0.0, 0.0]
    mean[1:] = 1000.0
    rows, cols = gate_pairs(mean, var, dets, 9.0)
    assert (rows.tolist(), cols.tolist()) == ([0], [5])
    rows, cols = gate_pairs(mean, var, dets, float(np.nextafter(9.0, 0.0)))
    assert len(rows) == 0 and len(cols) == 0


@pytest.mark.parametrize(("t", "n"), [(70, 66), (4097, 1)])
def test_gate_with_full_covariances_on_many_pairs(t, n):
    # (T, 4, 4) innovation covariances take the dense Cholesky path however many pairs.
    rng = np.random.default_rng(7)
    mean = rng.uniform(0, 100, (t, 4))
    a = rng.normal(0, 1, (t, 4, 4))
    s = a @ np.swapaxes(a, 1, 2) + 4 * np.eye(4)
    dets = mean[rng.integers(0, t, n)] + rng.normal(0, 2, (n, 4))
    rows, cols = gate_pairs(mean, s, dets, 9.4877)
    r2, c2 = np.nonzero(mahalanobis_sq(mean, s, dets) <= 9.4877)
    assert rows.tolist() == r2.tolist() and cols.tolist() == c2.tolist() and len(rows) > 0


def test_empty_results_have_the_documented_shapes_and_dtypes():
    for m in (solve(np.zeros((0, 3)), 0.2), solve(np.zeros((2, 0)), 0.2),
              matching_cascade(np.full((2, 2), 0.9), np.array([1, 2]), 0.2),
              fast_solve(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), 2, 3, 0.2)):
        assert m.pairs.shape == (0, 2) and m.pairs.dtype == np.int64
        assert m.unmatched_tracks.dtype == m.unmatched_detections.dtype == np.int64
    for t, n in ((0, 3), (3, 0)):
        rows, cols = gate_pairs(np.zeros((t, 4)), np.ones((t, 4)), np.zeros((n, 4)), 9.0)
        assert rows.dtype == cols.dtype == np.int64 and len(rows) == len(cols) == 0
    from deeptrack.appearance.pooling import l2_normalize

    out = l2_normalize(np.array([[3.0, 4.0]]))  # float64 in, float32 out
    assert out.dtype == np.float32 and out.tolist() == [[0.6000000238418579, 0.800000011920929]]


# ------------------------------------------------------------------ tracker, IoU stage


def test_tracker_iou_stage_matches_at_exactly_max_iou_distance():
    # A box seen for 8 frames (confirmed under any n_init <= 7, velocity exactly
    # 0, so the prediction is the box itself); then a 15 x 100 box inside it:
    # IoU 0.3, cost exactly the default max_iou_distance 0.7. Its aspect ratio
    # (0.15 against 0.5) puts it outside the Mahalanobis gate, so only the IoU
    # stage can match it, and it must.
    from deeptrack import Tracker, TrackerConfig

    tracker = Tracker(TrackerConfig(), frame_rate=30)
    for _ in range(8):
        out = tracker.update(A, np.ones(1))
    assert len(out.track_ids) == 1
    tid = int(out.track_ids[0])
    out = tracker.update(B, np.ones(1))
    assert out.track_ids.tolist() == [tid] and out.det_index.tolist() == [0]


def test_cascade_skips_a_level_with_nothing_admissible_and_goes_on():
    # Level 1 (track 0) admits nothing; level 2 (track 1) must still be matched.
    cost = np.array([[0.9, 0.9], [0.1, GATED]])
    levels = np.array([1, 2])
    m = matching_cascade(cost, levels, 0.2)
    assert m.pairs.tolist() == [[1, 0]] and m.unmatched_tracks.tolist() == [0]
    assert m.unmatched_detections.tolist() == [1]
    lazy = fast_cascade(np.array([0, 0, 1]), np.array([0, 1, 0]),
                        lambda r, c: cost[r, c], levels, 2, 0.2)
    assert lazy.pairs.tolist() == [[1, 0]] and lazy.unmatched_tracks.tolist() == [0]


def test_cascade_stops_only_when_every_detection_is_taken():
    # Three levels; level 1 takes detection 0, level 2 detection 1, level 3 the last one.
    cost = np.array([[0.1, 0.15, 0.15], [0.15, 0.1, 0.15], [0.15, 0.15, 0.1]])
    m = matching_cascade(cost, np.array([1, 2, 3]), 0.2)
    assert _pairs(m) == [(0, 0), (1, 1), (2, 2)]
    m = matching_cascade(cost[:, :1], np.array([1, 2, 3]), 0.2)  # one detection, taken first
    assert m.pairs.tolist() == [[0, 0]] and m.unmatched_tracks.tolist() == [1, 2]


def test_l2_normalize_rescales_extreme_rows_and_the_tracker_names_bad_ones():
    from deeptrack import InputError, Tracker
    from deeptrack.appearance.pooling import l2_normalize

    x = np.array([[3e-30, 4e-30], [3e30, 4e30], [3.0, 4.0]], np.float32)
    np.testing.assert_allclose(l2_normalize(x), [[0.6, 0.8]] * 3, rtol=1e-6)
    boxes = np.array([[0.0, 0.0, 10.0, 20.0], [30.0, 0.0, 40.0, 20.0]])
    tracker = Tracker()
    tracker.update(boxes, np.ones(2), x[:2])  # extreme but valid rows are accepted
    with pytest.raises(InputError, match=r"^embeddings\[1\] contains NaN or inf$"):
        tracker.update(boxes, np.ones(2), np.array([[1.0, 0.0], [np.nan, 1.0]]))
    with pytest.raises(InputError, match=r"^embeddings\[1\] is the zero vector; it has no "):
        tracker.update(boxes, np.ones(2), np.array([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(InputError, match=r"^embeddings\[0\] contains NaN"):
        tracker.update(boxes, np.ones(2), np.array([[np.inf, 0.0], [1.0, 0.0]]))


# ------------------------------------------------------------------ assignment, by brute force

_GRID = [0.0, 0.05, 0.1, 0.15, 0.2, float(np.nextafter(0.2, 1.0)), 0.3, GATED]


def _best_weight(cost: np.ndarray, max_cost: float) -> float:
    """Largest sum of ``max + 1e-5 - cost`` over matchings of admissible pairs (brute force).

    This is what DeepSORT's clipped assignment optimises: every pair at or under
    the cap is worth a positive amount (1e-5 at the cap itself), every other one
    nothing.
    """
    t, n = cost.shape

    def rec(i: int, used: frozenset) -> float:
        if i == t:
            return 0.0
        best = rec(i + 1, used)
        for j in range(n):
            if j not in used and cost[i, j] <= max_cost:
                best = max(best, max_cost + 1e-5 - cost[i, j] + rec(i + 1, used | {j}))
        return best

    return rec(0, frozenset())


@settings(max_examples=60, deadline=None)
@given(t=st.integers(1, 4), n=st.integers(1, 4), data=st.data())
def test_solve_is_the_max_weight_matching_of_admissible_pairs(t, n, data):
    # Costs from a grid holding the cap itself, one ulp above it, and ties.
    cost = np.array(data.draw(st.lists(st.sampled_from(_GRID), min_size=t * n, max_size=t * n)),
                    dtype=np.float64).reshape(t, n)
    best = _best_weight(cost, 0.2)
    rows, cols = np.nonzero(cost < GATED)
    for m in (solve(cost, 0.2), fast_solve(rows, cols, cost[rows, cols], t, n, 0.2)):
        p = m.pairs
        assert len(set(p[:, 0])) == len(p) and len(set(p[:, 1])) == len(p)
        assert (cost[p[:, 0], p[:, 1]] <= 0.2).all()
        assert sorted([*p[:, 0], *m.unmatched_tracks]) == list(range(t))
        assert sorted([*p[:, 1], *m.unmatched_detections]) == list(range(n))
        weight = float(np.sum(0.2 + 1e-5 - cost[p[:, 0], p[:, 1]]))
        assert weight == pytest.approx(best, abs=1e-9)


def test_labels_come_back_as_int64_whatever_their_input_dtype():
    # Matches holds int64 indices (types.Matches); labels given as int32 are converted.
    cost = np.array([[0.1, GATED], [GATED, GATED]])
    m = solve(cost, 0.2, np.array([7, 8], np.int32), np.array([3, 4], np.int32))
    assert (m.pairs.tolist(), m.unmatched_tracks.tolist()) == ([[7, 3]], [8])
    assert m.unmatched_detections.tolist() == [4]
    c = matching_cascade(cost, np.array([1, 2]), 0.2, np.array([7, 8], np.int32))
    assert (c.pairs.tolist(), c.unmatched_tracks.tolist()) == ([[7, 0]], [8])
    for x in (m, c):
        assert x.pairs.dtype == x.unmatched_tracks.dtype == np.int64
        assert x.unmatched_detections.dtype == np.int64
