"""One feature-cache entry being written, and how a writer's temporary folder tells it is alive.

:class:`EntryWriter` streams maps into ``.tmp-<pid>-<random>`` under the cache
root and renames it into place (see :mod:`deeptrack.appearance.cache` for the
layout, the float16 rule and the bound). Its writer holds an exclusive
``flock`` on ``owner.lock`` inside the folder for as long as it lives, which
is how :func:`writer_alive` tells a live writer from an orphan.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from deeptrack.appearance.digest import hash_file
from deeptrack.errors import InputError

if TYPE_CHECKING:
    from deeptrack.appearance.cache import FeatureCache

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: owners are told by pid and age
    fcntl = None  # type: ignore[assignment]

__all__ = ["CACHE_FORMAT", "EntryWriter", "canonical_key", "fits_float16", "writer_alive"]

logger = logging.getLogger(__name__)

#: Bumped whenever the meaning of stored maps changes, so old entries miss.
CACHE_FORMAT = 1

STALE_TMP_SECONDS = 24 * 3600
TMP_PREFIX = ".tmp-"
LOCK_NAME = "owner.lock"
_FLOAT16_MAX = float(np.finfo(np.float16).max)


def canonical_key(key: Mapping[str, Any]) -> str:
    try:
        return json.dumps(key, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InputError(f"cache key must be plain JSON (str, int, float, bool, None, "
                         f"lists, dicts): {e}") from None


def fits_float16(maps: NDArray[np.floating]) -> bool:
    """Whether float16 keeps every RoI map to 0.1 % of its L2 norm (and within range)."""
    if float(np.abs(maps).max()) > _FLOAT16_MAX:
        return False
    flat = np.asarray(maps, dtype=np.float32).reshape(len(maps), -1)
    err = np.linalg.norm(flat.astype(np.float16).astype(np.float32) - flat, axis=1)
    return bool((err <= 1e-3 * np.linalg.norm(flat, axis=1)).all())


class EntryWriter:
    """Streams one entry's maps into a temporary folder, then renames it into place."""

    def __init__(self, cache: FeatureCache, key: Mapping[str, Any], counts: NDArray[np.int64],
                 map_shape: tuple[int, int, int]) -> None:
        self.cache = cache
        self.key = key
        self.counts = counts
        self.shape = (int(counts.sum()), *map_shape)
        self.dtype = cache.dtype
        self.keep = self.nbytes(self.dtype) <= cache.max_bytes
        if self.keep:
            cache.evict(reserve=self.nbytes(self.dtype))
        else:
            logger.warning("feature maps of %d bytes exceed the cache bound (max_bytes = %d): "
                           "computed without being stored", self.nbytes(self.dtype),
                           cache.max_bytes)
        self.tmp = cache.root / f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex}"
        self.tmp.mkdir(parents=True)
        self._lock = hold_lock(self.tmp / LOCK_NAME)
        try:
            self.array = self._open(self.dtype)
        except BaseException:
            self.abort()
            raise
        self.pos = 0

    def nbytes(self, dtype: np.dtype) -> int:
        """Size of the finished ``maps.npy`` in ``dtype`` (an upper bound: header of 128 bytes)."""
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(dtype).itemsize + 128

    def _open(self, dtype: np.dtype) -> np.ndarray:
        if self.shape[0] == 0:  # numpy cannot memory-map an empty array
            return np.zeros(self.shape, dtype)
        return np.lib.format.open_memmap(self.tmp / "maps.npy", mode="w+", dtype=dtype,
                                         shape=self.shape)

    def write(self, maps: NDArray[np.floating]) -> None:
        n = len(maps)
        if n and self.dtype == np.float16 and not fits_float16(maps):
            # Everything written so far is exact in float32 too: widen, go on.
            logger.info("feature maps do not fit float16 (range or precision); storing this "
                        "entry as float32")
            old = np.array(self.array[: self.pos], dtype=np.float32)
            del self.array
            self.dtype = np.dtype(np.float32)
            if self.keep and self.nbytes(self.dtype) > self.cache.max_bytes:
                self.keep = False
            elif self.keep:  # twice the room now: make it before the file grows
                self.cache.evict(reserve=self.nbytes(self.dtype), skip=self.tmp)
            self.array = self._open(self.dtype)
            self.array[: self.pos] = old
        self.array[self.pos:self.pos + n] = maps
        self.pos += n

    def commit(self) -> Path | np.ndarray:
        """Rename the entry into place; return its folder (or, if it is too large to keep, the
        (K, C, H, W) maps, memory-mapped from a file already unlinked)."""
        if self.pos != self.shape[0]:
            raise InputError(f"cache entry got {self.pos} maps, expected {self.shape[0]}")
        maps_path = self.tmp / "maps.npy"
        if isinstance(self.array, np.memmap):
            self.array.flush()
            del self.array
        else:
            np.save(maps_path, self.array)
        if not self.keep:
            # Map the file, then remove the folder: the mapping outlives the name (POSIX),
            # so nothing of the entry stays on disk once the caller drops the maps.
            data = np.load(maps_path, mmap_mode="r" if self.shape[0] else None,
                           allow_pickle=False)
            self.abort()
            return data
        meta = {
            "format": CACHE_FORMAT,
            "key": json.loads(canonical_key(self.key)),
            "counts": self.counts.tolist(),
            "shape": list(self.shape),
            "dtype": np.dtype(self.dtype).name,
            "nbytes": maps_path.stat().st_size,
            "sha256": hash_file(maps_path),
            "created": time.time(),
        }
        with open(self.tmp / "meta.json", "w") as f:
            json.dump(meta, f)
            f.flush()
            os.fsync(f.fileno())
        final = self.cache.entry_path(self.key)
        (self.tmp / LOCK_NAME).unlink(missing_ok=True)  # an entry holds maps.npy and meta.json only
        try:
            os.replace(self.tmp, final)
            # what we just wrote and hashed needs no second read to verify
            self.cache.mark_verified(final / "maps.npy")
        except OSError:
            # Another writer got there first (a non-empty folder cannot be
            # replaced); theirs is as good as ours if it is valid.
            shutil.rmtree(self.tmp, ignore_errors=True)
            if self.cache.load(self.key) is None:
                raise
        finally:
            self._release()
        return final

    def _release(self) -> None:
        lock, self._lock = self.__dict__.get("_lock"), None
        if lock is not None:
            with contextlib.suppress(OSError):
                lock.close()

    def abort(self) -> None:
        self.__dict__.pop("array", None)
        shutil.rmtree(self.tmp, ignore_errors=True)
        self._release()


def hold_lock(path: Path):
    """Create ``path`` and hold an exclusive ``flock`` on it while the returned file is open."""
    f = open(path, "wb")  # noqa: SIM115 - kept open: the lock lives as long as the file
    if fcntl is not None:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a file system without flock: the pid in the name still tells
            pass
    f.write(f"{os.getpid()}\n".encode())
    f.flush()
    return f


def writer_alive(tmp: Path, now: float) -> bool:
    """Whether the writer of temporary folder ``tmp`` may still be running."""
    lock = tmp / LOCK_NAME
    if fcntl is not None and lock.exists():
        try:
            with open(lock, "rb") as f:
                try:
                    fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return True  # held: its writer is alive
                except OSError:
                    pass  # no flock here: fall back to the pid
                else:
                    return False  # we got the lock: its writer is gone
        except OSError:
            return True  # vanished or unreadable: leave it alone this time
    pid = tmp.name[len(TMP_PREFIX):].split("-", 1)[0]
    if pid.isdigit() and lock.exists():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except OSError:
            return True
        return True
    try:  # no owner on record (an older version's folder, or one just being created)
        return now - tmp.stat().st_mtime <= STALE_TMP_SECONDS
    except OSError:
        return True
