"""Compile options: one frozen dataclass, built by the CLI (or a test) and passed down."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

# What ``compile --emit`` can choose; everything but the overlay by default
# (an overlay is for boards whose DTB comes from elsewhere, and needs a base tree).
OUTPUT_KINDS = ("dtb", "dts", "json", "c", "python", "dtbo")
DEFAULT_OUTPUTS = frozenset(OUTPUT_KINDS) - {"dtbo"}


@dataclass(frozen=True)
class CompileOptions:
    input: Path  # source.STDIN_NAME with input_text: read from standard input
    output_dir: Path | None = None  # None: check only, write nothing
    # Without an output directory: keep the outputs' bytes in memory
    # (CompileResult.artifacts, for tests and tools) or make them only to
    # check them and let each go as it is written (dtmsi check / report).
    keep_artifacts: bool = True
    diagnostics_format: Literal["text", "json"] = "text"
    werror: bool = False
    silenced: frozenset[str] = frozenset()
    depfile: Path | None = None
    # -MT: what the depfile's rule makes, instead of the outputs (a stamp file for make)
    depfile_targets: tuple[str, ...] = ()
    report: bool = False  # also write the readable allocation table
    emit: frozenset[str] = DEFAULT_OUTPUTS  # which outputs to write (OUTPUT_KINDS)
    color: bool = False
    include_dirs: tuple[Path, ...] = ()  # -I, searched in order after the including file's directory
    input_text: str | None = None  # the input itself, when it is not read from ``input`` (stdin)
