"""The command line: flags -> CompileOptions, diagnostics -> stderr, results -> exit codes.

Exit codes: 0 success (warnings allowed), 1 errors in the input, 2 usage errors.
Heavy modules (lark, the compiler) are imported inside the commands so that
``dtmsi --version`` and ``--help`` stay fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from dtmsi import __version__

if TYPE_CHECKING:
    from dtmsi.alloc import AllocationResult
    from dtmsi.driver import CompileResult
    from dtmsi.model import Machine
    from dtmsi.options import CompileOptions

_FORMAT = click.Choice(["text", "json"])
F = TypeVar("F", bound=Callable[..., Any])


def _emit(result_sink: object, fmt: str, werror: bool, color: bool, writes: bool = True) -> None:
    from dtmsi.diagnostics import DiagnosticSink, render_text, to_json

    assert isinstance(result_sink, DiagnosticSink)
    diags = list(result_sink)
    if fmt == "json":
        click.echo(to_json(diags, werror=werror, omitted=result_sink.omitted), err=True)
        return
    for d in diags:
        click.echo(render_text(d, werror=werror, color=color), err=True)
    if result_sink.omitted:
        click.echo(f"dtmsi: {result_sink.omitted} more diagnostic(s) not shown", err=True)
    errors = result_sink.error_count
    warnings = len(diags) + result_sink.omitted - errors
    if errors:
        tail = "; nothing written" if writes else ""
        click.echo(f"dtmsi: {errors} error(s){f', {warnings} warning(s)' if warnings else ''}{tail}", err=True)


def _werror(werror: bool, warnings: tuple[str, ...]) -> bool:
    """``--werror`` or gcc's spelling ``-Werror``."""
    return werror or "error" in warnings


def _silenced(warnings: tuple[str, ...]) -> frozenset[str]:
    """``-Wno-CODE`` (gcc's spelling) or ``-W no-CODE``: the warnings to silence."""
    from dtmsi.codes import CATALOGUE

    out: set[str] = set()
    for w in warnings:
        if w == "error":
            continue
        if not w.startswith("no-"):
            raise click.BadParameter(f"expected error or no-CODE, got {w!r}", param_hint="-W")
        code = w[3:].upper()
        if code not in CATALOGUE or CATALOGUE[code].is_error:
            raise click.BadParameter(f"{code} is not a warning code", param_hint="-W")
        out.add(code)
    return frozenset(out)


def _emit_kinds(values: tuple[str, ...]) -> frozenset[str] | None:
    """``--emit c,python --emit dtb`` -> the output kinds; None: everything."""
    from dtmsi.options import OUTPUT_KINDS

    if not values:
        return None
    kinds = {k.strip() for v in values for k in v.split(",") if k.strip()}
    unknown = sorted(kinds - set(OUTPUT_KINDS))
    if unknown or not kinds:
        raise click.BadParameter(
            f"unknown output kind {', '.join(map(repr, unknown)) or '(none)'}; "
            f"choose from {', '.join(OUTPUT_KINDS)}",
            param_hint="--emit",
        )
    return frozenset(kinds)


def _use_color(flag: str) -> bool:
    if flag == "always":
        return True
    if flag == "never":
        return False
    return sys.stderr.isatty() and os.environ.get("NO_COLOR") is None


def _options(
    input_file: str,
    include: tuple[str, ...],
    fmt: str,
    werror: bool,
    warning: tuple[str, ...],
    color: str,
) -> CompileOptions:
    """The flags every command shares -> CompileOptions."""
    from dtmsi.options import CompileOptions
    from dtmsi.source import STDIN_NAME

    return CompileOptions(
        input=Path(STDIN_NAME if input_file == "-" else input_file),
        include_dirs=tuple(Path(d) for d in include),
        keep_artifacts=False,
        diagnostics_format=fmt,  # type: ignore[arg-type]
        werror=_werror(werror, warning),
        silenced=_silenced(warning),
        color=_use_color(color),
    )


def _compile(options: CompileOptions, debug: bool, stdin: bool) -> CompileResult:
    """Run the compiler (on standard input's text if ``stdin``): a progress line
    if it takes long on a terminal, never a traceback."""
    from dtmsi.driver import compile_file
    from dtmsi.progress import Progress

    progress = Progress.on_stderr(str(options.input))
    try:
        if stdin:
            progress.phase("reading standard input")
            try:
                if sys.stdin is None:  # started with stdin closed
                    raise OSError("it is closed")
                options = replace(options, input_text=sys.stdin.buffer.read().decode("utf-8"))
            except UnicodeDecodeError as e:
                progress.stop()
                click.echo(f"dtmsi: error: standard input is not UTF-8 text ({e.reason} at byte {e.start})", err=True)
                sys.exit(1)
            except OSError as e:
                progress.stop()
                click.echo(f"dtmsi: error: cannot read standard input: {e.strerror or e}", err=True)
                sys.exit(1)
        return compile_file(options, progress=progress.phase)
    except Exception as e:  # never a traceback for users; --debug shows it
        progress.stop()
        if debug:
            raise
        click.echo(
            f"dtmsi: internal error: {type(e).__name__}: {e}\n"
            "dtmsi: this is a bug in dtmsi; rerun with --debug for the traceback",
            err=True,
        )
        sys.exit(3)
    finally:
        progress.stop()


def _not_stdout(value: str | None, flag: str) -> None:
    # dtmsi writes several files; "-" would become a directory or file named "-".
    if value == "-":
        raise click.UsageError(f"{flag} cannot be '-': dtmsi writes files, not standard output")


def _common(f: F) -> F:
    f = click.option("--debug", is_flag=True, help="Show Python tracebacks for internal errors.")(f)
    f = click.option(
        "--color",
        type=click.Choice(["auto", "always", "never"]),
        default="auto",
        show_default=True,
        help="Colour diagnostics.",
    )(f)
    f = click.option(
        "-W",
        "warning",
        multiple=True,
        metavar="error|no-CODE",
        help="-Werror: treat warnings as errors; -Wno-CODE: silence a warning, e.g. -Wno-W706 "
        "(repeatable; '-W no-W706' works too).",
    )(f)
    f = click.option("--werror", is_flag=True, help="Treat warnings as errors (same as -Werror).")(f)
    f = click.option(
        "--diagnostics-format",
        "fmt",
        type=_FORMAT,
        default="text",
        show_default=True,
        help="How to print diagnostics: gcc-style text or JSON for IDEs and CI.",
    )(f)
    f = click.option(
        "-I",
        "include",
        multiple=True,
        metavar="DIR",
        type=click.Path(file_okay=False),
        help="Search DIR for included files and the base tree, after the including file's own "
        "directory (repeatable; searched in the order given).",
    )(f)
    return f


# "-" reads the input from standard input: diagnostics name it <stdin>, and
# its includes and base tree are found relative to the current directory.
_INPUT = click.argument(
    "input_file", metavar="FILE.msi", type=click.Path(exists=True, dir_okay=False, allow_dash=True)
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="dtmsi", message="%(prog)s %(version)s")
def main() -> None:
    """dtmsi compiles a machine's PCI topology, MSI controllers, partitions and
    MSI policies (a .msi file) into device trees (.dts/.dtb), checked at build time."""


@main.command("compile")
@_INPUT
@click.option(
    "-o",
    "--output",
    metavar="DIR",
    required=True,
    type=click.Path(file_okay=False),
    help="Directory for the outputs (created if missing; unchanged files are not rewritten).",
)
@click.option(
    "--depfile",
    "-M",
    "-MF",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Also write a Make/Ninja depfile listing every input read (with an empty rule per input, "
    "as gcc -MP writes).",
)
@click.option(
    "-MT",
    "depfile_targets",
    multiple=True,
    metavar="TARGET",
    help="Name TARGET as what the depfile's rule makes, instead of the outputs (repeatable), as "
    "gcc -MT does: a stamp file for make, whose outputs keep their mtimes when unchanged.",
)
@click.option(
    "-MP",
    "phony",
    is_flag=True,
    help="Accepted for gcc's sake: the depfile always has an empty rule per input.",
)
@click.option("--report", is_flag=True, help="Print the readable allocation table to stdout.")
@click.option(
    "--emit",
    "emit",
    multiple=True,
    metavar="KINDS",
    help="Write only these outputs (comma-separated, repeatable): dtb, dts, json (allocation.json), "
    "c (<stem>_msi.h/.c), python (<stem>_msi.py), dtbo (<stem>.dtbo, an overlay for the board's DTB; "
    "needs a base tree). Default: all but dtbo.",
)
@_common
def compile_cmd(
    input_file: str,
    output: str,
    depfile: str | None,
    depfile_targets: tuple[str, ...],
    phony: bool,
    report: bool,
    emit: tuple[str, ...],
    include: tuple[str, ...],
    fmt: str,
    werror: bool,
    warning: tuple[str, ...],
    color: str,
    debug: bool,
) -> None:
    """Compile FILE.msi into DIR: device trees (system.dts/.dtb for the whole machine,
    <partition>.dts/.dtb for every partition), allocation.json, and the MSI setup
    stubs <partition>_msi.h/.c/.py (system_msi.* without partitions)."""
    from dtmsi.options import DEFAULT_OUTPUTS

    _not_stdout(output, "-o/--output")
    _not_stdout(depfile, "--depfile")
    if depfile_targets and not depfile:
        raise click.UsageError("-MT names the depfile's target: give --depfile/-M FILE too")
    kinds = _emit_kinds(emit)
    options = replace(
        _options(input_file, include, fmt, werror, warning, color),
        output_dir=Path(output),
        depfile=Path(depfile) if depfile else None,
        depfile_targets=depfile_targets,
        report=report,
        emit=kinds if kinds is not None else DEFAULT_OUTPUTS,
    )
    result = _compile(options, debug, input_file == "-")
    _emit(result.sink, fmt, options.werror, options.color)
    if result.ok and report and result.machine is not None and result.allocation is not None:
        from dtmsi.report import render_table

        click.echo(render_table(result.machine, result.allocation), nl=False)
    sys.exit(0 if result.ok else 1)


@main.command("report")
@_INPUT
@click.option("--json", "as_json", is_flag=True, help="Print allocation.json instead of the table.")
@_common
def report_cmd(
    input_file: str,
    as_json: bool,
    include: tuple[str, ...],
    fmt: str,
    werror: bool,
    warning: tuple[str, ...],
    color: str,
    debug: bool,
) -> None:
    """Print the MSI allocation of FILE.msi: per function the mechanism, vectors
    requested and granted, controller, DeviceID/EventIDs or address/data, and why."""
    options = _options(input_file, include, fmt, werror, warning, color)
    result = _compile(options, debug, input_file == "-")
    _emit(result.sink, fmt, options.werror, options.color, writes=False)
    if not result.ok or result.machine is None or result.allocation is None:
        sys.exit(1)
    from dtmsi.report import render_table, to_json

    click.echo(
        to_json(result.machine, result.allocation) if as_json else render_table(result.machine, result.allocation),
        nl=False,
    )
    sys.exit(0)


@main.command("import")
@click.argument("input_file", metavar="BOARD.dtb|.dts", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "-o",
    "--output",
    metavar="FILE.msi",
    type=click.Path(dir_okay=False),
    help="Where to write the .msi (default: standard output).",
)
def import_cmd(input_file: str, output: str | None) -> None:
    """Describe the PCI side of a board's device tree as a .msi: host bridges,
    bridges, functions, BARs, MSI/INTx routing and the controllers they use.
    The .msi names the original tree as its base; what cannot be imported is
    listed at its top and on stderr."""
    from dtmsi.artifacts import write_if_changed
    from dtmsi.importer import ImportProblem, import_tree

    out = Path(output) if output else None
    try:
        text, notes = import_tree(Path(input_file), out)
    except ImportProblem as e:
        click.echo(f"{input_file}: error: {e}", err=True)
        sys.exit(1)
    for note in notes:
        click.echo(f"{input_file}: note: not imported: {note}", err=True)
    if out is None:
        click.echo(text, nl=False)
    else:
        write_if_changed(out, text.encode())
    sys.exit(0)


@main.command("check")
@_INPUT
@_common
def check_cmd(
    input_file: str,
    include: tuple[str, ...],
    fmt: str,
    werror: bool,
    warning: tuple[str, ...],
    color: str,
    debug: bool,
) -> None:
    """Parse, resolve and check FILE.msi; print diagnostics; write nothing."""
    options = _options(input_file, include, fmt, werror, warning, color)
    result = _compile(options, debug, input_file == "-")
    _emit(result.sink, fmt, options.werror, options.color, writes=False)
    sys.exit(0 if result.ok else 1)


def _analyse_for_tool(
    input_file: str,
    include: tuple[str, ...],
    fmt: str,
    werror: bool,
    warning: tuple[str, ...],
    color: str,
    debug: bool,
) -> tuple[Machine, AllocationResult]:
    """Parse, resolve, check and allocate ``input_file`` (no outputs); print the
    diagnostics; exit 1 on errors. -> (machine, allocation)."""
    from dtmsi.diagnostics import DiagnosticSink
    from dtmsi.driver import analyse

    options = _options(input_file, include, fmt, werror, warning, color)
    sink = DiagnosticSink(werror=options.werror, silenced=options.silenced)
    try:
        analysed = analyse(options, sink)
    except Exception as e:
        if debug:
            raise
        click.echo(f"dtmsi: internal error: {type(e).__name__}: {e}", err=True)
        sys.exit(3)
    _emit(sink, fmt, options.werror, options.color, writes=False)
    if analysed is None or sink.has_errors:
        sys.exit(1)
    return analysed


@main.command("graph")
@click.argument("input_file", metavar="FILE.msi", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "-o",
    "--output",
    metavar="OUT.svg|OUT.dot",
    type=click.Path(dir_okay=False),
    help="Write the picture here: .svg is drawn by Graphviz's dot, .dot is the graph source. "
    "Default: the DOT text on standard output.",
)
@_common
def graph_cmd(
    input_file: str,
    output: str | None,
    include: tuple[str, ...],
    fmt: str,
    werror: bool,
    warning: tuple[str, ...],
    color: str,
    debug: bool,
) -> None:
    """Draw FILE.msi's topology: host bridges, bridges and functions (BDF, requester
    ID), partitions as colours, PEs as boxes, and each function's MSI route to its
    controller with the vectors the allocation grants."""
    suffix = Path(output).suffix.lower() if output else ".dot"
    if output == "-":
        suffix = ".dot"
    if suffix not in (".svg", ".dot", ".gv"):
        raise click.BadParameter(f"expected a .svg or .dot file, got {output!r}", param_hint="-o")
    machine, allocation = _analyse_for_tool(input_file, include, fmt, werror, warning, color, debug)
    from dtmsi.graph import GraphvizError, render_svg, to_dot
    from dtmsi.graphview import build_view

    dot_text = to_dot(build_view(machine, allocation))
    if output is None or output == "-":
        click.echo(dot_text, nl=False)
        sys.exit(0)
    data = dot_text.encode()
    if suffix == ".svg":
        try:
            data = render_svg(dot_text)
        except GraphvizError as e:
            click.echo(f"dtmsi: {e}", err=True)
            sys.exit(2)
    from dtmsi.artifacts import write_if_changed

    try:
        write_if_changed(Path(output), data)
    except OSError as e:
        click.echo(f"dtmsi: cannot write {output}: {e.strerror or e}", err=True)
        sys.exit(1)
    sys.exit(0)


def _fmt_inputs(paths: tuple[str, ...]) -> list[str]:
    """FILE.msi, DIR (every *.msi below it, sorted) or '-' (standard input) -> the files."""
    out: list[str] = []
    for p in paths:
        path = Path(p)
        if p == "-":
            out.append(p)
        elif path.is_dir():
            out.extend(str(f) for f in sorted(path.rglob("*.msi")) if f.is_file())
        elif path.exists():
            out.append(p)
        else:
            raise click.BadParameter(f"no such file or directory: {p!r}", param_hint="FILE")
    return out


@main.command("fmt")
@click.argument("paths", nargs=-1, required=True, metavar="FILE.msi|DIR|-...")
@click.option("--check", is_flag=True, help="Write nothing; list the files formatting would change; exit 1 if any.")
@click.option(
    "-o",
    "--output",
    metavar="FILE|-",
    type=click.Path(dir_okay=False),
    help="Write the formatted text here ('-': standard output) instead of in place (one input only).",
)
@click.option(
    "--diagnostics-format",
    "fmt",
    type=_FORMAT,
    default="text",
    show_default=True,
    help="How to print diagnostics: gcc-style text or JSON.",
)
@click.option("--color", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True)
@click.option("--debug", is_flag=True, help="Show Python tracebacks for internal errors.")
def fmt_cmd(paths: tuple[str, ...], check: bool, output: str | None, fmt: str, color: str, debug: bool) -> None:
    """Lay out .msi files canonically, keeping every comment: in place, to -o, or
    from '-' (standard input) to standard output. A directory means every .msi
    below it. Only whitespace changes, so a file compiles to the same outputs."""
    from dtmsi import codes as C
    from dtmsi.artifacts import write_if_changed
    from dtmsi.diagnostics import DiagnosticSink
    from dtmsi.fmt import FormatError, format_source
    from dtmsi.parser import ParseError
    from dtmsi.source import SourceFile, Span

    inputs = _fmt_inputs(paths)
    if output is not None and (len(inputs) != 1 or check):
        raise click.BadParameter("-o takes exactly one input and no --check", param_hint="-o")
    if inputs.count("-") > 1:
        raise click.BadParameter("standard input ('-') given twice", param_hint="FILE")
    sink = DiagnosticSink()
    results: list[tuple[str, str, str]] = []  # name, text before, text after
    for name in inputs:
        try:
            text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            sink.report(C.INCLUDE_NOT_FOUND, Span(SourceFile(name, ""), 0, 0), f"cannot read '{name}': {reason}")
            continue
        source = SourceFile("<stdin>" if name == "-" else name, text)
        try:
            results.append((name, text, format_source(source)))
        except ParseError as e:
            sink.report(C.UNTERMINATED if e.code == "E102" else C.SYNTAX, e.span, e.message, hint=e.hint)
        except (FormatError, RecursionError) as e:
            if debug:
                raise
            click.echo(f"dtmsi: internal error: {type(e).__name__}: {e}", err=True)
            sys.exit(3)
    if sink.has_errors:
        _emit(sink, fmt, False, _use_color(color), writes=not check)
        sys.exit(1)
    if check:
        changed = [("<stdin>" if name == "-" else name) for name, before, after in results if before != after]
        for name in changed:
            click.echo(name)
        if changed:
            click.echo(f"dtmsi: {len(changed)} file(s) would be reformatted", err=True)
        sys.exit(1 if changed else 0)
    for name, _before, after in results:
        target = output if output is not None else name
        if target == "-":
            click.echo(after, nl=False)
            continue
        try:
            write_if_changed(Path(target), after.encode())
        except OSError as e:
            click.echo(f"dtmsi: cannot write {target}: {e.strerror or e}", err=True)
            sys.exit(1)
    sys.exit(0)


@main.command("explain")
@click.argument("code", metavar="CODE")
def explain_cmd(code: str) -> None:
    """Print the long form of diagnostic CODE (e.g. E302 or w612): the rule,
    where it comes from, and a small input that triggers it."""
    from dtmsi.explain import explain, lookup

    found = lookup(code)
    if found is None:
        raise click.BadParameter(f"{code!r} is not a dtmsi diagnostic code (E101, W612, ...)", param_hint="CODE")
    click.echo(explain(found), nl=False)
