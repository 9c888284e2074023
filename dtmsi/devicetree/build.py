"""The resolved model -> a device tree (``tree.Tree``), following the IEEE 1275
PCI binding and the Linux MSI bindings.

Pure: reads the model, returns a tree. Which functions appear is decided by a
``keep`` predicate so that partition trees hold only their own functions and
the bridges above them.
"""

from __future__ import annotations

from collections.abc import Callable

from dtmsi import model as m
from dtmsi.alloc import AllocationResult
from dtmsi.ast import RawCells, RawNode, RawProperty, RawString
from dtmsi.devicetree.place import BasePlace
from dtmsi.devicetree.tree import Bytes, Cells, Chunk, Node, Property, Ref, Str, Tree

Keep = Callable[[m.Function], bool]

_GIC_SPI = 0
_IRQ_LEVEL_HIGH = 4
_IRQ_EDGE_RISING = 1
# open-pic / fsl,mpic sense cell: 0 = rising edge, 1 = active-low level
# (Linux bindings powerpc/fsl/mpic.txt, open-pic.txt).
_MPIC_EDGE_RISING = 0
_MPIC_LEVEL_LOW = 1


def _split64(v: int) -> tuple[int, int]:
    return (v >> 32) & 0xFFFFFFFF, v & 0xFFFFFFFF


def _addr_cells(value: int, n: int) -> tuple[int, ...]:
    if n == 1:
        return (value & 0xFFFFFFFF,)
    return _split64(value)


def _hex(v: int) -> str:
    return f"{v:x}"


def _add(node: Node, name: str, *chunks: Chunk) -> None:
    """Append a property to a node being built (no search for an old one: the
    builder sets each name once; raw properties, which may override, use set)."""
    node.properties.append(Property(name, chunks))


def unit_address(f: m.Function) -> str:
    dev, fn = f.devfn >> 3, f.devfn & 7
    return _hex(dev) if fn == 0 else f"{_hex(dev)},{_hex(fn)}"


def raw_chunks(prop: RawProperty, labels: Callable[[str], str]) -> tuple[Chunk, ...]:
    out: list[Chunk] = []
    for ch in prop.chunks:
        if isinstance(ch, RawCells):
            out.append(Cells(tuple(Ref(labels(v)) if isinstance(v, str) else v for v in ch.values), ch.bits))
        elif isinstance(ch, RawString):
            out.append(Str(ch.text))
        else:
            out.append(Bytes(ch.data))
    return tuple(out)


class TreeBuilder:
    def __init__(
        self,
        machine: m.Machine,
        keep: Keep | None = None,
        base_refs: dict[str, str] | None = None,
        allocation: AllocationResult | None = None,
        places: dict[str, BasePlace] | None = None,
    ) -> None:
        self.m = machine
        self.allocation = allocation
        self.partitioned = keep is not None
        self.keep: Keep = keep or (lambda f: True)
        # controller name -> label or path of its node in the base tree
        self.base_refs = base_refs or {}
        # controller name -> the place beside its base-tree node
        self.places = places or {}
        self.acells = machine.platform.address_cells
        self.scells = machine.platform.size_cells
        # Properties many function nodes have alike (IDs, compatible), made
        # once and shared: the writers encode and print each of them once.
        self.shared: dict[tuple[object, ...], Property] = {}

    def shared_u32(self, name: str, value: int) -> Property:
        key = (name, value)
        prop = self.shared.get(key)
        if prop is None:
            prop = self.shared[key] = Property(name, (Cells((value,)),), shared=True)
        return prop

    def shared_str(self, name: str, text: str) -> Property:
        key = (name, text)
        prop = self.shared.get(key)
        if prop is None:
            prop = self.shared[key] = Property(name, (Str(text),), shared=True)
        return prop

    # ------------------------------------------------------------ helpers

    def ref(self, c: m.Controller) -> Ref:
        return Ref(self.base_refs.get(c.name, c.label))

    def label_of(self, name: str) -> str:
        c = self.m.controller(name)
        if c is not None:
            return self.ref(c).target
        return name.replace("-", "_").replace(".", "_")

    def reg(self, address: int, size: int, acells: int, scells: int) -> Cells:
        return Cells(_addr_cells(address, acells) + _addr_cells(size, scells))

    def raw_props(self, node: Node, props: tuple[RawProperty, ...]) -> None:
        for p in props:
            node.set(p.name, *raw_chunks(p, self.label_of), comment=f"{p.span.short()}")

    # ------------------------------------------------------------ whole tree

    def build(self) -> Tree:
        pl = self.m.platform
        root = Node("")
        root.set("compatible", *(Str(c) for c in pl.compatible))
        if pl.model:
            root.set("model", Str(pl.model))
        root.set("#address-cells", Cells((self.acells,)))
        root.set("#size-cells", Cells((self.scells,)))
        gic = next((c for c in self.m.controllers if c.kind == "gicv3"), None)
        if gic is not None and gic.from_base is None:
            root.set("interrupt-parent", Cells((self.ref(gic),)))
        if pl.msi_mode.kind == "hypervisor":
            root.add_child(self.rtas())
        if pl.msi_mode.kind == "firmware-composed":
            root.add_child(self.opal())
        for c in self.m.controllers:
            if c.from_base is not None:
                continue
            if c.kind == "fsl-msi" and c.parent is not None:
                self.beside(root, c.parent).add_child(self.controller(c))
            elif c.parent is None or c.parent.from_base is not None or c.parent.kind != "gicv3":
                root.add_child(self.controller(c))
        for hb in self.m.host_bridges:
            node = self.host_bridge(hb)
            if node is not None:
                root.add_child(node)
        tree = Tree(root)
        tree.header_comment = f"Generated by dtmsi from {self.m.source_name}; edit the .msi, not this file."
        return tree

    def opal(self) -> Node:
        # The OPAL call tokens are for people and the stubs (which get them from
        # the plan): no binding has a property for them, so they go in the comment.
        tokens = self.m.platform.msi_mode.tokens
        keys = [k for k in ("get-msi-32", "get-msi-64") if k in tokens]
        calls = ", ".join(f"OPAL_{k.upper().replace('-', '_')} {tokens[k]}" for k in keys)
        what = "OPAL firmware: composes MSI address/data (opal_get_msi_32/64)"
        node = Node("ibm,opal", comment=what + (f"; tokens {calls}" if calls else ""))
        node.set("compatible", Str("ibm,opal-v3"))
        return node

    def rtas(self) -> Node:
        node = Node("rtas", comment="RTAS service tokens (PAPR)")
        for name in ("ibm,change-msi", "ibm,query-interrupt-source-number"):
            key = name.removeprefix("ibm,")
            tok = self.m.platform.msi_mode.tokens.get(key)
            if tok is not None:
                node.set(name, Cells((tok,)))
        if "change-msi" in self.m.platform.msi_mode.tokens:
            # PAPR: ibm,change-msi functions 3 (MSI) and 4 (MSI-X), which the
            # stubs and the quota prediction use, exist only where /rtas says
            # so; QEMU's pseries tree says it the same way.
            node.set("ibm,change-msix-capable")
        return node

    # ------------------------------------------------------------ controllers

    def beside(self, root: Node, c: m.Controller) -> Node:
        """The node a sibling of ``c``'s node goes into: the root for a node
        dtmsi makes, else a path of empty nodes down to the base node's parent
        (the merge puts their children into the base tree's)."""
        place = self.places.get(c.name)
        node = root
        if place is not None:
            for name in place.parent_path.split("/")[1:] if place.parent_path != "/" else []:
                nxt = next((k for k in node.children if k.name == name), None)
                if nxt is None:
                    nxt = Node(name)
                    node.add_child(nxt)
                node = nxt
        return node

    def bus_cells(self, c: m.Controller) -> tuple[int, int, int | None]:
        """Address and size cells of the bus ``c``'s node sits on, and its
        ``reg`` address there (None: not representable, reported by the backend)."""
        if c.parent is not None and c.parent.kind == "gicv3" and c.parent.from_base is None:
            return 2, 2, c.address
        place = self.places.get(c.parent.name) if c.kind == "fsl-msi" and c.parent is not None else None
        if place is None:
            return self.acells, self.scells, c.address
        if c.address is None or c.size is None:
            return place.address_cells, place.size_cells, None
        return place.address_cells, place.size_cells, place.child_address(c.address, c.size)

    def mpic_cells(self, c: m.Controller) -> int:
        """``#interrupt-cells`` of an MPIC: the base node's (fsl,mpic allows 2 or 4), else ours."""
        place = self.places.get(c.name)
        if place is not None and place.interrupt_cells is not None:
            return place.interrupt_cells
        return c.interrupt_cells

    def mpic_specifier(self, c: m.Controller, irq: int, sense: int) -> tuple[int, ...]:
        # fsl,mpic with 4 cells: source, sense, type 0 (normal interrupt), info 0.
        return (irq, sense) + (0, 0) * (self.mpic_cells(c) == 4)

    def controller(self, c: m.Controller) -> Node:
        acells, scells, address = self.bus_cells(c)
        unit = f"@{_hex(address)}" if address is not None else ""
        base = {
            "gicv3": "interrupt-controller",
            "gicv3-its": "msi-controller",
            "fsl-msi": "msi",
            "x86-apic": "msi-controller",
            "xics": "interrupt-controller",
            "mpic": "interrupt-controller",
            "generic": "interrupt-controller",
            "generic-msi": "msi-controller",
        }[c.kind]
        node = Node(base + unit, labels=[c.label], comment=f"{c.kind} {c.name} - {c.span.short() if c.span else ''}")
        if c.compatible:
            node.set("compatible", *(Str(s) for s in c.compatible))
        if c.kind == "xics":
            node.set("device_type", Str("PowerPC-External-Interrupt-Presentation"))
        if address is not None and c.size is not None:
            regs = [self.reg(address, c.size, acells, scells)]
            if c.redistributor is not None:
                regs.append(self.reg(c.redistributor[0], c.redistributor[1], acells, scells))
            node.set("reg", *regs)
        if c.interrupt_cells:
            node.set("interrupt-controller")
            node.set("#interrupt-cells", Cells((c.interrupt_cells,)))
        if c.is_msi and c.kind != "fsl-msi":  # fsl,mpic-msi is no msi-controller: PCI finds it by fsl,msi
            node.set("msi-controller")
            if c.msi_cells:
                node.set("#msi-cells", Cells((c.msi_cells,)))
        if c.kind == "fsl-msi":
            node.set("msi-available-ranges", Cells(tuple(v for r in c.available for v in r)))
            if c.parent is not None:
                # One cascade per available 32-interrupt bank, in order: MSIR n
                # raises MPIC source cascade + n, an edge (binding msi-pic.txt;
                # Linux fsl_msi_setup_hwirq walks 'interrupts' this way).
                banks = [b for start, count in c.available for b in range(start // 32, (start + count) // 32)]
                spec: list[int | Ref] = []
                for b in banks:
                    spec += self.mpic_specifier(c.parent, c.cascade + b, _MPIC_EDGE_RISING)
                node.set("interrupts", Cells(tuple(spec)), comment=f"MSIR banks {', '.join(map(str, banks))}")
                node.set("interrupt-parent", Cells((self.ref(c.parent),)))
        if c.kind == "xics" and c.servers is not None:
            lo, hi = c.servers
            node.set("ibm,interrupt-server-ranges", Cells((lo, hi - lo + 1)))
        # Only an ITS nests inside its GIC; other children sit beside their parent.
        kids = [k for k in self.m.controllers if k.parent is c and k.from_base is None and c.kind == "gicv3"]
        if c.kind == "gicv3":
            # Needed for the ITS child and as an interrupt-map parent (dtc checks both).
            node.set("#address-cells", Cells((2,)))
            node.set("#size-cells", Cells((2,)))
            node.set("ranges")
        elif c.interrupt_cells:
            node.set("#address-cells", Cells((0,)))
        self.raw_props(node, c.properties)
        for k in kids:
            node.add_child(self.controller(k))
        return node

    def parent_unit_cells(self, c: m.Controller) -> int:
        return 2 if c.kind == "gicv3" else 0

    def intx_specifier(self, route: m.IntxRoute, irq: int) -> tuple[int, ...]:
        c = route.controller
        level = route.trigger == "level"
        if c.kind == "gicv3":
            return (_GIC_SPI, irq, _IRQ_LEVEL_HIGH if level else _IRQ_EDGE_RISING)
        if c.kind == "xics":
            return (irq, 1 if level else 0)
        if c.kind == "mpic":
            return self.mpic_specifier(c, irq, _MPIC_LEVEL_LOW if level else _MPIC_EDGE_RISING)
        if c.interrupt_cells == 1:
            return (irq,)
        return (irq, _IRQ_LEVEL_HIGH if level else _IRQ_EDGE_RISING)

    # ------------------------------------------------------------ PCI

    def has_kept(self, f: m.Function) -> bool:
        if self.keep(f) or (f.sriov is not None and any(self.keep(vf) for vf in f.sriov.vfs)):
            return True
        return f.is_bridge and any(self.has_kept(c) for c in f.children)

    def visible(self, f: m.Function) -> bool:
        """A function is in the tree if kept, or a bridge above something kept.

        A PF whose VFs are kept is not shown for their sake: VF nodes sit on
        the PF's bus, beside it, so the PF stays out of a partition it is not in.
        """
        if self.keep(f):
            return True
        return f.is_bridge and any(self.has_kept(c) for c in f.children)

    def host_bridge(self, hb: m.HostBridge) -> Node | None:
        if not any(self.has_kept(f) for f in hb.children):
            return None
        if hb.kind in ("ecam", "opal"):
            assert hb.config_base is not None
            name = f"pcie@{_hex(hb.config_base)}"
        else:
            name = f"pci@{_hex(hb.buid or 0)}"
        name = hb.node_name or name
        node = Node(name, labels=[hb.label], comment=f"host bridge {hb.name} - {hb.span.short()}")
        node.set("compatible", *(Str(s) for s in hb.compatible))
        node.set("device_type", Str("pci"))
        node.set("#address-cells", Cells((3,)))
        node.set("#size-cells", Cells((2,)))
        if hb.kind in ("ecam", "opal"):
            assert hb.config_base is not None and hb.config_size is not None
            node.set("reg", self.reg(hb.config_base, hb.config_size, self.acells, self.scells))
        else:
            node.set(
                "reg",
                Cells(_addr_cells(hb.buid or 0, self.acells) + (0,) * self.scells),
                comment=f"BUID {hb.buid or 0:#x}",
            )
        node.set("bus-range", Cells((hb.bus_first, hb.bus_last)))
        if hb.domain is not None:
            node.set("linux,pci-domain", Cells((hb.domain,)))
        rows: list[Chunk] = []
        notes: list[str | None] = []
        for w in hb.windows:
            hi, lo = _split64(w.pci)
            rows.append(Cells((w.space_code << 24, hi, lo, *_addr_cells(w.cpu, self.acells), *_split64(w.size))))
            notes.append(f"{w.kind}{' prefetchable' if w.prefetchable else ''}")
        if rows:
            p = node.set("ranges", *rows)
            p.chunk_comments = tuple(notes)
        else:
            node.set("ranges")
        if hb.msi_maps:
            entries = self.msi_map_entries(hb)
            if entries:
                p = node.set("msi-map", *(Cells((base, self.ref(c), dev, n)) for base, c, dev, n in entries))
                p.chunk_comments = tuple(
                    f"RID {base:#06x}..{base + n - 1:#06x} -> {c.name} DeviceID {dev:#x}.."
                    for base, c, dev, n in entries
                )
            if hb.msi_map_mask is not None:
                node.set("msi-map-mask", Cells((hb.msi_map_mask,)))
        elif hb.msi_parent is not None and hb.msi_parent.kind == "fsl-msi":
            # Freescale PCI controllers name their MSI bank with fsl,msi
            # (Linux fsl_msi.c fsl_setup_msi_irqs; QEMU ppce500's tree).
            node.set("fsl,msi", Cells((self.ref(hb.msi_parent),)))
        elif hb.msi_parent is not None:
            spec: tuple[int | Ref, ...] = (self.ref(hb.msi_parent),)
            if hb.msi_parent.msi_cells:
                spec += (0,) * hb.msi_parent.msi_cells
            node.set("msi-parent", Cells(spec))
        if hb.kind == "papr":
            node.set("used-by-rtas")
            node.set("ibm,pci-config-space-type", Cells((1,)), comment="4 KiB extended config space")
        if hb.pe_total_msi is not None:
            node.set("ibm,pe-total-#msi", Cells((hb.pe_total_msi,)))
        if hb.kind == "opal":
            # What the OS needs to ask firmware for messages (opal_get_msi_32/64):
            # the PHB id and the hwirq range it may pass as xive_num.
            phb = hb.buid or 0
            node.set("ibm,opal-phbid", Cells((phb >> 32, phb & 0xFFFFFFFF)))
            if hb.msi_ranges is not None:
                node.set("ibm,opal-msi-ranges", Cells(hb.msi_ranges), comment="first hwirq, count")
        if hb.intx is not None:
            self.interrupt_map(node, hb.children, None, hb)
        self.raw_props(node, hb.properties)
        self.bus_children(node, hb.children, hb)
        return node

    def msi_map_entries(self, hb: m.HostBridge) -> list[tuple[int, m.Controller, int, int]]:
        """msi-map rows: the declared map for the whole machine; for a partition,
        only runs of its own requester IDs, so no other tenant's range leaks in."""
        if not self.partitioned:
            return [(e.rid_base, e.controller, e.msi_base, e.length) for e in hb.msi_maps]
        rids: set[int] = set()
        for f in hb.functions():
            for g in [f, *(f.sriov.vfs if f.sriov else [])]:
                if self.keep(g) and not g.is_bridge and (g.msi or g.msix):
                    # rid-base must fit msi-map-mask, or Linux drops the whole map.
                    rids.add(g.dma_alias & (hb.msi_map_mask if hb.msi_map_mask is not None else 0xFFFF))
        rows: list[tuple[int, m.Controller, int, int]] = []
        for rid in sorted(rids):
            got = hb.msi_controller_for(rid)
            if got is None or got[1] is None:
                continue
            ctrl, dev = got[0], got[1]
            if rows:
                base, c, d, n = rows[-1]
                if c is ctrl and base + n == rid and d + n == dev:
                    rows[-1] = (base, c, d, n + 1)
                    continue
            rows.append((rid, ctrl, dev, 1))
        return rows

    def uses_intx(self, f: m.Function) -> bool:
        """Whether an INTx line of ``f`` or of a function below it is in the tree."""
        if not self.visible(f):
            return False
        if f.intx_pin and self.keep(f):
            return True
        return f.is_bridge and any(self.uses_intx(c) for c in f.children)

    def slots_with_intx(self, fns: list[m.Function]) -> list[int]:
        return sorted({(0 if f.ari else f.device) for f in fns if self.uses_intx(f)})

    def interrupt_map(self, node: Node, fns: list[m.Function], bridge: m.Function | None, hb: m.HostBridge) -> None:
        slots = self.slots_with_intx(fns)
        if not slots or hb.intx is None:
            return
        node.set("#interrupt-cells", Cells((1,)))
        node.set("interrupt-map-mask", Cells((0xF800, 0, 0, 7)))
        rows: list[Chunk] = []
        notes: list[str | None] = []
        if bridge is not None:
            parent: Ref = Ref(bridge.parent.label if bridge.parent else hb.label)
            at, phys_hi = bridge.bdf, bridge.phys_hi_config
        for slot in slots:
            for pin in range(1, 5):
                child = (slot << 11, 0, 0, pin)
                if bridge is None:
                    irq = hb.intx.interrupt_for(slot, pin)
                    c = hb.intx.controller
                    rows.append(
                        Cells(
                            child
                            + (self.ref(c),)
                            + (0,) * self.parent_unit_cells(c)
                            + self.intx_specifier(hb.intx, irq)
                        )
                    )
                    notes.append(f"slot {slot:x} INT{'ABCD'[pin - 1]} -> {c.name} {hb.intx.kind} {irq}")
                else:
                    up = ((pin - 1 + slot) % 4) + 1
                    rows.append(Cells((*child, parent, phys_hi, 0, 0, up)))
                    notes.append(f"slot {slot:x} INT{'ABCD'[pin - 1]} -> INT{'ABCD'[up - 1]} at {at}")
        p = node.set("interrupt-map", *rows)
        p.chunk_comments = tuple(notes)

    def bus_children(self, node: Node, fns: list[m.Function], hb: m.HostBridge) -> None:
        # Deferred: the writers make each bus's nodes as they walk it and drop
        # them once written (a 100k-function tree is ~4 KB a function).
        node.deferred = lambda: self.bus_nodes(fns, hb)

    def bus_nodes(self, fns: list[m.Function], hb: m.HostBridge) -> list[Node]:
        entries: list[m.Function] = []
        for f in fns:
            if self.visible(f):
                entries.append(f)
            if f.sriov:
                # VFs beyond the PF's bus live on virtual buses with no node (W310).
                entries.extend(vf for vf in f.sriov.vfs if self.keep(vf) and vf.bus == f.bus)
        entries.sort(key=lambda f: f.rid)
        return [self.function(f, hb) for f in entries]

    def function(self, f: m.Function, hb: m.HostBridge) -> Node:
        kept = self.keep(f)
        what = "VF" if f.kind == "vf" else f.kind
        node = Node(
            f"{f.node_name}@{unit_address(f)}",
            labels=[f.label],
            comment=f"{f.bdf} {f.name} ({what}) - {f.span.short()}",
        )
        props = node.properties
        shared = self.shared
        u32 = self.shared_u32
        key = ("compatible", f.vendor, f.device_id, f.class_code)
        compatible = shared.get(key)
        if compatible is None:
            # IEEE 1275 PCI binding order: most specific first.
            compatible = shared[key] = Property(
                "compatible",
                (
                    Str(f"pci{_hex(f.vendor)},{_hex(f.device_id)}"),
                    Str(f"pciclass,{f.class_code:06x}"),
                    Str(f"pciclass,{f.class_code >> 8:04x}"),
                ),
                shared=True,
            )
        props.append(compatible)
        if f.is_bridge:
            props.append(self.shared_str("device_type", "pci"))
        regs: list[Chunk] = [Cells((f.phys_hi_config, 0, 0, 0, 0))]
        assigned: list[Chunk] = []
        if kept:
            for b in sorted(f.bars, key=lambda b: b.index):
                phys = (b.space_code << 24) | f.phys_hi_config | b.register
                regs.append(Cells((phys, 0, 0, *_split64(b.size))))
                if b.address is not None:
                    hi, lo = _split64(b.address)
                    assigned.append(Cells((phys | 2147483648, hi, lo, *_split64(b.size))))
        _add(node, "reg", *regs)
        if assigned:
            _add(node, "assigned-addresses", *assigned)
        props.append(u32("vendor-id", f.vendor))
        props.append(u32("device-id", f.device_id))
        props.append(u32("revision-id", f.revision))
        props.append(u32("class-code", f.class_code))
        if f.subsystem is not None:
            props.append(u32("subsystem-vendor-id", f.subsystem[0]))
            props.append(u32("subsystem-id", f.subsystem[1]))
        if f.intx_pin and kept:
            props.append(u32("interrupts", f.intx_pin))
        a = self.allocation.by_function.get(id(f)) if self.allocation and kept else None
        if a is not None and hb.kind == "papr":
            if a.req_msi is not None:
                props.append(u32("ibm,req#msi", a.req_msi))
            if a.req_msix is not None:
                props.append(u32("ibm,req#msi-x", a.req_msix))
        if f.is_bridge:
            props.append(u32("#address-cells", 3))
            props.append(u32("#size-cells", 2))
            _add(node, "ranges")
            _add(node, "bus-range", Cells((f.secondary, f.subordinate)))
            pe_total = next((pe.total_msi for pe in self.m.pes if pe.anchor is f), None)
            if pe_total is not None:
                _add(node, "ibm,pe-total-#msi", Cells((pe_total,)))
            self.interrupt_map(node, f.children, f, hb)
        if kept:
            self.raw_props(node, f.properties)
        if f.is_bridge:
            self.bus_children(node, f.children, hb)
        return node


def raw_node(n: RawNode, labels: Callable[[str], str]) -> Node:
    node = Node(n.path.rsplit("/", 1)[-1], labels=[n.label] if n.label else [], comment=f"raw node - {n.span.short()}")
    for p in n.properties:
        node.set(p.name, *raw_chunks(p, labels))
    for c in n.children:
        node.add_child(raw_node(c, labels))
    return node


def attach_raw_nodes(tree: Tree, nodes: list[RawNode], labels: Callable[[str], str]) -> list[RawNode]:
    """Graft ``node "/path" {...}`` escape hatches; returns those whose parent is missing."""
    missing: list[RawNode] = []
    for n in nodes:
        parts = [p for p in n.path.split("/") if p]
        cur = tree.root
        ok = True
        for part in parts[:-1]:
            nxt = cur.child(part)
            if nxt is None:
                ok = False
                break
            cur = nxt
        if not ok:
            missing.append(n)
            continue
        built = raw_node(n, labels) if parts else None
        if built is None:  # "/" itself: properties on the root
            for p in n.properties:
                tree.root.set(p.name, *raw_chunks(p, labels))
            for c in n.children:
                _merge_node(tree.root, raw_node(c, labels))
            continue
        _merge_node(cur, built)
    return missing


def _merge_node(parent: Node, new: Node) -> None:
    old = parent.child(new.name)
    if old is None:
        parent.add_child(new)
        return
    for p in new.properties:
        kept: Property = old.set(p.name, *p.chunks, comment=p.comment)
        kept.chunk_comments = p.chunk_comments
    for lab in new.labels:
        if lab not in old.labels:
            old.labels.append(lab)
    for c in new.children:
        _merge_node(old, c)
