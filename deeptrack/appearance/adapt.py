"""Online, causal adaptation of a sequence's appearance vectors.

Features from a network trained elsewhere share a large common direction
within one sequence (the scene, the light, the detector's framing), which
squeezes every cosine distance towards 0 and hides the part that tells
identities apart. Three adaptations, learnt from the sequence as it runs
(this frame and the ones before it, never later ones):

- ``centre``: subtract the running mean of every vector seen so far, then
  re-normalise;
- ``centre_scale``: also weight each dimension by how much more it varies
  across the sequence's objects than within one track (a diagonal form of
  LDA): ``w_d = sqrt(total variance_d / within-track variance_d)``, the
  within-track part learnt from consecutive vectors of the tracks as they
  form (the tracker reports them);
- ``whiten``: centre, then multiply by ``C_w^{-1/2}``, the inverse square root
  of the within-track covariance (WCCN: within-class covariance
  normalisation), learnt from the same within-track steps. Directions in which
  one object's vector wanders (pose, light, framing) are shrunk and the rest
  kept, with no rotation: the symmetric root is unique, so vectors transformed
  at different times stay comparable. A projection onto discriminant
  directions (LDA, between-scatter from same-frame pairs) was tried first and
  failed for that reason: eigenvectors come back in another basis at each
  refit, so a track's stored vectors and the new ones no longer compare (a
  throwaway probe, not in benchmarks/: its identity AUC fell far below this
  whitening's).

Safeguards while evidence is scarce: the mean enters with weight
``n / (n + prior)`` after ``n`` vectors, and the weights are shrunk towards
1 by ``m / (m + prior)`` after ``m`` within-track differences, then clipped
to ``[1 / max_weight, max_weight]`` and scaled to mean 1. ``whiten`` waits
for ``min_steps`` within-track steps, shrinks the covariance towards a
multiple of the identity by ``max(0.1, min_steps / m)``, and refits only when
the steps have grown by a quarter since the last fit (about 20 refits over a
long sequence), so the transform settles as evidence accumulates.

Vectors already stored in a track's memory keep the transform of the frame
they were stored on; the transform settles within a few hundred vectors, and
the association's calibrated evidence (:mod:`deeptrack.association.calibration`)
is learnt on the same stored vectors (a throwaway probe that re-mapped every
stored vector to the current transform at each refit did not raise IDF1; see
benchmarks/results/adaptation_tracking.md). Cost per frame: O(N D) for N
detections of dimension D (a mean update, a subtraction, a scaling);
``whiten`` adds O((N + M) D^2) for M within-track steps (a DxD product and
scatter update) and, at each refit, an O(D^3) eigendecomposition; it keeps a
DxD matrix, so D is capped at :data:`WHITEN_MAX_DIM`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from deeptrack.appearance.pooling import l2_normalize
from deeptrack.errors import InputError
from deeptrack.types import AdaptationMode

__all__ = ["WHITEN_MAX_DIM", "OnlineAdapter", "check_dimension"]

#: largest vector dimension ``whiten`` accepts (its DxD float64 matrices: 134 MB at 4096)
WHITEN_MAX_DIM = 4096


def check_dimension(mode: AdaptationMode, dim: int) -> None:
    """Raise an ``InputError`` if ``mode`` cannot adapt vectors of dimension ``dim``."""
    if mode is AdaptationMode.WHITEN and dim > WHITEN_MAX_DIM:
        raise InputError(f"adaptation 'whiten' keeps a DxD matrix: vectors of dimension {dim} "
                         f"exceed its {WHITEN_MAX_DIM}; use 'centre', a global pooling mode or "
                         f"head.reduce_dim")


class OnlineAdapter:
    """Running mean-centring (and diagonal within-track scaling) of unit vectors.

    Args:
        mode: :class:`~deeptrack.types.AdaptationMode` (or its name).
        prior: pseudo-count of the safeguards (vectors for the mean,
            within-track differences for the weights).
        max_weight: largest weight (and inverse of the smallest) of a dimension.
        min_steps: within-track steps ``whiten`` waits for before its first fit.
    """

    def __init__(self, mode: AdaptationMode | str = AdaptationMode.CENTRE, prior: float = 30.0,
                 max_weight: float = 4.0, min_steps: int = 50) -> None:
        self.mode = AdaptationMode(mode)
        if not (prior >= 0 and max_weight >= 1 and min_steps >= 1):
            raise ValueError(f"prior >= 0, max_weight >= 1 and min_steps >= 1 expected, got "
                             f"{prior}, {max_weight}, {min_steps}")
        self.prior = prior
        self.max_weight = max_weight
        self.min_steps = int(min_steps)
        self.reset()

    def reset(self) -> None:
        """Forget the sequence."""
        self._n = 0
        self._sum: NDArray[np.float64] | None = None
        self._sq: NDArray[np.float64] | None = None  # sum of squares, for the total variance
        self._m = 0
        self._within: NDArray[np.float64] | None = None  # sum of squared within-track steps
        self._scatter: NDArray[np.float64] | None = None  # whiten: sum of step outer products
        self._m_fit = 0  # steps at the last whitening fit
        self._whitener: NDArray[np.float64] | None = None  # whiten: C_w^{-1/2}, symmetric

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
            check_dimension(self.mode, x.shape[1])
            self._sum = np.zeros(x.shape[1])
            self._sq = np.zeros(x.shape[1])
        self._n += len(x)
        self._sum += x.sum(axis=0)
        self._sq += np.einsum("nd,nd->d", x, x)
        mean = self._sum / self._n
        out = x - (self._n / (self._n + self.prior)) * mean
        if self.mode is AdaptationMode.CENTRE_SCALE:
            out *= self.weights()
        elif self.mode is AdaptationMode.WHITEN:
            self._refit()
            if self._whitener is not None:
                out = out @ self._whitener
        return l2_normalize(out.astype(np.float32))

    def observe(self, before: NDArray[np.float32], after: NDArray[np.float32]) -> None:
        """Record within-track steps: row k of ``before`` and ``after`` are one track's
        raw vectors on its previous and current match (``centre_scale``, ``whiten``)."""
        if self.mode not in (AdaptationMode.CENTRE_SCALE, AdaptationMode.WHITEN) \
                or len(before) == 0:
            return
        d = np.asarray(after, np.float64) - np.asarray(before, np.float64)
        # A step is the difference of two draws: its variance is twice the within-track one.
        if self.mode is AdaptationMode.WHITEN:
            if self._scatter is None:
                self._scatter = np.zeros((d.shape[1], d.shape[1]))
            self._scatter += 0.5 * (d.T @ d)
        else:
            if self._within is None:
                self._within = np.zeros(d.shape[1])
            self._within += 0.5 * np.einsum("nd,nd->d", d, d)
        self._m += len(d)

    def _refit(self) -> None:
        """``whiten``: recompute ``C_w^{-1/2}`` once the steps have grown by a quarter."""
        if self._scatter is None or self._m < self.min_steps or self._m < 1.25 * self._m_fit:
            return
        dim = len(self._scatter)
        cov = self._scatter / self._m
        shrink = max(0.1, self.min_steps / self._m)
        level = np.trace(cov) / dim
        if not level > 0:  # every step was zero: nothing to whiten by
            return
        cov = (1.0 - shrink) * cov + shrink * level * np.eye(dim)
        values, vectors = np.linalg.eigh(cov)
        values = np.maximum(values, shrink * level)  # >= the shrinkage floor, whatever rounding
        # Scaled so that a direction of average within-track spread keeps its length.
        self._whitener = (vectors * np.sqrt(level / values)) @ vectors.T
        self._m_fit = self._m

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
