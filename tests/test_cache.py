"""The feature cache: hits run no forward and return what was stored; writes are atomic."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from deeptrack.appearance.cache import FeatureCache
from deeptrack.appearance.digest import boxes_digest, file_sha256
from deeptrack.appearance.extract import extract_sequence
from deeptrack.appearance.frames import load_image
from deeptrack.errors import DataFormatError, InputError


class FakeEmbedder:
    """Cheap stand-in: maps are a function of the frame and the boxes; forwards are counted."""

    out_channels = 3
    roi_size = 2
    batch_size = 2

    def __init__(self, scale: float = 1.0, fail_after: int | None = None):
        self.key = {"backbone": "fake", "scale": scale}
        self.scale = scale
        self.calls = 0
        self.fail_after = fail_after

    def roi_features_batch(self, images, boxes_list):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("backbone crashed")
        out = []
        for im, b in zip(images, boxes_list, strict=False):
            base = im.mean() / 255 + b.sum(axis=1) / 1000  # one value per box
            m = base[:, None, None, None] * np.arange(1, 13).reshape(1, 3, 2, 2)
            out.append((self.scale * m).astype(np.float32))
        return out


@pytest.fixture
def sequence(tmp_path):
    """Five 24 x 32 frames in an MOT-like ``seq/img1`` folder, with 2, 0, 3, 1, 2 boxes."""
    folder = tmp_path / "seq" / "img1"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    paths, boxes = [], []
    for i, n in enumerate([2, 0, 3, 1, 2]):
        p = folder / f"{i + 1:06d}.png"
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(p)
        paths.append(p)
        xy = rng.uniform(0, 16, (n, 2))
        boxes.append(np.concatenate([xy, xy + rng.uniform(2, 8, (n, 2))], axis=1))
    return paths, boxes


def test_no_cache_computes_in_memory(sequence):
    paths, boxes = sequence
    emb = FakeEmbedder()
    feats = extract_sequence(emb, paths, boxes)
    assert len(feats) == 5 and feats.data.dtype == np.float32
    assert [len(feats[i]) for i in range(5)] == [2, 0, 3, 1, 2]
    assert feats[1].shape == (0, 3, 2, 2)
    assert emb.calls == 2  # 4 frames with boxes, 2 per forward; the empty frame is skipped
    assert feats.key["sequence"] == "seq"


def test_hit_returns_identical_arrays_and_runs_no_forward(sequence, tmp_path):
    paths, boxes = sequence
    cache = FeatureCache(tmp_path / "cache")
    emb = FakeEmbedder()
    first = extract_sequence(emb, paths, boxes, cache=cache)
    assert not first.from_cache and emb.calls == 2
    second = extract_sequence(emb, paths, boxes, cache=cache)
    assert second.from_cache and emb.calls == 2  # no forward on a hit
    for a, b in zip(first.maps, second.maps, strict=False):
        np.testing.assert_array_equal(a, b)
    assert isinstance(second.data, np.memmap) and not second.data.flags.writeable
    # a fresh cache object (another process, say) hits too
    third = extract_sequence(emb, paths, boxes, cache=FeatureCache(tmp_path / "cache"))
    assert third.from_cache and emb.calls == 2
    np.testing.assert_array_equal(third.data, first.data)


def test_float16_precision_and_float32_option(sequence, tmp_path):
    paths, boxes = sequence
    exact = extract_sequence(FakeEmbedder(), paths, boxes).data
    half = extract_sequence(FakeEmbedder(), paths, boxes, cache=FeatureCache(tmp_path / "h"))
    assert half.data.dtype == np.float16
    np.testing.assert_allclose(half.data, exact, rtol=2**-11)
    full = extract_sequence(FakeEmbedder(), paths, boxes,
                            cache=FeatureCache(tmp_path / "f", dtype="float32"))
    np.testing.assert_array_equal(full.data, exact)


def test_values_beyond_float16_are_stored_as_float32(sequence, tmp_path):
    paths, boxes = sequence
    emb = FakeEmbedder(scale=1e5)  # values up to ~1e6 > 65504
    got = extract_sequence(emb, paths, boxes, cache=FeatureCache(tmp_path / "c"))
    assert got.data.dtype == np.float32
    np.testing.assert_array_equal(got.data, extract_sequence(emb, paths, boxes).data)


def test_values_too_small_for_float16_are_stored_as_float32(sequence, tmp_path):
    cache = FeatureCache(tmp_path / "c")
    emb = FakeEmbedder(scale=1e-9)  # float16 would flush these to zero
    fresh = extract_sequence(emb, *sequence, cache=cache)
    assert fresh.data.dtype == np.float32
    assert np.abs(np.asarray(fresh.data)).max() > 0
    again = extract_sequence(emb, *sequence, cache=cache)
    np.testing.assert_array_equal(np.asarray(again.data), np.asarray(fresh.data))


def test_key_changes_miss(sequence, tmp_path):
    paths, boxes = sequence
    cache = FeatureCache(tmp_path / "cache")
    emb = FakeEmbedder()
    extract_sequence(emb, paths, boxes, cache=cache)
    moved = [b + 1.0 for b in boxes]
    assert not extract_sequence(emb, paths, moved, cache=cache).from_cache
    assert not extract_sequence(FakeEmbedder(scale=2.0), paths, boxes, cache=cache).from_cache
    assert not extract_sequence(emb, paths, boxes, cache=cache, sequence="other").from_cache
    assert not extract_sequence(emb, paths, boxes, cache=cache,
                                cache_key_extra={"det_sha256": "abc"}).from_cache
    assert extract_sequence(emb, paths, boxes, cache=cache).from_cache
    assert len(cache.entries()) == 5


def test_crash_mid_write_leaves_no_entry(sequence, tmp_path):
    paths, boxes = sequence
    cache = FeatureCache(tmp_path / "cache")
    with pytest.raises(RuntimeError, match="backbone crashed"):
        extract_sequence(FakeEmbedder(fail_after=1), paths, boxes, cache=cache)
    assert list((tmp_path / "cache").iterdir()) == []  # no entry, no temp folder
    emb = FakeEmbedder()
    assert not extract_sequence(emb, paths, boxes, cache=cache).from_cache
    assert emb.calls == 2


def _entry(cache):
    (entry,) = [p for p in cache.root.iterdir() if not p.name.startswith(".")]
    return entry


@pytest.mark.parametrize("damage", ["flip_byte", "truncate", "no_meta", "bad_json", "no_maps"])
def test_corrupt_entry_is_detected_and_recomputed(sequence, tmp_path, damage, caplog):
    paths, boxes = sequence
    cache = FeatureCache(tmp_path / "cache")
    emb = FakeEmbedder()
    good = np.array(extract_sequence(emb, paths, boxes, cache=cache).data)
    entry = _entry(cache)
    maps = entry / "maps.npy"
    if damage == "flip_byte":
        raw = bytearray(maps.read_bytes())
        raw[-3] ^= 0xFF
        maps.write_bytes(bytes(raw))
    elif damage == "truncate":
        maps.write_bytes(maps.read_bytes()[:-10])
    elif damage == "no_meta":  # a writer that died between the two files
        (entry / "meta.json").unlink()
    elif damage == "bad_json":
        (entry / "meta.json").write_text("{not json")
    else:
        maps.unlink()
    fresh = FeatureCache(tmp_path / "cache")  # nothing verified yet in this object
    again = extract_sequence(emb, paths, boxes, cache=fresh)
    assert not again.from_cache and emb.calls == 4  # recomputed
    np.testing.assert_array_equal(again.data, good)
    assert "corrupt" in caplog.text


def test_writes_are_atomic_rename_of_a_temp_folder(sequence, tmp_path, monkeypatch):
    paths, boxes = sequence
    cache = FeatureCache(tmp_path / "cache")
    renames = []
    real_replace = os.replace

    def spy(src, dst):
        # at rename time the temp folder is complete: data and meta both there
        assert os.path.basename(src).startswith(".tmp-")
        assert sorted(os.listdir(src)) == ["maps.npy", "meta.json"]
        assert os.path.dirname(src) == os.path.dirname(dst)  # same folder: atomic
        renames.append(dst)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    extract_sequence(FakeEmbedder(), paths, boxes, cache=cache)
    assert len(renames) == 1
    meta = json.loads((_entry(cache) / "meta.json").read_text())
    assert meta["counts"] == [2, 0, 3, 1, 2] and meta["dtype"] == "float16"
    assert meta["sha256"] == file_sha256(_entry(cache) / "maps.npy")


def test_lru_eviction_bounds_the_size(sequence, tmp_path):
    paths, boxes = sequence
    one = extract_sequence(FakeEmbedder(), paths, boxes,
                           cache=FeatureCache(tmp_path / "probe")).path
    size = sum(f.stat().st_size for f in one.iterdir())
    cache = FeatureCache(tmp_path / "cache", max_bytes=int(2.5 * size))
    embs = [FakeEmbedder(scale=s) for s in (1.0, 2.0, 3.0)]
    extract_sequence(embs[0], paths, boxes, cache=cache)
    extract_sequence(embs[1], paths, boxes, cache=cache)
    os.utime(_meta_of(cache, embs[0], paths, boxes), (1, 1))  # entry 0: long unused
    extract_sequence(embs[2], paths, boxes, cache=cache)  # over the bound: evict entry 0
    assert cache.size_bytes() <= cache.max_bytes
    assert len(cache.entries()) == 2
    assert not extract_sequence(embs[0], paths, boxes, cache=cache).from_cache
    assert embs[0].calls == 4


def _meta_of(cache, emb, paths, boxes):
    return extract_sequence(emb, paths, boxes, cache=cache).path / "meta.json"


def test_empty_sequence_and_all_empty_frames(tmp_path, sequence):
    paths, _ = sequence
    cache = FeatureCache(tmp_path / "cache")
    emb = FakeEmbedder()
    got = extract_sequence(emb, paths, [np.zeros((0, 4))] * 5, cache=cache)
    assert got.data.shape == (0, 3, 2, 2) and emb.calls == 0
    assert extract_sequence(emb, paths, [np.zeros((0, 4))] * 5, cache=cache).from_cache


def test_progress_and_errors(sequence, tmp_path):
    paths, boxes = sequence
    seen = []
    extract_sequence(FakeEmbedder(), paths, boxes, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (5, 5) and all(t == 5 for _, t in seen)
    with pytest.raises(InputError, match="5 frames but 4 box arrays"):
        extract_sequence(FakeEmbedder(), paths, boxes[:4])
    with pytest.raises(InputError, match="boxes of frame 0"):
        extract_sequence(FakeEmbedder(), paths, [np.ones((1, 3)), *boxes[1:]])
    with pytest.raises(DataFormatError, match=r"missing\.png"):
        extract_sequence(FakeEmbedder(), [*paths[:4], tmp_path / "missing.png"], boxes)


def test_real_embedder_hit_runs_no_forward(sequence, tmp_path):
    pytest.importorskip("torch")
    from deeptrack.appearance.embedder import RoIEmbedder
    from deeptrack.config import AppearanceConfig

    paths, boxes = sequence
    emb = RoIEmbedder(AppearanceConfig(layer="stride8", batch_size=3))
    cache = FeatureCache(tmp_path / "cache")
    first = extract_sequence(emb, paths, boxes, cache=cache)
    assert emb.n_forwards == 2 and first.data.shape == (8, 32, 7, 7)
    second = extract_sequence(emb, paths, boxes, cache=cache)
    assert emb.n_forwards == 2 and second.from_cache
    np.testing.assert_array_equal(second.data, first.data)
    # what is cached is what the embedder computes, to float16 precision
    direct = emb.roi_features(load_image(paths[2]), boxes[2])
    np.testing.assert_allclose(second[2], direct, rtol=2e-3, atol=1e-3 * np.abs(direct).max())


def test_boxes_digest_and_file_sha256(tmp_path):
    a = [np.zeros((0, 4)), np.ones((1, 4))]
    b = [np.ones((1, 4)), np.zeros((0, 4))]  # same values, other frames
    assert boxes_digest(a) != boxes_digest(b)
    assert boxes_digest(a) == boxes_digest([np.zeros((0, 4)), np.ones((1, 4), np.float32)])
    f = tmp_path / "w.bin"
    f.write_bytes(b"abc")
    assert file_sha256(f) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    f.write_bytes(b"abcd")  # size changes: rehashed
    assert file_sha256(f) == "88d4266fd4e6338d13b845fcf289579d209c897823b9217da3e161936f031589"


def test_load_image(tmp_path):
    gray = tmp_path / "g.png"
    Image.fromarray(np.full((4, 5), 7, np.uint8)).save(gray)
    img = load_image(gray)
    assert img.shape == (4, 5, 3) and img.dtype == np.uint8 and img.max() == 7
    bad = tmp_path / "bad.jpg"
    bad.write_text("no image")
    with pytest.raises(DataFormatError, match=r"bad\.jpg"):
        load_image(bad)
