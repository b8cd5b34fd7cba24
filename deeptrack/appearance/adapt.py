"""Online, causal adaptation of a sequence's appearance vectors.

Features from a network trained elsewhere share a large common direction
within one sequence (the scene, the light, the detector's framing), which
squeezes every cosine distance towards 0 and hides the part that tells
identities apart. Two adaptations, learnt from the sequence as it runs
(this frame and the ones before it, never later ones):

- ``centre``: subtract the running mean of every vector seen so far, then
  re-normalise;
- ``centre_scale``: also weight each dimension by how much more it varies
  across the sequence's objects than within one track (a diagonal form of
  LDA): ``w_d = sqrt(total variance_d / within-track variance_d)``, the
  within-track part learnt from consecutive vectors of the tracks as they
  form (the tracker reports them).

Safeguards while evidence is scarce: the mean enters with weight
``n / (n + prior)`` after ``n`` vectors, and the weights are shrunk towards
1 by ``m / (m + prior)`` after ``m`` within-track differences, then clipped
to ``[1 / max_weight, max_weight]`` and scaled to mean 1.

Vectors already stored in a track's memory keep the transform of the frame
they were stored on; the transform settles within a few hundred vectors, and
the association's calibrated evidence (:mod:`deeptrack.association.calibration`)
is learnt on the same stored vectors. Cost per frame: O(N D) for N
detections of dimension D (a mean update, a subtraction, a scaling).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from deeptrack.appearance.pooling import l2_normalize
from deeptrack.types import AdaptationMode

__all__ = ["OnlineAdapter"]


class OnlineAdapter:
    """Running mean-centring (and diagonal within-track scaling) of unit vectors.

    Args:
        mode: :class:`~deeptrack.types.AdaptationMode` (or its name).
        prior: pseudo-count of the safeguards (vectors for the mean,
            within-track differences for the weights).
        max_weight: largest weight (and inverse of the smallest) of a dimension.
    """

    def __init__(self, mode: AdaptationMode | str = AdaptationMode.CENTRE, prior: float = 30.0,
                 max_weight: float = 4.0) -> None:
        self.mode = AdaptationMode(mode)
        if not (prior >= 0 and max_weight >= 1):
            raise ValueError(f"prior >= 0 and max_weight >= 1 expected, got {prior}, {max_weight}")
        self.prior = prior
        self.max_weight = max_weight
        self.reset()

    def reset(self) -> None:
        """Forget the sequence."""
        self._n = 0
        self._sum: NDArray[np.float64] | None = None
        self._sq: NDArray[np.float64] | None = None  # sum of squares, for the total variance
        self._m = 0
        self._within: NDArray[np.float64] | None = None  # sum of squared within-track steps

    @property
    def count(self) -> int:
        """Vectors seen so far."""
        return self._n

    def __call__(self, features: NDArray[np.float32]) -> NDArray[np.float32]:
        """Record this frame's (N, D) unit vectors, then return them adapted (unit rows)."""
        if self.mode is AdaptationMode.NONE or len(features) == 0:
            return features
        x = np.asarray(features, np.float64)
        if self._sum is None:
            self._sum = np.zeros(x.shape[1])
            self._sq = np.zeros(x.shape[1])
        self._n += len(x)
        self._sum += x.sum(axis=0)
        self._sq += np.einsum("nd,nd->d", x, x)
        mean = self._sum / self._n
        out = x - (self._n / (self._n + self.prior)) * mean
        if self.mode is AdaptationMode.CENTRE_SCALE:
            out *= self.weights()
        return l2_normalize(out.astype(np.float32))

    def observe(self, before: NDArray[np.float32], after: NDArray[np.float32]) -> None:
        """Record within-track steps: row k of ``before`` and ``after`` are one track's
        raw vectors on its previous and current match (``centre_scale`` only)."""
        if self.mode is not AdaptationMode.CENTRE_SCALE or len(before) == 0:
            return
        d = np.asarray(after, np.float64) - np.asarray(before, np.float64)
        if self._within is None:
            self._within = np.zeros(d.shape[1])
        # A step is the difference of two draws: its variance is twice the within-track one.
        self._within += 0.5 * np.einsum("nd,nd->d", d, d)
        self._m += len(d)

    def weights(self) -> NDArray[np.float64]:
        """The current per-dimension weights (all 1 until within-track steps are seen)."""
        if self._within is None or self._m == 0 or self._n < 2 or self._sq is None:
            return np.ones(0 if self._sq is None else len(self._sq))
        mean = self._sum / self._n
        total = np.maximum(self._sq / self._n - mean * mean, 0.0)
        within = self._within / self._m
        ratio = np.sqrt((total + 1e-12) / (within + 1e-12))
        ratio /= ratio.mean()
        shrink = self._m / (self._m + self.prior)
        w = np.clip(1.0 + shrink * (ratio - 1.0), 1.0 / self.max_weight, self.max_weight)
        return w / w.mean()
