"""What a check may use: the model (read-only) and a reporter."""

from __future__ import annotations

from dataclasses import dataclass

from dtmsi.codes import Code
from dtmsi.diagnostics import DiagnosticSink, Note
from dtmsi.source import Span


@dataclass
class Report:
    sink: DiagnosticSink

    def __call__(
        self, code: Code, span: Span, message: str, *, hint: str | None = None, notes: tuple[Note, ...] = ()
    ) -> None:
        self.sink.report(code, span, message, hint=hint, notes=notes)
