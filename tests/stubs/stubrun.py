"""Compile a .msi, then run its generated stubs against the simulator.

The Python stub is imported and run in process over a fresh ``Simulator``;
the C stub is built with the simulator's harness (gcc unless told otherwise)
and driven over a pipe by ``dtmsi.sim.remote`` over another fresh one built
the same way. Both record their hook calls in the same trace format, so a
test compares the two traces line for line, and holds each to the
simulator's live invariants and to allocation.json.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from dtmsi.diagnostics import render_text
from dtmsi.driver import CompileResult, compile_file
from dtmsi.model import Machine
from dtmsi.options import CompileOptions
from dtmsi.sim import SimOptions, Simulator, check_final_state
from dtmsi.sim.from_model import simulator_from_model
from dtmsi.sim.remote import CResult, HarnessRun, build_c_harness, run_c_stub

# What a scenario step can be: a stub entry point ("setup_all",
# "teardown_one 2", ...) or something done to the simulator in between.
Step = str | Callable[[Simulator], object]


@dataclass
class StubFiles:
    stem: str
    prefix: str
    partition: str | None
    h: Path
    c: Path
    py: Path


@dataclass
class Compiled:
    result: CompileResult
    machine: Machine
    allocation: dict[str, Any]
    out: Path
    stubs: list[StubFiles] = field(default_factory=list)

    def stub(self, partition: str | None = None) -> StubFiles:
        return next(s for s in self.stubs if s.partition == partition)


def compile_msi(src: Path, out: Path) -> Compiled:
    """Compile ``src`` into ``out`` in process; fail with the diagnostics on an error."""
    result = compile_file(CompileOptions(input=src, output_dir=out))
    if not result.ok or result.machine is None:
        raise AssertionError("compile failed:\n" + "\n".join(render_text(d) for d in result.sink))
    machine = result.machine
    allocation = json.loads((out / "allocation.json").read_text())
    compiled = Compiled(result, machine, allocation, out)
    parts: list[str | None] = [p.name for p in machine.partitions] or [None]
    for part in parts:
        stem = f"{part or 'system'}_msi"
        header = (out / f"{stem}.h").read_text()
        prefix = re.search(r"^struct (\w+)_hooks \{", header, re.M)
        assert prefix is not None, f"{stem}.h declares no hooks struct"
        compiled.stubs.append(
            StubFiles(stem, prefix.group(1), part, out / f"{stem}.h", out / f"{stem}.c", out / f"{stem}.py")
        )
    return compiled


_loaded = 0


def load_python_stub(path: Path) -> ModuleType:
    """Import a generated stub under a name of its own (each test gets a fresh module)."""
    global _loaded
    _loaded += 1
    name = f"_dtmsi_stub_{_loaded}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def simulator(compiled: Compiled, stub: StubFiles, options: SimOptions | None = None) -> Simulator:
    return simulator_from_model(compiled.machine, stub.partition, options=options)


@dataclass
class PyRun:
    sim: Simulator
    values: list[int]
    results: list[Any]  # the stub's Result objects

    def comparable(self) -> list[tuple[Any, ...]]:
        return [
            (r.status, r.fw_status, r.vectors, r.requested, r.mechanism, r.set_up, tuple(_vec(v) for v in r.vec))
            for r in self.results
        ]


def _vec(v: Any) -> tuple[int, int, int]:
    return (v.address, v.data, v.irq)


_MECH_NAMES = ("none", "intx", "msi", "msix")


def comparable_c(results: Sequence[CResult], slots: Sequence[int]) -> list[tuple[Any, ...]]:
    return [
        (
            r.status,
            r.fw_status,
            r.vectors,
            r.requested,
            _MECH_NAMES[r.mechanism],
            bool(r.set_up),
            tuple((v.address, v.data, v.irq) for v in r.vec[: slots[i]]),
        )
        for i, r in enumerate(results)
    ]


def run_python(
    stub: StubFiles, sim: Simulator, steps: Sequence[Step], module: ModuleType | None = None
) -> PyRun:
    mod = module or load_python_stub(stub.py)
    s = mod.Stub(sim)
    values: list[int] = []
    for step in steps:
        if callable(step):
            step(sim)
            continue
        name, *args = step.split()
        values.append(getattr(s, name)(*map(int, args)))
    return PyRun(sim, values, s.results)


_built: dict[str, Path] = {}


def build_c(stub: StubFiles, work: Path, cc: str = "gcc", ldflags: Sequence[str] = ()) -> Path:
    """The harness executable for this stub, built once per (content, compiler)."""
    key = hashlib.sha256(stub.c.read_bytes() + stub.h.read_bytes() + cc.encode() + repr(ldflags).encode())
    digest = key.hexdigest()[:16]
    if digest not in _built or not _built[digest].exists():
        where = work / f"c-{digest}"
        where.mkdir(parents=True, exist_ok=True)
        _built[digest] = build_c_harness(stub.c, stub.h, stub.prefix, where, cc=cc, ldflags=tuple(ldflags))
    return _built[digest]


def run_c(
    stub: StubFiles, sim: Simulator, steps: Sequence[Step], exe: Path, runner: Sequence[str] = ()
) -> HarnessRun:
    return run_c_stub(exe, sim, [*steps, "results"], runner)


def slots_of(module: ModuleType) -> list[int]:
    return [f.slots for f in module.FUNCTIONS]


def parity(
    compiled: Compiled,
    stub: StubFiles,
    steps: Sequence[Step],
    work: Path,
    options: SimOptions | None = None,
    setup: Callable[[Simulator], object] | None = None,
    cc: str = "gcc",
    ldflags: Sequence[str] = (),
    runner: Sequence[str] = (),
) -> tuple[PyRun, HarnessRun, Simulator]:
    """Run ``steps`` through both stubs on two identical simulators; assert the
    traces, return values and results are the same. -> (python, C, C's simulator)."""
    module = load_python_stub(stub.py)
    py_sim = simulator(compiled, stub, options)
    c_sim = simulator(compiled, stub, options)
    if setup is not None:
        setup(py_sim)
        setup(c_sim)
    py = run_python(stub, py_sim, steps, module)
    exe = build_c(stub, work, cc, ldflags)
    c = run_c(stub, c_sim, steps, exe, runner)
    py_lines, c_lines = py_sim.trace_lines(), c_sim.trace_lines()
    if py_lines != c_lines:
        first = next(
            (i for i, (a, b) in enumerate(zip(py_lines, c_lines, strict=False)) if a != b),
            min(len(py_lines), len(c_lines)),
        )
        context = "\n".join(
            f"{i}: py {py_lines[i] if i < len(py_lines) else '-'}\n{i}:  c {c_lines[i] if i < len(c_lines) else '-'}"
            for i in range(max(0, first - 3), min(first + 3, max(len(py_lines), len(c_lines))))
        )
        raise AssertionError(f"{stub.stem}: C and Python traces differ at call {first}:\n{context}")
    c_values = [int(v) for cmd, v in c.outputs if cmd != "results"]
    assert py.values == c_values, (py.values, c_values)
    assert py.comparable() == comparable_c(c.results, slots_of(module)), "C and Python results differ"
    return py, c, c_sim


def final_state_problems(compiled: Compiled, stub: StubFiles, sim: Simulator) -> list[str]:
    return check_final_state(sim, compiled.allocation, stub.partition)


def have(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise AssertionError(f"{tool} is not installed; scripts/bootstrap.sh installs it (scripts/apt-packages.txt)")
    return found
