"""Config space and BAR memory behave as hardware does (domain.md 1.1-1.3)."""

from __future__ import annotations

import pytest

from dtmsi.sim import SimBar, SimFunction, SimHostBridge, SimMsi, SimMsix, SimOptions, Simulator
from tests.sim.machines import NIC, NVME, OLD, VF, machine

CMD_MEM = 0x2


def rd(sim: Simulator, bdf: tuple[int, int, int], off: int, width: int) -> int:
    return sim.cfg_read(*bdf, off, width)


def wr(sim: Simulator, bdf: tuple[int, int, int], off: int, width: int, val: int) -> None:
    sim.cfg_write(*bdf, off, width, val)


def caps(sim: Simulator, bdf: tuple[int, int, int]) -> list[tuple[int, int]]:
    """(ID, offset) along the capability list."""
    out = []
    pos = rd(sim, bdf, 0x34, 1)
    while pos:
        out.append((rd(sim, bdf, pos, 1), pos))
        pos = rd(sim, bdf, pos + 1, 1)
    return out


def test_ids_class_header_are_read_only() -> None:
    sim = machine()
    assert rd(sim, NVME, 0x00, 4) == 0xA808144D
    wr(sim, NVME, 0x00, 4, 0x12345678)
    wr(sim, NVME, 0x08, 4, 0xFFFFFFFF)
    wr(sim, NVME, 0x0E, 1, 0x81)
    assert rd(sim, NVME, 0x00, 4) == 0xA808144D
    assert rd(sim, NVME, 0x08, 4) >> 8 == 0x010802
    assert rd(sim, NVME, 0x0E, 1) == 0
    assert rd(sim, NVME, 0x02, 2) == 0xA808
    assert sim.violations == []


def test_command_writable_bits() -> None:
    sim = machine()
    assert rd(sim, NVME, 0x04, 2) == 0
    wr(sim, NVME, 0x04, 2, 0xFFFF)
    assert rd(sim, NVME, 0x04, 2) == 0x0407  # I/O, Memory, Bus Master, INTx Disable
    wr(sim, NVME, 0x04, 1, 0x00)
    assert rd(sim, NVME, 0x04, 2) == 0x0400


def test_status_cap_list_and_pointer() -> None:
    sim = machine()
    assert rd(sim, NVME, 0x06, 2) & 0x10
    wr(sim, NVME, 0x06, 2, 0)
    assert rd(sim, NVME, 0x06, 2) & 0x10
    bare = Simulator([SimHostBridge("hb")], [SimFunction(0, 0, 0, 0x1234, 0x5678, pcie=False)])
    assert rd(bare, (0, 0, 0), 0x06, 2) & 0x10 == 0
    assert rd(bare, (0, 0, 0), 0x34, 1) == 0


def test_default_capability_layout() -> None:
    sim = machine()
    # PCIe at 0x40 (0x3c bytes), MSI-X next, dword aligned, no overlap
    assert caps(sim, NVME) == [(0x10, 0x40), (0x11, 0x7C)]
    # PCIe, then a 64-bit maskable MSI (0x18 bytes)
    assert caps(sim, NIC) == [(0x10, 0x40), (0x05, 0x7C)]
    # conventional PCI: no PCIe capability
    assert caps(sim, OLD) == [(0x05, 0x40)]
    assert rd(sim, NVME, 0x40 + 2, 2) & 0xF == 2  # PCIe capability version 2


def test_declared_offsets_and_overlap() -> None:
    fn = SimFunction(
        0, 0, 0, 1, 2, bars=(SimBar(0, "mem32", 0x1000, 0x1000),),
        msi=SimMsi(1, offset=0x50), msix=SimMsix(1, 0, 0, 0, 0x800, offset=0xB0),
    )
    sim = Simulator([SimHostBridge("hb")], [fn])
    assert caps(sim, (0, 0, 0)) == [(0x05, 0x50), (0x10, 0x5C), (0x11, 0xB0)]
    with pytest.raises(ValueError, match="overlapping"):
        Simulator(
            [SimHostBridge("hb")],
            [SimFunction(0, 0, 0, 1, 2, msi=SimMsi(1, offset=0x50), msix=SimMsix(1, 0, 0, 0, 0x800, offset=0x54))],
        )
    with pytest.raises(ValueError, match="dword"):
        Simulator([SimHostBridge("hb")], [SimFunction(0, 0, 0, 1, 2, pcie=False, msi=SimMsi(1, offset=0x42))])


def test_interrupt_line_rw_pin_ro() -> None:
    sim = machine()
    wr(sim, NIC, 0x3C, 2, 0xFF2A)
    assert rd(sim, NIC, 0x3C, 1) == 0x2A
    assert rd(sim, NIC, 0x3D, 1) == 2


@pytest.mark.parametrize(
    ("bdf", "reg", "sized", "value"),
    [
        (NVME, 0x10, 0xFFFFC004, 0x80020004),  # mem64 16K: type bits 100
        (NVME, 0x14, 0xFFFFFFFF, 0x0),  # its upper half
        (NIC, 0x10, 0xFFFE0000, 0x80040000),  # mem32 128K
        (OLD, 0x10, 0xFFFFFFC1, 0x2001),  # I/O 64 bytes: bit 0 set
        (VF, 0x10, 0x0, 0x0),  # VF BAR registers read 0
    ],
)
def test_bar_sizing(bdf: tuple[int, int, int], reg: int, sized: int, value: int) -> None:
    sim = machine()
    assert rd(sim, bdf, reg, 4) == value
    wr(sim, bdf, reg, 4, 0xFFFFFFFF)
    assert rd(sim, bdf, reg, 4) == sized


def test_msi_64bit_maskable_layout() -> None:
    sim = machine()
    cap = 0x7C
    ctrl = rd(sim, NIC, cap + 2, 2)
    assert ctrl == (3 << 1) | 0x80 | 0x100  # MMC 3 (8 vectors), 64-bit, maskable
    wr(sim, NIC, cap + 2, 2, 0xFFFF)
    assert rd(sim, NIC, cap + 2, 2) == ctrl | 0x1 | (3 << 4)  # Enable; MME clamped to MMC (QEMU)
    wr(sim, NIC, cap + 4, 4, 0xFFFFFFFF)
    assert rd(sim, NIC, cap + 4, 4) == 0xFFFFFFFC  # address bits 1:0 read 0
    wr(sim, NIC, cap + 8, 4, 0x12345678)
    assert rd(sim, NIC, cap + 8, 4) == 0x12345678
    wr(sim, NIC, cap + 0x0C, 4, 0xFFFFFFFF)
    assert rd(sim, NIC, cap + 0x0C, 4) == 0xFFFF  # 16-bit data, reserved half reads 0
    wr(sim, NIC, cap + 0x10, 4, 0xFFFFFFFF)
    assert rd(sim, NIC, cap + 0x10, 4) == 0xFF  # mask: only 2^MMC bits implemented
    wr(sim, NIC, cap + 0x14, 4, 0xFFFFFFFF)
    assert rd(sim, NIC, cap + 0x14, 4) == 0  # pending is read-only
    assert any(v.startswith("mme-over-mmc:") for v in sim.violations)


def test_msi_32bit_layout() -> None:
    sim = machine()
    cap = 0x40
    assert rd(sim, OLD, cap + 2, 2) == 0  # MMC 0, 32-bit, no masking
    wr(sim, OLD, cap + 8, 4, 0xFFFFFFFF)
    assert rd(sim, OLD, cap + 8, 4) == 0xFFFF
    wr(sim, OLD, cap + 2, 2, 0x0010)  # MME 1 > MMC 0
    assert rd(sim, OLD, cap + 2, 2) == 0
    assert sim.violations == ["mme-over-mmc: 0000:01:02.0 sound0: MSI Message Control written with MME 1 > MMC 0"]
    assert rd(sim, OLD, 0x100, 4) == 0xFFFFFFFF  # 256 bytes of config space only
    assert rd(sim, NVME, 0xFFC, 4) == 0  # PCIe: 4 KiB, no extended capability
    wr(sim, NVME, 0x100, 4, 0xFFFFFFFF)
    assert rd(sim, NVME, 0x100, 4) == 0


def test_msix_capability_registers() -> None:
    sim = machine()
    cap = 0x7C
    assert rd(sim, NVME, cap + 2, 2) == 3  # table size 4, encoded N-1
    wr(sim, NVME, cap + 2, 2, 0xFFFF)
    assert rd(sim, NVME, cap + 2, 2) == 0xC003  # only Function Mask and Enable are writable
    assert rd(sim, NVME, cap + 4, 4) == 0x0  # table at BAR 0 + 0
    assert rd(sim, NVME, cap + 8, 4) == 0x2000  # PBA at BAR 0 + 0x2000
    wr(sim, NVME, cap + 4, 4, 0x1234)
    assert rd(sim, NVME, cap + 4, 4) == 0


def test_msix_table_in_bar_memory() -> None:
    sim = machine()
    table = sim.bar_cpu_address(NVME, 0)
    assert table == 0x1_0002_0000
    wr(sim, NVME, 0x04, 2, CMD_MEM)
    assert [sim.mmio_read32(table + 16 * i + 12) for i in range(4)] == [1, 1, 1, 1]  # reset: masked
    sim.mmio_write32(table + 0, 0x08090040)
    sim.mmio_write32(table + 4, 0x1)
    sim.mmio_write32(table + 8, 0xDEADBEEF)  # MSI-X data is 32 bits
    sim.mmio_write32(table + 12, 0xFFFFFFFE)  # only the mask bit is writable
    assert sim.mmio_read32(table + 12) == 0
    e = sim.state(NVME).msix
    assert e is not None and e.entries[0].address == 0x1_0809_0040 and e.entries[0].data == 0xDEADBEEF
    assert not e.entries[0].masked and e.entries[1].masked
    pba = table + 0x2000
    sim.mmio_write32(pba, 0xFFFFFFFF)
    assert sim.mmio_read32(pba) == 0  # the PBA is read-only
    sim.mmio_write32(table + 0x100, 0x5A)  # elsewhere in the BAR: plain memory
    assert sim.mmio_read32(table + 0x100) == 0x5A
    assert [v.split(":")[0] for v in sim.violations] == ["pba-write"]


def test_memory_decode_off() -> None:
    sim = machine()
    table = sim.bar_cpu_address(NVME, 0)
    assert table is not None
    assert sim.mmio_read32(table + 12) == 0xFFFFFFFF
    sim.mmio_write32(table + 12, 0)
    wr(sim, NVME, 0x04, 2, CMD_MEM)
    assert sim.mmio_read32(table + 12) == 1  # the write was dropped
    assert [v.split(":")[0] for v in sim.violations] == ["mmio-unmapped", "mmio-unmapped"]


def test_vf_ids_bars_and_command() -> None:
    sim = machine()
    assert rd(sim, VF, 0x00, 4) == 0xFFFFFFFF
    assert rd(sim, VF, 0x00, 2) == 0xFFFF and rd(sim, VF, 0x02, 2) == 0xFFFF
    assert rd(sim, VF, 0x08, 4) >> 8 == 0x020000
    wr(sim, VF, 0x04, 2, 0xFFFF)
    assert rd(sim, VF, 0x04, 2) == 0x0004  # only Bus Master; Memory and INTx Disable are RO 0
    table = sim.bar_cpu_address(VF, 0)
    assert table is not None
    assert sim.mmio_read32(table + 0x2000 + 12) == 1  # decodes at the planned address
    assert rd(sim, VF, 0x3D, 1) == 0
    real = machine(SimOptions(vf_real_ids=True))
    assert rd(real, VF, 0x00, 4) == 0x101C15B3
    assert sim.violations == []


def test_absent_function_reads_all_ones() -> None:
    sim = machine()
    ghost = (0, 1, 0x08)
    assert rd(sim, ghost, 0x00, 4) == 0xFFFFFFFF
    assert rd(sim, ghost, 0x00, 2) == 0xFFFF
    assert rd(sim, ghost, 0x3D, 1) == 0xFF
    wr(sim, ghost, 0x04, 2, 0x6)
    assert sim.violations == []


def test_bad_config_access_is_reported() -> None:
    sim = machine()
    assert rd(sim, NVME, 0x02, 4) == 0xFFFFFFFF
    assert rd(sim, NVME, 0x00, 3) == 0xFFFFFFFF
    assert [v.split(":")[0] for v in sim.violations] == ["bad-access", "bad-access"]


def test_fire() -> None:
    sim = machine()
    cap = 0x7C
    assert sim.fire(NIC, 0) is None  # MSI off
    wr(sim, NIC, cap + 4, 4, 0x08090040)
    wr(sim, NIC, cap + 8, 4, 0)
    wr(sim, NIC, cap + 0x0C, 2, 0x20)
    wr(sim, NIC, cap + 2, 2, (2 << 4) | 1)  # 4 vectors, enabled
    assert sim.fire(NIC, 1) is None  # Bus Master off: QEMU drops it
    wr(sim, NIC, 0x04, 2, 0x4)
    assert sim.fire(NIC, 3) == (0x08090040, 0x23)
    assert sim.fire(NIC, 4) is None  # beyond 2^MME
    wr(sim, NIC, cap + 0x10, 4, 0x2)
    assert sim.fire(NIC, 1) is None  # masked
    st = sim.state(NIC)
    assert st.msi is not None and st.msi.mme == 2 and [v.data for v in st.msi.vectors] == [0x20, 0x21, 0x22, 0x23]
    assert st.bus_master and not st.memory


def test_quirks_stop_delivery() -> None:
    def one(quirk: str) -> Simulator:
        fn = SimFunction(0, 0, 0, 1, 2, msi=SimMsi(1, is64=True), quirks=(quirk,))
        return Simulator([SimHostBridge("hb")], [fn])

    sim = one("no-intx-disable")
    wr(sim, (0, 0, 0), 0x7C + 4, 4, 0xFEE00000)  # PCIe at 0x40..0x7b, MSI at 0x7c
    wr(sim, (0, 0, 0), 0x7C + 2, 2, 1)
    wr(sim, (0, 0, 0), 0x04, 2, 0x4)
    assert sim.fire((0, 0, 0), 0) == (0xFEE00000, 0)
    wr(sim, (0, 0, 0), 0x04, 2, 0x404)
    assert sim.fire((0, 0, 0), 0) is None
    sim = one("no-64bit-msi")
    wr(sim, (0, 0, 0), 0x7C + 8, 4, 0x1)
    wr(sim, (0, 0, 0), 0x7C + 2, 2, 1)
    wr(sim, (0, 0, 0), 0x04, 2, 0x4)
    assert sim.fire((0, 0, 0), 0) is None


def test_bridge_header() -> None:
    fn = SimFunction(0, 0, 0x08, 0x1B36, 0x000C, class_code=0x060400, header_type=1, pcie_port_type=4,
                     secondary=1, subordinate=3)
    sim = Simulator([SimHostBridge("hb")], [fn])
    assert rd(sim, (0, 0, 8), 0x0E, 1) == 1
    assert rd(sim, (0, 0, 8), 0x18, 4) & 0xFFFFFF == 0x030100
    wr(sim, (0, 0, 8), 0x1A, 1, 0x07)
    assert rd(sim, (0, 0, 8), 0x1A, 1) == 7
    assert (rd(sim, (0, 0, 8), 0x42, 2) >> 4) & 0xF == 4  # root port


def test_reset_function() -> None:
    sim = machine()
    wr(sim, NIC, 0x04, 2, 0x6)
    wr(sim, NIC, 0x7C + 4, 4, 0x1000)
    sim.reset_function(NIC)
    assert rd(sim, NIC, 0x04, 2) == 0 and rd(sim, NIC, 0x7C + 4, 4) == 0
    assert rd(sim, NIC, 0x10, 4) == 0x80040000  # BARs keep their addresses
