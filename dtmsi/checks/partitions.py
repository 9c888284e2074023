"""Partitions, PEs and PAPR platform rules (domain.md 5.5, 5.6)."""

from __future__ import annotations

from dtmsi import codes as C
from dtmsi.checks.base import Report
from dtmsi.diagnostics import Note
from dtmsi.model import Function, Machine


def _endpoints(machine: Machine) -> list[Function]:
    """Every non-bridge function, VFs included, in BDF order."""
    return [f for f in machine.functions() if not f.is_bridge]


def function_ownership(machine: Machine, report: Report) -> None:
    """Each function belongs to exactly one partition: an OS must never touch the
    config space of a function outside its partition, so sharing is refused; a
    function owned by nobody is a warning unless declared 'unassigned'.

    PAPR / the 2007 linuxppc-dev discussion (shared/seed-msi-portability-2007.txt).
    """
    if not machine.partitions:
        return
    owner: dict[int, str] = {}
    for p in machine.partitions:
        for f in p.functions:
            if f.is_bridge:
                continue
            prev = owner.get(id(f))
            if prev is not None and prev != p.name:
                report(
                    C.FUNCTION_SHARED,
                    p.span,
                    f"'{f.name}' ({f.bdf}) is owned by partitions '{prev}' and '{p.name}'",
                    hint="a function (and its config space) belongs to one partition only",
                    notes=(Note(f"'{f.name}' is declared here", f.name_span),),
                )
            owner.setdefault(id(f), p.name)
    spare = {id(f) for f in machine.unassigned}
    for f in _endpoints(machine):
        if id(f) not in owner and id(f) not in spare:
            report(
                C.FUNCTION_UNOWNED,
                f.name_span if f.kind != "vf" else f.span,
                f"'{f.name}' ({f.bdf}) is owned by no partition, so it appears in no partition tree",
                hint="add it to a partition's 'owns', or list it in 'unassigned' to say so on purpose",
            )


def pe_membership(machine: Machine, report: Report) -> None:
    """A function is in at most one PE (the EEH isolation unit), and all
    functions of a PE go to the same partition.

    PAPR (EEH); Linux arch/powerpc/kernel/eeh_pe.c.
    """
    seen: dict[int, str] = {}
    for pe in machine.pes:
        for f in pe.functions:
            if f.is_bridge:
                continue
            prev = seen.get(id(f))
            if prev is not None and prev != pe.name:
                report(C.PE_IN_TWO, pe.span, f"'{f.name}' is in PE '{prev}' and in PE '{pe.name}'")
            seen.setdefault(id(f), pe.name)
    if not machine.partitions:
        return
    for pe in machine.pes:
        owners: dict[str, Function] = {}
        for f in pe.functions:
            if f.is_bridge:
                continue
            for p in machine.partitions:
                if any(x is f for x in p.functions):
                    owners.setdefault(p.name, f)
        if len(owners) > 1:
            (a, fa), (b, fb) = list(owners.items())[:2]
            report(
                C.PE_SPLIT,
                pe.span,
                f"PE '{pe.name}' is split: '{fa.name}' belongs to '{a}', '{fb.name}' to '{b}'",
                hint="a PE is isolated as a whole (EEH freezes all its functions): give it to one partition",
            )


def papr_platform(machine: Machine, report: Report) -> None:
    """PAPR: /rtas carries ibm,change-msi and ibm,query-interrupt-source-number;
    every PHB has ibm,pe-total-#msi; every bridge has a bridge class code
    (0x0604xx/0x0607xx) or the Linux quota walk cannot see behind it.

    Linux arch/powerpc/platforms/pseries/msi.c (rtas_msi_init, msi_quota_for_device),
    arch/powerpc/kernel/pci_dn.c (pci_traverse_device_nodes).
    """
    mode = machine.platform.msi_mode
    papr_hbs = [hb for hb in machine.host_bridges if hb.kind == "papr"]
    if mode.kind == "hypervisor":
        missing = [t for t in ("change-msi", "query-interrupt-source-number") if t not in mode.tokens]
        if missing and machine.platform.span is not None:
            report(
                C.RTAS_TOKENS,
                machine.platform.span,
                f"'msi hypervisor papr' lacks the RTAS token(s) {', '.join(missing)}",
                hint="Linux registers no RTAS MSI support unless /rtas has both; add "
                "'msi hypervisor papr { change-msi N; query-interrupt-source-number N; }'",
            )
        for hb in papr_hbs:
            if hb.pe_total_msi is None:
                report(
                    C.PE_TOTAL_MISSING,
                    hb.name_span,
                    f"PHB '{hb.name}' has no 'pe-total-msi': Linux creates no MSI domain for it",
                    hint="add 'pe-total-msi N;' (ibm,pe-total-#msi)",
                )
    for hb in papr_hbs:
        for f in hb.functions():
            if f.is_bridge and (f.class_code >> 8) not in (0x0604, 0x0607):
                report(
                    C.BRIDGE_CLASS,
                    f.name_span,
                    f"bridge '{f.name}' has class code {f.class_code:#08x}; the Linux quota walk only "
                    "descends into 0x0604xx/0x0607xx nodes, so the functions behind it are not counted",
                    hint="use 'class 0x060400'",
                )


def requested_msi_properties(machine: Machine, report: Report) -> None:
    """An explicit ibm,req#msi is a power of two in 1..32 and within the MSI
    capability; ibm,req#msi-x is within the MSI-X table.

    Linux pseries/msi.c check_req(); PCI Local Bus spec 3.0 sec. 6.8.1.3.
    """
    for f in _endpoints(machine):
        for p in f.properties:
            if p.name not in ("ibm,req#msi", "ibm,req#msi-x") or not p.chunks:
                continue
            values = getattr(p.chunks[0], "values", ())
            if not values or not isinstance(values[0], int):
                continue
            v = int(values[0])
            if p.name == "ibm,req#msi":
                cap = f.msi.vectors if f.msi else 0
                if v < 1 or v > 32 or v & (v - 1):
                    report(
                        C.REQ_MSI,
                        p.span,
                        f"ibm,req#msi = {v} is not a power of two in 1..32",
                        hint="MSI enables 2^MME vectors",
                    )
                elif v > cap:
                    report(
                        C.REQ_MSI, p.span, f"ibm,req#msi = {v} exceeds the MSI capability of '{f.name}' ({cap} vectors)"
                    )
            else:
                cap = f.msix.table_size if f.msix else 0
                if v > cap:
                    report(
                        C.REQ_MSI, p.span, f"ibm,req#msi-x = {v} exceeds the MSI-X table of '{f.name}' ({cap} entries)"
                    )


def sideband_ids(machine: Machine, report: Report) -> None:
    """Native partitioned machines: functions of different partitions never reach
    a shared MSI controller with the same DeviceID (the ITS separates tenants by it).

    domain.md 5.6 item 33.
    """
    if not machine.partitions or machine.platform.msi_mode.kind != "native":
        return
    owner: dict[int, str] = {}
    for p in machine.partitions:
        for f in p.functions:
            owner.setdefault(id(f), p.name)
    seen: dict[tuple[int, int], Function] = {}
    for f in _endpoints(machine):
        if not (f.msi or f.msix) or id(f) not in owner:
            continue
        got = f.host.msi_controller_for(f.dma_alias)
        if got is None or got[1] is None:
            continue
        key = (id(got[0]), got[1])
        prev = seen.setdefault(key, f)
        if prev is not f and owner.get(id(prev)) != owner[id(f)]:
            report(
                C.SIDEBAND_COLLISION,
                f.name_span,
                f"'{f.name}' (partition '{owner[id(f)]}') and '{prev.name}' (partition "
                f"'{owner.get(id(prev))}') reach '{got[0].name}' as DeviceID {got[1]:#x}",
                hint="functions behind one PCIe-to-PCI bridge share its requester ID: give them to one partition",
            )
