"""deeptrack: appearance-aware DeepSORT-style multi-object tracking.

The tracking core (``Tracker``, ``TrackerConfig``) depends on numpy, scipy and
filterpy only; torch is imported lazily, where appearance features are computed.
"""

from __future__ import annotations

__version__ = "0.1.0"

from deeptrack.appearance.head import EmbeddingHead
from deeptrack.config import HeadConfig, TrackerConfig
from deeptrack.errors import ConfigError, DataFormatError, DeepTrackError, InputError
from deeptrack.tracking.tracker import Tracker
from deeptrack.types import Detections, TrackOutput

__all__ = [
    "ConfigError",
    "DataFormatError",
    "DeepTrackError",
    "Detections",
    "EmbeddingHead",
    "HeadConfig",
    "InputError",
    "TrackOutput",
    "Tracker",
    "TrackerConfig",
    "__version__",
]
