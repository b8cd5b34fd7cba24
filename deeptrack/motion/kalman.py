"""Constant-velocity Kalman filter in xyah space (DeepSORT, Wojke et al. 2017, sec. 2.1).

State: ``(cx, cy, a, h, vx, vy, va, vh)``; measurement: ``(cx, cy, a, h)`` where
``a = w / h``. Process and measurement noise scale with the box height, so the
filter behaves the same for near and far objects.

Two engines compute the same maths on stacked states ``mean (T, 8)`` and
their covariances:

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
#: Noise standard deviations that do not scale with the height: the aspect
#: ratio's (and its velocity's), as in DeepSORT. Adding 0 to the scaled ones
#: leaves them exact.
_CONST_STD = np.array([0, 0, 1e-2, 0, 0, 0, 1e-5, 0])
_CONST_STD_MEASUREMENT = np.array([0, 0, 1e-1, 0])


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
        mean, var = self._initiate(xyah)
        cov = np.zeros((len(mean), 8, 8))
        idx = np.arange(8)
        cov[:, idx, idx] = var
        return mean, cov

    def _initiate(self, xyah: NDArray[np.float64]) -> tuple[NDArray, NDArray]:
        """Return the (N, 8) means and (N, 8) diagonal initial variances."""
        xyah = np.asarray(xyah, dtype=np.float64).reshape(-1, _NDIM)
        mean = np.zeros((len(xyah), 2 * _NDIM))
        mean[:, :_NDIM] = xyah
        wp, wv = 2 * self.std_weight_position, 10 * self.std_weight_velocity
        std = xyah[:, 3:4] * np.array([wp, wp, 0, wp, wv, wv, 0, wv]) + _CONST_STD
        return mean, std * std

    def process_noise(self, mean: NDArray[np.float64]) -> NDArray[np.float64]:
        """Return (T, 8) diagonal of Q for states ``mean`` (T, 8), scaled by their heights."""
        p, v = self.std_weight_position, self.std_weight_velocity
        std = mean[:, 3:4] * np.array([p, p, 0, p, v, v, 0, v]) + _CONST_STD
        return std * std

    def measurement_noise(self, mean: NDArray[np.float64]) -> NDArray[np.float64]:
        """Return (T, 4) diagonal of R for states ``mean`` (T, 8), scaled by their heights."""
        p = self.std_weight_position
        std = mean[:, 3:4] * np.array([p, p, 0, p]) + _CONST_STD_MEASUREMENT
        return std * std


class BatchedKalman(KalmanModel):
    """Kalman predict/project/update vectorised over T tracks, in compact form.

    F, H and the (diagonal) noise matrices never couple two of the four
    measured coordinates, and the initial covariance is diagonal, so the
    8x8 covariance stays made of four independent 2x2 blocks, one per
    coordinate (position, velocity). This engine stores just those blocks,
    as ``cov (T, 3, 4)`` = (var position, cov position-velocity, var
    velocity) per coordinate, and every step is a few elementwise array
    operations; the innovation covariance S is diagonal. The arithmetic is
    the same as filterpy's on the full matrices (tests check it step for
    step); :func:`to_full` expands a compact covariance.
    """

    cov_shape = (3, _NDIM)

    def initiate(self, xyah: NDArray[np.float64]) -> tuple[NDArray, NDArray]:
        """Create states from measurements; cov is compact (N, 3, 4)."""
        mean, var = self._initiate(xyah)
        cov = np.zeros((len(mean), 3, _NDIM))
        cov[:, 0] = var[:, :_NDIM]
        cov[:, 2] = var[:, _NDIM:]
        return mean, cov

    def predict(self, mean: NDArray, cov: NDArray) -> tuple[NDArray, NDArray]:
        """Run one prediction step: ``x = F x``, ``P = F P F^T + Q``.

        Args:
            mean: (T, 8) states.
            cov: (T, 3, 4) compact covariances.

        Returns:
            The predicted (mean, cov), new arrays.
        """
        q = self.process_noise(mean)
        pp, pv, vv = cov[:, 0], cov[:, 1], cov[:, 2]
        new_mean = mean.copy()
        new_mean[:, :_NDIM] += mean[:, _NDIM:]
        new_cov = np.empty_like(cov)
        new_cov[:, 0] = pp + 2 * pv + vv + q[:, :_NDIM]
        new_cov[:, 1] = pv + vv
        new_cov[:, 2] = vv + q[:, _NDIM:]
        return new_mean, new_cov

    def project(self, mean: NDArray, cov: NDArray) -> tuple[NDArray, NDArray]:
        """Project states to measurement space.

        Returns:
            (T, 4) projected means and (T, 4) diagonals of the innovation
            covariances ``S = H P H^T + R``.
        """
        return mean[:, :_NDIM].copy(), cov[:, 0] + self.measurement_noise(mean)

    def update(self, mean: NDArray, cov: NDArray, xyah: NDArray) -> tuple[NDArray, NDArray]:
        """Correct T states with their T associated measurements.

        Uses the Joseph form ``P = (I - K H) P (I - K H)^T + K R K^T`` (as
        filterpy does), written out for each 2x2 block.

        Args:
            mean: (T, 8) predicted states.
            cov: (T, 3, 4) compact predicted covariances.
            xyah: (T, 4) measurements.

        Returns:
            The corrected (mean, cov), new arrays.
        """
        r = self.measurement_noise(mean)
        pp, pv, vv = cov[:, 0], cov[:, 1], cov[:, 2]
        s = pp + r
        k1, k2 = pp / s, pv / s  # Kalman gain for position and velocity
        innovation = xyah - mean[:, :_NDIM]
        new_mean = np.concatenate([mean[:, :_NDIM] + k1 * innovation,
                                   mean[:, _NDIM:] + k2 * innovation], axis=1)
        one_k1 = 1.0 - k1
        new_cov = np.empty_like(cov)
        new_cov[:, 0] = one_k1 * one_k1 * pp + k1 * k1 * r
        new_cov[:, 1] = one_k1 * (pv - k2 * pp) + k1 * k2 * r
        new_cov[:, 2] = vv - 2 * k2 * pv + k2 * k2 * pp + k2 * k2 * r
        return new_mean, new_cov


def to_compact(full: NDArray[np.float64]) -> NDArray[np.float64]:
    """Take the (T, 3, 4) per-coordinate blocks of (T, 8, 8) covariances."""
    i = np.arange(_NDIM)
    return np.stack([full[:, i, i], full[:, i, i + _NDIM], full[:, i + _NDIM, i + _NDIM]], axis=1)


def to_full(compact: NDArray[np.float64]) -> NDArray[np.float64]:
    """Expand (T, 3, 4) compact covariances to (T, 8, 8)."""
    i = np.arange(_NDIM)
    full = np.zeros((len(compact), 8, 8))
    full[:, i, i] = compact[:, 0]
    full[:, i, i + _NDIM] = compact[:, 1]
    full[:, i + _NDIM, i] = compact[:, 1]
    full[:, i + _NDIM, i + _NDIM] = compact[:, 2]
    return full


class FilterpyKalman(KalmanModel):
    """The same filter run track by track with ``filterpy.kalman.KalmanFilter`` (reference).

    Covariances are full (T, 8, 8) matrices and S is (T, 4, 4).
    """

    cov_shape = (8, 8)

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
