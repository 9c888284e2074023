"""Declarations: what the source says, typed, with constants, templates and
repetition already expanded, but no name resolved and nothing computed.

``lower.py`` builds these from the syntax tree; ``resolve.py`` turns them into
the model. Every declaration carries the span it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from dtmsi.source import Span

# ---------------------------------------------------------------- raw escape hatches


@dataclass(frozen=True, slots=True)
class RawCells:
    values: tuple[int | str, ...]  # str = a reference to a declared name (&label)
    bits: int = 32


@dataclass(frozen=True, slots=True)
class RawString:
    text: str


@dataclass(frozen=True, slots=True)
class RawBytes:
    data: bytes


RawChunk = RawCells | RawString | RawBytes


@dataclass(frozen=True, slots=True)
class RawProperty:
    name: str
    chunks: tuple[RawChunk, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class RawNode:
    """``node "/path/name@1" { property ...; node ... }`` - anything dtmsi has no word for."""

    path: str
    label: str | None
    properties: tuple[RawProperty, ...]
    children: tuple[RawNode, ...]
    span: Span


# ---------------------------------------------------------------- platform and controllers

MsiModeKind = Literal["native", "firmware-composed", "hypervisor"]


@dataclass(frozen=True, slots=True)
class MsiModeDecl:
    kind: MsiModeKind
    flavour: str | None  # "papr" for hypervisor, "opal" for firmware-composed
    tokens: tuple[tuple[str, int, Span], ...]  # RTAS / OPAL service tokens
    span: Span


@dataclass(frozen=True, slots=True)
class PlatformDecl:
    name: str | None
    model: str | None
    compatible: tuple[str, ...]
    msi_mode: MsiModeDecl | None
    base: tuple[str, Span] | None
    address_cells: int
    size_cells: int
    cpus: int | None
    raw_nodes: tuple[RawNode, ...]
    span: Span
    stub_prefix: tuple[str, Span] | None = None  # symbol prefix of the system stubs


ControllerRole = Literal["interrupt", "msi"]


@dataclass(frozen=True, slots=True)
class ControllerDecl:
    name: str
    role: ControllerRole
    kind: str
    address: int | None
    size: int | None
    parent: tuple[str, Span] | None  # another controller this one sits in (ITS in GIC)
    from_base: tuple[str, Span] | None  # the node is in the base tree (label or path)
    # Kind-specific settings, validated by resolve: name -> (values, span).
    settings: tuple[tuple[str, tuple[int, ...], Span], ...]
    compatible: tuple[str, ...]
    properties: tuple[RawProperty, ...]
    span: Span


# ---------------------------------------------------------------- PCI topology

WindowKind = Literal["io", "mem32", "mem64"]


@dataclass(frozen=True, slots=True)
class WindowDecl:
    kind: WindowKind
    prefetchable: bool
    cpu: int
    pci: int
    size: int
    span: Span


@dataclass(frozen=True, slots=True)
class MsiMapDecl:
    rid_base: int
    rid_last: int
    target: str
    target_span: Span
    msi_base: int  # DeviceID for rid_base
    span: Span


@dataclass(frozen=True, slots=True)
class IntxRouteDecl:
    controller: str
    controller_span: Span
    kind: str  # "spi" (GIC), "irq" (generic / xics source numbers)
    first: int
    last: int
    trigger: Literal["level", "edge"]
    swizzle: bool  # rotate pins by slot (QEMU virt, most ECAM boards) or wire pin X to line X
    span: Span


BarKind = Literal["io", "mem32", "mem64"]


@dataclass(frozen=True, slots=True)
class BarDecl:
    index: int
    kind: BarKind
    prefetchable: bool
    size: int
    fixed: int | None
    span: Span


@dataclass(frozen=True, slots=True)
class MsiCapDecl:
    vectors: int
    is64: bool
    maskable: bool
    span: Span
    offset: tuple[int, Span] | None = None  # where the capability sits in config space, if declared


@dataclass(frozen=True, slots=True)
class MsixCapDecl:
    table_size: int
    table_bir: int
    table_offset: int
    pba_bir: int
    pba_offset: int
    span: Span
    offset: tuple[int, Span] | None = None  # where the capability sits in config space, if declared


@dataclass(frozen=True, slots=True)
class SriovDecl:
    total_vfs: int
    num_vfs: int
    first_vf_offset: int
    vf_stride: int
    vf_device: int | None
    vf_bars: tuple[BarDecl, ...]
    vf_msi: MsiCapDecl | None
    vf_msix: MsixCapDecl | None
    vf_policy: tuple[str, Span] | None
    span: Span


FunctionKind = Literal[
    "endpoint",
    "root-port",
    "switch",  # upstream port of a switch; its children are downstream ports
    "downstream",
    "pci-bridge",  # conventional PCI-PCI bridge: DMA alias = the bridge's RID
    "pcie-to-pci-bridge",  # alias = (secondary bus, 00.0)
]

BRIDGE_KINDS: frozenset[str] = frozenset({"root-port", "switch", "downstream", "pci-bridge", "pcie-to-pci-bridge"})


@dataclass(frozen=True, slots=True)
class FunctionDecl:
    kind: FunctionKind
    name: str
    name_span: Span
    device: int
    function: int
    devfn_span: Span
    vendor: int | None
    device_id: int | None
    class_code: int | None
    revision: int
    subsystem: tuple[int, int] | None
    bars: tuple[BarDecl, ...]
    msi: MsiCapDecl | None
    msix: MsixCapDecl | None
    intx: int  # 0 none, 1..4 INTA..INTD
    intx_span: Span | None
    policy: tuple[str, Span] | None
    sriov: SriovDecl | None
    ari: bool
    pcie: bool
    bus: tuple[int, Span] | None  # pinned secondary bus (bridges)
    node_name: str | None
    properties: tuple[RawProperty, ...]
    children: tuple[FunctionDecl, ...]
    span: Span
    quirks: tuple[str, ...] = ()  # device quirks the stubs honour (no-intx-disable, no-64bit-msi)


@dataclass(frozen=True, slots=True)
class HostBridgeDecl:
    name: str
    name_span: Span
    kind: Literal["ecam", "papr", "opal"]
    config_base: int | None
    config_size: int | None
    buid: int | None
    compatible: tuple[str, ...]
    domain: tuple[int, Span] | None
    buses: tuple[int, int, Span] | None
    windows: tuple[WindowDecl, ...]
    msi_maps: tuple[MsiMapDecl, ...]
    msi_map_mask: tuple[int, Span] | None
    msi_parent: tuple[str, Span] | None
    intx: IntxRouteDecl | None
    pe_total_msi: tuple[int, Span] | None
    properties: tuple[RawProperty, ...]
    children: tuple[FunctionDecl, ...]
    span: Span
    msi_ranges: tuple[int, int, Span] | None = None  # OPAL: the PHB's MSI hwirq range
    node_name: str | None = None  # ``name "pcie@10000000";``: the node's full name, as a board has it


# ---------------------------------------------------------------- policies, PEs, partitions

Mechanism = Literal["msix", "msi", "intx"]


@dataclass(frozen=True, slots=True)
class VectorsDecl:
    """``vectors requested | N | cpus [+ N] | A..B [min M]``."""

    base: Literal["requested", "count", "cpus"]
    count: int  # the number for "count", the addend for "cpus"
    maximum: int | None  # for ranges A..B: B (count = A = minimum)
    minimum: int | None
    span: Span
    scale: int = 1  # "cpus": vectors = scale * cpus + count


@dataclass(frozen=True, slots=True)
class PolicyDecl:
    name: str
    prefer: tuple[tuple[Mechanism, Span], ...]
    vectors: VectorsDecl | None
    up_front: bool
    on_short: Literal["degrade", "fallback", "fail"]
    on_short_span: Span | None
    span: Span
    # ``vectors msix ...;`` / ``vectors msi ...;``
    vectors_for: tuple[tuple[Literal["msix", "msi"], VectorsDecl], ...] = ()


@dataclass(frozen=True, slots=True)
class ApplyDecl:
    policy: str
    policy_span: Span
    class_code: int
    class_mask: int
    span: Span


@dataclass(frozen=True, slots=True)
class Selector:
    """``name``, ``name.*`` (everything below), ``pf.vf[a..b]``, or ``pe NAME``."""

    path: tuple[str, ...]
    subtree: bool
    vfs: tuple[int, int] | None
    pe: bool
    span: Span


@dataclass(frozen=True, slots=True)
class PeDecl:
    name: str
    members: tuple[Selector, ...]
    total_msi: tuple[int, Span] | None
    span: Span


@dataclass(frozen=True, slots=True)
class PartitionDecl:
    name: str
    cpus: tuple[int, ...]
    owns: tuple[Selector, ...]
    msi_budget: tuple[int, Span] | None
    span: Span
    stub_prefix: tuple[str, Span] | None = None  # symbol prefix of this partition's stubs


@dataclass(frozen=True, slots=True)
class UnassignedDecl:
    members: tuple[Selector, ...]
    span: Span


@dataclass
class Program:
    """Everything the source files declare, in source order."""

    platform: PlatformDecl | None = None
    controllers: list[ControllerDecl] = field(default_factory=list)
    host_bridges: list[HostBridgeDecl] = field(default_factory=list)
    policies: list[PolicyDecl] = field(default_factory=list)
    applies: list[ApplyDecl] = field(default_factory=list)
    pes: list[PeDecl] = field(default_factory=list)
    partitions: list[PartitionDecl] = field(default_factory=list)
    unassigned: list[UnassignedDecl] = field(default_factory=list)
    raw_nodes: list[RawNode] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # every file read, for depfiles
