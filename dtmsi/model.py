"""The resolved machine: names bound, buses numbered, BARs placed, requester IDs known.

Plain typed dataclasses; every object keeps the span of the declaration it
came from. ``resolve.py`` builds it, checks read it, backends print it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from dtmsi.ast import RawNode, RawProperty
from dtmsi.source import Span

ResourceClass = Literal["io", "mem", "pref"]

# PCI class code -> device-tree node name (IEEE 1275 PCI binding names, as Linux
# and QEMU's spapr code use them, except that QEMU 7.2 names an NVMe controller
# "mass-storage"); longest matching prefix wins.
_NODE_NAMES: tuple[tuple[int, int, str], ...] = (
    (0x010802, 0xFFFFFF, "nvme"),
    (0x0C0330, 0xFFFFFF, "usb"),
    (0x010000, 0xFFFF00, "scsi"),
    (0x010100, 0xFFFF00, "ide"),
    (0x010600, 0xFFFF00, "sata"),
    (0x010000, 0xFF0000, "storage"),
    (0x020000, 0xFFFF00, "ethernet"),
    (0x020000, 0xFF0000, "network"),
    (0x030000, 0xFF0000, "display"),
    (0x040100, 0xFFFF00, "sound"),
    (0x070000, 0xFFFF00, "serial"),
    (0x040000, 0xFF0000, "multimedia"),
    (0x050000, 0xFF0000, "memory"),
    (0x060400, 0xFFFF00, "pci"),
    (0x060700, 0xFFFF00, "pci"),
    (0x060000, 0xFF0000, "bridge"),
    (0x070000, 0xFF0000, "communication"),
    (0x080000, 0xFF0000, "system-peripheral"),
    (0x0C0300, 0xFFFF00, "usb"),
    (0x0C0000, 0xFF0000, "serial-bus"),
    (0x0D0000, 0xFF0000, "wireless"),
    (0x120000, 0xFF0000, "accelerator"),
)


# The vectors an x86-apic controller hands out when its 'vectors' is not given:
# clear of Linux's ISA (0x30..0x3f) and system (0xec..0xff) vectors.
X86_DEFAULT_VECTORS = (0x40, 0xEB)


def node_name_for_class(class_code: int) -> str:
    for value, mask, name in _NODE_NAMES:
        if class_code & mask == value:
            return name
    return "pci-device"


def space_code(kind: str, prefetchable: bool) -> int:
    """IEEE 1275 PCI phys.hi bits 31:24: ss (01 I/O, 10 mem32, 11 mem64) plus p."""
    ss = {"io": 0x01, "mem32": 0x02, "mem64": 0x03}[kind]
    return ss | (0x40 if prefetchable else 0)


# ---------------------------------------------------------------- controllers


@dataclass(eq=False, slots=True)
class Controller:
    name: str
    role: Literal["interrupt", "msi"]
    kind: str
    address: int | None
    size: int | None
    parent: Controller | None
    from_base: str | None
    compatible: tuple[str, ...]
    interrupt_cells: int  # 0 for pure MSI controllers
    msi_cells: int | None  # None: not an MSI controller
    # kind-specific facts
    redistributor: tuple[int, int] | None = None
    device_id_bits: int = 16
    event_id_bits: int = 16
    available: tuple[tuple[int, int], ...] = ()  # FSL: (first hwirq, count)
    cascade: int = 0xE0  # FSL: the MPIC source MSIR 0 raises (MPC85xx: 0xe0..0xe7)
    msi_address: int | None = None  # FSL MSIIR / x86 base: the doorbell address
    vectors: tuple[int, int] | None = None  # x86: usable vector numbers
    cpus: tuple[int, ...] = ()  # x86: destination CPUs (CPU n is APIC ID n)
    cpus_span: Span | None = None  # x86: where the CPU list (or, by default, the controller) is
    servers: tuple[int, int] | None = None  # XICS interrupt server range
    properties: tuple[RawProperty, ...] = ()
    span: Span | None = None

    @property
    def label(self) -> str:
        return self.name

    @property
    def is_msi(self) -> bool:
        return self.msi_cells is not None


# ---------------------------------------------------------------- PCI


@dataclass(eq=False, slots=True)
class Window:
    kind: Literal["io", "mem32", "mem64"]
    prefetchable: bool
    cpu: int
    pci: int
    size: int
    span: Span

    @property
    def pci_end(self) -> int:
        return self.pci + self.size

    @property
    def space_code(self) -> int:
        """phys.hi bits 31:24 for ``ranges``: ss plus the prefetchable bit."""
        return space_code(self.kind, self.prefetchable)


@dataclass(eq=False, slots=True)
class Bar:
    index: int
    kind: Literal["io", "mem32", "mem64"]
    prefetchable: bool
    size: int
    fixed: bool
    span: Span
    resource: ResourceClass = "mem"
    address: int | None = None  # PCI bus address, None until placed

    @property
    def register(self) -> int:
        return 0x10 + 4 * self.index

    @property
    def space_code(self) -> int:
        """phys.hi bits 31:24 for ``reg``/``assigned-addresses`` entries."""
        return space_code(self.kind, self.prefetchable)


@dataclass(frozen=True, slots=True)
class MsiCap:
    vectors: int
    is64: bool
    maskable: bool
    span: Span
    offset: int | None = None  # config-space offset, if declared (the stubs check it)
    offset_span: Span | None = None

    @property
    def mmc(self) -> int:
        """Multiple Message Capable: log2 of the vector count."""
        return max(0, self.vectors - 1).bit_length()


@dataclass(frozen=True, slots=True)
class MsixCap:
    table_size: int
    table_bir: int
    table_offset: int
    pba_bir: int
    pba_offset: int
    span: Span
    offset: int | None = None  # config-space offset, if declared (the stubs check it)
    offset_span: Span | None = None

    @property
    def table_bytes(self) -> int:
        return 16 * self.table_size

    @property
    def pba_bytes(self) -> int:
        return 8 * ((self.table_size + 63) // 64)


@dataclass(eq=False, slots=True)
class BridgeWindow:
    """What a bridge forwards downstream for one resource class."""

    resource: ResourceClass
    base: int
    size: int


FunctionKindName = Literal["endpoint", "root-port", "switch", "downstream", "pci-bridge", "pcie-to-pci-bridge", "vf"]


@dataclass(eq=False, slots=True)
class Function:
    name: str
    kind: FunctionKindName
    host: HostBridge
    parent: Function | None  # the bridge above, None on the root bus
    device: int
    function: int
    ari: bool
    pcie: bool
    vendor: int
    device_id: int
    class_code: int
    revision: int
    subsystem: tuple[int, int] | None
    bars: list[Bar]
    msi: MsiCap | None
    msix: MsixCap | None
    intx_pin: int
    policy: str | None
    policy_span: Span | None
    node_name: str
    properties: tuple[RawProperty, ...]
    span: Span
    name_span: Span
    devfn_span: Span
    intx_span: Span | None = None
    bus: int = 0
    children: list[Function] = field(default_factory=list)
    # bridges
    secondary: int = 0
    subordinate: int = 0
    pinned_bus: tuple[int, Span] | None = None
    windows: list[BridgeWindow] = field(default_factory=list)
    # SR-IOV
    sriov: Sriov | None = None
    pf: Function | None = None
    vf_index: int | None = None
    quirks: tuple[str, ...] = ()  # lower.QUIRKS the stubs honour
    # computed by resolve
    dma_alias: int = 0  # requester ID the host bridge sees
    dma_alias_of: Function | None = None  # the bridge that takes ownership, if any

    @property
    def is_bridge(self) -> bool:
        return self.kind not in ("endpoint", "vf")

    @property
    def devfn(self) -> int:
        return self.function if self.ari else (self.device << 3) | self.function

    @property
    def rid(self) -> int:
        """Requester ID: bus[15:8] device[7:3] function[2:0]."""
        return (self.bus << 8) | self.devfn

    @property
    def bdf(self) -> str:
        """``01:00.0`` as lspci prints it (ARI functions as dd.f of the 8-bit devfn)."""
        return f"{self.bus:02x}:{self.devfn >> 3:02x}.{self.devfn & 7:x}"

    @property
    def full_bdf(self) -> str:
        return f"{self.host.domain_or_zero:04x}:{self.bdf}"

    @property
    def label(self) -> str:
        return self.name.replace("-", "_").replace(".", "_")

    @property
    def phys_hi_config(self) -> int:
        return (self.bus << 16) | (self.devfn << 8)

    def walk(self) -> list[Function]:
        out = [self]
        for c in self.children:
            out.extend(c.walk())
        return out


@dataclass(eq=False, slots=True)
class Sriov:
    total_vfs: int
    num_vfs: int
    first_vf_offset: int
    vf_stride: int
    vf_device: int
    vf_bars: list[Bar]
    vf_msi: MsiCap | None
    vf_msix: MsixCap | None
    vf_policy: str | None
    span: Span
    vfs: list[Function] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class MsiMapEntry:
    rid_base: int
    length: int
    controller: Controller
    msi_base: int
    span: Span

    def translate(self, rid: int) -> int | None:
        if self.rid_base <= rid < self.rid_base + self.length:
            return rid - self.rid_base + self.msi_base
        return None


@dataclass(frozen=True, slots=True)
class IntxRoute:
    controller: Controller
    kind: str
    first: int
    count: int  # 4 (one per pin, swizzled by slot) or 1 (shared)
    trigger: Literal["level", "edge"]
    swizzle: bool
    span: Span

    def interrupt_for(self, slot: int, pin: int) -> int:
        """Host-level (slot, pin) -> controller interrupt number.

        With ``swizzle`` the lines rotate by slot as QEMU's virt board wires
        them (line = first + (slot + pin - 1) % 4); without it, pin X of every
        slot goes to line X.
        """
        if self.count == 1:
            return self.first
        if not self.swizzle:
            return self.first + pin - 1
        return self.first + ((slot + pin - 1) % 4)


@dataclass(eq=False, slots=True)
class HostBridge:
    name: str
    kind: Literal["ecam", "papr", "opal"]
    config_base: int | None
    config_size: int | None
    buid: int | None
    compatible: tuple[str, ...]
    domain: int | None
    bus_first: int
    bus_last: int
    windows: list[Window]
    msi_maps: list[MsiMapEntry]
    msi_map_mask: int | None
    msi_parent: Controller | None
    intx: IntxRoute | None
    pe_total_msi: int | None
    properties: tuple[RawProperty, ...]
    span: Span
    name_span: Span
    children: list[Function] = field(default_factory=list)
    bus_used_last: int = 0  # highest bus number enumeration used
    msi_ranges: tuple[int, int] | None = None  # OPAL: (first hwirq, count) firmware composes messages for
    node_name: str | None = None  # the node's name with unit address, when a board's tree fixes it
    # Memo of functions(): set once the resolver has built the tree (see freeze()).
    frozen_functions: list[Function] | None = None

    def freeze(self) -> None:
        """The topology is final: later passes (checks, allocation, backends)
        walk it many times, so keep the pre-order list."""
        self.frozen_functions = None
        self.frozen_functions = self.functions()

    @property
    def label(self) -> str:
        return self.name.replace("-", "_")

    @property
    def domain_or_zero(self) -> int:
        return self.domain or 0

    def functions(self) -> list[Function]:
        if self.frozen_functions is not None:
            return list(self.frozen_functions)  # a copy: callers append VFs to it
        out: list[Function] = []
        for c in self.children:
            out.extend(c.walk())
        return out

    def window_for(self, resource: ResourceClass) -> Window | None:
        if resource == "io":
            return next((w for w in self.windows if w.kind == "io"), None)
        if resource == "mem":
            return next((w for w in self.windows if w.kind == "mem32" and not w.prefetchable), None)
        return self.pref_window()

    def pref_window(self) -> Window | None:
        return next((w for w in self.windows if w.kind == "mem64"), None) or next(
            (w for w in self.windows if w.kind == "mem32" and w.prefetchable), None
        )

    def msi_controller_for(self, rid: int) -> tuple[Controller, int | None] | None:
        """The controller and sideband ID Linux would use for a requester ID."""
        if self.msi_maps:
            masked = rid & (self.msi_map_mask if self.msi_map_mask is not None else 0xFFFF)
            for m in self.msi_maps:
                dev_id = m.translate(masked)
                if dev_id is not None:
                    return m.controller, dev_id
            return None
        if self.msi_parent is not None:
            return self.msi_parent, None
        return None


# ---------------------------------------------------------------- policies, PEs, partitions


@dataclass(frozen=True, slots=True)
class VectorCount:
    """What a policy's ``vectors`` says: how many to ask for, the least to take."""

    base: Literal["requested", "count", "cpus"]
    count: int
    maximum: int | None
    minimum: int | None
    scale: int = 1  # "cpus": scale * cpus + count
    span: Span | None = None  # its ``vectors`` statement


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    prefer: tuple[Literal["msix", "msi", "intx"], ...]
    vectors: VectorCount
    up_front: bool
    on_short: Literal["degrade", "fallback", "fail"]
    span: Span
    # ``vectors msix ...;`` / ``vectors msi ...;``: a count for one mechanism
    # (Linux's e1000e asks MSI-X for exactly 3, then plain MSI for 1).
    per_mechanism: tuple[tuple[Literal["msix", "msi"], VectorCount], ...] = ()

    def vectors_for(self, mechanism: str) -> VectorCount:
        """The count the policy asks of ``mechanism``: its own line, else the general one."""
        for mech, count in self.per_mechanism:
            if mech == mechanism:
                return count
        return self.vectors


@dataclass(frozen=True, slots=True)
class PolicyRule:
    policy: Policy
    class_code: int
    class_mask: int
    span: Span


@dataclass(eq=False, slots=True)
class Pe:
    name: str
    functions: list[Function]
    total_msi: int | None
    span: Span
    # The bridge whose subtree is exactly this PE: where ibm,pe-total-#msi goes.
    anchor: Function | None = None


@dataclass(eq=False, slots=True)
class Partition:
    name: str
    cpus: tuple[int, ...]
    functions: list[Function]
    pes: list[Pe]
    msi_budget: int | None
    span: Span
    stub_prefix: tuple[str, Span] | None = None


@dataclass(frozen=True, slots=True)
class MsiMode:
    kind: Literal["native", "firmware-composed", "hypervisor"]
    flavour: str | None
    tokens: dict[str, int]


@dataclass(eq=False, slots=True)
class Platform:
    compatible: tuple[str, ...]
    model: str | None
    msi_mode: MsiMode
    base: str | None  # path of the base tree, relative to the input's directory
    base_span: Span | None
    address_cells: int
    size_cells: int
    cpus: int
    span: Span | None
    stub_prefix: tuple[str, Span] | None = None


@dataclass(eq=False, slots=True)
class Machine:
    """The whole resolved description: what checks inspect and backends print."""

    source_name: str
    platform: Platform
    controllers: list[Controller]
    host_bridges: list[HostBridge]
    policies: dict[str, Policy]
    policy_rules: list[PolicyRule]
    pes: list[Pe]
    partitions: list[Partition]
    unassigned: list[Function]
    raw_nodes: list[RawNode]
    files: list[str]

    def functions(self) -> list[Function]:
        """Every function (VFs included) in BDF order: domain, bus, devfn."""
        out: list[Function] = []
        for hb in self.host_bridges:
            fns = hb.functions()
            vfs = [vf for f in fns if f.sriov for vf in f.sriov.vfs]
            out.extend(sorted(fns + vfs, key=lambda f: f.rid))
        return out

    def controller(self, name: str) -> Controller | None:
        return next((c for c in self.controllers if c.name == name), None)
