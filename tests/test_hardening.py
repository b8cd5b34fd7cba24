"""The contract at the edges: each case of the hostile pass (issue 13), one test each.

Numbers from files, flags and configs are checked once where they enter, with a
message naming the source; result sets are all or nothing with normal permissions;
the feature cache is bounded and cleans up after killed writers; reading a large
file costs memory near the size of the table read.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from typing import ClassVar

import numpy as np
import pytest
from cli_support import make_sequence

from deeptrack import Tracker, TrackerConfig
from deeptrack.appearance.cache import DEFAULT_MAX_BYTES, FeatureCache, default_max_bytes
from deeptrack.appearance.extract import extract_sequence
from deeptrack.boxes import MAX_COORD, MIN_SIZE, box_ok, validate_xyxy
from deeptrack.config import AppearanceConfig, RunConfig, from_dict, load_yaml
from deeptrack.errors import ConfigError, DataFormatError, InputError
from deeptrack.io import (
    TrackResults,
    check_result_file,
    load_evaluation_inputs,
    load_sequence,
    read_detections,
    read_results,
    write_atomic,
    write_result_set,
    write_results,
)
from deeptrack.io.resultset import MANIFEST, ResultSetError

# ------------------------------------------------------------------ boxes


@pytest.mark.parametrize(("box", "message"), [
    ([0, 0, 2e7, 10], "beyond"),
    ([-1e300, 0, 1e300, 10], "beyond"),
    ([0, 0, 1e-9, 10], "below 1e-08"),
    ([0, 0, 5, 5e-324], "below 1e-08"),
    ([0, 5, 5, 5], "zero or negative"),
    ([0, 0, np.nan, 1], "NaN"),
])
def test_absurd_boxes_are_refused_at_input(box, message):
    with pytest.raises(InputError, match=message):
        validate_xyxy([box])
    tracker = Tracker(TrackerConfig(n_init=1))
    with pytest.raises(InputError, match=message):
        tracker.update([box], [1.0])
    assert tracker.frame_count == 0 and tracker.tracks == []


def test_boxes_at_the_limits_keep_the_tracker_finite():
    tracker = Tracker(TrackerConfig(n_init=1))
    frames = [
        [[-MAX_COORD, -MAX_COORD, MAX_COORD, MAX_COORD], [0, 0, MIN_SIZE, MIN_SIZE]],
        [[-MAX_COORD, -MAX_COORD, -MAX_COORD + 2 * MIN_SIZE, MAX_COORD], [5, 5, 5.5, 6]],
        [[MAX_COORD - 1, MAX_COORD - 2 * MIN_SIZE, MAX_COORD, MAX_COORD], [0, 0, MIN_SIZE, 1e7]],
    ]
    for boxes in frames * 3:
        out = tracker.update(np.array(boxes, float), np.ones(len(boxes)))
        assert np.isfinite(out.boxes).all()
        assert all(np.isfinite(t.box).all() for t in tracker.tracks)


def test_a_smallest_box_comes_out_as_a_valid_box():
    # Found by tests/test_fuzz.py: a 1e-8 px box came out 9.99e-9 px wide after the
    # Kalman filter's xyah round trip, below MIN_SIZE, which the result writer refuses.
    for memory in ("gallery", "ema"):
        tracker = Tracker(TrackerConfig(n_init=1, appearance_memory=memory))
        box = np.array([[0.0, 0.5, 1e-08, 0.50000001]])
        for i in range(3):
            out = tracker.update(box, np.array([0.3]))
            assert len(out) == (i > 0) and box_ok(out.boxes).all()  # confirmed on frame 2
            np.testing.assert_allclose(out.boxes, box[:len(out)], atol=1e-8)
        far = np.array([[MAX_COORD - 2 * MIN_SIZE, 0.0, MAX_COORD, MIN_SIZE]])
        tracker = Tracker(TrackerConfig(n_init=1))
        for _ in range(3):
            assert box_ok(tracker.update(far, np.ones(1)).boxes).all()


# ------------------------------------------------------------------ files


def _write(tmp_path, text, name="f.txt"):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize(("text", "message"), [
    ("1,1e30,1,1,5,5,1\n", r":1: id 1e\+30 is beyond the largest id supported"),
    ("1,2147483648,1,1,5,5,1\n", r":1: id 2147483648 is beyond"),
    ("1e30,1,1,1,5,5,1\n", r":1: frame 1e\+30 is beyond the largest frame number"),
    ("1,1,1,1,5,5,1\n2,1,2e7,1,5,5,1\n", r":2: box .* beyond \+-1e\+07"),
    ("1,1,1,1,1e-9,5,1\n", r":1: box .* below 1e-08"),
    ("1,1,1,1,5,5,1\n" + "9" * 70000 + "\n", r":2: line longer than"),
    ("1,1,1,1,5,5,1\n" + "9" * 70000, r":2: line longer than"),
], ids=["id 1e30", "id 2**31", "frame 1e30", "x 2e7", "width 1e-9", "long line",
        "long last line"])
def test_result_numbers_out_of_range_name_path_and_line(tmp_path, text, message):
    p = _write(tmp_path, text)
    with pytest.raises(DataFormatError, match=f"^{p}{message}"):
        read_results(p)


def test_a_width_of_1e_7_round_trips(tmp_path):
    res = TrackResults([1, 1], [1, 2], [[0, 0, 1e-7, 1e-7], [1e7 - 1, 5, 1e7, 5 + 2e-8]],
                       [0.5, 0.5])
    path = tmp_path / "r.txt"
    write_results(path, res)
    assert ",1e-07,1e-07," in path.read_text()  # six decimals would have written 0
    np.testing.assert_allclose(read_results(path).boxes, res.boxes, rtol=0, atol=1e-6)


def test_min_confidence_must_be_finite(tmp_path):
    p = _write(tmp_path, "1,-1,1,1,5,5,0.9\n")
    with pytest.raises(InputError, match="min_confidence must be a finite number"):
        read_detections(p, min_confidence=float("nan"))


def test_seqinfo_values_are_not_interpolated(tmp_path):
    seq = make_sequence(tmp_path)
    ini = seq / "seqinfo.ini"
    ini.write_text(ini.read_text().replace("name=SEQ-01", "name=50% (%(x)s)"))
    assert load_sequence(seq).name == "50% (%(x)s)"


@pytest.mark.parametrize(("key", "value", "message"), [
    ("frameRate", "inf", "frameRate=inf is not a finite number"),
    ("frameRate", "nan", "frameRate=nan is not a finite number"),
    ("frameRate", "1e9", "frameRate=1e9 is beyond 1000 frames per second"),
    ("seqLength", "99999999999", "seqLength=99999999999 is beyond"),
    ("imWidth", "1000000", "imWidth=1000000 is beyond"),
])
def test_seqinfo_numbers_are_finite_and_sane(tmp_path, key, value, message):
    seq = make_sequence(tmp_path)
    ini = seq / "seqinfo.ini"
    lines = [f"{key}={value}" if ln.startswith(f"{key}=") else ln
             for ln in ini.read_text().splitlines()]
    ini.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=f"seqinfo.ini: {message}"):
        load_sequence(seq)


def test_a_long_sequence_without_images_allocates_nothing_per_frame(tmp_path):
    seq = make_sequence(tmp_path)
    for p in (seq / "img1").iterdir():
        p.unlink()
    (seq / "img1").rmdir()
    ini = seq / "seqinfo.ini"
    ini.write_text(ini.read_text().replace("seqLength=12", "seqLength=10000000"))
    s = load_sequence(seq)  # the largest seqLength accepted: fast, and small
    assert s.n_frames == 10_000_000 and len(s.detections(5)) == 2
    assert len(s.detections(9_999_999)) == 0


def test_imdir_must_stay_inside_the_sequence(tmp_path):
    seq = make_sequence(tmp_path)
    ini = seq / "seqinfo.ini"
    ini.write_text(ini.read_text().replace("imDir=img1", "imDir=../../etc"))
    with pytest.raises(DataFormatError, match="imDir"):
        load_sequence(seq)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc for the peak RSS")
def test_reading_a_large_detection_file_costs_about_its_table(tmp_path):
    # 300k rows, 14 MB of text: the old reader peaked at ~15x the file size
    rng = np.random.default_rng(0)
    n = 300_000
    cols = np.column_stack([np.repeat(np.arange(1, 3001), 100), -np.ones(n),
                            rng.uniform(0, 1900, (n, 2)), rng.uniform(10, 300, (n, 2)),
                            rng.uniform(0, 1, n), -np.ones((n, 3))])
    path = tmp_path / "det.txt"
    np.savetxt(path, cols, fmt=["%d", "%d", "%.2f", "%.2f", "%.2f", "%.2f", "%.3f", "%d", "%d",
                                "%d"], delimiter=",")
    script = textwrap.dedent(f"""
        import resource, sys
        from deeptrack.io import read_detections
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        d = read_detections({str(path)!r})
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(len(d), (peak - base) * 1024)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    rows, grown = int(out[0]), int(out[1])
    assert rows == n
    size = path.stat().st_size
    assert grown <= 3 * size, f"reading {size} bytes grew the peak RSS by {grown} bytes"


# ------------------------------------------------------------------ configs and flags


@pytest.mark.parametrize(("yaml_text", "key"), [
    ("min_confidence: .nan\n", "min_confidence"),
    ("tracker:\n  gating_threshold: .inf\n", "tracker.gating_threshold"),
    ("tracker:\n  max_cosine_distance: .nan\n", "tracker.max_cosine_distance"),
    ("appearance:\n  image_scale: -.inf\n", "appearance.image_scale"),
    ("tracker:\n  max_age: 100000000000000000000\n", "tracker.max_age"),
    ("det_file: ../../x.txt\n", "det_file"),
])
def test_config_values_must_be_finite_and_named(tmp_path, yaml_text, key):
    p = _write(tmp_path, yaml_text, "c.yaml")
    with pytest.raises(ConfigError, match=rf"c.yaml: config key '{key}'"):
        load_yaml(p)


def test_non_finite_values_are_refused_however_a_config_is_built():
    with pytest.raises(ConfigError, match="gating_threshold.*not a finite number"):
        TrackerConfig(gating_threshold=float("inf"))
    with pytest.raises(ConfigError, match="min_confidence"):
        RunConfig(min_confidence=float("nan"))
    with pytest.raises(ConfigError, match="batch_size"):
        AppearanceConfig(batch_size=10**9)
    assert from_dict(RunConfig, {"min_confidence": -3}).min_confidence == -3.0


# ------------------------------------------------------------------ result sets


def test_result_files_get_the_umask_permissions(tmp_path):
    old = os.umask(0o027)
    try:
        write_atomic(tmp_path / "a.json", "{}")
        write_result_set(tmp_path / "set", {"x.txt": "1\n", "sub/y.txt": "2\n"}, command="t")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "set" / "x.txt").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "set").stat().st_mode) == 0o750
    os.chmod(tmp_path / "a.json", 0o604)
    write_atomic(tmp_path / "a.json", "[]")  # replacing keeps the file's own permissions
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o604


def test_a_result_set_replaces_an_earlier_one_whole(tmp_path):
    out = tmp_path / "out"
    write_result_set(out, {"A.txt": "a", "B.txt": "b"}, command="track")
    (out / "metrics.json").write_text("{}")  # what eval adds
    (out / ".metrics.json.k3j4.tmp").write_text("{")  # an eval killed while writing it
    assert write_result_set(out, {"A.txt": "a2"}, command="track") is True
    assert sorted(p.name for p in out.iterdir()) == ["A.txt", MANIFEST]  # no B.txt mixed in
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # nothing left beside it


@pytest.mark.parametrize("exchange", [True, False])
def test_replacing_without_the_atomic_exchange_also_works(tmp_path, monkeypatch, exchange):
    import deeptrack.io.resultset as rs

    if not exchange:
        monkeypatch.setattr(rs, "_exchange", lambda a, b: False)
    out = tmp_path / "out"
    write_result_set(out, {"A.txt": "a"}, command="track")
    write_result_set(out, {"C.txt": "c"}, command="track")
    assert sorted(p.name for p in out.iterdir()) == ["C.txt", MANIFEST]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


@pytest.mark.parametrize("setup", ["foreign file", "no manifest", "a file", "a link"])
def test_a_destination_that_is_not_a_result_set_is_refused(tmp_path, setup):
    out = tmp_path / "out"
    if setup == "foreign file":
        write_result_set(out, {"A.txt": "a"}, command="track")
        (out / "notes.md").write_text("mine")
    elif setup == "no manifest":
        out.mkdir()
        (out / "A.txt").write_text("old")
    elif setup == "a file":
        out.write_text("x")
    else:
        (tmp_path / "real").mkdir()
        out.symlink_to(tmp_path / "real")
    before = sorted(p.name for p in out.iterdir()) if out.is_dir() else None
    with pytest.raises(ResultSetError, match=str(out)):
        write_result_set(out, {"A.txt": "new"}, command="track")
    if before is not None:
        assert sorted(p.name for p in out.iterdir()) == before


def test_eval_refuses_a_result_file_its_manifest_does_not_describe(tmp_path):
    split = tmp_path / "train"
    make_sequence(split, "SEQ-01")
    make_sequence(split, "SEQ-02", seed=1)
    out = tmp_path / "res"
    gt = (split / "SEQ-01" / "gt" / "gt.txt").read_text()
    write_result_set(out, {"SEQ-01.txt": gt, "SEQ-02.txt": gt}, command="track")
    assert len(load_evaluation_inputs(split, out)) == 2
    (out / "SEQ-02.txt").write_text(gt.replace(",1,-1", ",1,-1", 1) + "1,99,1,1,5,5,1,-1,-1,-1\n")
    with pytest.raises(DataFormatError, match=r"SEQ-02.txt: differs from the file the run wrote"):
        load_evaluation_inputs(split, out)
    (out / "SEQ-02.txt").unlink()
    (out / "SEQ-03.txt").write_text(gt)
    with pytest.raises(DataFormatError, match="not part of the result set"):
        check_result_file(out / "SEQ-03.txt")


# ------------------------------------------------------------------ feature cache


class TinyEmbedder:
    key: ClassVar[dict[str, str]] = {"name": "tiny"}
    out_channels = 4
    roi_size = 2
    batch_size = 2

    def roi_features_batch(self, images, boxes_list):
        return [np.ones((len(b), 4, 2, 2), np.float32) * (1 + np.arange(len(b)))[:, None, None,
                                                                                  None]
                for b in boxes_list]


def _frames(tmp_path, n=4, boxes=3):
    from PIL import Image

    paths = []
    for i in range(n):
        p = tmp_path / f"{i + 1:06d}.png"
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(p)
        paths.append(p)
    return paths, [np.tile([[0.0, 0, 4, 4]], (boxes, 1)) for _ in range(n)]


def test_the_cache_is_bounded_by_default(monkeypatch, tmp_path):
    monkeypatch.delenv("DEEPTRACK_CACHE_MAX_BYTES", raising=False)
    assert FeatureCache(tmp_path / "c").max_bytes == DEFAULT_MAX_BYTES == 8 << 30
    monkeypatch.setenv("DEEPTRACK_CACHE_MAX_BYTES", "512M")
    assert default_max_bytes() == 512 << 20
    assert FeatureCache(tmp_path / "c").max_bytes == 512 << 20
    for bad in ("-1", "abc", "1.5G", "0"):
        monkeypatch.setenv("DEEPTRACK_CACHE_MAX_BYTES", bad)
        with pytest.raises(ConfigError, match="DEEPTRACK_CACHE_MAX_BYTES"):
            FeatureCache(tmp_path / "c")


def test_an_entry_whose_meta_lies_about_the_counts_is_recomputed(tmp_path):
    paths, boxes = _frames(tmp_path)
    cache = FeatureCache(tmp_path / "cache")
    entry = extract_sequence(TinyEmbedder(), paths, boxes, cache=cache).path
    meta = json.loads((entry / "meta.json").read_text())
    meta["counts"] = [12, 0, 0, 0]  # same total, other frames
    (entry / "meta.json").write_text(json.dumps(meta))
    again = extract_sequence(TinyEmbedder(), paths, boxes, cache=FeatureCache(cache.root))
    assert not again.from_cache and again.counts.tolist() == [3, 3, 3, 3]


def test_an_entry_larger_than_the_bound_is_used_but_not_kept(tmp_path):
    paths, boxes = _frames(tmp_path)
    cache = FeatureCache(tmp_path / "cache", max_bytes=100)
    feats = extract_sequence(TinyEmbedder(), paths, boxes, cache=cache)
    assert feats.data.shape == (12, 4, 2, 2) and not feats.from_cache
    assert list(cache.root.iterdir()) == []


def test_room_is_made_before_an_entry_is_written(tmp_path):
    paths, boxes = _frames(tmp_path)
    probe = FeatureCache(tmp_path / "probe")
    size = sum(f.stat().st_size for f in extract_sequence(TinyEmbedder(), paths, boxes,
                                                          cache=probe).path.iterdir())
    cache = FeatureCache(tmp_path / "cache", max_bytes=int(1.5 * size))
    seen = []

    class Watching(TinyEmbedder):
        def __init__(self, name):
            self.key = {"name": name}

        def roi_features_batch(self, images, boxes_list):
            seen.append(cache.size_bytes())  # while this entry is in flight
            return super().roi_features_batch(images, boxes_list)

    for name in ("a", "b", "c"):
        extract_sequence(Watching(name), paths, boxes, cache=cache)
        assert cache.size_bytes() <= cache.max_bytes
    assert max(seen) <= cache.max_bytes + size  # never more than the one entry in flight


def test_an_orphan_of_a_killed_writer_is_removed_on_the_next_open(tmp_path):
    root = tmp_path / "cache"
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        import numpy as np
        from deeptrack.appearance import FeatureCache, extract_sequence
        from test_hardening import TinyEmbedder, _frames
        from pathlib import Path

        class Slow(TinyEmbedder):
            def roi_features_batch(self, images, boxes_list):
                print("extracting", flush=True)
                time.sleep(60)

        paths, boxes = _frames(Path({str(tmp_path)!r}))
        extract_sequence(Slow(), paths, boxes, cache=FeatureCache({str(root)!r}))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "extracting"
        (tmp,) = [p for p in root.iterdir() if p.name.startswith(".tmp-")]
        assert (tmp / "maps.npy").exists()
        FeatureCache(root)  # the writer is alive: its folder stays, and counts
        assert tmp.exists() and FeatureCache(root).in_flight()[0][0] == tmp
    finally:
        proc.kill()
        proc.wait(timeout=30)
    FeatureCache(root)  # the next start: the lock is free, the orphan goes
    assert list(root.iterdir()) == []


def test_orphans_of_older_versions_go_by_age(tmp_path):
    root = tmp_path / "cache"
    old = root / ".tmp-0123456789abcdef"
    old.mkdir(parents=True)
    (old / "maps.npy").write_bytes(b"x" * 100)
    FeatureCache(root)
    assert old.exists()  # might be a live writer of an older version
    os.utime(old, (1, 1))
    FeatureCache(root)
    assert not old.exists()


def test_manifest_lists_every_file(tmp_path):
    out = tmp_path / "out"
    write_result_set(out, {"A.txt": "a", "m/B.txt": "bb"}, command="compare", info={"k": 1})
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["command"] == "compare" and manifest["k"] == 1
    assert {k: v["bytes"] for k, v in manifest["files"].items()} == {"A.txt": 1, "m/B.txt": 2}
