"""The embedding head: (N, C, H, W) RoI feature maps -> (N, D) unit vectors.

Pool, then optionally project: the one place where maps become the vectors
the tracker compares. The tracker (``Tracker(config, head=...)``), the
pipeline, :meth:`RoIEmbedder.embed`, the pooling study and
benchmarks/bench_embedding.py all use it. Needs numpy only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from deeptrack.appearance.pooling import RandomProjection, out_dim, pool
from deeptrack.config import HeadConfig

__all__ = ["EmbeddingHead"]


class EmbeddingHead:
    """Pool RoI feature maps by ``config.pooling``, then project to ``config.reduce_dim``.

    Args:
        config: pooling mode and parameters, optional projection (default:
            global average pooling, no projection).

    Example:
        >>> import numpy as np
        >>> head = EmbeddingHead(HeadConfig(pooling="gem", gem_p=3.0))
        >>> head(np.ones((2, 8, 7, 7), np.float32)).shape
        (2, 8)
    """

    def __init__(self, config: HeadConfig | None = None) -> None:
        self.config = HeadConfig() if config is None else config
        if not isinstance(self.config, HeadConfig):
            raise TypeError(f"config must be a HeadConfig, got {type(self.config).__name__}")
        self._projections: dict[int, RandomProjection] = {}

    def __repr__(self) -> str:
        return f"EmbeddingHead({self.config!r})"

    def pooled_dim(self, channels: int, height: int, width: int) -> int:
        """Return the length of a pooled (C, H, W) map, before any projection."""
        cfg = self.config
        return out_dim(cfg.pooling, channels, height, width, cfg.maxpool_kernel)

    def out_dim(self, channels: int, height: int, width: int) -> int:
        """Return the length D of the vectors this head makes from (C, H, W) maps."""
        if self.config.reduce_dim is not None:
            return self.config.reduce_dim
        return self.pooled_dim(channels, height, width)

    def __call__(self, maps: Any) -> NDArray[np.float32]:
        """Return (N, D) float32 unit vectors (a map pooling to zero stays zero).

        Args:
            maps: (N, C, H, W) float16/32/64 numpy array or torch tensor; N may be 0.

        Raises:
            InputError: maps not 4-d, not floating point, or containing NaN/inf.
        """
        cfg = self.config
        vectors = pool(maps, cfg.pooling, p=cfg.gem_p, kernel=cfg.maxpool_kernel)
        if cfg.reduce_dim is not None:
            d = vectors.shape[1]
            proj = self._projections.get(d)
            if proj is None:  # a pure function of (d, reduce_dim, seed): built once per d
                proj = self._projections[d] = RandomProjection(d, cfg.reduce_dim,
                                                               cfg.reduce_seed)
            vectors = proj(vectors)
        return np.ascontiguousarray(vectors, dtype=np.float32)
