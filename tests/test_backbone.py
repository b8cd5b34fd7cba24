"""Backbone choice, output shapes, weights loading and device checks."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from deeptrack.appearance.backbone import resolve_spec
from deeptrack.appearance.digest import file_sha256
from deeptrack.appearance.embedder import RoIEmbedder
from deeptrack.config import AppearanceConfig
from deeptrack.errors import ConfigError, WeightsError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RNG = np.random.default_rng(0)
IMAGE = RNG.integers(0, 256, size=(64, 80, 3), dtype=np.uint8)
BOXES = np.array([[2.0, 3.0, 40.0, 60.0], [30.0, 10.0, 78.0, 50.0], [0.0, 0.0, 80.0, 64.0]])


def features_state(model_fn=torchvision.models.mobilenet_v2, prefix="features."):
    return {k: v for k, v in model_fn().state_dict().items() if k.startswith(prefix)}


@pytest.fixture(scope="module")
def mobilenet_file(tmp_path_factory):
    """A random MobileNetV2's convolutional part, saved as a plain state_dict file."""
    path = tmp_path_factory.mktemp("weights") / "mobilenet_v2_features.pth"
    torch.save(features_state(), path)
    return path


@pytest.mark.parametrize(
    ("backbone", "layer", "channels", "stride", "canonical"),
    [
        ("mobilenet_v2", None, 1280, 32, "stride32"),
        ("mobilenet_v2", "features.18", 1280, 32, "stride32"),
        ("mobilenet_v2", "stride16", 96, 16, "stride16"),
        ("mobilenet_v2", "features.13", 96, 16, "stride16"),
        ("mobilenet_v2", "stride8", 32, 8, "stride8"),
        ("resnet50", None, 2048, 32, "layer4"),
        ("resnet101", "c4", 1024, 16, "layer3"),
        ("resnet50_c4", None, 2048, 16, "c4"),
        ("fasterrcnn_resnet50_fpn", None, 256, 4, "fpn"),
    ],
)
def test_resolve_spec(backbone, layer, channels, stride, canonical):
    spec = resolve_spec(backbone, layer, 7)
    assert (spec.out_channels, spec.stride, spec.layer) == (channels, stride, canonical)


def test_unknown_backbone_and_layer_are_named():
    with pytest.raises(ConfigError, match="'vgg16' is unknown; expected one of: mobilenet_v2"):
        resolve_spec("vgg16")
    with pytest.raises(ConfigError, match="'layer5' is not a layer of resnet50"):
        resolve_spec("resnet50", "layer5")
    with pytest.raises(ConfigError, match="not a layer of resnet50_c4"):
        resolve_spec("resnet50_c4", "layer4")


@pytest.mark.parametrize(("layer", "channels"), [("stride32", 1280), ("stride16", 96),
                                                 ("stride8", 32)])
def test_mobilenet_layers_shapes(layer, channels):
    emb = RoIEmbedder(AppearanceConfig(layer=layer))
    out = emb.roi_features(IMAGE, BOXES)
    assert out.shape == (3, channels, 7, 7) and out.dtype == np.float32
    assert emb.out_channels == channels and emb.stride == int(layer[6:])


def test_resnet50_c4_gives_2048x7x7():
    emb = RoIEmbedder(AppearanceConfig(backbone="resnet50_c4"))
    out = emb.roi_features(IMAGE, BOXES)
    assert out.shape == (3, 2048, 7, 7)
    assert np.isfinite(out).all() and out.min() >= 0  # layer4 ends in a ReLU
    # the per-crop baseline runs the whole network: stride 32 on a 64 x 32 crop
    assert emb.crop_features(IMAGE, BOXES, size=(64, 32)).shape == (3, 2048, 2, 1)
    assert emb.crop_features(IMAGE, BOXES[:0], size=(64, 32)).shape == (0, 2048, 2, 1)


def test_resnet50_c5_and_roi_size():
    emb = RoIEmbedder(AppearanceConfig(backbone="resnet50", roi_size=5))
    assert emb.roi_features(IMAGE, BOXES).shape == (3, 2048, 5, 5)


def test_missing_weights_file_is_named(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(WeightsError, match=f"weights file not found: {missing}"):
        RoIEmbedder(AppearanceConfig(weights=str(missing)))


def test_unreadable_weights_file(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match=f"cannot read weights file {bad}"):
        RoIEmbedder(AppearanceConfig(weights=str(bad)))
    not_tensors = tmp_path / "list.pth"
    torch.save([1, 2, 3], not_tensors)
    with pytest.raises(WeightsError, match="does not hold a state_dict"):
        RoIEmbedder(AppearanceConfig(weights=str(not_tensors)))


def test_weights_missing_a_needed_tensor_is_refused(tmp_path):
    state = features_state()
    del state["features.17.conv.0.0.weight"]
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"lacks 1 of the .* features\.17\.conv\.0\.0\.weight"):
        RoIEmbedder(AppearanceConfig(weights=str(path)))
    # ... but the stride-16 layer does not need block 17, so it loads
    RoIEmbedder(AppearanceConfig(weights=str(path), layer="stride16"))


def test_weights_of_another_architecture_are_refused(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(WeightsError, match="lacks"):
        RoIEmbedder(AppearanceConfig(weights=str(path)))
    state = features_state()
    state["features.0.0.weight"] = torch.zeros(16, 3, 3, 3)
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"features\.0\.0\.weight has shape \(16, 3, 3, 3\)"):
        RoIEmbedder(AppearanceConfig(weights=str(path)))


def test_weights_file_is_really_loaded(mobilenet_file):
    a = RoIEmbedder(AppearanceConfig(weights=str(mobilenet_file)))
    b = RoIEmbedder(AppearanceConfig(weights=str(mobilenet_file)))
    np.testing.assert_array_equal(a.roi_features(IMAGE, BOXES), b.roi_features(IMAGE, BOXES))
    assert a.key == b.key
    assert a.key["weights"] == f"sha256:{file_sha256(mobilenet_file)}"
    assert RoIEmbedder().key["weights"].startswith("random:")  # never shared by two models


def test_torchvision_weights_offline_fail_clearly(monkeypatch):
    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsError, match=r"MobileNet_V2_Weights\.IMAGENET1K_V1.*local path"):
        RoIEmbedder(AppearanceConfig(weights="MobileNet_V2_Weights.IMAGENET1K_V1"))
    with pytest.raises(WeightsError, match="unknown torchvision weights name"):
        RoIEmbedder(AppearanceConfig(weights="MobileNet_V2_Weights.NOPE"))


def test_torchvision_weights_go_through_the_same_checks(monkeypatch):
    full = torchvision.models.mobilenet_v2().state_dict()
    seen = []

    def fake_download(url, *args, **kwargs):
        seen.append(url)
        return full

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", fake_download)
    emb = RoIEmbedder(AppearanceConfig(weights="MobileNet_V2_Weights.DEFAULT"))
    assert seen and emb.key["weights"] == "torchvision:MobileNet_V2_Weights.IMAGENET1K_V2"
    with pytest.raises(WeightsError, match="lacks"):  # ResNet weights for a MobileNet
        monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url",
                            lambda *a, **k: torchvision.models.resnet18().state_dict())
        RoIEmbedder(AppearanceConfig(weights="ResNet18_Weights.DEFAULT"))


def test_device_checks(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="CUDA is not available"):
        RoIEmbedder(AppearanceConfig(device="cuda"))
    with pytest.raises(ConfigError, match=r"fp16.*needs a CUDA device"):
        RoIEmbedder(AppearanceConfig(fp16=True))
    with pytest.raises(ConfigError, match="'tpu'"):
        RoIEmbedder(AppearanceConfig(device="tpu"))


def test_model_is_in_eval_mode_and_deterministic():
    emb = RoIEmbedder(AppearanceConfig())
    assert not any(m.training for m in emb._model.modules())
    np.testing.assert_array_equal(emb.roi_features(IMAGE, BOXES), emb.roi_features(IMAGE, BOXES))


@pytest.mark.gpu
def test_cuda_matches_cpu(mobilenet_file):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    cpu = RoIEmbedder(AppearanceConfig(weights=str(mobilenet_file)))
    gpu = RoIEmbedder(AppearanceConfig(weights=str(mobilenet_file), device="cuda"))
    half = RoIEmbedder(AppearanceConfig(weights=str(mobilenet_file), device="cuda", fp16=True))
    ref = cpu.roi_features(IMAGE, BOXES)
    np.testing.assert_allclose(gpu.roi_features(IMAGE, BOXES), ref, rtol=1e-3, atol=1e-3)
    out = half.roi_features(IMAGE, BOXES)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref, rtol=5e-2, atol=5e-2)


@pytest.mark.weights
def test_pretrained_mobilenet_file_loads_like_any_user_file(weights_root):
    path = weights_root / "mobilenet_v2_imagenet_features.pth"
    if not path.exists():
        pytest.skip(f"{path} not found")
    trained = RoIEmbedder(AppearanceConfig(weights=str(path)))
    assert trained.key["weights"] == f"sha256:{file_sha256(path)}"
    random = RoIEmbedder(AppearanceConfig())
    a = trained.roi_features(IMAGE, BOXES)
    b = random.roi_features(IMAGE, BOXES)
    assert a.shape == b.shape == (3, 1280, 7, 7)
    assert not np.allclose(a, b, atol=1e-3)
    # every feature tensor in the file is what the model now holds
    state = torch.load(path, weights_only=True)
    own = trained._model.trunk.state_dict()
    for k, v in own.items():
        torch.testing.assert_close(v, state[f"features.{k}"])


def test_area_resize_is_the_exact_2x2_mean():
    import torch

    from deeptrack.appearance.backbone import resize_frames
    from deeptrack.types import ResizeMode

    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).reshape(2, 3, 4, 6)
    out = resize_frames(x, (2, 3), ResizeMode.AREA)
    expected = x.reshape(2, 3, 2, 2, 3, 2).mean(dim=(3, 5))
    assert torch.allclose(out, expected)
    # The antialiased filter reaches beyond each 2x2 cell: it differs from the mean.
    blurred = resize_frames(x, (2, 3), ResizeMode.BILINEAR_ANTIALIAS)
    assert not torch.allclose(blurred, expected)


@pytest.mark.parametrize("resize", ["area", "bilinear", "bilinear_antialias"])
def test_resize_is_part_of_the_cache_key(resize):
    emb = RoIEmbedder(AppearanceConfig(backbone="mobilenet_v2", image_scale=0.5, resize=resize))
    assert emb.key["resize"] == resize


def test_resize_mode_changes_the_maps_and_unknown_mode_is_named():
    import torch

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    boxes = np.array([[8.0, 8.0, 40.0, 60.0]])
    maps = {}
    for resize in ("area", "bilinear_antialias"):
        torch.manual_seed(0)  # the same random weights for both
        emb = RoIEmbedder(AppearanceConfig(backbone="mobilenet_v2", layer="stride16",
                                           image_scale=0.5, resize=resize))
        maps[resize] = emb.roi_features(image, boxes)
    assert not np.allclose(maps["area"], maps["bilinear_antialias"])
    with pytest.raises(ConfigError, match="resize"):
        AppearanceConfig(resize="lanczos")
