"""The real Linux kernel accepts dtmsi's trees and does what the allocation says.

Compiles the bundled QEMU ``virt`` examples with dtmsi, boots Debian's arm64
kernel on the DTB dtmsi wrote, and compares, function by function, what
Linux set up with ``allocation.json``: the mechanism, the vector count, the
ITS DeviceID, and that interrupts were delivered. A deliberately broken
variant (our tree without ``msi-map``) must fall back to INTx, which proves
the comparison can fail.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .fdtedit import delete_property
from .guest import BootReport, Guest, boot

REPO = Path(__file__).resolve().parents[2]

VIRT_DEVICES = (
    "virtio-net-pci,addr=01.0",
    "e1000e,addr=02.0",
    "nvme,serial=dtmsi0,addr=03.0",
)
SWITCH_DEVICES = (
    "pcie-root-port,id=rp0,bus=pcie.0,addr=01.0,chassis=1",
    "x3130-upstream,id=up0,bus=rp0",
    "xio3130-downstream,id=dn0,bus=up0,addr=00.0,chassis=2,slot=0",
    "xio3130-downstream,id=dn1,bus=up0,addr=01.0,chassis=3,slot=1",
    "e1000e,bus=dn0,addr=00.0",
    "nvme,serial=dtmsi1,bus=dn1,addr=00.0",
)


def _compile(example: str, out: Path) -> dict[str, Any]:
    src = REPO / "examples" / example / f"{example}.msi"
    subprocess.run([sys.executable, "-m", "dtmsi", "compile", str(src), "-o", str(out)],
                   check=True, cwd=REPO)
    doc: dict[str, Any] = json.loads((out / "allocation.json").read_text())
    return doc


def _assert_matches_allocation(report: BootReport, allocation: dict[str, Any]) -> None:
    context = report.summary()
    functions = [f for f in allocation["functions"] if f["kind"] == "endpoint"]
    assert functions, "the example allocates nothing"
    for a in functions:
        fn = report.function(a["bdf"])
        assert fn.msi_mode == a["mechanism"], f"{a['name']}: kernel {fn.msi_mode}\n{context}"
        assert fn.vectors == a["vectors_granted"], f"{a['name']}: kernel {fn.vectors} vectors\n{context}"
        # Delivered, not just set up: a wrong DeviceID enables MSI-X that never fires.
        assert any(n > 0 for n in fn.delivered.values()), f"{a['name']}: nothing delivered\n{context}"
        assert fn.its_device_ids, f"{a['name']}: no ITS mapping seen\n{context}"
        assert set(fn.its_device_ids) == {a["device_id"]}, f"{a['name']}: DeviceIDs {fn.its_device_ids}"
        entries = [e for e in fn.msix_table if e.vector_control & 1 == 0]
        messages = [
            {"address": m["address"], "data": m["data"] + i} for m in a["messages"] for i in range(m["count"])
        ]
        assert len(messages) == a["vectors_granted"]
        for e, msg in zip(entries, messages, strict=False):
            assert (e.address, e.data) == (msg["address"], msg["data"]), f"{a['name']}: MSI-X entry {e}"


@pytest.mark.linux
def test_virt_example_boots_as_allocated(guest: Guest, tmp_path: Path) -> None:
    allocation = _compile("qemu-virt", tmp_path / "out")
    report = boot(guest, tmp_path / "out" / "system.dtb", VIRT_DEVICES)
    _assert_matches_allocation(report, allocation)
    assert not report.warnings, report.warnings


@pytest.mark.linux
def test_switch_example_boots_as_allocated(guest: Guest, tmp_path: Path) -> None:
    allocation = _compile("qemu-virt-switch", tmp_path / "out")
    report = boot(guest, tmp_path / "out" / "system.dtb", SWITCH_DEVICES)
    _assert_matches_allocation(report, allocation)
    # The bus numbers dtmsi assigned are the ones Linux enumerated.
    for bdf in ("0000:01:00.0", "0000:02:00.0", "0000:02:01.0", "0000:03:00.0", "0000:04:00.0"):
        report.function(bdf)


@pytest.mark.linux
def test_our_tree_without_msi_map_falls_back_to_intx(guest: Guest, tmp_path: Path) -> None:
    allocation = _compile("qemu-virt", tmp_path / "out")
    broken = delete_property((tmp_path / "out" / "system.dtb").read_bytes(), "/pcie@4010000000", "msi-map")
    path = tmp_path / "broken.dtb"
    path.write_bytes(broken)
    report = boot(guest, path, VIRT_DEVICES)
    for a in allocation["functions"]:
        fn = report.function(a["bdf"])
        assert fn.msi_mode == "intx", report.summary()
    with pytest.raises(AssertionError):
        _assert_matches_allocation(report, allocation)
