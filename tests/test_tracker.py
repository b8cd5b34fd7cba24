"""The Tracker's contract: lifecycle, association, bad input, determinism, memory."""

from __future__ import annotations

import numpy as np
import pytest

from deeptrack import EmbeddingHead, HeadConfig, Tracker, TrackerConfig
from deeptrack.errors import InputError
from deeptrack.synthetic import make_crossing_scene, make_scene
from deeptrack.tracking.track import TrackState


def box(x, y=100.0, w=40.0, h=100.0):
    return [x, y, x + w, y + h]


def frame(*xs):
    return np.array([box(x) for x in xs], float).reshape(-1, 4), np.ones(len(xs))


def snapshot(tr: Tracker):
    """Everything a failed update must leave as it was."""
    t = tr._tracks
    g = tr._gallery
    cols = {k: np.copy(v) for k, v in vars(t).items()}
    return (cols, g._store.copy(), g._count.copy(), g._pos.copy(), list(g._free), g.dim,
            tr._next_id, tr._frame, tr._uses_appearance)


def assert_same_state(a, b):
    cols_a, *rest_a = a
    cols_b, *rest_b = b
    assert cols_a.keys() == cols_b.keys()
    for k in cols_a:
        np.testing.assert_array_equal(cols_a[k], cols_b[k], err_msg=k)
    for x, y in zip(rest_a, rest_b):
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y)
        else:
            assert x == y


# ---------------------------------------------------------------- lifecycle

def test_confirmed_after_n_init_hits_and_ids_start_at_one():
    tr = Tracker(TrackerConfig(n_init=3))
    # frame 1: tentative (1 hit); frame 2: 2 hits; frame 3: confirmed -> id 1 output.
    for f in range(2):
        out = tr.update(*frame(100 + 5 * f))
        assert len(out) == 0
        assert tr.tracks[0].state == TrackState.TENTATIVE
        assert tr.tracks[0].track_id == 0
    out = tr.update(*frame(110))
    assert out.track_ids.tolist() == [1]
    assert out.det_index.tolist() == [0]
    assert tr.tracks[0].state == TrackState.CONFIRMED


def test_tentative_track_dies_at_first_miss_and_burns_no_id():
    tr = Tracker(TrackerConfig(n_init=3))
    tr.update(*frame(100))
    tr.update(*frame(105))
    tr.update(*frame())  # miss while tentative
    assert tr.tracks == []
    for f in range(3):
        out = tr.update(*frame(500 + 5 * f))
    assert out.track_ids.tolist() == [1]  # the dead tentative track took no id


def test_confirmed_track_deleted_after_max_age_misses():
    tr = Tracker(TrackerConfig(n_init=1, max_age=4))
    tr.update(*frame(100))
    tr.update(*frame(101))  # confirmed on its first matched frame
    for miss in range(1, 5):
        tr.update(*frame())
        assert len(tr.tracks) == 1
        assert tr.tracks[0].frames_since_update == miss
    tr.update(*frame())  # fifth miss > max_age
    assert tr.tracks == []


def test_n_init_counts_hits_and_max_age_scales_only_when_asked():
    tr = Tracker(TrackerConfig(max_age=30, n_init=3), frame_rate=10)
    assert (tr.max_age, tr.n_init) == (30, 3)  # the paper's settings hold as written
    tr = Tracker(TrackerConfig(max_age=30, n_init=3, reference_fps=30), frame_rate=10)
    assert (tr.max_age, tr.n_init) == (10, 3)  # n_init counts evidence, never time
    tr.reset(frame_rate=60)
    assert (tr.max_age, tr.n_init) == (60, 3)
    with pytest.raises(ValueError, match="frame_rate"):
        Tracker(frame_rate=0)


def test_lost_track_is_recovered_by_appearance_with_same_id():
    rng = np.random.default_rng(0)
    e = rng.standard_normal((2, 16))
    tr = Tracker(TrackerConfig(n_init=1))
    for f in range(5):
        out = tr.update(*frame(100 + 2 * f, 600 + 2 * f), e)
    assert out.track_ids.tolist() == [1, 2]
    for _ in range(5):  # both occluded
        tr.update(*frame())
    out = tr.update(*frame(120, 620), e)
    assert out.track_ids.tolist() == [1, 2]
    assert out.det_index.tolist() == [0, 1]


@pytest.mark.parametrize("gap", [0, 1, 3])
def test_output_max_gap_writes_predicted_boxes_of_short_gaps(gap):
    tr = Tracker(TrackerConfig(n_init=1, max_age=10, output_max_gap=gap))
    tr.update(*frame(100))
    tr.update(*frame(104))  # confirmed, moving +4 px per frame
    for miss in range(1, 6):
        out = tr.update(*frame())
        if miss <= gap:
            assert out.track_ids.tolist() == [1] and out.det_index.tolist() == [-1]
            # the Kalman prediction, not the last detection
            assert out.boxes[0, 0] == pytest.approx(tr.tracks[0].box[0])
            assert out.boxes[0, 0] > 104
        else:
            assert len(out) == 0


def test_two_trackers_do_not_share_ids_and_reset_restarts():
    a, b = Tracker(TrackerConfig(n_init=1)), Tracker(TrackerConfig(n_init=1))
    a.update(*frame(100))
    b.update(*frame(300))
    assert a.update(*frame(100)).track_ids.tolist() == [1]
    assert b.update(*frame(300)).track_ids.tolist() == [1]
    a.reset()
    assert a.tracks == [] and a.frame_count == 0
    a.update(*frame(700))
    assert a.update(*frame(700)).track_ids.tolist() == [1]


# ---------------------------------------------------------------- association

def test_gate_rejects_a_far_detection_even_with_identical_appearance():
    e = np.ones((1, 8))
    tr = Tracker(TrackerConfig(n_init=1))
    for f in range(5):
        tr.update(*frame(100 + f), e)
    out = tr.update(*frame(1500), e)  # the same look, but an impossible jump
    assert len(out) == 0  # not track 1; a new tentative track (confirmed on a later match)
    assert [(t.track_id, t.frames_since_update) for t in tr.tracks] == [(1, 1), (0, 0)]
    out = tr.update(*frame(1501), e)
    assert out.track_ids.tolist() == [2]


def test_gate_far_detection_starts_a_new_track():
    e = np.ones((1, 8))
    tr = Tracker(TrackerConfig(n_init=2))
    for f in range(5):
        tr.update(*frame(100 + f), e)
    tr.update(*frame(1500), e)
    states = [(t.track_id, t.frames_since_update) for t in tr.tracks]
    assert states == [(1, 1), (0, 0)]  # track 1 missed; a tentative track holds the far box


def test_crossing_appearance_keeps_ids_motion_only_swaps():
    scene = make_crossing_scene(seed=3)

    def identities(use_appearance):
        tr = Tracker()
        seen = {}
        for fr in scene.frames:
            out = tr.update(fr.boxes, fr.scores, fr.embeddings if use_appearance else None)
            for tid, di in zip(out.track_ids, out.det_index):
                seen.setdefault(int(tid), set()).add(int(fr.det_ids[di]))
        return seen

    assert identities(True) == {1: {0}, 2: {1}}
    # Motion alone predicts each kept walking, so each track ends on the other person.
    assert identities(False) == {1: {0, 1}, 2: {0, 1}}


def test_same_input_same_output():
    scene = make_scene(8, 120, seed=5, embedding_dim=32)

    def run():
        tr = Tracker()
        return [tr.update(f.boxes, f.scores, f.embeddings) for f in scene.frames]

    for a, b in zip(run(), run()):
        np.testing.assert_array_equal(a.track_ids, b.track_ids)
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.det_index, b.det_index)


def test_a_copied_or_pickled_tracker_continues_as_the_original():
    import copy
    import pickle

    scene = make_scene(6, 60, seed=3, embedding_dim=16)
    tr = Tracker()
    for f in scene.frames[:30]:
        tr.update(f.boxes, f.scores, f.embeddings)
    copies = [copy.deepcopy(tr), pickle.loads(pickle.dumps(tr))]
    for f in scene.frames[30:]:
        want = tr.update(f.boxes, f.scores, f.embeddings)
        for other in copies:
            got = other.update(f.boxes, f.scores, f.embeddings)
            np.testing.assert_array_equal(got.track_ids, want.track_ids)
            np.testing.assert_array_equal(got.boxes, want.boxes)


def test_filterpy_engine_gives_the_same_tracks():
    scene = make_scene(6, 60, seed=2, embedding_dim=16)
    fast = Tracker(TrackerConfig())
    ref = Tracker(TrackerConfig(kalman="filterpy"))
    for f in scene.frames:
        a = fast.update(f.boxes, f.scores, f.embeddings)
        b = ref.update(f.boxes, f.scores, f.embeddings)
        np.testing.assert_array_equal(a.track_ids, b.track_ids)
        np.testing.assert_allclose(a.boxes, b.boxes, rtol=1e-9)


def test_synthetic_scene_is_tracked_with_few_switches():
    scene = make_scene(10, 300, seed=1, embedding_dim=64)
    tr = Tracker()
    owner = {}
    switches = matched = 0
    for f in scene.frames:
        out = tr.update(f.boxes, f.scores, f.embeddings)
        for tid, di in zip(out.track_ids, out.det_index):
            gid = int(f.det_ids[di])
            if gid < 0:
                continue
            matched += 1
            if owner.setdefault(gid, int(tid)) != int(tid):
                switches += 1
                owner[gid] = int(tid)
    assert matched > 0.8 * sum(len(f.gt_ids) for f in scene.frames)
    assert switches <= 5


# ---------------------------------------------------------------- input contract

def test_empty_frames_are_fine():
    tr = Tracker()
    out = tr.update(np.zeros((0, 4)), np.zeros(0))
    assert len(out) == 0 and out.boxes.shape == (0, 4)
    out = tr.update([], [], None)
    assert len(out) == 0
    out = tr.update(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 8)))
    assert tr.frame_count == 3


BAD_INPUTS = {
    "nan box": (lambda b, s, e: (np.where(np.arange(4) == 1, np.nan, b), s, e), "NaN"),
    "inf box": (lambda b, s, e: (b + [[0, 0, np.inf, 0]], s, e), "inf"),
    "zero width": (lambda b, s, e: (np.array([[5, 5, 5, 50.0]]), s, e), "width"),
    "negative height": (lambda b, s, e: (np.array([[5, 50, 20, 10.0]]), s, e), "height"),
    "score count": (lambda b, s, e: (b, np.ones(2), e), "scores"),
    "nan score": (lambda b, s, e: (b, np.array([np.nan]), e), "scores"),
    "embedding rows": (lambda b, s, e: (b, s, np.ones((2, 8))), "embeddings"),
    "embedding dim": (lambda b, s, e: (b, s, np.ones((1, 9))), "dimension"),
    "nan embedding": (lambda b, s, e: (b, s, np.full((1, 8), np.nan)), r"embeddings\[0\].*NaN"),
    "inf embedding": (lambda b, s, e: (b, s, np.r_[0, np.inf, np.ones(6)][None]), "NaN or inf"),
    "text embedding": (lambda b, s, e: (b, s, np.full((1, 8), "a")), "numeric"),
    "zero embedding": (lambda b, s, e: (b, s, np.zeros((1, 8))), "zero"),
    "missing appearance": (lambda b, s, e: (b, s, None), "appearance"),
    "boxes shape": (lambda b, s, e: (np.ones((1, 5)), s, e), r"\(N, 4\)"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_raises_and_leaves_state_unchanged(case):
    tr = Tracker(TrackerConfig(n_init=2))
    rng = np.random.default_rng(0)
    for f in range(4):
        tr.update(*frame(100 + 3 * f, 400), rng.standard_normal((2, 8)))
    before = snapshot(tr)
    make, message = BAD_INPUTS[case]
    b, s = frame(112)
    with pytest.raises(InputError, match=message):
        tr.update(*make(b, s, rng.standard_normal((1, 8))))
    assert_same_state(before, snapshot(tr))
    # and the tracker carries on as if the bad call never happened
    out = tr.update(*frame(112, 400), rng.standard_normal((2, 8)))
    assert out.track_ids.tolist() == [1, 2]


def test_only_one_appearance_source():
    tr = Tracker()
    with pytest.raises(InputError, match="only one"):
        tr.update(*frame(1), np.ones((1, 4)), roi_features=np.ones((1, 4, 2, 2)))
    with pytest.raises(InputError, match="no embedder"):
        tr.update(*frame(1), image=np.zeros((10, 10, 3), np.uint8))


def test_memory_stays_flat_over_10000_frames():
    scene = make_scene(12, 10_000, seed=7, embedding_dim=16, speed=8.0, p_occlusion=0.01)
    tr = Tracker(TrackerConfig(nn_budget=20))
    sizes = []
    for i, f in enumerate(scene.frames):
        tr.update(f.boxes, f.scores, f.embeddings)
        if i % 1000 == 999:
            sizes.append(tr.memory_bytes)
    assert tr.tracks  # still tracking
    # Hundreds of identities came and went; storage is bounded by live tracks.
    assert max(sizes[2:]) <= 2 * sizes[1]
    assert len(tr._gallery._count) <= 128


def test_roi_feature_maps_are_pooled_by_the_head():
    from deeptrack.appearance.pooling import pool
    from deeptrack.types import PoolingMode

    rng = np.random.default_rng(0)
    maps = [rng.random((2, 6, 3, 3)).astype(np.float32) for _ in range(6)]
    for mode in (PoolingMode.AVG, PoolingMode.MAX, PoolingMode.GEM, PoolingMode.FLATTEN):
        a = Tracker(TrackerConfig(n_init=1), head=EmbeddingHead(HeadConfig(pooling=mode)))
        b = Tracker(TrackerConfig(n_init=1))
        for f, m in enumerate(maps):
            out_a = a.update(*frame(100 + f, 300 + f), roi_features=m)
            out_b = b.update(*frame(100 + f, 300 + f), pool(m, mode, p=3.0, kernel=2))
            np.testing.assert_array_equal(out_a.track_ids, out_b.track_ids)
        assert a._gallery.dim == b._gallery.dim


def test_maps_need_a_head_and_an_image_an_embedder():
    tr = Tracker(TrackerConfig(n_init=1))
    before = snapshot(tr)
    with pytest.raises(InputError, match=r"no head .*head=EmbeddingHead"):
        tr.update(*frame(100), roi_features=np.ones((1, 4, 2, 2)))
    with pytest.raises(InputError, match=r"no embedder"):
        tr.update(*frame(100), image=np.zeros((200, 300, 3), np.uint8))
    assert_same_state(before, snapshot(tr))
    with pytest.raises(TypeError, match="head must be an EmbeddingHead"):
        Tracker(head=HeadConfig())


def test_maps_that_pool_to_zero_carry_no_appearance_but_still_track():
    tr = Tracker(TrackerConfig(n_init=1), head=EmbeddingHead())
    for f in range(4):
        out = tr.update(*frame(100 + f), roi_features=np.zeros((1, 4, 2, 2)))
    assert out.track_ids.tolist() == [1]


def test_random_projection_reduces_the_dimension():
    tr = Tracker(TrackerConfig(n_init=1),
                 head=EmbeddingHead(HeadConfig(pooling="flatten", reduce_dim=16)))
    rng = np.random.default_rng(1)
    tr.update(*frame(100), roi_features=rng.random((1, 8, 4, 4)))
    assert tr._gallery.dim == 16


def test_changed_roi_channels_are_refused_even_behind_a_projection():
    tr = Tracker(TrackerConfig(n_init=1),
                 head=EmbeddingHead(HeadConfig(pooling="flatten", reduce_dim=16)))
    rng = np.random.default_rng(1)
    tr.update(*frame(100), roi_features=rng.random((1, 8, 4, 4)))
    before = snapshot(tr)
    with pytest.raises(InputError, match="RoI channels changed"):
        tr.update(*frame(101), roi_features=rng.random((1, 4, 4, 4)))
    assert_same_state(before, snapshot(tr))
    tr.reset()
    tr.update(*frame(100), roi_features=rng.random((1, 4, 4, 4)))  # a new sequence may


def test_blas_thread_limit_is_scoped_to_update():
    from threadpoolctl import threadpool_info

    def blas_threads():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    seen = []

    class Spy:  # its roi_features runs inside update()
        def roi_features(self, image, boxes):
            seen.append(blas_threads())
            return np.ones((len(boxes), 2, 1, 1), np.float32)

    before = blas_threads()
    tr = Tracker(TrackerConfig(blas_threads=1))
    tr.update(*frame(100), np.ones((1, 8)))
    assert blas_threads() == before
    tr = Tracker(TrackerConfig(blas_threads=1), head=EmbeddingHead(), embedder=Spy())
    tr.update(*frame(100), image=np.zeros((200, 300, 3), np.uint8))
    assert seen == [[1] * len(before)]
    assert blas_threads() == before


def test_image_with_embedder_equals_passing_its_maps():
    class CropMeans:
        """A stand-in embedder: each box's map is its patch of the image, 2x2 cells."""

        def roi_features(self, image, boxes):
            maps = []
            for x1, y1, x2, y2 in boxes.astype(int):
                patch = image[y1:y2, x1:x2].astype(np.float32)
                h, w = patch.shape[0] // 2, patch.shape[1] // 2
                cells = [patch[i * h:(i + 1) * h, j * w:(j + 1) * w].mean((0, 1))
                         for i in range(2) for j in range(2)]
                maps.append(np.stack(cells, 1).reshape(3, 2, 2))
            return np.array(maps, np.float32).reshape(-1, 3, 2, 2)

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (300, 800, 3), dtype=np.uint8)
    head = EmbeddingHead(HeadConfig(pooling="gem"))
    with_image = Tracker(TrackerConfig(n_init=1), embedder=CropMeans(), head=head)
    with_maps = Tracker(TrackerConfig(n_init=1), head=head)
    for f in range(4):
        b, s = frame(100 + 4 * f, 400 + 4 * f)
        a = with_image.update(b, s, image=image)
        m = with_maps.update(b, s, roi_features=CropMeans().roi_features(image, b))
        np.testing.assert_array_equal(a.track_ids, m.track_ids)
    with pytest.raises(InputError, match="HxWx3 uint8"):
        with_image.update(*frame(120), image=np.zeros((10, 10), np.uint8))


def test_tiny_and_huge_embeddings_are_normalised_not_rejected():
    # Squares of 1e-30 underflow float32 and of 1e30 overflow it; the direction is still there.
    for scale in (1e-30, 1e30):
        tr = Tracker(TrackerConfig(n_init=1))
        b, s = frame(100)
        tr.update(b, s, np.r_[3.0, 4.0, np.zeros(6)][None] * scale)
        np.testing.assert_allclose(tr._gallery.features(0), [[0.6, 0.8, 0, 0, 0, 0, 0, 0]],
                                   rtol=1e-6)


@pytest.mark.parametrize("n_init,output_max_gap", [(1, 0), (3, 30), (5, 1)])
def test_output_is_sorted_by_id_and_ids_follow_creation_order(n_init, output_max_gap):
    # The tracker relies on confirmed rows being in id order (it does not sort): check it
    # on a crowded scene with crossings, misses, false positives and appearance.
    scene = make_scene(25, 300, seed=3, fp_per_frame=3, p_miss=0.15, p_occlusion=0.02)
    tr = Tracker(TrackerConfig(n_init=n_init, output_max_gap=output_max_gap))
    seen = 0
    for f in scene.frames:
        out = tr.update(f.boxes, f.scores, f.embeddings)
        assert (np.diff(out.track_ids) > 0).all()
        confirmed = [x.track_id for x in tr.tracks if x.state == TrackState.CONFIRMED]
        assert confirmed == sorted(confirmed)
        seen = max(seen, len(out))
    assert seen >= 15


def test_gallery_gives_back_storage_after_a_burst_of_tracks():
    from deeptrack.association.gallery import Gallery

    g = Gallery(budget=4)
    burst = g.allocate(40, 8)  # 40 tracks at once: the store grows to 40 slots
    assert len(g._count) == 40
    g.release(burst[20:])  # the upper half empties
    for _ in range(2):
        g.trim(patience=3)
    assert len(g._count) == 40  # not yet: the patience is 3 calls in a row
    g.allocate(1, 8)  # slot 20 in use again: the count starts over
    g.trim(patience=3)
    g.release(np.array([20]))
    for _ in range(3):
        g.trim(patience=3)
    assert len(g._count) == 20 and g._store.shape[0] == 20
    assert sorted(g._free) == []  # slots 0-19 are still live, untouched
    np.testing.assert_array_equal(g.allocate(1, 8), [20])  # grows again when needed


def test_tracker_memory_follows_live_tracks_not_the_largest_burst():
    rng = np.random.default_rng(0)
    tr = Tracker(TrackerConfig(n_init=1, max_age=2))
    crowd = np.array([box(60.0 * i) for i in range(30)])
    e = rng.standard_normal((30, 16))
    tr.update(crowd, np.ones(30), e)
    peak = tr.gallery_bytes
    for _ in range(1100):
        tr.update(crowd[:2], np.ones(2), e[:2])  # two tracks live on, 28 die
    assert tr.gallery_bytes <= peak / 2
