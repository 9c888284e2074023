"""QEMU's real RTAS judges the generated PAPR stub (pseries, VOF, bare metal).

``papr_baremetal/pseries.msi`` (QEMU pseries's default PHB; e1000e at 02.0
and virtio-net at 03.0 on MSI-X, three nec-usb-xhci at 04.0-06.0 asking 4
MSI vectors with the three short-grant policies) is compiled by dtmsi; its
``system_msi.c`` is linked into a freestanding big-endian ppc64 program whose
hooks are hypercalls (papr_baremetal.py says how).  One boot of about 0.1 s
runs ``setup_all`` and ``teardown_all``; QEMU's ``spapr_pci_*`` trace must
then show that the hypervisor did what the stub reports: a full grant in one
``ibm,change-msi`` per function and one query per vector, QEMU's short answer
to a request above what a device holds (MSI: QEMU grants up to 1 << MME, which
nobody writes under PAPR, so 1) turned into the policy's outcome, and one
release per function at teardown.  Two stubs built from deliberately wrong
tables (the first request one vector short; a config_addr naming another
function) must fail the same check.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .papr_baremetal import (
    E_SHORT_GRANT,
    PSERIES_MSI,
    SPAPR_PCI_MSI_WINDOW,
    Change,
    PaprBuild,
    PaprRun,
    build_program,
    config_addr_of,
    judge,
    mutate_config_addr,
    mutate_first_request,
    parse_output,
    parse_trace,
    run_program,
    system_dtb_phb,
)

NIC, NET, USB0, USB1, USB2 = (f"0000:00:0{d}.0" for d in range(2, 7))


@pytest.fixture(scope="module")
def good_build(tmp_path_factory: pytest.TempPathFactory) -> PaprBuild:
    return build_program(PSERIES_MSI, tmp_path_factory.mktemp("papr-good"))


@pytest.fixture(scope="module")
def good_run(good_build: PaprBuild) -> PaprRun:
    return run_program(good_build)


def _changes(run: PaprRun, bdf: str, phase: str = "setup") -> list[tuple[int, int, int, tuple[int, int] | None]]:
    return [(c.function, c.count, c.first, c.retry) for c in run.trace.changes(phase, config_addr_of(bdf))]


# --------------------------------------------------------------------------
# the machine and the plan
# --------------------------------------------------------------------------


@pytest.mark.linux
def test_the_msi_describes_the_qemu_it_runs(good_build: PaprBuild) -> None:
    """The PHB (BUID, windows, ibm,pe-total-#msi) and the RTAS tokens of
    dtmsi's tree are the ones of QEMU's own tree for the same devices."""
    phb, rtas = system_dtb_phb(good_build.out / "system.dtb")
    assert phb == good_build.qemu.phb_props
    for service in ("ibm,change-msi", "ibm,query-interrupt-source-number"):
        assert rtas[service] == good_build.qemu.rtas[service], service


@pytest.mark.linux
def test_the_plan(good_build: PaprBuild) -> None:
    plan = {
        f["bdf"]: (f["mechanism"], f["vectors_granted"], f["hardware_vectors"])
        for f in good_build.allocation["functions"]
    }
    # Linux's quota arithmetic (what dtmsi predicts) knows nothing of QEMU's
    # MME limit: the plan gives the xHCI controllers 4 MSI vectors each.
    assert plan == {
        NIC: ("msix", 5, 5),
        NET: ("msix", 4, 4),
        USB0: ("msi", 4, 4),
        USB1: ("msi", 4, 4),
        USB2: ("msi", 4, 4),
    }


# --------------------------------------------------------------------------
# the real stub against the real RTAS
# --------------------------------------------------------------------------


@pytest.mark.linux
def test_the_program_boots_runs_and_powers_off(good_run: PaprRun) -> None:
    out = good_run.output
    assert out.begun and out.done and not out.errors, good_run.summary()
    assert out.bars and all(status == 0 for *_, status in out.bars), out.bars
    assert out.failed == {"setup": 1, "teardown": 0}, good_run.summary()  # usb1's policy is 'fail'
    assert good_run.trace.markers_found == ("setup", "teardown")
    assert good_run.boot_s < 10, good_run.boot_s


@pytest.mark.linux
def test_qemu_did_what_the_stub_reports(good_run: PaprRun) -> None:
    assert good_run.problems == (), good_run.summary()


@pytest.mark.linux
def test_a_full_grant_is_one_change_msi_for_the_whole_table_then_one_query_per_vector(good_run: PaprRun) -> None:
    setup = good_run.output.phases["setup"]
    for bdf, n in ((NIC, 5), (NET, 4)):
        [(function, count, first, retry)] = _changes(good_run, bdf)
        assert (function, count, retry) == (4, n, None), good_run.summary()
        assert first != 0
        [change] = good_run.trace.changes("setup", config_addr_of(bdf))
        assert change.queries == [(k, first + k) for k in range(n)]
        r = setup[bdf]
        assert (r.status, r.mechanism, r.vectors, r.requested, r.set_up) == (0, "msix", n, n, True)
        assert r.irqs == tuple(first + k for k in range(n))
        # The hypervisor wrote the table; the stub left the planned entries unmasked.
        assert [(e.entry, e.address, e.data, e.ctrl) for e in r.msix] == [
            (k, SPAPR_PCI_MSI_WINDOW, first + k, 0) for k in range(n)
        ]


@pytest.mark.linux
def test_a_short_grant_follows_the_policy(good_run: PaprRun) -> None:
    """QEMU's answer to 4 MSI vectors on a device with MME 0: success, 1, nothing
    allocated (spapr_pci_msi_retry).  degrade asks again for 1; fail and
    fallback release (QEMU refuses: it holds nothing) and report the short
    grant or go on to INTx."""
    setup = good_run.output.phases["setup"]
    short = (3, 1, 0, (4, 1))
    # degrade: a second request for exactly the offer, then the one query
    [first, second] = _changes(good_run, USB0)
    assert first == short and second[:2] == (3, 1) and second[2] != 0, good_run.summary()
    r = setup[USB0]
    assert (r.status, r.mechanism, r.vectors, r.requested, r.irqs) == (0, "msi", 1, 1, (second[2],))
    assert r.msi is not None and (r.msi["ctrl"] & 1, r.msi["addr"], r.msi["data"]) == (
        1,
        SPAPR_PCI_MSI_WINDOW,
        second[2],
    )
    # fail: E_SHORT_GRANT with what QEMU offered and what was asked
    assert _changes(good_run, USB1) == [short]
    assert len(good_run.trace.events("setup", "release-wrong", config_addr_of(USB1))) == 2  # function 3, then 1
    r = setup[USB1]
    assert (r.status, r.mechanism, r.vectors, r.requested, r.set_up) == (E_SHORT_GRANT, "none", 1, 4, False)
    # fallback: INTx, nothing held
    assert _changes(good_run, USB2) == [short]
    assert len(good_run.trace.events("setup", "release-wrong", config_addr_of(USB2))) == 2
    r = setup[USB2]
    assert (r.status, r.mechanism, r.vectors, r.set_up) == (0, "intx", 0, True)
    assert r.command is not None and r.command & 0x400 == 0  # INTx enabled


@pytest.mark.linux
def test_teardown_releases_every_grant_once_in_reverse_order(good_run: PaprRun) -> None:
    released = [e.config_addr for e in good_run.trace.events("teardown", "release")]
    assert released == [config_addr_of(b) for b in (USB0, NET, NIC)], good_run.summary()
    assert not good_run.trace.changes("teardown") and not good_run.trace.events("teardown", "release-wrong")
    down = good_run.output.phases["teardown"]
    assert all(not r.set_up and r.mechanism == "none" for r in down.values())
    assert all(e.ctrl == 1 and e.msgctl & 0x8000 == 0 for bdf in (NIC, NET) for e in down[bdf].msix)


@pytest.mark.linux
def test_the_msix_writes_qemu_saw_are_vector_controls_of_the_planned_tables(good_run: PaprRun) -> None:
    """Through H_LOGICAL_CI_STORE, into the tables at the BARs dtmsi planned:
    every entry masked after the grant, the granted ones unmasked, all of
    them masked again at teardown."""
    bars = {(b.bus, b.devfn, b.reg): b.value for b in good_run.build.bars}
    nic, net = bars[(0, 0x10, 0x1C)], bars[(0, 0x18, 0x14)]  # e1000e BAR 3, virtio-net BAR 1 (+ 0)

    def vctrl(base: int, n: int, value: int) -> list[tuple[int, int]]:
        return [(base + 16 * k + 0xC, value) for k in range(n)]

    want = {
        "setup": vctrl(nic, 5, 1) + vctrl(nic, 5, 0) + vctrl(net, 4, 1) + vctrl(net, 4, 0),
        "teardown": vctrl(net, 4, 1) + vctrl(nic, 5, 1),
    }
    for phase, expected in want.items():
        writes = [(e.offset, e.value) for e in good_run.trace.events(phase, "msix-write")]
        assert writes == expected, (phase, [(hex(o), v) for o, v in writes])


# --------------------------------------------------------------------------
# negative controls: a stub built from a wrong table fails the same check
# --------------------------------------------------------------------------


@pytest.mark.linux
@pytest.mark.parametrize(
    ("mutation", "victim", "expect"),
    [
        pytest.param(
            mutate_first_request("nic0"), NIC, ["the first ibm,change-msi asked 4", "a full grant"], id="ask-one-fewer"
        ),
        pytest.param(
            mutate_config_addr("net1", NIC),
            NET,
            ["QEMU saw no ibm,change-msi for config_addr 0x1800", "nic0: the stub reports msix x5; QEMU allocated 2"],
            id="config-addr-of-another-function",
        ),
    ],
)
def test_a_stub_from_a_wrong_table_fails_the_check(
    tmp_path: Path, mutation: Callable[[str], str], victim: str, expect: list[str]
) -> None:
    bad = build_program(PSERIES_MSI, tmp_path / "bad", mutate=mutation)
    run = run_program(bad)
    # The stub cannot tell: it reports success for the function it got wrong.
    assert run.output.done, run.summary()
    assert run.output.phases["setup"][victim].status == 0, run.summary()
    assert run.problems, run.summary()
    for text in expect:
        assert any(text in p for p in run.problems), (text, run.summary())


# --------------------------------------------------------------------------
# the oracle itself, on hand-written output and traces (no boot)
# --------------------------------------------------------------------------

_PLAN = {
    "functions": [
        {"bdf": NIC, "name": "nic0", "mechanism": "msix", "vectors_granted": 2, "hardware_vectors": 2},
    ]
}
_OUT = (
    "@@papr begin digest=x\n@@papr caps 0000:00:02.0 ids=8086:10d3 list=0x5@0xd0,0x11@0xa0\n"
    "@@papr marker setup 0000:00:02.0 value=0xa5 status=0\n@@papr setup_all failed=0\n"
    "@@papr fn setup 0000:00:02.0 name=nic0 status=0 strerror=ok fw=0 mechanism=msix vectors=2 requested=2 "
    "set_up=1 config_addr=0x1000 table=0x1 command=0x406\n"
    "@@papr vec setup 0000:00:02.0 index=0 irq=0x1300\n@@papr vec setup 0000:00:02.0 index=1 irq=0x1301\n"
    "@@papr msix setup 0000:00:02.0 entry=0 addr=0x40000000000 data=0x1300 ctrl=0x0 msgctl=0x8001\n"
    "@@papr msix setup 0000:00:02.0 entry=1 addr=0x40000000000 data=0x1301 ctrl=0x0 msgctl=0x8001\n"
    "@@papr marker teardown 0000:00:02.0 value=0x5a status=0\n@@papr teardown_all failed=0\n"
    "@@papr fn teardown 0000:00:02.0 name=nic0 status=0 strerror=ok fw=0 mechanism=none vectors=0 requested=2 "
    "set_up=0 config_addr=0x1000 table=0x1 command=0x6\n"
    "@@papr msix teardown 0000:00:02.0 entry=0 addr=0x40000000000 data=0x1300 ctrl=0x1 msgctl=0x1\n"
    "@@papr msix teardown 0000:00:02.0 entry=1 addr=0x40000000000 data=0x1301 ctrl=0x1 msgctl=0x1\n"
    "@@papr done failed=0\n"
)
_SETUP = "pci_cfg_write e1000e 00:02.0 @0x3c <- 0xa5"
_TEARDOWN = "pci_cfg_write e1000e 00:02.0 @0x3c <- 0x5a"


def _change(n: int, first: int) -> str:
    return f"spapr_pci_rtas_ibm_change_msi cfgaddr 0x1000 func 4, requested {n}, first irq {first}"


def _query(k: int, irq: int) -> str:
    return f"spapr_pci_rtas_ibm_query_interrupt_source_number queries for #{k}, IRQ{irq}"


def _judge(*lines: str) -> list[str]:
    return judge(_PLAN, parse_output(_OUT), parse_trace("\n".join(lines), NIC))


def test_oracle_passes_one_grant_its_queries_and_one_release() -> None:
    release = "spapr_pci_msi Released MSIs (cfg=0x1000)"
    assert _judge(_SETUP, _change(2, 0x1300), _query(0, 0x1300), _query(1, 0x1301), _TEARDOWN, release) == []


def test_oracle_fails_on_per_vector_requests_and_a_missing_release() -> None:
    problems = _judge(_SETUP, _change(1, 0x1300), _query(0, 0x1300), _change(1, 0x1301), _query(0, 0x1301), _TEARDOWN)
    assert any("the first ibm,change-msi asked 1" in p for p in problems), problems
    assert any("QEMU allocated 2 time(s)" in p for p in problems), problems
    assert any("teardown released it 0 time(s)" in p for p in problems), problems


def test_oracle_fails_when_the_sources_are_not_the_grant() -> None:
    problems = _judge(_SETUP, _change(2, 0x1400), _query(0, 0x1400), _query(1, 0x1401), _TEARDOWN)
    assert any("the stub reports sources ['0x1300', '0x1301']; QEMU allocated ['0x1400', '0x1401']" in p
               for p in problems), problems  # fmt: skip


def test_trace_parser_ties_a_retry_and_the_queries_to_their_change() -> None:
    trace = parse_trace(
        "\n".join(
            [
                _SETUP,
                "spapr_pci_msi_retry Guest device at 0x1000 asked 8, have only 5",
                _change(5, 0),
                _change(5, 4864),
                _query(0, 4864),
                "memory_region_ops_write cpu 0 mr 0x1 addr 0x8004000c value 0x1 size 4 name 'msix-table'",
                _TEARDOWN,
            ]
        ),
        NIC,
    )
    assert trace.changes("setup") == [
        Change(0x1000, 4, 5, 0, (8, 5), []),
        Change(0x1000, 4, 5, 4864, None, [(0, 4864)]),
    ]
    [write] = trace.events("setup", "msix-write")
    assert (write.offset, write.value, write.size) == (0x8004000C, 1, 4)
    assert trace.markers_found == ("setup", "teardown")
