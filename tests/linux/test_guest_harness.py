"""The real Linux kernel judges device trees: the harness, proven both ways.

Boots Debian's arm64 kernel under QEMU's ``virt`` machine (GICv3 + ITS) with
three PCI functions and checks what Linux did with their interrupts:

* on QEMU's own tree every function runs MSI-X and interrupts are delivered;
* without ``msi-map`` every function falls back to INTx (the check can fail);
* with an ``msi-map`` that offsets the DeviceIDs Linux still enables MSI-X,
  but no interrupt is ever delivered: only the "delivered" check sees it;
* our board base tree plus QEMU's host-bridge node boots just like QEMU's own;
* a guest that panics or hangs fails with its serial log in the message.

The vector counts below are what the kernel actually allocated; the
compiler's MSI allocation must predict them.
"""

from __future__ import annotations

from pathlib import Path

import libfdt
import pytest

from .fdtedit import canonical, compile_dts, delete_property, get_property, graft_node
from .guest import (
    MAX_DTB_SIZE,
    BootReport,
    FunctionReport,
    Guest,
    GuestBootError,
    GuestOptions,
    HarnessError,
    boot,
    dump_qemu_dtb,
    pack_dtb,
    require_tools,
)

REPO = Path(__file__).resolve().parents[2]
BASE_DTS = REPO / "examples" / "qemu-virt" / "qemu-virt-base.dts"

#: QEMU places each function at the slot given by addr=SLOT.FN.
DEVICES = (
    "virtio-net-pci,addr=01.0",
    "e1000e,addr=02.0",
    "nvme,serial=x,addr=03.0",
)
PCIE = "/pcie@10000000"
ITS_DOORBELL = 0x0809_0040  # GITS_TRANSLATER of the ITS at 0x0808_0000

#: bdf -> (vendor, device, driver, MSI-X vectors Linux 6.1 allocates with -smp 1).
#: virtio-net, 1 queue pair: config + input.0 + output.0;
#: e1000e (82574L): rx-0, tx-0, "other" (link);
#: nvme: admin queue + one I/O queue per CPU (the admin queue first gets a
#: single vector, then the driver re-allocates 1 + nr_io_queues).
EXPECTED: dict[str, tuple[int, int, str, int]] = {
    "0000:00:01.0": (0x1AF4, 0x1000, "virtio-pci", 3),
    "0000:00:02.0": (0x8086, 0x10D3, "e1000e", 3),
    "0000:00:03.0": (0x1B36, 0x0010, "nvme", 2),
}


@pytest.fixture(scope="module")
def qemu_dtb() -> bytes:
    """QEMU's own tree for the machine options the harness boots with."""
    return dump_qemu_dtb(DEVICES)


def _write(tmp_path: Path, name: str, blob: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(blob)
    return path


def _check_msix(report: BootReport, bdf: str) -> FunctionReport:
    vendor, device, driver, vectors = EXPECTED[bdf]
    fn = report.function(bdf)
    context = report.summary()
    assert (fn.vendor, fn.device) == (vendor, device), context
    assert fn.driver == driver, context
    assert fn.msi_mode == "msix", context
    assert fn.vectors == vectors, context
    assert all(irq.chip == "ITS-MSI" for irq in fn.irqs), context
    # Delivered: the device wrote MSIs that the ITS translated and Linux counted.
    assert fn.total_delivered > 0, context
    assert fn.its_writes > 0, context
    # QEMU's msi-map is the identity: DeviceID = requester ID.
    assert fn.its_device_ids == (fn.requester_id,), context
    # Linux's PCI/MSI hwirq encodes the requester ID: index | RID << 11.
    assert sorted(irq.hwirq >> 11 for irq in fn.irqs) == [fn.requester_id] * vectors
    # Every entry in use targets the ITS doorbell with EventID = entry index.
    assert [(e.address, e.data, e.masked) for e in fn.msix_table] == [
        (ITS_DOORBELL, i, False) for i in range(vectors)
    ], context
    return fn


@pytest.mark.linux
def test_qemu_tree_gives_every_function_msix_with_delivered_interrupts(
    guest: Guest, qemu_dtb: bytes, tmp_path: Path
) -> None:
    report = boot(guest, _write(tmp_path, "qemu.dtb", qemu_dtb), DEVICES)
    assert report.settled, report.summary()
    for bdf in EXPECTED:
        _check_msix(report, bdf)
    assert not report.warnings, report.warnings
    assert any("PCI/MSI" in line and "domain created" in line for line in report.msi_log)


@pytest.mark.linux
def test_without_msi_map_every_function_falls_back_to_intx(
    guest: Guest, qemu_dtb: bytes, tmp_path: Path
) -> None:
    tree = delete_property(qemu_dtb, PCIE, "msi-map")
    report = boot(guest, _write(tmp_path, "no-msi-map.dtb", tree), DEVICES)
    for bdf, (_vendor, _device, driver, _vectors) in EXPECTED.items():
        fn = report.function(bdf)
        assert fn.driver == driver, report.summary()
        assert fn.msi_mode == "intx", report.summary()
        assert fn.vectors == 0 and not fn.msix_table, report.summary()
        assert fn.intx_irq is not None and fn.intx_count > 0, report.summary()
    assert any("Falling back to legacy interrupts" in line for line in report.msi_log), (
        report.msi_log
    )
    assert not report.its_writes


@pytest.mark.linux
def test_msi_map_with_an_offset_enables_msix_but_delivers_nothing(
    guest: Guest, qemu_dtb: bytes, tmp_path: Path
) -> None:
    """DeviceID = RID + 0x100: Linux obeys the map, QEMU's ITS keys on the real RID."""
    cells = get_property(qemu_dtb, PCIE, "msi-map")
    assert cells is not None and len(cells) == 16
    rid_base, its, msi_base, length = (
        int.from_bytes(cells[i : i + 4], "big") for i in range(0, 16, 4)
    )
    assert (rid_base, msi_base) == (0, 0)
    fdt = libfdt.Fdt(bytearray(qemu_dtb))
    offset_map = b"".join(v.to_bytes(4, "big") for v in (0, its, 0x100, length))
    fdt.setprop(fdt.path_offset(PCIE), "msi-map", offset_map)
    tree = bytes(fdt.as_bytearray())
    report = boot(
        guest,
        _write(tmp_path, "msi-map-offset.dtb", tree),
        DEVICES,
        options=GuestOptions(settle_s=3),
    )
    assert not report.settled, report.summary()
    for bdf in EXPECTED:
        fn = report.function(bdf)
        assert fn.msi_mode == "msix" and fn.vectors > 0, report.summary()
        assert fn.its_device_ids == (fn.requester_id + 0x100,), report.summary()
        assert fn.total_delivered == 0, report.summary()
        # The device did write its MSIs, tagged with its real requester ID.
        assert fn.its_writes > 0, report.summary()


@pytest.mark.linux
def test_a_guest_that_panics_fails_with_its_serial_log(
    guest: Guest, qemu_dtb: bytes, tmp_path: Path
) -> None:
    dtb = _write(tmp_path, "qemu.dtb", qemu_dtb)
    with pytest.raises(GuestBootError, match=r"(?s)panicked.*Unable to mount root fs"):
        boot(guest, dtb, DEVICES, kernel_args=["rdinit=/no-such-init"])


@pytest.mark.linux
def test_a_guest_that_hangs_fails_after_the_time_limit(
    guest: Guest, qemu_dtb: bytes, tmp_path: Path
) -> None:
    dtb = _write(tmp_path, "qemu.dtb", qemu_dtb)
    with pytest.raises(GuestBootError, match="did not power off within 2 s") as failure:
        boot(guest, dtb, DEVICES, timeout_s=2)
    assert "last lines of the serial log" in str(failure.value)
    assert "Booting Linux" in failure.value.log


def test_a_dtb_too_big_for_qemu_is_refused_before_booting(
    guest: Guest, qemu_dtb: bytes, tmp_path: Path
) -> None:
    """QEMU doubles the -dtb buffer; past 2 MiB arm64 Linux hangs silently."""
    fdt = libfdt.Fdt(bytearray(qemu_dtb))
    fdt.resize(MAX_DTB_SIZE + 1)
    dtb = _write(tmp_path, "padded.dtb", bytes(fdt.as_bytearray()))
    with pytest.raises(HarnessError, match="pack it"):
        boot(guest, dtb, DEVICES)


def test_base_tree_compiles_without_warnings() -> None:
    result = compile_dts(BASE_DTS)
    assert result.warnings == ""
    assert PCIE not in canonical(result.dtb)


def test_base_tree_is_qemus_tree_without_the_host_bridge(qemu_dtb: bytes) -> None:
    """Node for node, property for property (phandles compared by target path)."""
    base = compile_dts(BASE_DTS).dtb
    ours = canonical(graft_node(base, qemu_dtb, PCIE))
    theirs = canonical(qemu_dtb)
    # QEMU draws fresh random seeds on every run; the base tree leaves them out.
    for seed in ("rng-seed", "kaslr-seed"):
        theirs["/chosen"].pop(seed, None)
    assert sorted(ours) == sorted(theirs)
    for path, props in theirs.items():
        assert ours[path] == props, path


@pytest.mark.linux
def test_base_tree_with_qemus_host_bridge_boots_like_qemus_own(
    guest: Guest, qemu_dtb: bytes, tmp_path: Path
) -> None:
    base = compile_dts(BASE_DTS).dtb
    tree = pack_dtb(graft_node(base, qemu_dtb, PCIE))
    report = boot(guest, _write(tmp_path, "base+pcie.dtb", tree), DEVICES)
    assert report.settled, report.summary()
    for bdf in EXPECTED:
        _check_msix(report, bdf)


def test_missing_tools_are_reported_with_their_package() -> None:
    with pytest.raises(RuntimeError, match="apt-get install dtmsi-no-such-tool"):
        require_tools("dtmsi-no-such-tool")
