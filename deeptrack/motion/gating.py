"""Mahalanobis gating (DeepSORT eq. 1-2): which detections a track's motion admits."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from deeptrack._arrays import nonzero_2d


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
        # (A (T, N, 4) expression is slower: numpy's loops over a length-4 axis are.)
        out = np.zeros((len(proj_mean), len(xyah)))
        for k in range(proj_mean.shape[1]):
            d = xyah[None, :, k] - proj_mean[:, k, None]
            d *= d
            d /= proj_cov[:, k, None]
            out += d
        return out
    diff = xyah[None, :, :] - proj_mean[:, None, :]  # (T, N, 4)
    # Cholesky: S = L L^T, so d^T S^-1 d = |L^-1 d|^2; solve for all N at once per track.
    chol = np.linalg.cholesky(proj_cov)
    z = np.linalg.solve(chol, np.swapaxes(diff, 1, 2))  # (T, 4, N)
    return np.einsum("tin,tin->tn", z, z)


_EPS = np.finfo(np.float64).eps
#: Below this many (track, detection) pairs the gate evaluates the dense formula.
_DENSE_BELOW = 4096


def gate_pairs(
    proj_mean: NDArray[np.float64],
    proj_cov: NDArray[np.float64],
    xyah: NDArray[np.float64],
    threshold: float,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The (track, detection) pairs whose squared Mahalanobis distance is within ``threshold``.

    Returns exactly the pairs where ``mahalanobis_sq(...) <= threshold``, in
    row-major order, without evaluating the four-term distance on the whole
    (T, N) grid when S is diagonal: ``d = sum_k (x_k - m_k)^2 / s_k`` is
    expanded into one (T, 9) x (9, N) product, which overestimates or
    underestimates ``d`` by at most a rounding bound computed per track;
    pairs within that bound of the gate are then recomputed with the exact
    formula, so the decision is the same as the dense computation's.

    Args:
        proj_mean: (T, 4) projected means.
        proj_cov: (T, 4) diagonals of S, or (T, 4, 4) full matrices.
        xyah: (N, 4) detections.
        threshold: the gate (chi-square quantile).

    Returns:
        ``(rows, cols)``: int64 indices of the admissible pairs.
    """
    t, n = len(proj_mean), len(xyah)
    if t == 0 or n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if proj_cov.ndim == 3 or t * n <= _DENSE_BELOW:  # small: the dense formula is cheaper
        return nonzero_2d(mahalanobis_sq(proj_mean, proj_cov, xyah) <= threshold)
    w = 1.0 / proj_cov
    mw = proj_mean * w
    x2 = xyah * xyah
    a = np.concatenate([w, -2.0 * mw, np.einsum("tk,tk->t", mw, proj_mean)[:, None]], axis=1)
    b = np.concatenate([x2, xyah, np.ones((n, 1))], axis=1).T.copy()
    approx = a @ b
    # Rounding error of the expansion: the sum of the absolute values of its
    # terms, at most 2 * sum_k (x_k^2 + m_k^2) / s_k, times ~15 eps (inputs,
    # products and a 9-term sum, in any order); the exact formula's own
    # rounding adds ~8 eps * threshold. Twice both is the margin.
    big = ((x2.max(axis=0)[None, :] + proj_mean * proj_mean) * w).sum(axis=1)
    bound = _EPS * (64.0 * big + 16.0 * threshold)
    rows, cols = nonzero_2d(approx <= (threshold + bound)[:, None])
    if len(rows) == 0:
        return rows, cols
    m, s, x = proj_mean[rows], proj_cov[rows], xyah[cols]
    exact = np.zeros(len(rows))
    for k in range(4):  # the same operations, in the same order, as mahalanobis_sq
        d = x[:, k] - m[:, k]
        d *= d
        d /= s[:, k]
        exact += d
    ok = exact <= threshold
    return rows[ok], cols[ok]
