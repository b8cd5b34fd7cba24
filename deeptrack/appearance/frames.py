"""Frames from disk: image files read as RGB arrays.

Kept apart from the feature cache so that the embedder, which reads frames,
does not depend on how maps are stored.
"""

from __future__ import annotations

import os

import numpy as np
from numpy.typing import NDArray

from deeptrack.errors import DataFormatError

__all__ = ["load_image"]


def load_image(path: str | os.PathLike[str]) -> NDArray[np.uint8]:
    """Read an image file as an HxWx3 uint8 RGB array (via Pillow).

    Raises:
        DataFormatError: the file is missing or not an image Pillow can read.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"))  # a writable array, unlike np.asarray
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as e:
        # (a decompression bomb: Pillow's pixel limit, ~179 megapixels)
        raise DataFormatError(f"cannot read image {path}: {e}") from None
