"""The appearance stage: RoI feature maps from a backbone, pooled into unit embeddings.

Importing this package (or :mod:`~deeptrack.appearance.pooling` and
:mod:`~deeptrack.appearance.cache`,
:mod:`~deeptrack.appearance.extract`) does not import torch: the tracker pools
maps with numpy only. :class:`RoIEmbedder`, :class:`FasterRCNNDetector` and
:class:`OSNet` (which need torch) are imported on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deeptrack.appearance.cache import FeatureCache, SequenceFeatures
from deeptrack.appearance.digest import file_sha256
from deeptrack.appearance.extract import extract_sequence
from deeptrack.appearance.frames import load_image
from deeptrack.appearance.head import EmbeddingHead
from deeptrack.appearance.pooling import (
    PCAReducer,
    PoolingMode,
    RandomProjection,
    out_dim,
    pool,
)

if TYPE_CHECKING:
    from deeptrack.appearance.embedder import FasterRCNNDetector, RoIEmbedder
    from deeptrack.appearance.osnet import OSNet

__all__ = [
    "EmbeddingHead",
    "FasterRCNNDetector",
    "FeatureCache",
    "OSNet",
    "PCAReducer",
    "PoolingMode",
    "RandomProjection",
    "RoIEmbedder",
    "SequenceFeatures",
    "extract_sequence",
    "file_sha256",
    "load_image",
    "out_dim",
    "pool",
]

_LAZY = {"RoIEmbedder": "embedder", "FasterRCNNDetector": "embedder", "OSNet": "osnet"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"deeptrack.appearance.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
