"""Console entry point: answers ``--version`` before importing click and the
compiler, so that build systems probing the tool pay almost nothing."""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from dtmsi import __version__

        sys.stdout.write(f"dtmsi {__version__}\n")
        return
    from dtmsi.cli import main as cli_main

    cli_main()
