"""Colours of track ids: stable across frames, runs and files, and far apart for nearby ids.

Hues step by the golden ratio of a turn, so ids ``k`` and ``k + 1`` (trackers hand ids out
in order, so neighbours in a scene often have neighbouring ids) land about 222 degrees apart,
and any few consecutive ids spread over the circle. Brightness alternates in a slower cycle
to separate the ids whose hues come close again.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["id_colours"]

_GOLDEN = (5**0.5 - 1) / 2
_SATURATION = 0.8
_VALUES = (1.0, 0.72)


def id_colours(ids: ArrayLike) -> NDArray[np.uint8]:
    """Return the colour of each track id.

    Args:
        ids: (N,) non-negative integer ids.

    Returns:
        (N, 3) uint8 RGB; the same id always gets the same colour.
    """
    ids = np.asarray(ids, np.int64).reshape(-1)
    hue = (ids * _GOLDEN) % 1.0
    value = np.where((ids // 5) % 2 == 0, *_VALUES)
    return (_hsv_to_rgb(hue, _SATURATION, value) * 255 + 0.5).astype(np.uint8)


def _hsv_to_rgb(h: NDArray[np.float64], s: float, v: NDArray[np.float64]) -> NDArray[np.float64]:
    """(N,) hue in [0, 1), saturation, (N,) value -> (N, 3) RGB in [0, 1]."""
    sector = np.floor(h * 6.0)
    f = h * 6.0 - sector
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    rgb = {0: (v, t, p), 1: (q, v, p), 2: (p, v, t), 3: (p, q, v), 4: (t, p, v), 5: (v, p, q)}
    out = np.empty((len(h), 3))
    for k, (r, g, b) in rgb.items():
        m = sector == k
        out[m] = np.stack([r[m], g[m], b[m]], axis=1)
    return out
