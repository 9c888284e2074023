"""Base-tree problems dtc warns about, as dtmsi warnings in the base file.

A base tree's own problems end up in every output tree dtmsi writes, so
they are reported where they are: in the base file, at the line dtc names.

Chosen: run dtc itself on the base tree (``-I dts|dtb -O dtb -f`` to a
discarded output) and map its warnings, rather than re-implement its checks.
dtc has ~70 of them and adds more between versions; the outputs are judged by
dtc, so its own words are the ones to pass on, exactly and in full. dtc is a
soft dependency: without it (or if it cannot be run), one warning says that
the base tree was not checked. ``DTMSI_DTC`` names another dtc to run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from dtmsi import codes as C
from dtmsi.diagnostics import DiagnosticSink
from dtmsi.source import SourceFile, Span

# "file:12.3-14.5: Warning (check): /path: message"; a DTB input has no position.
_LINE = re.compile(
    r"^(?P<file>.+?):(?:(?P<line>\d+)\.(?P<col>\d+)-(?:\d+\.)?\d+:)? (?P<kind>Warning|ERROR) "
    r"\((?P<check>[\w-]+)\): (?P<message>.*)$"
)


def check_base_tree(path: Path, shown: str, is_dtb: bool, span: Span, sink: DiagnosticSink) -> None:
    """Report dtc's warnings about the base tree at ``path`` (named ``shown``
    in diagnostics); ``span`` is the platform's 'base' statement."""
    dtc = os.environ.get("DTMSI_DTC") or shutil.which("dtc")
    why = None
    if dtc is None:
        why = "dtc is not installed"
    else:
        try:
            proc = subprocess.run(
                [dtc, "-f", "-I", "dtb" if is_dtb else "dts", "-O", "dtb", "-o", os.devnull, str(path)],
                capture_output=True, text=True, errors="replace", timeout=60, check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            why = f"{dtc} could not be run: {e}"
    if why is not None:
        sink.report(C.BASE_TREE_UNCHECKED, span, f"base tree '{shown}' not checked with dtc: {why}",
                    hint="install dtc (Debian: device-tree-compiler) or name one with DTMSI_DTC")
        return
    files: dict[str, tuple[SourceFile, list[int]]] = {}
    for line in proc.stderr.splitlines():
        m = _LINE.match(line)
        if m is None or m["message"].startswith("Failed prerequisite"):
            continue  # a note that a later check was skipped, not a problem of its own
        where = _span(m["file"], str(path), shown, m["line"], files)
        # dtc refuses a tree with an ERROR (it wrote this one only because of -f):
        # dtmsi must not build on it either (found by the fuzzer: a duplicate
        # label dtmsi's reader let through).
        code = C.BASE_TREE if m["kind"] == "ERROR" else C.BASE_TREE_DTC
        sink.report(code, where, f"dtc {m['kind'].lower()} ({m['check']}): {m['message']}",
                    hint="the base tree's problems reach every output tree; fix them in the base file")


def _span(file: str, given: str, shown: str, line: str | None, files: dict[str, tuple[SourceFile, list[int]]]) -> Span:
    """The whole of the line dtc names (its columns count tabs its own way)."""
    got = files.get(file)
    if got is None:
        name = shown if file == given else file
        try:
            text = Path(file).read_text(encoding="utf-8", errors="replace") if line else ""
        except OSError:
            text = ""
        got = files[file] = (SourceFile(name, text), [0, *(m.end() for m in re.finditer("\n", text))])
    src, starts = got
    if not line or not src.text or not 0 < int(line) <= len(starts):
        return Span(src, 0, 0)
    start = starts[int(line) - 1]
    body = src.line_text(int(line))
    indent = len(body) - len(body.lstrip())
    return Span(src, start + indent, start + len(body.rstrip()))
