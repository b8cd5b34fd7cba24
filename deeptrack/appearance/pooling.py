"""Pool (N, C, H, W) RoI feature maps into (N, D) unit appearance vectors.

This module needs numpy only: the tracker pools the RoI maps it is given on
every frame, and must not pull in torch to do so. A torch tensor is accepted
too (it is moved to the CPU and converted); the answer is always numpy.

Modes (:class:`~deeptrack.types.PoolingMode`), for a map of C channels on an
H x W grid:

=================  ==============  =============================================
mode               D               what
=================  ==============  =============================================
avg                C               global average over H x W
max                C               global maximum over H x W
avgmax             2C              ``[avg, max]`` concatenated
gem                C               generalised mean with exponent ``p``
                                   (Radenovic et al. 2018); ``p = 1`` is avg,
                                   ``p -> inf`` tends to max
flatten            C*H*W           the whole map, channel-major (C, H, W order)
maxpool_flatten    C*ceil(H/k)*    k x k max pooling with stride k, ceil mode,
                   ceil(W/k)       then flatten (7 x 7, k = 2 -> 4 x 4)
pyramid            21C             spatial pyramid of 1x1, 2x2 and 4x4 max bins
                                   (He et al. 2014), adaptive bins
=================  ==============  =============================================

Every mode ends with L2 normalisation of each row. A row that pools to the
zero vector (e.g. a RoI lying wholly outside the frame, whose map is all zero)
stays the zero vector instead of becoming NaN; its cosine similarity to every
other vector is then 0, i.e. its cosine distance is 1, the largest a
non-negative feature can have, so appearance alone never matches it.

The flatten modes give large vectors (MobileNetV2's 1280 x 7 x 7 map is 62720
numbers); :class:`RandomProjection` and :class:`PCAReducer` shrink them.
"""

from __future__ import annotations

import math
import numbers
import sys
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deeptrack.errors import ConfigError, InputError
from deeptrack.types import PoolingMode

__all__ = [
    "GEM_EPS",
    "PCAReducer",
    "PoolingMode",
    "RandomProjection",
    "l2_normalize",
    "out_dim",
    "pool",
]

#: GeM clamps its input from below at this value (as in Radenovic et al.'s
#: code) so that the power and root stay defined; negative activations thus
#: count as (almost) zero. Backbones whose maps end in a ReLU are unaffected.
GEM_EPS = 1e-6

#: The pyramid's levels: n x n max bins per level.
PYRAMID_LEVELS = (1, 2, 4)

# Integer exponents up to this are computed by repeated multiplication, which
# is several times faster than np.power with a float exponent.
_MAX_INT_POWER = 16

# Sums of squares above this are far from float32 underflow; below it (or not
# finite) a row is normalised the careful way.
_SAFE_SQ_MIN = 1e-30


def _check_mode(mode: PoolingMode | str) -> PoolingMode:
    try:
        return PoolingMode.parse(mode)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _check_p(p: Any) -> float:
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise ConfigError(f"GeM exponent p = {p!r} must be a real number > 0")
    p = float(p)
    if not (math.isfinite(p) and p > 0):
        raise ConfigError(f"GeM exponent p = {p!r} is out of range: expected a finite value > 0")
    return p


def _check_kernel(kernel: Any) -> int:
    if isinstance(kernel, bool) or not isinstance(kernel, numbers.Integral) or kernel < 1:
        raise ConfigError(f"max-pooling kernel = {kernel!r} must be an integer >= 1")
    return int(kernel)


def out_dim(mode: PoolingMode | str, C: int, H: int, W: int, kernel: int = 2) -> int:
    """Return the length D of the vector :func:`pool` makes from a (C, H, W) map.

    Args:
        mode: a :class:`PoolingMode` or its name.
        C: channels; H, W: the map's height and width (all >= 1).
        kernel: the ``maxpool_flatten`` kernel (and stride).

    Raises:
        ConfigError: unknown mode or bad kernel.
        InputError: a non-positive dimension.
    """
    mode = _check_mode(mode)
    kernel = _check_kernel(kernel)
    for name, v in (("C", C), ("H", H), ("W", W)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise InputError(f"{name} = {v!r} must be an integer >= 1")
    if mode in (PoolingMode.AVG, PoolingMode.MAX, PoolingMode.GEM):
        return C
    if mode is PoolingMode.AVGMAX:
        return 2 * C
    if mode is PoolingMode.FLATTEN:
        return C * H * W
    if mode is PoolingMode.MAXPOOL_FLATTEN:
        return C * (-(-H // kernel)) * (-(-W // kernel))
    return C * sum(n * n for n in PYRAMID_LEVELS)  # PYRAMID


def _to_numpy_maps(maps: Any) -> NDArray[np.floating]:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(maps, torch.Tensor):
        maps = maps.detach().to("cpu")
        if maps.dtype == torch.bfloat16:  # numpy has no bfloat16
            maps = maps.float()
        maps = maps.numpy()
    a = np.asarray(maps)
    if a.ndim != 4:
        raise InputError(f"RoI feature maps must have shape (N, C, H, W), got shape {a.shape}")
    if a.dtype not in (np.float16, np.float32, np.float64):
        raise InputError(
            f"RoI feature maps must be float16, float32 or float64, got dtype {a.dtype}"
        )
    if 0 in a.shape[1:]:
        raise InputError(f"RoI feature maps have an empty dimension: shape {a.shape}")
    # float16 is widened so that sums and powers do not overflow; float64 stays
    # float64 until the end.
    return a.astype(np.float32, copy=False) if a.dtype == np.float16 else a


def l2_normalize(x: NDArray[np.floating]) -> NDArray[np.float32]:
    """Return the rows of a (N, D) array scaled to unit L2 norm, as float32.

    Rows whose sum of squares would underflow or overflow are first divided by
    their largest absolute value, so tiny and huge values still normalise. An
    all-zero row stays all zero (it is not turned into NaN).
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise InputError(f"expected a (N, D) array, got shape {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        return x.astype(np.float32)
    x = x.astype(np.float32, copy=False) if x.dtype != np.float64 else x
    sq = np.einsum("nd,nd->n", x, x)  # einsum raises no overflow warning: inf is handled below
    # Fast path for rows whose sum of squares is a comfortable normal number (the tracker
    # normalises every frame's embeddings: bench_association.py's 30-object rows feel it).
    safe = np.isfinite(sq) & (sq > _SAFE_SQ_MIN)
    if safe.all():
        return (x * (1.0 / np.sqrt(sq))[:, None]).astype(np.float32, copy=False)
    unsafe = ~safe
    scale = np.ones_like(sq)
    np.divide(1.0, np.sqrt(sq), out=scale, where=safe)
    out = x * scale[:, None]
    if unsafe.any():
        rows = x[unsafe]
        peak = np.abs(rows).max(axis=1, keepdims=True)
        rows = rows / np.where(peak > 0, peak, 1.0)
        norm = np.sqrt(np.einsum("nd,nd->n", rows, rows))[:, None]
        out[unsafe] = rows / np.where(norm > 0, norm, 1.0)
    return out.astype(np.float32, copy=False)


def _power(x: NDArray[np.floating], p: float) -> NDArray[np.floating]:
    """x ** p, in place where it can; by repeated squaring for small integer p."""
    if p == int(p) and p <= _MAX_INT_POWER:
        n = int(p)
        result = None
        base = x
        while n:
            if n & 1:
                result = base.copy() if result is None else np.multiply(result, base, out=result)
            n >>= 1
            if n:
                base = base * base
        return result  # type: ignore[return-value]
    return np.power(x, p, out=x)


def _channels_last(maps: NDArray[np.floating]) -> NDArray[np.floating]:
    # (N, H, W, C) copy: spatial maxima become elementwise maxima of contiguous
    # C-vectors, several times faster than reducing the short H x W axes. Always a copy
    # (np.ascontiguousarray would hand back a view of a 1 x 1 map, and GeM works in place).
    return np.array(maps.transpose(0, 2, 3, 1), order="C")


def _mean_hw(maps: NDArray[np.floating]) -> NDArray[np.floating]:
    # Not a BLAS matvec, though one looks faster alone: OpenBLAS's worker
    # threads spin after each call and, on 2 shared cores, slowed this and the
    # numpy work after it from ~2 ms to ~10 ms per frame of 30 maps.
    n, c, h, w = maps.shape
    return maps.reshape(n, c, h * w).mean(axis=2)


def _gem(maps: NDArray[np.floating], p: float) -> NDArray[np.floating]:
    """Generalised mean over H x W of (N, C, H, W) maps clamped at GEM_EPS."""
    n, c, h, w = maps.shape
    x = _channels_last(maps).reshape(n, h * w, c)
    np.maximum(x, GEM_EPS, out=x)
    # Scaling by the per-channel maximum keeps every term in (0, 1] before the
    # power, so a large p cannot overflow, and the largest term is exactly 1,
    # so the mean cannot underflow to zero either.
    peak = x.max(axis=1)
    x /= peak[:, None, :]
    y = _power(x, p)
    return peak * np.power(y.mean(axis=1), 1.0 / p)


def _maxpool(maps: NDArray[np.floating], k: int) -> NDArray[np.floating]:
    """k x k max pooling with stride k, ceil mode (a partial window keeps its valid cells)."""
    x = _channels_last(maps)  # (N, H, W, C)
    cols = x[:, :, 0::k].copy()
    for j in range(1, k):  # window column j of every window at once
        part = x[:, :, j::k]
        np.maximum(cols[:, :, : part.shape[2]], part, out=cols[:, :, : part.shape[2]])
    rows = cols[:, 0::k].copy()
    for j in range(1, k):
        part = cols[:, j::k]
        np.maximum(rows[:, : part.shape[1]], part, out=rows[:, : part.shape[1]])
    return rows.transpose(0, 3, 1, 2)  # (N, C, ceil(H/k), ceil(W/k))


def _adaptive_bins(size: int, n: int) -> list[tuple[int, int]]:
    # Bin i covers [floor(i*size/n), ceil((i+1)*size/n)): every cell is in some
    # bin, bins may overlap by one cell, and none is empty even if size < n.
    return [((i * size) // n, -(-((i + 1) * size) // n)) for i in range(n)]


def _pyramid(maps: NDArray[np.floating]) -> NDArray[np.floating]:
    n, c, h, w = maps.shape
    x = _channels_last(maps)
    parts = [x.reshape(n, h * w, c).max(axis=1)]
    for level in PYRAMID_LEVELS[1:]:
        cols = _adaptive_bins(w, level)
        grid = np.empty((n, level, level, c), dtype=maps.dtype)
        for i, (y0, y1) in enumerate(_adaptive_bins(h, level)):  # <= 4 x 4 bins, each over N, C
            band = x[:, y0:y1].max(axis=1)
            for j, (x0, x1) in enumerate(cols):
                grid[:, i, j] = band[:, x0:x1].max(axis=1)
        parts.append(grid.transpose(0, 3, 1, 2).reshape(n, c * level * level))
    return np.concatenate(parts, axis=1)


def pool(
    maps: Any,
    mode: PoolingMode | str,
    *,
    p: float = 3.0,
    kernel: int = 2,
) -> NDArray[np.float32]:
    """Pool RoI feature maps into L2-normalised appearance vectors.

    Args:
        maps: (N, C, H, W) float16/float32/float64 numpy array (or a torch
            tensor); N may be 0.
        mode: a :class:`PoolingMode` or its name (see the module docstring).
        p: GeM exponent (``gem`` only), a finite value > 0. Inputs are clamped
            at :data:`GEM_EPS` from below first, as GeM needs non-negative values.
        kernel: ``maxpool_flatten`` kernel and stride (ceil mode), >= 1.

    Returns:
        (N, D) float32 unit rows, D = ``out_dim(mode, C, H, W, kernel)``. A row
        that pools to zero stays zero.

    Raises:
        ConfigError: unknown mode, bad ``p`` or bad ``kernel``.
        InputError: maps not 4-d, not floating point, or containing NaN/inf.
    """
    mode = _check_mode(mode)
    p = _check_p(p)
    kernel = _check_kernel(kernel)
    a = _to_numpy_maps(maps)
    n, c, h, w = a.shape
    if n == 0:
        return np.zeros((0, out_dim(mode, c, h, w, kernel)), np.float32)
    if mode is PoolingMode.AVG:
        out = _mean_hw(a)
    elif mode is PoolingMode.MAX:
        out = a.reshape(n, c, h * w).max(axis=2)
    elif mode is PoolingMode.AVGMAX:
        out = np.concatenate([_mean_hw(a), a.reshape(n, c, h * w).max(axis=2)], axis=1)
    elif mode is PoolingMode.GEM:
        out = _gem(a, p)
    elif mode is PoolingMode.FLATTEN:
        out = a.reshape(n, c * h * w)
    elif mode is PoolingMode.MAXPOOL_FLATTEN:
        out = _maxpool(a, kernel).reshape(n, -1)
    else:  # PYRAMID
        out = _pyramid(a)
    # NaN in the maps reaches the pooled vector in every mode (np.max and the
    # means propagate it), so checking the smaller output suffices.
    if not np.isfinite(out).all():
        i = int(np.flatnonzero(~np.isfinite(out).all(axis=1))[0])
        raise InputError(f"RoI feature map {i} contains NaN or inf")
    return l2_normalize(out)


def _check_matrix(x: Any, in_dim: int, what: str) -> NDArray[np.floating]:
    a = np.asarray(x)
    if a.ndim != 2 or a.shape[1] != in_dim:
        raise InputError(f"{what} expects an (N, {in_dim}) array, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.floating):
        raise InputError(f"{what} expects floating point input, got dtype {a.dtype}")
    return a.astype(np.float32, copy=False) if a.dtype == np.float16 else a


def _check_dims(in_dim: Any, out_dim: Any) -> tuple[int, int]:
    for name, v in (("in_dim", in_dim), ("out_dim", out_dim)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ConfigError(f"{name} = {v!r} must be an integer >= 1")
    return int(in_dim), int(out_dim)


class RandomProjection:
    """A fixed, seeded Gaussian random projection to fewer dimensions.

    By the Johnson-Lindenstrauss lemma a Gaussian matrix with entries of
    variance ``1/out_dim`` preserves inner products of unit vectors up to an
    error of order ``1/sqrt(out_dim)`` (about 0.09 at 128 dims, 0.06 at 256),
    whatever the data. Trade-off against :class:`PCAReducer`: no fitting and no
    look at the data, so it works online from the first frame and two runs
    with the same seed agree exactly; but it keeps no more of the variance
    than chance, where PCA keeps the most for a given ``out_dim``.

    The matrix is dense float32, ``in_dim * out_dim * 4`` bytes (49 MiB for
    100352 -> 128), drawn from ``np.random.default_rng(seed)``; the global RNG
    is never touched.

    Args:
        in_dim: input dimension D.
        out_dim: output dimension (may exceed ``in_dim``, though it then only costs).
        seed: seed of the matrix; same seed, same matrix.
    """

    def __init__(self, in_dim: int, out_dim: int, seed: int = 0) -> None:
        self.in_dim, self.out_dim = _check_dims(in_dim, out_dim)
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ConfigError(f"seed = {seed!r} must be an integer >= 0")
        self.seed = int(seed)
        rng = np.random.default_rng(self.seed)
        self.matrix: NDArray[np.float32] = rng.standard_normal(
            (self.in_dim, self.out_dim), dtype=np.float32
        ) / np.float32(math.sqrt(self.out_dim))

    def __call__(self, x: Any) -> NDArray[np.float32]:
        """Project (N, in_dim) vectors to (N, out_dim) float32 unit rows."""
        a = _check_matrix(x, self.in_dim, "RandomProjection")
        if a.shape[0] == 0:
            return np.zeros((0, self.out_dim), np.float32)
        return l2_normalize(a.astype(np.float32, copy=False) @ self.matrix)

    def __repr__(self) -> str:
        return f"RandomProjection(in_dim={self.in_dim}, out_dim={self.out_dim}, seed={self.seed})"


class PCAReducer:
    """Principal component projection fitted on a sequence's own embeddings.

    Trade-off against :class:`RandomProjection`: PCA keeps the most variance
    that ``out_dim`` linear dimensions can, so distances after reduction are
    closer to the originals, but it must see the embeddings first: fit it on
    all of a sequence's vectors (offline, e.g. from the feature cache), then
    transform. The projection is data dependent, so vectors reduced by two
    different fits are not comparable.

    Rows are centred by the fitted mean before projection and re-normalised
    after. When the matrix is large (both sides above a few hundred), the
    components come from a randomised SVD (Halko, Martinsson & Tropp 2011)
    driven by ``seed``; otherwise from an exact SVD.

    Args:
        out_dim: number of components kept.
        seed: seed of the randomised SVD's test matrix.
        n_iter: power iterations of the randomised SVD (more: more accurate).
    """

    def __init__(self, out_dim: int, *, seed: int = 0, n_iter: int = 4) -> None:
        _, self.out_dim = _check_dims(1, out_dim)
        self.seed = int(seed)
        self.n_iter = int(n_iter)
        self.mean_: NDArray[np.float64] | None = None
        self.components_: NDArray[np.float32] | None = None
        self.explained_variance_ratio_: NDArray[np.float64] | None = None

    def fit(self, x: Any) -> PCAReducer:
        """Fit the components on a (M, D) matrix; return ``self``.

        Raises:
            InputError: not a (M, D) floating point matrix, or NaN/inf in it.
            ConfigError: ``out_dim`` exceeds ``min(M, D)``.
        """
        a = np.asarray(x)
        if a.ndim != 2 or not np.issubdtype(a.dtype, np.floating):
            raise InputError(f"PCAReducer.fit expects a (M, D) float matrix, got "
                             f"shape {a.shape} dtype {a.dtype}")
        m, d = a.shape
        if self.out_dim > min(m, d):
            raise ConfigError(f"PCA out_dim = {self.out_dim} exceeds min(M, D) = {min(m, d)} "
                              f"of the ({m}, {d}) matrix it is fitted on")
        if not np.isfinite(a).all():
            raise InputError("PCAReducer.fit: the matrix contains NaN or inf")
        a = a.astype(np.float64, copy=False)
        mean = a.mean(axis=0)
        centred = a - mean
        k = self.out_dim
        total = float(np.einsum("md,md->", centred, centred))
        if min(m, d) <= 2 * (k + 10) or m * d <= 4_000_000:
            _, s, vt = np.linalg.svd(centred, full_matrices=False)
            comps, sing = vt[:k], s[:k]
        else:
            comps, sing = self._randomized_svd(centred, k)
        self.mean_ = mean
        self.components_ = comps.astype(np.float32)
        self.explained_variance_ratio_ = (sing**2) / total if total > 0 else np.zeros(k)
        return self

    def _randomized_svd(
        self, a: NDArray[np.float64], k: int
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        rng = np.random.default_rng(self.seed)
        sketch = min(k + 10, min(a.shape))
        q = a @ rng.standard_normal((a.shape[1], sketch))
        q, _ = np.linalg.qr(q)
        for _ in range(self.n_iter):  # power iterations sharpen the spectrum
            q, _ = np.linalg.qr(a.T @ q)
            q, _ = np.linalg.qr(a @ q)
        _, s, vt = np.linalg.svd(q.T @ a, full_matrices=False)
        return vt[:k], s[:k]

    def transform(self, x: Any) -> NDArray[np.float32]:
        """Project (N, D) vectors onto the fitted components; return (N, out_dim) unit rows.

        Raises:
            RuntimeError: called before :meth:`fit`.
            InputError: wrong shape or dtype.
        """
        if self.components_ is None or self.mean_ is None:
            raise RuntimeError("PCAReducer.transform called before fit")
        a = _check_matrix(x, self.components_.shape[1], "PCAReducer.transform")
        if a.shape[0] == 0:
            return np.zeros((0, self.out_dim), np.float32)
        centred = a.astype(np.float32, copy=False) - self.mean_.astype(np.float32)
        return l2_normalize(centred @ self.components_.T)

    __call__ = transform

    def fit_transform(self, x: Any) -> NDArray[np.float32]:
        """Fit on ``x`` and return its projection."""
        return self.fit(x).transform(x)
