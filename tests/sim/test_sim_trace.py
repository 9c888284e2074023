"""The hooks of CONTRACT.md: their Python signatures, the trace text, failures, missing hooks."""

from __future__ import annotations

import pytest

from dtmsi.sim import HOOK_NAMES, HookError, SimHostBridge, Simulator
from dtmsi.sim.device import format_bdf, parse_bdf
from tests.sim.machines import BUID, NIC, NVME, PNVME, machine, native_functions


def test_contract_trace_lines() -> None:
    """The example lines of CONTRACT.md "Trace" (opal_get_msi with what PHB4 really composes)."""
    opal = SimHostBridge("opal0", 5, "opal", opal_phb_id=0, msi_base=0, msi_count=0x800)
    sim = Simulator([*machine().host_bridges, opal], native_functions())
    papr = machine()
    assert sim.cfg_read(0, 1, 0, 0x34, 1) == 0x40
    sim.cfg_write(0, 1, 0, 0x52, 2, 0x81)
    sim.cfg_write(0, 1, 0, 0x04, 2, 0x2)
    assert sim.mmio_read32(0x10002000C) == 1
    sim.mmio_write32(0x100020000, 0x8090040)
    sim.delay_us(10000)
    sim.log(2, "0000:01:00.0 nvme0: msix 2")
    assert papr.rtas_call(0x2019, 6, 4, [0x1000, 0x8000000, 0x20000000, 0x4, 0x4, 0x1]) == [0, 4, 2, 2]
    assert sim.opal_set_xive_pe(0, 1, 0x7F0) == 0
    assert sim.opal_get_msi(0, 1, 0x7F0, 1) == (0, 0x1000000000007E00, 0x10)
    assert sim.trace_lines() == [
        "cfg_read 0000:01:00.0 0x034 1 -> 0x40",
        "cfg_write 0000:01:00.0 0x052 2 0x81",
        "cfg_write 0000:01:00.0 0x004 2 0x2",
        "mmio_read32 0x10002000c -> 0x1",
        "mmio_write32 0x100020000 0x8090040",
        "delay_us 10000",
        'log 2 "0000:01:00.0 nvme0: msix 2"',
        "opal_set_xive_pe 0x0 0x1 0x7f0 -> 0x0",
        "opal_get_msi 0x0 0x1 0x7f0 1 -> 0x0 0x1000000000007e00 0x10",
    ]
    assert papr.trace_lines() == ["rtas 0x2019 6 4 [0x1000 0x8000000 0x20000000 0x4 0x4 0x1] -> [0x0 0x4 0x2 0x2]"]
    assert sim.violations == [] and papr.violations == []


def test_trace_details() -> None:
    sim = machine()
    sim.log(0, 'tab\tquote" back\\slash é')
    sim.cfg_read(0, 1, 0, 0x100, 4)
    sim.rtas_call(0x2019, 6, 3, [0x1000, BUID >> 32, BUID & 0xFFFFFFFF, 2, 1, 1])  # function 2: -3
    assert sim.trace_lines() == [
        r'log 0 "tab\tquote\" back\\slash \xe9"',
        "cfg_read 0000:01:00.0 0x100 4 -> 0x0",
        "rtas 0x2019 6 3 [0x1000 0x8000000 0x20000000 0x2 0x1 0x1] -> [0xfffffffd 0x0 0x0]",
    ]
    assert sim.trace[1].bdf == NVME and sim.trace[2].bdf == PNVME and sim.trace[0].bdf is None
    assert sim.logs == [(0, 'tab\tquote" back\\slash é')]
    assert sim.delayed_us == 0


def test_injected_hook_failures() -> None:
    sim = machine()
    sim.fail_hook("cfg_read", skip=1, count=2, match=lambda a: a[3] == 0)
    sim.fail_hook("cfg_write")
    sim.fail_hook("rtas_call", count=None)
    assert sim.cfg_read(0, 1, 0, 0, 4) == 0xA808144D  # skipped
    with pytest.raises(HookError):
        sim.cfg_read(0, 1, 0, 0, 4)
    assert sim.cfg_read(0, 1, 0, 4, 2) == 0  # does not match
    with pytest.raises(OSError):  # HookError is an OSError
        sim.cfg_read(0, 1, 1, 0, 2)
    assert sim.cfg_read(0, 1, 1, 0, 2) == 0x8086
    with pytest.raises(HookError):
        sim.cfg_write(0, 1, 0, 4, 2, 6)
    assert sim.state(NVME).command == 0  # a failed write does nothing
    sim.cfg_write(0, 1, 0, 4, 2, 6)
    for _ in range(2):
        with pytest.raises(HookError):
            sim.rtas_call(0x2019, 6, 4, [0x1000, BUID >> 32, BUID & 0xFFFFFFFF, 4, 1, 1])
    assert sim.papr.requests == []
    assert sim.trace_lines()[1] == "cfg_read 0000:01:00.0 0x000 4 -> !"
    assert sim.trace_lines()[5] == "cfg_write 0000:01:00.0 0x004 2 0x6 -> !"
    assert sim.trace_lines()[-1] == "rtas 0x2019 6 4 [0x1000 0x8000000 0x20000000 0x4 0x1 0x1] -> !"
    assert [r.failed for r in sim.trace].count(True) == 5
    with pytest.raises(ValueError):
        sim.fail_hook("log")


def test_missing_hooks() -> None:
    sim = machine(missing_hooks=("opal_get_msi", "log"))
    assert getattr(sim, "opal_get_msi", None) is None
    assert getattr(sim, "log", None) is None
    assert all(getattr(sim, h) is not None for h in HOOK_NAMES if h not in ("opal_get_msi", "log"))
    with pytest.raises(ValueError):
        machine(missing_hooks=("cfg_peek",))


def test_bdf_text() -> None:
    assert format_bdf((0, 1, 0x0A)) == "0000:01:01.2"
    assert parse_bdf("0001:02:1f.7") == (1, 2, 0xFF)
    assert parse_bdf("01:00.1") == NIC
    with pytest.raises(ValueError):
        parse_bdf("nonsense")
