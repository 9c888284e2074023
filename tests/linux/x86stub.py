"""A generated native MSI stub, judged by QEMU's local APICs in a real x86 guest.

The same program as on arm64 (``stubguest.py``: the generated
``system_msi.c`` with ``stub_hooks_linux.c``), compiled natively with
``gcc -static`` and run by the guest's ``/init`` in Debian's amd64 kernel on
QEMU's ``q35`` (``guest.AMD64``), with two or more CPUs.  No driver owns the
functions it sets up; it writes a marker, runs ``setup_all``, fires every
vector once and writes an end marker.

An x86 MSI is a write of ``data`` to ``address``; the local APICs decode it
(Intel SDM vol. 3, 11.11.1 and 11.11.2): address bits 31:20 are 0xFEE,
19:12 the destination APIC ID, bit 3 the redirection hint, bit 2 the
destination mode (0 physical); data bits 7:0 the vector, 10:8 the delivery
mode (0 fixed), bit 15 the trigger mode (0 edge).  QEMU decodes every write
that reaches the APIC's MSI region the same way and traces it before it
looks for the destination: ``apic_deliver_irq dest D dest_mode M
delivery_mode X vector V trigger_mode T`` (hw/intc/apic.c).  The IOAPIC's
interrupts go through the same event, so only the lines between the stub's
two marker writes (``pci_cfg_write``) count.

:func:`judge_apic_deliveries` is the oracle: between the markers QEMU must
have seen, for each planned message of ``allocation.json``, exactly one
delivery with the fields its address and data encode, to a CPU the machine
has, in the order the guest fired them, and nothing else.

Public API::

    build = build_x86_stub(msi, out)                       # dtmsi compile + gcc -static
    run = run_x86_stub_in_guest(x86_guest, build, devices, smp=2)   # one boot
    run.problems                                           # [] when QEMU saw exactly the plan
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .guest import BootReport, Guest, HarnessError
from .stubguest import (
    END_MARKER_VALUE,
    MARKER_VALUE,
    StubBuild,
    StubOutput,
    boot_stub,
    build_stub,
    marker_lines,
    move_doorbell,
    shift_event_ids,
)

__all__ = [
    "TRACE_EVENTS",
    "X86_STUB_MSI",
    "ApicCut",
    "ApicDelivery",
    "PlannedApicMessage",
    "X86StubRun",
    "build_x86_stub",
    "cut_apic_trace",
    "decode_x86_message",
    "judge_apic_deliveries",
    "move_destination",
    "planned_apic_messages",
    "run_x86_stub_in_guest",
    "shift_vectors",
]

HERE = Path(__file__).resolve().parent
X86_STUB_MSI = HERE / "x86_stub_guest.msi"

#: The guest is native: the host's gcc builds it.
CC = "gcc"

#: QEMU trace events the oracle reads.
TRACE_EVENTS: tuple[str, ...] = ("apic_deliver_irq", "pci_cfg_write")

#: The xAPIC MSI address window (Intel SDM vol. 3, 11.11.1).
MSI_ADDRESS_BASE = 0xFEE0_0000
MSI_ADDRESS_MASK = 0xFFF0_0000


# --------------------------------------------------------------------------
# the plan
# --------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class ApicFields:
    """What a local APIC makes of one MSI: the fields of QEMU's trace."""

    dest: int
    dest_mode: int  # 0 physical, 1 logical
    delivery_mode: int  # 0 fixed, 1 lowest priority, ...
    vector: int
    trigger_mode: int  # 0 edge, 1 level

    def __str__(self) -> str:
        return (
            f"dest {self.dest} dest_mode {self.dest_mode} delivery_mode {self.delivery_mode} "
            f"vector {self.vector:#x} trigger_mode {self.trigger_mode}"
        )


def decode_x86_message(address: int, data: int) -> ApicFields:
    """The fields an xAPIC takes from an MSI address/data pair (SDM 11.11)."""
    if address >> 32 or address & MSI_ADDRESS_MASK != MSI_ADDRESS_BASE:
        raise ValueError(f"{address:#x} is no xAPIC MSI address (0xFEExxxxx)")
    return ApicFields(
        dest=(address >> 12) & 0xFF,
        dest_mode=(address >> 2) & 1,
        delivery_mode=(data >> 8) & 7,
        vector=data & 0xFF,
        trigger_mode=(data >> 15) & 1,
    )


@dataclass(frozen=True, order=True)
class PlannedApicMessage:
    """One MSI/MSI-X vector of the plan and what the APIC must make of it."""

    fields: ApicFields
    bdf: str  # "0000:00:02.0"
    name: str  # the function's name in the .msi
    vector: int  # MSI vector / MSI-X entry (not the APIC vector: that is fields.vector)
    address: int
    data: int


def planned_apic_messages(allocation: Mapping[str, Any]) -> tuple[PlannedApicMessage, ...]:
    """Every vector of every MSI/MSI-X function of ``allocation.json``, decoded."""
    out: list[PlannedApicMessage] = []
    for fn in allocation["functions"]:
        if fn.get("mechanism") not in ("msi", "msix"):
            continue
        for run in fn.get("messages", ()):
            for i in range(int(run["count"])):
                address, data = int(run["address"]), int(run["data"]) + i
                out.append(
                    PlannedApicMessage(
                        fields=decode_x86_message(address, data),
                        bdf=str(fn["bdf"]),
                        name=str(fn["name"]),
                        vector=int(run["vector"]) + i,
                        address=address,
                        data=data,
                    )
                )
    return tuple(sorted(out, key=lambda p: (p.bdf, p.vector)))


# --------------------------------------------------------------------------
# building, and wrong plans for the negative controls
# --------------------------------------------------------------------------


def build_x86_stub(msi: Path, out: Path, *, mutate: Callable[[str], str] | None = None) -> StubBuild:
    """``dtmsi compile msi -o out``, then ``gcc -static`` of the stub and the hooks."""
    return build_stub(msi, out, mutate=mutate, cc=CC)


def shift_vectors(text: str, delta: int = 1) -> str:
    """Every message run's data + ``delta``: each message names the next APIC vector."""
    return shift_event_ids(text, delta)


def move_destination(text: str, old: int = 1, new: int = 0) -> str:
    """Every message for APIC ID ``old`` sent to APIC ID ``new`` instead."""
    return move_doorbell(text, MSI_ADDRESS_BASE | old << 12, MSI_ADDRESS_BASE | new << 12)


# --------------------------------------------------------------------------
# QEMU's trace: the oracle
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ApicDelivery:
    """One ``apic_deliver_irq`` line of QEMU's trace."""

    fields: ApicFields
    line: str


@dataclass(frozen=True)
class ApicCut:
    """QEMU's trace between the stub's marker and end-marker writes."""

    marker_found: bool
    end_found: bool
    deliveries: tuple[ApicDelivery, ...]
    lines: tuple[str, ...]


_DELIVER_RE = re.compile(
    r"\bapic_deliver_irq dest (\d+) dest_mode (\d+) delivery_mode (\d+) vector (\d+) trigger_mode (\d+)"
)


def cut_apic_trace(trace: str, marker_bdf: str) -> ApicCut:
    """The APIC deliveries after the last marker write of ``marker_bdf`` and
    before the end-marker write that follows it."""
    lines = trace.splitlines()
    starts = marker_lines(lines, marker_bdf, MARKER_VALUE)
    if not starts:
        return ApicCut(False, False, (), ())
    start = starts[-1]
    ends = [i for i in marker_lines(lines, marker_bdf, END_MARKER_VALUE) if i > start]
    window = lines[start + 1 : ends[0]] if ends else lines[start + 1 :]
    deliveries = [
        ApicDelivery(ApicFields(*(int(g) for g in m.groups())), line)
        for line in window
        if (m := _DELIVER_RE.search(line)) is not None
    ]
    return ApicCut(True, bool(ends), tuple(deliveries), tuple(window))


def judge_apic_deliveries(
    planned: Sequence[PlannedApicMessage],
    cut: ApicCut,
    *,
    cpus: int,
    shots: Sequence[tuple[str, int]] | None = None,
) -> list[str]:
    """What is wrong with QEMU's view of the stub's shots; [] when, between
    the markers, the APICs saw each planned message exactly once, every one
    to a CPU of the machine (physical APIC IDs 0..cpus-1 on q35), and nothing
    else; with ``shots`` (the (bdf, vector) the guest fired, in order) also in
    the order of the shots, since QEMU delivers a device's MSI while the
    register write that raised it is handled.
    """
    if not cut.marker_found:
        return ["QEMU's trace has no marker write: the stub never ran (or pci_cfg_write was not traced)"]
    if not cut.end_found:
        return ["QEMU's trace has no end-marker write after the marker: the stub did not finish"]
    problems: list[str] = []
    names = {p.fields: f"{p.bdf} {p.name} vector {p.vector}" for p in planned}
    want = Counter(p.fields for p in planned)
    seen = Counter(d.fields for d in cut.deliveries)
    for fields in sorted(want):
        got = seen.get(fields, 0)
        if got == 0:
            problems.append(f"{fields} ({names[fields]}): planned, never delivered")
        elif got != want[fields]:
            problems.append(f"{fields} ({names[fields]}): planned {want[fields]}x, the APICs saw {got}x")
    for fields in sorted(set(seen) - set(want)):
        problems.append(f"{fields}: the APICs saw {seen[fields]} deliveries, none planned")
    for fields in sorted(set(want) | set(seen)):
        if fields.dest_mode == 0 and fields.dest >= cpus:
            problems.append(f"{fields}: APIC ID {fields.dest} is no CPU of this machine ({cpus} CPUs)")
    if shots is not None and not problems:
        by_vector = {(p.bdf, p.vector): p for p in planned}
        if any(shot not in by_vector for shot in shots):
            problems.append(f"the guest fired vectors the plan does not have: {list(shots)}")
        else:
            for i, (shot, d) in enumerate(zip(shots, cut.deliveries, strict=False)):
                p = by_vector[shot]
                if d.fields != p.fields:
                    problems.append(
                        f"shot {i} ({p.bdf} {p.name} vector {p.vector}) should deliver {p.fields}; "
                        f"the APICs saw {d.fields}"
                    )
            if len(shots) != len(cut.deliveries):
                problems.append(f"the guest fired {len(shots)} shots, the APICs saw {len(cut.deliveries)} deliveries")
    return problems


# --------------------------------------------------------------------------
# one boot
# --------------------------------------------------------------------------


_BROUGHT_UP_RE = re.compile(r"smp: Brought up \d+ nodes?, (\d+) CPUs?")
_NO_HANDLER_RE = re.compile(r"__common_interrupt: (\d+)\.(\d+) No irq handler for vector")


@dataclass(frozen=True)
class X86StubRun:
    build: StubBuild
    report: BootReport
    output: StubOutput
    cut: ApicCut
    cpus: int
    problems: tuple[str, ...]  # judge_apic_deliveries' verdict

    @property
    def planned(self) -> tuple[PlannedApicMessage, ...]:
        return planned_apic_messages(self.build.allocation)

    @property
    def cpus_online(self) -> int | None:
        """CPUs the guest kernel brought up ("smp: Brought up 1 node, 2 CPUs")."""
        m = _BROUGHT_UP_RE.search(self.report.dmesg)
        return int(m.group(1)) if m else None

    @property
    def arrivals(self) -> tuple[tuple[int, int], ...]:
        """(CPU, vector) of every interrupt the guest kernel took on a vector
        no irq of its own owns, in log order: Linux logs
        "__common_interrupt: CPU.VECTOR No irq handler for vector"
        (arch/x86/kernel/irq.c; rate-limited to 10 in 5 s)."""
        return tuple((int(c), int(v)) for c, v in _NO_HANDLER_RE.findall(self.report.dmesg))

    def summary(self) -> str:
        """For assertion messages: the verdict, the stub's output, the deliveries."""
        return "\n".join(
            [
                *(f"problem: {p}" for p in self.problems),
                f"guest CPUs online: {self.cpus_online} of {self.cpus}; arrivals (CPU, vector): {list(self.arrivals)}",
                "--- stub output ---",
                self.output.text.rstrip(),
                "--- planned ---",
                *(f"{p.bdf} {p.name} vector {p.vector}: {p.fields}" for p in self.planned),
                "--- APIC deliveries between the markers ---",
                *(d.line for d in self.cut.deliveries),
            ]
        )


def run_x86_stub_in_guest(
    guest: Guest,
    build: StubBuild,
    devices: Sequence[str],
    *,
    smp: int = 2,
    keep_dir: Path | None = None,
    timeout_s: float = 150.0,
) -> X86StubRun:
    """Boot the amd64 guest on q35 with ``smp`` CPUs and ``devices``, run the
    stub (no driver bound: e1000e's is blacklisted, edu has none), judge
    QEMU's ``apic_deliver_irq`` trace."""
    if guest.arch.takes_dtb:
        raise HarnessError(f"run_x86_stub_in_guest needs the amd64 guest, not {guest.arch.deb_arch}")
    report, output = boot_stub(
        guest, build, devices, trace_events=TRACE_EVENTS, keep_dir=keep_dir, timeout_s=timeout_s, smp=smp
    )
    cut = cut_apic_trace(report.trace, output.marker or "0000:00:00.0")
    problems = judge_apic_deliveries(planned_apic_messages(build.allocation), cut, cpus=smp, shots=output.shots)
    return X86StubRun(build, report, output, cut, smp, tuple(problems))
