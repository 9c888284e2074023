"""A board's device tree -> what dtmsi can say about its PCI side (:class:`Board`).

Reads the tree dtmsi already reads as a ``base`` (``devicetree.basetree``: a
DTB, with labels from ``__symbols__``, or DTS source) and finds, per the
IEEE 1275 PCI binding and the Linux MSI/INTx bindings:

* host bridges: ``device_type = "pci"`` nodes whose parent is not a PCI bus;
  ECAM (``pci-host-ecam-generic``: ``reg`` is the config window), PAPR
  (``IBM,Logical_PHB``: ``reg`` holds the BUID) and PowerNV/OPAL
  (``ibm,opal-phbid``); their ``bus-range``, ``linux,pci-domain``, ``ranges``
  windows, ``msi-map``/``msi-map-mask``/``msi-parent``, ``ibm,pe-total-#msi``
  and an ``interrupt-map`` that swizzles by slot as dtmsi's ``intx ->`` does;
* functions: child nodes whose first ``reg`` entry is a config-space address
  (bus, device, function), with their IDs, BARs (``reg`` sizes, fixed
  addresses from ``assigned-addresses``), INTx pin, and on PAPR the MSI/MSI-X
  counts ``ibm,req#msi``/``ibm,req#msi-x`` (a tree carries no capability
  otherwise); bridges with their secondary bus;
* the interrupt and MSI controllers these name (GICv3 and its ITS, XICS,
  others as generic ones), kept as nodes of the base tree (``from base``).

What a tree cannot tell (MSI/MSI-X capabilities on native platforms, PCIe
port types, SR-IOV, policies) or dtmsi cannot say (expansion ROM BARs, an
interrupt-map that is not a swizzle) is listed in ``notes``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dtmsi.devicetree.tree import Cells, Node, Ref, Str, Tree, find_node_by_label, find_node_by_path, iter_nodes
from dtmsi.model import node_name_for_class


class ImportProblem(Exception):
    """The tree cannot be imported at all."""


@dataclass
class Bar:
    index: int
    kind: str  # io | mem32 | mem64
    prefetchable: bool
    size: int
    address: int | None


@dataclass
class Function:
    name: str
    path: str
    word: str  # endpoint, root-port, switch, downstream, pci-bridge
    node_name: str
    bus: int
    dev: int
    fn: int
    vendor: int
    device: int
    class_code: int
    revision: int
    subsystem: tuple[int, int] | None
    bars: list[Bar]
    intx_pin: int
    req_msi: int | None
    req_msix: int | None
    secondary: int | None  # bridges: first bus below
    children: list[Function] = field(default_factory=list)


@dataclass
class Controller:
    name: str
    role: str  # interrupt-controller | msi-controller
    kind: str
    address: int | None
    size: int | None
    redistributor: tuple[int, int] | None
    parent: str | None
    from_base: str
    servers: tuple[int, int] | None = None


@dataclass
class IntxRoute:
    controller: str
    word: str  # spi | irq
    first: int
    count: int
    trigger: str
    swizzle: bool


@dataclass
class HostBridge:
    name: str
    path: str
    kind: str  # ecam | papr | opal
    address: int  # ECAM / register base; PAPR: BUID; OPAL: register base
    size: int
    phbid: int | None
    domain: int | None
    buses: tuple[int, int]
    windows: list[tuple[str, bool, int, int, int]]  # kind, prefetchable, cpu, pci, size
    msi_maps: list[tuple[int, int, str, int]]  # rid first, rid last, controller, first DeviceID
    msi_map_mask: int | None
    msi_parent: str | None
    intx: IntxRoute | None
    pe_total_msi: int | None
    msi_ranges: tuple[int, int] | None
    node_name: str | None = None  # when dtmsi would name the node otherwise
    children: list[Function] = field(default_factory=list)


@dataclass
class Board:
    compatible: tuple[str, ...]
    model: str | None
    papr_tokens: dict[str, int] | None  # None: native
    controllers: list[Controller]
    host_bridges: list[HostBridge]
    notes: list[str]


def _cells(node: Node, name: str) -> list[int | Ref] | None:
    p = node.prop(name)
    if p is None:
        return None
    out: list[int | Ref] = []
    for c in p.chunks:
        if not isinstance(c, Cells) or c.bits != 32:
            return None
        out.extend(c.values)
    return out


def _ints(node: Node, name: str) -> list[int] | None:
    got = _cells(node, name)
    if got is None or any(not isinstance(v, int) for v in got):
        return None
    return [v for v in got if isinstance(v, int)]


def _u32(node: Node, name: str) -> int | None:
    got = _ints(node, name)
    return got[0] if got and len(got) == 1 else None


def _strings(node: Node, name: str) -> tuple[str, ...]:
    p = node.prop(name)
    if p is None:
        return ()
    return tuple(c.text for c in p.chunks if isinstance(c, Str))


def _join(cells: list[int]) -> int:
    v = 0
    for c in cells:
        v = (v << 32) | c
    return v


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _ident(text: str) -> str:
    out = re.sub(r"[^A-Za-z0-9_]", "_", text)
    return out if _IDENT.match(out) else "n_" + out


class _Scanner:
    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.notes: list[str] = []
        self.paths = {id(n): p for p, n in iter_nodes(tree)}
        self.parents: dict[int, Node] = {}
        for _, n in iter_nodes(tree):
            for c in n.children:
                self.parents[id(c)] = n
        self.by_phandle: dict[int, Node] = {}
        for _, n in iter_nodes(tree):
            for name in ("phandle", "linux,phandle"):
                v = _u32(n, name)
                if v is not None:
                    self.by_phandle[v] = n
        self.controllers: dict[int, Controller] = {}  # id(node) -> controller
        self.names: set[str] = set()
        root = tree.root
        self.acells = _u32(root, "#address-cells") or 2
        self.scells = _u32(root, "#size-cells") or 1

    def unique(self, wanted: str) -> str:
        name, i = _ident(wanted), 1
        base = name
        while name in self.names:
            i += 1
            name = f"{base}_{i}"
        self.names.add(name)
        return name

    def path(self, node: Node) -> str:
        return self.paths[id(node)]

    def target(self, cell: int | Ref) -> Node | None:
        if isinstance(cell, Ref):
            if cell.is_path:
                return find_node_by_path(self.tree, cell.target)
            return find_node_by_label(self.tree, cell.target)
        return self.by_phandle.get(cell)

    def is_pci(self, node: Node) -> bool:
        return _strings(node, "device_type") == ("pci",)

    # ------------------------------------------------------------ controllers

    def controller(self, node: Node) -> Controller:
        got = self.controllers.get(id(node))
        if got is not None:
            return got
        compat = _strings(node, "compatible")
        parent_node = self.parents.get(id(node))
        parent: Controller | None = None
        is_msi = node.prop("msi-controller") is not None
        if "arm,gic-v3-its" in compat:
            kind = "gicv3-its"
            if parent_node is not None and parent_node is not self.tree.root:
                parent = self.controller(parent_node)
        elif "arm,gic-v3" in compat:
            kind = "gicv3"
        elif "IBM,ppc-xicp" in compat or _strings(node, "device_type") == (
            "PowerPC-External-Interrupt-Presentation",
        ):
            kind = "xics"
        else:
            kind = "generic-msi" if is_msi else "generic"
        label = node.labels[0] if node.labels else None
        name = self.unique(label or node.name.split("@")[0])
        reg = _ints(node, "reg")
        acells, scells = self.reg_cells(node)
        regs: list[tuple[int, int]] = []
        if reg and acells and len(reg) % (acells + scells) == 0:
            step = acells + scells
            regs = [(_join(reg[i : i + acells]), _join(reg[i + acells : i + step])) for i in range(0, len(reg), step)]
        servers = None
        ranges = _ints(node, "ibm,interrupt-server-ranges")
        if kind == "xics" and ranges and len(ranges) == 2:
            servers = (ranges[0], ranges[0] + ranges[1] - 1)
        c = Controller(
            name,
            "msi-controller" if kind in ("gicv3-its", "generic-msi") else "interrupt-controller",
            kind,
            regs[0][0] if regs else None,
            regs[0][1] if regs else None,
            regs[1] if kind == "gicv3" and len(regs) > 1 else None,
            parent.name if parent else None,
            label or self.path(node),
            servers,
        )
        self.controllers[id(node)] = c
        return c

    def reg_cells(self, node: Node) -> tuple[int, int]:
        parent = self.parents.get(id(node))
        if parent is None:
            return self.acells, self.scells
        return _u32(parent, "#address-cells") or 2, _u32(parent, "#size-cells") or 1

    # ------------------------------------------------------------ host bridges

    def board(self) -> Board:
        root = self.tree.root
        tokens: dict[str, int] | None = None
        rtas = root.child("rtas")
        if rtas is not None and rtas.prop("ibm,change-msi") is not None:
            tokens = {}
            for key in ("change-msi", "query-interrupt-source-number"):
                v = _u32(rtas, "ibm," + key)
                if v is not None:
                    tokens[key] = v
        bridges: list[HostBridge] = []
        stack = [root]
        while stack:
            n = stack.pop()
            for c in n.children:
                if self.is_pci(c):
                    hb = self.host_bridge(c)
                    if hb is not None:
                        bridges.append(hb)
                else:
                    stack.append(c)
        bridges.sort(key=lambda h: h.path)
        model = _strings(root, "model")
        return Board(
            _strings(root, "compatible"),
            model[0] if model else None,
            tokens,
            sorted(self.controllers.values(), key=lambda c: (c.parent is not None, c.from_base)),
            bridges,
            self.notes,
        )

    def host_bridge(self, node: Node) -> HostBridge | None:
        path = self.path(node)
        compat = _strings(node, "compatible")
        reg = _ints(node, "reg") or []
        acells, scells = self.reg_cells(node)
        phbid: int | None = None
        if _ints(node, "ibm,opal-phbid") is not None:
            kind = "opal"
            phbid = _join(_ints(node, "ibm,opal-phbid") or [0])
        elif "IBM,Logical_PHB" in compat:
            kind = "papr"
        elif "pci-host-ecam-generic" in compat:
            kind = "ecam"
        else:
            self.notes.append(f"{path}: host bridge {compat} not imported (only ECAM, PAPR and OPAL ones are)")
            return None
        if len(reg) < acells + scells:
            self.notes.append(f"{path}: no usable 'reg'; not imported")
            return None
        address, size = _join(reg[:acells]), _join(reg[acells : acells + scells])
        label = node.labels[0] if node.labels else None
        br = _ints(node, "bus-range") or [0, 255]
        hb = HostBridge(
            self.unique(label or f"{node.name.split('@')[0]}{len(self.names)}"),
            path,
            kind,
            address,
            size,
            phbid,
            _u32(node, "linux,pci-domain"),
            (br[0], br[1]),
            self.windows(node),
            [],
            _u32(node, "msi-map-mask"),
            None,
            None,
            _u32(node, "ibm,pe-total-#msi"),
            None,
        )
        dtmsi_name = f"pci@{address:x}" if kind == "papr" else f"pcie@{address:x}"
        if node.name != dtmsi_name:
            hb.node_name = node.name
        ranges = _ints(node, "ibm,opal-msi-ranges")
        if ranges and len(ranges) == 2:
            hb.msi_ranges = (ranges[0], ranges[0] + ranges[1] - 1)
        msi_map = _cells(node, "msi-map")
        if msi_map:
            for i in range(0, len(msi_map) - 3, 4):
                rid, ph, base, length = msi_map[i : i + 4]
                ctrl = self.target(ph)
                if not isinstance(rid, int) or not isinstance(base, int) or not isinstance(length, int) or not ctrl:
                    self.notes.append(f"{path}: msi-map row {i // 4} not understood; not imported")
                    continue
                hb.msi_maps.append((rid, rid + length - 1, self.controller(ctrl).name, base))
        parent = _cells(node, "msi-parent")
        if parent:
            ctrl = self.target(parent[0])
            if ctrl is not None:
                hb.msi_parent = self.controller(ctrl).name
        hb.intx = self.intx(node)
        hb.children = self.functions(node, hb, None)
        return hb

    def windows(self, node: Node) -> list[tuple[str, bool, int, int, int]]:
        ranges = _ints(node, "ranges") or []
        pac = _u32(self.parents.get(id(node)) or node, "#address-cells") or self.acells
        step = 3 + pac + 2
        out: list[tuple[str, bool, int, int, int]] = []
        for i in range(0, len(ranges) - step + 1, step):
            hi = ranges[i]
            kind = {1: "io", 2: "mem32", 3: "mem64"}.get((hi >> 24) & 3)
            if kind is None:
                continue
            pci = _join(ranges[i + 1 : i + 3])
            cpu = _join(ranges[i + 3 : i + 3 + pac])
            size = _join(ranges[i + 3 + pac : i + step])
            out.append((kind, bool(hi & 0x40000000), cpu, pci, size))
        return out

    def intx(self, node: Node) -> IntxRoute | None:
        imap = _cells(node, "interrupt-map")
        if not imap:
            return None
        path = self.path(node)
        rows: list[tuple[int, int, Controller, int, str]] = []
        i = 0
        while i + 5 <= len(imap):
            hi, pin, ph = imap[i], imap[i + 3], imap[i + 4]
            ctrl_node = self.target(ph)
            if not isinstance(hi, int) or not isinstance(pin, int) or ctrl_node is None:
                self.notes.append(f"{path}: interrupt-map not understood; INTx routes not imported")
                return None
            pac = _u32(ctrl_node, "#address-cells") or 0
            pic = _u32(ctrl_node, "#interrupt-cells") or 1
            spec = imap[i + 5 + pac : i + 5 + pac + pic]
            i += 5 + pac + pic
            ctrl = self.controller(ctrl_node)
            if any(not isinstance(v, int) for v in spec) or not spec:
                return None
            ints = [v for v in spec if isinstance(v, int)]
            if ctrl.kind == "gicv3" and len(ints) == 3:
                irq, trig = ints[1], "level" if ints[2] & 0xC else "edge"
            elif len(ints) == 2:
                irq, trig = ints[0], "level" if ctrl.kind in ("xics", "mpic") and ints[1] == 1 else "edge"
                if ctrl.kind not in ("xics", "mpic"):
                    trig = "level" if ints[1] & 0xC else "edge"
            else:
                irq, trig = ints[0], "level"
            rows.append(((hi >> 11) & 0x1F, pin, ctrl, irq, trig))
        if not rows or len({(r[2].name, r[4]) for r in rows}) != 1:
            self.notes.append(f"{path}: interrupt-map names several controllers or triggers; not imported")
            return None
        ctrl, trig = rows[0][2], rows[0][4]
        word = "spi" if ctrl.kind == "gicv3" else "irq"
        irqs = {r[3] for r in rows}
        if len(irqs) == 1:
            return IntxRoute(ctrl.name, word, rows[0][3], 1, trig, True)
        for swizzle in (True, False):
            firsts = {r[3] - (((r[0] + r[1] - 1) % 4) if swizzle else r[1] - 1) for r in rows}
            if len(firsts) == 1:
                return IntxRoute(ctrl.name, word, firsts.pop(), 4, trig, swizzle)
        self.notes.append(f"{path}: interrupt-map is neither a swizzle nor one line per pin; not imported")
        return None

    # ------------------------------------------------------------ functions

    def functions(self, bus: Node, hb: HostBridge, parent: Function | None) -> list[Function]:
        out: list[Function] = []
        for c in bus.children:
            f = self.function(c, hb, parent)
            if f is not None:
                out.append(f)
        return out

    def function(self, node: Node, hb: HostBridge, parent: Function | None) -> Function | None:
        path = self.path(node)
        reg = _ints(node, "reg")
        if not reg or len(reg) % 5 or reg[0] & 0xFF0000FF or any(reg[1:5]):
            return None  # not a PCI function node
        hi = reg[0]
        bus, dev, fn = (hi >> 16) & 0xFF, (hi >> 11) & 0x1F, (hi >> 8) & 7
        vendor, device = _u32(node, "vendor-id"), _u32(node, "device-id")
        class_code = _u32(node, "class-code")
        if vendor is None or device is None or class_code is None:
            self.notes.append(f"{path}: no vendor-id/device-id/class-code; not imported")
            return None
        assigned: dict[int, int] = {}
        aa = _ints(node, "assigned-addresses") or []
        for i in range(0, len(aa) - 4, 5):
            assigned[aa[i] & 0xFF] = _join(aa[i + 1 : i + 3])
        bars: list[Bar] = []
        for i in range(5, len(reg), 5):
            bhi = reg[i]
            register = bhi & 0xFF
            kind = {1: "io", 2: "mem32", 3: "mem64"}.get((bhi >> 24) & 3)
            if register == 0x30:
                self.notes.append(f"{path}: expansion ROM BAR not imported (dtmsi does not model ROMs)")
                continue
            if kind is None or not 0x10 <= register <= 0x24 or register % 4:
                self.notes.append(f"{path}: reg entry {bhi:#x} not imported")
                continue
            size = _join(reg[i + 3 : i + 5])
            bars.append(Bar((register - 0x10) // 4, kind, bool(bhi & 0x40000000), size, assigned.get(register)))
        sub_vendor = _u32(node, "subsystem-vendor-id")
        sub_id = _u32(node, "subsystem-id")
        is_bridge = class_code >> 8 == 0x0604 or self.is_pci(node)
        label = node.labels[0] if node.labels else None
        base_name = node.name.split("@")[0]
        name = self.unique(label or f"{base_name}_{bus:x}_{dev:x}_{fn:x}")
        word = self.bridge_word(node, hb, parent) if is_bridge else "endpoint"
        br = _ints(node, "bus-range")
        f = Function(
            name,
            path,
            word,
            base_name,
            bus,
            dev,
            fn,
            vendor,
            device,
            class_code,
            _u32(node, "revision-id") or 0,
            (sub_vendor, sub_id or 0) if sub_vendor is not None else None,
            bars,
            _u32(node, "interrupts") or 0,
            _u32(node, "ibm,req#msi"),
            _u32(node, "ibm,req#msi-x"),
            br[0] if br else None,
        )
        if node_name_for_class(class_code) == base_name:
            f.node_name = ""
        if is_bridge:
            f.children = self.functions(node, hb, f)
        return f


    def bridge_word(self, node: Node, hb: HostBridge, parent: Function | None) -> str:
        """The PCIe role a bridge most likely has: a tree does not say (it has no
        capability list), but PCIe ports reach device 0 only, and a switch's
        upstream port has downstream ports (bridges) and nothing else below it."""
        if parent is not None and parent.word == "switch":
            return "downstream"
        kids = [c for c in node.children if (_ints(c, "reg") or [0])[0] & 0xFF0000FF == 0 and c.prop("reg")]
        below_port = parent is not None and parent.word in ("root-port", "downstream")
        if below_port and kids and all(self.is_pci(c) or (_u32(c, "class-code") or 0) >> 8 == 0x0604 for c in kids):
            return "switch"
        if any(((_ints(c, "reg") or [0])[0] >> 11) & 0x1F for c in kids):
            return "pci-bridge"
        return "root-port" if parent is None and hb.kind == "ecam" else "pci-bridge"


def scan(tree: Tree) -> Board:
    return _Scanner(tree).board()
