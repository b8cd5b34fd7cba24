"""Strict streaming parsing of comma-separated numeric text, for :mod:`deeptrack.io.mot`.

A file is read block by block into arrays allocated once (numpy's C parser does the
numbers; a line-by-line pass runs only to name a malformed line), so reading costs about
the memory of the table returned, not a multiple of the file. Every error is a
:class:`~deeptrack.errors.DataFormatError` whose message starts with ``path:line:``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import numpy as np
from numpy.typing import NDArray

from deeptrack.errors import DataFormatError

#: Bytes read at a time: a file is parsed block by block, never held whole in memory.
_BLOCK_BYTES = 1 << 20
#: A line longer than this is an error (real lines are under 100 bytes); it is never buffered.
MAX_LINE_BYTES = 1 << 16

# What counts as a number in a file: decimal notation, or the words inf/nan (which the
# finiteness check then rejects with a precise message). ASCII digits only.
_NUMBER = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf(?:inity)?|nan)",
    re.IGNORECASE | re.ASCII,
)


def _is_number(text: str) -> bool:
    text = text.strip()
    if not text:
        return False
    if _NUMBER.fullmatch(text):
        return True
    try:  # whatever numpy's parser takes is a number too (the fast path uses it)
        return _loadtxt([text]).shape == (1, 1)
    except ValueError:
        return False


def _loadtxt(lines: list[str]) -> NDArray[np.float64]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "input contained no data"
        return np.loadtxt(lines, delimiter=",", dtype=np.float64, comments=None, ndmin=2,
                          quotechar=None)


def count_lines(path: Path) -> int:
    """Return an upper bound of the rows of ``path`` (its newlines plus one), reading blocks."""
    n = 1
    try:
        with open(path, "rb") as f:
            while block := f.read(_BLOCK_BYTES):
                n += block.count(b"\n")
    except OSError as e:
        raise DataFormatError(f"{path}: cannot read file: {e.strerror or e}") from None
    return n


def _text_blocks(path: Path) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(number of the first line, lines)`` of a UTF-8 file, a few MB at a time."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the with below, after the check
    except OSError as e:
        raise DataFormatError(f"{path}: cannot read file: {e.strerror or e}") from None
    with f:
        lineno, rest = 1, b""
        while True:
            try:
                block = f.read(_BLOCK_BYTES)
            except OSError as e:
                raise DataFormatError(f"{path}: cannot read file: {e.strerror or e}") from None
            if not block:
                break
            data = rest + block
            cut = data.rfind(b"\n")
            head, rest = (b"", data) if cut < 0 else (data[:cut], data[cut + 1:])
            if len(rest) > MAX_LINE_BYTES:
                line = lineno + head.count(b"\n") + (1 if cut >= 0 else 0)
                raise DataFormatError(f"{path}:{line}: line longer than {MAX_LINE_BYTES} bytes")
            if cut >= 0:
                lines = _decode(path, head, lineno).split("\n")
                if len(head) > MAX_LINE_BYTES:
                    _check_line_lengths(path, lines, lineno)
                yield lineno, lines
                lineno += len(lines)
        if rest:
            yield lineno, [_decode(path, rest, lineno)]


def _check_line_lengths(path: Path, lines: list[str], lineno: int) -> None:
    # characters, never more than the line's bytes: a line over the limit in characters is
    # over it in bytes too (the rare multi-byte line just under it passes; it is still short)
    lengths = list(map(len, lines))
    if max(lengths) > MAX_LINE_BYTES:
        i = next(i for i, n in enumerate(lengths) if n > MAX_LINE_BYTES)
        raise DataFormatError(f"{path}:{lineno + i}: line longer than {MAX_LINE_BYTES} bytes")


def _decode(path: Path, data: bytes, lineno: int) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = lineno + data[: e.start].count(b"\n")
        raise DataFormatError(f"{path}:{line}: not UTF-8 text") from None


class Table:
    """Parse a comma-separated numeric file whose column count is a key of ``layouts``.

    Iterating yields ``(row0, values)`` per block: ``values`` is (n, C) float64, every
    value finite, ``row0`` the 0-based row of its first line. Rows and lines
    correspond one to one (line = row + 1): a blank line is allowed only at the end of
    the file. A malformed line raises :class:`DataFormatError` naming ``path:line``.
    """

    def __init__(self, path: Path, layouts: dict[int, tuple[str, ...]]) -> None:
        self.path = path
        self.layouts = layouts
        self.n_cols = 0
        self.names: tuple[str, ...] = ()
        self._blank: int | None = None  # first line of a run of blank lines seen last

    def fail(self, row: int, message: str) -> NoReturn:
        raise DataFormatError(f"{self.path}:{row + 1}: {message}")

    def __iter__(self) -> Iterator[tuple[int, NDArray[np.float64]]]:
        for first, lines in _text_blocks(self.path):
            values = self._fast(lines)
            if values is None:
                values = self._slow(first, lines)
            if len(values):
                bad = ~np.isfinite(values)
                if bad.any():
                    r, c = np.argwhere(bad)[0]
                    self.fail(first - 1 + int(r), f"column {c + 1} ({self.names[c]}) is "
                              f"{float(values[r, c])}; expected a finite number")
                yield first - 1, values

    def _fast(self, lines: list[str]) -> NDArray[np.float64] | None:
        """numpy's C parser on a block without blank lines; None when the block needs a closer look."""
        if self._blank is not None or not lines:
            return None
        try:
            values = _loadtxt(lines)
        except ValueError:
            return None
        if values.shape[0] != len(lines) or values.shape[1] != (self.n_cols or values.shape[1]):
            return None
        if not self.n_cols:
            if values.shape[1] not in self.layouts:
                return None
            self.n_cols, self.names = values.shape[1], self.layouts[values.shape[1]]
        return values

    def _slow(self, first: int, lines: list[str]) -> NDArray[np.float64]:
        """Line by line: find the first malformed line, or parse a block with blank lines."""
        rows: list[list[float]] = []
        for i, text in enumerate(lines):
            row = first - 1 + i
            stripped = text.strip()
            if not stripped:
                if self._blank is None:
                    self._blank = row
                continue
            if self._blank is not None:
                self.fail(self._blank, "empty line before the end of the file")
            fields = stripped.split(",")
            if not self.n_cols:
                if len(fields) not in self.layouts:
                    expected = " or ".join(f"{c} ({','.join(v)})" for c, v in self.layouts.items())
                    self.fail(row, f"expected {expected} comma-separated columns, "
                                   f"got {len(fields)}")
                self.n_cols, self.names = len(fields), self.layouts[len(fields)]
            elif len(fields) != self.n_cols:
                self.fail(row, f"expected {self.n_cols} columns like the lines above, "
                               f"got {len(fields)}")
            for j, field in enumerate(fields):
                if not _is_number(field):
                    self.fail(row, f"column {j + 1} ({self.names[j]}) is not a number: "
                                   f"{field.strip()!r}")
            rows.append(_loadtxt([stripped])[0].tolist())
        return np.array(rows, dtype=np.float64).reshape(-1, self.n_cols or 1)


class Columns:
    """Output arrays filled block by block, allocated once for ``capacity`` rows."""

    def __init__(self, capacity: int, **dtypes: tuple[np.dtype, tuple[int, ...]]) -> None:
        self.n = 0
        self.arrays = {k: np.empty((capacity, *shape), dt) for k, (dt, shape) in dtypes.items()}

    def append(self, **cols: NDArray) -> None:
        k = len(next(iter(cols.values())))
        for name, a in self.arrays.items():
            if self.n + k > len(a):  # the file grew since it was counted
                a = np.concatenate([a, np.empty_like(a[: max(self.n + k - len(a), len(a))])])
                self.arrays[name] = a
            a[self.n:self.n + k] = cols[name]
        self.n += k

    def result(self) -> dict[str, NDArray]:
        out = {}
        for name, a in self.arrays.items():
            # a view would keep the whole allocation alive; copy when much is unused
            out[name] = a[: self.n].copy() if self.n < 0.9 * len(a) else a[: self.n]
        return out


def fail_first(
    table: Table, row0: int, bad: NDArray[np.bool_], message: str,
    values: NDArray[np.float64] | None = None,
) -> None:
    """Raise naming the first row where ``bad`` is true; ``{v}`` in message is its value."""
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        table.fail(row0 + r, message.format(v="" if values is None else fmt_value(values[r])))


def fmt_value(v: float) -> str:
    """Return a file value as an error message shows it: ``3``, not ``3.0``."""
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e16 else repr(float(v))


def file_boxes_to_xyxy(values: NDArray[np.float64], first: int = 2) -> NDArray[np.float64]:
    """The x, y, width, height columns (1-based tlwh) from ``first`` on as 0-based xyxy boxes.

    The one conversion of file boxes: the writer in :mod:`deeptrack.io.mot` checks its text with it too.
    """
    boxes = np.empty((len(values), 4))
    boxes[:, :2] = values[:, first:first + 2] - 1.0  # 1-based file pixels -> 0-based
    boxes[:, 2:] = boxes[:, :2] + values[:, first + 2:first + 4]
    return boxes


def f8(*shape: int) -> tuple[np.dtype, tuple[int, ...]]:
    """A float64 column of ``shape`` per row, for :class:`Columns`."""
    return np.dtype(np.float64), shape


def i8(*shape: int) -> tuple[np.dtype, tuple[int, ...]]:
    """An int64 column of ``shape`` per row, for :class:`Columns`."""
    return np.dtype(np.int64), shape
