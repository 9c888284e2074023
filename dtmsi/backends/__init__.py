"""Backends: the resolved model -> artifacts (bytes with file names). Pure."""

from __future__ import annotations

from dtmsi import report
from dtmsi.alloc import AllocationResult
from dtmsi.artifacts import Artifact
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
) -> list[Artifact]:
    artifacts: list[Artifact] = []
    artifacts.extend(devicetree.render(machine, allocation, base, sink))
    artifacts.append(Artifact("allocation.json", report.to_json(machine, allocation).encode()))
    if options.report:
        artifacts.append(Artifact("allocation.txt", report.render_table(machine, allocation).encode()))
    return sorted(artifacts, key=lambda a: a.name)
