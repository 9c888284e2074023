"""Source files and spans: byte offsets in, ``line:col`` and caret snippets out.

Also the one way dtmsi reads an input file: regular files only, bounded in
size (a FIFO would block and /dev/zero never ends).
"""

from __future__ import annotations

import bisect
import os
import stat
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from dtmsi.limits import MAX_INPUT_BYTES, MAX_SNIPPET_COLUMNS

# Newlines are counted per block of this many characters: finding a line is a
# count over at most one block, and the index costs 8 bytes per block rather
# than a list entry per line (a file of 50 MB of newlines stays small).
_BLOCK = 1024


class InputFileError(Exception):
    """A file dtmsi will not read. ``limit`` is True when it exists but breaks
    a rule of dtmsi's (not a regular file, too large); False when the system
    or the encoding refused it."""

    def __init__(self, reason: str, limit: bool, missing: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.limit = limit
        self.missing = missing  # no such file (then a search path is worth naming)


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def read_input_bytes(path: Path | str, limit: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes."""
    buf, n = _read(path, limit)
    return bytes(memoryview(buf)[:n])


def _read(path: Path | str, limit: int) -> tuple[bytearray, int]:
    """A buffer holding the file's bytes, and how many there are.

    Opened without blocking and checked on the open descriptor, so a FIFO is
    refused rather than waited on and nothing can swap the file in between.
    Read into a buffer of the file's size: no second copy of a large input.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as e:
        raise InputFileError(e.strerror or str(e), limit=False, missing=isinstance(e, FileNotFoundError)) from None
    except ValueError as e:  # an embedded NUL in the name
        raise InputFileError(f"bad file name ({e})", limit=False) from None
    with os.fdopen(fd, "rb", closefd=True) as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = next((what for test, what in _KINDS if test(st.st_mode)), "not a regular file")
            raise InputFileError(f"it is {kind}, not a regular file", limit=True)
        too_large = f"larger than the limit of {limit} bytes"
        if st.st_size > limit:
            raise InputFileError(f"{st.st_size} bytes, {too_large}", limit=True)
        buf = bytearray(st.st_size + 1)  # one more: a file that grew shows
        view = memoryview(buf)
        n = 0
        try:
            while n < len(buf):
                got = f.readinto(view[n:])
                if not got:
                    break
                n += got
            if n == len(buf):
                del view
                buf += f.read(limit + 1 - n)
                n = len(buf)
        except OSError as e:
            raise InputFileError(e.strerror or str(e), limit=False) from None
    if n > limit:
        raise InputFileError(too_large, limit=True)
    return buf, n


def read_input_text(path: Path | str, limit: int = MAX_INPUT_BYTES) -> str:
    """:func:`read_input_bytes`, decoded as UTF-8."""
    buf, n = _read(path, limit)
    try:
        return str(memoryview(buf)[:n], "utf-8")
    except UnicodeDecodeError as e:
        raise InputFileError(f"not UTF-8 text (byte {buf[e.start]:#04x} at offset {e.start})", limit=False) from None


def printable_name(name: str) -> str:
    """A file name as generated text can hold it: bytes that are not UTF-8
    (kept by Python as surrogates) become ``\\xNN``."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


@dataclass(frozen=True, eq=False)
class SourceFile:
    """One input text. ``name`` is how diagnostics print it (as given on the command line)."""

    name: str
    text: str = field(repr=False)
    # How generated files name it: relative to the top-level input's directory,
    # so outputs do not depend on how (or from where) the input path was typed.
    stable_name: str = ""
    # _newlines[b]: newlines before character b * _BLOCK.
    _newlines: array[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        text = self.text
        count = text.count
        marks = array("q", [0])
        total = 0
        for b in range(_BLOCK, len(text) + 1, _BLOCK):
            total += count("\n", b - _BLOCK, b)
            marks.append(total)
        object.__setattr__(self, "_newlines", marks)

    def line_start(self, line: int) -> int:
        """Offset of the first character of a 1-based line."""
        k = line - 1  # newlines before it
        if k <= 0:
            return 0
        marks = self._newlines
        b = bisect.bisect_left(marks, k) - 1  # last block starting before the k-th newline
        pos = b * _BLOCK - 1
        find = self.text.find
        for _ in range(k - marks[b]):
            pos = find("\n", pos + 1)
        return pos + 1

    def line_of(self, offset: int) -> int:
        """1-based line of a character offset (provenance comments ask this
        of every function: a count over at most one block)."""
        b = min(offset // _BLOCK, len(self._newlines) - 1)
        return self._newlines[b] + self.text.count("\n", b * _BLOCK, offset) + 1

    def line_col(self, offset: int) -> tuple[int, int]:
        """1-based line and column of a character offset."""
        line = self.line_of(offset)
        return line, offset - self.line_start(line) + 1

    def line_text(self, line: int) -> str:
        start = self.line_start(line)
        end = self.text.find("\n", start)
        return self.text[start:] if end < 0 else self.text[start:end]


class Span(NamedTuple):
    """A half-open character range ``[start, end)`` in one source file.

    A NamedTuple, not a dataclass: the parser makes one per token, and tuple
    construction is several times cheaper than a frozen dataclass's.
    """

    file: SourceFile
    start: int
    end: int

    def __repr__(self) -> str:
        return f"Span({self.location()})"

    @property
    def line(self) -> int:
        return self.file.line_of(self.start)

    @property
    def column(self) -> int:
        return self.file.line_col(self.start)[1]

    def location(self) -> str:
        line, col = self.file.line_col(self.start)
        return f"{self.file.name}:{line}:{col}"

    def short(self) -> str:
        """``file:line`` for provenance comments in generated files."""
        # stable_name is printable already (the lowerer makes it so).
        return f"{self.file.stable_name or printable_name(self.file.name)}:{self.file.line_of(self.start)}"

    def snippet(self) -> list[str]:
        """The source line and a caret line under the span (clipped to that
        line, and to a window of MAX_SNIPPET_COLUMNS around the span's start:
        a one-line 50 MB file gives a short diagnostic)."""
        text = self.file.text
        _line, col = self.file.line_col(self.start)
        ls = self.start - col + 1
        le = text.find("\n", self.start)
        le = len(text) if le < 0 else le
        first, last = ls, le
        if le - ls > MAX_SNIPPET_COLUMNS:
            first = max(ls, self.start - MAX_SNIPPET_COLUMNS // 4)
            last = min(le, first + MAX_SNIPPET_COLUMNS)
        shown = text[first:last]
        lead = "..." if first > ls else ""
        tail = "..." if last < le else ""
        width = max(1, min(self.end, last) - self.start)
        # Keep tabs in the caret line so carets line up under tab-indented code.
        pad = "".join("\t" if ch == "\t" else " " for ch in lead + text[first : self.start])
        return [lead + shown + tail, pad + "^" + "~" * (width - 1)]


# A span for things the compiler invents (built-in defaults); prints as <builtin>.
BUILTIN_FILE = SourceFile("<builtin>", "")
BUILTIN = Span(BUILTIN_FILE, 0, 0)


# How diagnostics name standard input (``dtmsi compile -``), as gcc does.
STDIN_NAME = "<stdin>"


def find_include(name: str, here: Path, here_display: str, search: tuple[Path, ...]) -> tuple[Path, str]:
    """Where ``include "name";`` (or a base tree) is read from, and how to print it.

    The including file's own directory first, then each ``-I`` directory in
    command-line order, as gcc searches ``#include "..."`` and dtc ``/include/``.
    A name found nowhere resolves to the first candidate, so the error names it.
    """
    first = here / name
    if Path(name).is_absolute() or first.exists():
        return first, str(Path(here_display) / name)
    for directory in search:
        candidate = directory / name
        if candidate.exists():
            return candidate, str(candidate)
    return first, str(Path(here_display) / name)
