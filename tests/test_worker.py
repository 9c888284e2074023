"""The device-tree worker (dtmsi/backends/worker.py) changes nothing but time.

A compile with the worker (``DTMSI_JOBS=2``: a forked child renders the trees
while the parent writes allocation.json and the stubs) must give the same
files, byte for byte, and the same diagnostics in the same order as one
without it (``DTMSI_JOBS=1``), for every example and every error fixture. A
child that dies without answering is replaced by the parent doing the work; a
parent that is killed takes its child with it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.gen import generate
from dtmsi.artifacts import Outputs
from dtmsi.backends import worker
from dtmsi.diagnostics import render_text
from dtmsi.driver import compile_file
from dtmsi.options import CompileOptions

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*/*.msi") if p.stem == p.parent.name)
FIXTURES = sorted((ROOT / "tests" / "errors").glob("[EW]*.msi"))


def _compile(msi: Path, out: Path, jobs: str, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], dict[str, bytes]]:
    monkeypatch.setenv("DTMSI_JOBS", jobs)
    result = compile_file(CompileOptions(input=msi, output_dir=out))
    said = [render_text(d) for d in result.sink.items]
    files = {p.name: p.read_bytes() for p in sorted(out.iterdir())} if out.is_dir() else {}
    return said, files


@pytest.mark.parametrize("msi", EXAMPLES + FIXTURES, ids=lambda p: p.stem)
def test_same_outputs_and_diagnostics_with_the_worker(
    msi: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(msi.parent)
    serial = _compile(msi, tmp_path / "serial", "1", monkeypatch)
    forked = _compile(msi, tmp_path / "forked", "2", monkeypatch)
    assert forked == serial


def test_a_worker_that_dies_without_answering_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    msi = ROOT / "examples" / "partitions" / "partitions.msi"
    monkeypatch.chdir(msi.parent)
    serial = _compile(msi, tmp_path / "serial", "1", monkeypatch)
    monkeypatch.setenv("DTMSI_TEST_WORKER", "vanish")
    forked = _compile(msi, tmp_path / "forked", "2", monkeypatch)
    assert forked == serial
    assert {"system.dtb", "lpar1.dts"} <= set(forked[1])


def test_when_the_worker_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DTMSI_JOBS", raising=False)
    to_dir, in_memory = Outputs(tmp_path), Outputs(None)
    cpus = len(os.sched_getaffinity(0))
    assert cpus >= 2, "CI has two CPUs; this test needs them"
    assert not worker.wanted(worker.MIN_FUNCTIONS - 1, to_dir)  # too small to pay for a fork
    assert worker.wanted(worker.MIN_FUNCTIONS, to_dir)
    assert worker.wanted(worker.MAX_FUNCTIONS, to_dir)
    assert not worker.wanted(worker.MAX_FUNCTIONS + 1, to_dir)  # the 100k memory budget: serial
    assert not worker.wanted(worker.MIN_FUNCTIONS, in_memory)
    monkeypatch.setenv("DTMSI_JOBS", "1")
    assert not worker.wanted(worker.MIN_FUNCTIONS, to_dir)
    monkeypatch.setenv("DTMSI_JOBS", "2")
    assert worker.wanted(1, to_dir)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(c) for c in task.read_text().split()]
    return found


def test_a_killed_compile_takes_its_worker_with_it(tmp_path: Path) -> None:
    src = tmp_path / "big.msi"
    src.write_text(generate(8000, 1), encoding="utf-8")
    env = dict(os.environ, DTMSI_JOBS="2", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "dtmsi", "compile", str(src), "-o", str(tmp_path / "out")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    child = None
    deadline = time.monotonic() + 60
    while child is None and time.monotonic() < deadline and proc.poll() is None:
        kids = _children(proc.pid)
        child = kids[0] if kids else None
        time.sleep(0.005)
    assert child is not None, "the compile never forked its worker"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        # a zombie reparented to init is reaped by it; a live one would stay "R"/"S"
        stat = Path(f"/proc/{child}/stat").read_text() if Path(f"/proc/{child}/stat").exists() else ""
        if stat.split(") ", 1)[-1].startswith("Z"):
            break
        time.sleep(0.05)
    alive = Path(f"/proc/{child}/stat").exists() and not Path(f"/proc/{child}/stat").read_text().split(") ", 1)[
        -1
    ].startswith("Z")
    assert not alive, "the worker outlived its killed parent"


def test_a_worker_that_fails_outright_never_returns_into_the_compile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by `make fuzz`: a MemoryError escaping the worker's own error
    handling ran the rest of the compile a second time in the child (two
    "internal error" lines). The child now always ends in os._exit; the parent,
    without an answer, does the work itself."""
    msi = ROOT / "examples" / "partitions" / "partitions.msi"
    monkeypatch.chdir(msi.parent)
    serial = _compile(msi, tmp_path / "serial", "1", monkeypatch)

    def fail(self: worker.Worker, parent: int, write_end: int) -> None:
        raise MemoryError

    monkeypatch.setattr(worker.Worker, "_answer", fail)
    forked = _compile(msi, tmp_path / "forked", "2", monkeypatch)
    assert forked == serial
