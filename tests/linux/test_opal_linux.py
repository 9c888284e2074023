"""Linux on QEMU powernv9, with QEMU's real skiboot (OPAL), judges dtmsi's OPAL plan.

``opal/powernv9.msi`` describes the machine as skiboot publishes it (six
PHB4s with their ``ibm,opal-phbid``, ``ibm,opal-msi-ranges`` and ``reg``,
a root port each) and four functions on four PHBs, with policies that say
what their Linux 6.1 drivers ask.  dtmsi compiles it; Debian's ppc64el
kernel boots once on skiboot's own tree (``powernv.py``, about 15-20 s
under TCG) and loads e1000e, nvme and virtio_net.  Then:

* per function, the mechanism and MSI/MSI-X vector count Linux ends with
  are allocation.json's ``mechanism`` and ``vectors_granted`` (MSI-X for
  e1000e, nvme and virtio-net, INTx for the virtio-net without vectors);
* every vector's XIVE number (the guest's xive debugfs) lies inside its
  PHB's ``ibm,opal-msi-ranges`` as skiboot published it, and the numbers
  are exactly the hwirqs dtmsi planned.  That equality is meaningful, not
  luck: Linux allocates MSI hwirqs first-fit from a bitmap per PHB
  (``msi_bitmap_alloc_hwirqs``), one vector at a time for MSI-X, so a
  function alone on its PHB always gets offsets 0..n-1 (drivers that free
  and re-allocate, as nvme and e1000e do, end on the same numbers); with
  two allocating functions on one PHB the numbers would follow the
  asynchronous probe order, and the test keeps one per PHB;
* the .msi's PHB facts are skiboot's (same PHB ids, msi-ranges, reg), so
  a QEMU or skiboot change that moves them is caught.

Deliberately wrong predictions (a vector count off by one, a hwirq run
shifted by one, a wrong mechanism, a PHB's msi-ranges off by 8) fail the
same checks, on the same boot.
"""

from __future__ import annotations

import copy
import json
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from dtmsi.diagnostics import render_text
from dtmsi.driver import compile_file
from dtmsi.options import CompileOptions

from .powernv import OpalPhb, PowernvRun, boot_powernv, compare, compare_phbs, dtb_lsis, dtb_phbs, summary
from .pseries import PseriesGuest

pytestmark = pytest.mark.linux

MSI = Path(__file__).resolve().parent / "opal" / "powernv9.msi"

#: The functions of powernv9.msi: PHB N's root port has secondary bus pcie.N.
DEVICES: tuple[str, ...] = (
    "e1000e,bus=pcie.0,addr=0x0,romfile=",
    "nvme,serial=dtmsi,bus=pcie.1,addr=0x0",
    "virtio-net-pci,bus=pcie.2,addr=0x0,romfile=",
    "virtio-net-pci,bus=pcie.3,addr=0x0,romfile=,vectors=0",
)
NIC, NVME, NET, NET_INTX = "0000:01:00.0", "0001:01:00.0", "0002:01:00.0", "0003:01:00.0"

#: What the plan must say (written by hand from the drivers' code, so that
#: the test checks what it claims): mechanism, vectors, first hwirq.
EXPECTED: dict[str, tuple[str, int, int | None]] = {
    NIC: ("msix", 3, 0xFE000),
    NVME: ("msix", 2, 0xFD800),
    NET: ("msix", 3, 0xFD000),
    NET_INTX: ("intx", 0, None),
}


@pytest.fixture(scope="module")
def build() -> Iterator[tuple[dict[str, Any], Path]]:
    with tempfile.TemporaryDirectory(prefix="dtmsi-powernv-") as tmp:
        out = Path(tmp)
        result = compile_file(CompileOptions(input=MSI, output_dir=out, emit=frozenset({"dtb", "json"})))
        assert result.ok, "\n".join(render_text(d) for d in result.sink.items)
        yield json.loads((out / "allocation.json").read_text()), out / "system.dtb"


@pytest.fixture(scope="module")
def run(pseries_guest: PseriesGuest) -> PowernvRun:
    return boot_powernv(pseries_guest, DEVICES)


def test_the_plan_says_what_the_test_claims(build: tuple[dict[str, Any], Path]) -> None:
    allocation, _ = build
    got = {
        f["bdf"]: (
            f["mechanism"],
            f["vectors_granted"] if f["mechanism"] in ("msi", "msix") else 0,
            f["messages"][0]["hwirq"] if f["messages"] else None,
        )
        for f in allocation["functions"]
    }
    assert got == EXPECTED


def test_linux_on_skiboot_gets_the_planned_mechanism_vectors_and_xives(
    build: tuple[dict[str, Any], Path], run: PowernvRun
) -> None:
    allocation, _ = build
    problems = compare(allocation, run)
    assert problems == [], "\n".join([*problems, "--- what Linux did ---", summary(run)])
    # the boot really exercised what it claims: drivers bound, interrupts arrived
    for bdf, driver in ((NIC, "e1000e"), (NVME, "nvme"), (NET, "virtio-pci"), (NET_INTX, "virtio-pci")):
        fn = run.report.function(bdf)
        assert fn.driver == driver, summary(run)
    assert run.report.function(NVME).total_delivered > 0, summary(run)
    assert run.report.function(NET_INTX).intx_irq in run.xive, summary(run)


def test_the_msi_describes_skiboots_phbs(build: tuple[dict[str, Any], Path], run: PowernvRun) -> None:
    _, dtb = build
    planned = dtb_phbs(dtb)
    assert len(planned) == 6
    problems = compare_phbs(planned, run.phbs)
    assert problems == [], "\n".join([*problems, summary(run)])


def test_intx_lands_on_the_planned_lsi(build: tuple[dict[str, Any], Path], run: PowernvRun) -> None:
    """The function without MSI-X raises INTA through its root port (device 0:
    no swizzle) to the LSI the .msi's `intx ->` line gives PHB 3 (skiboot puts
    the PHB's 8 LSIs right after its MSI range)."""
    _, dtb = build
    lsis = dtb_lsis(dtb)
    fn = run.report.function(NET_INTX)
    assert fn.config[0x3D] == 1  # interrupt pin A
    assert fn.intx_irq is not None and run.xive.get(fn.intx_irq) == lsis[3][1] == 0xFCFF8, summary(run)


def _edit(allocation: dict[str, Any], bdf: str, **changes: Any) -> dict[str, Any]:
    wrong = copy.deepcopy(allocation)
    fn = next(f for f in wrong["functions"] if f["bdf"] == bdf)
    for key, value in changes.items():
        if key == "hwirq_shift":
            for m in fn["messages"]:
                m["hwirq"] += value
        else:
            fn[key] = value
    return wrong


@pytest.mark.parametrize(
    ("bdf", "changes", "says"),
    [
        (NVME, {"vectors_granted": 3}, "the plan grants 3"),
        (NIC, {"hwirq_shift": 1}, "the plan's hwirqs"),
        (NET, {"hwirq_shift": -8}, "the plan's hwirqs"),
        (NET_INTX, {"mechanism": "msix"}, "Linux ends with intx"),
    ],
)
def test_a_wrong_prediction_fails(
    build: tuple[dict[str, Any], Path], run: PowernvRun, bdf: str, changes: dict[str, Any], says: str
) -> None:
    allocation, _ = build
    problems = compare(_edit(allocation, bdf, **changes), run)
    assert any(bdf in p and says in p for p in problems), problems


def test_a_wrong_phb_fact_fails(build: tuple[dict[str, Any], Path], run: PowernvRun) -> None:
    _, dtb = build
    planned = dtb_phbs(dtb)
    planned[2] = replace(planned[2], msi_base=planned[2].msi_base + 8)
    problems = compare_phbs(planned, run.phbs)
    assert any("PHB 2" in p and "ibm,opal-msi-ranges" in p for p in problems), problems
    missing: dict[int, OpalPhb] = {k: v for k, v in dtb_phbs(dtb).items() if k != 5}
    assert any("PHB 5" in p for p in compare_phbs(missing, run.phbs))
