"""OSNet: architecture against the ONNX export, strict torchreid key loading, RoI and crop paths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from deeptrack.appearance.backbone import IMAGENET_MEAN, IMAGENET_STD, resolve_spec
from deeptrack.appearance.embedder import RoIEmbedder
from deeptrack.appearance.osnet import OSNET_WIDTHS, OSNet, _ConvBN, _Lite3x3
from deeptrack.appearance.pooling import PoolingMode, pool
from deeptrack.cli import main
from deeptrack.config import AppearanceConfig, load_yaml
from deeptrack.errors import ConfigError, InputError, WeightsError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPO = Path(__file__).resolve().parents[1]
PTH = "osnet_x0_25_msmt17.pth"
ONNX = "osnet_x0_25_msmt17.onnx"
RNG = np.random.default_rng(0)
FRAME = RNG.integers(0, 256, size=(96, 160, 3), dtype=np.uint8)
BOXES = np.array([[4.0, 6.0, 40.0, 90.0], [60.0, 10.0, 100.0, 95.0], [-10.0, 50.0, 30.0, 120.0]])


def _weights(weights_root: Path, name: str) -> Path:
    path = weights_root / name
    if not path.is_file():
        pytest.skip(f"{name} not found in {weights_root}")
    return path


@pytest.fixture(scope="module")
def osnet_pth(weights_root) -> Path:
    return _weights(weights_root, PTH)


@pytest.fixture(scope="module")
def random_x0_25_file(tmp_path_factory) -> Path:
    """A random OSNet x0.25 saved with torchreid's key names, plus a classifier as they carry."""
    with torch.random.fork_rng():  # seeded, without touching the session's global RNG
        torch.manual_seed(0)
        state = OSNet(OSNET_WIDTHS["osnet_x0_25"]).state_dict()
        state["classifier.weight"] = torch.randn(7, 512)
    state["classifier.bias"] = torch.zeros(7)
    path = tmp_path_factory.mktemp("weights") / "osnet_random.pth"
    torch.save(state, path)
    return path


def embedder(weights, layer=None, backbone="osnet_x0_25", **kw) -> RoIEmbedder:
    return RoIEmbedder(AppearanceConfig(backbone=backbone, weights=None if weights is None
                                        else str(weights), layer=layer, **kw))


def normalise(image: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> 1x3xHxW float32 with ImageNet mean/std, the ONNX model's input."""
    x = (image / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    return x.astype(np.float32).transpose(2, 0, 1)[None]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


# ---------------------------------------------------------------- names and shapes


@pytest.mark.parametrize(
    ("backbone", "layer", "kind", "channels", "stride", "roi_size"),
    [
        ("osnet_x0_25", None, "map", 128, 16, 8),
        ("osnet_x0_25", "conv4", "map", 128, 16, 8),
        ("osnet_x0_25", "conv3", "map", 96, 16, 8),
        ("osnet_x0_25", "stride8", "map", 64, 8, 8),
        ("osnet_x0_25", "head", "head", 512, 16, 1),
        ("osnet_x0_25", "fc", "head", 512, 16, 1),
        ("osnet_x0_25", "crops", "crops", 512, 16, 1),
        ("osnet_x1_0", None, "map", 512, 16, 8),
        ("osnet_x1_0", "conv2", "map", 256, 8, 8),
        ("osnet_x1_0", "head", "head", 512, 16, 1),
    ],
)
def test_resolve_spec(backbone, layer, kind, channels, stride, roi_size):
    spec = resolve_spec(backbone, layer, roi_size=8)
    assert (spec.kind, spec.out_channels, spec.stride, spec.roi_size) == (
        kind, channels, stride, roi_size)
    assert spec.align_size == 8


def test_unknown_osnet_layer_is_named():
    with pytest.raises(ConfigError, match="'conv9' is not a layer of osnet_x0_25.*head, crops"):
        resolve_spec("osnet_x0_25", "conv9")


def test_x0_25_maps_and_head_shapes():
    emb = embedder(None, roi_size=8)  # conv5, the default
    assert emb.roi_features(FRAME, BOXES).shape == (3, 128, 8, 8)
    assert emb.roi_features(FRAME, BOXES[:0]).shape == (0, 128, 8, 8)
    assert emb.crop_features(FRAME, BOXES[:2]).shape == (2, 128, 16, 8)  # 256x128 / 16
    head = embedder(None, "head")
    out = head.roi_features(FRAME, BOXES)
    assert out.shape == (3, 512, 1, 1) and out.dtype == np.float32
    assert (out >= 0).all()  # the head ends in a ReLU
    assert head.crop_features(FRAME, BOXES[:2]).shape == (2, 512, 1, 1)
    assert head.crop_features(FRAME, BOXES[:0]).shape == (0, 512, 1, 1)
    assert embedder(None, "conv2", roi_size=4).roi_features(FRAME, BOXES).shape == (3, 64, 4, 4)


def test_x1_0_shapes_with_random_weights():
    emb = embedder(None, backbone="osnet_x1_0", roi_size=8)
    assert emb.roi_features(FRAME, BOXES[:2]).shape == (2, 512, 8, 8)
    assert embedder(None, "head", backbone="osnet_x1_0").roi_features(
        FRAME, BOXES[:2]).shape == (2, 512, 1, 1)
    net = OSNet(OSNET_WIDTHS["osnet_x1_0"]).eval()
    with torch.inference_mode():
        assert net(torch.zeros(2, 3, 256, 128)).shape == (2, 512)
        assert net.trunk("conv5")(torch.zeros(1, 3, 256, 128)).shape == (1, 512, 16, 8)
    # 2.2M parameters without the classifier (the paper's Table 1: 2.2M)
    assert 2.1e6 < sum(p.numel() for p in net.parameters()) < 2.3e6


def test_every_pooling_mode_gives_the_head_embedding():
    maps = embedder(None, "head").roi_features(FRAME, BOXES)
    unit = maps[:, :, 0, 0] / np.linalg.norm(maps[:, :, 0, 0], axis=1, keepdims=True)
    for mode in (PoolingMode.AVG, PoolingMode.MAX, PoolingMode.GEM, PoolingMode.FLATTEN):
        # atol: GeM clamps the head's zeros (ReLU) to GEM_EPS = 1e-6 before its power.
        # One array for every mode: pool() must not write into the 1x1 maps it reads.
        np.testing.assert_allclose(pool(maps, mode), unit, rtol=1e-5, atol=1e-5)


def test_crops_layer_is_the_per_crop_path_and_batches_frames():
    emb = embedder(None, "crops")
    one = emb.roi_features(FRAME, BOXES[:2])
    np.testing.assert_allclose(one, emb.crop_features(FRAME, BOXES[:2]), rtol=1e-5, atol=1e-6)
    both = emb.roi_features_batch([FRAME, FRAME[::-1].copy()], [BOXES[:2], BOXES[1:2]])
    np.testing.assert_allclose(both[0], one, rtol=1e-4, atol=1e-5)
    assert both[1].shape == (1, 512, 1, 1)
    assert emb.key["crop_size"] == [256, 128] and emb.key["layer"] == "crops"
    with pytest.raises(InputError, match=r"boxes\[0\].*outside the 160x96 frame"):
        emb.roi_features(FRAME, [[200.0, 0.0, 220.0, 40.0]])


def test_head_cache_key_holds_the_roialign_size():
    assert embedder(None, "head", roi_size=8).key["align_size"] == 8
    assert "align_size" not in embedder(None, roi_size=8).key


# ---------------------------------------------------------------- weights


def reference_net(path: Path) -> OSNet:
    """An unfused OSNet x0.25 with the file loaded by torch's own strict load_state_dict."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = OSNet(OSNET_WIDTHS["osnet_x0_25"])
    net.load_state_dict({k: v for k, v in state.items() if not k.startswith("classifier.")},
                        strict=True)
    return net.eval()


@pytest.mark.parametrize("weights", ["random", "pth"])
def test_weights_load_through_the_user_path(weights, request, random_x0_25_file):
    """The embedder (read_weights, apply_weights, BN folding) computes the file's network."""
    path = request.getfixturevalue("osnet_pth") if weights == "pth" else random_x0_25_file
    emb = embedder(path, "crops")
    crop = np.random.default_rng(4).integers(0, 256, (256, 128, 3), dtype=np.uint8)
    ours = emb.roi_features(crop, [[0.0, 0.0, 128.0, 256.0]])[:, :, 0, 0]
    with torch.inference_mode():
        ref = reference_net(path)(torch.from_numpy(normalise(crop))).numpy()
    assert np.abs(ours - ref).max() < 1e-4 * max(1.0, np.abs(ref).max())
    assert emb.key["weights"].startswith("sha256:")


def test_batchnorm_folding_keeps_the_function():
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(1)
        net = OSNet(OSNET_WIDTHS["osnet_x0_25"])
        for m in net.modules():  # BN statistics far from the identity, as trained ones are
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
        x = torch.randn(2, 3, 256, 128)
    with pytest.raises(RuntimeError, match="eval mode"):
        net.fuse_batchnorm_()
    with torch.inference_mode():
        before = net.eval()(x)
        after = net.fuse_batchnorm_()(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)


def _save(tmp_path, state, name="bad.pth") -> Path:
    path = tmp_path / name
    torch.save(state, path)
    return path


def test_missing_tensor_is_named(tmp_path, random_x0_25_file):
    state = torch.load(random_x0_25_file, weights_only=True)
    del state["conv3.1.gate.fc2.bias"]
    path = _save(tmp_path, state)
    with pytest.raises(WeightsError, match=rf"{path}.*missing 1 .*conv3\.1\.gate\.fc2\.bias"):
        embedder(path)


def test_unexpected_tensor_is_named(tmp_path, random_x0_25_file):
    state = torch.load(random_x0_25_file, weights_only=True)
    state["conv2.0.IN.weight"] = torch.ones(64)  # e.g. an OSNet-AIN file
    path = _save(tmp_path, state)
    with pytest.raises(WeightsError, match=r"1 unexpected tensors \(first: conv2\.0\.IN\.weight"):
        embedder(path, "head")


def test_wrong_width_is_named(random_x0_25_file):
    with pytest.raises(WeightsError, match=r"conv1\.conv\.weight has shape \(16, 3, 7, 7\).*"
                                           r"\(64, 3, 7, 7\)"):
        embedder(random_x0_25_file, backbone="osnet_x1_0")


def test_another_architecture_is_refused(tmp_path):
    import torchvision

    path = _save(tmp_path, torchvision.models.mobilenet_v2().features.state_dict())
    with pytest.raises(WeightsError, match=r"bad\.pth does not fit OSNet.*torchreid"):
        embedder(path)


# ---------------------------------------------------------------- against the ONNX export


def onnx_weights_into(model: OSNet, path: Path) -> dict[str, torch.Tensor]:
    """The ONNX export's own weights as a ``state_dict`` of our OSNet (the test's oracle map).

    The exporter folded every BatchNorm into the conv before it and renamed
    those tensors; the other tensors keep their torchreid names. Folded convs
    are matched to our ``.conv``/``.bn`` pairs in definition order (the graph
    lists them in the same order), folded depthwise convs through the named
    pointwise conv feeding them; each BN becomes the identity plus the folded bias.
    """
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    init = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in graph.initializer}
    state = {k: v for k, v in init.items() if not k.startswith("onnx::")}
    producer = {out: node for node in graph.node for out in node.output}
    folded, depthwise = [], {}
    for node in graph.node:
        if node.op_type != "Conv" or not node.input[1].startswith("onnx::"):
            continue
        pair = (init[node.input[1]], init[node.input[2]])
        groups = next((a.i for a in node.attribute if a.name == "group"), 1)
        if groups > 1:
            depthwise[producer[node.input[0]].input[1]] = pair
        else:
            folded.append(pair)

    def identity_bn(prefix: str, bias: torch.Tensor) -> None:
        c = bias.shape[0]
        state[f"{prefix}.bn.weight"] = torch.ones(c)
        state[f"{prefix}.bn.bias"] = bias
        state[f"{prefix}.bn.running_mean"] = torch.zeros(c)
        state[f"{prefix}.bn.running_var"] = torch.full((c,), 1.0 - 1e-5)  # sqrt(var + eps) = 1

    pairs = [name for name, m in model.named_modules() if isinstance(m, _ConvBN)]
    assert len(pairs) == len(folded)
    for name, (w, b) in zip(pairs, folded, strict=True):
        state[f"{name}.conv.weight"] = w
        identity_bn(name, b)
    for name, m in model.named_modules():
        if isinstance(m, _Lite3x3):
            w, b = depthwise[f"{name}.conv1.weight"]
            state[f"{name}.conv2.weight"] = w
            identity_bn(name, b)
    return state


def test_architecture_matches_the_onnx_export(weights_root):
    """Our OSNet x0.25 with the ONNX file's own weights reproduces onnxruntime's output."""
    ort = pytest.importorskip("onnxruntime")
    path = _weights(weights_root, ONNX)
    net = OSNet(OSNET_WIDTHS["osnet_x0_25"]).eval()
    net.load_state_dict(onnx_weights_into(net, path), strict=True)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for _ in range(3):
        x = normalise(rng.integers(0, 256, (256, 128, 3), dtype=np.uint8))
        with torch.inference_mode():
            ours = net(torch.from_numpy(x)).numpy()
        theirs = session.run(["output"], {"images": x})[0]
        assert ours.shape == theirs.shape == (1, 512)
        assert np.abs(ours - theirs).max() < 1e-4
        assert cosine(ours, theirs) > 0.9999


@pytest.mark.xfail(strict=True, reason=(
    "the shared .onnx was exported from other weights than the .pth: none of its 90 "
    "named tensors equals the .pth's (fc.0.weight correlation 0.21); output cosine ~0.35"))
def test_pth_and_onnx_give_the_same_embedding(osnet_pth, weights_root):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(_weights(weights_root, ONNX)),
                                   providers=["CPUExecutionProvider"])
    emb = embedder(osnet_pth, "crops")
    crop = np.random.default_rng(2).integers(0, 256, (256, 128, 3), dtype=np.uint8)
    ours = emb.roi_features(crop, [[0.0, 0.0, 128.0, 256.0]])[:, :, 0, 0]
    theirs = session.run(["output"], {"images": normalise(crop)})[0]
    assert np.abs(ours - theirs).max() < 1e-4 and cosine(ours, theirs) > 0.9999


# ---------------------------------------------------------------- RoI head vs crop


@pytest.mark.parametrize("weights", ["random", "pth"])
def test_roi_head_on_a_whole_crop_frame_equals_the_crop_embedding(weights, request,
                                                                  random_x0_25_file):
    """A 256x128 frame, one box covering it: RoIAlign + head = the network on the crop.

    With an 8x8 RoIAlign grid (2x2 samples per bin) on the 16x8 conv5 map the
    samples' average is exactly the map's average, so only float rounding remains.
    """
    path = request.getfixturevalue("osnet_pth") if weights == "pth" else random_x0_25_file
    crop = np.random.default_rng(3).integers(0, 256, (256, 128, 3), dtype=np.uint8)
    box = [[0.0, 0.0, 128.0, 256.0]]
    roi = embedder(path, "head", roi_size=8).roi_features(crop, box)
    whole = embedder(path, "crops").roi_features(crop, box)
    assert np.abs(roi - whole).max() < 1e-4 * max(1.0, np.abs(whole).max())
    assert cosine(roi, whole) > 0.99999


# ---------------------------------------------------------------- presets and CLI


@pytest.mark.parametrize("name", ["osnet_roi.yaml", "osnet_crops.yaml"])
def test_presets_and_cli_track(name, tmp_path, capsys):
    cfg = load_yaml(REPO / "configs" / name)
    assert cfg.appearance.backbone == "osnet_x0_25"
    seq = tmp_path / "SEQ-01"
    (seq / "img1").mkdir(parents=True)
    (seq / "det").mkdir()
    (seq / "seqinfo.ini").write_text("[Sequence]\nname=SEQ-01\nimDir=img1\nframeRate=30\n"
                                     "seqLength=4\nimWidth=96\nimHeight=64\nimExt=.jpg\n")
    from PIL import Image

    lines = []
    for f in range(1, 5):
        img = np.full((64, 96, 3), 40, np.uint8)
        img[10:50, 10 + 2 * f:26 + 2 * f] = 200
        Image.fromarray(img).save(seq / "img1" / f"{f:06d}.jpg")
        lines.append(f"{f},-1,{11 + 2 * f},11,16,40,0.9,-1,-1,-1")
    (seq / "det" / "det.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "res"
    code = main(["track", str(seq), "--config", str(REPO / "configs" / name), "--weights",
                 "random", "--no-cache", "--quiet", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert json.loads((out / "config.json").read_text())["appearance"]["backbone"] == "osnet_x0_25"
    assert len((out / "SEQ-01.txt").read_text().splitlines()) >= 1


@pytest.mark.parametrize("args", [
    ["--config", "fused_osnet.yaml"],
    ["--config", "fused.yaml", "--backbone", "osnet_x0_25", "--layer", "crops"],
], ids=["preset", "backbone-flag"])
def test_cli_tracks_real_frames_with_the_msmt17_weights(args, osnet_pth, data_root, tmp_path,
                                                        capsys):
    seq = data_root / "MOT17-mini" / "train" / "MOT17-05-FRCNN"
    if not seq.is_dir():
        pytest.skip("MOT17-mini not in the data folder")
    args = [a if not a.endswith(".yaml") else str(REPO / "configs" / a) for a in args]
    out = tmp_path / "res"
    code = main(["track", str(seq), *args, "--weights", str(osnet_pth), "--no-cache",
                 "--quiet", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["appearance"]["backbone"] == "osnet_x0_25"
    assert cfg["appearance"]["layer"] == "crops"
    assert cfg["tracker"]["association"] == "fused"
    rows = (out / "MOT17-05-FRCNN.txt").read_text().splitlines()
    assert len(rows) >= 5  # a handful of people, confirmed from the third frame on
