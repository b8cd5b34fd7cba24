"""Colours of track ids: stable across frames, runs and files, and far apart for nearby ids.

Hues step by the golden ratio of a turn, so ids ``k`` and ``k + 1`` (trackers hand ids out
in order, so neighbours in a scene often have neighbouring ids) land about 222 degrees apart,
and any few consecutive ids spread over the circle. Hues come back close after 5, 8, 13, 21...
ids (Fibonacci numbers), so saturation alternates from id to id and brightness takes three
levels in blocks of four: of the schemes of this kind tried, this one keeps every pair of ids
less than 25 apart furthest apart (at least 43 of 255 in some channel).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["id_colours"]

_GOLDEN = (5**0.5 - 1) / 2
_SATURATIONS = np.array([0.85, 0.45])
_VALUES = np.array([1.0, 0.8, 0.6])


def id_colours(ids: ArrayLike) -> NDArray[np.uint8]:
    """Return the colour of each track id.

    Args:
        ids: (N,) non-negative integer ids.

    Returns:
        (N, 3) uint8 RGB; the same id always gets the same colour.
    """
    ids = np.asarray(ids, np.int64).reshape(-1)
    hue = (ids * _GOLDEN) % 1.0
    saturation = _SATURATIONS[ids % 2]
    value = _VALUES[(ids // 4) % 3]
    return (_hsv_to_rgb(hue, saturation, value) * 255 + 0.5).astype(np.uint8)


def _hsv_to_rgb(h: NDArray[np.float64], s: NDArray[np.float64],
                v: NDArray[np.float64]) -> NDArray[np.float64]:
    """(N,) hue in [0, 1), saturation and value in [0, 1] -> (N, 3) RGB in [0, 1]."""
    sector = np.floor(h * 6.0)
    f = h * 6.0 - sector
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    rgb = {0: (v, t, p), 1: (q, v, p), 2: (p, v, t), 3: (p, q, v), 4: (t, p, v), 5: (v, p, q)}
    out = np.empty((len(h), 3))
    for k, (r, g, b) in rgb.items():
        m = sector == k
        out[m] = np.stack([r[m], g[m], b[m]], axis=1)
    return out
