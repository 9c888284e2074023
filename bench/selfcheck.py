"""A quick check that the benchmark generator writes valid input, for the test suite.

``check_small()`` generates a 200-function topology, compiles it in-process
into a temporary directory and returns every diagnostic dtmsi reported (an
empty list when the generated file is clean). It measures no time.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from dtmsi.diagnostics import Diagnostic


def check_small(n_functions: int = 200, seed: int = 0) -> list[Diagnostic]:
    """Generate ``n_functions`` functions, compile them; the diagnostics (none expected)."""
    from bench.gen import count_functions, generate
    from dtmsi.driver import compile_file
    from dtmsi.options import CompileOptions

    text = generate(n_functions, seed)
    got = count_functions(text)
    if got != n_functions:
        raise AssertionError(f"generator wrote {got} functions, asked for {n_functions}")
    with tempfile.TemporaryDirectory(prefix="dtmsi-bench-") as tmp:
        src = Path(tmp) / "small.msi"
        src.write_text(text, encoding="utf-8")
        result = compile_file(CompileOptions(input=src, output_dir=Path(tmp) / "out"))
        diags = list(result.sink)
        if not diags and not (Path(tmp) / "out" / "system.dtb").is_file():
            raise AssertionError("compile reported nothing but wrote no system.dtb")
        return diags
