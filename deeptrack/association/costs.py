"""Cost matrices between T tracks (rows) and N detections (columns); lower is better."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from deeptrack.association.assign import GATED
from deeptrack.boxes import iou_matrix

__all__ = ["GATED", "cosine_cost", "iou_cost", "l2_normalize"]


def iou_cost(track_boxes: NDArray[np.float64], det_boxes: NDArray[np.float64]) -> NDArray:
    """Return (T, N) ``1 - IoU`` between xyxy track and detection boxes."""
    return 1.0 - iou_matrix(track_boxes, det_boxes)


def cosine_cost(a: NDArray[np.float32], b: NDArray[np.float32]) -> NDArray[np.float32]:
    """Return (T, N) cosine distance ``1 - a.b`` between rows of unit vectors (T, D) and (N, D)."""
    return 1.0 - a @ b.T


def l2_normalize(x: NDArray, name: str = "embeddings") -> NDArray[np.float32]:
    """Return the rows of (N, D) ``x`` scaled to unit length, as float32.

    Raises:
        ValueError: a row has zero length, so it has no direction to compare,
            or contains NaN or inf.
    """
    x = np.asarray(x, dtype=np.float32)
    sq = np.einsum("nd,nd->n", x, x)
    if not ((sq > 0).all() and np.isfinite(sq).all()):
        bad = ~np.isfinite(x).all(axis=1)
        if bad.any():
            raise ValueError(f"{name}[{int(np.flatnonzero(bad)[0])}] contains NaN or inf")
        scale = np.abs(x).max(axis=1, keepdims=True)
        if (scale == 0).any():
            i = int(np.flatnonzero(scale == 0)[0])
            raise ValueError(f"{name}[{i}] is the zero vector; it has no direction to compare")
        # Squares below float32's range vanish, or above it overflow: rescale first.
        x = x / scale
        sq = np.einsum("nd,nd->n", x, x)
    return x / np.sqrt(sq)[:, None]
