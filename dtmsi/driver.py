"""Runs the phases in order and stops at the first phase that reported errors.

    lower (parse) -> resolve -> checks -> base tree -> backends -> commit

The backends write into staged files (dtmsi.artifacts.Outputs), which reach
their names only at ``commit``, all in one step: a failed compile writes
nothing visible and leaves existing outputs untouched, and a killed one leaves
the old set or the new set.

Memory: each phase lets go of its input once the next has what it needs (the
tokens of a statement once parsed, its syntax once lowered, the declarations
once resolved), and the device trees are written as they are made, so a
100k-function compile peaks well under 400 MB.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dtmsi import codes as C
from dtmsi.artifacts import Artifact, Outputs, depfile_text, write_if_changed
from dtmsi.diagnostics import DiagnosticSink
from dtmsi.model import Machine

if TYPE_CHECKING:
    from dtmsi.alloc import AllocationResult
    from dtmsi.devicetree.tree import Tree
from dtmsi.limits import MAX_BASE_TREE_BYTES
from dtmsi.options import CompileOptions
from dtmsi.source import (
    STDIN_NAME,
    InputFileError,
    SourceFile,
    Span,
    find_include,
    printable_name,
    read_input_bytes,
)

Progress = Callable[[str], None]


def _quiet(phase: str) -> None:
    pass


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


def analyse(
    options: CompileOptions, sink: DiagnosticSink, progress: Progress = _quiet
) -> tuple[Machine, AllocationResult] | None:
    """Source -> checked model and MSI allocation, or None if a phase reported errors.
    ``progress`` is told each phase as it starts (the CLI's progress line)."""
    from dtmsi.alloc import allocate, check_budgets
    from dtmsi.checks import run_checks
    from dtmsi.checks.base import Report
    from dtmsi.checks.inputs import declares_something
    from dtmsi.lower import lower
    from dtmsi.resolve import resolve

    display = str(options.input)
    progress("parsing")
    program = lower(options.input, display, sink, text=options.input_text, include_dirs=options.include_dirs)
    if sink.has_errors:
        return None
    progress("resolving")
    machine = resolve(program, sink, printable_name(Path(display).name))
    del program  # the model keeps what it needs (spans, names); the rest can go
    if sink.has_errors:
        return None
    progress("checking")
    run_checks(machine, sink)
    if not machine.host_bridges:  # only then: its span rereads the input for a snippet
        declares_something(machine, _top_span(options), Report(sink))
    if sink.has_errors:
        return None
    progress("allocating MSI vectors")
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


def compile_file(options: CompileOptions, progress: Progress = _quiet) -> CompileResult:
    # The compiler allocates many small objects and frees none before exit;
    # the cyclic GC would only rescan them (it was half the parse time).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _compile(options, progress)
    finally:
        if gc_was_enabled:
            gc.enable()


def _compile(options: CompileOptions, progress: Progress) -> CompileResult:
    sink = DiagnosticSink(werror=options.werror, silenced=options.silenced)
    result = CompileResult(sink)
    analysed = analyse(options, sink, progress)
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
        progress("making the outputs")
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
            targets = list(options.depfile_targets) or [str(options.output_dir / a.name) for a in result.artifacts]
            inputs = [f for f in machine.files if f != STDIN_NAME]
            if machine.platform.base is not None:
                inputs.append(str(_base_path(machine, options)))
            if write_if_changed(options.depfile, depfile_text(targets, inputs).encode("utf-8", "surrogateescape")):
                result.written.append(options.depfile)
    except OSError as e:
        outputs.discard()
        result.artifacts = []
        # Located at the input that asked for the outputs (its first line,
        # shown like any other diagnostic); the OS error names the path.
        sink.report(C.OUTPUT_WRITE, _top_span(options), f"cannot write outputs: {e}",
                    hint=f"'{options.output_dir}' must take the outputs: no directory named like one of "
                    "them, write permission, free space")
    except BaseException:
        outputs.discard()
        raise
    return result


def _top_span(options: CompileOptions) -> Span:
    """The start of the top-level input, with its text for the caret snippet."""
    text = options.input_text
    if text is None:
        try:
            text = options.input.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):  # read a moment ago; gone now: no snippet then
            text = ""
    return Span(SourceFile(str(options.input), text), 0, 0)


def _base_path(machine: Machine, options: CompileOptions) -> Path:
    """The base tree's file: beside the input, else in the -I directories."""
    assert machine.platform.base is not None
    return find_include(machine.platform.base, options.input.parent, "", options.include_dirs)[0]


def _load_base(machine: Machine, options: CompileOptions, sink: DiagnosticSink):  # type: ignore[no-untyped-def]
    """Read the platform's base device tree (.dts or .dtb), if it names one."""
    pl = machine.platform
    if pl.base is None:
        return None
    assert pl.base_span is not None
    path = _base_path(machine, options)
    try:
        data = read_input_bytes(path, MAX_BASE_TREE_BYTES)
    except InputFileError as e:
        sink.report(C.BASE_TREE, pl.base_span, f"cannot read base tree '{pl.base}': {e.reason}")
        return None
    entry = _base_entry(data, path)
    tree = _cached_base(entry) if entry is not None else None
    if tree is None:
        from dtmsi.devicetree import basetree

        try:
            if data[:4] == _DTB_MAGIC:
                tree = basetree.read_dtb(data)
            else:
                tree = basetree.parse_dts(data.decode("utf-8"), str(path), base_dir=path.parent)
                if entry is not None:
                    _remember_base(entry, tree)
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
    from dtmsi.devicetree import basetree
    from dtmsi.devicetree.basecheck import check_base_tree

    try:  # on a cached tree too: a tree is cached before this check
        basetree.check_cell_counts(tree, str(path))
    except basetree.BaseTreeError as e:
        where = f"{e.filename}:{e.line}:{e.column}: " if getattr(e, "line", None) else ""
        sink.report(C.BASE_TREE, pl.base_span, f"base tree '{pl.base}' cannot be read: {where}{e.message}")
        return None
    # dtc's own warnings about the base (W930), whether the tree came from the cache or not
    check_base_tree(path, os.path.normpath(path), data[:4] == _DTB_MAGIC, pl.base_span, sink)
    return tree


# A base DTS as read is kept in dtmsi's cache (dtmsi/cache.py): for a small
# board, reading it (importing lark, loading its tables, the parse) was a
# third of the compile. A DTB is quick to read and not kept.
_DTB_MAGIC = b"\xd0\x0d\xfe\xed"


def _base_entry(data: bytes, path: Path) -> str | None:
    """The cache entry for base file ``data``, or None if it is not to be kept:
    a DTB, or a DTS that includes files (an edit to one would be missed). The
    key is the file's bytes and name and the source of the code that reads it
    (dtmsi's device-tree reader and its grammar, lark's install), so that an
    edit to any of them is a miss."""
    if data[:4] == _DTB_MAGIC or b"/include/" in data or b"/incbin/" in data:
        return None
    from dtmsi import cache
    from dtmsi.devicetree import tree as trees
    from dtmsi.resources import data_dir

    code = [*sorted(Path(trees.__file__).parent.glob("*.py")), data_dir("grammars") / "dts.lark"]
    return f"base-dts-{cache.key(data, str(path), cache.code_key(*code), _lark_stamp())}.pickle"


def _cached_base(entry: str) -> Tree | None:
    import pickle

    from dtmsi import cache
    from dtmsi.devicetree import tree as trees

    saved = cache.read(entry)
    if saved is not None:
        with contextlib.suppress(Exception):  # a damaged entry: read the file again
            tree = pickle.loads(saved)
            if isinstance(tree, trees.Tree):
                return tree
    return None


def _remember_base(entry: str, tree: Tree) -> None:
    import pickle

    from dtmsi import cache

    cache.write(entry, pickle.dumps(tree, protocol=pickle.HIGHEST_PROTOCOL), keep=64)


def _lark_stamp() -> str:
    """Which lark is installed, without importing it (that is what is saved)."""
    from importlib.machinery import PathFinder

    spec = PathFinder.find_spec("lark")
    if spec is None or spec.origin is None:
        return "no lark"
    try:
        st = os.stat(spec.origin)
    except OSError:
        return spec.origin
    return f"{spec.origin}:{st.st_size}:{st.st_mtime_ns}"
