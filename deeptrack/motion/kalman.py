"""Constant-velocity Kalman filter in xyah space (DeepSORT, Wojke et al. 2017, sec. 2.1).

State: ``(cx, cy, a, h, vx, vy, va, vh)``; measurement: ``(cx, cy, a, h)`` where
``a = w / h``. Process and measurement noise scale with the box height, so the
filter behaves the same for near and far objects.

Two engines compute the same maths on stacked states ``mean (T, 8)``,
``cov (T, 8, 8)``:

- :class:`BatchedKalman` vectorises predict/project/update over all tracks
  (the per-frame hot path);
- :class:`FilterpyKalman` runs ``filterpy.kalman.KalmanFilter`` track by
  track. It is the reference: the tests prove the batched engine equals it
  step for step to float precision, and the tracker can run on either.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

_NDIM = 4
#: Measurement matrix H: picks (cx, cy, a, h) from the 8-d state.
H = np.hstack([np.eye(_NDIM), np.zeros((_NDIM, _NDIM))])
#: Transition matrix F for one frame (dt = 1): position += velocity.
F = np.eye(2 * _NDIM)
F[:_NDIM, _NDIM:] = np.eye(_NDIM)


class KalmanModel:
    """The noise model shared by both engines.

    Args:
        std_weight_position: position noise as a fraction of the box height.
        std_weight_velocity: velocity noise as a fraction of the box height.
    """

    def __init__(self, std_weight_position: float = 1 / 20, std_weight_velocity: float = 1 / 160):
        self.std_weight_position = std_weight_position
        self.std_weight_velocity = std_weight_velocity

    def initiate(self, xyah: NDArray[np.float64]) -> tuple[NDArray, NDArray]:
        """Create states from unassociated measurements.

        Args:
            xyah: (N, 4) measurements.

        Returns:
            mean (N, 8) with zero velocity, cov (N, 8, 8) diagonal.
        """
        xyah = np.asarray(xyah, dtype=np.float64).reshape(-1, _NDIM)
        n = len(xyah)
        mean = np.concatenate([xyah, np.zeros((n, _NDIM))], axis=1)
        h = xyah[:, 3]
        wp, wv = 2 * self.std_weight_position * h, 10 * self.std_weight_velocity * h
        std = np.stack([wp, wp, np.full(n, 1e-2), wp, wv, wv, np.full(n, 1e-5), wv], axis=1)
        cov = np.zeros((n, 8, 8))
        idx = np.arange(8)
        cov[:, idx, idx] = std**2
        return mean, cov

    def process_noise(self, mean: NDArray[np.float64]) -> NDArray[np.float64]:
        """Return (T, 8) diagonal of Q for states ``mean`` (T, 8), scaled by their heights."""
        h = mean[:, 3]
        n = len(mean)
        p, v = self.std_weight_position * h, self.std_weight_velocity * h
        std = np.stack([p, p, np.full(n, 1e-2), p, v, v, np.full(n, 1e-5), v], axis=1)
        return std**2

    def measurement_noise(self, mean: NDArray[np.float64]) -> NDArray[np.float64]:
        """Return (T, 4) diagonal of R for states ``mean`` (T, 8), scaled by their heights."""
        p = self.std_weight_position * mean[:, 3]
        std = np.stack([p, p, np.full(len(mean), 1e-1), p], axis=1)
        return std**2


class BatchedKalman(KalmanModel):
    """Kalman predict/project/update vectorised over T tracks."""

    def predict(self, mean: NDArray, cov: NDArray) -> tuple[NDArray, NDArray]:
        """Run one prediction step: ``x = F x``, ``P = F P F^T + Q``.

        Args:
            mean: (T, 8) states.
            cov: (T, 8, 8) covariances.

        Returns:
            The predicted (mean, cov), new arrays.
        """
        q = self.process_noise(mean)
        mean = mean @ F.T
        cov = F @ cov @ F.T
        idx = np.arange(8)
        cov[:, idx, idx] += q
        return mean, cov

    def project(self, mean: NDArray, cov: NDArray) -> tuple[NDArray, NDArray]:
        """Project states to measurement space.

        Returns:
            (T, 4) projected means and (T, 4, 4) innovation covariances
            ``S = H P H^T + R``.
        """
        r = self.measurement_noise(mean)
        s = cov[:, :_NDIM, :_NDIM].copy()
        idx = np.arange(_NDIM)
        s[:, idx, idx] += r
        return mean[:, :_NDIM].copy(), s

    def update(self, mean: NDArray, cov: NDArray, xyah: NDArray) -> tuple[NDArray, NDArray]:
        """Correct T states with their T associated measurements.

        Uses the Joseph form ``P = (I - K H) P (I - K H)^T + K R K^T`` (as
        filterpy does), which keeps P symmetric positive definite.

        Args:
            mean: (T, 8) predicted states.
            cov: (T, 8, 8) predicted covariances.
            xyah: (T, 4) measurements.

        Returns:
            The corrected (mean, cov), new arrays.
        """
        r = self.measurement_noise(mean)
        proj, s = self.project(mean, cov)
        pht = cov[:, :, :_NDIM]  # P H^T
        # K = P H^T S^-1, via a solve on the symmetric S: K^T = S^-1 (P H^T)^T.
        gain = np.linalg.solve(s, np.swapaxes(pht, 1, 2)).swapaxes(1, 2)
        mean = mean + np.einsum("tij,tj->ti", gain, xyah - proj)
        i_kh = np.broadcast_to(np.eye(8), cov.shape).copy()
        i_kh[:, :, :_NDIM] -= gain
        krk = np.einsum("tij,tj,tkj->tik", gain, r, gain)
        cov = i_kh @ cov @ np.swapaxes(i_kh, 1, 2) + krk
        return mean, cov


class FilterpyKalman(KalmanModel):
    """The same filter run track by track with ``filterpy.kalman.KalmanFilter`` (reference)."""

    def _filter(self, mean: NDArray, cov: NDArray):
        from filterpy.kalman import KalmanFilter

        kf = KalmanFilter(dim_x=8, dim_z=_NDIM)
        kf.F = F.copy()
        kf.H = H.copy()
        kf.x = mean.reshape(8, 1).copy()
        kf.P = cov.copy()
        return kf

    def predict(self, mean: NDArray, cov: NDArray) -> tuple[NDArray, NDArray]:
        """Run one prediction step per track with filterpy; see :meth:`BatchedKalman.predict`."""
        q = self.process_noise(mean)
        out_m, out_c = np.empty_like(mean), np.empty_like(cov)
        for i in range(len(mean)):
            kf = self._filter(mean[i], cov[i])
            kf.predict(Q=np.diag(q[i]))
            out_m[i], out_c[i] = kf.x.ravel(), kf.P
        return out_m, out_c

    def project(self, mean: NDArray, cov: NDArray) -> tuple[NDArray, NDArray]:
        """Project states to measurement space; see :meth:`BatchedKalman.project`."""
        r = self.measurement_noise(mean)
        s = np.stack([H @ cov[i] @ H.T + np.diag(r[i]) for i in range(len(mean))]) if len(
            mean) else np.zeros((0, _NDIM, _NDIM))
        return mean @ H.T, s

    def update(self, mean: NDArray, cov: NDArray, xyah: NDArray) -> tuple[NDArray, NDArray]:
        """Correct states per track with filterpy; see :meth:`BatchedKalman.update`."""
        r = self.measurement_noise(mean)
        out_m, out_c = np.empty_like(mean), np.empty_like(cov)
        for i in range(len(mean)):
            kf = self._filter(mean[i], cov[i])
            kf.update(xyah[i].reshape(_NDIM, 1), R=np.diag(r[i]))
            out_m[i], out_c[i] = kf.x.ravel(), kf.P
        return out_m, out_c
