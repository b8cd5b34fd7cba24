"""The embedder contract the tracker relies on, batching, and the Faster R-CNN detector."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from deeptrack.appearance import EmbeddingHead, FasterRCNNDetector, RoIEmbedder
from deeptrack.appearance.pooling import out_dim, pool
from deeptrack.config import AppearanceConfig, HeadConfig
from deeptrack.errors import ConfigError, InputError
from deeptrack.types import Detections

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RNG = np.random.default_rng(0)
FRAMES = [RNG.integers(0, 256, size=(72, 96, 3), dtype=np.uint8) for _ in range(3)]
OTHER = RNG.integers(0, 256, size=(40, 56, 3), dtype=np.uint8)
BOXES = [
    np.array([[2.0, 3.0, 40.0, 60.0], [30.0, 10.0, 90.0, 50.0]]),
    np.zeros((0, 4)),
    np.array([[10.0, 10.0, 30.0, 70.0]]),
]


@pytest.fixture(scope="module")
def embedder():
    return RoIEmbedder(AppearanceConfig(layer="stride16", batch_size=2))


def test_contract_shapes_and_dtype(embedder):
    out = embedder.roi_features(FRAMES[0], BOXES[0])
    assert out.shape == (2, embedder.out_channels, 7, 7) == (2, 96, 7, 7)
    assert out.dtype == np.float32
    before = embedder.n_forwards
    empty = embedder.roi_features(FRAMES[0], np.zeros((0, 4)))
    assert empty.shape == (0, 96, 7, 7) and empty.dtype == np.float32
    assert embedder.n_forwards == before  # nothing to pool: no forward


def test_batch_equals_one_by_one(embedder):
    frames = [*FRAMES, OTHER]
    boxes = [*BOXES, np.array([[1.0, 1.0, 20.0, 30.0]])]
    before = embedder.n_forwards
    batch = embedder.roi_features_batch(frames, boxes)
    # 3 frames with boxes: 2 of size 72x96 in one forward (batch_size 2), 40x56 in another
    assert embedder.n_forwards - before == 2
    for f, b, got in zip(frames, boxes, batch, strict=False):
        np.testing.assert_allclose(got, embedder.roi_features(f, b), rtol=1e-4, atol=1e-5)


def test_embed_is_roi_features_then_the_head(embedder):
    for mode in ("avg", "gem", "maxpool_flatten"):
        e = embedder.embed(FRAMES[0], BOXES[0], EmbeddingHead(HeadConfig(pooling=mode)))
        assert e.shape == (2, out_dim(mode, 96, 7, 7))
    np.testing.assert_allclose(
        embedder.embed(FRAMES[0], BOXES[0], EmbeddingHead(HeadConfig(pooling="gem", gem_p=4.0))),
        pool(embedder.roi_features(FRAMES[0], BOXES[0]), "gem", p=4.0))
    np.testing.assert_array_equal(embedder.embed(FRAMES[0], BOXES[0]),  # default: average
                                  pool(embedder.roi_features(FRAMES[0], BOXES[0]), "avg"))


def test_boxes_outside_the_frame_are_allowed(embedder):
    out = embedder.roi_features(FRAMES[0], [[-50.0, -50.0, -10.0, -10.0], [80.0, 60.0, 200.0, 90]])
    assert np.isfinite(out).all()


def test_crop_features_baseline(embedder):
    out = embedder.crop_features(FRAMES[0], BOXES[0], size=(64, 32))
    assert out.shape == (2, 96, 4, 2) and out.dtype == np.float32
    empty = embedder.crop_features(FRAMES[0], np.zeros((0, 4)), size=(64, 32))
    assert empty.shape == (0, 96, 4, 2)
    with pytest.raises(InputError, match="outside the 96x72 frame"):
        embedder.crop_features(FRAMES[0], [[200.0, 200.0, 300.0, 300.0]])


@pytest.mark.parametrize(
    ("image", "boxes", "match"),
    [
        (FRAMES[0].astype(np.float32), BOXES[0], "uint8"),
        (FRAMES[0][:, :, :2], BOXES[0], r"\(H, W, 3\)"),
        ([[1, 2, 3]], BOXES[0], "numpy array"),
        (FRAMES[0], np.zeros((2, 5)), r"\(N, 4\)"),
        (FRAMES[0], [[10.0, 10.0, 5.0, 20.0]], "zero or negative width"),
        (FRAMES[0], [[np.nan, 1.0, 5.0, 20.0]], "NaN"),
    ],
)
def test_bad_input_raises(embedder, image, boxes, match):
    with pytest.raises(InputError, match=match):
        embedder.roi_features(image, boxes)


def test_batch_length_mismatch(embedder):
    with pytest.raises(InputError, match="2 images but 1 box arrays"):
        embedder.roi_features_batch(FRAMES[:2], BOXES[:1])


def test_key_holds_what_changes_the_result(embedder):
    assert {"backbone", "layer", "roi_size", "image_scale", "weights", "precision"} <= set(
        embedder.key)
    assert embedder.key["layer"] == "stride16"


@pytest.fixture(scope="module")
def detector():
    # MobileNetV3 FPN with random weights on a tiny frame: cheap; a random
    # detector finds arbitrary boxes, enough to check shapes and consistency.
    return FasterRCNNDetector(AppearanceConfig(backbone="fasterrcnn_mobilenet_v3_large_fpn",
                                               image_scale=0.2))


def test_detector_returns_boxes_with_matching_features(detector):
    image = FRAMES[0]
    dets = detector.detect(image, score_threshold=0.0)
    assert isinstance(dets, Detections)
    n = len(dets)
    assert n > 0
    assert dets.roi_features.shape == (n, 256, 7, 7)
    assert dets.class_ids.shape == (n,) and dets.scores.shape == (n,)
    # boxes are in the original 72 x 96 frame, not the detector's resized one
    assert dets.boxes[:, [0, 2]].max() <= 96 + 1e-6 and dets.boxes[:, [1, 3]].max() <= 72 + 1e-6
    # the features are those of the final boxes: pooling those boxes again,
    # given in original pixels, gives the same maps
    again = detector.roi_features(image, dets.boxes)
    scale = np.abs(again).max()
    np.testing.assert_allclose(dets.roi_features, again, atol=1e-4 * scale + 1e-12)


def test_detector_empty_case(detector):
    dets = detector.detect(FRAMES[1], score_threshold=0.999)
    assert len(dets) == 0
    assert dets.boxes.shape == (0, 4) and dets.roi_features.shape == (0, 256, 7, 7)


def test_detector_class_filter(detector):
    dets = detector.detect(FRAMES[0], score_threshold=0.0, classes=[1])
    assert np.all(dets.class_ids == 1)


def test_detector_rejects_plain_backbones_and_bad_threshold(detector):
    with pytest.raises(ConfigError, match="needs a Faster R-CNN backbone"):
        FasterRCNNDetector(AppearanceConfig(backbone="mobilenet_v2"))
    with pytest.raises(ConfigError, match="score_threshold"):
        detector.detect(FRAMES[0], score_threshold=1.5)


def test_fasterrcnn_resnet50_fpn_roi_features():
    det = RoIEmbedder(AppearanceConfig(backbone="fasterrcnn_resnet50_fpn", image_scale=0.1))
    out = det.roi_features(FRAMES[0], BOXES[0])
    assert out.shape == (2, 256, 7, 7) and np.isfinite(out).all()
    assert det.out_channels == 256 and det.stride == 4


def test_detector_weights_file_roundtrip_and_class_count(detector, tmp_path):
    state = detector._model.model.state_dict()
    path = tmp_path / "frcnn.pth"
    torch.save(state, path)
    cfg = AppearanceConfig(backbone="fasterrcnn_mobilenet_v3_large_fpn", image_scale=0.2,
                           weights=str(path))
    np.testing.assert_array_equal(FasterRCNNDetector(cfg).roi_features(FRAMES[0], BOXES[0]),
                                  detector.roi_features(FRAMES[0], BOXES[0]))
    # a detector fine-tuned on one class (+ background) builds with 2 classes
    state["roi_heads.box_predictor.cls_score.weight"] = torch.randn(2, 1024)
    state["roi_heads.box_predictor.cls_score.bias"] = torch.zeros(2)
    state["roi_heads.box_predictor.bbox_pred.weight"] = torch.randn(8, 1024)
    state["roi_heads.box_predictor.bbox_pred.bias"] = torch.zeros(8)
    torch.save(state, path)
    two = FasterRCNNDetector(cfg)
    assert two._model.model.roi_heads.box_predictor.cls_score.out_features == 2
