"""A disk cache of per-sequence RoI feature maps (filled by :mod:`.extract`).

Layout: one folder per entry under ``root``, named by the SHA-256 of its key
(every input that changes the maps: the embedder's :attr:`key` with backbone,
layer, RoI size, image scale, weights file SHA-256; the sequence name; a hash
of the boxes; a hash of the frame file names and sizes; any extra the caller
gives, e.g. a detection file's SHA-256). It holds ``maps.npy``, all boxes of
the sequence as one (K, C, H, W) array, and ``meta.json`` with the key, the
per-frame box counts and the SHA-256 of ``maps.npy``. No pickle anywhere.

Writes are atomic: the entry is written into a temporary folder in ``root``
and renamed into place with :func:`os.replace`, ``meta.json`` last, so a
reader never sees half an entry. A folder without valid ``meta.json``, a
``maps.npy`` of the wrong size or header, or (with ``verify=True``, the
default) a checksum mismatch counts as corrupt: it is removed and recomputed.

Size: maps are stored as float16 by default, which halves the size; its 11
significant bits give a relative error of at most 2**-11 (0.05 %) per value,
which moves cosine distances between pooled vectors by about 1e-4. Should a
value exceed float16's range (65504), or float16 lose more than 0.1 % of an
RoI map's L2 norm (maps so small that they fall into float16's subnormal
range, as random weights can give), the entry is stored as float32 instead:
the cache never silently zeroes what the backbone computed.
ADL-Rundle-6 (4902 boxes) with MobileNetV2 stride 32 (1280 x 7 x 7) takes
4902 * 62720 * 2 bytes = 615 MB.

Bound: the cache holds at most ``max_bytes`` (default 8 GiB, or
``$DEEPTRACK_CACHE_MAX_BYTES``). Before an entry is written, least recently
used entries are removed until the entries, the other writers' entries in
flight and the new one together fit; after it is renamed into place the bound
is enforced again. An entry larger than the whole bound is computed into a
temporary folder as usual but never kept: it is removed once mapped, and the
maps are returned without being stored. So the folder exceeds its bound by at
most the entries being written at that moment.

Interrupted writers: a temporary folder is named ``.tmp-<pid>-<random>`` and its
writer holds an exclusive ``flock`` on ``owner.lock`` inside it. The kernel
releases the lock when the writer dies, however it dies (``kill -9``
included), so the next :class:`FeatureCache` on the folder finds the lock free
and removes the orphan at once. Temporary folders with no lock file (older
versions) go after 24 hours. Live writers' folders count towards the bound.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from deeptrack.appearance.cache_entry import (
    CACHE_FORMAT,
    TMP_PREFIX,
    EntryWriter,
    canonical_key,
    writer_alive,
)
from deeptrack.appearance.digest import hash_file
from deeptrack.errors import ConfigError

__all__ = [
    "CACHE_FORMAT",
    "DEFAULT_MAX_BYTES",
    "FeatureCache",
    "SequenceFeatures",
    "default_max_bytes",
]

logger = logging.getLogger(__name__)

#: Default bound of the cache's total size: 8 GiB (``DEEPTRACK_CACHE_MAX_BYTES`` overrides it).
DEFAULT_MAX_BYTES = 8 << 30
MAX_BYTES_ENV = "DEEPTRACK_CACHE_MAX_BYTES"
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def default_max_bytes() -> int:
    """Return the cache bound: ``$DEEPTRACK_CACHE_MAX_BYTES`` if set, else :data:`DEFAULT_MAX_BYTES`.

    The variable holds a positive number of bytes, optionally with a binary unit:
    ``500000000``, ``512M``, ``8G``, ``8GiB``.

    Raises:
        ConfigError: the variable is set to anything else.
    """
    raw = os.environ.get(MAX_BYTES_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_BYTES
    text = raw.lower().removesuffix("ib").removesuffix("b")
    unit = text[-1:] if text[-1:] in _UNITS else ""
    number = text[: len(text) - len(unit)].strip()
    if not number.isdigit() or int(number) * _UNITS[unit] < 1:
        raise ConfigError(f"{MAX_BYTES_ENV}={raw!r} is not a size in bytes: expected a positive "
                          "integer, optionally with K, M, G or T (e.g. 8G)")
    return int(number) * _UNITS[unit]


@dataclass(frozen=True)
class SequenceFeatures:
    """The RoI maps of every frame of a sequence.

    Attributes:
        data: (K, C, H, W) maps of all K boxes, frame after frame; read-only
            and memory-mapped when it comes from the cache.
        counts: (F,) int64 boxes per frame.
        key: the cache key the maps were computed under.
        from_cache: True when no backbone pass ran to produce them.
        path: the cache entry's folder, or None without a cache.
    """

    data: NDArray[np.floating]
    counts: NDArray[np.int64]
    key: Mapping[str, Any]
    from_cache: bool = False
    path: Path | None = None
    _offsets: NDArray[np.int64] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_offsets", np.concatenate([[0], np.cumsum(self.counts)]))

    def __len__(self) -> int:
        return len(self.counts)

    def __getitem__(self, frame: int) -> NDArray[np.floating]:
        """Return the (N_f, C, H, W) maps of frame ``frame`` (0-based), a view into ``data``."""
        if not -len(self) <= frame < len(self):
            raise IndexError(f"frame {frame} out of range for {len(self)} frames")
        frame %= len(self)
        return self.data[self._offsets[frame]:self._offsets[frame + 1]]

    @property
    def maps(self) -> list[NDArray[np.floating]]:
        """Per-frame (N_f, C, H, W) views."""
        return [self[i] for i in range(len(self))]


class FeatureCache:
    """A bounded folder of per-sequence RoI feature maps (see the module docstring).

    Args:
        root: the cache folder (created when missing).
        max_bytes: total size bound; least recently used entries go first.
            None: :func:`default_max_bytes` (8 GiB, or ``$DEEPTRACK_CACHE_MAX_BYTES``).
        dtype: ``float16`` (default, half the size) or ``float32`` (exact).
        verify: check each entry's SHA-256 the first time this process opens
            it (reads the whole file once); the size and header are always checked.

    Opening a cache removes the temporary folders of writers that died.
    """

    def __init__(self, root: str | os.PathLike[str], max_bytes: int | None = None, *,
                 dtype: str = "float16", verify: bool = True) -> None:
        if max_bytes is None:
            max_bytes = default_max_bytes()
        if (isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer))
                or max_bytes < 1):
            raise ConfigError(f"max_bytes = {max_bytes!r} must be null or an integer >= 1")
        if np.dtype(dtype) not in (np.float16, np.float32):
            raise ConfigError(f"cache dtype = {dtype!r} must be 'float16' or 'float32'")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_bytes = int(max_bytes)
        self.dtype = np.dtype(dtype)
        self.verify = verify
        self._verified: set[tuple[str, int, int]] = set()
        self.remove_orphans()

    def entry_path(self, key: Mapping[str, Any]) -> Path:
        """Return the folder the entry for ``key`` lives in (whether or not it exists)."""
        digest = hashlib.sha256(canonical_key(key).encode()).hexdigest()
        return self.root / digest[:40]

    def discard(self, path: Path, why: str) -> None:
        """Remove a corrupt entry, saying why (the next request recomputes it)."""
        logger.warning("feature cache entry %s is corrupt (%s); recomputing it", path, why)
        shutil.rmtree(path, ignore_errors=True)

    def load(self, key: Mapping[str, Any]) -> SequenceFeatures | None:
        """Return the stored maps for ``key``, or None on a miss.

        A corrupt entry is removed and reported as a miss (with a warning).
        """
        path = self.entry_path(key)
        if not path.is_dir():
            return None
        maps_path = path / "maps.npy"
        try:
            with open(path / "meta.json") as f:
                meta = json.load(f)
            if meta.get("format") != CACHE_FORMAT:
                raise ValueError(f"format {meta.get('format')!r}, expected {CACHE_FORMAT}")
            if meta["key"] != json.loads(canonical_key(key)):
                raise ValueError("stored key differs from the requested one")
            counts = np.asarray(meta["counts"], dtype=np.int64)
            shape = tuple(int(v) for v in meta["shape"])
            st = maps_path.stat()
            if st.st_size != meta["nbytes"]:
                raise ValueError(f"maps.npy has {st.st_size} bytes, expected {meta['nbytes']}")
            stamp = (str(maps_path), st.st_mtime_ns, st.st_size)
            if self.verify and stamp not in self._verified:
                if hash_file(maps_path) != meta["sha256"]:
                    raise ValueError("maps.npy checksum mismatch")
                self._verified.add(stamp)
            data = np.load(maps_path, mmap_mode="r" if shape[0] else None, allow_pickle=False)
            if data.shape != shape or data.dtype.name != meta["dtype"]:
                raise ValueError(f"maps.npy holds {data.dtype}{data.shape}, "
                                 f"expected {meta['dtype']}{shape}")
            if int(counts.sum()) != shape[0]:
                raise ValueError("box counts do not add up to the stored maps")
        except FileNotFoundError as e:
            self.discard(path, f"missing {Path(e.filename or '?').name}")
            return None
        except (OSError, ValueError, KeyError, TypeError) as e:
            self.discard(path, str(e))
            return None
        try:
            os.utime(path / "meta.json")  # least-recently-used clock
        except OSError:
            pass
        return SequenceFeatures(data, counts, key, from_cache=True, path=path)

    def writer(self, key: Mapping[str, Any], counts: ArrayLike,
               map_shape: tuple[int, int, int]) -> EntryWriter:
        """Start writing the entry for ``key``: call ``write`` per frame, then ``commit``."""
        return EntryWriter(self, key, np.asarray(counts, dtype=np.int64), map_shape)

    def mark_verified(self, maps_path: Path) -> None:
        """Record that ``maps_path``, as it is now, matches its checksum (just written)."""
        st = maps_path.stat()
        self._verified.add((str(maps_path), st.st_mtime_ns, st.st_size))

    def _scan(self) -> tuple[list[tuple[Path, int, float]], list[tuple[Path, int]]]:
        """Committed entries ``(folder, bytes, last use)``, oldest use first, and live
        temporary folders ``(folder, bytes)``; orphaned temporary folders are removed."""
        now = time.time()
        done, flight = [], []
        for p in self.root.iterdir():
            if not p.is_dir():
                continue
            if p.name.startswith(TMP_PREFIX):
                if writer_alive(p, now):
                    flight.append((p, _folder_bytes(p)))
                else:
                    logger.info("removing %s, left by a feature extraction that was "
                                "interrupted", p)
                    shutil.rmtree(p, ignore_errors=True)
                continue
            if p.name.startswith("."):
                continue
            try:
                used = (p / "meta.json").stat().st_mtime
            except OSError:
                continue
            done.append((p, _folder_bytes(p), used))
        done.sort(key=lambda e: e[2])
        return done, flight

    def entries(self) -> list[tuple[Path, int, float]]:
        """Return ``(folder, bytes, last used time)`` of every entry, oldest use first."""
        return self._scan()[0]

    def in_flight(self) -> list[tuple[Path, int]]:
        """Return ``(folder, bytes so far)`` of the entries live writers are writing."""
        return self._scan()[1]

    def remove_orphans(self) -> None:
        """Remove the temporary folders of writers that died (see the module docstring)."""
        self._scan()

    def size_bytes(self) -> int:
        """Return the total size of all entries, those being written included."""
        done, flight = self._scan()
        return sum(e[1] for e in done) + sum(e[1] for e in flight)

    def evict(self, keep: Path | None = None, *, reserve: int = 0,
              skip: Path | None = None) -> None:
        """Remove least recently used entries until everything fits ``max_bytes``.

        Args:
            keep: an entry never removed (the one just written).
            reserve: bytes of an entry about to be written, to make room for.
            skip: a temporary folder not to count (the caller's own, sized by ``reserve``).
        """
        entries, flight = self._scan()
        total = reserve + sum(size for path, size in flight if path != skip)
        total += sum(size for _, size, _ in entries)
        for path, size, _ in entries:
            if total <= self.max_bytes:
                break
            if keep is not None and path == keep:
                continue
            shutil.rmtree(path, ignore_errors=True)
            total -= size
        if total > self.max_bytes:
            logger.warning("feature cache %s needs %d bytes, over max_bytes = %d: the entries "
                           "being written or just written are larger", self.root, total,
                           self.max_bytes)

    def clear(self) -> None:
        """Remove every entry."""
        for path, _, _ in self.entries():
            shutil.rmtree(path, ignore_errors=True)


def _folder_bytes(folder: Path) -> int:
    total = 0
    try:
        for f in folder.iterdir():
            with contextlib.suppress(OSError):
                total += f.stat().st_size
    except OSError:
        pass
    return total
