"""BAR rules (domain.md 5.1 item 8)."""

from __future__ import annotations

from dtmsi import codes as C
from dtmsi.checks.base import Report
from dtmsi.diagnostics import Note
from dtmsi.model import Bar, Function, Machine


def _all(machine: Machine) -> list[tuple[Function, list[Bar]]]:
    out: list[tuple[Function, list[Bar]]] = []
    for hb in machine.host_bridges:
        for f in hb.functions():
            out.append((f, f.bars))
            if f.sriov:
                out.append((f, f.sriov.vf_bars))
    return out


def bar_slots(machine: Machine, report: Report) -> None:
    """BARs 0..5 on endpoints (0..1 on bridges); a 64-bit BAR takes two slots,
    so it cannot start at the last one, and no BAR may sit in its upper half.

    PCI Local Bus spec 3.0 sec. 6.2.5.1; PCI-PCI Bridge spec 1.2 sec. 3.2.
    """
    for f, bars in _all(machine):
        last = 1 if f.is_bridge else 5
        used: dict[int, Bar] = {}
        for b in bars:
            if not 0 <= b.index <= last:
                report(
                    C.BAR_INDEX,
                    b.span,
                    f"BAR {b.index} does not exist on a "
                    f"{'bridge (BAR 0..1)' if f.is_bridge else 'function (BAR 0..5)'}",
                    function=f,
                )
                continue
            if b.kind == "mem64" and b.index == last:
                report(
                    C.BAR_OVERLAP_SLOT,
                    b.span,
                    f"a 64-bit BAR at index {b.index} would need BAR {b.index + 1} too",
                    hint="64-bit BARs take two slots; start it at an index below " + str(last),
                    function=f,
                )
                continue
            for slot in (b.index, b.index + 1) if b.kind == "mem64" else (b.index,):
                prev = used.get(slot)
                if prev is not None:
                    report(
                        C.BAR_OVERLAP_SLOT,
                        b.span,
                        f"BAR slot {slot} is already taken"
                        + (" by the upper half of a 64-bit BAR" if prev.index != slot else ""),
                        notes=(Note("taken here", prev.span),),
                        function=f,
                    )
                    break
                used[slot] = b


def bar_sizes(machine: Machine, report: Report) -> None:
    """BAR sizes are powers of two; memory BARs at least 16 bytes, I/O BARs 4..256.

    PCI Local Bus spec 3.0 sec. 6.2.5.1.
    """
    for f, bars in _all(machine):
        for b in bars:
            if b.size & (b.size - 1):
                report(
                    C.BAR_SIZE,
                    b.span,
                    f"BAR size {b.size:#x} is not a power of two",
                    hint=f"hardware decodes naturally aligned power-of-two sizes; use {1 << b.size.bit_length():#x}",
                    function=f,
                )
            elif b.kind != "io" and b.size < 16:
                report(C.BAR_SIZE, b.span, f"memory BAR size {b.size} is below the minimum of 16 bytes", function=f)
            elif b.kind == "io" and b.size < 4:
                report(C.BAR_SIZE, b.span, f"I/O BAR size {b.size} is below the minimum of 4 bytes", function=f)
            if b.kind == "io" and b.size > 256:
                report(
                    C.IO_BAR_SIZE, b.span, f"I/O BAR of {b.size} bytes: I/O BARs decode at most 256 bytes", function=f
                )
            if b.kind == "mem32" and b.size > 1 << 31:
                report(C.BAR_SIZE, b.span, "a 32-bit BAR cannot be larger than 2 GiB", function=f)


def fixed_bars(machine: Machine, report: Report) -> None:
    """A fixed BAR address is aligned to the BAR size and lies in a window of its class.

    PCI Local Bus spec 3.0 sec. 6.2.5.1 (natural alignment); IEEE 1275 PCI binding.
    """
    for f, bars in _all(machine):
        hb = f.host
        for b in bars:
            if not b.fixed or b.address is None:
                continue
            if b.size & (b.size - 1) == 0 and b.address % b.size:
                report(
                    C.BAR_FIXED_MISALIGNED,
                    b.span,
                    f"BAR address {b.address:#x} is not aligned to its size {b.size:#x}",
                    function=f,
                )
            if b.kind == "mem32" and b.address + b.size > 1 << 32:
                report(C.BAR_FIXED_OUTSIDE, b.span, "a 32-bit BAR cannot be placed above 4 GiB", function=f)
                continue
            w = hb.window_for(b.resource)
            if w is None:
                continue  # reported by the resolver
            if not (w.pci <= b.address and b.address + b.size <= w.pci_end):
                report(
                    C.BAR_FIXED_OUTSIDE,
                    b.span,
                    f"BAR [{b.address:#x}, {b.address + b.size:#x}) is outside the {w.kind} window "
                    f"[{w.pci:#x}, {w.pci_end:#x}) of '{hb.name}'",
                    notes=(Note("the window", w.span),),
                    function=f,
                )
