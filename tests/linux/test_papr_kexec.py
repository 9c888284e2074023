"""The real pseries kernel judges dtmsi's PAPR quota properties (kexec).

Each scenario is a ``.msi`` under ``papr_kexec/`` describing QEMU pseries's
default PHB (BUID, windows, LSIs) and the devices at the addresses QEMU's
command line gives them, with policies that say what each Linux driver asks
(``examples/qemu-pseries/qemu-pseries-devices.msi``).  dtmsi compiles it; the ``ibm,pe-total-#msi``,
``ibm,req#msi`` and ``ibm,req#msi-x`` of its ``system.dtb`` are transplanted
into QEMU's own tree and Debian's ppc64el kernel is kexec'd into that tree
(``pseries.py``: two boots in one QEMU run, about 9 s).  Then, per PCI
function:

* the mechanism and the vector count the driver ends with are
  allocation.json's ``mechanism`` and ``vectors_granted``;
* the vectors RTAS ``ibm,change-msi`` holds for it when the report is taken
  (QEMU's trace) are allocation.json's ``hardware_vectors`` (an MSI-X request
  rounded up to a power of two when the quota allows);
* the second kernel booted with exactly dtmsi's three properties;
* its vendor/device IDs and MSI/MSI-X capabilities (read from config space
  in the guest) are the ones the ``.msi`` declares.

One QEMU quirk is named, not loosened: under TCG, e1000e's MSI self-test
fails on QEMU 7.2 pseries ("MSI interrupt test failed, using legacy
interrupt") and the driver ends on INTx.  Where allocation.json says MSI for
an e1000e and the kernel prints that line for it, the expected end is INTx
*and* the trace must show that the kernel first took exactly the predicted
MSI grant.  The line for a function allocation.json did not put on MSI is a
disagreement.

A deliberately wrong prediction (allocation.json with one vector count off
by one; a plan with one property off by one) must fail the same checks.
"""

from __future__ import annotations

import copy
import json
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from dtmsi.diagnostics import render_text
from dtmsi.driver import compile_file
from dtmsi.options import CompileOptions

from .guest import FunctionReport, HarnessError
from .papr_baremetal import RTAS_CHANGE_MSI_FN, config_addr_of
from .pseries import (
    MACHINE,
    MEMORY,
    QEMU,
    KexecRun,
    PaprPlan,
    PseriesGuest,
    boot_kexec,
    plan_from_dtb,
    summary,
)

HERE = Path(__file__).resolve().parent / "papr_kexec"

NET, NIC, NVME = "0000:00:01.0", "0000:00:02.0", "0000:00:03.0"
#: QEMU devices at the addresses the scenarios declare (no option ROMs: VOF runs none).
VIRTIO_NET = "virtio-net-pci,addr=01.0,romfile="
E1000E = "e1000e,addr=02.0,romfile="
NVME_DEV = "nvme,serial=dtmsi,addr=03.0"
ALL3 = (VIRTIO_NET, E1000E, NVME_DEV)

#: What a function ends with: (mechanism, vectors the driver holds, vectors RTAS holds).
Outcome = tuple[str, int, int]


@dataclass(frozen=True)
class Scenario:
    name: str
    devices: tuple[str, ...]
    #: allocation.json as computed by hand from Linux's arithmetic (the
    #: scenario's comment): the scenario really tests what it says.
    plan: Mapping[str, Outcome]
    maxcpus: int | None = None

    @property
    def msi(self) -> Path:
        return HERE / f"{self.name}.msi"


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "generous",
        ALL3,
        {NET: ("msix", 3, 4), NIC: ("msix", 3, 4), NVME: ("msix", 2, 2)},
    ),
    Scenario(
        "cpus8",
        ALL3,
        {NET: ("msix", 3, 4), NIC: ("msix", 3, 4), NVME: ("msix", 9, 16)},
        maxcpus=8,
    ),
    Scenario(
        "tight",
        ALL3,
        {NET: ("msix", 3, 4), NIC: ("msix", 3, 4), NVME: ("msix", 6, 6)},
        maxcpus=8,
    ),
    Scenario(
        "fallback",
        (VIRTIO_NET, NVME_DEV),
        {NET: ("intx", 0, 0), NVME: ("msix", 1, 1)},
    ),
    Scenario(
        "capped",
        ALL3,
        {NET: ("msix", 2, 2), NIC: ("msix", 3, 4), NVME: ("msix", 4, 4)},
        maxcpus=8,
    ),
    Scenario(
        "no_req_msix",
        ALL3,
        {NET: ("msix", 3, 4), NIC: ("msi", 1, 1), NVME: ("intx", 0, 0)},
    ),
    Scenario(
        "e1000e_short",
        ALL3,
        {NET: ("msix", 2, 2), NIC: ("msi", 1, 1), NVME: ("msix", 2, 2)},
    ),
)
BY_NAME = {s.name: s for s in SCENARIOS}


# --------------------------------------------------------------------------
# building: dtmsi, and QEMU's own tree for the same machine
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Capabilities:
    """What config space says about one function (or what the .msi declares)."""

    vendor: int
    device: int
    msi: tuple[int, bool] | None  # (vectors, 64-bit)
    msix: tuple[int, int, int, int, int] | None  # (table size, table BIR, offset, PBA BIR, offset)
    msi_at: int | None = None  # capability offsets (None: not declared)
    msix_at: int | None = None

    def differences(self, other: Capabilities) -> list[str]:
        out = []
        for name in ("vendor", "device", "msi", "msix", "msi_at", "msix_at"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if name.endswith("_at") and (mine is None or theirs is None):
                continue
            if mine != theirs:
                out.append(f"{name}: .msi {mine} / QEMU {theirs}")
        return out


@dataclass(frozen=True)
class Build:
    out: Path
    allocation: dict[str, Any]
    plan: PaprPlan
    declared: dict[str, Capabilities]  # bdf -> what the .msi declares
    diagnostics: str
    qemu_plan: PaprPlan  # QEMU's own tree's PAPR view (the functions it has)
    qemu_phb: dict[str, bytes]  # QEMU's PHB reg and ranges
    our_phb: dict[str, bytes]


def _phb_props(dtb: bytes) -> dict[str, bytes]:
    import libfdt

    fdt = libfdt.Fdt(dtb)
    node = fdt.path_offset(plan_from_dtb(dtb).phbs[0].node)
    return {name: bytes(fdt.getprop(node, name)) for name in ("reg", "ranges")}


def qemu_dtb(devices: Sequence[str], maxcpus: int | None) -> bytes:
    """QEMU's own tree for the scenario's machine (``dumpdtb``)."""
    with tempfile.TemporaryDirectory(prefix="dtmsi-pseries-dump-") as tmp:
        out = Path(tmp) / "qemu.dtb"
        cpus = f"1,maxcpus={maxcpus}" if maxcpus else "1"
        cmd = [QEMU, "-M", f"{MACHINE},dumpdtb={out}", "-m", MEMORY, "-smp", cpus, "-nodefaults",
               "-display", "none"]  # fmt: skip
        for dev in devices:
            cmd += ["-device", dev]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        if proc.returncode != 0 or not out.exists():
            raise HarnessError(f"{' '.join(cmd)} wrote no tree: {proc.stderr.strip()}")
        return out.read_bytes()


def build(scenario: Scenario, out: Path) -> Build:
    result = compile_file(CompileOptions(input=scenario.msi, output_dir=out, emit=frozenset({"dtb", "dts", "json"})))
    diagnostics = "\n".join(render_text(d) for d in result.sink.items)
    if not result.ok or result.machine is None:
        raise AssertionError(f"dtmsi refused {scenario.msi.name}:\n{diagnostics}")
    declared: dict[str, Capabilities] = {}
    for hb in result.machine.host_bridges:
        for f in hb.functions():
            bdf = f"{hb.domain or 0:04x}:{f.bus:02x}:{f.device:02x}.{f.function}"
            declared[bdf] = Capabilities(
                vendor=f.vendor,
                device=f.device_id,
                msi=(f.msi.vectors, f.msi.is64) if f.msi else None,
                msix=(
                    (f.msix.table_size, f.msix.table_bir, f.msix.table_offset, f.msix.pba_bir, f.msix.pba_offset)
                    if f.msix
                    else None
                ),
                msi_at=f.msi.offset if f.msi else None,
                msix_at=f.msix.offset if f.msix else None,
            )
    ours = (out / "system.dtb").read_bytes()
    theirs = qemu_dtb(scenario.devices, scenario.maxcpus)
    return Build(
        out=out,
        allocation=json.loads((out / "allocation.json").read_text()),
        plan=plan_from_dtb(ours),
        declared=declared,
        diagnostics=diagnostics,
        qemu_plan=plan_from_dtb(theirs),
        qemu_phb=_phb_props(theirs),
        our_phb=_phb_props(ours),
    )


def config_capabilities(fn: FunctionReport) -> Capabilities:
    """The function's IDs, MSI and MSI-X capabilities from its config space."""
    cfg = fn.config
    msi: tuple[int, bool] | None = None
    msix: tuple[int, int, int, int, int] | None = None
    msi_at = msix_at = None
    ptr, guard = (cfg[0x34] & 0xFC if len(cfg) > 0x34 and cfg[0x06] & 0x10 else 0), 0
    while ptr and ptr + 12 <= len(cfg) and guard < 48:
        cap_id = cfg[ptr]
        ctrl = int.from_bytes(cfg[ptr + 2 : ptr + 4], "little")
        if cap_id == 0x05:
            msi, msi_at = (1 << ((ctrl >> 1) & 7), bool(ctrl & 0x80)), ptr
        elif cap_id == 0x11:
            table = int.from_bytes(cfg[ptr + 4 : ptr + 8], "little")
            pba = int.from_bytes(cfg[ptr + 8 : ptr + 12], "little")
            msix, msix_at = ((ctrl & 0x7FF) + 1, table & 7, table & ~7, pba & 7, pba & ~7), ptr
        ptr, guard = cfg[ptr + 1] & 0xFC, guard + 1
    return Capabilities(fn.vendor, fn.device, msi, msix, msi_at, msix_at)


# --------------------------------------------------------------------------
# the judge
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Quirk:
    """A known difference between a correct prediction and what QEMU lets
    the driver end with, recognised by the kernel's own line."""

    name: str
    ids: tuple[int, int]  # vendor, device
    predicted: str  # the mechanism allocation.json says
    ends: str  # what the driver ends with instead
    rtas_function: int  # the ibm,change-msi function the kernel must have used first
    line: str  # the kernel's line (after the function's BDF)


E1000E_MSI_SELFTEST = Quirk(
    name="e1000e MSI self-test under TCG (QEMU 7.2 pseries)",
    ids=(0x8086, 0x10D3),
    predicted="msi",
    ends="intx",
    rtas_function=RTAS_CHANGE_MSI_FN,
    line="MSI interrupt test failed, using legacy interrupt",
)
QUIRKS: tuple[Quirk, ...] = (E1000E_MSI_SELFTEST,)


@dataclass
class Judgement:
    problems: list[str] = field(default_factory=list)
    quirks: list[str] = field(default_factory=list)  # named differences applied, with the evidence
    table: list[str] = field(default_factory=list)  # bdf: allocation.json vs kernel


def expected_outcome(fn: Mapping[str, Any]) -> Outcome:
    mech = str(fn["mechanism"])
    if mech in ("msi", "msix"):
        return mech, int(fn["vectors_granted"]), int(fn["hardware_vectors"])
    return mech, 0, 0


def transplant_problems(plan: PaprPlan, live: PaprPlan) -> list[str]:
    """The second kernel booted with exactly the plan's PAPR properties
    (``live`` has every PHB and function node, with None for a missing one)."""
    out: list[str] = []
    got = live.values()
    for key, value in sorted(plan.values().items(), key=lambda kv: str(kv[0])):
        buid, where, prop = key
        node = "the PHB" if where is None else f"bus/devfn {where:#06x}"
        if key not in got:
            out.append(f"BUID {buid:#x}: the second kernel's tree has no {node}")
        elif got[key] != value:
            out.append(f"BUID {buid:#x} {node} {prop}: dtmsi {value}, the second kernel booted with {got[key]}")
    return out


def judge(allocation: Mapping[str, Any], run: KexecRun, plan: PaprPlan, quirks: Sequence[Quirk] = QUIRKS) -> Judgement:
    """Everything that differs between dtmsi's prediction and the kernel."""
    j = Judgement()
    report = run.report
    j.problems.extend(run.problems)
    j.problems.extend(transplant_problems(plan, run.live_plan))
    if not report.settled:
        j.problems.append("the guest's vector set never settled (or an NVMe controller never went live)")
    j.problems.extend(f"modprobe {m} never returned" for m in report.stuck_modules)
    predicted = {str(f["bdf"]): f for f in allocation["functions"]}
    for bdf in sorted(set(report.functions) - set(predicted)):
        j.problems.append(f"{bdf}: a function the .msi does not describe")
    for bdf, fn in sorted(predicted.items()):
        kfn = report.functions.get(bdf)
        if kfn is None:
            j.problems.append(f"{bdf} ({fn['name']}): not in the guest")
            continue
        if kfn.driver is None:
            j.problems.append(f"{bdf} ({fn['name']}): no driver bound")
        want = expected_outcome(fn)
        got: Outcome = (kfn.msi_mode, kfn.vectors, run.rtas_vectors(bdf))
        for quirk in quirks:
            lines = [ln for ln in report.dmesg.splitlines() if bdf in ln and quirk.line in ln]
            if not lines or (kfn.vendor, kfn.device) != quirk.ids:
                continue
            if want[0] != quirk.predicted:
                grants = [c for c in run.rtas_changes if c[0] == config_addr_of(bdf) and c[1] == quirk.rtas_function]
                j.problems.append(
                    f"{bdf} ({fn['name']}): the kernel took {quirk.predicted.upper()} "
                    f"(ibm,change-msi grants {[(c[1], c[2]) for c in grants]}; its self-test then failed: "
                    f"{lines[0].strip()!r}) where allocation.json says {want[0]}"
                )
                continue
            grants = [
                c for c in run.rtas_changes if c[0] == config_addr_of(bdf) and c[1] == quirk.rtas_function and c[3] != 0
            ]
            if not any(c[2] == want[2] for c in grants):
                j.problems.append(
                    f"{bdf} ({fn['name']}): {quirk.name}, but RTAS never granted the predicted "
                    f"{want[2]} vector(s) with function {quirk.rtas_function} first: {grants}"
                )
            j.quirks.append(
                f"{bdf} ({fn['name']}): {quirk.name}: allocation.json {want}, kernel {got}: {lines[0].strip()}"
            )
            want = (quirk.ends, 0, 0)
        j.table.append(f"{bdf} {fn['name']}: allocation.json {expected_outcome(fn)}, kernel {got}")
        if got != want:
            j.problems.append(
                f"{bdf} ({fn['name']}): allocation.json says {want[0]} x{want[1]} (RTAS {want[2]}), "
                f"the kernel's {kfn.driver} ended with {got[0]} x{got[1]} (RTAS {got[2]})"
            )
    return j


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ScenarioRun:
    build: Build
    run: KexecRun


@pytest.fixture(scope="module")
def runs() -> dict[str, ScenarioRun]:
    """Boots made so far, by scenario: the negative controls reuse them."""
    return {}


def scenario_run(name: str, runs: dict[str, ScenarioRun], guest: PseriesGuest, tmp: Path) -> ScenarioRun:
    if name not in runs:
        scenario = BY_NAME[name]
        b = build(scenario, tmp / "out")
        run = boot_kexec(guest, b.plan, scenario.devices, maxcpus=scenario.maxcpus, keep_dir=tmp / "boot")
        runs[name] = ScenarioRun(b, run)
    return runs[name]


# --------------------------------------------------------------------------
# the tests
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", [s.name for s in SCENARIOS])
def test_the_plan_is_what_the_scenario_says(name: str, tmp_path: Path) -> None:
    """allocation.json says what the scenario's comment computes from
    Linux's arithmetic (no boot): the scenarios move the result."""
    scenario = BY_NAME[name]
    result = compile_file(CompileOptions(input=scenario.msi, output_dir=tmp_path, emit=frozenset({"json"})))
    assert result.ok
    allocation = json.loads((tmp_path / "allocation.json").read_text())
    got = {str(f["bdf"]): expected_outcome(f) for f in allocation["functions"]}
    assert got == dict(scenario.plan)


def test_the_scenarios_differ() -> None:
    outcomes = [tuple(sorted(s.plan.items())) for s in SCENARIOS]
    assert len(set(outcomes)) == len(outcomes)


@pytest.mark.linux
@pytest.mark.parametrize("name", [s.name for s in SCENARIOS])
def test_the_kernel_does_what_allocation_json_says(
    name: str, runs: dict[str, ScenarioRun], pseries_guest: PseriesGuest, tmp_path: Path
) -> None:
    sr = scenario_run(name, runs, pseries_guest, tmp_path)
    b, run = sr.build, sr.run
    context = f"{summary(run)}\n--- dtmsi ---\n{b.diagnostics}"

    # The .msi describes the QEMU it runs: the PHB, the functions, their IDs
    # and capabilities.
    harness: list[str] = []
    if b.our_phb != b.qemu_phb:
        harness.append(f"PHB reg/ranges: dtmsi {b.our_phb} / QEMU {b.qemu_phb}")
    ours = {(p.buid, f.bus, f.devfn) for p in b.plan.phbs for f in p.functions}
    theirs = {(p.buid, f.bus, f.devfn) for p in b.qemu_plan.phbs for f in p.functions}
    if ours != theirs:
        harness.append(f"functions: dtmsi {sorted(ours)} / QEMU {sorted(theirs)}")
    for bdf, declared in sorted(b.declared.items()):
        kfn = run.report.functions.get(bdf)
        if kfn is not None:
            harness.extend(f"{bdf} {d}" for d in declared.differences(config_capabilities(kfn)))
    if harness:
        pytest.fail("the .msi does not describe QEMU's machine:\n" + "\n".join(harness) + "\n" + context)

    j = judge(b.allocation, run, b.plan)
    assert not j.problems, "\n".join(["dtmsi and the kernel disagree:", *j.problems, *j.table, context])


@pytest.mark.linux
def test_the_quirk_is_named_and_proven(
    runs: dict[str, ScenarioRun], pseries_guest: PseriesGuest, tmp_path: Path
) -> None:
    """no_req_msix: e1000e takes exactly the predicted MSI grant before its
    self-test sends it to INTx, and the judge says so by name."""
    sr = scenario_run("no_req_msix", runs, pseries_guest, tmp_path)
    j = judge(sr.build.allocation, sr.run, sr.build.plan)
    assert len(j.quirks) == 1 and j.quirks[0].startswith(f"{NIC} (nic0): {E1000E_MSI_SELFTEST.name}"), j.quirks
    assert j.problems == []
    grants = [(c[1], c[2]) for c in sr.run.rtas_changes if c[0] == config_addr_of(NIC)]
    assert (RTAS_CHANGE_MSI_FN, 1) in grants
    assert not any(f == 4 for f, _ in grants), "e1000e without ibm,req#msi-x must never ask for MSI-X"
    # The kernel's quota arithmetic ran on dtmsi's properties.
    assert any("rtas_msi: calc quota for 0000:00:01.0, request 3" in ln for ln in sr.run.quota_lines)


@pytest.mark.linux
@pytest.mark.parametrize("bdf", [NET, NIC, NVME])
def test_a_wrong_prediction_fails(
    bdf: str, runs: dict[str, ScenarioRun], pseries_guest: PseriesGuest, tmp_path: Path
) -> None:
    """Negative control: allocation.json with one function's vector count
    off by one must fail the judge (on the generous scenario's real boot)."""
    sr = scenario_run("generous", runs, pseries_guest, tmp_path)
    assert judge(sr.build.allocation, sr.run, sr.build.plan).problems == []
    wrong = copy.deepcopy(sr.build.allocation)
    for fn in wrong["functions"]:
        if fn["bdf"] == bdf:
            fn["vectors_granted"] += 1
    problems = judge(wrong, sr.run, sr.build.plan).problems
    assert len(problems) == 1 and problems[0].startswith(bdf), problems


@pytest.mark.linux
def test_a_wrong_transplant_fails(runs: dict[str, ScenarioRun], pseries_guest: PseriesGuest, tmp_path: Path) -> None:
    """Negative control: the tight scenario booted with ibm,pe-total-#msi 11
    where dtmsi computed 12 must fail against dtmsi's allocation.json and
    plan: the kernel clamps nvme to 5 (quota 3, spare 2), not 6."""
    sr = scenario_run("tight", runs, pseries_guest, tmp_path)
    phb = sr.build.plan.phbs[0]
    assert phb.pe_total == 12
    wrong = PaprPlan((replace(phb, pe_total=11),))
    run = boot_kexec(pseries_guest, wrong, BY_NAME["tight"].devices, maxcpus=8, keep_dir=tmp_path / "wrong")
    assert run.report.function(NVME).vectors == 5, summary(run)
    j = judge(sr.build.allocation, run, sr.build.plan)
    assert j.problems == [
        f"BUID {phb.buid:#x} the PHB ibm,pe-total-#msi: dtmsi 12, the second kernel booted with 11",
        f"{NVME} (nvme0): allocation.json says msix x6 (RTAS 6), the kernel's nvme ended with msix x5 (RTAS 5)",
    ], j.problems
