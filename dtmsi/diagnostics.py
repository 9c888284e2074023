"""Diagnostics: what a phase reports, and how it is printed (gcc-like text or JSON)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum

from dtmsi.codes import Code
from dtmsi.limits import MAX_DIAGNOSTICS, MAX_MESSAGE_CHARS
from dtmsi.source import Span


class Severity(Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Note:
    message: str
    span: Span | None = None


@dataclass(frozen=True)
class Diagnostic:
    code: Code
    message: str
    span: Span
    notes: tuple[Note, ...] = ()
    hint: str | None = None

    @property
    def severity(self) -> Severity:
        return Severity.ERROR if self.code.is_error else Severity.WARNING

    def sort_key(self) -> tuple[str, int, str]:
        return (self.span.file.name, self.span.start, self.code.id)


@dataclass
class DiagnosticSink:
    """Collects every diagnostic of a run; phases ask it whether to go on."""

    items: list[Diagnostic] = field(default_factory=list)
    # Warnings promoted to errors (--werror) or silenced (-W no-CODE).
    werror: bool = False
    silenced: frozenset[str] = frozenset()
    _said: set[tuple[str, str, int, int, str]] = field(default_factory=set, repr=False)
    # Past MAX_DIAGNOSTICS, diagnostics are counted, not kept: a file with a
    # million bad lines gives a bounded report.
    omitted: int = 0
    omitted_errors: int = 0

    def report(
        self,
        code: Code,
        span: Span,
        message: str,
        *,
        notes: tuple[Note, ...] = (),
        hint: str | None = None,
    ) -> None:
        if code.id in self.silenced and not code.is_error:
            return
        # A template used many times (or a repeat body) would say the same
        # thing at the same place once per use: say it once.
        message = clip(message)
        key = _said_key(code, span, message)
        if key in self._said:
            return
        if len(self.items) >= MAX_DIAGNOSTICS:
            self.omitted += 1
            self.omitted_errors += code.is_error
            return
        self._said.add(key)
        self.items.append(Diagnostic(code, message, span, notes, clip(hint) if hint else hint))

    def mark(self) -> int:
        """A point to :meth:`rollback` to."""
        return len(self.items)

    def rollback(self, mark: int) -> None:
        """Forget everything reported since ``mark`` (a phase that starts over)."""
        for d in self.items[mark:]:
            self._said.discard(_said_key(d.code, d.span, d.message))
        del self.items[mark:]

    @property
    def error_count(self) -> int:
        omitted = self.omitted if self.werror else self.omitted_errors
        return sum(1 for d in self.items if d.code.is_error or self.werror) + omitted

    @property
    def has_errors(self) -> bool:
        return self.error_count > 0

    def __iter__(self) -> Iterator[Diagnostic]:
        return iter(sorted(self.items, key=Diagnostic.sort_key))


def clip(text: str) -> str:
    """``text`` cut in the middle to MAX_MESSAGE_CHARS (messages quote the
    input, and an input word may be megabytes long)."""
    if len(text) <= MAX_MESSAGE_CHARS:
        return text
    keep = MAX_MESSAGE_CHARS // 2 - 10
    return f"{text[:keep]} ...[{len(text) - 2 * keep} characters]... {text[-keep:]}"


def _said_key(code: Code, span: Span, message: str) -> tuple[str, str, int, int, str]:
    """What makes two diagnostics the same one, said twice."""
    return (code.id, span.file.name, span.start, span.end, message)


def render_text(diag: Diagnostic, *, werror: bool = False, color: bool = False) -> str:
    sev = "error" if diag.code.is_error or werror else "warning"
    bold, red, magenta, cyan, green, reset = (
        ("\033[1m", "\033[31m", "\033[35m", "\033[36m", "\033[32m", "\033[0m") if color else ("", "", "", "", "", "")
    )
    sev_color = red if sev == "error" else magenta
    lines = [f"{bold}{diag.span.location()}: {sev_color}{sev}[{diag.code.id}]{reset}{bold}: {diag.message}{reset}"]
    if diag.span.file.text:
        text, carets = diag.span.snippet()
        lines.append(f"    {text}")
        lines.append(f"    {green}{carets}{reset}")
    for note in diag.notes:
        where = f"{note.span.location()}: " if note.span and note.span.file.text else ""
        lines.append(f"{where}{cyan}note:{reset} {note.message}")
        if note.span and note.span.file.text:
            text, carets = note.span.snippet()
            lines.append(f"    {text}")
            lines.append(f"    {green}{carets}{reset}")
    if diag.hint:
        lines.append(f"{cyan}hint:{reset} {diag.hint}")
    return "\n".join(lines)


def to_json(diags: list[Diagnostic], *, werror: bool = False, omitted: int = 0) -> str:
    def span_obj(span: Span) -> dict[str, object]:
        line, col = span.file.line_col(span.start)
        end_line, end_col = span.file.line_col(span.end)
        return {
            "file": span.file.name,
            "line": line,
            "column": col,
            "end_line": end_line,
            "end_column": end_col,
        }

    out = [
        {
            "severity": "error" if d.code.is_error or werror else "warning",
            "code": d.code.id,
            "message": d.message,
            "span": span_obj(d.span),
            "notes": [{"message": n.message, "span": span_obj(n.span) if n.span else None} for n in d.notes],
            "hint": d.hint,
        }
        for d in diags
    ]
    doc: dict[str, object] = {"diagnostics": out}
    if omitted:
        doc["omitted"] = omitted  # beyond MAX_DIAGNOSTICS: counted, not listed
    return json.dumps(doc, indent=2, sort_keys=True)
