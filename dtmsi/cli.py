"""The command line: flags -> CompileOptions, diagnostics -> stderr, results -> exit codes.

Exit codes: 0 success (warnings allowed), 1 errors in the input, 2 usage errors.
Heavy modules (lark, the compiler) are imported inside the commands so that
``dtmsi --version`` and ``--help`` stay fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from dtmsi import __version__

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


def _silenced(warnings: tuple[str, ...]) -> frozenset[str]:
    from dtmsi.codes import CATALOGUE

    out: set[str] = set()
    for w in warnings:
        if not w.startswith("no-"):
            raise click.BadParameter(f"expected no-CODE, got {w!r}", param_hint="-W")
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


def _run(
    input_file: str,
    output: str | None,
    fmt: str,
    werror: bool,
    warning: tuple[str, ...],
    depfile: str | None,
    report: bool,
    color: str,
    debug: bool,
    emit: frozenset[str] | None = None,
) -> NoReturn:
    from dtmsi.driver import compile_file
    from dtmsi.options import OUTPUT_KINDS, CompileOptions

    options = CompileOptions(
        input=Path(input_file),
        output_dir=Path(output) if output else None,
        keep_artifacts=False,
        diagnostics_format=fmt,  # type: ignore[arg-type]
        werror=werror,
        silenced=_silenced(warning),
        depfile=Path(depfile) if depfile else None,
        report=report,
        color=_use_color(color),
        emit=emit if emit is not None else frozenset(OUTPUT_KINDS),
    )
    try:
        result = compile_file(options)
    except Exception as e:  # never a traceback for users; --debug shows it
        if debug:
            raise
        click.echo(
            f"dtmsi: internal error: {type(e).__name__}: {e}\n"
            "dtmsi: this is a bug in dtmsi; rerun with --debug for the traceback",
            err=True,
        )
        sys.exit(3)
    _emit(result.sink, fmt, werror, options.color, writes=output is not None)
    if result.ok and report and result.machine is not None and result.allocation is not None:
        from dtmsi.report import render_table

        click.echo(render_table(result.machine, result.allocation), nl=False)
    sys.exit(0 if result.ok else 1)


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
        "-W", "warning", multiple=True, metavar="no-CODE", help="Silence a warning, e.g. -W no-W706 (repeatable)."
    )(f)
    f = click.option("--werror", is_flag=True, help="Treat warnings as errors.")(f)
    f = click.option(
        "--diagnostics-format",
        "fmt",
        type=_FORMAT,
        default="text",
        show_default=True,
        help="How to print diagnostics: gcc-style text or JSON for IDEs and CI.",
    )(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="dtmsi", message="%(prog)s %(version)s")
def main() -> None:
    """dtmsi compiles a machine's PCI topology, MSI controllers, partitions and
    MSI policies (a .msi file) into device trees (.dts/.dtb), checked at build time."""


@main.command("compile")
@click.argument("input_file", metavar="FILE.msi", type=click.Path(exists=True, dir_okay=False))
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
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Also write a Make/Ninja depfile listing every input read.",
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
    report: bool,
    emit: tuple[str, ...],
    fmt: str,
    werror: bool,
    warning: tuple[str, ...],
    color: str,
    debug: bool,
) -> None:
    """Compile FILE.msi into DIR: device trees (system.dts/.dtb for the whole machine,
    <partition>.dts/.dtb for every partition), allocation.json, and the MSI setup
    stubs <partition>_msi.h/.c/.py (system_msi.* without partitions)."""
    _run(input_file, output, fmt, werror, warning, depfile, report, color, debug, _emit_kinds(emit))


@main.command("report")
@click.argument("input_file", metavar="FILE.msi", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print allocation.json instead of the table.")
@_common
def report_cmd(
    input_file: str, as_json: bool, fmt: str, werror: bool, warning: tuple[str, ...], color: str, debug: bool
) -> None:
    """Print the MSI allocation of FILE.msi: per function the mechanism, vectors
    requested and granted, controller, DeviceID/EventIDs or address/data, and why."""
    from dtmsi.driver import compile_file
    from dtmsi.options import CompileOptions

    options = CompileOptions(
        input=Path(input_file),
        keep_artifacts=False,
        diagnostics_format=fmt,  # type: ignore[arg-type]
        werror=werror,
        silenced=_silenced(warning),
        color=_use_color(color),
    )
    try:
        result = compile_file(options)
    except Exception as e:
        if debug:
            raise
        click.echo(f"dtmsi: internal error: {type(e).__name__}: {e}", err=True)
        sys.exit(3)
    _emit(result.sink, fmt, werror, options.color, writes=False)
    if not result.ok or result.machine is None or result.allocation is None:
        sys.exit(1)
    from dtmsi.report import render_table, to_json

    click.echo(
        to_json(result.machine, result.allocation) if as_json else render_table(result.machine, result.allocation),
        nl=False,
    )
    sys.exit(0)


@main.command("check")
@click.argument("input_file", metavar="FILE.msi", type=click.Path(exists=True, dir_okay=False))
@_common
def check_cmd(input_file: str, fmt: str, werror: bool, warning: tuple[str, ...], color: str, debug: bool) -> None:
    """Parse, resolve and check FILE.msi; print diagnostics; write nothing."""
    _run(input_file, None, fmt, werror, warning, None, False, color, debug)
