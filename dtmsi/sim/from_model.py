"""Build a ``Simulator`` from the compiler's resolved model.

The only module of dtmsi.sim that imports the compiler: every function of the
machine (bridges as type-1 headers, endpoints, SR-IOV VFs) with its BARs at
their resolved PCI addresses, its capabilities at their declared offsets (the
default layout otherwise) and its quirks; host bridges with their memory
windows, BUID (PAPR) or OPAL PHB id, and MSI range; a partition's functions
as the set the stub may touch; the platform's RTAS tokens.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection

from dtmsi.model import Function, HostBridge, Machine
from dtmsi.sim.device import SimBar, SimFunction, SimMsi, SimMsix
from dtmsi.sim.invariants import Mode
from dtmsi.sim.machine import SimHostBridge, SimOptions, Simulator, SimWindow

# PCI Express Capabilities register, Device/Port Type (PCIe Base 7.5.3.2)
_PORT_TYPES = {
    "endpoint": 0x0,
    "vf": 0x0,
    "root-port": 0x4,
    "switch": 0x5,
    "downstream": 0x6,
    "pcie-to-pci-bridge": 0x7,
}


def sim_host_bridge(hb: HostBridge) -> SimHostBridge:
    kind: Mode = "papr" if hb.kind == "papr" else "opal" if hb.kind == "opal" else "native"
    base, count = hb.msi_ranges or (0, 0)
    return SimHostBridge(
        hb.name,
        hb.domain_or_zero,
        kind,
        buid=(hb.buid or 0) if kind == "papr" else 0,
        opal_phb_id=(hb.buid or 0) if kind == "opal" else 0,
        windows=tuple(SimWindow(w.pci, w.cpu, w.size) for w in hb.windows if w.kind != "io"),
        msi_base=base,
        msi_count=count,
        bus_first=hb.bus_first,
        bus_last=hb.bus_last,
    )


def sim_function(f: Function) -> SimFunction:
    msi = f.msi
    msix = f.msix
    return SimFunction(
        seg=f.host.domain_or_zero,
        bus=f.bus,
        devfn=f.devfn,
        vendor=f.vendor,
        device=f.device_id,
        class_code=f.class_code,
        revision=f.revision,
        header_type=1 if f.is_bridge else 0,
        is_vf=f.kind == "vf",
        pcie=f.pcie,
        pcie_port_type=_PORT_TYPES.get(f.kind, 0),
        bars=tuple(SimBar(b.index, b.kind, b.size, b.address, b.prefetchable) for b in f.bars),
        msi=SimMsi(msi.vectors, msi.is64, msi.maskable, msi.offset) if msi is not None else None,
        msix=(
            SimMsix(msix.table_size, msix.table_bir, msix.table_offset, msix.pba_bir, msix.pba_offset, msix.offset)
            if msix is not None
            else None
        ),
        intx_pin=f.intx_pin,
        name=f.name,
        quirks=tuple(f.quirks),
        secondary=f.secondary,
        subordinate=f.subordinate,
    )


def simulator_from_model(
    machine: Machine,
    partition: str | None = None,
    *,
    options: SimOptions | None = None,
    missing_hooks: Collection[str] = (),
) -> Simulator:
    """Every function of ``machine``; with ``partition``, only that
    partition's functions may be touched (the others stay in the machine, and
    an access to one is a violation)."""
    allowed = None
    if partition is not None:
        part = next((p for p in machine.partitions if p.name == partition), None)
        if part is None:
            raise ValueError(f"no partition named {partition!r} (have {[p.name for p in machine.partitions]})")
        allowed = {(f.host.domain_or_zero, f.bus, f.devfn) for f in part.functions}
    opts = options or SimOptions()
    tokens = machine.platform.msi_mode.tokens
    opts = dataclasses.replace(
        opts,
        rtas_change_msi=tokens.get("change-msi", opts.rtas_change_msi),
        rtas_query_irq=tokens.get("query-interrupt-source-number", opts.rtas_query_irq),
    )
    return Simulator(
        [sim_host_bridge(hb) for hb in machine.host_bridges],
        [sim_function(f) for f in machine.functions()],
        partition=allowed,
        options=opts,
        missing_hooks=missing_hooks,
    )
