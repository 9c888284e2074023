"""The PAPR model answers as QEMU's spapr_pci.c does (stubs.md 2.2), rule by rule,
and as PowerVM's stricter rules say when asked to."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from dtmsi.sim import SimBar, SimFunction, SimMsi, SimMsix, SimOptions, Simulator
from dtmsi.sim.papr import cell
from tests.sim.machines import BUID, PAPR_HB, PNIC, PNVME, machine, papr_functions

CHANGE, QUERY = 0x2019, 0x2018
WINDOW = 0x400_0000_0000
Bdf = tuple[int, int, int]


def ca(bdf: Bdf) -> int:
    return (bdf[1] << 16) | (bdf[2] << 8)


def change(sim: Simulator, bdf: Bdf, fn: int, count: int, seq: int = 1, nret: int = 4, buid: int = BUID) -> list[int]:
    return sim.rtas_call(CHANGE, 6, nret, [ca(bdf), buid >> 32, buid & 0xFFFFFFFF, fn, count, seq])


def query(sim: Simulator, bdf: Bdf, index: int, buid: int = BUID) -> list[int]:
    return sim.rtas_call(QUERY, 4, 3, [ca(bdf), buid >> 32, buid & 0xFFFFFFFF, index])


def cells(*values: int) -> list[int]:
    return [cell(v) for v in values]


MSIX_ONLY = (1, 0, 0x20)


def papr_sim(options: SimOptions | None = None, extra: Sequence[SimFunction] = ()) -> Simulator:
    fns = [
        *papr_functions(),
        SimFunction(*MSIX_ONLY, 0x1B36, 0x0010, name="msix-only",
                    bars=(SimBar(0, "mem32", 0x4000, 0x8004_0000),), msix=SimMsix(4, 0, 0, 0, 0x2000)),
        *extra,
    ]
    return Simulator([PAPR_HB], fns, options=options)


def test_unknown_phb_or_device_is_a_parameter_error() -> None:
    sim = papr_sim()
    assert change(sim, PNVME, 4, 1, buid=BUID + 1) == cells(-3, 0, 0, 0)
    assert change(sim, (1, 0, 0x28), 4, 1) == cells(-3, 0, 0, 0)
    assert query(sim, PNVME, 0, buid=BUID + 1) == cells(-3, 0, 0)


def test_function_1_picks_msi_then_msix() -> None:
    sim = papr_sim()
    assert change(sim, PNVME, 1, 1) == [0, 1, 2, 1]  # has MSI and MSI-X: MSI
    assert change(sim, MSIX_ONLY, 1, 1) == [0, 1, 2, 2]  # MSI-X only: MSI-X
    g = sim.papr.grant_of(MSIX_ONLY)
    assert g is not None and g.kind == "msix"


def test_function_3_needs_msi_and_4_needs_msix() -> None:
    sim = papr_sim()
    assert change(sim, MSIX_ONLY, 3, 1) == cells(-3, 0, 0, 0)
    assert change(sim, PNIC, 4, 1) == cells(-3, 0, 0, 0)


@pytest.mark.parametrize("fn", [0, 2, 5, 6, 7])
def test_other_functions_are_not_implemented(fn: int) -> None:
    assert change(papr_sim(), PNVME, fn, 1) == cells(-3, 0, 0, 0)


def test_release() -> None:
    sim = papr_sim()
    assert change(sim, PNVME, 3, 0) == cells(-1, 0, 0, 0)  # nothing granted
    assert change(sim, PNVME, 4, 2) == [0, 2, 2, 2]
    assert change(sim, PNVME, 3, 0) == [0, 0, 0, 0]
    assert sim.papr.grant_of(PNVME) is None
    msix = sim.state(PNVME).msix
    assert msix is not None and msix.entries[0].address == WINDOW  # QEMU's release loop runs 0 times for MSI-X
    assert change(sim, PNIC, 3, 1)[:2] == [0, 1]
    assert change(sim, PNIC, 1, 0)[:2] == [0, 0]
    msi = sim.state(PNIC).msi
    assert msi is not None and (msi.address, msi.data) == (0, 0)  # the MSI message is zeroed
    assert change(sim, PNIC, 4, 0) == cells(-3, 0, 0, 0)  # the function check comes first


def test_msi_maximum_is_one_while_mme_is_zero() -> None:
    sim = papr_sim()
    assert change(sim, PNVME, 3, 4, seq=7) == [0, 1, 8, 1]  # status 0, ret[1] = max, nothing allocated
    assert sim.papr.grant_of(PNVME) is None
    assert change(sim, PNVME, 3, 1) == [0, 1, 2, 1]


def test_msix_maximum_is_the_table_size() -> None:
    sim = papr_sim()
    assert change(sim, PNVME, 4, 9) == [0, 8, 2, 2]
    assert sim.papr.grant_of(PNVME) is None
    assert change(sim, PNVME, 4, 8) == [0, 8, 2, 2]


def test_sources_and_the_alignment_quirk() -> None:
    sim = papr_sim()
    assert change(sim, PNIC, 3, 1)[:2] == [0, 1]
    assert query(sim, PNIC, 0) == [0, 0x1300, 1]
    assert change(sim, PNVME, 4, 2)[:2] == [0, 2]
    assert query(sim, PNVME, 0) == [0, 0x1302, 1]  # MSI-X blocks are 2-aligned
    assert change(sim, MSIX_ONLY, 4, 1)[:2] == [0, 1]
    assert query(sim, MSIX_ONLY, 0) == [0, 0x1304, 1]


def test_msi_blocks_are_unaligned() -> None:
    extra = [SimFunction(1, 0, 0x28, 1, 2, name="m", msi=SimMsi(1))]
    sim = papr_sim(extra=extra)
    assert change(sim, MSIX_ONLY, 4, 1)[:2] == [0, 1]  # 0x1300
    assert change(sim, (1, 0, 0x28), 3, 1)[:2] == [0, 1]
    assert query(sim, (1, 0, 0x28), 0) == [0, 0x1301, 1]


def test_rerequest_frees_the_previous_grant() -> None:
    sim = papr_sim()
    assert change(sim, PNVME, 4, 2)[:2] == [0, 2]  # 0x1300, 0x1301
    assert change(sim, PNVME, 4, 4)[:2] == [0, 4]  # allocated first (0x1302..), then the old freed
    assert query(sim, PNVME, 0) == [0, 0x1302, 1]
    assert change(sim, PNIC, 3, 1)[:2] == [0, 1]
    assert query(sim, PNIC, 0) == [0, 0x1300, 1]


def test_hypervisor_writes_the_messages() -> None:
    sim = papr_sim()
    change(sim, PNVME, 4, 3)
    msix = sim.state(PNVME).msix
    assert msix is not None
    assert [(e.address, e.data, e.masked) for e in msix.entries[:4]] == [
        (WINDOW, 0x1300, False), (WINDOW, 0x1301, False), (WINDOW, 0x1302, False), (0, 0, True),
    ]  # msix_set_message unmasks the entries it writes
    change(sim, PNVME, 3, 1)
    msi = sim.state(PNVME).msi
    assert msi is not None and (msi.address, msi.data) == (WINDOW, 0x1303)  # MSI: unaligned
    change(sim, PNIC, 3, 1)
    msi = sim.state(PNIC).msi
    assert msi is not None and (msi.address, msi.data) == (0, 0x1300)  # a 32-bit capability keeps the low half


def test_nret_and_sequence_numbers() -> None:
    sim = papr_sim()
    assert change(sim, PNVME, 4, 1, seq=41, nret=3) == [0, 1, 42]
    assert change(sim, PNVME, 4, 1, seq=5, nret=4) == [0, 1, 6, 2]


def test_query() -> None:
    sim = papr_sim()
    assert query(sim, PNVME, 0) == cells(-1, 0, 0)  # no grant
    change(sim, PNVME, 4, 2)
    assert query(sim, PNVME, 1) == [0, 0x1301, 1]
    assert query(sim, PNVME, 2) == cells(-1, 0, 0)  # index >= count
    assert query(sim, (1, 0, 0x28), 0) == cells(-3, 0, 0)


def test_no_room_is_a_hardware_error() -> None:
    sim = papr_sim(SimOptions(source_count=3))
    assert change(sim, PNVME, 4, 4) == cells(-1, 0, 0, 0)


def test_tokens_are_configurable() -> None:
    sim = papr_sim(SimOptions(rtas_change_msi=0x1234))
    assert sim.rtas_call(0x1234, 6, 4, [ca(PNVME), BUID >> 32, BUID & 0xFFFFFFFF, 4, 1, 1]) == [0, 1, 2, 2]
    assert sim.rtas_call(CHANGE, 6, 4, [ca(PNVME), BUID >> 32, BUID & 0xFFFFFFFF, 4, 1, 1]) == cells(-3, 0, 0, 0)
    assert any("unknown RTAS token" in v for v in sim.violations)


# ---------------------------------------------------------------- PowerVM


def test_powervm_refuses_or_clamps_non_powers_of_two() -> None:
    sim = papr_sim(SimOptions(powervm=True))
    assert change(sim, PNVME, 4, 3) == cells(-3, 0, 0, 0)
    sim = papr_sim(SimOptions(powervm=True, powervm_non_pow2="clamp"))
    assert change(sim, PNVME, 4, 3) == [0, 2, 2, 2]
    assert sim.papr.grant_of(PNVME) is None


def test_powervm_msi_maximum_from_mmc_and_mme_written() -> None:
    sim = papr_sim(SimOptions(powervm=True))
    assert change(sim, MSIX_ONLY, 4, 1)[:2] == [0, 1]  # 0x1300: the MSI block below aligns past it
    assert change(sim, PNVME, 3, 4) == [0, 4, 2, 1]
    msi = sim.state(PNVME).msi
    assert msi is not None and msi.mme == 2 and msi.data == 0x1304  # aligned to the block size
    assert change(sim, PNVME, 3, 0)[:2] == [0, 0]
    msi = sim.state(PNVME).msi
    assert msi is not None and msi.mme == 0


def test_powervm_32bit_functions() -> None:
    sim = papr_sim(SimOptions(powervm=True))
    assert change(sim, PNIC, 5, 2) == [0, 2, 2, 1]
    msi = sim.state(PNIC).msi
    assert msi is not None and msi.address == 0xFFFF0000
    assert change(sim, MSIX_ONLY, 6, 2) == [0, 2, 2, 2]
    msix = sim.state(MSIX_ONLY).msix
    assert msix is not None and msix.entries[1].address == 0xFFFF0000


# ---------------------------------------------------------------- injection


def test_busy_then_answer() -> None:
    sim = papr_sim()
    sim.papr.inject_busy([-2, 9902], bdf=PNVME)
    assert change(sim, PNIC, 3, 1)[:2] == [0, 1]  # another function is not affected
    assert change(sim, PNVME, 4, 2, seq=1) == [cell(-2), 0, 2, 0]
    assert change(sim, PNVME, 4, 2, seq=2) == [9902, 0, 3, 0]
    assert change(sim, PNVME, 4, 2, seq=3) == [0, 2, 4, 2]
    assert sim.violations == []
    with pytest.raises(ValueError):
        sim.papr.inject_busy([-1])


def test_busy_queries() -> None:
    sim = papr_sim()
    change(sim, PNVME, 4, 1)
    sim.papr.inject_busy([9900], service="query")
    assert query(sim, PNVME, 0) == [9900, 0, 0]
    assert query(sim, PNVME, 0) == [0, 0x1300, 1]


def test_short_grant() -> None:
    sim = papr_sim()
    sim.papr.inject_short(PNVME, 2)
    assert change(sim, PNVME, 4, 4) == [0, 2, 2, 2]
    assert sim.papr.grant_of(PNVME) is None
    assert change(sim, PNVME, 4, 2) == [0, 2, 2, 2]


def test_error_injection() -> None:
    sim = papr_sim()
    sim.papr.inject_error(-1, bdf=PNVME, function=4, count=1)
    assert change(sim, PNVME, 3, 1)[:2] == [0, 1]  # another function code
    assert change(sim, PNVME, 4, 2) == cells(-1, 0, 0, 0)
    assert change(sim, PNVME, 4, 2)[:2] == [0, 2]


def test_requests_are_recorded() -> None:
    sim = machine()
    change(sim, PNVME, 4, 2)
    query(sim, PNVME, 0)
    assert [(r.service, r.bdf, r.rets[:2]) for r in sim.papr.requests] == [
        ("change-msi", PNVME, (0, 2)), ("query", PNVME, (0, 0x1300)),
    ]
