"""dtmsi's own fuzzing, run by the normal test command within a fixed budget.

Each test draws inputs with Hypothesis (grammar-aware generation, mutation of
the bundled examples, mutation of a base tree's DTS and DTB) and hands them
to ``harness.judge``, which asserts the promises of issue 10 for every input.
A last test runs the atheris (libFuzzer, coverage-guided) target for a few
seconds in a child process.

Budget: ``DTMSI_FUZZ_SECONDS`` per test (default 12, so the four tests stay
under a minute); once spent, the remaining examples return at once.
``DTMSI_FUZZ_EXAMPLES`` raises the number of examples. ``make fuzz`` sets
both for a long run and prints inputs per second.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from tests.fuzz import harness
from tests.fuzz.inputs import ROOT, mutated_base, mutated_example, programs

BUDGET = float(os.environ.get("DTMSI_FUZZ_SECONDS", "12"))
EXAMPLES = int(os.environ.get("DTMSI_FUZZ_EXAMPLES", "0"))

FUZZ = settings(
    deadline=None,
    database=None,
    phases=[Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)


def _budget(default_examples: int) -> settings:
    return settings(FUZZ, max_examples=EXAMPLES or default_examples)


class _Clock:
    """Starts at a test's first example (not at import: collection of a
    long suite would spend the budget)."""

    def __init__(self) -> None:
        self.start: float | None = None

    def spent(self) -> bool:
        now = time.monotonic()
        if self.start is None:
            self.start = now
        return now - self.start > BUDGET


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    total = sum(v for k, v in harness.STATS.items() if " exit " in k)
    seconds = sum(harness.LAST[k] - harness.FIRST[k] for k in harness.LAST)
    if total:
        lines = [f"  {k}: {v}" for k, v in sorted(harness.STATS.items())]
        rate = total / seconds if seconds else 0.0
        print(f"\nfuzz (Hypothesis): {total} inputs in {seconds:.0f} s, {rate:.1f} inputs/s\n" + "\n".join(lines))


_clock_programs = _Clock()


@_budget(120)
@given(programs())
def test_generated_programs(files: dict[str, bytes]) -> None:
    if _clock_programs.spent():
        return
    harness.judge(files, "in.msi", "generated")


_clock_examples = _Clock()


@_budget(80)
@given(mutated_example())
def test_mutated_examples(case: tuple[dict[str, bytes], str]) -> None:
    if _clock_examples.spent():
        return
    files, top = case
    harness.judge(files, top, "mutated example")


_clock_base = _Clock()


@_budget(60)
@given(mutated_base())
def test_mutated_base_trees(case: tuple[dict[str, bytes], str]) -> None:
    if _clock_base.spent():
        return
    files, top = case
    harness.judge(files, top, "mutated base tree")


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
    assert r.returncode == 0, r.stderr[-4000:]
    assert "Done" in r.stderr, r.stderr[-2000:]
    print("\nfuzz (atheris): " + r.stderr.strip().splitlines()[-1])
