"""What a check may use: the model (read-only) and a reporter."""

from __future__ import annotations

from dataclasses import dataclass

from dtmsi.codes import Code
from dtmsi.diagnostics import DiagnosticSink, Note
from dtmsi.model import Function
from dtmsi.parser import parse_statement_at
from dtmsi.source import Span
from dtmsi.syntax import Name


@dataclass
class Report:
    sink: DiagnosticSink

    def __call__(
        self,
        code: Code,
        span: Span,
        message: str,
        *,
        hint: str | None = None,
        notes: tuple[Note, ...] = (),
        function: Function | None = None,
    ) -> None:
        """``function``: the function the problem is in. When ``span`` is not in
        its own statement (it is in a template the function uses), a note says
        which function, through which 'use'."""
        if function is not None and not _inside(span, function.span):
            via = f"used by '{function.name}' here"
            notes = (*notes, *(Note(f"in template '{name}', {via}", use) for name, use in _template_uses(function)))
        self.sink.report(code, span, message, hint=hint, notes=notes)


def _inside(span: Span, outer: Span) -> bool:
    return span.file is outer.file and outer.start <= span.start and span.end <= outer.end


def _template_uses(function: Function) -> list[tuple[str, Span]]:
    """The 'use' statements in the function's own block (inside 'repeat' too,
    not in the functions below it). Found again from the source, on the error
    path only: keeping them on every function cost ~25 MB at 100k functions."""
    stmt = parse_statement_at(function.span.file, function.span.start)
    uses: list[tuple[str, Span]] = []
    stack = list(reversed(stmt.body)) if stmt is not None and stmt.body else []
    while stack:
        st = stack.pop()
        if st.word == "use" and st.args and isinstance(st.args[0], Name):
            uses.append((st.args[0].text, st.span))
        elif st.word == "repeat" and st.body:
            stack.extend(reversed(st.body))
    return uses
