"""What a check may use: the model (read-only) and a reporter."""

from __future__ import annotations

from dataclasses import dataclass

from dtmsi.codes import Code
from dtmsi.diagnostics import DiagnosticSink, Note
from dtmsi.model import Function
from dtmsi.source import Span


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
        if function is not None and function.template_uses and not _inside(span, function.span):
            via = f"used by '{function.name}' here"
            notes = (*notes, *(Note(f"in template '{name}', {via}", use) for name, use in function.template_uses))
        self.sink.report(code, span, message, hint=hint, notes=notes)


def _inside(span: Span, outer: Span) -> bool:
    return span.file is outer.file and outer.start <= span.start and span.end <= outer.end
