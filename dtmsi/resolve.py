"""Declarations -> the resolved model.

Binds names (with "did you mean"), numbers buses depth-first as firmware
enumeration does, places BARs in the host bridge windows with natural
alignment and sizes bridge windows to what sits behind them, computes
requester IDs, SR-IOV VF routing IDs and DMA aliases. Problems that make a
value impossible to compute are reported here; rules about computed values
live in ``checks/``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

from dtmsi import ast
from dtmsi import codes as C
from dtmsi import model as m
from dtmsi.diagnostics import DiagnosticSink, Note
from dtmsi.lower import did_you_mean
from dtmsi.source import BUILTIN, Span

# Controller kinds dtmsi knows: role, #interrupt-cells, #msi-cells, compatible.
CONTROLLER_KINDS: dict[str, tuple[str, int, int | None, tuple[str, ...]]] = {
    "gicv3": ("interrupt", 3, None, ("arm,gic-v3",)),
    "gicv3-its": ("msi", 0, 1, ("arm,gic-v3-its",)),
    "fsl-msi": ("msi", 0, 0, ("fsl,mpic-msi",)),
    "x86-apic": ("msi", 0, 0, ("dtmsi,x86-apic-msi",)),
    "xics": ("interrupt", 2, None, ("IBM,ppc-xicp",)),
    "mpic": ("interrupt", 2, None, ("chrp,open-pic",)),
    "generic": ("interrupt", 2, None, ()),
    "generic-msi": ("msi", 0, 1, ()),
}
_SETTINGS: dict[str, dict[str, tuple[int, int]]] = {
    # setting -> (min values, max values)
    "gicv3": {"redistributor": (2, 2)},
    "gicv3-its": {"device-id-bits": (1, 1), "event-id-bits": (1, 1)},
    "fsl-msi": {"available": (2, 32), "msiir": (1, 1), "cascade": (1, 1)},
    "x86-apic": {"cpus": (2, 128), "vectors": (2, 2)},  # cpus: (first, last) pairs
    "xics": {"servers": (2, 2)},
    "mpic": {},
    "generic": {"interrupt-cells": (1, 1)},
    "generic-msi": {"msi-cells": (1, 1), "msi-address": (1, 1)},
}
_BRIDGE_DEFAULTS: dict[str, tuple[int, int]] = {
    # kind -> (vendor:device) QEMU's models, used when the source gives no id
    "root-port": (0x1B36, 0x000C),
    "switch": (0x10B5, 0x8747),
    "downstream": (0x10B5, 0x8747),
    "pci-bridge": (0x1B36, 0x0001),
    "pcie-to-pci-bridge": (0x1B36, 0x000E),
}
_GRANULE = {"io": 0x1000, "mem": 0x100000, "pref": 0x100000}


# A policy without 'vectors': as many as the capability has.
_ASK_WHAT_IT_HAS = m.VectorCount("requested", 0, None, None)


def _vector_count(v: ast.VectorsDecl) -> m.VectorCount:
    return m.VectorCount(v.base, v.count, v.maximum, v.minimum, v.scale, v.span)


@dataclass
class _Item:
    """One thing to place on a bus for one resource class: a BAR or a bridge window."""

    size: int
    align: int
    fixed: int | None
    bar: m.Bar | None = None
    bridge: m.Function | None = None
    # SR-IOV: one VF BAR of every enabled VF, consecutive (VF n at base + n * size)
    vf_bars: list[m.Bar] | None = None


@dataclass(slots=True)
class _BusCursor:
    """Depth-first bus numbering's state: the next free bus number."""

    next_bus: int
    exhausted: bool = False


class Resolver:
    def __init__(self, program: ast.Program, sink: DiagnosticSink, source_name: str) -> None:
        self.p = program
        self.sink = sink
        self.source_name = source_name
        self.labels: dict[str, Span] = {}
        self.controllers: dict[str, m.Controller] = {}
        # Controllers declared with an error already reported (an unknown or
        # mismatched kind): a reference to one is not a second mistake.
        self.broken_controllers: set[str] = set()
        self.functions: dict[str, m.Function] = {}
        self.host_bridges: list[m.HostBridge] = []
        # BAR placement memos: (bridge id, resource) -> (size, alignment) / alignment
        self._measured: dict[tuple[int, str], tuple[int, int]] = {}
        self._aligns: dict[tuple[int, str], int] = {}
        self._subtrees: dict[tuple[int, str], tuple[bool, int | None]] = {}

    def error(self, code: C.Code, span: Span, msg: str, hint: str | None = None, notes: tuple[Note, ...] = ()) -> None:
        self.sink.report(code, span, msg, hint=hint, notes=notes)

    def claim_label(self, name: str, span: Span, what: str) -> bool:
        label = name.replace("-", "_").replace(".", "_")
        prev = self.labels.get(label)
        if prev is not None:
            self.error(
                C.DUPLICATE_NAME,
                span,
                f"{what} '{name}' reuses a name already defined",
                notes=(Note("first defined here", prev),),
                hint="controllers, host bridges and functions share one namespace: they become device-tree labels",
            )
            return False
        self.labels[label] = span
        return True

    # ------------------------------------------------------------ entry

    def resolve(self) -> m.Machine:
        platform = self.platform = self._platform()
        for decl in self.p.controllers:
            self._controller(decl)
        for decl in self.p.controllers:
            if decl.parent is not None:
                c = self.controllers.get(decl.name)
                parent = self._controller_ref(decl.parent[0], decl.parent[1])
                if c is not None and parent is not None:
                    c.parent = parent
        for hb in self.p.host_bridges:
            self._host_bridge(hb)
        self._check_domains()
        policies = self._policies()
        rules = self._rules(policies)
        for f in self.functions.values():
            if f.policy is not None and f.policy not in policies and f.policy_span is not None:
                self.error(
                    C.UNKNOWN_NAME, f.policy_span, f"unknown policy '{f.policy}'", did_you_mean(f.policy, policies)
                )
        for built in self.host_bridges:
            built.freeze()
        pes = self._pes()
        partitions = self._partitions(pes)
        unassigned = [f for d in self.p.unassigned for s in d.members for f in self._select(s, pes)]
        return m.Machine(
            self.source_name,
            platform,
            list(self.controllers.values()),
            self.host_bridges,
            policies,
            rules,
            pes,
            partitions,
            unassigned,
            list(self.p.raw_nodes) + list(self.p.platform.raw_nodes if self.p.platform else ()),
            list(self.p.files),
        )

    # ------------------------------------------------------------ platform, controllers

    def _platform(self) -> m.Platform:
        d = self.p.platform
        if d is None:
            return m.Platform(("dtmsi,machine",), None, m.MsiMode("native", None, {}), None, None, 2, 2, 1, None)
        mode = m.MsiMode("native", None, {})
        if d.msi_mode is not None:
            mode = m.MsiMode(d.msi_mode.kind, d.msi_mode.flavour, {name: v for name, v, _ in d.msi_mode.tokens})
        compatible = d.compatible or ("dtmsi,machine",)
        return m.Platform(
            compatible,
            d.model,
            mode,
            d.base[0] if d.base else None,
            d.base[1] if d.base else None,
            d.address_cells,
            d.size_cells,
            d.cpus or 1,
            d.span,
            d.stub_prefix,
        )

    def _controller(self, d: ast.ControllerDecl) -> None:
        kind = CONTROLLER_KINDS.get(d.kind)
        if kind is None:
            self.broken_controllers.add(d.name)
            self.error(
                C.UNKNOWN_NAME,
                d.span,
                f"unknown controller kind '{d.kind}'",
                did_you_mean(d.kind, CONTROLLER_KINDS) or "known kinds: " + ", ".join(sorted(CONTROLLER_KINDS)),
            )
            return
        role, icells, mcells, compat = kind
        if role != d.role:
            self.broken_controllers.add(d.name)
            self.error(C.WRONG_KIND, d.span, f"'{d.kind}' is an {role} controller, declared as {d.role}-controller")
            return
        if not self.claim_label(d.name, d.span, "controller"):
            return
        c = m.Controller(
            d.name,
            d.role,
            d.kind,
            d.address,
            d.size,
            None,
            d.from_base[0] if d.from_base else None,
            d.compatible or compat,
            icells,
            mcells,
            properties=d.properties,
            span=d.span,
        )
        allowed = _SETTINGS[d.kind]
        for name, values, span in d.settings:
            lim = allowed.get(name)
            if lim is None:
                self.error(
                    C.UNKNOWN_STATEMENT,
                    span,
                    f"'{name}' is not a setting of a {d.kind} controller",
                    did_you_mean(name, allowed) or ("settings: " + ", ".join(sorted(allowed)) if allowed else None),
                )
                continue
            if not lim[0] <= len(values) <= lim[1]:
                self.error(C.BAD_VALUE, span, f"'{name}' takes {lim[0]}..{lim[1]} values, {len(values)} given")
                continue
            if name == "redistributor":
                c.redistributor = (values[0], values[1])
            elif name in ("device-id-bits", "event-id-bits"):
                # GITS_TYPER.Devbits and .ID_bits hold 1..32 (GICv3 architecture, 12.19.16)
                if not 1 <= values[0] <= 32:
                    self.error(C.NUMBER_RANGE, span, f"'{name}' must be 1..32 (an ITS's IDs are at most 32 bits), "
                               f"not {values[0]:#x}")
                    continue
                if name == "device-id-bits":
                    c.device_id_bits = values[0]
                else:
                    c.event_id_bits = values[0]
            elif name == "available":
                if len(values) % 2:
                    self.error(C.BAD_VALUE, span, "'available' takes ranges like 0..255")
                    continue
                c.available = tuple((values[i], values[i + 1] - values[i] + 1) for i in range(0, len(values), 2))
            elif name == "cascade":
                c.cascade = values[0]
            elif name in ("msiir", "msi-address"):
                c.msi_address = values[0]
            elif name == "cpus":
                c.cpus = self._apic_cpus(d.name, values, span)
                c.cpus_span = span
            elif name == "vectors":
                c.vectors = (values[0], values[1])
            elif name == "servers":
                c.servers = (values[0], values[1])
            elif name == "interrupt-cells":
                c.interrupt_cells = values[0]
            elif name == "msi-cells":
                c.msi_cells = values[0]
        if d.address is not None and d.size is None and not d.from_base:
            # A node with a unit address needs a 'reg' (dtc: unit_address_vs_reg).
            self.error(
                C.MISSING_SETTING,
                d.span,
                f"a {d.kind} controller placed at an address needs its size ('@ ADDRESS size SIZE')",
            )
        if d.kind == "gicv3-its" and d.address is None:
            self.error(
                C.MISSING_SETTING,
                d.span,
                "a gicv3-its controller needs its address ('@ ADDRESS size SIZE'): "
                "MSI messages are written to its GITS_TRANSLATER register",
            )
        if d.kind == "x86-apic":
            c.msi_address = 0xFEE00000
            if c.vectors is None:
                # Linux x86 (arch/x86/include/asm/irq_vectors.h): 0x30..0x3f are
                # CPU 0's legacy ISA vectors, 0xec and up its system vectors
                # (local timer, IPIs): a message there would land on them.
                c.vectors = m.X86_DEFAULT_VECTORS
            if not c.cpus:
                # No list: the controller delivers to every CPU of the platform.
                c.cpus = tuple(range(self.platform.cpus))
                c.cpus_span = d.span
        if d.kind == "fsl-msi" and not c.available:
            c.available = ((0, 256),)
        if d.kind == "xics" and c.servers is None:
            c.servers = (0, 0)
        self.controllers[d.name] = c

    def _apic_cpus(self, name: str, pairs: tuple[int, ...], span: Span) -> tuple[int, ...]:
        """An x86-apic 'cpus' list: CPU numbers of the platform, as in a partition's
        'cpus' (the platform's 'cpus N' is the count, numbered 0..N-1); CPU n is
        APIC ID n. A CPU the platform does not have is refused here: it is no
        destination at all (and a huge range would not be expanded)."""
        count = self.platform.cpus
        cpus: set[int] = set()
        for lo, hi in zip(pairs[::2], pairs[1::2], strict=True):
            if lo > hi:
                self.error(C.BAD_VALUE, span, f"CPU range {lo}..{hi} is reversed")
                return ()
            if lo < 0 or hi >= count:
                what = f"CPU {hi if lo >= 0 else lo}" if lo == hi else f"CPUs {lo}..{hi}"
                self.error(
                    C.APIC_CPU_OUTSIDE_PLATFORM,
                    span,
                    f"x86-apic '{name}' sends to {what}, but the platform has {count} CPU"
                    f"{'s' if count != 1 else ''} (0..{count - 1})",
                    hint="'cpus' here lists CPU numbers like a partition's ('cpus 0..3' is four CPUs); "
                    "the platform's 'cpus N' says how many there are",
                    notes=(Note("the platform's CPU count", self.platform.span),) if self.platform.span else (),
                )
                return ()
            cpus.update(range(lo, hi + 1))
        return tuple(sorted(cpus))

    def _controller_ref(self, name: str, span: Span, role: str | None = None) -> m.Controller | None:
        c = self.controllers.get(name)
        if c is None:
            if name in self.broken_controllers:
                return None  # its declaration's error says it all
            if name.replace("-", "_") in self.labels:
                self.error(C.WRONG_KIND, span, f"'{name}' is not a controller")
            else:
                self.error(C.UNKNOWN_NAME, span, f"unknown controller '{name}'", did_you_mean(name, self.controllers))
            return None
        if role == "msi" and not c.is_msi:
            self.error(
                C.MSI_MAP_TARGET,
                span,
                f"'{name}' is an interrupt controller, not an MSI controller",
                "point MSI at a controller declared with '= msi-controller'",
            )
            return None
        if role == "interrupt" and c.interrupt_cells == 0:
            self.error(C.WRONG_KIND, span, f"'{name}' is an MSI controller, not an interrupt controller")
            return None
        return c

    # ------------------------------------------------------------ host bridges

    def _host_bridge(self, d: ast.HostBridgeDecl) -> None:
        if not self.claim_label(d.name, d.name_span, "host bridge"):
            return
        first, last = (d.buses[0], d.buses[1]) if d.buses else (0, 255)
        if d.kind == "ecam" and d.config_size is not None and d.buses is None:
            last = min(255, first + (d.config_size >> 20) - 1)
        windows: list[m.Window] = []
        for w in d.windows:
            windows.append(m.Window(w.kind, w.prefetchable, w.cpu, w.pci, w.size, w.span))
        maps: list[m.MsiMapEntry] = []
        for mp in d.msi_maps:
            c = self._controller_ref(mp.target, mp.target_span, "msi")
            if c is not None:
                maps.append(m.MsiMapEntry(mp.rid_base, mp.rid_last - mp.rid_base + 1, c, mp.msi_base, mp.span))
        parent = self._controller_ref(d.msi_parent[0], d.msi_parent[1], "msi") if d.msi_parent else None
        intx: m.IntxRoute | None = None
        if d.intx is not None:
            ic = self._controller_ref(d.intx.controller, d.intx.controller_span, "interrupt")
            if ic is not None:
                if d.intx.kind == "spi" and ic.kind != "gicv3":
                    self.error(
                        C.INTX_SPEC,
                        d.intx.span,
                        f"'spi' numbers belong to a GIC; '{ic.name}' is {ic.kind}",
                        "use 'irq' for this controller",
                    )
                elif d.intx.kind == "irq" and ic.kind == "gicv3":
                    self.error(C.INTX_SPEC, d.intx.span, "a GIC route names SPIs: 'spi A..B'")
                else:
                    intx = m.IntxRoute(
                        ic,
                        d.intx.kind,
                        d.intx.first,
                        d.intx.last - d.intx.first + 1,
                        d.intx.trigger,
                        d.intx.swizzle,
                        d.intx.span,
                    )
        compat = d.compatible or {
            "ecam": ("pci-host-ecam-generic",),
            "papr": ("IBM,Logical_PHB",),
            "opal": ("ibm,ioda2-phb",),
        }[d.kind]
        hb = m.HostBridge(
            d.name,
            d.kind,
            d.config_base,
            d.config_size,
            d.buid,
            compat,
            d.domain[0] if d.domain else None,
            first,
            last,
            windows,
            maps,
            d.msi_map_mask[0] if d.msi_map_mask else None,
            parent,
            intx,
            d.pe_total_msi[0] if d.pe_total_msi else None,
            d.properties,
            d.span,
            d.name_span,
            msi_ranges=(d.msi_ranges[0], d.msi_ranges[1] - d.msi_ranges[0] + 1) if d.msi_ranges else None,
            node_name=d.node_name,
        )
        hb.children = [self._function(fd, hb, None) for fd in d.children]
        hb.children.sort(key=lambda f: f.devfn)
        self.host_bridges.append(hb)
        self._number_buses(hb)
        self._vfs(hb)
        self._aliases(hb)
        self._place_bars(hb)

    def _function(self, d: ast.FunctionDecl, hb: m.HostBridge, parent: m.Function | None) -> m.Function:
        self.claim_label(d.name, d.name_span, "function")
        vendor, device_id = d.vendor, d.device_id
        if vendor is None or device_id is None:
            if d.kind == "downstream" and parent is not None and parent.kind == "switch":
                # Downstream ports are functions of the switch: same vendor/device.
                vendor, device_id = parent.vendor, parent.device_id
            elif d.kind in _BRIDGE_DEFAULTS:
                vendor, device_id = _BRIDGE_DEFAULTS[d.kind]
            else:
                self.error(
                    C.MISSING_SETTING,
                    d.name_span,
                    f"endpoint '{d.name}' has no 'id VENDOR:DEVICE'",
                    "every function needs its vendor and device IDs, e.g. 'id 8086:10d3;'",
                )
                vendor, device_id = 0xFFFF, 0xFFFF
        class_code = d.class_code
        if class_code is None:
            class_code = 0x060400 if d.kind in ast.BRIDGE_KINDS else 0x000000
        f = m.Function(
            d.name,
            d.kind,
            hb,
            parent,
            d.device,
            d.function,
            d.ari,
            d.pcie,
            vendor,
            device_id,
            class_code,
            d.revision,
            d.subsystem,
            [self._bar(b) for b in d.bars],
            self._msi(d.msi),
            self._msix(d.msix),
            d.intx,
            d.policy[0] if d.policy else None,
            d.policy[1] if d.policy else None,
            # A bridge's node is "pci" whatever its class code says: dtc's
            # pci_bridge check wants it for device_type "pci" (found by tests/fuzz).
            d.node_name or ("pci" if d.kind != "endpoint" else m.node_name_for_class(class_code)),
            d.properties,
            d.span,
            d.name_span,
            d.devfn_span,
            d.intx_span,
            pinned_bus=d.bus,
            quirks=d.quirks,
        )
        if d.sriov is not None:
            sv = d.sriov
            f.sriov = m.Sriov(
                sv.total_vfs,
                sv.num_vfs,
                sv.first_vf_offset,
                sv.vf_stride,
                sv.vf_device if sv.vf_device is not None else device_id,
                [self._bar(b) for b in sv.vf_bars],
                self._msi(sv.vf_msi),
                self._msix(sv.vf_msix),
                sv.vf_policy[0] if sv.vf_policy else None,
                sv.span,
            )
        if f.name not in self.functions:
            self.functions[f.name] = f
        f.children = [self._function(c, hb, f) for c in d.children]
        f.children.sort(key=lambda c: c.devfn)
        return f

    @staticmethod
    def _bar(b: ast.BarDecl) -> m.Bar:
        return m.Bar(b.index, b.kind, b.prefetchable, b.size, b.fixed is not None, b.span, address=b.fixed)

    @staticmethod
    def _msi(d: ast.MsiCapDecl | None) -> m.MsiCap | None:
        if d is None:
            return None
        off, off_span = d.offset if d.offset else (None, None)
        return m.MsiCap(d.vectors, d.is64, d.maskable, d.span, off, off_span)

    @staticmethod
    def _msix(d: ast.MsixCapDecl | None) -> m.MsixCap | None:
        if d is None:
            return None
        off, off_span = d.offset if d.offset else (None, None)
        return m.MsixCap(d.table_size, d.table_bir, d.table_offset, d.pba_bir, d.pba_offset, d.span, off, off_span)

    def _check_domains(self) -> None:
        with_domain = [hb for hb in self.host_bridges if hb.domain is not None]
        if with_domain and len(with_domain) != len(self.host_bridges):
            missing = next(hb for hb in self.host_bridges if hb.domain is None)
            self.error(
                C.DOMAIN_MIXED,
                missing.name_span,
                f"host bridge '{missing.name}' has no 'domain' while others do",
                "Linux needs linux,pci-domain on all host bridges or on none",
                notes=(Note("a domain is given here", with_domain[0].span),),
            )
        seen: dict[int, m.HostBridge] = {}
        for hb in with_domain:
            assert hb.domain is not None
            prev = seen.get(hb.domain)
            if prev is not None:
                self.error(
                    C.DOMAIN_DUPLICATE,
                    hb.name_span,
                    f"host bridges '{prev.name}' and '{hb.name}' are both PCI domain {hb.domain}",
                    notes=(Note("first used here", prev.name_span),),
                )
            seen[hb.domain] = hb
        if len(self.host_bridges) > 1 and not with_domain:
            # Without domains, two host bridges must not share bus numbers.
            ranges = sorted(self.host_bridges, key=lambda h: h.bus_first)
            for a, b in itertools.pairwise(ranges):
                if b.bus_first <= a.bus_last:
                    self.error(
                        C.HOST_BRIDGE_OVERLAP,
                        b.name_span,
                        f"buses {b.bus_first:#04x}..{b.bus_last:#04x} of '{b.name}' overlap "
                        f"'{a.name}' ({a.bus_first:#04x}..{a.bus_last:#04x}) in one PCI domain",
                        "give every host bridge its own 'domain N;' or disjoint 'buses'",
                    )

    # ------------------------------------------------------------ enumeration

    def _number_buses(self, hb: m.HostBridge) -> None:
        """Depth-first, in devfn order, as firmware (and Linux) enumerate."""
        # A method, not a nested recursive function: that would be a reference
        # cycle keeping the resolver and the whole program alive (compiles run
        # with the cyclic GC off).
        state = _BusCursor(hb.bus_first + 1)
        hb.bus_used_last = self._number_bus(hb, hb.children, hb.bus_first, state)

    @staticmethod
    def _vf_buses(fns: list[m.Function], bus: int) -> int:
        # Linux reserves the buses SR-IOV VFs will need right after the bus
        # itself, before numbering bridges below it (pci_iov_bus_range).
        top = bus
        for f in fns:
            sv = f.sriov
            if sv is not None and sv.num_vfs > 0:
                last = f.devfn + sv.first_vf_offset + (sv.num_vfs - 1) * sv.vf_stride
                top = max(top, bus + (last >> 8))
        return top - bus

    def _number_bus(self, hb: m.HostBridge, fns: list[m.Function], bus: int, state: _BusCursor) -> int:
        for f in fns:
            f.bus = bus
        vf_buses = self._vf_buses(fns, bus)
        state.next_bus += vf_buses
        highest = bus + vf_buses
        for f in fns:
            if not f.is_bridge:
                continue
            if f.pinned_bus is not None:
                want, span = f.pinned_bus
                if want < state.next_bus:
                    self.error(
                        C.BUS_PIN_CONFLICT,
                        span,
                        f"bus {want:#04x} is already used by enumeration (next free bus is {state.next_bus:#04x})",
                        "pinned buses must follow every bus numbered before them depth-first",
                    )
                else:
                    state.next_bus = want
            if state.next_bus > hb.bus_last:
                if not state.exhausted:
                    self.error(
                        C.BUS_EXHAUSTED,
                        f.name_span,
                        f"no bus number left for the bridge '{f.name}': '{hb.name}' has buses "
                        f"{hb.bus_first:#04x}..{hb.bus_last:#04x}",
                        "widen the host bridge's 'buses' range (and its ECAM size)",
                    )
                    state.exhausted = True
                f.secondary = f.subordinate = hb.bus_last
                continue
            f.secondary = state.next_bus
            state.next_bus += 1
            sub = self._number_bus(hb, f.children, f.secondary, state)
            f.subordinate = max(sub, f.secondary)
            highest = max(highest, f.subordinate)
        return highest

    def _vfs(self, hb: m.HostBridge) -> None:
        for pf in hb.functions():
            sv = pf.sriov
            if sv is None:
                continue
            for i in range(sv.num_vfs):
                rid = pf.rid + sv.first_vf_offset + i * sv.vf_stride
                bus, devfn = rid >> 8, rid & 0xFF
                if bus > hb.bus_last:
                    self.error(
                        C.VF_RID_RANGE,
                        sv.span,
                        f"VF {i} of '{pf.name}' would be at bus {bus:#x}, beyond the host bridge's buses",
                    )
                    break
                name = f"{pf.name}_vf{i}"
                label = name.replace("-", "_").replace(".", "_")
                taken = self.labels.get(label)
                if taken is not None:
                    self.error(
                        C.DUPLICATE_NAME,
                        taken,
                        f"'{name}' is also the name of VF {i} of '{pf.name}'",
                        notes=(Note("the VFs are declared here", sv.span),),
                        hint=f"VFs are named <PF>_vf<N>; rename this function or '{pf.name}'",
                    )
                    break
                self.labels[label] = sv.span
                vf = m.Function(
                    name,
                    "vf",
                    hb,
                    pf.parent,
                    devfn >> 3,
                    devfn & 7,
                    False,
                    True,
                    pf.vendor,
                    sv.vf_device,
                    pf.class_code,
                    pf.revision,
                    pf.subsystem,
                    [m.Bar(b.index, b.kind, b.prefetchable, b.size, False, b.span) for b in sv.vf_bars],
                    sv.vf_msi,
                    sv.vf_msix,
                    0,
                    sv.vf_policy or pf.policy,
                    None,
                    pf.node_name,
                    (),
                    sv.span,
                    pf.name_span,
                    pf.devfn_span,
                )
                vf.bus = bus
                vf.quirks = pf.quirks
                vf.pf = pf
                vf.vf_index = i
                sv.vfs.append(vf)
            if sv.vfs and any(vf.bus != pf.bus for vf in sv.vfs):
                self.error(
                    C.VF_BUS,
                    sv.span,
                    f"VFs of '{pf.name}' reach bus {max(vf.bus for vf in sv.vfs):#04x}; the device tree "
                    f"describes only those on bus {pf.bus:#04x} (the others sit on virtual buses "
                    "with no bridge node)",
                    None,
                )

    def _aliases(self, hb: m.HostBridge) -> None:
        """The requester ID the host bridge sees, after bridges take ownership.

        Linux (pci_for_each_dma_alias): a PCIe-to-PCI bridge forwards with
        (secondary bus, 00.0); a conventional PCI-PCI bridge with its own ID;
        PCIe ports pass IDs through. The topmost alias is the one MSI uses.
        """
        for f in [*hb.functions(), *(vf for pf in hb.functions() if pf.sriov for vf in pf.sriov.vfs)]:
            f.dma_alias = f.rid
            f.dma_alias_of = None
            up = f.parent
            while up is not None:
                if up.kind == "pcie-to-pci-bridge":
                    f.dma_alias = up.secondary << 8
                    f.dma_alias_of = up
                elif up.kind == "pci-bridge" and not up.pcie:
                    f.dma_alias = up.rid
                    f.dma_alias_of = up
                up = up.parent

    # ------------------------------------------------------------ BAR placement

    def _resource_of(self, hb: m.HostBridge, bar: m.Bar) -> m.ResourceClass:
        if bar.kind == "io":
            return "io"
        pref = hb.pref_window()
        if bar.prefetchable and pref is not None:
            if pref.kind == "mem64" and bar.kind == "mem32":
                return "mem"  # a 32-bit BAR cannot live in a 64-bit window
            return "pref"
        return "mem"

    def _place_bars(self, hb: m.HostBridge) -> None:
        fns = hb.functions()
        for f in fns:
            for b in f.bars:
                b.resource = self._resource_of(hb, b)
            if f.sriov:
                for vf in f.sriov.vfs:
                    for b in vf.bars:
                        b.resource = self._resource_of(hb, b)
        resources: tuple[m.ResourceClass, ...] = ("io", "mem", "pref")
        for resource in resources:
            items = self._items(hb.children, resource)
            if not items:
                continue
            window = hb.window_for(resource)
            if window is None:
                first = self._first_bar(hb.children, resource)
                kind = {"io": "io", "mem": "mem32", "pref": "mem64 prefetchable"}[resource]
                self.error(
                    C.NO_WINDOW,
                    first.span if first else hb.span,
                    f"host bridge '{hb.name}' has no {kind} window for this BAR",
                    f"add 'window {kind} cpu ADDRESS size SIZE;' to '{hb.name}'",
                )
                continue
            # Like firmware and Linux (PCIBIOS_MIN_IO), leave I/O below 0x1000
            # alone: legacy ISA ports, and a zero BAR reads as unassigned.
            start = max(window.pci, 0x1000) if resource == "io" else window.pci
            end = self._layout(items, start, window.pci_end, resource, hb)
            if end is not None and end > window.pci_end:
                self.error(
                    C.WINDOW_FULL,
                    window.span,
                    f"the {window.kind} window of '{hb.name}' holds {window.size:#x} bytes; "
                    f"its BARs and bridge windows need {end - window.pci:#x}",
                    "enlarge the window or shrink BARs",
                )

    def _first_bar(self, fns: list[m.Function], res: m.ResourceClass) -> m.Bar | None:
        for f in fns:
            for b in f.bars:
                if b.resource == res:
                    return b
            got = self._first_bar(f.children, res)
            if got:
                return got
        return None

    def _items(self, fns: Iterable[m.Function], res: m.ResourceClass) -> list[_Item]:
        items: list[_Item] = []
        for f in fns:
            for b in f.bars:
                if b.resource != res:
                    continue
                size = _pow2(max(b.size, 16 if b.kind != "io" else 4))
                items.append(_Item(size, size, b.address if b.fixed else None, bar=b))
            if f.sriov and f.sriov.vfs:
                # The SR-IOV capability has one VF BAR per index; VF n uses
                # base + n * size, so all VFs' copies are placed as one block.
                for j, vb in enumerate(f.sriov.vf_bars):
                    copies = [vf.bars[j] for vf in f.sriov.vfs]
                    if copies[0].resource != res:
                        continue
                    size = _pow2(max(vb.size, 16 if vb.kind != "io" else 4))
                    items.append(_Item(size * len(copies), size, None, vf_bars=copies))
            if f.is_bridge:
                nonempty, low = self._subtree(f, res)
                if nonempty:
                    items.append(
                        _Item(0, _GRANULE[res], (low & ~(_GRANULE[res] - 1)) if low is not None else None, bridge=f)
                    )
        return items

    def _subtree(self, bridge: m.Function, res: m.ResourceClass) -> tuple[bool, int | None]:
        """(anything of this class behind the bridge?, lowest fixed address there), memoised."""
        key = (id(bridge), res)
        got = self._subtrees.get(key)
        if got is None:
            nonempty = False
            low: int | None = None
            for f in bridge.children:
                bars = list(f.bars) + ([b for vf in f.sriov.vfs for b in vf.bars] if f.sriov else [])
                for b in bars:
                    if b.resource == res:
                        nonempty = True
                        if b.fixed and b.address is not None:
                            low = b.address if low is None else min(low, b.address)
                if f.is_bridge:
                    sub_nonempty, sub_low = self._subtree(f, res)
                    nonempty = nonempty or sub_nonempty
                    if sub_low is not None:
                        low = sub_low if low is None else min(low, sub_low)
            got = (nonempty, low)
            self._subtrees[key] = got
        return got

    def _layout(self, items: list[_Item], start: int, limit: int, res: m.ResourceClass, hb: m.HostBridge) -> int | None:
        """Place items in [start, limit); fixed ones first, the rest first-fit by
        descending alignment. Returns the end of the used range."""
        busy: list[tuple[int, int, _Item]] = []
        end = start
        for it in sorted((i for i in items if i.fixed is not None), key=lambda i: i.fixed or 0):
            assert it.fixed is not None
            if it.bar is not None and not (start <= it.fixed and it.fixed + it.size <= limit):
                continue  # outside the window: E407 reports it, it takes no room here
            if it.bridge is not None:
                sub_end = self._place_bridge(it.bridge, it.fixed, res, hb)
                size = _round_up(sub_end - it.fixed, _GRANULE[res])
                it.size = size
            busy.append((it.fixed, it.fixed + it.size, it))
            end = max(end, it.fixed + it.size)
        busy.sort(key=lambda x: x[0])
        for a, b in itertools.pairwise(busy):
            if b[0] < a[1]:
                self._overlap(a[2], b[2])
        floating = [i for i in items if i.fixed is None]
        for it in floating:
            if it.bridge is not None:
                # Lay the subtree out at 0 to learn its size (no fixed BAR
                # inside, so the layout only shifts); measured once per bridge.
                key = (id(it.bridge), res)
                measured = self._measured.get(key)
                if measured is None:
                    sub_end = self._place_bridge(it.bridge, 0, res, hb, dry=True)
                    measured = (_round_up(max(sub_end, 1), _GRANULE[res]), self._max_align(it.bridge, res))
                    self._measured[key] = measured
                it.size = measured[0]
                it.align = max(it.align, measured[1])
        floating.sort(key=lambda i: (-i.align, -i.size))
        # Descending alignment: a cursor packs them; only fixed ranges need skipping.
        fixed_ranges = [(lo, hi) for lo, hi, _ in busy]
        cursor = start
        for it in floating:
            base = _round_up(cursor, it.align)
            for lo, hi in fixed_ranges:
                if base + it.size <= lo:
                    break
                if hi > base:
                    base = _round_up(hi, it.align)
            cursor = base + it.size
            it.fixed = base
            if it.vf_bars is not None:
                for n, vb in enumerate(it.vf_bars):
                    vb.address = base + n * it.align
            elif it.bar is not None:
                it.bar.address = base
            else:
                assert it.bridge is not None
                self._place_bridge(it.bridge, base, res, hb)
            end = max(end, base + it.size)
        return end

    def _max_align(self, f: m.Function, res: m.ResourceClass) -> int:
        key = (id(f), res)
        cached = self._aligns.get(key)
        if cached is not None:
            return cached
        best = _GRANULE[res]
        for it in self._items(f.children, res):
            if it.bar is not None or it.vf_bars is not None:  # a VF BAR block is aligned to one VF BAR
                best = max(best, it.align)
            elif it.bridge is not None:
                best = max(best, self._max_align(it.bridge, res))
        self._aligns[key] = best
        return best

    def _place_bridge(
        self, bridge: m.Function, base: int, res: m.ResourceClass, hb: m.HostBridge, dry: bool = False
    ) -> int:
        items = self._items(bridge.children, res)
        saved = (
            (
                [(i.bar, i.bar.address) for i in items if i.bar is not None]
                + [(b, b.address) for i in items if i.vf_bars for b in i.vf_bars]
            )
            if dry
            else []
        )
        end = self._layout(items, base, 1 << 64, res, hb) or base
        size = _round_up(max(end - base, 1), _GRANULE[res])
        if dry:
            for bar, addr in saved:
                bar.address = addr
        else:
            bridge.windows = [w for w in bridge.windows if w.resource != res]
            bridge.windows.append(m.BridgeWindow(res, base, size))
        return base + size

    def _overlap(self, a: _Item, b: _Item) -> None:
        def where(i: _Item) -> Span:
            if i.bar is not None:
                return i.bar.span
            assert i.bridge is not None
            return i.bridge.name_span

        self.error(C.BAR_OVERLAP, where(b), "fixed BAR addresses overlap", notes=(Note("overlaps this one", where(a)),))

    # ------------------------------------------------------------ policies, PEs, partitions

    def _policies(self) -> dict[str, m.Policy]:
        out: dict[str, m.Policy] = {}
        for d in self.p.policies:
            if d.name in out:
                self.error(
                    C.DUPLICATE_NAME,
                    d.span,
                    f"policy '{d.name}' defined twice",
                    notes=(Note("first defined here", out[d.name].span),),
                )
                continue
            prefer = tuple(p[0] for p in d.prefer) or ("msix", "msi", "intx")
            out[d.name] = m.Policy(
                d.name,
                prefer,
                _vector_count(d.vectors) if d.vectors else _ASK_WHAT_IT_HAS,
                d.up_front,
                d.on_short,
                d.span,
                tuple((mech, _vector_count(v)) for mech, v in d.vectors_for),
            )
        if "default" not in out:
            out["default"] = m.Policy(
                "default", ("msix", "msi", "intx"), _ASK_WHAT_IT_HAS, False, "degrade", BUILTIN
            )
        return out

    def _rules(self, policies: dict[str, m.Policy]) -> list[m.PolicyRule]:
        rules: list[m.PolicyRule] = []
        for a in self.p.applies:
            pol = policies.get(a.policy)
            if pol is None:
                self.error(
                    C.UNKNOWN_NAME, a.policy_span, f"unknown policy '{a.policy}'", did_you_mean(a.policy, policies)
                )
                continue
            rules.append(m.PolicyRule(pol, a.class_code & a.class_mask, a.class_mask, a.span))
        return rules

    def _select(self, sel: ast.Selector, pes: list[m.Pe]) -> list[m.Function]:
        if sel.pe:
            pe = next((p for p in pes if p.name == sel.path[0]), None)
            if pe is None:
                self.error(
                    C.UNKNOWN_NAME,
                    sel.span,
                    f"unknown PE '{sel.path[0]}'",
                    did_you_mean(sel.path[0], [p.name for p in pes]),
                )
                return []
            return list(pe.functions)
        name = sel.path[-1]
        hb = next((h for h in self.host_bridges if h.name == name), None)
        if hb is not None and len(sel.path) == 1:
            if not sel.subtree:
                self.error(
                    C.WRONG_KIND,
                    sel.span,
                    f"'{name}' is a host bridge",
                    f"write '{name}.*' for every function below it",
                )
                return []
            out = hb.functions()
            return out + [vf for f in out if f.sriov for vf in f.sriov.vfs]
        f = self.functions.get(name)
        if f is None:
            vf = next((v for pf in self.functions.values() if pf.sriov for v in pf.sriov.vfs if v.name == name), None)
            if vf is not None:
                return [vf]
            self.error(
                C.UNKNOWN_NAME,
                sel.span,
                f"unknown function '{sel.path[-1]}'",
                did_you_mean(name, [*self.functions, *(h.name for h in self.host_bridges)]),
            )
            return []
        # A dotted path must follow the hierarchy: pcie0.rp0.nvme0.
        if len(sel.path) > 1:
            chain = [f.name]
            up = f.parent
            while up is not None:
                chain.append(up.name)
                up = up.parent
            chain.append(f.host.name)
            expected = list(reversed(chain))
            if list(sel.path) != expected[len(expected) - len(sel.path) :]:
                self.error(
                    C.UNKNOWN_NAME,
                    sel.span,
                    f"'{'.'.join(sel.path)}' is not a path in the topology",
                    f"'{name}' is at {'.'.join(expected)}",
                )
                return []
        if sel.vfs is not None:
            if f.sriov is None:
                self.error(C.WRONG_KIND, sel.span, f"'{name}' has no SR-IOV capability")
                return []
            lo, hi = sel.vfs
            if hi >= len(f.sriov.vfs):
                self.error(C.NUMBER_RANGE, sel.span, f"'{name}' enables {len(f.sriov.vfs)} VFs; VF {hi} does not exist")
                return []
            return f.sriov.vfs[lo : hi + 1]
        if sel.subtree:
            out = f.walk()
            return out + [vf for x in out if x.sriov for vf in x.sriov.vfs]
        return [f]

    def _pes(self) -> list[m.Pe]:
        pes: list[m.Pe] = []
        for d in self.p.pes:
            if any(p.name == d.name for p in pes):
                self.error(C.DUPLICATE_NAME, d.span, f"PE '{d.name}' defined twice")
                continue
            fns: list[m.Function] = []
            for s in d.members:
                if s.pe:
                    self.error(C.WRONG_KIND, s.span, "a PE holds functions, not other PEs")
                    continue
                fns.extend(self._select(s, pes))
            pe = m.Pe(d.name, _unique(fns), d.total_msi[0] if d.total_msi else None, d.span)
            if pe.total_msi is not None:
                pe.anchor = self._pe_anchor(pe)
                if pe.anchor is None:
                    self.error(
                        C.PE_ANCHOR,
                        d.total_msi[1] if d.total_msi else d.span,
                        f"PE '{d.name}' has 'total-msi', but no bridge holds exactly its functions",
                        hint="Linux looks for ibm,pe-total-#msi on the device or a node above it; a PE's "
                        "total goes on the bridge above its functions, so the PE must be 'owns BRIDGE.*'",
                    )
            pes.append(pe)
        return pes

    def _pe_anchor(self, pe: m.Pe) -> m.Function | None:
        members = {id(f) for f in pe.functions if not f.is_bridge}
        if not members:
            return None
        best: m.Function | None = None
        for hb in self.host_bridges:
            for f in hb.functions():
                if not f.is_bridge:
                    continue
                below = {id(g) for g in f.walk()[1:] if not g.is_bridge}
                below |= {id(v) for g in f.walk()[1:] if g.sriov for v in g.sriov.vfs}
                if below == members:
                    best = f  # deepest match wins: walk() is pre-order
        return best

    def _partitions(self, pes: list[m.Pe]) -> list[m.Partition]:
        out: list[m.Partition] = []
        for d in self.p.partitions:
            if any(p.name == d.name for p in out) or d.name == "system":
                self.error(
                    C.DUPLICATE_NAME,
                    d.span,
                    f"partition '{d.name}' defined twice"
                    if d.name != "system"
                    else "'system' is the name of the whole-machine tree",
                )
                continue
            fns: list[m.Function] = []
            owned_pes: list[m.Pe] = []
            for s in d.owns:
                if s.pe:
                    pe = next((p for p in pes if p.name == s.path[0]), None)
                    if pe is not None:
                        owned_pes.append(pe)
                fns.extend(self._select(s, pes))
            out.append(
                m.Partition(
                    d.name,
                    d.cpus,
                    _unique(fns),
                    owned_pes,
                    d.msi_budget[0] if d.msi_budget else None,
                    d.span,
                    d.stub_prefix,
                )
            )
        return out


def _unique(fns: list[m.Function]) -> list[m.Function]:
    seen: set[int] = set()
    out: list[m.Function] = []
    for f in fns:
        if id(f) not in seen:
            seen.add(id(f))
            out.append(f)
    return out


def _pow2(n: int) -> int:
    return 1 << (n - 1).bit_length() if n > 1 else 1


def _round_up(n: int, align: int) -> int:
    return (n + align - 1) // align * align


def resolve(program: ast.Program, sink: DiagnosticSink, source_name: str) -> m.Machine:
    return Resolver(program, sink, source_name).resolve()
