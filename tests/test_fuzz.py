"""Property-based fuzzing of the input edges: the tracker, the file readers, the configs.

Each property holds for every input hypothesis draws: the only exceptions are the
project's own (``InputError`` from the tracker, ``DataFormatError`` from the readers,
``ConfigError`` from configs), a rejected ``update()`` leaves the tracker exactly as it
was, and what ``write_results`` writes ``read_results`` reads back. Example counts are
bounded so that the module runs in a few seconds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from deeptrack import EmbeddingHead, Tracker, TrackerConfig
from deeptrack.boxes import MAX_COORD, MIN_SIZE, box_ok
from deeptrack.config import RunConfig, from_dict
from deeptrack.errors import ConfigError, DataFormatError, DeepTrackError, InputError
from deeptrack.io import (
    TrackResults,
    load_sequence,
    read_detections,
    read_ground_truth,
    read_results,
    write_results,
)

FAST = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

# ------------------------------------------------------------------ tracker

EXTREME = [0.0, 1.0, -1.0, MIN_SIZE, 1e-7, 0.5, 1e3, 1e6, MAX_COORD, -MAX_COORD,
           MAX_COORD * (1 + 1e-9), 1e300, -1e300, 5e-324, np.nan, np.inf, -np.inf]


@st.composite
def boxes_input(draw, n: int):
    """(n, 4) boxes: mostly valid (some at the limits), some broken in one way."""
    kind = draw(st.sampled_from(["valid", "valid", "valid", "extreme", "shape", "list"]))
    if kind == "shape":
        return np.ones((n, draw(st.sampled_from([3, 5]))))
    if kind == "list":  # ragged or text
        return draw(st.sampled_from([[[1, 2, 3]], [["a", 1, 2, 3]], [[1, 2, 3, 4], [1, 2]]]))
    x1 = np.array(draw(st.lists(st.floats(-MAX_COORD, MAX_COORD - 1e4), min_size=n, max_size=n)))
    y1 = np.array(draw(st.lists(st.floats(-MAX_COORD, MAX_COORD - 1e4), min_size=n, max_size=n)))
    wh = np.array(draw(st.lists(st.sampled_from([MIN_SIZE, 1e-6, 0.5, 10.0, 80.0, 1e4]),
                                min_size=2 * n, max_size=2 * n))).reshape(n, 2)
    b = np.stack([x1, y1, x1 + wh[:, 0], y1 + wh[:, 1]], 1).reshape(n, 4)
    if kind == "extreme" and n:
        i, j = draw(st.integers(0, n - 1)), draw(st.integers(0, 3))
        b[i, j] = draw(st.sampled_from(EXTREME))
    return b


@st.composite
def frame_input(draw):
    """One update() call's arguments: valid or not, with or without appearance."""
    n = draw(st.integers(0, 5))
    boxes = draw(boxes_input(n))
    scores = draw(st.sampled_from(["ok", "ok", "ok", "nan", "length", "text"]))
    scores = {"ok": np.linspace(0.3, 1.0, n), "nan": np.full(n, np.nan),
              "length": np.ones(n + 1), "text": np.full(n, "x")}[scores]
    kwargs = {}
    app = draw(st.sampled_from(["none", "emb", "emb", "emb_dim", "emb_bad", "maps", "maps_c"]))
    if app == "emb":
        kwargs["embeddings"] = np.random.default_rng(n).standard_normal((n, 8))
    elif app == "emb_dim":
        kwargs["embeddings"] = np.ones((n, 5))
    elif app == "emb_bad":
        kwargs["embeddings"] = draw(st.sampled_from(
            [np.zeros((n, 8)), np.full((n, 8), np.nan), np.full((n, 8), 1e39), np.ones((n + 1, 8)),
             np.ones(8)]))
    elif app == "maps":
        kwargs["roi_features"] = np.abs(np.random.default_rng(n).standard_normal((n, 8, 2, 2)))
    elif app == "maps_c":
        kwargs["roi_features"] = draw(st.sampled_from(
            [np.ones((n, 3, 2, 2)), np.full((n, 8, 2, 2), np.inf), np.ones((n, 8, 2)),
             np.full((n, 8, 2, 2), 1e30)]))
    return boxes, scores, kwargs


def _snapshot(tracker: Tracker):
    return tracker.frame_count, tracker.embedding_dim, [
        (t.track_id, t.state, t.box.tobytes(), t.hits, t.age, t.frames_since_update,
         np.float64(t.score).tobytes())
        for t in tracker.tracks
    ]


@pytest.mark.parametrize("memory", ["gallery", "ema"])
@FAST
@given(frames=st.lists(frame_input(), min_size=1, max_size=8))
def test_update_raises_only_input_error_and_a_rejected_call_changes_nothing(memory, frames):
    tracker = Tracker(TrackerConfig(n_init=1, appearance_memory=memory), head=EmbeddingHead())
    for boxes, scores, kwargs in frames:
        before = _snapshot(tracker)
        try:
            out = tracker.update(boxes, scores, **kwargs)
        except InputError:
            assert _snapshot(tracker) == before
            continue
        # whatever was accepted is finite and valid, in the output and in the state
        assert np.isfinite(out.boxes).all() and box_ok(out.boxes).all()
        for t in tracker.tracks:
            assert np.isfinite(t.box).all()


# ------------------------------------------------------------------ readers

TOKENS = ["1", "-1", "0", "2", "7", "0.5", "1e30", "-1e30", "1e400", "nan", "inf", "-inf", "",
          " ", "abc", "1.5", "2147483648", "10000001", "1e-9", "0x10", "1_0", "+3", ".5", "١",
          "\x00", "1e7", "-1e7", "99999999", "3.0"]


@st.composite
def table_text(draw):
    """Text close to a MOTChallenge file: rows of plausible and hostile fields."""
    n_rows = draw(st.integers(0, 6))
    n_cols = draw(st.sampled_from([6, 7, 7, 9, 10, 10, 11]))
    lines = []
    for _ in range(n_rows):
        fields = draw(st.lists(st.sampled_from(TOKENS), min_size=n_cols, max_size=n_cols))
        if draw(st.booleans()):  # keep most lines well formed, so validation runs deep
            fields[:7] = ["1", "-1", "10", "10", "5", "5", "0.9"][: min(7, n_cols)]
        lines.append(",".join(fields))
    end = draw(st.sampled_from(["\n", "", "\n\n", "\r\n", "\n \n"]))
    return "\n".join(lines) + end


READERS = {"det": read_detections, "gt": read_ground_truth, "res": read_results}


@pytest.mark.parametrize("reader", sorted(READERS))
@FAST
@given(text=table_text(), max_frame=st.sampled_from([None, 1, 5]))
def test_readers_raise_only_data_format_errors_on_text(tmp_path, reader, text, max_frame):
    path = tmp_path / "f.txt"
    path.write_text(text, encoding="utf-8")
    try:
        READERS[reader](path, max_frame=max_frame)
    except DataFormatError as e:
        assert str(e).startswith(f"{path}"), e  # names the file (and the line, when one)


@pytest.mark.parametrize("reader", sorted(READERS))
@FAST
@given(data=st.binary(max_size=300))
def test_readers_raise_only_data_format_errors_on_bytes(tmp_path, reader, data):
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    try:
        READERS[reader](path)
    except DataFormatError:
        pass


INI_VALUES = ["30", "0", "-5", "nan", "inf", "1e9", "1e400", "abc", "", "1000", "1000.5",
              "10000001", "99999999999", "1.5", "1_0", "0.001"]


@FAST
@given(rate=st.sampled_from(INI_VALUES), length=st.sampled_from(INI_VALUES),
       width=st.sampled_from(INI_VALUES), images=st.booleans())
def test_seqinfo_values_raise_only_data_format_errors(tmp_path_factory, rate, length, width,
                                                     images):
    seq = tmp_path_factory.mktemp("seq")
    (seq / "det").mkdir()
    (seq / "det" / "det.txt").write_text("1,-1,1,1,5,5,0.9\n")
    if images:
        (seq / "img1").mkdir()
        (seq / "img1" / "000001.jpg").write_bytes(b"not decoded here")
    (seq / "seqinfo.ini").write_text(
        f"[Sequence]\nname=s\nframeRate={rate}\nseqLength={length}\nimWidth={width}\n"
        "imHeight=10\nimExt=.jpg\n")
    try:
        s = load_sequence(seq)
    except DataFormatError:
        return
    assert 0 < s.frame_rate <= 1000 and math.isfinite(s.frame_rate)
    assert s.n_frames <= 10_000_000


# ------------------------------------------------------------------ round trip

@st.composite
def valid_results(draw):
    n = draw(st.integers(1, 6))
    size = st.one_of(st.floats(MIN_SIZE, 2e7), st.sampled_from([MIN_SIZE, 1e-7, 1e-6, 5e-7]))
    rows = []
    for _ in range(n):
        w, h = draw(size), draw(size)
        x1 = draw(st.floats(-MAX_COORD, MAX_COORD - w))
        y1 = draw(st.floats(-MAX_COORD, MAX_COORD - h))
        rows.append([x1, y1, x1 + w, y1 + h])
    boxes = np.array(rows)
    assume(box_ok(boxes).all())  # rounding of x1 + w can still break a box at the limits
    scores = draw(st.lists(st.floats(-1e6, 1e6), min_size=n, max_size=n))
    return TrackResults(np.arange(1, n + 1), np.arange(n), boxes, np.array(scores))


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])
@given(res=valid_results())
def test_what_is_written_reads_back(tmp_path, res):
    path = tmp_path / "r.txt"
    write_results(path, res)
    back = read_results(path)  # never refused
    np.testing.assert_allclose(back.boxes, res.boxes, rtol=0, atol=2e-6)
    np.testing.assert_allclose(back.scores, res.scores, rtol=0, atol=1e-6)


# ------------------------------------------------------------------ configs

CONFIG_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(),
                                                          max_size=2),
)
KEYS = ["min_confidence", "det_file", "use_appearance", "tracker", "head", "appearance", "other"]
TRACKER_KEYS = ["max_cosine_distance", "max_age", "n_init", "nn_budget", "gating_threshold",
                "ema_alpha", "kalman", "appearance_memory", "blas_threads", "zzz"]
HEAD_KEYS = ["pooling", "gem_p", "maxpool_kernel", "reduce_dim", "reduce_seed", "zzz"]
APPEARANCE_KEYS = ["image_scale", "roi_size", "batch_size", "cache_max_bytes", "backbone"]


@FAST
@given(top=st.dictionaries(st.sampled_from(KEYS), CONFIG_VALUES, max_size=3),
       tracker=st.dictionaries(st.sampled_from(TRACKER_KEYS), CONFIG_VALUES, max_size=3),
       head=st.dictionaries(st.sampled_from(HEAD_KEYS), CONFIG_VALUES, max_size=2),
       appearance=st.dictionaries(st.sampled_from(APPEARANCE_KEYS), CONFIG_VALUES, max_size=2))
def test_configs_raise_only_config_errors(top, tracker, head, appearance):
    data = dict(top)
    if tracker:
        data["tracker"] = tracker
    if head:
        data["head"] = head
    if appearance:
        data["appearance"] = appearance
    try:
        cfg = from_dict(RunConfig, data)
    except ConfigError as e:
        assert "\n" not in str(e)
        return
    numbers = [v for v in (cfg.min_confidence, cfg.tracker.max_cosine_distance,
                           cfg.tracker.gating_threshold, cfg.appearance.image_scale)
               if isinstance(v, float)]
    assert all(math.isfinite(v) for v in numbers)


def test_project_errors_share_one_base():
    # what the CLI turns into one line and exit status 2
    for cls in (ConfigError, DataFormatError, InputError):
        assert issubclass(cls, DeepTrackError)
