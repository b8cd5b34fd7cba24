"""Costs between T tracks (rows) and N detections (columns); lower is better."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from deeptrack.boxes import iou_matrix

__all__ = ["GATED", "iou_cost"]

#: Cost of an inadmissible pair. Finite, because scipy's linear_sum_assignment
#: refuses rows that are all ``inf``, and far above any real cost (cosine and
#: IoU distances lie in [0, 2]).
GATED = 1e5


def iou_cost(track_boxes: NDArray[np.float64], det_boxes: NDArray[np.float64]) -> NDArray:
    """Return the (T, N) ``1 - IoU`` between (T, 4) and (N, 4) xyxy boxes."""
    return 1.0 - iou_matrix(track_boxes, det_boxes)
