"""MSI / MSI-X capability and msi-map rules (domain.md 5.3, 5.4)."""

from __future__ import annotations

from dtmsi import codes as C
from dtmsi.checks.base import Report
from dtmsi.diagnostics import Note
from dtmsi.model import Bar, Function, Machine, MsiCap, MsixCap
from dtmsi.source import BUILTIN, Span


def _functions(machine: Machine) -> list[Function]:
    out: list[Function] = []
    for hb in machine.host_bridges:
        for f in hb.functions():
            out.append(f)
            if f.sriov:
                out.extend(f.sriov.vfs[:1])  # VFs share one declaration; check it once
    return out


def _msi_caps(f: Function) -> tuple[MsiCap | None, MsixCap | None, list[Bar]]:
    if f.kind == "vf" and f.pf is not None and f.pf.sriov is not None:
        sv = f.pf.sriov
        return sv.vf_msi, sv.vf_msix, sv.vf_bars
    return f.msi, f.msix, f.bars


def msi_capability(machine: Machine, report: Report) -> None:
    """MSI: 1..32 vectors, a power of two (Multiple Message Capable is log2).

    PCI Local Bus spec 3.0 sec. 6.8.1.3; Linux drivers/pci/msi/msi.c; QEMU msi_init().
    """
    for f in _functions(machine):
        msi, _, _ = _msi_caps(f)
        if msi is None:
            continue
        n = msi.vectors
        if not (1 <= n <= 32) or n & (n - 1):
            report(
                C.MSI_VECTORS,
                msi.span,
                f"MSI capability of '{f.name}' declares {n} vectors; MSI supports 1, 2, 4, 8, 16 or 32",
                hint="Multiple Message Capable is a power-of-two field; more vectors need MSI-X",
                function=f,
            )


def msix_capability(machine: Machine, report: Report) -> None:
    """MSI-X: table size 1..2048; table and PBA in an implemented memory BAR
    (BIR 0..5, not I/O, not the upper half of a 64-bit BAR), 8-byte aligned,
    inside the BAR, not overlapping each other.

    PCI Local Bus spec 3.0 sec. 6.8.2; Linux msix_map_region().
    """
    for f in _functions(machine):
        _, msix, bars = _msi_caps(f)
        if msix is None:
            continue
        if not 1 <= msix.table_size <= 2048:
            report(
                C.MSIX_TABLE_SIZE,
                msix.span,
                f"MSI-X table size {msix.table_size} is outside 1..2048 (Table Size is an 11-bit N-1 field)",
                function=f,
            )
            continue
        regions: list[tuple[str, int, int, int]] = [
            ("table", msix.table_bir, msix.table_offset, msix.table_bytes),
            ("PBA", msix.pba_bir, msix.pba_offset, msix.pba_bytes),
        ]
        ok = True
        for what, bir, off, size in regions:
            bar = next((b for b in bars if b.index == bir), None)
            if bir > 5 or bar is None or bar.kind == "io":
                upper = next((b for b in bars if b.kind == "mem64" and b.index + 1 == bir), None)
                why = (
                    "it is the upper half of 64-bit BAR " + str(upper.index)
                    if upper
                    else "that BAR is I/O space"
                    if bar is not None
                    else "BIR must be 0..5"
                    if bir > 5
                    else f"BAR {bir} is not declared"
                )
                report(
                    C.MSIX_BIR,
                    msix.span,
                    f"MSI-X {what} of '{f.name}' is in BAR {bir}, but {why}",
                    hint="name a memory BAR declared with 'bar N mem32|mem64 SIZE'",
                    function=f,
                )
                ok = False
                continue
            if off % 8:
                report(
                    C.MSIX_ALIGN,
                    msix.span,
                    f"MSI-X {what} offset {off:#x} is not 8-byte aligned (the low 3 bits hold the BIR)",
                    function=f,
                )
                ok = False
            if off + size > bar.size:
                report(
                    C.MSIX_OUTSIDE_BAR,
                    msix.span,
                    f"MSI-X {what} [{off:#x}, {off + size:#x}) does not fit in BAR {bir} of {bar.size:#x} bytes",
                    notes=(Note(f"BAR {bir}", bar.span),),
                    function=f,
                )
                ok = False
        if ok and msix.table_bir == msix.pba_bir:
            t0, t1 = msix.table_offset, msix.table_offset + msix.table_bytes
            p0, p1 = msix.pba_offset, msix.pba_offset + msix.pba_bytes
            if t0 < p1 and p0 < t1:
                report(
                    C.MSIX_OVERLAP,
                    msix.span,
                    f"MSI-X table [{t0:#x}, {t1:#x}) and PBA [{p0:#x}, {p1:#x}) overlap in BAR {msix.table_bir}",
                    function=f,
                )


def _msi_cap_bytes(msi: MsiCap) -> int:
    """Size of the MSI capability structure: 10, 14, 20 or 24 bytes."""
    return 10 + (4 if msi.is64 else 0) + (10 if msi.maskable else 0)


def capability_offsets(machine: Machine, report: Report) -> None:
    """Declared capability offsets (``msi ... @ 0xd0``): in the PCI-compatible
    header's capability area 0x40..0xff (capability pointers are 8 bits),
    dword-aligned (the pointer's low two bits are reserved), and the MSI and
    MSI-X structures of one function do not overlap.

    PCI Local Bus spec 3.0 sec. 6.7 (capabilities list), 6.8.1 and 6.8.2
    (structure sizes); Linux __pci_find_next_cap_ttl() masks pointers with ~3.
    """
    for f in _functions(machine):
        msi, msix, _ = _msi_caps(f)
        regions: list[tuple[str, int, int, Span]] = []
        if msi is not None and msi.offset is not None:
            regions.append(("MSI", msi.offset, _msi_cap_bytes(msi), msi.offset_span or msi.span))
        if msix is not None and msix.offset is not None:
            regions.append(("MSI-X", msix.offset, 12, msix.offset_span or msix.span))
        bad = False
        for what, off, size, span in regions:
            if off < 0x40 or off + size > 0x100 or off % 4:
                bad = True
                report(
                    C.CAP_OFFSET,
                    span,
                    f"{what} capability of '{f.name}' at {off:#x} ({size} bytes) must be dword-aligned "
                    "and lie in 0x40..0xff",
                    hint="capabilities follow the 64-byte header; pointers are 8 bits with the low two reserved",
                    function=f,
                )
        if len(regions) == 2 and not bad:
            (_, a, asz, _), (_, b, bsz, bspan) = regions
            if a < b + bsz and b < a + asz:
                report(
                    C.CAP_OFFSET,
                    bspan,
                    f"MSI-X capability of '{f.name}' at {b:#x} overlaps its MSI capability at {a:#x}"
                    f" ({asz} bytes)",
                    function=f,
                )


def x86_vectors(machine: Machine, report: Report) -> None:
    """An x86 MSI carries its vector in data bits 7:0, next to the delivery mode
    in bits 10:8 (Intel SDM vol. 3, 11.11.2), and vectors 0..31 belong to the
    processor's exceptions (SDM vol. 3, 6.2; a local APIC treats 0..15 as
    illegal, 11.5.2): an x86-apic 'vectors' range lies within 0x20..0xff.
    A vector above 0xff would not fit the data's vector field; its high bits
    would become the delivery mode and the message another vector.
    """
    for c in machine.controllers:
        if c.kind != "x86-apic" or c.vectors is None or c.span is None:
            continue
        lo, hi = c.vectors
        if lo < 0x20 or hi > 0xFF:
            report(
                C.BAD_VALUE,
                c.span,
                f"x86-apic '{c.name}' hands out vectors {lo:#x}..{hi:#x}; an x86 MSI vector is 0x20..0xff",
                hint="the data holds 8 bits of vector, and vectors 0..0x1f are the processor's exceptions",
            )


def msi_map_shape(machine: Machine, report: Report) -> None:
    """msi-map entries: target has #msi-cells = <1>; rid-base inside msi-map-mask;
    overlapping entries (Linux takes the first silently); msi-map-mask needs msi-map;
    DeviceIDs within the controller's width.

    Linux Documentation/devicetree/bindings/pci/pci-msi.txt; drivers/of/base.c of_map_id().
    """
    for hb in machine.host_bridges:
        if hb.msi_map_mask is not None and not hb.msi_maps:
            report(C.MSI_MAP_MASK_ALONE, hb.span, f"'{hb.name}' has 'msi map-mask' but no 'msi map'")
        for i, e in enumerate(hb.msi_maps):
            if e.controller.msi_cells != 1:
                report(
                    C.MSI_MAP_TARGET,
                    e.span,
                    f"msi-map target '{e.controller.name}' has #msi-cells = <{e.controller.msi_cells or 0}>; "
                    "msi-map needs <1>",
                    hint="a controller without sideband IDs is named with 'msi parent NAME;'",
                )
            if hb.msi_map_mask is not None and e.rid_base & ~hb.msi_map_mask:
                report(
                    C.MSI_MAP_MASK,
                    e.span,
                    f"rid-base {e.rid_base:#06x} has bits outside msi-map-mask {hb.msi_map_mask:#06x}; "
                    "Linux aborts the whole lookup when it meets this entry",
                )
            last_id = e.msi_base + e.length - 1
            bits = e.controller.device_id_bits
            if e.controller.kind == "gicv3-its" and last_id >= 1 << bits:
                report(
                    C.DEVICE_ID_WIDTH,
                    e.span,
                    f"DeviceID {last_id:#x} needs more than the {bits} DeviceID bits of '{e.controller.name}'",
                )
            for prev in hb.msi_maps[:i]:
                if (
                    prev.controller is e.controller
                    and e.rid_base < prev.rid_base + prev.length
                    and prev.rid_base < e.rid_base + e.length
                ):
                    report(
                        C.MSI_MAP_OVERLAP,
                        e.span,
                        "this msi-map entry overlaps an earlier one; Linux uses the first match",
                        notes=(Note("earlier entry", prev.span),),
                    )


def _needs_msi(f: Function) -> bool:
    msi, msix, _ = _msi_caps(f)
    return msi is not None or msix is not None


def msi_map_coverage(machine: Machine, report: Report) -> None:
    """Native platforms: every MSI-capable function's requester ID (after DMA
    aliasing) must be translated by msi-map, else Linux logs "no msi-map
    translation" and the function falls back to INTx; a DeviceID that differs
    from the requester ID only works if the root complex rewrites IDs.

    drivers/pci/msi/irqdomain.c pci_msi_domain_get_msi_rid(); drivers/of/irq.c of_msi_xlate().
    """
    if machine.platform.msi_mode.kind != "native":
        return
    for hb in machine.host_bridges:
        users = [f for f in hb.functions() if _needs_msi(f)]
        users += [vf for f in hb.functions() if f.sriov for vf in f.sriov.vfs if _needs_msi(vf)]
        if not users:
            continue
        if not hb.msi_maps and hb.msi_parent is None:
            f = users[0]
            report(
                C.MSI_NO_CONTROLLER,
                hb.name_span,
                f"'{hb.name}' has MSI-capable functions (e.g. '{f.name}') but no MSI controller",
                hint="add 'msi map rid 0x0000..0xffff -> ITS;' or 'msi parent CONTROLLER;'",
            )
            continue
        if not hb.msi_maps:
            continue
        warned_offset = False
        for f in sorted(users, key=lambda f: f.rid):
            got = hb.msi_controller_for(f.dma_alias)
            if got is None:
                alias = f" (its DMA alias through '{f.dma_alias_of.name}')" if f.dma_alias_of else ""
                report(
                    C.MSI_MAP_UNCOVERED,
                    f.name_span,
                    f"requester ID {f.dma_alias:#06x}{alias} of '{f.name}' ({f.bdf}) is not covered by "
                    f"the msi-map of '{hb.name}'",
                    hint="Linux logs 'no msi-map translation' and the function gets INTx; widen 'msi map rid'",
                )
                continue
            _, dev_id = got
            if dev_id is not None and dev_id != f.dma_alias and not warned_offset:
                warned_offset = True
                entry = next(
                    e
                    for e in hb.msi_maps
                    if e.translate(f.dma_alias & (hb.msi_map_mask if hb.msi_map_mask is not None else 0xFFFF))
                    is not None
                )
                report(
                    C.MSI_MAP_OFFSET,
                    entry.span,
                    f"'{f.name}' sends requester ID {f.dma_alias:#06x} but msi-map gives DeviceID {dev_id:#x}",
                    hint="unless the root complex rewrites requester IDs on the way to the ITS, its "
                    "interrupts are never delivered (QEMU's virt board does not rewrite them)",
                )


def device_id_collisions(machine: Machine, report: Report) -> None:
    """Two functions that are not DMA aliases of each other must not reach one
    controller with the same DeviceID (the ITS would merge their interrupts).

    Linux drivers/irqchip/irq-gic-v3-its.c (one ITT per DeviceID).
    """
    seen: dict[tuple[int, int], Function] = {}
    for hb in machine.host_bridges:
        fns = [f for f in hb.functions() if _needs_msi(f)]
        fns += [vf for f in hb.functions() if f.sriov for vf in f.sriov.vfs if _needs_msi(vf)]
        for f in fns:
            got = hb.msi_controller_for(f.dma_alias)
            if got is None or got[1] is None:
                continue
            ctrl, dev_id = got[0], got[1]
            key = (id(ctrl), dev_id)
            prev = seen.get(key)
            if prev is None:
                seen[key] = f
            elif prev.host is not f.host or prev.dma_alias != f.dma_alias:
                report(
                    C.DEVICE_ID_COLLISION,
                    f.name_span,
                    f"'{f.name}' and '{prev.name}' both reach '{ctrl.name}' as DeviceID {dev_id:#x}",
                    notes=(Note(f"'{prev.name}' is here", prev.name_span),),
                    hint="give the host bridges disjoint msi-map output ranges ('-> its + OFFSET')",
                )


def fsl_available_ranges(machine: Machine, report: Report) -> None:
    """FSL MPIC MSI banks hold 32 interrupts each: msi-available-ranges must start
    and end on multiples of 32, and stay below 256 (512 on MPIC v4.3).

    Linux Documentation/devicetree/bindings/powerpc/fsl/msi-pic.txt; arch/powerpc/sysdev/fsl_msi.c.
    """
    for c in machine.controllers:
        if c.kind != "fsl-msi" or c.span is None:
            continue
        for start, count in c.available:
            if start % 32 or count % 32:
                report(
                    C.AVAILABLE_RANGES,
                    c.span,
                    f"'{c.name}' makes hwirqs {start}..{start + count - 1} available; FSL MSI banks are "
                    "32 interrupts, so ranges start and end on multiples of 32",
                    hint=f"use {start // 32 * 32}..{(start + count + 31) // 32 * 32 - 1}",
                )
            elif start + count > 512:
                report(C.AVAILABLE_RANGES, c.span, f"'{c.name}' has at most 512 MSI interrupts (16 banks)")


def x86_apic_destinations(machine: Machine, report: Report) -> None:
    """An x86 MSI address names its destination APIC ID in bits 19:12
    (0xFEE00000 | ID << 12): eight bits, and ID 0xFF is the broadcast ID, so a
    CPU (CPU n is APIC ID n) above 254 cannot be the target of one message.

    Intel SDM vol. 3, 11.11.1 "Message Address Register Format"; Linux
    arch/x86/include/asm/msi.h (X86_MSI_BASE_ADDRESS_LOW, destination_id_low).
    """
    for c in machine.controllers:
        if c.kind != "x86-apic" or not c.cpus or c.cpus[-1] < 0xFF:
            continue
        high = [n for n in c.cpus if n >= 0xFF]
        report(
            C.APIC_ID_UNENCODABLE,
            c.cpus_span or c.span or BUILTIN,
            f"x86-apic '{c.name}' sends to CPU {high[0]}"
            + (f" (and {len(high) - 1} more above 254)" if len(high) > 1 else "")
            + ", but an MSI address holds an 8-bit APIC ID and 255 is broadcast",
            hint="list the CPUs it may target, e.g. 'cpus 0..254;' (extended destination IDs are not modelled)",
        )


def fsl_msi_cascade(machine: Machine, report: Report) -> None:
    """An FSL MSI block raises its 32-interrupt banks (MSIRn) as MPIC sources:
    its node needs 'interrupts' and 'interrupt-parent' naming the MPIC, one
    cascade per available bank, or Linux's fsl_msi probe fails ("no
    interrupts property found") and no MSI is delivered.

    Linux Documentation/devicetree/bindings/powerpc/fsl/msi-pic.txt;
    arch/powerpc/sysdev/fsl_msi.c (fsl_of_msi_probe); QEMU hw/ppc/e500.c.
    """
    for c in machine.controllers:
        if c.kind != "fsl-msi" or c.from_base is not None:
            continue
        if c.parent is None or c.parent.kind != "mpic":
            report(
                C.FSL_MSI_NO_MPIC,
                c.span or BUILTIN,
                f"fsl-msi '{c.name}' needs the MPIC its banks cascade to"
                + (f"; '{c.parent.name}' is a {c.parent.kind}" if c.parent is not None else ""),
                hint="add 'parent MPIC;' naming an 'interrupt-controller mpic' (it may be 'from base')",
            )


def policy_mechanism_counts(machine: Machine, report: Report) -> None:
    """A ``vectors msix ...;`` or ``vectors msi ...;`` line is the count a
    policy asks of that one mechanism; if the policy's ``prefer`` does not
    name the mechanism, no function ever asks it and the line is dead."""
    for p in machine.policies.values():
        for mech, count in p.per_mechanism:
            if mech not in p.prefer:
                report(
                    C.POLICY_COUNT_UNUSED,
                    count.span or p.span,
                    f"policy '{p.name}' gives a count for {mech}, which its 'prefer' ({', '.join(p.prefer)}) "
                    "does not name",
                    hint=f"add {mech} to 'prefer', or drop this line",
                )
