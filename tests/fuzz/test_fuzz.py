"""dtmsi's own fuzzing, run by the normal test command within a fixed budget.

Each test draws inputs with Hypothesis (grammar-aware generation, mutation of
the bundled examples, mutation of a base tree's DTS and DTB) and hands them
to ``harness.judge``, which asserts the promises of issue 10 for every input.
A last test runs the atheris (libFuzzer, coverage-guided) target for a few
seconds in a child process.

Budget: ``DTMSI_FUZZ_SECONDS`` per test (default 8, so the four tests stay
well under a minute): Hypothesis runs in chunks of 40 examples until it is
spent. ``make fuzz`` sets it for a long run; ``-s`` prints inputs per second.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from tests.fuzz import harness
from tests.fuzz.inputs import ROOT, mutated_base, mutated_example, programs

BUDGET = float(os.environ.get("DTMSI_FUZZ_SECONDS", "8"))

# One Hypothesis run is a chunk of this many examples; a test runs chunks
# (each with fresh random choices) until its budget is spent, so the budget
# bounds it however fast or slow the inputs are.
CHUNK = settings(
    max_examples=40,
    deadline=None,
    database=None,
    phases=[Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)


def _run_for_budget(chunk: Callable[[], None]) -> int:
    start = time.monotonic()
    chunks = 0
    while True:
        chunk()
        chunks += 1
        if time.monotonic() - start > BUDGET:
            return chunks


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    total = sum(v for k, v in harness.STATS.items() if " exit " in k)
    seconds = sum(harness.LAST[k] - harness.FIRST[k] for k in harness.LAST)
    if total:
        lines = [f"  {k}: {v}" for k, v in sorted(harness.STATS.items())]
        rate = total / seconds if seconds else 0.0
        print(f"\nfuzz (Hypothesis): {total} inputs in {seconds:.0f} s, {rate:.1f} inputs/s\n" + "\n".join(lines))


def test_generated_programs() -> None:
    @CHUNK
    @given(programs())
    def chunk(files: dict[str, bytes]) -> None:
        harness.judge(files, "in.msi", "generated")

    _run_for_budget(chunk)


def test_mutated_examples() -> None:
    @CHUNK
    @given(mutated_example())
    def chunk(case: tuple[dict[str, bytes], str]) -> None:
        files, top = case
        harness.judge(files, top, "mutated example")

    _run_for_budget(chunk)


def test_mutated_base_trees() -> None:
    @CHUNK
    @given(mutated_base())
    def chunk(case: tuple[dict[str, bytes], str]) -> None:
        files, top = case
        harness.judge(files, top, "mutated base tree")

    _run_for_budget(chunk)


def test_harness_catches_a_broken_compiler(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Negative controls: the judge passes a good input, and fails when the
    compiler raises, when a DTB differs from dtc's, and when dtc warns."""
    from dtmsi import driver

    files = {"in.msi": (ROOT / "examples/worked-native/worked-native.msi").read_bytes()}
    assert harness.judge(files, "in.msi", "control") == 0

    def boom(*args: object) -> object:
        raise RuntimeError("injected")

    with monkeypatch.context() as m:
        m.setattr(driver, "analyse", boom)
        with pytest.raises(AssertionError, match="exit 3"):
            harness.judge(files, "in.msi", "control")

    dts = tmp_path / "t.dts"
    dts.write_text("/dts-v1/;\n/ { n { reg = <1>; }; };\n")  # reg without a unit address: dtc warns
    with pytest.raises(AssertionError, match="dtc warns"):
        harness._dtc_agrees(dts, b"")
    dts.write_text("/dts-v1/;\n/ { };\n")
    with pytest.raises(AssertionError, match="differs"):
        harness._dtc_agrees(dts, b"\xd0\x0d\xfe\xed")


def test_atheris_coverage_guided(tmp_path: Path) -> None:
    """A short libFuzzer run of tests/fuzz/atheris_target.py; any finding
    (a failed assertion in the judge) makes libFuzzer exit non-zero."""
    seconds = max(5, int(BUDGET * 0.75))
    r = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.atheris_target", f"-max_total_time={seconds}", "-rss_limit_mb=2048",
         "-timeout=30", f"-artifact_prefix={tmp_path}/"],
        cwd=ROOT, capture_output=True, text=True, timeout=seconds + 120,
    )
    # libFuzzer's progress lines bury a finding's report, and atheris prints
    # the Python traceback on stdout: keep both, and show what is not progress.
    (tmp_path / "atheris.log").write_text(r.stdout + r.stderr)
    report = [ln for ln in (r.stdout + r.stderr).splitlines() if not ln.startswith("#") and "INFO:" not in ln]
    assert r.returncode == 0, f"log: {tmp_path / 'atheris.log'}\n" + "\n".join(report)[-6000:]
    assert "Done" in r.stderr, r.stderr[-2000:]
    print("\nfuzz (atheris): " + r.stderr.strip().splitlines()[-1])
