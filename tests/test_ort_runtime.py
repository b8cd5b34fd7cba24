"""``runtime: onnxruntime``: the trunk exported to ONNX gives torch's maps, keyed apart in the cache."""

from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
torchvision = pytest.importorskip("torchvision")

from deeptrack.appearance import EmbeddingHead, RoIEmbedder
from deeptrack.appearance.ort import OnnxRuntimeTrunk
from deeptrack.config import AppearanceConfig, HeadConfig
from deeptrack.errors import ConfigError
from deeptrack.types import Runtime

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RNG = np.random.default_rng(3)
FRAME = RNG.integers(0, 256, size=(90, 130, 3), dtype=np.uint8)
BOXES = np.array([[2.0, 3.0, 40.0, 80.0], [30.0, 10.0, 120.0, 50.0], [60.0, 5.0, 70.0, 25.0]])


@pytest.fixture(scope="module")
def mobilenet_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "mobilenet_v2.pth"
    torch.save(torchvision.models.mobilenet_v2(weights=None).state_dict(), path)
    return str(path)


@pytest.mark.parametrize("layer", ["stride32", "stride16"])
def test_onnxruntime_maps_equal_torch_maps(mobilenet_file, layer):
    cfg = AppearanceConfig(weights=mobilenet_file, layer=layer, image_scale=0.75)
    eager = RoIEmbedder(cfg)
    ort = RoIEmbedder(AppearanceConfig(weights=mobilenet_file, layer=layer, image_scale=0.75,
                                       runtime="onnxruntime"))
    a, b = eager.roi_features(FRAME, BOXES), ort.roi_features(FRAME, BOXES)
    assert a.shape == b.shape and b.dtype == np.float32
    assert np.abs(a).max() > 0  # random weights give small maps: tolerances are relative
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * np.abs(a).max())
    # Other frame sizes and batches than the export's example work too.
    frames = [FRAME, FRAME[:64, :100].copy()]
    boxes = [BOXES, BOXES[:1] / 2]
    for x, y in zip(ort.roi_features_batch(frames, boxes), eager.roi_features_batch(frames, boxes),
                    strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-4 * np.abs(y).max())
    # Pooled vectors agree in direction.
    head = EmbeddingHead(HeadConfig(pooling="gem"))
    cos = np.sum(head(a) * head(b), axis=1)
    assert np.all(cos > 1 - 1e-5)


def test_onnxruntime_with_the_shared_weights(weights_root):
    path = weights_root / "mobilenet_v2_imagenet_features.pth"
    if not path.is_file():
        pytest.skip(f"{path} absent")
    eager = RoIEmbedder(AppearanceConfig(weights=str(path)))
    ort = RoIEmbedder(AppearanceConfig(weights=str(path), runtime="onnxruntime"))
    a, b = eager.roi_features(FRAME, BOXES), ort.roi_features(FRAME, BOXES)
    assert np.abs(a).max() > 0.1
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * np.abs(a).max())


def test_osnet_crops_and_head_through_onnxruntime():
    torch.manual_seed(1)
    for layer in ("crops", None):
        eager = RoIEmbedder(AppearanceConfig(backbone="osnet_x0_25", layer=layer))
        trunk = eager._model.trunk
        wrapped = OnnxRuntimeTrunk(trunk)
        x = torch.randn(2, 3, 96, 64)
        with torch.inference_mode():
            np.testing.assert_allclose(wrapped(x).numpy(), trunk(x).numpy(), rtol=1e-4,
                                       atol=1e-4)


def test_cache_key_names_the_runtime_and_torch_keys_are_unchanged(mobilenet_file):
    eager = RoIEmbedder(AppearanceConfig(weights=mobilenet_file))
    ort = RoIEmbedder(AppearanceConfig(weights=mobilenet_file, runtime=Runtime.ONNXRUNTIME))
    assert "runtime" not in eager.key  # caches written before the option stay valid
    assert ort.key == {**eager.key, "runtime": "onnxruntime"}


def test_trunk_pickles_and_follows_torch_threads(mobilenet_file):
    ort = RoIEmbedder(AppearanceConfig(weights=mobilenet_file, runtime="onnxruntime"))
    want = ort.roi_features(FRAME, BOXES)
    clone = pickle.loads(pickle.dumps(ort._model.trunk))
    x = torch.randn(1, 3, 64, 64)
    np.testing.assert_allclose(clone(x).numpy(), ort._model.trunk(x).numpy(), rtol=1e-5,
                               atol=1e-6)
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        np.testing.assert_allclose(ort.roi_features(FRAME, BOXES), want, rtol=1e-4,
                                   atol=1e-4 * np.abs(want).max())
    finally:
        torch.set_num_threads(saved)
    assert set(ort._model.trunk._sessions) == {1, 2}


def test_refused_where_it_cannot_run(monkeypatch):
    with pytest.raises(ConfigError, match="'runtime' = 'tvm'.*torch, onnxruntime"):
        AppearanceConfig(runtime="tvm")
    with pytest.raises(ConfigError, match="not offered for fasterrcnn"):
        RoIEmbedder(AppearanceConfig(backbone="fasterrcnn_resnet50_fpn", runtime="onnxruntime"))
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if not installed: the exporter needs it
    with pytest.raises(ConfigError, match="needs the onnx package: pip install onnx "):
        RoIEmbedder(AppearanceConfig(runtime="onnxruntime"))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ConfigError, match="needs the onnx and onnxruntime packages"):
        RoIEmbedder(AppearanceConfig(runtime="onnxruntime"))
