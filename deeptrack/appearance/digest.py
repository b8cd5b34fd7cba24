"""Digests that identify what RoI maps were computed from: files, boxes, frame lists.

The feature cache keys its entries with them; the backbone names its weights
file by one. No torch here.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from deeptrack.errors import DataFormatError

__all__ = ["boxes_digest", "file_sha256", "frames_digest", "hash_file"]

_HASH_CHUNK = 1 << 22

# (real path, mtime_ns, size) -> sha256; a changed file changes mtime or size.
_sha256_memo: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Return the hex SHA-256 of a file, remembered per (path, mtime, size) in this process."""
    p = Path(path)
    st = p.stat()
    memo_key = (str(p.resolve()), st.st_mtime_ns, st.st_size)
    digest = _sha256_memo.get(memo_key)
    if digest is None:
        digest = hash_file(p)
        _sha256_memo[memo_key] = digest
    return digest


def hash_file(path: str | os.PathLike[str]) -> str:
    """Return the hex SHA-256 of a file, read now (no memo)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def boxes_digest(boxes_per_frame: Sequence[ArrayLike]) -> str:
    """Return a hex SHA-256 of per-frame boxes (the counts and the float64 values)."""
    h = hashlib.sha256()
    counts = []
    for b in boxes_per_frame:
        arr = np.ascontiguousarray(np.asarray(b, dtype="<f8").reshape(-1, 4))
        counts.append(len(arr))
        h.update(arr.tobytes())
    h.update(np.asarray(counts, dtype="<i8").tobytes())
    return h.hexdigest()


def frames_digest(image_paths: Sequence[str | os.PathLike[str]]) -> str:
    """Return a hex SHA-256 of the frame files' names and sizes, in order.

    Raises:
        DataFormatError: a frame file cannot be read.
    """
    # Names and sizes identify the frames cheaply; hashing every JPEG of a long
    # sequence would cost as much as decoding it.
    h = hashlib.sha256()
    for p in image_paths:
        path = Path(p)
        try:
            size = path.stat().st_size
        except OSError as e:
            raise DataFormatError(f"cannot read image {path}: {e.strerror or e}") from None
        h.update(f"{path.name}\0{size}\n".encode())
    return h.hexdigest()
