"""The project's few exception types.

Each subclasses ``ValueError`` so that callers who only know the standard
library can still catch bad input the usual way.
"""

from __future__ import annotations


class DeepTrackError(Exception):
    """Base class of every error deeptrack raises on purpose."""


class ConfigError(DeepTrackError, ValueError):
    """A configuration key is unknown, or its value is out of range."""


class InputError(DeepTrackError, ValueError):
    """Per-frame input (boxes, scores, embeddings, feature maps) is malformed."""


class DataFormatError(DeepTrackError, ValueError):
    """A file on disk is malformed; the message names ``path:line``."""


class WeightsError(DeepTrackError, ValueError):
    """Model weights are missing, unreadable, or do not fit the model."""
