"""Compiled examples, shared by the simulator tests (each compiled once)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dtmsi.driver import compile_file
from dtmsi.model import Machine
from dtmsi.options import CompileOptions
from dtmsi.report import to_json

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*/*.msi"))


@dataclass(frozen=True)
class Compiled:
    machine: Machine
    allocation: dict[str, Any]


_cache: dict[Path, Compiled] = {}


def compiled(path: Path) -> Compiled:
    if path not in _cache:
        r = compile_file(CompileOptions(input=path))
        assert r.machine is not None and r.allocation is not None, f"{path} does not compile"
        _cache[path] = Compiled(r.machine, json.loads(to_json(r.machine, r.allocation)))
    return _cache[path]


@pytest.fixture(params=EXAMPLES, ids=[p.stem for p in EXAMPLES])
def example(request: pytest.FixtureRequest) -> Compiled:
    path: Path = request.param
    return compiled(path)
