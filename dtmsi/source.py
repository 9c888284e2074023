"""Source files and spans: byte offsets in, ``line:col`` and caret snippets out."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple


@dataclass(frozen=True, eq=False)
class SourceFile:
    """One input text. ``name`` is how diagnostics print it (as given on the command line)."""

    name: str
    text: str = field(repr=False)
    # How generated files name it: relative to the top-level input's directory,
    # so outputs do not depend on how (or from where) the input path was typed.
    stable_name: str = ""
    _line_starts: list[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        starts = [0]
        find = self.text.find
        i = find("\n")
        while i >= 0:
            starts.append(i + 1)
            i = find("\n", i + 1)
        object.__setattr__(self, "_line_starts", starts)

    def line_col(self, offset: int) -> tuple[int, int]:
        """1-based line and column of a character offset."""
        line = bisect.bisect_right(self._line_starts, offset) - 1
        return line + 1, offset - self._line_starts[line] + 1

    def line_text(self, line: int) -> str:
        start = self._line_starts[line - 1]
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
        return self.file.line_col(self.start)[0]

    @property
    def column(self) -> int:
        return self.file.line_col(self.start)[1]

    def location(self) -> str:
        line, col = self.file.line_col(self.start)
        return f"{self.file.name}:{line}:{col}"

    def short(self) -> str:
        """``file:line`` for provenance comments in generated files."""
        return f"{self.file.stable_name or self.file.name}:{self.line}"

    def snippet(self) -> list[str]:
        """The source line and a caret line under the span (clipped to that line)."""
        line, col = self.file.line_col(self.start)
        text = self.file.line_text(line)
        end_line, end_col = self.file.line_col(max(self.start, self.end - 1))
        width = (end_col - col + 1) if end_line == line else len(text) - col + 1
        width = max(1, width)
        # Keep tabs in the caret line so carets line up under tab-indented code.
        pad = "".join("\t" if ch == "\t" else " " for ch in text[: col - 1])
        return [text, pad + "^" + "~" * (width - 1)]


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
