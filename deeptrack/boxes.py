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


#: Largest absolute pixel coordinate accepted (10 million pixels). Beyond it the Kalman
#: filter's squared terms lose every digit of the box, and far beyond it they overflow.
MAX_COORD = 1e7

#: Smallest width and height accepted, in pixels. Far below any real box, yet wide enough
#: to survive a round trip through a MOTChallenge text file at any coordinate up to
#: ``MAX_COORD`` (float64 spacing there is 1.9e-9 px).
MIN_SIZE = 1e-8


def box_ok(b: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Return which rows of (N, 4) xyxy boxes are valid (see :func:`validate_xyxy`)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return ((np.abs(b) <= MAX_COORD).all(axis=1)  # False for NaN and inf too
                & (b[:, 2:] - b[:, :2] >= MIN_SIZE).all(axis=1))


def box_problem(b: NDArray[np.float64]) -> tuple[int, str] | None:
    """Return ``(row, what is wrong)`` of the first invalid xyxy box in ``b``, or None.

    The rules of :func:`validate_xyxy`, for callers that report the row their own way
    (the MOTChallenge readers name ``path:line``).

    Args:
        b: (N, 4) float64 xyxy boxes.
    """
    ok = box_ok(b)
    if ok.all():
        return None
    i = int(np.flatnonzero(~ok)[0])
    with np.errstate(invalid="ignore", over="ignore"):
        wh = b[:, 2:] - b[:, :2]
    if not np.isfinite(b[i]).all():
        return i, "contains NaN or inf"
    if not (np.abs(b[i]) <= MAX_COORD).all():
        return i, f"has a coordinate beyond +-{MAX_COORD:g} pixels"
    if not (wh[i] > 0).all():
        return i, "has zero or negative width/height (xyxy expected)"
    return i, f"has a width or height below {MIN_SIZE:g} pixels"


def validate_xyxy(boxes: ArrayLike, name: str = "boxes") -> NDArray[np.float64]:
    """Return boxes as a (N, 4) float64 array, or raise naming what is wrong.

    A valid box is finite, has every coordinate within ``+-MAX_COORD`` pixels, and a
    width and height of at least ``MIN_SIZE`` pixels.

    Raises:
        InputError: wrong shape or not numbers, a NaN/inf value, a coordinate beyond
            ``MAX_COORD``, or a width or height below ``MIN_SIZE`` (zero or negative
            included); the first offending row is named.
    """
    if isinstance(boxes, np.ndarray) and boxes.dtype == np.float64:
        b = boxes
    else:
        try:
            b = np.asarray(boxes)
        except (TypeError, ValueError) as e:
            raise InputError(f"{name} must be numbers in an (N, 4) array: {e}") from None
        if b.dtype.kind not in "biuf" and b.size:
            raise InputError(f"{name} must be numeric (real numbers), got dtype {b.dtype}")
        b = b.astype(np.float64, copy=False)
    if b.ndim == 1 and b.size == 0:
        b = b.reshape(0, 4)
    if b.ndim != 2 or b.shape[1] != 4:
        raise InputError(f"{name} must have shape (N, 4) in xyxy format, got shape {b.shape}")
    # The common case in two passes (a NaN fails the first comparison, as an inf does);
    # min and max instead of abs for long arrays (files): no (N, 4) temporary.
    if not b.size:
        return b
    bounded = (np.abs(b).max() <= MAX_COORD if len(b) < 4096
               else -MAX_COORD <= b.min() and b.max() <= MAX_COORD)
    if bounded and (b[:, 2:] - b[:, :2]).min() >= MIN_SIZE:
        return b
    problem = box_problem(b)
    if problem is not None:
        i, what = problem
        raise InputError(f"{name}[{i}] {what}: {b[i].tolist()}")
    return b
