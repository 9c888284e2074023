"""The live invariants: Linux's order is clean, and each rule catches the
deliberately wrong sequence that breaks it. Then the final-state check."""

from __future__ import annotations

from typing import Any

from dtmsi.sim import SimOptions, Simulator, check_final_state
from tests.sim.machines import BUID, NIC, NVME, OLD, ONVME, PNIC, PNVME, VF, machine
from tests.sim.reference import Reference

Bdf = tuple[int, int, int]
TABLE = 0x1_0002_0000  # NVME's MSI-X table (BAR 0 + 0) as the CPU sees it
NIC_MSI = 0x7C


def rules(sim: Simulator) -> list[str]:
    return [v.split(":")[0] for v in sim.violations]


def wr(sim: Simulator, bdf: Bdf, off: int, width: int, val: int) -> None:
    sim.cfg_write(*bdf, off, width, val)


def change(sim: Simulator, bdf: Bdf, fn: int, count: int, seq: int = 1) -> list[int]:
    return sim.rtas_call(0x2019, 6, 4, [(bdf[1] << 16) | (bdf[2] << 8), BUID >> 32, BUID & 0xFFFFFFFF, fn, count, seq])


def query(sim: Simulator, bdf: Bdf, index: int) -> list[int]:
    return sim.rtas_call(0x2018, 4, 3, [(bdf[1] << 16) | (bdf[2] << 8), BUID >> 32, BUID & 0xFFFFFFFF, index])


# ---------------------------------------------------------------- Linux's order is clean


def test_linux_order_native_msix() -> None:
    sim = machine()
    Reference(sim).msix_native(NVME, [(0x0809_0040, 0x20), (0x0809_0040, 0x21)])
    assert sim.violations == []
    assert sim.fire(NVME, 1) == (0x0809_0040, 0x21)
    assert sim.fire(NVME, 2) is None  # masked by the mask-all step


def test_linux_order_native_msi() -> None:
    sim = machine()
    Reference(sim).msi_native(NIC, 4, 3, 0xFEE0_0000, 0x40)
    assert sim.violations == []
    assert [sim.fire(NIC, i) for i in range(4)] == [(0xFEE0_0000, 0x40), (0xFEE0_0000, 0x41), (0xFEE0_0000, 0x42), None]


def test_linux_order_vf_msix() -> None:
    sim = machine()
    ref = Reference(sim)
    ref.check(VF)
    ref.msix_native(VF, [(0x0809_0040, 0x7)])
    assert sim.violations == []
    assert sim.fire(VF, 0) == (0x0809_0040, 0x7)


def test_linux_order_opal() -> None:
    sim = machine()
    ref = Reference(sim)
    msgs = ref.opal_messages(ONVME, [4, 5], True, msi=False)
    ref.msix_native(ONVME, msgs)
    assert sim.violations == []
    assert sim.fire(ONVME, 1) == ((1 << 60), 5)


def test_linux_order_papr_with_busy_answers() -> None:
    sim = machine()
    sim.papr.inject_busy([-2, 9901, 9900])
    irqs = Reference(sim).papr(PNVME, "msix", 4)
    assert irqs == [0x1300, 0x1301, 0x1302, 0x1303]
    assert sim.violations == []
    assert sim.delayed_us == 10_000 + 1_000
    assert sim.fire(PNVME, 3) == (0x400_0000_0000, 0x1303)


def test_linux_order_papr_msi_powervm() -> None:
    sim = machine(SimOptions(powervm=True))
    assert Reference(sim).papr(PNIC, "msi", 4) == [0x1300, 0x1301, 0x1302, 0x1303]
    assert sim.violations == []
    assert sim.fire(PNIC, 2) == (0, 0x1302)  # QEMU's window truncated by the 32-bit capability


def test_restore_after_reset_is_clean() -> None:
    sim = machine()
    ref = Reference(sim)
    ref.msi_native(NIC, 1, 1, 0xFEE0_0000, 0x40)
    ref.papr(PNVME, "msix", 2)
    sim.reset_function(NIC)
    sim.reset_function(PNVME)
    ref.msi_native(NIC, 1, 1, 0xFEE0_0000, 0x40)
    ref.papr(PNVME, "msix", 2)  # a new request after the queries of the first
    assert sim.violations == []


# ---------------------------------------------------------------- each rule, broken


def test_a_msix_write_while_unmasked() -> None:
    sim = machine()
    wr(sim, NVME, 0x04, 2, 0x2)
    sim.mmio_write32(TABLE + 12, 0)  # unmask entry 0
    sim.mmio_write32(TABLE + 8, 0x20)
    assert rules(sim) == ["msix-write-unmasked"]
    assert "entry 0 data written while unmasked" in sim.violations[0]


def test_b_msi_enabled_without_a_message() -> None:
    sim = machine()
    wr(sim, NIC, NIC_MSI + 2, 2, 0x1)
    assert rules(sim) == ["enable-before-message", "enable-before-message"]


def test_b_msi_reenabled_without_rewriting_data() -> None:
    sim = machine()
    wr(sim, NIC, NIC_MSI + 4, 4, 0xFEE0_0000)
    wr(sim, NIC, NIC_MSI + 0x0C, 2, 0x40)
    wr(sim, NIC, NIC_MSI + 2, 2, 0x1)
    assert sim.violations == []
    wr(sim, NIC, NIC_MSI + 2, 2, 0x0)
    wr(sim, NIC, NIC_MSI + 2, 2, 0x1)
    assert rules(sim) == ["enable-before-message"]
    assert "before its message data" in sim.violations[0]


def test_b_msix_enabled_with_an_unmasked_empty_entry() -> None:
    sim = machine()
    wr(sim, NVME, 0x04, 2, 0x2)
    sim.mmio_write32(TABLE + 12, 0)
    wr(sim, NVME, 0x7C + 2, 2, 0x8000)
    assert rules(sim) == ["enable-before-message"]


def test_b_msix_entry_unmasked_without_a_message() -> None:
    sim = machine()
    wr(sim, NVME, 0x04, 2, 0x2)
    wr(sim, NVME, 0x7C + 2, 2, 0x8000)  # enabled, every entry masked: fine
    assert sim.violations == []
    sim.mmio_write32(TABLE + 16 + 12, 0)
    assert rules(sim) == ["enable-before-message"]
    assert "entry 1" in sim.violations[0]


def test_b_papr_enable_without_grant() -> None:
    sim = machine()
    wr(sim, PNIC, 0x7C + 2, 2, 0x1)
    assert rules(sim) == ["enable-before-message"]
    assert "without an MSI grant" in sim.violations[0]


def test_b_papr_entry_outside_the_grant() -> None:
    sim = machine()
    ref = Reference(sim)
    ref.papr(PNVME, "msix", 2)
    table = 0x200_8000_0000 + 0x2000
    sim.mmio_write32(table + 2 * 16 + 12, 0)
    assert rules(sim) == ["enable-before-message"]


def test_c_outside_the_partition() -> None:
    sim = machine(partition={NVME, PNIC})
    assert sim.cfg_read(*NIC, 0, 4) == 0xFFFFFFFF  # hidden
    sim.cfg_write(*NIC, 0x04, 2, 0x6)
    assert sim.state(NIC).command == 0
    assert sim.mmio_read32(0x1_0004_0000) == 0xFFFFFFFF  # NIC's BAR 0
    assert change(sim, PNVME, 4, 1)[0] == 0xFFFFFFFD  # the hypervisor does not know it for this partition
    sim.cfg_read(0, 1, 0x08, 0, 4)  # nothing there, and not in the partition either
    assert rules(sim) == ["outside-partition"] * 5
    sim.violations.clear()
    sim.cfg_read(*NVME, 0, 4)
    assert sim.violations == []


def test_d_papr_message_writes() -> None:
    sim = machine()
    cap = 0x7C
    wr(sim, PNVME, cap + 4, 4, 0xFEE0_0000)
    wr(sim, PNVME, cap + 0x0C, 2, 0x40)
    wr(sim, PNVME, cap + 2, 2, 0x20)  # MME 2
    wr(sim, PNVME, cap + 2, 2, 0x20)  # clamped to MMC 2... still no change now: not reported again
    wr(sim, PNVME, 0x04, 2, 0x2)
    table = 0x200_8000_0000 + 0x2000
    sim.mmio_write32(table + 12, 1)  # Vector Control: allowed
    sim.mmio_write32(table + 4, 0)
    assert rules(sim) == ["papr-message-write"] * 4
    assert "MME changed from 0 to 2" in sim.violations[2]


def test_d_second_request_before_queries() -> None:
    sim = machine()
    assert change(sim, PNVME, 4, 2)[:2] == [0, 2]
    change(sim, PNVME, 4, 2)
    assert rules(sim) == ["papr-request"]


def test_d_short_answer_then_ask_again_is_fine() -> None:
    sim = machine()
    assert change(sim, PNVME, 3, 4)[:2] == [0, 1]  # QEMU's MSI maximum of 1
    assert change(sim, PNVME, 3, 1)[:2] == [0, 1]
    query(sim, PNVME, 0)
    assert sim.violations == []


def test_d_busy_not_fed_back() -> None:
    sim = machine()
    sim.papr.inject_busy([-2])
    assert change(sim, PNVME, 4, 2, seq=1)[2] == 2
    change(sim, PNVME, 4, 2, seq=1)  # should be seq 2
    assert rules(sim) == ["papr-request"]
    assert "not its retry" in sim.violations[0]


def test_d_queries_need_a_full_grant() -> None:
    sim = machine()
    query(sim, PNVME, 0)
    sim.papr.inject_short(PNVME, 1)
    change(sim, PNVME, 4, 2)
    query(sim, PNVME, 0)
    sim.papr.inject_short(PNVME, 8)
    change(sim, PNVME, 4, 2)
    query(sim, PNVME, 2)
    assert rules(sim) == ["papr-query", "papr-query", "papr-query"]
    assert "beyond the 2 granted" in sim.violations[2]


def test_e_mme_over_mmc() -> None:
    sim = machine()
    wr(sim, NIC, NIC_MSI + 2, 1, 0x40)  # MME 4 > MMC 3
    assert rules(sim) == ["mme-over-mmc"]
    state = sim.state(NIC).msi
    assert state is not None and state.mme == 3  # stored clamped, as QEMU does


def test_f_unmapped_mmio() -> None:
    sim = machine()
    sim.mmio_write32(0x1234_5678_0000, 1)
    assert sim.mmio_read32(0x1234_5678_0000) == 0xFFFFFFFF
    sim.mmio_read32(TABLE + 2)
    assert rules(sim) == ["mmio-unmapped", "mmio-unmapped", "bad-access"]


def test_both_enabled() -> None:
    sim = machine()
    ref = Reference(sim)
    msix = ref.find_cap(ONVME, 0x11)
    assert msix is not None
    wr(sim, ONVME, 0x04, 2, 0x2)
    wr(sim, ONVME, msix + 2, 2, 0xC000)  # MSI-X enabled, function-masked
    msgs = ref.opal_messages(ONVME, [1], True, msi=True)
    msi = ref.find_cap(ONVME, 0x05)
    assert msi is not None
    wr(sim, ONVME, msi + 4, 4, msgs[0][0] & 0xFFFFFFFF)
    wr(sim, ONVME, msi + 8, 4, msgs[0][0] >> 32)
    wr(sim, ONVME, msi + 0x0C, 2, msgs[0][1])
    wr(sim, ONVME, msi + 2, 2, 0x1)
    assert rules(sim) == ["both-enabled"]


def test_rtas_argument_counts() -> None:
    sim = machine()
    sim.rtas_call(0x2019, 5, 4, [0x1000, BUID >> 32, BUID & 0xFFFFFFFF, 4, 1])
    sim.rtas_call(0x2018, 4, 3, [0x1000, BUID >> 32, BUID & 0xFFFFFFFF])
    assert rules(sim) == ["bad-access"] * 3


# ---------------------------------------------------------------- the final state


def allocation() -> dict[str, Any]:
    return {
        "functions": [
            {"name": "nvme0", "bdf": "0000:01:00.0", "partition": "p1", "mechanism": "msix",
             "vectors_granted": 2, "hardware_vectors": 2,
             "messages": [{"vector": 0, "count": 2, "address": 0x0809_0040, "data": 0x20, "event_id": 0x20}]},
            {"name": "nic0", "bdf": "0000:01:00.1", "partition": "p1", "mechanism": "msi",
             "vectors_granted": 3, "hardware_vectors": 4,
             "messages": [{"vector": 0, "count": 3, "address": 0xFEE0_0000, "data": 0x40}]},
            {"name": "sound0", "bdf": "0000:01:02.0", "partition": "p1", "mechanism": "intx",
             "vectors_granted": 1, "hardware_vectors": 0, "messages": []},
            {"name": "nic0_vf0", "bdf": "0000:01:00.3", "partition": "p1", "mechanism": "none",
             "vectors_granted": 0, "hardware_vectors": 0, "messages": []},
            {"name": "pnvme", "bdf": "0001:00:02.0", "partition": "p2", "mechanism": "msix",
             "vectors_granted": 3, "hardware_vectors": 4, "messages": []},
            {"name": "eth0", "bdf": "0002:01:00.0", "partition": "p3", "mechanism": "msix",
             "vectors_granted": 2, "hardware_vectors": 2, "messages": [{"vector": 0, "count": 2, "hwirq": 0xFF4}]},
        ]
    }


def test_final_state_after_linux_order() -> None:
    sim = machine()
    alloc = allocation()
    sim.cfg_write(*OLD, 0x04, 2, 0x400)  # firmware left INTx disabled
    Reference(sim).setup_all(alloc)
    assert sim.violations == []
    assert check_final_state(sim, alloc) == []
    assert check_final_state(sim, alloc, "p2") == []


def test_final_state_differences() -> None:
    sim = machine()
    alloc = allocation()
    Reference(sim).setup_all(alloc, "p1")
    sim.cfg_read(*VF, 0, 4)  # a 'none' function is touched
    table = sim.bar_cpu_address(NVME, 0)
    assert table is not None
    sim.mmio_write32(table + 12, 1)  # entry 0 masked again
    wr(sim, NIC, NIC_MSI + 0x0C, 2, 0x48)  # another data value
    problems = check_final_state(sim, alloc, "p1")
    assert [p.split(": ", 2)[1] for p in problems] == ["0000:01:00.0 nvme0", "0000:01:00.1 nic0",
                                                       "0000:01:00.1 nic0", "0000:01:00.1 nic0",
                                                       "0000:01:00.1 nic0", "0000:01:00.3 nic0_vf0"]
    assert "entry 0 masked" in problems[0]
    assert "MSI message 0xfee00000/0x48, expected 0xfee00000/0x40" in problems[1]
    assert "planned 'none' but 1 hook call" in problems[-1]
    problems = check_final_state(sim, alloc, "p2")
    assert problems == ["final-state: 0001:00:02.0 pnvme: no ibm,change-msi was made",
                        "final-state: 0001:00:02.0 pnvme: MSI-X not enabled",
                        "final-state: 0001:00:02.0 pnvme: INTx Disable is clear, expected set",
                        "final-state: 0001:00:02.0 pnvme: holds no MSI-X grant from the hypervisor"]


def test_final_state_opal_prediction() -> None:
    """allocation.json's OPAL address/data (dtmsi.opal) must be what firmware composed."""
    alloc = allocation()
    eth0 = alloc["functions"][-1]
    # XIVE 4 and 5 (hwirq 0xff4 - msi_base 0xff0): 64-bit address 1 << 60, data 4, 5
    eth0["messages"] = [{"vector": 0, "count": 2, "hwirq": 0xFF4, "address": 1 << 60, "data": 4}]
    sim = machine()
    Reference(sim).setup_all(alloc, "p3")
    assert check_final_state(sim, alloc, "p3") == []
    eth0["messages"][0]["data"] = 5  # a wrong prediction
    assert check_final_state(sim, alloc, "p3") == [
        "final-state: 0002:01:00.0 eth0: vector 0: allocation.json predicts 0x1000000000000000/0x5, "
        "firmware composes 0x1000000000000000/0x4",
        "final-state: 0002:01:00.0 eth0: vector 1: allocation.json predicts 0x1000000000000000/0x6, "
        "firmware composes 0x1000000000000000/0x5",
    ]
