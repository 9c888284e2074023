"""Backends: the resolved model -> output files, written into :class:`Outputs`. Pure
apart from that: nothing reaches its final name before the driver commits."""

from __future__ import annotations

import hashlib

from dtmsi import report
from dtmsi.alloc import AllocationResult
from dtmsi.artifacts import Outputs
from dtmsi.backends import devicetree, stubs
from dtmsi.backends.worker import Worker
from dtmsi.backends.worker import wanted as worker_wanted
from dtmsi.devicetree.tree import Tree
from dtmsi.diagnostics import DiagnosticSink
from dtmsi.model import Machine
from dtmsi.options import CompileOptions
from dtmsi.stubs.plan import build_plans


def render_all(
    machine: Machine,
    allocation: AllocationResult,
    base: Tree | None,
    options: CompileOptions,
    sink: DiagnosticSink,
    outputs: Outputs,
) -> None:
    def trees() -> None:
        devicetree.render(machine, allocation, base, sink, outputs, options.emit)

    # The device trees need nothing the other outputs make: a mid-sized
    # compile renders them in a forked worker meanwhile (see worker.py).
    tree_worker = Worker(trees, sink, outputs) if worker_wanted(len(allocation.order), outputs) else None
    try:
        _render_json_and_stubs(machine, allocation, options, sink, outputs)
        if sink.has_errors:
            return
        if tree_worker is not None:
            tree_worker.join()
        else:
            trees()
    finally:
        if tree_worker is not None:
            tree_worker.cancel()  # nothing left to stop after a join
    if sink.has_errors:
        return
    if options.report:
        outputs.add("allocation.txt", report.render_table(machine, allocation).encode())


def _render_json_and_stubs(
    machine: Machine,
    allocation: AllocationResult,
    options: CompileOptions,
    sink: DiagnosticSink,
    outputs: Outputs,
) -> None:
    # allocation.json first: the stubs carry its digest, which changes exactly
    # when an MSI decision does (a comment in the input changes neither).
    digest = hashlib.sha256()
    with outputs.open("allocation.json", "json" in options.emit) as fh:
        for piece in report.json_pieces(machine, allocation):
            data = piece.encode()
            digest.update(data)
            fh.write(data)
    # The stubs before the device trees: the plans are let go before the tree
    # writer needs its memory (a 100k-function compile peaks in the writer).
    # The stubs' names are checked (E204) whether or not they are emitted.
    plans = build_plans(machine, allocation, "sha256:" + digest.hexdigest(), sink)
    languages = [lang for lang in ("c", "python") if lang in options.emit]
    stubs.render(plans, languages, outputs, sink)
