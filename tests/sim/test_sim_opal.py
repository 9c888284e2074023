"""OPAL as skiboot's PHB4 composes (core/pci-opal.c, hw/phb4.c)."""

from __future__ import annotations

from dtmsi.sim import SimHostBridge, Simulator, compose_msi
from tests.sim.machines import OPAL_HB, machine


def test_composition() -> None:
    assert compose_msi(0x7F0, True) == (0x1000_0000_0000_7E00, 0x10)  # (1<<60) | ((ive<<4) & ~0x1F0), ive & 0x1F
    assert compose_msi(0x7F0, False) == (0xFFFF_7E00, 0x10)  # 0xFFFF0000 | ((ive<<4) & 0xFFFFFE0F)
    assert compose_msi(0x3, True) == (1 << 60, 0x3)
    assert compose_msi(0x25, False) == (0xFFFF_0200, 0x5)


def test_calls_through_the_hooks() -> None:
    sim = machine()
    phb = OPAL_HB.opal_phb_id
    assert sim.opal_set_xive_pe(phb, 1, 3) == 0
    assert sim.opal_get_msi(phb, 1, 3, 1) == (0, (1 << 60), 3)
    assert sim.opal_get_msi(phb, 1, 3, 0) == (0, 0xFFFF0000, 3)
    assert sim.opal.ive_pe == {(phb, 3): 1}
    assert sim.violations == []
    assert sim.trace_lines() == [
        "opal_set_xive_pe 0x1 0x1 0x3 -> 0x0",
        "opal_get_msi 0x1 0x1 0x3 1 -> 0x0 0x1000000000000000 0x3",
        "opal_get_msi 0x1 0x1 0x3 0 -> 0x0 0xffff0000 0x3",
    ]


def test_parameter_errors() -> None:
    sim = machine()
    phb = OPAL_HB.opal_phb_id
    assert sim.opal_set_xive_pe(phb + 1, 1, 3) == -1  # unknown PHB
    assert sim.opal_set_xive_pe(phb, 512, 3) == -1  # PE >= num_pes (512)
    assert sim.opal_set_xive_pe(phb, 1, 16) == -1  # IVE >= num_irqs - 8 (the msi-ranges count)
    assert sim.opal_get_msi(phb, 1, 16, 1) == (-1, 0, 0)
    assert sim.opal_get_msi(phb + 1, 1, 3, 1) == (-1, 0, 0)
    assert sim.trace_lines()[0] == "opal_set_xive_pe 0x2 0x1 0x3 -> -0x1"
    small = Simulator([SimHostBridge("phb", kind="opal", opal_phb_id=4, msi_count=16, num_pes=256)], [])
    assert small.opal_set_xive_pe(4, 256, 0) == -1
    assert small.opal_set_xive_pe(4, 255, 15) == 0


def test_get_msi_before_set_xive_pe_is_a_violation() -> None:
    sim = machine()
    phb = OPAL_HB.opal_phb_id
    assert sim.opal_get_msi(phb, 1, 5, 1) == (0, (1 << 60) | 0x0, 5)  # still answered, as skiboot does
    assert sim.opal_set_xive_pe(phb, 2, 6) == 0
    sim.opal_get_msi(phb, 1, 6, 1)
    assert [v.split(":")[0] for v in sim.violations] == ["opal-xive-pe", "opal-xive-pe"]
    assert "given to no PE" in sim.violations[0] and "given to PE 0x2" in sim.violations[1]


def test_error_injection() -> None:
    sim = machine()
    phb = OPAL_HB.opal_phb_id
    sim.opal.inject_error("get_msi", -2, xive=3)
    sim.opal.inject_error("set_xive_pe", -7, count=None)
    assert sim.opal_get_msi(phb, 1, 3, 1) == (-2, 0, 0)
    assert sim.opal_set_xive_pe(phb, 1, 3) == -7
    assert sim.opal_set_xive_pe(phb, 1, 4) == -7
