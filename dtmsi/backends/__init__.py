"""Backends: the resolved model -> artifacts (bytes with file names). Pure."""

from __future__ import annotations

from dtmsi.artifacts import Artifact
from dtmsi.backends import devicetree
from dtmsi.devicetree.tree import Tree
from dtmsi.diagnostics import DiagnosticSink
from dtmsi.model import Machine
from dtmsi.options import CompileOptions


def render_all(
    machine: Machine, base: Tree | None, options: CompileOptions, sink: DiagnosticSink
) -> list[Artifact]:
    artifacts: list[Artifact] = []
    artifacts.extend(devicetree.render(machine, base, sink))
    return sorted(artifacts, key=lambda a: a.name)
