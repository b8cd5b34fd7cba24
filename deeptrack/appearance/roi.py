"""Boxes to RoIs, and one RoIAlign over every box of a batch of frames.

Coordinate convention (``aligned=True``, He et al. 2017 as corrected in
Detectron2): a box is in continuous pixel coordinates, pixel ``i`` covering
``[i, i + 1)``. On a feature map of stride ``s`` the box maps to
``box / s - 0.5`` in cell units, so a cell's sample sits at its centre, and a
box's bins are sampled at 2 x 2 regular points each (``sampling_ratio=2``, as
in the Mask R-CNN paper) whatever the box size, which keeps the cost per RoI
fixed. Samples that fall outside the map read zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from numpy.typing import ArrayLike
from torchvision.ops import roi_align

from deeptrack.boxes import validate_xyxy

__all__ = ["SAMPLING_RATIO", "boxes_to_rois", "roi_align_maps", "scale_boxes"]

#: Bilinear samples per bin side (2 x 2 per bin).
SAMPLING_RATIO = 2


def scale_boxes(boxes: ArrayLike, sx: float, sy: float) -> np.ndarray:
    """Return (N, 4) xyxy boxes with x scaled by ``sx`` and y by ``sy`` (float64)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return b * np.array([sx, sy, sx, sy])


def boxes_to_rois(
    boxes_list: Sequence[ArrayLike], *, device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Stack per-image boxes into the (K, 5) ``[batch_index, x1, y1, x2, y2]`` RoI tensor.

    Args:
        boxes_list: one (N_i, 4) xyxy array per image of the batch, in the
            pixel coordinates of the batch tensor.
        device: where the tensor goes.
        dtype: its dtype (the feature map's).

    Raises:
        InputError: a box array is malformed (shape, NaN, non-positive size).
    """
    parts = []
    for i, b in enumerate(boxes_list):
        b = validate_xyxy(b, name=f"boxes of image {i}")
        parts.append(np.concatenate([np.full((len(b), 1), float(i)), b], axis=1))
    rois = np.concatenate(parts, axis=0) if parts else np.zeros((0, 5))
    return torch.from_numpy(rois).to(device=device, dtype=dtype)


def roi_align_maps(
    features: torch.Tensor,
    rois: torch.Tensor,
    output_size: int,
    stride: float,
    *,
    sampling_ratio: int = SAMPLING_RATIO,
) -> torch.Tensor:
    """Pool every RoI of a batch from its image's feature map in one RoIAlign call.

    Args:
        features: (B, C, H, W) feature maps of a batch of images.
        rois: (K, 5) ``[batch_index, x1, y1, x2, y2]`` in the batch tensor's
            pixel coordinates (see :func:`boxes_to_rois`).
        output_size: side of the square output grid.
        stride: pixels per feature cell; ``spatial_scale = 1 / stride``.
        sampling_ratio: bilinear samples per bin side.

    Returns:
        (K, C, output_size, output_size) tensor on the features' device.
    """
    if rois.shape[0] == 0:
        c = features.shape[1]
        return features.new_zeros((0, c, output_size, output_size))
    return roi_align(
        features, rois.to(features.dtype), output_size=(output_size, output_size),
        spatial_scale=1.0 / stride, sampling_ratio=sampling_ratio, aligned=True,
    )
