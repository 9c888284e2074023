"""Backends: the resolved model -> output files, written into :class:`Outputs`. Pure
apart from that: nothing reaches its final name before the driver commits."""

from __future__ import annotations

from dtmsi import report
from dtmsi.alloc import AllocationResult
from dtmsi.artifacts import Outputs
from dtmsi.backends import devicetree
from dtmsi.devicetree.tree import Tree
from dtmsi.diagnostics import DiagnosticSink
from dtmsi.model import Machine
from dtmsi.options import CompileOptions


def render_all(
    machine: Machine,
    allocation: AllocationResult,
    base: Tree | None,
    options: CompileOptions,
    sink: DiagnosticSink,
    outputs: Outputs,
) -> None:
    devicetree.render(machine, allocation, base, sink, outputs)
    if sink.has_errors:
        return
    with outputs.open("allocation.json") as fh:
        for piece in report.json_pieces(machine, allocation):
            fh.write(piece.encode())
    if options.report:
        outputs.add("allocation.txt", report.render_table(machine, allocation).encode())
