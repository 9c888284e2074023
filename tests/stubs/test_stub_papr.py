"""PAPR at run time: the hypervisor's answers, and each policy's outcome.

tests/stubs/data/papr-policies.msi has four functions: nvme0 (MSI-X 8, then
MSI, then INTx; on a short grant degrade to no fewer than 4), nic0 (the same
chain, on a short grant fall back), ssd0 (MSI-X 8 or fail) and eth0 (MSI 4
with the no-64bit-msi quirk). The simulator's hypervisor is told to be busy,
to grant fewer vectors, or to fail; every scenario runs in the C and the
Python stub with identical traces, and the simulator checks its invariants.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dtmsi.sim import SimOptions, Simulator
from tests.stubs.stubrun import Compiled, PyRun, compile_msi, final_state_problems, parity

DATA = Path(__file__).parent / "data"
POWERVM = SimOptions(powervm=True)
NVME0, NIC0, SSD0, ETH0 = ((0, 0, 0x08), (0, 0, 0x10), (0, 0, 0x18), (0, 0, 0x20))
OK, E_FW, E_FW_BUSY_TIMEOUT, E_SHORT_GRANT, E_HOOK = 0, -9, -10, -11, -8


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Compiled:
    return compile_msi(DATA / "papr-policies.msi", tmp_path_factory.mktemp("papr"))


def changes(sim: Simulator, bdf: tuple[int, int, int]) -> list[tuple[int, int, int]]:
    """(function code, count, sequence number) of every ibm,change-msi for ``bdf``."""
    return [(r.args[3], r.args[4], r.args[5]) for r in sim.papr.requests if r.service == "change-msi" and r.bdf == bdf]


def queries(sim: Simulator, bdf: tuple[int, int, int]) -> list[int]:
    return [r.args[3] for r in sim.papr.requests if r.service == "query" and r.bdf == bdf]


def run(
    compiled: Compiled,
    tmp_path: Path,
    setup: Callable[[Simulator], object] | None = None,
    steps: list[str] | None = None,
) -> tuple[PyRun, Simulator]:
    """Both stubs on the PowerVM model; the C side's simulator (the traces are equal)."""
    py, _, sim = parity(compiled, compiled.stubs[0], steps or ["setup_all"], tmp_path, POWERVM, setup)
    assert sim.violations == [], sim.violations
    assert py.sim.violations == []
    return py, sim


def result(py: PyRun, index: int) -> Any:
    return py.results[index]


def test_full_grants_ask_once_up_front(compiled: Compiled, tmp_path: Path) -> None:
    py, sim = run(compiled, tmp_path)
    assert py.values == [0]
    assert final_state_problems(compiled, compiled.stubs[0], sim) == []
    # One request per function for the whole count, before its queries; one query per vector.
    assert changes(sim, NVME0) == [(4, 8, 1)]
    assert queries(sim, NVME0) == list(range(8))
    # no-64bit-msi: function 5 first (PowerVM has it), as Linux does.
    assert changes(sim, ETH0) == [(5, 4, 1)]
    assert [r.mechanism for r in py.results] == ["msix", "msix", "msix", "msi"]
    assert [r.vec[0].irq for r in py.results] == [sim.papr.grants[b].first for b in (NVME0, NIC0, SSD0, ETH0)]


def test_busy_answers_are_retried_with_the_sequence_number_fed_back(compiled: Compiled, tmp_path: Path) -> None:
    def busy(sim: Simulator) -> None:
        sim.papr.inject_busy([-2, 9901, -2], bdf=NVME0, service="change-msi")
        sim.papr.inject_busy([9900], bdf=NVME0, service="query")

    py, sim = run(compiled, tmp_path, busy)
    assert py.values == [0]
    # Each retry passes back the sequence number the busy answer returned.
    assert changes(sim, NVME0) == [(4, 8, 1), (4, 8, 2), (4, 8, 3), (4, 8, 4)]
    assert sim.delayed_us == 10_000 + 1_000  # 9901: 10 ms, then 9900: 1 ms
    assert result(py, 0).vectors == 8


def test_a_hypervisor_that_stays_busy_times_out(compiled: Compiled, tmp_path: Path) -> None:
    def busy(sim: Simulator) -> None:
        sim.papr.inject_busy([-2] * 100, bdf=SSD0, service="change-msi")

    py, sim = run(compiled, tmp_path, busy)
    assert py.values == [1]
    r = result(py, 2)
    assert (r.status, r.mechanism, r.set_up) == (E_FW_BUSY_TIMEOUT, "none", False)
    assert len(changes(sim, SSD0)) == 65  # the first try and 64 retries
    state = sim.state(SSD0)
    assert state.msix is not None and not state.msix.enabled
    assert result(py, 3).status == OK  # the others carry on


def test_short_grant_degrades_to_what_was_granted(compiled: Compiled, tmp_path: Path) -> None:
    py, sim = run(compiled, tmp_path, lambda sim: sim.papr.inject_short(NVME0, 4))
    r = result(py, 0)
    assert (r.status, r.mechanism, r.vectors, r.requested) == (OK, "msix", 4, 4)
    assert changes(sim, NVME0) == [(4, 8, 1), (4, 4, 1)]
    assert queries(sim, NVME0) == [0, 1, 2, 3]
    msix = sim.state(NVME0).msix
    assert msix is not None and msix.enabled


def test_short_grant_below_the_minimum_falls_back_to_msi(compiled: Compiled, tmp_path: Path) -> None:
    py, sim = run(compiled, tmp_path, lambda sim: sim.papr.inject_short(NVME0, 2, "msix"))
    r = result(py, 0)
    assert (r.status, r.mechanism, r.vectors) == (OK, "msi", 8)
    # MSI-X 8 short (2 < 4): released (function 3, count 0; 1 when 3 finds
    # nothing: the short answer allocated nothing), then MSI through function 3.
    assert changes(sim, NVME0) == [(4, 8, 1), (3, 0, 1), (1, 0, 1), (3, 8, 1)]
    state = sim.state(NVME0)
    assert state.msix is not None and not state.msix.enabled
    assert state.msi is not None and state.msi.enabled


def test_fallback_policy_releases_and_takes_the_next_mechanism(compiled: Compiled, tmp_path: Path) -> None:
    py, sim = run(compiled, tmp_path, lambda sim: sim.papr.inject_short(NIC0, 4))
    r = result(py, 1)
    # 4 would do for 'degrade' (its minimum is 4); 'fallback' moves on at once.
    assert (r.status, r.mechanism, r.vectors) == (OK, "msi", 4)
    assert changes(sim, NIC0) == [(4, 8, 1), (3, 0, 1), (1, 0, 1), (3, 4, 1)]


def test_fail_policy_releases_and_reports_the_short_grant(compiled: Compiled, tmp_path: Path) -> None:
    py, sim = run(compiled, tmp_path, lambda sim: sim.papr.inject_short(SSD0, 4))
    assert py.values == [1]
    r = result(py, 2)
    assert (r.status, r.vectors, r.requested, r.mechanism, r.set_up) == (E_SHORT_GRANT, 4, 8, "none", False)
    assert changes(sim, SSD0) == [(4, 8, 1), (3, 0, 1), (1, 0, 1)]  # release, and function 1 when 3 finds nothing
    assert SSD0 not in sim.papr.grants
    assert [x.status for x in py.results if x is not r] == [OK, OK, OK]


def test_short_everywhere_ends_in_intx(compiled: Compiled, tmp_path: Path) -> None:
    py, sim = run(compiled, tmp_path, lambda sim: sim.papr.inject_short(NVME0, 2))
    r = result(py, 0)
    assert (r.status, r.mechanism, r.vectors) == (OK, "intx", 0)
    assert changes(sim, NVME0) == [(4, 8, 1), (3, 0, 1), (1, 0, 1), (3, 8, 1), (3, 0, 1), (1, 0, 1)]
    assert NVME0 not in sim.papr.grants


def test_errors_fall_through_the_chain_to_intx(compiled: Compiled, tmp_path: Path) -> None:
    def refuse(sim: Simulator) -> None:
        sim.papr.inject_error(-1, bdf=NVME0)

    py, sim = run(compiled, tmp_path, refuse)
    r = result(py, 0)
    # MSI-X refused, MSI refused (function 3, then 1): INTx, the policy's last resort.
    assert (r.status, r.mechanism, r.vectors) == (OK, "intx", 0)
    assert changes(sim, NVME0) == [(4, 8, 1), (3, 8, 1), (1, 8, 1)]
    state = sim.state(NVME0)
    assert not state.intx_disabled
    assert not (state.msi and state.msi.enabled) and not (state.msix and state.msix.enabled)


def test_an_error_without_a_fallback_fails_the_function(compiled: Compiled, tmp_path: Path) -> None:
    py, sim = run(compiled, tmp_path, lambda sim: sim.papr.inject_error(-3, bdf=SSD0))
    r = result(py, 2)
    assert (r.status, r.fw_status, r.mechanism) == (E_FW, -3, "none")
    assert changes(sim, SSD0) == [(4, 8, 1)]  # nothing granted: nothing to release


def test_a_failing_query_releases_the_grant(compiled: Compiled, tmp_path: Path) -> None:
    def fail_third_query(sim: Simulator) -> None:
        sim.fail_hook("rtas_call", skip=2, match=lambda args: args[0] == 0x2018 and args[3] == SSD0[2] << 8)

    py, sim = run(compiled, tmp_path, fail_third_query)
    r = result(py, 2)
    assert (r.status, r.mechanism, r.set_up) == (E_HOOK, "none", False)
    # The function is left disabled and its grant given back (function 3
    # refuses an MSI-X-only function on QEMU's rules; 1 takes it).
    assert queries(sim, SSD0) == [0, 1]
    assert changes(sim, SSD0) == [(4, 8, 1), (3, 0, 1), (1, 0, 1)]
    assert SSD0 not in sim.papr.grants
    state = sim.state(SSD0)
    assert state.msix is not None and not state.msix.enabled
    assert result(py, 3).status == OK


def test_qemu_grants_a_multi_vector_msi_one_vector(compiled: Compiled, tmp_path: Path) -> None:
    """QEMU's quirk (it reads MME, which the OS never writes under PAPR):
    eth0 asks MSI 4 and is offered 1; its policy degrades to 1."""
    py, _, sim = parity(compiled, compiled.stubs[0], ["setup_all"], tmp_path, SimOptions(powervm=False))
    assert sim.violations == []
    r = py.results[3]
    assert (r.status, r.mechanism, r.vectors) == (OK, "msi", 1)
    # QEMU has no function 5: -3, then function 3 (short: 1), then the
    # degraded request, again from function 5 down, as Linux retries.
    assert changes(sim, ETH0) == [(5, 4, 1), (3, 4, 1), (5, 1, 1), (3, 1, 1)]


def test_missing_rtas_hook_makes_no_call(compiled: Compiled, tmp_path: Path) -> None:
    def no_rtas(sim: Simulator) -> None:
        sim.rtas_call = None  # type: ignore[assignment,method-assign]

    py, sim = run(compiled, tmp_path, no_rtas)
    assert py.values == [4]
    assert {r.status for r in py.results} == {E_HOOK}
    assert sim.trace_lines() == []


def test_teardown_releases_every_grant(compiled: Compiled, tmp_path: Path) -> None:
    py, sim = run(compiled, tmp_path, steps=["setup_all", "teardown_all"])
    assert py.values == [0, 0]
    assert sim.papr.grants == {}
    # Released with count 0: function 3 (which also frees MSI-X), or 1 where
    # the hypervisor refuses 3 (QEMU: a function without MSI).
    assert changes(sim, SSD0)[-2:] == [(3, 0, 1), (1, 0, 1)]
    for bdf in (NVME0, NIC0, ETH0):
        assert changes(sim, bdf)[-1] == (3, 0, 1)
