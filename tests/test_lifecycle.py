"""DeepSORT's track lifecycle, step by step: the boundaries where off-by-one bugs live.

Each test pins one rule of Wojke et al. 2017 (and deep_sort's reference
behaviour) at its boundary: the cascade's last level (``max_age``), confirmation
on a matched frame, the IoU stage's candidates, the recency order, and the
score-rank filter.
"""

from __future__ import annotations

import numpy as np
import pytest

from deeptrack import Tracker, TrackerConfig
from deeptrack.tracking.scores import ScoreHistory
from deeptrack.tracking.track import TrackState


def box(x, y=100.0, w=40.0, h=100.0):
    return [x, y, x + w, y + h]


def frame(*xs, scores=None):
    b = np.array([box(x) for x in xs], float).reshape(-1, 4)
    return b, np.ones(len(xs)) if scores is None else np.asarray(scores, float)


E = np.eye(8)  # orthogonal unit embeddings: cosine distance 0 to itself, 1 to the others


def confirmed_track(max_age, n_init=1, **kw):
    """A tracker holding one confirmed, static track (id 1) with embedding E[0]."""
    tr = Tracker(TrackerConfig(n_init=n_init, max_age=max_age, **kw))
    for _ in range(n_init + 1):
        tr.update(*frame(100), E[:1])
    assert [(t.track_id, t.state) for t in tr.tracks] == [(1, TrackState.CONFIRMED)]
    return tr


@pytest.mark.parametrize("max_age", [2, 3, 5])
def test_track_missed_max_age_times_is_still_matched_by_appearance(max_age):
    tr = confirmed_track(max_age)
    for _ in range(max_age - 1):
        assert len(tr.update(*frame())) == 0
    # Predicted with frames_since_update == max_age: the cascade's last level.
    out = tr.update(*frame(100), E[:1])
    assert out.track_ids.tolist() == [1]
    assert out.det_index.tolist() == [0]


@pytest.mark.parametrize("max_age", [2, 3, 5])
def test_track_missed_more_than_max_age_times_is_not_matched(max_age):
    tr = confirmed_track(max_age)
    for _ in range(max_age):
        tr.update(*frame())
    assert tr.tracks[0].frames_since_update == max_age  # still alive, one frame from death
    # frames_since_update becomes max_age + 1 in predict: out of the cascade, deleted.
    out = tr.update(*frame(100), E[:1])
    assert len(out) == 0
    assert [(t.track_id, t.state) for t in tr.tracks] == [(0, TrackState.TENTATIVE)]
    assert tr.update(*frame(100), E[:1]).track_ids.tolist() == [2]  # a new identity


def test_n_init_one_confirms_on_the_first_match_not_at_birth():
    tr = Tracker(TrackerConfig(n_init=1))
    assert len(tr.update(*frame(100))) == 0
    assert tr.tracks[0].state == TrackState.TENTATIVE
    assert tr.update(*frame(101)).track_ids.tolist() == [1]
    # A one-frame false positive is never output, whatever n_init.
    tr = Tracker(TrackerConfig(n_init=1))
    tr.update(*frame(100))
    assert len(tr.update(*frame())) == 0 and tr.tracks == []


@pytest.mark.parametrize("n_init", [2, 3, 4])
def test_confirmation_needs_n_init_hits_in_a_row(n_init):
    tr = Tracker(TrackerConfig(n_init=n_init))
    for k in range(1, n_init):
        assert len(tr.update(*frame(100 + k))) == 0, k
    assert tr.update(*frame(100 + n_init)).track_ids.tolist() == [1]


def test_recently_seen_track_takes_the_detection_before_an_older_one():
    # Track 1 (E[0]) was seen last frame; track 2 (E[1]) has been lost for 3 frames.
    # A detection looking like track 2 but in the gates of both goes to track 1 only if
    # its appearance admits it: here it does not, so it goes to track 2 on level 4.
    tr = Tracker(TrackerConfig(n_init=1, max_age=10))
    for _ in range(2):
        tr.update(*frame(100, 300), E[:2])
    for _ in range(3):
        tr.update(*frame(100), E[:1])
    out = tr.update(*frame(100, 300), np.stack([E[0], E[1]]))
    assert out.track_ids.tolist() == [1, 2]
    # Both tracks admit the same detection at cosine 0: the one seen last frame wins.
    tr = Tracker(TrackerConfig(n_init=1, max_age=10))
    for _ in range(2):
        tr.update(*frame(100, 104), np.stack([E[0], E[0]]))
    for _ in range(2):
        tr.update(*frame(100), E[:1])
    out = tr.update(*frame(102), E[:1])
    assert out.track_ids.tolist() == [1]


def test_lost_track_is_matched_by_appearance_only_not_by_iou():
    # Lost for 2 frames: not an IoU candidate. A detection on its predicted box with an
    # unrelated appearance stays unmatched (a new track), one with its look is matched.
    tr = confirmed_track(max_age=10)
    tr.update(*frame())
    tr.update(*frame())
    tr.update(*frame(100), E[3:4])
    assert [t.track_id for t in tr.tracks] == [1, 0]
    assert tr.tracks[0].frames_since_update == 3


def test_track_missed_once_is_matched_by_iou_when_appearance_rejects():
    # frames_since_update == 1 after predict: the IoU stage may take it (deep_sort).
    tr = confirmed_track(max_age=10)
    out = tr.update(*frame(100), E[3:4])
    assert out.track_ids.tolist() == [1]


def test_tentative_tracks_are_matched_by_iou_only():
    tr = Tracker(TrackerConfig(n_init=3))
    tr.update(*frame(100), E[:1])
    out_ = tr.update(*frame(100), E[5:6])  # a different look, same place: IoU matches it
    assert len(out_) == 0 and len(tr.tracks) == 1 and tr.tracks[0].hits == 2
    tr.update(*frame(500), E[5:6])  # far away: IoU cannot; the tentative track dies
    assert [t.hits for t in tr.tracks] == [1]


def test_gallery_keeps_features_of_the_tentative_phase_and_the_budget():
    tr = Tracker(TrackerConfig(n_init=3, nn_budget=4))
    looks = np.eye(8)
    for k in range(6):
        tr.update(*frame(100), looks[k:k + 1])
    kept = sorted(int(np.argmax(v)) for v in tr._gallery.features(0))
    assert kept == [2, 3, 4, 5]  # the last nn_budget, from the tentative phase on


# ---------------------------------------------------------------- score ranks


def test_score_history_order_statistic_and_ring_buffer():
    h = ScoreHistory(4)
    assert h.threshold(0.5, np.array([])) == -np.inf
    assert h.threshold(0.5, np.array([3.0, 1.0, 2.0, 4.0])) == 3.0  # floor(0.5 * 4) = 2
    h.add(np.array([10.0, 20.0, 30.0]))
    assert h.threshold(0.0, np.array([5.0])) == 5.0
    assert h.threshold(0.75, np.array([5.0])) == 30.0
    h.add(np.array([40.0, 50.0]))  # 10 drops out
    assert len(h) == 4
    assert h.threshold(0.0, np.array([])) == 20.0
    h.add(np.arange(100.0))  # more than the capacity at once: the last 4 stay
    assert h.threshold(0.0, np.array([])) == 96.0


@pytest.mark.parametrize("scale", [1.0, 100.0, 1e-3])
def test_score_quantile_drops_low_ranks_whatever_the_scale(scale):
    tr = Tracker(TrackerConfig(n_init=1, min_score_quantile=0.5))
    scores = np.array([0.9, 0.1, 0.8, 0.2]) * scale
    tr.update(*frame(100, 300, 500, 700, scores=scores))
    out = tr.update(*frame(100, 300, 500, 700, scores=scores))
    # The median of the 8 scores seen is 0.8 * scale: the 0.1 and 0.2 detections go.
    assert sorted(out.det_index.tolist()) == [0, 2]
    assert len(tr.tracks) == 2


def test_score_filter_keeps_input_rows_in_det_index():
    tr = Tracker(TrackerConfig(n_init=1, min_score_quantile=0.5))
    scores = np.array([0.1, 0.9])
    for _ in range(3):
        out = tr.update(*frame(100, 300, scores=scores), E[:2])
    assert out.det_index.tolist() == [1]
    assert out.boxes[0, 0] == pytest.approx(300, abs=1)


def test_score_filter_off_tracks_every_detection():
    tr = Tracker(TrackerConfig(n_init=1))
    tr.update(*frame(100, 300, scores=[-5.0, 1e6]))
    out = tr.update(*frame(100, 300, scores=[-5.0, 1e6]))
    assert out.det_index.tolist() == [0, 1]


def test_a_dead_tracks_gallery_slot_is_handed_back_and_reused():
    # Slot 0 included: a "slot > 0" check when freeing would leak it.
    tr = Tracker(TrackerConfig(n_init=3))
    tr.update(*frame(100), E[:1])  # tentative, slot 0
    tr.update(*frame())  # dies at its first miss
    assert tr.tracks == []
    tr.update(*frame(500), E[1:2])
    assert tr._tracks.slot.tolist() == [0]
    assert len(tr._gallery._count) == 8  # no new storage for the reborn slot
