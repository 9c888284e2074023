"""Find the grammar and template files, in a source checkout or an installed wheel."""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """``grammars`` or ``templates``: inside the package in a wheel, beside it in a checkout."""
    for candidate in (_HERE / name, _HERE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"dtmsi data directory {name!r} not found")


def grammar_text(filename: str) -> str:
    return (data_dir("grammars") / filename).read_text(encoding="utf-8")
