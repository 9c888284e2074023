"""The generated OPAL stub against QEMU's real skiboot (powernv9, bare metal).

``opal_baremetal.py`` builds the stub dtmsi generates from
``opal/powernv9.msi`` into a big-endian ppc64 program that skiboot boots
with ``-kernel`` (about 8 s under TCG, 6 of them skiboot's PHB reset and
link training).  The program takes OPAL's entry from the device tree
skiboot hands over, implements the stub's hooks with real OPAL calls and
reports every ``opal_pci_set_xive_pe`` / ``opal_get_msi_64`` with skiboot's
answer.  Then, for every vector allocation.json plans (8 MSI-X vectors on
three PHBs):

* its XIVE number lies inside the ibm,opal-msi-ranges of the tree skiboot
  handed over, skiboot accepted set_xive_pe and then get_msi for it, and
  the address/data skiboot composed are allocation.json's prediction;
* the stub recorded exactly that message and the device's MSI-X table
  holds it, unmasked, with MSI-X on; the INTx function ends on INTx.

A second boot covers the MSI path (``powernv9-msi.msi``): a 4-vector MSI
block placed after a 3-vector MSI-X function on the same PHB (so aligned
to 4 in XIVE numbers: one set_xive_pe per XIVE, one get_msi_64 for the
block's first, data + vector in the device) and an 8-vector block with the
no-64bit-msi quirk (get_msi_32).

Negative controls: the same skiboot output judged against allocation.json
with one predicted data value off by one, or one hwirq outside the PHB's
range, fails; and a stub whose host-bridge msi_base is moved so that its
XIVE numbers fall just past the PHB's range (0x7f8 of a 0x7f8-number range)
fails under skiboot itself: skiboot refuses set_xive_pe with OPAL_PARAMETER
and the stub reports E_FW.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .opal_baremetal import (
    POWERNV9_MSI,
    POWERNV9_MSI_SCENARIO,
    OpalRun,
    build_program,
    judge,
    mutate_msi_base,
    run_program,
    stub_msi_bases,
)
from .powernv import dtb_phbs
from .test_opal_linux import DEVICES, NET, NET_INTX, NIC, NVME

pytestmark = pytest.mark.linux

#: powernv9-msi.msi's functions (virtio-net and an xHCI as functions 0 and 1 behind PHB 4's root port).
MSI_DEVICES: tuple[str, ...] = (
    "virtio-net-pci,bus=pcie.4,addr=0x0.0,multifunction=on,romfile=",
    "nec-usb-xhci,bus=pcie.4,addr=0x0.1",
    "nec-usb-xhci,bus=pcie.5,addr=0x0",
)
NET2, USB0, USB1 = "0004:01:00.0", "0004:01:00.1", "0005:01:00.0"

E_FW = -9  # CONTRACT.md, "Statuses"
OPAL_PARAMETER = -1


@pytest.fixture(scope="module")
def good() -> Iterator[OpalRun]:
    with tempfile.TemporaryDirectory(prefix="dtmsi-opal-bm-") as tmp:
        yield run_program(build_program(POWERNV9_MSI, Path(tmp)), DEVICES)


def _fn(allocation: dict[str, Any], bdf: str) -> dict[str, Any]:
    return next(f for f in allocation["functions"] if f["bdf"] == bdf)


def test_skiboot_composes_what_allocation_json_predicts(good: OpalRun) -> None:
    assert good.problems == (), good.summary()
    out, allocation = good.output, good.build.allocation
    planned = sum(f["vectors_granted"] for f in allocation["functions"] if f["mechanism"] == "msix")
    assert planned == 8
    # one set_xive_pe and one get_msi_64 per planned vector, each accepted by skiboot
    assert [c.name for c in out.calls] == ["set_xive_pe", "get_msi"] * planned, good.summary()
    assert all(c.rc == 0 and (c.name == "set_xive_pe" or c.is64) for c in out.calls), good.summary()
    assert {bdf: (r.mechanism, r.vectors) for bdf, r in out.functions.items()} == {
        NIC: ("msix", 3),
        NVME: ("msix", 2),
        NET: ("msix", 3),
        NET_INTX: ("intx", 0),
    }


def test_the_tree_skiboot_hands_over_has_the_msis_phbs(good: OpalRun) -> None:
    planned = {p: (phb.msi_base, phb.msi_count) for p, phb in dtb_phbs(good.build.out / "system.dtb").items()}
    assert good.output.phbs == planned


def test_a_wrong_predicted_data_fails(good: OpalRun) -> None:
    wrong = copy.deepcopy(good.build.allocation)
    _fn(wrong, NVME)["messages"][0]["data"] += 1
    problems = judge(wrong, good.output, stub_msi_bases(good.build.source))
    assert any(NVME in p and "allocation.json predicts 0x1000000000000000/0x1" in p for p in problems), problems


def test_a_hwirq_outside_the_phb_range_fails(good: OpalRun) -> None:
    wrong = copy.deepcopy(good.build.allocation)
    _fn(wrong, NET)["messages"][0]["hwirq"] += 0x7F8  # 0xfd000 + 0x7f8: the first number past PHB 2's range
    problems = judge(wrong, good.output, stub_msi_bases(good.build.source))
    assert any(NET in p and "outside skiboot's ibm,opal-msi-ranges <0xfd000 0x7f8>" in p for p in problems), problems


def test_xive_numbers_past_the_range_are_refused_by_skiboot() -> None:
    with tempfile.TemporaryDirectory(prefix="dtmsi-opal-bm-") as tmp:
        # PHB 1 (nvme) holds 0x7f8 numbers: moving msi_base down by that much
        # makes the stub ask for XIVE 0x7f8 and 0x7f9
        run = run_program(build_program(POWERNV9_MSI, Path(tmp), mutate=mutate_msi_base(1, -0x7F8)), DEVICES)
    nvme = run.output.functions[NVME]
    assert (nvme.status, nvme.fw_status, nvme.set_up) == (E_FW, OPAL_PARAMETER, False), run.summary()
    refused = [c for c in run.output.calls if c.phb_id == 1]
    assert [(c.name, c.xive, c.rc) for c in refused] == [("set_xive_pe", 0x7F8, OPAL_PARAMETER)], run.summary()
    assert any(NVME in p and "status -9 (fw -1); the plan says msix" in p for p in run.problems), run.summary()
    # the other PHBs are untouched by the mutation and still agree
    assert not [p for p in run.problems if NVME not in p], run.summary()


def test_msi_blocks_under_skiboot() -> None:
    with tempfile.TemporaryDirectory(prefix="dtmsi-opal-bm-") as tmp:
        run = run_program(build_program(POWERNV9_MSI_SCENARIO, Path(tmp)), MSI_DEVICES)
        allocation = run.build.allocation
        bases = stub_msi_bases(run.build.source)
    assert run.problems == (), run.summary()
    out = run.output
    usb0 = [(c.name, c.xive, c.is64) for c in out.calls if c.phb_id == 4 and c.pe == 1 and c.xive >= 4]
    # the block's first XIVE given to the PE and composed, then the other three given to it
    want = [("set_xive_pe", 4, False), ("get_msi", 4, True)] + [("set_xive_pe", x, False) for x in range(5, 8)]
    assert usb0 == want, run.summary()
    usb1 = [(c.name, c.xive, c.is64, c.address) for c in out.calls if c.phb_id == 5 and c.name == "get_msi"]
    assert usb1 == [("get_msi", 0, False, 0xFFFF0000)], run.summary()
    assert {bdf: (r.mechanism, r.vectors, r.msi[2] if r.msi else None) for bdf, r in out.functions.items()} == {
        NET2: ("msix", 3, None),
        USB0: ("msi", 4, 4),
        USB1: ("msi", 8, 0),
    }
    # an MSI block predicted one XIVE off (unaligned data) fails against the same answers
    wrong = copy.deepcopy(allocation)
    _fn(wrong, USB0)["messages"][0]["data"] -= 1
    problems = judge(wrong, out, bases)
    assert any(USB0 in p and "allocation.json predicts 0x1000000000000000/0x3" in p for p in problems), problems
