"""Result sets: a folder of result files that is written all or nothing.

``deeptrack track`` and ``compare`` write every file of a run (one result file per
sequence, the config that made them, tables and charts) into a temporary folder
beside the destination, with ``manifest.json`` last (each file's size and
SHA-256), and only then move that folder into place in one rename. A run that
fails or is killed leaves the destination as it was; its temporary folder is
removed by the next run that writes beside it.

The destination must be absent, an empty folder, or an earlier result set (a
folder with a deeptrack ``manifest.json`` and no file the manifest does not
list, apart from the ``metrics.json`` that ``eval`` adds): an earlier set is
replaced as a whole (an atomic exchange of the two folders on Linux), never
merged with the new files. Anything else is refused, so no user file is lost.

:func:`check_result_file` lets the evaluation refuse a result file that is not
the one its set's manifest describes (added or edited by hand after the run).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import logging
import os
import shutil
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from deeptrack.errors import DataFormatError, DeepTrackError

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
#: Files a later command may add to a result set (``deeptrack eval``'s default output).
ADDED_LATER = ("metrics.json",)


class ResultSetError(DeepTrackError):
    """A result set cannot be written where asked, or a result file is not what its set says."""


def current_umask() -> int:
    """Return the process umask without changing it (Linux), else read it and set it back."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # the only portable way to read it: set, then restore at once
    os.umask(mask)
    return mask


def file_mode(path: Path) -> int:
    """Permissions for a new file at ``path``: its current ones if it exists, else 0666 - umask."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~current_umask()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _as_bytes(data: str | bytes) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else data


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    except OSError:
        return True
    return True


def _owner_pid(name: str, prefix: str) -> int | None:
    """The pid in ``<prefix><pid>-<random>``, or None."""
    head = name[len(prefix):].split("-", 1)[0]
    return int(head) if head.isdigit() else None


def remove_orphans(out: Path) -> int:
    """Remove temporary folders of ``out`` left by runs whose process is gone; return how many."""
    removed = 0
    parent = out.parent
    if not parent.is_dir():
        return 0
    for kind in ("tmp", "old"):
        prefix = f".{out.name}.{kind}-"
        for p in parent.glob(f"{glob_escape(prefix)}*"):
            pid = _owner_pid(p.name, prefix)
            if pid is None or pid == os.getpid() or _pid_alive(pid):
                continue
            shutil.rmtree(p, ignore_errors=True)
            if not p.exists():
                removed += 1
                logger.info("removed %s, left by an interrupted run (process %d)", p, pid)
    return removed


def glob_escape(text: str) -> str:
    """Escape the glob metacharacters of a literal file name."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """Return ``folder``'s deeptrack manifest, or None when it has none (or not a valid one)."""
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not (isinstance(data, dict) and "deeptrack" in data and isinstance(data.get("files"), dict)):
        return None
    return data


def _entries(folder: Path) -> list[str]:
    """Every file below ``folder``, as a relative POSIX path (folders themselves left out)."""
    out = []
    for dirpath, _, files in os.walk(folder):
        rel = Path(dirpath).relative_to(folder)
        out.extend(str(PurePosixPath(*rel.parts, f)) for f in files)
    return sorted(out)


def check_destination(out: str | Path) -> bool:
    """Raise unless ``out`` may receive a result set; return whether it holds one to replace.

    Raises:
        ResultSetError: ``out`` is a file or a link, or a folder that holds
            anything but an earlier result set.
    """
    out = Path(out)
    if out.is_symlink():
        raise ResultSetError(f"{out}: is a symbolic link; give the folder itself as --out")
    if out.exists() and not out.is_dir():
        raise ResultSetError(f"{out}: exists and is not a folder; choose another --out")
    if not out.exists():
        return False
    try:
        present = _entries(out)
    except OSError as e:
        raise ResultSetError(f"{out}: cannot list the folder: {e.strerror or e}") from None
    if not present:
        return True
    manifest = read_manifest(out)
    if manifest is None:
        raise ResultSetError(
            f"{out}: not empty and not a deeptrack result set (no {MANIFEST}); remove it or "
            "choose another --out"
        )
    known = set(manifest["files"]) | {MANIFEST, *ADDED_LATER}
    # write_atomic's temporary files of those, left by a run killed while writing them
    leftover = tuple(f".{name}." for name in ADDED_LATER)
    foreign = [p for p in present
               if p not in known and not (p.startswith(leftover) and p.endswith(".tmp"))]
    if foreign:
        shown = ", ".join(foreign[:3]) + (" ..." if len(foreign) > 3 else "")
        raise ResultSetError(
            f"{out}: holds {len(foreign)} file(s) its result set did not write ({shown}); "
            "remove them or choose another --out"
        )
    return True


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):  # kernel or file system lacks it
        return False
    raise OSError(err, os.strerror(err), str(b))


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:  # a new file: permissions from the umask, as any file
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_result_set(out: str | Path, files: Mapping[str, str | bytes], *, command: str,
                     info: Mapping[str, Any] | None = None) -> bool:
    """Write ``files`` as the folder ``out``, all or nothing; return whether a set was replaced.

    Args:
        out: the destination folder: absent, empty, or an earlier result set.
        files: relative POSIX path -> content (text is written as UTF-8).
        command: the command that made the set, recorded in the manifest.
        info: more JSON-able facts for the manifest.

    Raises:
        ResultSetError: ``out`` holds something else, or the set cannot be
            written (full disk, no permission); ``out`` is then as it was.
    """
    out = Path(out)
    for name in files:
        rel = PurePosixPath(name)
        if rel.is_absolute() or ".." in rel.parts or name in (MANIFEST, ""):
            raise ValueError(f"bad result file name {name!r}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        blocker = next((a for a in out.parents if a.exists() and not a.is_dir()), None)
        why = f"{blocker} is a file, not a folder" if blocker else e.strerror or str(e)
        raise ResultSetError(f"{out}: cannot create its parent folder: {why}") from None
    remove_orphans(out)
    replace = check_destination(out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    try:
        tmp.mkdir()
        manifest: dict[str, Any] = {
            "deeptrack": _version(), "command": command,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **(info or {}), "files": {},
        }
        for name, data in files.items():
            raw = _as_bytes(data)
            _write_file(tmp / name, raw)
            manifest["files"][name] = {"bytes": len(raw), "sha256": _sha256(raw)}
        _write_file(tmp / MANIFEST, json.dumps(manifest, indent=2).encode())
        _fsync_dir(tmp)
        _install(tmp, out, replace)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        where = e.filename or out
        raise ResultSetError(f"cannot write the result set {out} ({where}): "
                             f"{e.strerror or e}; nothing was written") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(out.parent)
    return replace


def _install(tmp: Path, out: Path, replace: bool) -> None:
    """Move the finished folder ``tmp`` to ``out``, swapping out an earlier set in one step."""
    if not replace:
        os.rename(tmp, out)  # fails rather than merging if ``out`` appeared meanwhile
        return
    if _exchange(tmp, out):
        shutil.rmtree(tmp, ignore_errors=True)  # now the earlier set
        return
    # No atomic exchange here: move the earlier set aside, then the new one in. A reader
    # in between sees no set at all, never a mixture.
    old = out.parent / f".{out.name}.old-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _version() -> str:
    from deeptrack import __version__

    return __version__


def check_result_file(path: Path) -> None:
    """Raise if ``path`` belongs to a result set whose manifest does not describe it as it is.

    The manifest is looked for in the file's folder and the one above (``compare``
    writes one folder per mode). Files outside any result set pass unchecked.

    Raises:
        DataFormatError: the file is not listed in the manifest, or its size or
            SHA-256 differ (edited, or copied in from another run).
    """
    path = Path(path)
    for root in (path.parent, path.parent.parent):
        manifest = read_manifest(root)
        if manifest is None:
            continue
        rel = str(PurePosixPath(*path.relative_to(root).parts))
        entry = manifest["files"].get(rel)
        if not isinstance(entry, dict):
            raise DataFormatError(
                f"{path}: not part of the result set in {root} ({MANIFEST} does not list it); "
                "it was added after the run: score it from a folder of its own"
            )
        try:
            size = path.stat().st_size
            digest = _file_sha256(path) if size == entry.get("bytes") else ""
        except OSError as e:
            raise DataFormatError(f"{path}: cannot read file: {e.strerror or e}") from None
        if size != entry.get("bytes") or digest != entry.get("sha256"):
            raise DataFormatError(
                f"{path}: differs from the file the run wrote ({MANIFEST} in {root} has another "
                "size or SHA-256); edited or copied from another run"
            )
        return


__all__ = [
    "ADDED_LATER", "MANIFEST", "ResultSetError", "check_destination", "check_result_file",
    "current_umask",
    "file_mode", "read_manifest", "remove_orphans", "write_result_set",
]
