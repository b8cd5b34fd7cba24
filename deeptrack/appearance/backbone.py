"""torchvision backbones that turn a batch of frames and its boxes into RoI feature maps.

Backbones (``AppearanceConfig.backbone``) and their layers (``AppearanceConfig.layer``):

==============================  =========================================  ====  =====
backbone                        layer (default first)                      C     stride
==============================  =========================================  ====  =====
``mobilenet_v2``                ``stride32`` = ``features.18`` (1x1 conv)  1280  32
                                ``stride16`` = ``features.13``             96    16
                                ``stride8``  = ``features.6``              32    8
                                ``stride4``  = ``features.3``              24    4
``resnet50``, ``resnet101``     ``layer4`` (C5)                            2048  32
                                ``layer3`` (C4), ``layer2``, ``layer1``    1024  16 ...
``resnet50_c4``,                ``c4``: RoIAlign on layer3 to 2R x 2R,     2048  16
``resnet101_c4``                then layer4 on each RoI -> R x R (the
                                classic Faster R-CNN C4 head)
``fasterrcnn_resnet50_fpn``,    ``fpn``: the detector's own                256   4 / 32
``fasterrcnn_mobilenet_v3_``    MultiScaleRoIAlign over its FPN levels
``large_fpn``                   (stride = the finest level's)
``osnet_x0_25``, ``osnet_x1_0`` ``conv5`` (1x1 conv, the last map)         128/  16
(OSNet re-ID, Zhou et al.                                                  512
2019; channels x0.25 / x1.0)    ``conv4``, ``conv3`` (= ``stride16``)      ...   16
                                ``conv2`` (= ``stride8``)                  64/   8
                                                                           256
                                ``head``: RoIAlign on conv5 to R x R,      512   16
                                then OSNet's own global average pool +
                                fc/BN/ReLU -> (N, 512, 1, 1) (``fc``)
                                ``crops``: no RoIAlign; each box cropped,  512   -
                                resized to 256x128 and run through the
                                whole network (classic DeepSORT)
==============================  =========================================  ====  =====

``features.N`` names the output of ``torchvision.models.mobilenet_v2().features[N]``;
``stride4``..``stride32`` (and ``c2``..``c5`` for ResNets) are accepted as aliases.

OSNet (:mod:`deeptrack.appearance.osnet`) takes torchreid-style checkpoints
(``conv1.conv.weight`` ... ``fc.0.weight``) strictly: every tensor of the
network must be there with its shape and nothing else may be, except the
training-time ``classifier.*``. Its ``head`` and ``crops`` layers give one
512-d vector per box as a 1x1 map, so every pooling mode reduces to L2
normalisation of OSNet's embedding. OSNet is trained on people about 256
pixels tall: ``image_scale`` should bring the frame's people near that height
(``configs/osnet_roi.yaml``).

Weights are never fetched silently: :func:`read_weights` takes a local
``state_dict`` file, a torchvision weights name (which downloads, and fails
with :class:`~deeptrack.errors.WeightsError` offline), or ``None`` for random
initialisation (tests). A file may hold only the convolutional part; every
tensor the feature path needs must be present with the right shape, or a
:class:`~deeptrack.errors.WeightsError` says which is missing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from numpy.typing import NDArray
from torch import nn
from torchvision.ops import MultiScaleRoIAlign

from deeptrack.appearance.digest import file_sha256
from deeptrack.appearance.osnet import (
    EMBEDDING_DIM,
    INPUT_SIZE,
    OSNET_LAYERS,
    OSNET_WIDTHS,
    OSNet,
    check_osnet_state,
)
from deeptrack.appearance.roi import boxes_to_rois, roi_align_maps, scale_boxes
from deeptrack.errors import ConfigError, InputError, WeightsError
from deeptrack.types import ResizeMode

__all__ = [
    "BACKBONES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BackboneSpec",
    "FasterRCNNExtractor",
    "MapExtractor",
    "apply_weights",
    "build_extractor",
    "read_weights",
    "resolve_device",
    "resolve_spec",
]

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Faster R-CNN's own resize: shorter side to 800, longer side at most 1333
# (torchvision's defaults); AppearanceConfig.image_scale multiplies both.
FRCNN_MIN_SIZE = 800
FRCNN_MAX_SIZE = 1333

_MOBILENET_LAYERS = {  # name: (number of features[] blocks kept, channels, stride)
    "stride4": (4, 24, 4),
    "stride8": (7, 32, 8),
    "stride16": (14, 96, 16),
    "stride32": (19, 1280, 32),
}
_MOBILENET_ALIASES = {"features.3": "stride4", "features.6": "stride8",
                      "features.13": "stride16", "features.18": "stride32"}
_RESNET_LAYERS = {  # name: (index of the last residual stage kept, channels, stride)
    "layer1": (1, 256, 4), "layer2": (2, 512, 8), "layer3": (3, 1024, 16), "layer4": (4, 2048, 32),
}
_RESNET_ALIASES = {"c2": "layer1", "c3": "layer2", "c4": "layer3", "c5": "layer4",
                   "stride4": "layer1", "stride8": "layer2", "stride16": "layer3",
                   "stride32": "layer4"}
# OSNet: layers (OSNET_LAYERS) plus the two that end in its embedding head.
_OSNET_LAYERS = {**OSNET_LAYERS, "head": None, "crops": None}
_OSNET_ALIASES = {"stride8": "conv2", "stride16": "conv5", "fc": "head"}
_FRCNN = {  # name: (torchvision builder, stride of the finest FPN level)
    "fasterrcnn_resnet50_fpn": ("fasterrcnn_resnet50_fpn", 4),
    "fasterrcnn_mobilenet_v3_large_fpn": ("fasterrcnn_mobilenet_v3_large_fpn", 32),
}

#: Every backbone name :func:`resolve_spec` knows.
BACKBONES = (
    "mobilenet_v2", "resnet50", "resnet101", "resnet50_c4", "resnet101_c4", *_FRCNN,
    *OSNET_WIDTHS,
)

_TORCHVISION_WEIGHTS = re.compile(r"[A-Za-z][A-Za-z0-9_]*_Weights\.[A-Za-z0-9_]+")


@dataclass(frozen=True)
class BackboneSpec:
    """What a backbone/layer choice computes.

    Attributes:
        backbone: the backbone name.
        layer: the canonical layer name.
        kind: ``map`` (RoIAlign on one map), ``c4`` (RoIAlign, then layer4 per
            RoI), ``fpn`` (the detector's multi-scale RoIAlign), ``head``
            (RoIAlign, then OSNet's embedding head per RoI) or ``crops``
            (whole network per resized crop, no RoIAlign).
        out_channels: C of the (N, C, R, R) RoI maps.
        stride: pixels per cell of the map RoIs are pooled from (the finest
            level for ``fpn``).
        roi_size: R, side of the output RoI maps (1 for ``head``, ``crops``).
        align_size: side of the RoIAlign output (2R for ``c4``, the configured
            ``roi_size`` for ``head``, else R).
    """

    backbone: str
    layer: str
    kind: str
    out_channels: int
    stride: int
    roi_size: int
    align_size: int


def _pick_layer(backbone: str, layer: str | None, valid: Mapping[str, Any],
                aliases: Mapping[str, str], default: str) -> str:
    if layer is None:
        return default
    name = aliases.get(str(layer).lower(), str(layer).lower())
    if name not in valid:
        names = ", ".join([*valid, *aliases])
        raise ConfigError(f"config key 'layer' = {layer!r} is not a layer of {backbone}; "
                          f"expected one of: {names}")
    return name


def resolve_spec(backbone: str, layer: str | None = None, roi_size: int = 7) -> BackboneSpec:
    """Resolve a backbone name and layer (None = default) to its :class:`BackboneSpec`.

    Raises:
        ConfigError: an unknown backbone or layer (the valid names are listed).
    """
    name = str(backbone).lower()
    if name == "mobilenet_v2":
        lay = _pick_layer(name, layer, _MOBILENET_LAYERS, _MOBILENET_ALIASES, "stride32")
        _, ch, st = _MOBILENET_LAYERS[lay]
        return BackboneSpec(name, lay, "map", ch, st, roi_size, roi_size)
    if name in ("resnet50", "resnet101"):
        lay = _pick_layer(name, layer, _RESNET_LAYERS, _RESNET_ALIASES, "layer4")
        _, ch, st = _RESNET_LAYERS[lay]
        return BackboneSpec(name, lay, "map", ch, st, roi_size, roi_size)
    if name in ("resnet50_c4", "resnet101_c4"):
        _pick_layer(name, layer, {"c4": None}, {"layer3": "c4"}, "c4")
        return BackboneSpec(name, "c4", "c4", 2048, 16, roi_size, 2 * roi_size)
    if name in _FRCNN:
        _pick_layer(name, layer, {"fpn": None}, {}, "fpn")
        return BackboneSpec(name, "fpn", "fpn", 256, _FRCNN[name][1], roi_size, roi_size)
    if name in OSNET_WIDTHS:
        lay = _pick_layer(name, layer, _OSNET_LAYERS, _OSNET_ALIASES, "conv5")
        if lay in ("head", "crops"):  # one embedding per box, as a 1x1 map
            return BackboneSpec(name, lay, lay, EMBEDDING_DIM, 16, 1, roi_size)
        width, st = OSNET_LAYERS[lay]
        return BackboneSpec(name, lay, "map", OSNET_WIDTHS[name][width], st, roi_size, roi_size)
    raise ConfigError(f"config key 'backbone' = {backbone!r} is unknown; expected one of: "
                      f"{', '.join(BACKBONES)}")


# ---------------------------------------------------------------- weights


def _as_state_dict(obj: Any, source: str) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping) and len(obj) == 1:
        (only,) = obj.values()
        if next(iter(obj)) in ("state_dict", "model") and isinstance(only, Mapping):
            obj = only  # a checkpoint that wraps its state_dict
    if not isinstance(obj, Mapping) or not obj:
        raise WeightsError(f"{source} does not hold a state_dict (a mapping of names to "
                           f"tensors); got {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsError(f"{source} is not a plain state_dict: entry {bad[0]!r} is not a tensor")
    return dict(obj)


def read_weights(weights: str | None) -> tuple[dict[str, torch.Tensor] | None, str]:
    """Read weights named in ``AppearanceConfig.weights``.

    Args:
        weights: a local file holding a ``state_dict`` (read with
            ``torch.load(weights_only=True)``), a torchvision weights name such
            as ``"MobileNet_V2_Weights.IMAGENET1K_V1"`` (downloaded by
            torchvision, so it needs the internet or torch's hub cache), or
            None for random initialisation.

    Returns:
        ``(state_dict or None, identity)``; ``identity`` goes into the cache
        key: ``sha256:<hex>`` of the file, ``torchvision:<resolved name>``, or
        ``random`` for None.

    Raises:
        WeightsError: a missing or unreadable file (naming its path), an
            unknown torchvision name, or a download that failed.
    """
    if weights is None:
        return None, "random"
    path = Path(weights).expanduser()
    if path.is_file():
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - torch raises many types for a bad file
            raise WeightsError(f"cannot read weights file {path}: {e}") from None
        return _as_state_dict(obj, f"weights file {path}"), f"sha256:{file_sha256(path)}"
    if path.exists():
        raise WeightsError(f"weights path {path} is not a file")
    if not _TORCHVISION_WEIGHTS.fullmatch(str(weights)):
        raise WeightsError(f"weights file not found: {path} (give a state_dict file, a "
                           f"torchvision weights name like ResNet50_Weights.DEFAULT, or null)")
    try:
        enum = torchvision.models.get_weight(str(weights))
    except (ValueError, KeyError, AttributeError) as e:
        raise WeightsError(f"unknown torchvision weights name {weights!r}: {e}") from None
    try:
        state = enum.get_state_dict(progress=False, check_hash=True)
    except Exception as e:  # noqa: BLE001 - URLError, OSError, RuntimeError (hash) ...
        raise WeightsError(
            f"could not get torchvision weights {enum} ({type(e).__name__}: {e}); without "
            f"internet access, download the file elsewhere and pass its local path as weights"
        ) from None
    return _as_state_dict(state, f"torchvision weights {enum}"), f"torchvision:{enum}"


def apply_weights(
    model: nn.Module, state: Mapping[str, torch.Tensor], needed_prefixes: Sequence[str],
    source: str,
) -> None:
    """Load ``state`` into ``model``, insisting on every tensor the feature path needs.

    Tensors outside ``needed_prefixes`` (e.g. a classifier) may be absent; a
    needed one that is absent or has the wrong shape is an error, so a model
    never runs half-random.

    Raises:
        WeightsError: naming the missing or mismatched keys.
    """
    own = model.state_dict()
    prefixes = tuple(needed_prefixes)
    needed = [k for k in own if k.startswith(prefixes) and not k.endswith("num_batches_tracked")]
    missing = [k for k in needed if k not in state]
    if missing:
        raise WeightsError(
            f"{source} lacks {len(missing)} of the {len(needed)} tensors the feature path needs "
            f"(first: {', '.join(missing[:3])}); is it a {type(model).__name__} state_dict with "
            f"torchvision's key names?"
        )
    for k in needed:
        if tuple(state[k].shape) != tuple(own[k].shape):
            raise WeightsError(f"{source}: tensor {k} has shape {tuple(state[k].shape)}, "
                               f"the model needs {tuple(own[k].shape)}")
    extra = [k for k in state if k not in own]
    if extra:
        logger.warning("%s: %d tensors do not belong to the model and are ignored (first: %s)",
                       source, len(extra), extra[0])
    load = {k: v for k, v in state.items()
            if k in own and k.startswith(prefixes) and v.shape == own[k].shape}
    model.load_state_dict(load, strict=False)


# ---------------------------------------------------------------- extractors


def resolve_device(device: str, fp16: bool = False) -> torch.device:
    """Return the torch device named by ``AppearanceConfig.device``.

    Raises:
        ConfigError: not ``cpu``/``cuda``/``cuda:N``; CUDA asked for but not
            available (or no such index); fp16 without CUDA.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ConfigError(f"config key 'device' = {device!r} is not a device: {e}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"config key 'device' = {device!r} asks for CUDA, but CUDA is not "
                              f"available here (torch {torch.__version__}); use 'cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"config key 'device' = {device!r}: only "
                              f"{torch.cuda.device_count()} CUDA device(s) exist")
    elif dev.type != "cpu":
        raise ConfigError(f"config key 'device' = {device!r}: expected 'cpu', 'cuda' or 'cuda:N'")
    if fp16 and dev.type != "cuda":
        raise ConfigError("config key 'fp16' = True needs a CUDA device; half precision on the "
                          "CPU is slow and inexact, so it is not offered")
    return dev


def _images_to_tensor(images: Sequence[NDArray[np.uint8]], device: torch.device,
                      dtype: torch.dtype) -> torch.Tensor:
    """Stack same-size HxWx3 uint8 frames into a (B, 3, H, W) tensor in [0, 1]."""
    batch = torch.from_numpy(np.stack(images)).to(device)
    return batch.permute(0, 3, 1, 2).to(dtype).div_(255.0)


def resize_frames(x: torch.Tensor, size: tuple[int, int], mode: ResizeMode) -> torch.Tensor:
    """Resample a (B, 3, H, W) batch to ``size`` = (height, width) with ``mode``.

    ``area`` averages the input pixels each output pixel covers (on a
    downscale; on an upscale it repeats them, so bilinear is used there).
    """
    mode = ResizeMode(mode)
    if mode is ResizeMode.AREA and size[0] <= x.shape[-2] and size[1] <= x.shape[-1]:
        return F.interpolate(x, size=size, mode="area")
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False,
                         antialias=mode is ResizeMode.BILINEAR_ANTIALIAS)


class MapExtractor(nn.Module):
    """Frames -> one feature map per frame -> one RoIAlign over all boxes (-> per-RoI head).

    Args:
        trunk: module mapping a normalised (B, 3, H, W) batch to (B, C, h, w).
        head: None, or a module applied to the (K, C', A, A) RoI maps (C4's
            layer4, OSNet's embedding head) and, for :meth:`crops`, to the
            trunk's maps of the crops.
        spec: what it computes; with ``spec.kind == "crops"`` the forward is
            the per-crop path (:meth:`crops` at ``crop_size``), not RoIAlign.
        image_scale: frames are resized by this factor before the trunk.
        resize: how that resize resamples (:class:`~deeptrack.types.ResizeMode`).
        crop_size: (height, width) of the crops of the ``crops`` kind.
    """

    def __init__(self, trunk: nn.Module, head: nn.Module | None, spec: BackboneSpec,
                 image_scale: float, resize: ResizeMode = ResizeMode.AREA,
                 crop_size: tuple[int, int] = (256, 128)) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = head
        self.spec = spec
        self.image_scale = float(image_scale)
        self.resize = ResizeMode(resize)
        self.crop_size = (int(crop_size[0]), int(crop_size[1]))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, images: Sequence[NDArray[np.uint8]],
                boxes_list: Sequence[NDArray[np.float64]]) -> torch.Tensor:
        """Return the (K, C, R, R) RoI maps of all boxes, frame by frame in order.

        Args:
            images: B frames, HxWx3 uint8 RGB, all the same size.
            boxes_list: B (N_i, 4) float64 xyxy arrays in original pixels.
        """
        if self.spec.kind == "crops":
            return self._crops(images, boxes_list, self.crop_size)
        x = _images_to_tensor(images, self.mean.device, self.mean.dtype)
        h, w = x.shape[-2:]
        if self.image_scale != 1.0:
            size = (max(1, round(h * self.image_scale)), max(1, round(w * self.image_scale)))
            x = resize_frames(x, size, self.resize)
        sy, sx = x.shape[-2] / h, x.shape[-1] / w
        # channels-last: MobileNetV2's depthwise convolutions ran 4x faster on this CPU.
        x = ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        rois = boxes_to_rois([scale_boxes(b, sx, sy) for b in boxes_list],
                             device=x.device, dtype=x.dtype)
        fmap = self.trunk(x)
        out = roi_align_maps(fmap, rois, self.spec.align_size, self.spec.stride)
        if self.head is not None and out.shape[0]:
            out = self.head(out)
        return out

    def crops(self, image: NDArray[np.uint8], boxes: NDArray[np.float64],
              size: tuple[int, int]) -> torch.Tensor:
        """Per-crop baseline: crop and resize each box, run the whole network on the crops.

        This is the classic DeepSORT arrangement (one forward over N resized
        crops), kept to measure the RoI path against. Boxes are clipped to the
        frame and rounded outwards to whole pixels; the resize is plain
        bilinear, as ``cv2.resize`` does.

        Args:
            image: one HxWx3 uint8 frame.
            boxes: (N, 4) float64 xyxy with N >= 1, each overlapping the frame.
            size: (height, width) of the resized crops, e.g. (256, 128).

        Returns:
            (N, C, height / stride, width / stride) maps; with a head, the
            head's output (OSNet: (N, 512, 1, 1), the network's embedding).
        """
        return self._crops([image], [boxes], size)

    def _crops(self, images: Sequence[NDArray[np.uint8]],
               boxes_list: Sequence[NDArray[np.float64]], size: tuple[int, int]) -> torch.Tensor:
        """:meth:`crops` over several frames, in one forward."""
        crops = []
        for j, (image, boxes) in enumerate(zip(images, boxes_list, strict=True)):
            x = _images_to_tensor([image], self.mean.device, self.mean.dtype)[0]
            h, w = x.shape[-2:]
            for i, (x1, y1, x2, y2) in enumerate(boxes):
                c0, r0 = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
                c1, r1 = min(w, int(np.ceil(x2))), min(h, int(np.ceil(y2)))
                if c1 <= c0 or r1 <= r0:
                    box = [float(v) for v in (x1, y1, x2, y2)]
                    where = f"boxes[{i}]" if len(images) == 1 else f"boxes of image {j}[{i}]"
                    raise InputError(f"{where} = {box} lies outside the {w}x{h} frame: "
                                     f"nothing to crop")
                crops.append(F.interpolate(x[None, :, r0:r1, c0:c1], size=size, mode="bilinear",
                                           align_corners=False))
        batch = (torch.cat(crops) - self.mean) / self.std
        out = self.trunk(batch)
        return self.head(out) if self.head is not None else out


class FasterRCNNExtractor(nn.Module):
    """A torchvision Faster R-CNN (FPN) whose box-head RoI features serve as appearance.

    Images go through the detector's own transform (ImageNet normalisation,
    resize of the shorter side to ``min_size`` capped by ``max_size``, padding
    to a multiple of 32); boxes given in original pixels are mapped into that
    frame with the same per-axis ratios its post-processing uses in reverse.

    Args:
        model: a torchvision ``FasterRCNN``.
        spec: what it computes.
    """

    def __init__(self, model: nn.Module, spec: BackboneSpec) -> None:
        super().__init__()
        self.model = model
        self.spec = spec
        pool = model.roi_heads.box_roi_pool
        if spec.roi_size == pool.output_size[0]:
            self.roi_pool = pool
        else:  # same levels and sampling as the detector, another output size
            self.roi_pool = MultiScaleRoIAlign(list(pool.featmap_names), spec.roi_size,
                                               pool.sampling_ratio)

    def _features(self, images: Sequence[NDArray[np.uint8]]) -> tuple[Any, Any, list]:
        param = next(self.model.parameters())
        image_list, _ = self.model.transform(
            _images_to_tensor_list(images, param.device, param.dtype))
        features = self.model.backbone(image_list.tensors)
        ratios = [(rw / im.shape[1], rh / im.shape[0])
                  for (rh, rw), im in zip(image_list.image_sizes, images, strict=False)]
        return image_list, features, ratios

    def forward(self, images: Sequence[NDArray[np.uint8]],
                boxes_list: Sequence[NDArray[np.float64]]) -> torch.Tensor:
        """Return the (K, 256, R, R) RoI maps of the given boxes (original pixels)."""
        image_list, features, ratios = self._features(images)
        dtype = image_list.tensors.dtype
        boxes = [torch.from_numpy(scale_boxes(b, sx, sy)).to(image_list.tensors.device, dtype)
                 for b, (sx, sy) in zip(boxes_list, ratios, strict=False)]
        return self.roi_pool(features, boxes, image_list.image_sizes)

    def detect(
        self, images: Sequence[NDArray[np.uint8]], score_threshold: float,
        classes: Sequence[int] | None = None,
    ) -> list[tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64], torch.Tensor]]:
        """Detect, then pool the FINAL (post-NMS) boxes' RoI features in the same pass.

        Returns:
            per image ``(boxes xyxy in original pixels, scores, class ids,
            (N, 256, R, R) features)``.
        """
        image_list, features, ratios = self._features(images)
        heads = self.model.roi_heads
        saved = heads.score_thresh
        heads.score_thresh = float(score_threshold)
        try:
            proposals, _ = self.model.rpn(image_list, features)
            found, _ = heads(features, proposals, image_list.image_sizes)
        finally:
            heads.score_thresh = saved
        if classes is not None:
            wanted = torch.as_tensor(list(classes), device=image_list.tensors.device)
            found = [{k: v[torch.isin(d["labels"], wanted)] for k, v in d.items()} for d in found]
        # The box head classified 7x7 pools of the *proposals*; the tracker
        # needs features of the final, regressed boxes, so pool again on them,
        # in the transformed frame where the boxes live.
        feats = self.roi_pool(features, [d["boxes"] for d in found], image_list.image_sizes)
        out = []
        start = 0
        for d, (sx, sy) in zip(found, ratios, strict=False):
            n = len(d["boxes"])
            boxes = scale_boxes(d["boxes"].double().cpu().numpy(), 1.0 / sx, 1.0 / sy)
            out.append((boxes, d["scores"].double().cpu().numpy(),
                        d["labels"].cpu().numpy().astype(np.int64), feats[start:start + n]))
            start += n
        return out


def _images_to_tensor_list(images: Sequence[NDArray[np.uint8]], device: torch.device,
                           dtype: torch.dtype) -> list[torch.Tensor]:
    # torch wants writable memory even though it only reads here; frames from
    # Pillow are read-only, so those (only those) are copied.
    return [torch.from_numpy(im if im.flags.writeable else im.copy()).to(device)
            .permute(2, 0, 1).to(dtype).div_(255.0) for im in images]


def _build_mobilenet(spec: BackboneSpec, state: Mapping | None, source: str,
                     image_scale: float) -> MapExtractor:
    model = torchvision.models.mobilenet_v2(weights=None)
    n_blocks = _MOBILENET_LAYERS[spec.layer][0]
    if state is not None:
        apply_weights(model, state, [f"features.{i}." for i in range(n_blocks)], source)
    return MapExtractor(model.features[:n_blocks], None, spec, image_scale)


def _build_resnet(spec: BackboneSpec, state: Mapping | None, source: str,
                  image_scale: float) -> MapExtractor:
    arch = spec.backbone.removesuffix("_c4")
    model = getattr(torchvision.models, arch)(weights=None)
    last = 4 if spec.kind == "c4" else _RESNET_LAYERS[spec.layer][0]
    stages = [f"layer{i}" for i in range(1, last + 1)]
    if state is not None:
        apply_weights(model, state, ["conv1.", "bn1.", *(s + "." for s in stages)], source)
    stem = [model.conv1, model.bn1, model.relu, model.maxpool]
    if spec.kind == "c4":
        return MapExtractor(nn.Sequential(*stem, model.layer1, model.layer2, model.layer3),
                            model.layer4, spec, image_scale)
    trunk = nn.Sequential(*stem, *(getattr(model, s) for s in stages))
    return MapExtractor(trunk, None, spec, image_scale)


def _build_fasterrcnn(spec: BackboneSpec, state: Mapping | None, source: str,
                      image_scale: float) -> FasterRCNNExtractor:
    builder = getattr(torchvision.models.detection, _FRCNN[spec.backbone][0])
    num_classes = 91  # COCO, torchvision's default
    if state is not None and "roi_heads.box_predictor.cls_score.weight" in state:
        num_classes = int(state["roi_heads.box_predictor.cls_score.weight"].shape[0])
    model = builder(weights=None, weights_backbone=None, num_classes=num_classes,
                    min_size=max(32, round(FRCNN_MIN_SIZE * image_scale)),
                    max_size=max(32, round(FRCNN_MAX_SIZE * image_scale)))
    if state is not None:
        apply_weights(model, state, [""], source)  # a detector needs every tensor
    return FasterRCNNExtractor(model, spec)


def _build_osnet(spec: BackboneSpec, state: Mapping | None, source: str,
                 image_scale: float) -> MapExtractor:
    model = OSNet(OSNET_WIDTHS[spec.backbone])
    if state is not None:  # strict: all of OSNet, nothing else (but its ID classifier)
        apply_weights(model, check_osnet_state(model, state, source), [""], source)
    model.eval().fuse_batchnorm_()
    if spec.kind == "map":
        return MapExtractor(model.trunk(spec.layer), None, spec, image_scale)
    return MapExtractor(model.trunk("conv5"), model.head(), spec, image_scale,
                        crop_size=INPUT_SIZE)


def build_extractor(
    spec: BackboneSpec, weights: str | None, *, image_scale: float = 1.0,
    resize: ResizeMode = ResizeMode.AREA,
) -> tuple[nn.Module, str]:
    """Build the extractor for ``spec`` with the given weights, in eval mode on the CPU.

    ``resize`` sets how frames are resampled by ``image_scale``; the Faster
    R-CNN extractor resizes with its own transform and ignores it.

    Returns:
        ``(extractor, weights identity)`` (see :func:`read_weights`).

    Raises:
        WeightsError: see :func:`read_weights` and :func:`apply_weights`.
    """
    state, ident = read_weights(weights)
    source = f"weights {weights}"
    if spec.kind == "fpn":
        ext: nn.Module = _build_fasterrcnn(spec, state, source, image_scale)
    elif spec.backbone == "mobilenet_v2":
        ext = _build_mobilenet(spec, state, source, image_scale)
    elif spec.backbone in OSNET_WIDTHS:
        ext = _build_osnet(spec, state, source, image_scale)
    else:
        ext = _build_resnet(spec, state, source, image_scale)
    if isinstance(ext, MapExtractor):
        ext.resize = ResizeMode(resize)
        ext = ext.to(memory_format=torch.channels_last)
    return ext.eval(), ident


