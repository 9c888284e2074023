"""Console entry point: answers ``--version`` before importing click and the
compiler, so that build systems probing the tool pay almost nothing."""

from __future__ import annotations

import contextlib
import gc
import os
import sys


def main() -> None:
    # One pass over the input, then os._exit below: the cyclic GC would only
    # rescan the modules, classes and model as they are made (a twentieth of
    # a small compile's start-up). compile_file runs with it off anyway.
    gc.disable()
    if sys.argv[1:] == ["--version"]:
        from dtmsi import __version__

        sys.stdout.write(f"dtmsi {__version__}\n")
        return
    from dtmsi.cli import main as cli_main

    try:
        cli_main()
    except SystemExit as e:
        code = e.code
        if code is not None and not isinstance(code, int):
            sys.stderr.write(f"{code}\n")
            code = 1
        # Every output file is written and closed by now. Skip the interpreter's
        # teardown, which would free the whole model object by object (0.1 s at
        # 10k functions, over a second at 100k) for nothing.
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say
                stream.flush()
        os._exit(code or 0)
