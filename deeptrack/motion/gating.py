"""Mahalanobis gating (DeepSORT eq. 1-2): which detections a track's motion admits."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def chi2_quantile(q: float = 0.95, dof: int = 4) -> float:
    """Return the ``q`` quantile of the chi-square distribution with ``dof`` degrees of freedom."""
    from scipy.stats import chi2

    return float(chi2.ppf(q, dof))


def mahalanobis_sq(
    proj_mean: NDArray[np.float64], proj_cov: NDArray[np.float64], xyah: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Squared Mahalanobis distance of every detection to every track's projected state.

    Args:
        proj_mean: (T, 4) projected track means (xyah).
        proj_cov: (T, 4, 4) innovation covariances S, or their (T, 4)
            diagonals when S is diagonal (the batched engine's case).
        xyah: (N, 4) detections.

    Returns:
        (T, N) float64 distances ``d^T S^-1 d``.
    """
    if len(proj_mean) == 0 or len(xyah) == 0:
        return np.zeros((len(proj_mean), len(xyah)))
    if proj_cov.ndim == 2:  # diagonal S: a sum over the four coordinates of (T, N) terms
        out = np.zeros((len(proj_mean), len(xyah)))
        for k in range(proj_mean.shape[1]):
            d = xyah[None, :, k] - proj_mean[:, k, None]
            out += d * d / proj_cov[:, k, None]
        return out
    diff = xyah[None, :, :] - proj_mean[:, None, :]  # (T, N, 4)
    # Cholesky: S = L L^T, so d^T S^-1 d = |L^-1 d|^2; solve for all N at once per track.
    chol = np.linalg.cholesky(proj_cov)
    z = np.linalg.solve(chol, np.swapaxes(diff, 1, 2))  # (T, 4, N)
    return np.einsum("tin,tin->tn", z, z)
