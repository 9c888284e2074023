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
    from dtmsi.driver import CompileResult
    from dtmsi.options import CompileOptions

_FORMAT = click.Choice(["text", "json"])
F = TypeVar("F", bound=Callable[..., Any])


def _emit(result_sink: object, fmt: str, werror: bool, color: bool, writes: bool = True) -> None:
    from dtmsi.diagnostics import DiagnosticSink, render_text, to_json

    assert isinstance(result_sink, DiagnosticSink)
    diags = list(result_sink)
    if fmt == "json":
        click.echo(to_json(diags, werror=werror), err=True)
        return
    for d in diags:
        click.echo(render_text(d, werror=werror, color=color), err=True)
    errors = sum(1 for d in diags if d.code.is_error or werror)
    warnings = len(diags) - errors
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
    "c (<stem>_msi.h/.c), python (<stem>_msi.py). Default: all.",
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
    from dtmsi.options import OUTPUT_KINDS

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
        emit=kinds if kinds is not None else frozenset(OUTPUT_KINDS),
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
