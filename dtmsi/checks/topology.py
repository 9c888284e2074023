"""PCI topology and numbering rules (domain.md 5.1)."""

from __future__ import annotations

from dtmsi import codes as C
from dtmsi.checks.base import Report
from dtmsi.diagnostics import Note
from dtmsi.model import Function, Machine
from dtmsi.source import BUILTIN, Span


def _non_vf(machine: Machine) -> list[Function]:
    return [f for hb in machine.host_bridges for f in hb.functions()]


def device_function_numbers(machine: Machine, report: Report) -> None:
    """Device 0..31 and function 0..7; with ARI, device 0 and function 0..255.

    PCI Local Bus spec 3.0 sec. 3.2.2.3.1; PCIe Base spec sec. 6.13 (ARI).
    """
    for f in _non_vf(machine):
        if f.ari:
            if f.device != 0:
                report(
                    C.ARI_DEVICE,
                    f.devfn_span,
                    f"'{f.name}' uses ARI, so its device number must be 0 (got {f.device:#x})",
                    hint="with ARI the 8 bits of devfn are all function number: write @ 00.N",
                )
            elif f.function > 0xFF:
                report(C.DEVFN_RANGE, f.devfn_span, f"ARI function {f.function:#x} is above 0xff")
            continue
        if f.device > 31:
            report(C.DEVFN_RANGE, f.devfn_span, f"device number {f.device:#x} is above 0x1f")
        if f.function > 7:
            report(
                C.DEVFN_RANGE,
                f.devfn_span,
                f"function number {f.function:#x} is above 7",
                hint="functions above 7 need ARI: add 'ari;' and use device 0",
            )


_PCIE_PORTS = ("root-port", "downstream")


def device_zero_below_pcie_ports(machine: Machine, report: Report) -> None:
    """Below a root port or switch downstream port only device 0 exists, unless
    the port forwards ARI (the device below has ARI, then all 8 bits are function).

    PCIe Base spec sec. 7.3.1 (a port's secondary bus has device 0 only) and
    6.13 (ARI Forwarding); Linux only_one_child() scans device 0 alone there,
    and a VF's routing ID at device != 0 is unreachable without ARI.
    """
    for hb in machine.host_bridges:
        for f in hb.functions():
            port = f.parent if f.parent is not None and f.parent.kind in _PCIE_PORTS else None
            if port is None or f.ari:
                continue
            if f.device != 0:
                report(
                    C.PORT_DEVICE_NONZERO,
                    f.devfn_span,
                    f"'{f.name}' is at device {f.device:#x} below the PCIe port '{port.name}': only device 0 "
                    "is reachable there, and Linux scans nothing else",
                    hint="put it at device 0 (a multi-function device uses 00.0-00.7)",
                )
            if f.sriov is None:
                continue
            far = [vf for vf in f.sriov.vfs if vf.bus == f.bus and (vf.devfn >> 3) != 0]
            if far:
                report(
                    C.PORT_DEVICE_NONZERO,
                    f.sriov.span,
                    f"{len(far)} VF(s) of '{f.name}' (from {far[0].bdf}) sit at device numbers other than 0 "
                    f"below the PCIe port '{port.name}': reachable only with ARI",
                    hint=f"declare '{f.name}' 'ari;', or lower the VF offset, stride or count",
                )


def unique_bdf(machine: Machine, report: Report) -> None:
    """No two functions (VFs included) share a bus/device/function in one domain.

    dtc: unique_unit_address; Linux would see only one of them.
    """
    for hb in machine.host_bridges:
        seen: dict[int, Function] = {}
        fns = hb.functions()
        fns += [vf for f in fns if f.sriov for vf in f.sriov.vfs]
        for f in fns:
            prev = seen.get(f.rid)
            if prev is not None:
                report(
                    C.DUPLICATE_BDF,
                    f.devfn_span if f.kind != "vf" else f.span,
                    f"'{f.name}' and '{prev.name}' are both at {f.bdf}",
                    notes=(Note(f"'{prev.name}' is declared here", prev.devfn_span),),
                )
            else:
                seen[f.rid] = f


def function_zero_present(machine: Machine, report: Report) -> None:
    """Functions 1..7 of a device need function 0: enumeration probes fn 0 first.

    PCI Local Bus spec 3.0 sec. 3.2.2.3.1 (multi-function devices implement fn 0).
    """
    for hb in machine.host_bridges:
        fns = hb.functions()
        present = {(f.bus, f.device) for f in fns if f.function == 0 and not f.ari}
        present |= {(f.bus, -1) for f in fns if f.ari and f.function == 0}
        for f in fns:
            key = (f.bus, -1) if f.ari else (f.bus, f.device)
            if f.function != 0 and key not in present:
                report(
                    C.MISSING_FUNCTION0,
                    f.devfn_span,
                    f"'{f.name}' is function {f.function} of a device without function 0",
                    hint="declare function 0 of this device too; firmware and Linux scan the others "
                    "only after finding it",
                )


def ecam_covers_buses(machine: Machine, report: Report) -> None:
    """An ECAM region holds 1 MiB of configuration space per bus.

    PCIe Base spec sec. 7.2.2; pci-host-ecam-generic binding.
    """
    for hb in machine.host_bridges:
        if hb.kind != "ecam" or hb.config_size is None:
            continue
        need = (hb.bus_last - hb.bus_first + 1) << 20
        if hb.config_size < need:
            report(
                C.ECAM_SIZE,
                hb.span,
                f"ECAM region of '{hb.name}' is {hb.config_size:#x} bytes; buses "
                f"{hb.bus_first:#x}..{hb.bus_last:#x} need {need:#x}",
                hint=f"use 'size {need >> 20}M' or narrow 'buses'",
            )


def windows_disjoint(machine: Machine, report: Report) -> None:
    """Windows of one host bridge must not overlap in PCI space, and no two
    regions (windows, ECAM, controllers) may overlap in CPU space.

    Devicetree spec 2.3.8 (ranges); domain.md 5.1 item 9.
    """
    regions: list[tuple[int, int, str, Span | None]] = []
    for hb in machine.host_bridges:
        if hb.kind == "ecam" and hb.config_base is not None and hb.config_size:
            regions.append((hb.config_base, hb.config_base + hb.config_size, f"ECAM of '{hb.name}'", hb.span))
        pci: list[tuple[int, int, bool, Span]] = []
        for w in hb.windows:
            regions.append((w.cpu, w.cpu + w.size, f"{w.kind} window of '{hb.name}'", w.span))
            io = w.kind == "io"
            for lo, hi, other_io, span in pci:
                if io == other_io and w.pci < hi and lo < w.pci + w.size:
                    report(
                        C.WINDOW_OVERLAP,
                        w.span,
                        f"this window overlaps another window of '{hb.name}' in PCI address space",
                        notes=(Note("the other window", span),),
                    )
            pci.append((w.pci, w.pci + w.size, io, w.span))
        kinds = [w.kind + ("p" if w.prefetchable and w.kind == "mem32" else "") for w in hb.windows]
        for k in set(kinds):
            if kinds.count(k) > 1:
                w = [x for x, kk in zip(hb.windows, kinds, strict=True) if kk == k][1]
                report(
                    C.REPEATED_SETTING,
                    w.span,
                    f"'{hb.name}' has more than one {w.kind} window of this kind",
                    hint="dtmsi places BARs in one window per kind; merge them",
                )
    for c in machine.controllers:
        if c.address is not None and c.size:
            regions.append((c.address, c.address + c.size, f"registers of '{c.name}'", c.span))
    regions.sort(key=lambda r: r[0])
    for i, (lo, hi, what, rspan) in enumerate(regions):
        for lo2, hi2, what2, span2 in regions[i + 1 :]:
            if lo2 >= hi:
                break
            if what.startswith("registers") and what2.startswith("registers") and hi2 <= hi:
                continue  # a controller block inside another's (FSL MSI banks inside the MPIC)
            report(
                C.WINDOW_OVERLAP,
                span2 or BUILTIN,
                f"{what2} [{lo2:#x}, {hi2:#x}) overlaps {what} [{lo:#x}, {hi:#x}) in CPU address space",
                notes=(Note(what, rspan),),
            )


def mem32_below_4g(machine: Machine, report: Report) -> None:
    """A 32-bit memory window must lie below 4 GiB on the PCI side.

    IEEE 1275 PCI binding: ss = 10 is 32-bit memory space.
    """
    for hb in machine.host_bridges:
        for w in hb.windows:
            if w.kind == "mem32" and w.pci + w.size > 1 << 32:
                report(
                    C.MEM32_ABOVE_4G,
                    w.span,
                    f"mem32 window ends at PCI address {w.pci + w.size:#x}, above 4 GiB",
                    hint="give a 'pci' address below 4 GiB, or make it a mem64 window",
                )
