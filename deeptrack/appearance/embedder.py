"""Image + boxes -> RoI feature maps or pooled embeddings, and a detector that gives both.

The contract the tracker relies on (:class:`~deeptrack.appearance.extract.Embedder`)::

    embedder.roi_features(image, boxes) -> (N, C, R, R) float32

with ``image`` an HxWx3 uint8 RGB frame and ``boxes`` (N, 4) float64 xyxy in
that frame's pixels. An :class:`~deeptrack.appearance.head.EmbeddingHead` then
makes the maps vectors, so one embedder serves every pooling mode.

Each forward runs under ``torch.inference_mode()`` with the model in eval
mode; one backbone pass per batch of frames, one RoIAlign over all its boxes.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from deeptrack.appearance.backbone import (
    FasterRCNNExtractor,
    build_extractor,
    resolve_device,
    resolve_spec,
)
from deeptrack.appearance.head import EmbeddingHead
from deeptrack.appearance.roi import SAMPLING_RATIO
from deeptrack.boxes import validate_xyxy
from deeptrack.config import AppearanceConfig
from deeptrack.errors import ConfigError, InputError
from deeptrack.types import Detections, Runtime

__all__ = ["FEATURE_FORMAT", "FasterRCNNDetector", "RoIEmbedder", "check_image"]

logger = logging.getLogger(__name__)

#: Bumped when the extraction changes in a way that changes the numbers.
FEATURE_FORMAT = 1


def check_image(image: Any, name: str = "image") -> NDArray[np.uint8]:
    """Return ``image`` as a C-contiguous HxWx3 uint8 array, or raise naming the problem.

    Raises:
        InputError: not a numpy array, wrong dtype, or not HxWx3.
    """
    if not isinstance(image, np.ndarray):
        raise InputError(f"{name} must be an HxWx3 uint8 numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise InputError(f"{name} must be uint8 RGB, got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise InputError(f"{name} must have shape (H, W, 3), got {image.shape}")
    return np.ascontiguousarray(image)


class RoIEmbedder:
    """RoI feature maps (and pooled embeddings) for boxes in frames, from a torchvision backbone.

    Args:
        config: backbone, layer, weights, RoI size, image scale, device,
            batch size, fp16 (see :class:`~deeptrack.config.AppearanceConfig`
            and :mod:`deeptrack.appearance.backbone` for the names).

    Attributes:
        out_channels: C of the returned maps.
        stride: pixels per cell of the map RoIs are pooled from.
        roi_size: R, side of the returned maps.
        batch_size: frames per forward.
        key: everything that changes the maps, JSON-able, for caching. With
            random weights (``weights: null``) it holds a token unique to this
            instance, so two random models never share cache entries.

    Raises:
        ConfigError: unknown backbone/layer, bad device, fp16 without CUDA.
        WeightsError: weights missing, unreadable or not fitting the model.
    """

    def __init__(self, config: AppearanceConfig | None = None) -> None:
        self.config = config if config is not None else AppearanceConfig()
        cfg = self.config
        self.spec = resolve_spec(cfg.backbone, cfg.layer, cfg.roi_size)
        self.device = resolve_device(cfg.device, cfg.fp16)
        if cfg.runtime is not Runtime.TORCH and self.device.type != "cpu":
            raise ConfigError(f"config key 'runtime' = {cfg.runtime.value!r} runs on the CPU; "
                              f"device is {cfg.device!r} (use runtime: torch there)")
        self._dtype = torch.float16 if cfg.fp16 else torch.float32
        model, ident = build_extractor(self.spec, cfg.weights, image_scale=cfg.image_scale,
                                       resize=cfg.resize, runtime=cfg.runtime)
        self._model = model.to(device=self.device, dtype=self._dtype).eval()
        if ident == "random":
            ident = f"random:{uuid.uuid4().hex}"
        self.out_channels = self.spec.out_channels
        self.stride = self.spec.stride
        self.roi_size = self.spec.roi_size
        self.batch_size = cfg.batch_size
        self.key: dict[str, Any] = {
            "format": FEATURE_FORMAT,
            "backbone": self.spec.backbone,
            "layer": self.spec.layer,
            "roi_size": self.spec.roi_size,
            "image_scale": cfg.image_scale,
            # The Faster R-CNN extractor resizes with its own transform.
            "resize": cfg.resize.value if self.spec.kind != "fpn" else "detector",
            "weights": ident,
            "precision": "fp16" if cfg.fp16 else "fp32",
            "sampling_ratio": SAMPLING_RATIO,
        }
        if cfg.runtime is not Runtime.TORCH:  # torch's keys stay as they were
            self.key["runtime"] = cfg.runtime.value
        # OSNet's one-vector layers: the RoIAlign grid under its head, or the crop size.
        if self.spec.kind == "head":
            self.key["align_size"] = self.spec.align_size
        elif self.spec.kind == "crops":
            self.key["crop_size"] = list(self._model.crop_size)
        #: forwards run so far (one per batch of frames); handy to check caching
        self.n_forwards = 0

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(backbone={self.spec.backbone!r}, "
                f"layer={self.spec.layer!r}, out=({self.out_channels}, {self.roi_size}, "
                f"{self.roi_size}), device={str(self.device)!r})")

    def _empty(self, n: int = 0) -> NDArray[np.float32]:
        return np.zeros((n, self.out_channels, self.roi_size, self.roi_size), np.float32)

    def _forward(self, images: list[NDArray[np.uint8]],
                 boxes: list[NDArray[np.float64]]) -> NDArray[np.float32]:
        self.n_forwards += 1
        with torch.inference_mode():
            out = self._model(images, boxes)
        return out.float().cpu().numpy()

    def roi_features(self, image: NDArray[np.uint8], boxes: ArrayLike) -> NDArray[np.float32]:
        """Return the RoI feature maps of ``boxes`` in one frame.

        Args:
            image: HxWx3 uint8 RGB frame.
            boxes: (N, 4) float xyxy in the frame's pixels (N may be 0; boxes
                may reach outside the frame, where features read as zero).

        Returns:
            (N, C, R, R) float32; (0, C, R, R) without running the model when N = 0.

        Raises:
            InputError: a malformed image or boxes; with OSNet's ``crops``
                layer also a box wholly outside the frame (nothing to crop).
        """
        return self.roi_features_batch([image], [boxes])[0]

    def roi_features_batch(self, images: Sequence[NDArray[np.uint8]],
                           boxes_list: Sequence[ArrayLike]) -> list[NDArray[np.float32]]:
        """Return per-frame RoI maps of several frames, ``batch_size`` frames per forward.

        Frames are grouped by size (a sequence's frames share one), so no
        padding ever changes a feature.

        Args:
            images: F frames, HxWx3 uint8 RGB.
            boxes_list: F arrays of (N_f, 4) float xyxy boxes.

        Returns:
            F arrays of (N_f, C, R, R) float32.
        """
        if len(images) != len(boxes_list):
            raise InputError(f"{len(images)} images but {len(boxes_list)} box arrays")
        imgs = [check_image(im, f"image {i}") for i, im in enumerate(images)]
        boxes = [validate_xyxy(b, name=f"boxes of image {i}") for i, b in enumerate(boxes_list)]
        out: list[NDArray[np.float32]] = [self._empty(len(b)) for b in boxes]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, (im, b) in enumerate(zip(imgs, boxes, strict=False)):
            if len(b):
                groups.setdefault(im.shape, []).append(i)
        for idx in groups.values():
            for s in range(0, len(idx), self.batch_size):
                chunk = idx[s:s + self.batch_size]
                maps = self._forward([imgs[i] for i in chunk], [boxes[i] for i in chunk])
                ends = np.cumsum([len(boxes[i]) for i in chunk])
                for i, part in zip(chunk, np.split(maps, ends[:-1]), strict=False):
                    out[i] = part
        return out

    def crop_features(self, image: NDArray[np.uint8], boxes: ArrayLike,
                      size: tuple[int, int] = (256, 128)) -> NDArray[np.float32]:
        """Return per-crop feature maps, the classic DeepSORT way (a baseline to compare with).

        Each box is cropped from the frame (clipped to it), resized to ``size``
        and the batch of crops goes through the whole network: N crops cost
        about N * size pixels of backbone work, where :meth:`roi_features`
        costs one frame. ``image_scale`` does not apply. With OSNet's ``head``
        or ``crops`` layer the crops go through OSNet's embedding head too,
        giving the network's own 512-d output (the ``crops`` layer makes this
        the path :meth:`roi_features` takes, at 256x128).

        Args:
            image: HxWx3 uint8 RGB frame.
            boxes: (N, 4) float xyxy, each overlapping the frame.
            size: (height, width) of each resized crop.

        Returns:
            (N, C, height / stride, width / stride) float32 (rounded up for odd
            sizes); (N, 512, 1, 1) for OSNet's ``head`` and ``crops`` layers.

        Raises:
            ConfigError: for a Faster R-CNN backbone (its features are multi-scale).
            InputError: bad image or boxes, or a box wholly outside the frame.
        """
        if self.spec.kind == "fpn":
            raise ConfigError("crop_features is not offered for Faster R-CNN backbones")
        img = check_image(image)
        b = validate_xyxy(boxes)
        if len(b) == 0 and self.spec.kind in ("head", "crops"):
            return self._empty(0)
        if len(b) == 0:
            stride = 2 * self.stride if self.spec.kind == "c4" else self.stride  # + layer4
            return np.zeros((0, self.out_channels, *(-(-s // stride) for s in size)), np.float32)
        self.n_forwards += 1
        with torch.inference_mode():
            out = self._model.crops(img, b, (int(size[0]), int(size[1])))
        return out.float().cpu().numpy()

    def embed(self, image: NDArray[np.uint8], boxes: ArrayLike,
              head: EmbeddingHead | None = None) -> NDArray[np.float32]:
        """Return (N, D) float32 unit embeddings: :meth:`roi_features`, then ``head``.

        Args:
            image, boxes: as for :meth:`roi_features`.
            head: turns the maps into vectors (default: global average pooling).
        """
        return (head if head is not None else EmbeddingHead())(self.roi_features(image, boxes))


class FasterRCNNDetector(RoIEmbedder):
    """A torchvision Faster R-CNN (FPN) that returns detections with their RoI features.

    Detection and embedding come from one pass: the box head's
    MultiScaleRoIAlign pools 256 x R x R features for the final (post-NMS,
    regressed) boxes from the same FPN maps the detector used. It is also an
    embedder (:meth:`roi_features` for boxes from elsewhere, e.g. public
    detections), using the same features.

    ``AppearanceConfig.image_scale`` multiplies the detector's own resize
    (shorter side 800, longer side at most 1333 pixels).

    Args:
        config: with ``backbone`` ``fasterrcnn_resnet50_fpn`` or
            ``fasterrcnn_mobilenet_v3_large_fpn``; weights e.g.
            ``FasterRCNN_ResNet50_FPN_Weights.DEFAULT`` or a local file.

    Raises:
        ConfigError: the backbone is not a Faster R-CNN.
    """

    def __init__(self, config: AppearanceConfig | None = None) -> None:
        config = config if config is not None else AppearanceConfig(
            backbone="fasterrcnn_resnet50_fpn")
        if resolve_spec(config.backbone, config.layer, config.roi_size).kind != "fpn":
            raise ConfigError(f"FasterRCNNDetector needs a Faster R-CNN backbone, got "
                              f"{config.backbone!r}")
        super().__init__(config)
        self.key["min_size"] = self._model.model.transform.min_size[0]
        self.key["max_size"] = self._model.model.transform.max_size

    def detect(self, image: NDArray[np.uint8], score_threshold: float = 0.5,
               classes: Sequence[int] | None = None) -> Detections:
        """Detect objects in one frame and return them with their RoI features.

        Args:
            image: HxWx3 uint8 RGB frame.
            score_threshold: keep detections scoring above it (0 <= t < 1).
            classes: keep only these class ids (COCO: 1 = person); None keeps all.

        Returns:
            :class:`~deeptrack.types.Detections` with boxes (N, 4) xyxy in the
            original image's pixels, scores, class_ids and roi_features
            (N, 256, R, R) float32; N may be 0.
        """
        return self.detect_batch([image], score_threshold, classes)[0]

    def detect_batch(self, images: Sequence[NDArray[np.uint8]], score_threshold: float = 0.5,
                     classes: Sequence[int] | None = None) -> list[Detections]:
        """Detect in several frames, ``batch_size`` per forward; see :meth:`detect`."""
        if not 0.0 <= float(score_threshold) < 1.0:
            raise ConfigError(f"score_threshold = {score_threshold!r} must be in [0, 1)")
        imgs = [check_image(im, f"image {i}") for i, im in enumerate(images)]
        model: FasterRCNNExtractor = self._model  # guaranteed by __init__
        out: list[Detections] = []
        for s in range(0, len(imgs), self.batch_size):
            self.n_forwards += 1
            with torch.inference_mode():
                found = model.detect(imgs[s:s + self.batch_size], score_threshold, classes)
            for boxes, scores, labels, feats in found:
                out.append(Detections(boxes, scores, roi_features=feats.float().cpu().numpy(),
                                      class_ids=labels))
        return out
