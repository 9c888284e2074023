"""The topology picture as plain data: what ``dtmsi graph`` draws.

Built once from the resolved model and the MSI allocation (never from the
syntax): host bridges, bridges and functions with their BDF and requester ID,
the partition that owns each function, the PEs as groups, and one route per
function that got interrupts, carrying what the allocation decided
(mechanism, vectors granted, DeviceID). ``dtmsi.graph`` only prints it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dtmsi.alloc import Allocation, AllocationResult
from dtmsi.model import Controller, Function, HostBridge, Machine

# Fill colours for partitions, in partition order; pale enough for black text.
PARTITION_COLOURS = (
    "#a6cee3",
    "#b2df8a",
    "#fdbf6f",
    "#cab2d6",
    "#fb9a99",
    "#ffff99",
    "#8dd3c7",
    "#bebada",
    "#fccde5",
    "#d9d9d9",
)


@dataclass(frozen=True, slots=True)
class HostBridgeBox:
    id: str
    name: str
    kind: str  # ecam | papr | opal
    domain: int
    buses: tuple[int, int]


@dataclass(frozen=True, slots=True)
class FunctionBox:
    id: str
    name: str
    kind: str  # endpoint, root-port, switch, downstream, pci-bridge, pcie-to-pci-bridge, vf
    bdf: str  # 0000:01:00.0
    requester_id: int
    dma_alias: int  # the requester ID the host bridge sees (differs behind a PCIe-to-PCI bridge)
    partition: str | None
    colour: str | None  # the partition's fill colour
    mechanism: str  # msix | msi | intx | none
    source: str  # file:line


@dataclass(frozen=True, slots=True)
class TargetBox:
    """Where messages go: an interrupt/MSI controller, or the firmware that
    composes them (PAPR's hypervisor, OPAL)."""

    id: str
    name: str
    detail: str  # kind and address, or how firmware takes part
    parent: str | None = None  # the interrupt controller an MSI controller feeds


@dataclass(frozen=True, slots=True)
class Link:
    """One PCI edge: a host bridge or bridge above a function, or a PF above its VF."""

    upper: str
    lower: str
    virtual: bool  # PF -> VF (SR-IOV), not a bus


@dataclass(frozen=True, slots=True)
class Route:
    """A function's interrupts as allocated: to ``target`` with ``vectors`` messages."""

    function: str
    target: str
    mechanism: str  # msix | msi | intx
    vectors: int  # vectors granted (INTx: 1)
    detail: str  # DeviceID / EventIDs / hwirqs / pin, from the allocation


@dataclass(frozen=True, slots=True)
class Group:
    """A PE: the functions that are isolated (and reset) together."""

    id: str
    name: str
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PartitionKey:
    name: str
    colour: str
    functions: int


@dataclass(frozen=True, slots=True)
class TopologyView:
    title: str
    msi_mode: Literal["native", "firmware-composed", "hypervisor"]
    host_bridges: tuple[HostBridgeBox, ...]
    functions: tuple[FunctionBox, ...]  # BDF order
    targets: tuple[TargetBox, ...]
    links: tuple[Link, ...]
    routes: tuple[Route, ...]
    pes: tuple[Group, ...]
    partitions: tuple[PartitionKey, ...]


def _hb_id(hb: HostBridge) -> str:
    return f"hb/{hb.name}"


def _fn_id(f: Function) -> str:
    return f"fn/{f.full_bdf}"


def _ctl_id(c: Controller) -> str:
    return f"ctl/{c.name}"


def _controller_detail(c: Controller) -> str:
    where = f" @ {c.address:#x}" if c.address is not None else ""
    base = f", from base '{c.from_base}'" if c.from_base else ""
    return f"{c.kind}{where}{base}"


def build_view(machine: Machine, allocation: AllocationResult) -> TopologyView:
    mode = machine.platform.msi_mode
    owner: dict[int, str] = {}
    for p in reversed(machine.partitions):  # the first partition wins, as in allocation.json
        for f in p.functions:
            owner[id(f)] = p.name
    colours = {p.name: PARTITION_COLOURS[i % len(PARTITION_COLOURS)] for i, p in enumerate(machine.partitions)}

    functions = machine.functions()
    boxes: list[FunctionBox] = []
    for f in functions:
        part = owner.get(id(f))
        boxes.append(
            FunctionBox(
                _fn_id(f),
                f.name,
                f.kind,
                f.full_bdf,
                f.rid,
                f.dma_alias,
                part,
                colours[part] if part is not None else None,
                a.mechanism if (a := allocation.by_function.get(id(f))) is not None else "none",
                f.span.short(),
            )
        )

    links: list[Link] = []
    for hb in machine.host_bridges:
        for f in hb.functions():
            upper = _fn_id(f.parent) if f.parent is not None else _hb_id(hb)
            links.append(Link(upper, _fn_id(f), False))
            if f.sriov is not None:
                links.extend(Link(_fn_id(f), _fn_id(vf), True) for vf in f.sriov.vfs)

    targets: dict[str, TargetBox] = {}
    for c in machine.controllers:
        parent = _ctl_id(c.parent) if c.parent is not None else None
        targets[_ctl_id(c)] = TargetBox(_ctl_id(c), c.name, _controller_detail(c), parent)
    routes: list[Route] = []
    for f in functions:
        a = allocation.by_function.get(id(f))  # bridges without interrupts have none
        if a is None:
            continue
        if a.mechanism in ("msi", "msix"):
            if a.controller is not None:
                target = _ctl_id(a.controller)
            else:  # firmware composes the messages: route to it, per mode
                flavour = mode.flavour or mode.kind
                target = f"fw/{flavour}"
                how = "RTAS ibm,change-msi" if mode.kind == "hypervisor" else "composes address/data"
                targets.setdefault(target, TargetBox(target, f"{flavour} firmware", how))
            routes.append(Route(_fn_id(f), target, a.mechanism, a.granted, _route_detail(a)))
        elif a.mechanism == "intx" and f.host.intx is not None:
            ctl = f.host.intx.controller
            pin = "ABCD"[f.intx_pin - 1] if 1 <= f.intx_pin <= 4 else "?"
            routes.append(Route(_fn_id(f), _ctl_id(ctl), "intx", 1, f"INT{pin}"))

    pes = tuple(Group(f"pe/{pe.name}", pe.name, tuple(_fn_id(f) for f in pe.functions)) for pe in machine.pes)
    counts = {p.name: sum(1 for f in functions if owner.get(id(f)) == p.name) for p in machine.partitions}
    return TopologyView(
        title=machine.source_name,
        msi_mode=mode.kind,
        host_bridges=tuple(
            HostBridgeBox(_hb_id(hb), hb.name, hb.kind, hb.domain_or_zero, (hb.bus_first, hb.bus_last))
            for hb in machine.host_bridges
        ),
        functions=tuple(boxes),
        targets=tuple(targets.values()),
        links=tuple(links),
        routes=tuple(routes),
        pes=pes,
        partitions=tuple(PartitionKey(p.name, colours[p.name], counts[p.name]) for p in machine.partitions),
    )


def _route_detail(a: Allocation) -> str:
    parts: list[str] = []
    if a.device_id is not None:
        parts.append(f"DeviceID {a.device_id:#x}")
    if a.messages:
        first, last = a.messages[0], a.messages[-1]
        last_one = last.expand()[-1]
        if first.event_id is not None and last_one.event_id is not None:
            parts.append(f"EventID {_span_text(first.event_id, last_one.event_id)}")
        elif first.hwirq is not None and last_one.hwirq is not None:
            parts.append(f"hwirq {_span_text(first.hwirq, last_one.hwirq)}")
        elif first.data is not None and last_one.data is not None:
            parts.append(f"data {_span_text(first.data, last_one.data, hexa=True)}")
    if a.quota is not None:
        parts.append(f"quota {a.quota}")
    return ", ".join(parts)


def _span_text(lo: int, hi: int, hexa: bool = False) -> str:
    fmt = (lambda v: f"{v:#x}") if hexa else str
    return fmt(lo) if lo == hi else f"{fmt(lo)}..{fmt(hi)}"
