"""Box format conversions, validation and a broadcast IoU matrix.

Formats:
    xyxy: (x1, y1, x2, y2) pixels, 0-based; the format used everywhere inside.
    tlwh: (left, top, width, height); used only at the MOTChallenge file edge.
    xyah: (center x, center y, aspect ratio w/h, height); used only in ``motion``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from deeptrack.errors import InputError


def tlwh_to_xyxy(tlwh: ArrayLike) -> NDArray[np.float64]:
    """Convert (N, 4) tlwh boxes to xyxy."""
    b = np.asarray(tlwh, dtype=np.float64).reshape(-1, 4)
    out = b.copy()
    out[:, 2:] = b[:, :2] + b[:, 2:]
    return out


def xyxy_to_tlwh(xyxy: ArrayLike) -> NDArray[np.float64]:
    """Convert (N, 4) xyxy boxes to tlwh."""
    b = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    out = b.copy()
    out[:, 2:] = b[:, 2:] - b[:, :2]
    return out


def xyxy_to_xyah(xyxy: ArrayLike) -> NDArray[np.float64]:
    """Convert (N, 4) xyxy boxes to (center x, center y, w/h, h)."""
    b = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    wh = b[:, 2:] - b[:, :2]
    out = np.empty_like(b)
    out[:, :2] = b[:, :2] + 0.5 * wh
    out[:, 2] = wh[:, 0] / wh[:, 1]
    out[:, 3] = wh[:, 1]
    return out


def xyah_to_xyxy(xyah: ArrayLike) -> NDArray[np.float64]:
    """Convert (N, 4) (center x, center y, w/h, h) boxes to xyxy."""
    b = np.asarray(xyah, dtype=np.float64).reshape(-1, 4)
    half = b[:, 2:4].copy()
    half[:, 0] *= b[:, 3]  # (w, h) = (a * h, h)
    half *= 0.5
    return np.concatenate([b[:, :2] - half, b[:, :2] + half], axis=1)


def iou_matrix(a: ArrayLike, b: ArrayLike) -> NDArray[np.float64]:
    """Intersection over union of every pair of xyxy boxes.

    Args:
        a: (T, 4) xyxy boxes.
        b: (N, 4) xyxy boxes.

    Returns:
        (T, N) float64 IoU in [0, 1]; 0 where the union is empty.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    wh = np.minimum(a[:, None, 2:], b[None, :, 2:]) - np.maximum(a[:, None, :2], b[None, :, :2])
    np.maximum(wh, 0.0, out=wh)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def iou_pairs(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """IoU of row-aligned pairs of xyxy boxes: ``iou_matrix(a, b)`` diagonal, for (P, 4) inputs.

    The same arithmetic as :func:`iou_matrix`, so the values are identical.
    """
    wh = np.minimum(a[:, 2:], b[:, 2:]) - np.maximum(a[:, :2], b[:, :2])
    np.maximum(wh, 0.0, out=wh)
    inter = wh[:, 0] * wh[:, 1]
    union = ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
             + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter)
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def validate_xyxy(boxes: ArrayLike, name: str = "boxes") -> NDArray[np.float64]:
    """Return boxes as a (N, 4) float64 array, or raise naming what is wrong.

    Raises:
        InputError: wrong shape, a NaN/inf value, or a box with zero or
            negative width or height (the first offending row is named).
    """
    b = np.asarray(boxes, dtype=np.float64)
    if b.ndim == 1 and b.size == 0:
        b = b.reshape(0, 4)
    if b.ndim != 2 or b.shape[1] != 4:
        raise InputError(f"{name} must have shape (N, 4) in xyxy format, got shape {b.shape}")
    if np.isfinite(b).all() and (b[:, 2:] > b[:, :2]).all():  # the common case, in 2 passes
        return b
    bad = ~np.isfinite(b).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"{name}[{i}] contains NaN or inf: {b[i].tolist()}")
    bad = (b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{name}[{i}] has zero or negative width/height (xyxy expected): {b[i].tolist()}"
        )
    return b
