"""torchvision backbones that turn a batch of frames and its boxes into RoI feature maps.

Which backbones and layers exist, and what each computes, is
:mod:`deeptrack.appearance.backbone_specs` (:func:`resolve_spec`); how their
weights are read and checked is :mod:`deeptrack.appearance.weights`
(:func:`read_weights`, :func:`apply_weights`). This module builds the
extractor for a spec (:func:`build_extractor`) and runs it: one trunk pass per
batch of frames, one RoIAlign over all boxes (:class:`MapExtractor`), or the
detector's own multi-scale RoIAlign (:class:`FasterRCNNExtractor`). Their
names are importable from here too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from numpy.typing import NDArray
from torch import nn
from torchvision.ops import MultiScaleRoIAlign

from deeptrack.appearance.backbone_specs import (
    BACKBONES,
    FRCNN_MODELS,
    MOBILENET_LAYERS,
    RESNET_LAYERS,
    BackboneSpec,
    resolve_spec,
)
from deeptrack.appearance.ort import OnnxRuntimeTrunk, require_onnxruntime
from deeptrack.appearance.osnet import INPUT_SIZE, OSNET_WIDTHS, OSNet, check_osnet_state
from deeptrack.appearance.roi import boxes_to_rois, roi_align_maps, scale_boxes
from deeptrack.appearance.weights import apply_weights, read_weights
from deeptrack.errors import ConfigError, InputError
from deeptrack.types import ResizeMode, Runtime

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

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Faster R-CNN's own resize: shorter side to 800, longer side at most 1333
# (torchvision's defaults); AppearanceConfig.image_scale multiplies both.
FRCNN_MIN_SIZE = 800
FRCNN_MAX_SIZE = 1333


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
    n_blocks = MOBILENET_LAYERS[spec.layer][0]
    if state is not None:
        apply_weights(model, state, [f"features.{i}." for i in range(n_blocks)], source)
    return MapExtractor(model.features[:n_blocks], None, spec, image_scale)


def _build_resnet(spec: BackboneSpec, state: Mapping | None, source: str,
                  image_scale: float) -> MapExtractor:
    arch = spec.backbone.removesuffix("_c4")
    model = getattr(torchvision.models, arch)(weights=None)
    last = 4 if spec.kind == "c4" else RESNET_LAYERS[spec.layer][0]
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
    builder = getattr(torchvision.models.detection, FRCNN_MODELS[spec.backbone][0])
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
    resize: ResizeMode = ResizeMode.AREA, runtime: Runtime = Runtime.TORCH,
) -> tuple[nn.Module, str]:
    """Build the extractor for ``spec`` with the given weights, in eval mode on the CPU.

    ``resize`` sets how frames are resampled by ``image_scale``; the Faster
    R-CNN extractor resizes with its own transform and ignores it.
    ``runtime`` ``onnxruntime`` runs the trunk (not RoIAlign, pooling or a
    per-RoI head) in ONNX Runtime (:class:`~deeptrack.appearance.ort.OnnxRuntimeTrunk`).

    Returns:
        ``(extractor, weights identity)`` (see :func:`read_weights`).

    Raises:
        WeightsError: see :func:`read_weights` and :func:`apply_weights`.
        ConfigError: ``onnxruntime`` asked of the Faster R-CNN extractor, or
            not installed.
    """
    runtime = Runtime(runtime)
    if runtime is Runtime.ONNXRUNTIME:
        if spec.kind == "fpn":
            raise ConfigError(f"config key 'runtime' = 'onnxruntime' is not offered for "
                              f"{spec.backbone} (a detector); use runtime: torch")
        require_onnxruntime()
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
        if runtime is Runtime.ONNXRUNTIME:
            ext.trunk = OnnxRuntimeTrunk(ext.trunk)
    return ext.eval(), ident
