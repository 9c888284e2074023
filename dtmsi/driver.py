"""Runs the phases in order and stops at the first phase that reported errors.

    lower (parse) -> resolve -> checks -> base tree -> backends -> commit

The backends write into staged files (dtmsi.artifacts.Outputs), which reach
their names only at ``commit``: a failed compile writes nothing visible and
leaves existing outputs untouched.

Memory: each phase lets go of its input once the next has what it needs (the
tokens of a statement once parsed, its syntax once lowered, the declarations
once resolved), and the device trees are written as they are made, so a
100k-function compile peaks well under 400 MB.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dtmsi import codes as C
from dtmsi.artifacts import Artifact, Outputs, depfile_text, write_if_changed
from dtmsi.diagnostics import DiagnosticSink
from dtmsi.model import Machine

if TYPE_CHECKING:
    from dtmsi.alloc import AllocationResult
from dtmsi.limits import MAX_BASE_TREE_BYTES
from dtmsi.options import CompileOptions
from dtmsi.source import BUILTIN, InputFileError, SourceFile, Span, printable_name, read_input_bytes


@dataclass
class CompileResult:
    sink: DiagnosticSink
    machine: Machine | None = None
    allocation: AllocationResult | None = None
    artifacts: list[Artifact] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.sink.has_errors


def analyse(options: CompileOptions, sink: DiagnosticSink) -> tuple[Machine, AllocationResult] | None:
    """Source -> checked model and MSI allocation, or None if a phase reported errors."""
    from dtmsi.alloc import allocate, check_budgets
    from dtmsi.checks import run_checks
    from dtmsi.lower import lower
    from dtmsi.resolve import resolve

    display = str(options.input)
    program = lower(options.input, display, sink)
    if sink.has_errors:
        return None
    machine = resolve(program, sink, printable_name(Path(display).name))
    del program  # the model keeps what it needs (spans, names); the rest can go
    if sink.has_errors:
        return None
    run_checks(machine, sink)
    if sink.has_errors:
        return None
    allocation = allocate(machine, sink)
    if sink.has_errors:
        return None
    if machine.platform.msi_mode.kind == "hypervisor":
        from dtmsi.papr import plan

        plan(machine, allocation, sink)
        if sink.has_errors:
            return None
    check_budgets(machine, allocation, sink)
    if sink.has_errors:
        return None
    return machine, allocation


def compile_file(options: CompileOptions) -> CompileResult:
    # The compiler allocates many small objects and frees none before exit;
    # the cyclic GC would only rescan them (it was half the parse time).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _compile(options)
    finally:
        if gc_was_enabled:
            gc.enable()


def _compile(options: CompileOptions) -> CompileResult:
    sink = DiagnosticSink(werror=options.werror, silenced=options.silenced)
    result = CompileResult(sink)
    analysed = analyse(options, sink)
    if analysed is None:
        return result
    machine, allocation = analysed
    result.machine, result.allocation = machine, allocation
    from dtmsi.backends import render_all

    base = _load_base(machine, options, sink)
    if sink.has_errors:
        return result
    outputs = Outputs(options.output_dir, keep=options.keep_artifacts)
    try:
        render_all(machine, allocation, base, options, sink, outputs)
        if sink.has_errors:
            outputs.discard()
            return result
        outputs.artifacts.sort(key=lambda a: a.name)
        result.artifacts = outputs.artifacts
        if options.output_dir is None:
            return result
        result.written = outputs.commit()
        if options.depfile is not None:
            targets = [options.output_dir / a.name for a in result.artifacts]
            inputs = list(machine.files)
            if machine.platform.base is not None:
                inputs.append(str(Path(machine.files[0]).parent / machine.platform.base))
            if write_if_changed(options.depfile, depfile_text(targets, inputs).encode("utf-8", "surrogateescape")):
                result.written.append(options.depfile)
    except OSError as e:
        outputs.discard()
        result.artifacts = []
        sink.report(C.OUTPUT_WRITE, _input_span(options), f"cannot write outputs: {e}")
    except BaseException:
        outputs.discard()
        raise
    return result


def _input_span(options: CompileOptions) -> Span:
    return Span(SourceFile(str(options.input), ""), 0, 0) if options.input else BUILTIN


def _load_base(machine: Machine, options: CompileOptions, sink: DiagnosticSink):  # type: ignore[no-untyped-def]
    """Read the platform's base device tree (.dts or .dtb), if it names one."""
    from dtmsi.devicetree.tree import Tree

    pl = machine.platform
    if pl.base is None:
        return None
    assert pl.base_span is not None
    path = options.input.parent / pl.base
    try:
        data = read_input_bytes(path, MAX_BASE_TREE_BYTES)
    except InputFileError as e:
        sink.report(C.BASE_TREE, pl.base_span, f"cannot read base tree '{pl.base}': {e.reason}")
        return None
    from dtmsi.devicetree import basetree

    try:
        if data[:4] == b"\xd0\x0d\xfe\xed":
            tree: Tree = basetree.read_dtb(data)
        else:
            tree = basetree.parse_dts(data.decode("utf-8"), str(path), base_dir=path.parent)
        basetree.check_cell_counts(tree, str(path))
    except basetree.BaseTreeDepthError as e:
        where = f"{e.filename}:{e.line}:{e.column}: " if e.line else f"{e.filename}: "
        sink.report(C.BASE_TREE_DEPTH, pl.base_span, f"base tree '{pl.base}' cannot be read: {where}{e.message}")
        return None
    except basetree.BaseTreeError as e:
        where = f"{e.filename}:{e.line}:{e.column}: " if getattr(e, "line", None) else ""
        sink.report(C.BASE_TREE, pl.base_span, f"base tree '{pl.base}' cannot be read: {where}{e.message}")
        return None
    except (UnicodeDecodeError, ValueError) as e:
        sink.report(C.BASE_TREE, pl.base_span, f"base tree '{pl.base}' cannot be read: {e}")
        return None
    return tree
