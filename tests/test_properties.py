"""Properties of random valid topologies (Hypothesis).

Each example is a random, valid .msi machine: one or two ECAM host bridges,
each in its own PCI domain, with random trees of root ports, switches with
downstream ports, PCI-PCI and PCIe-to-PCI bridges, and endpoints with random
multi-function layouts (function 0 always present), BAR sets, MSI, MSI-X
(table and PBA in BARs big enough for them) and INTx pins. It is compiled in
process, and:

* the compiler reports no diagnostic at all;
* dtc reads the DTB without a warning and compiles our DTS to the same bytes,
  and the PCI encodings of the DTB hold (tests.conftest.pci_tree_problems);
* requester IDs are unique per domain;
* bridge bus ranges nest inside the parent's, never overlap between siblings,
  and a bridge's secondary bus is above its own bus;
* every BAR is aligned to its size, inside a host-bridge window of its class
  (I/O in I/O; a non-prefetchable BAR never in a prefetchable window; a 32-bit
  BAR below 4 GiB) and inside the windows of every bridge above it; no bridge
  window claims a BAR that is not below it; no two BARs overlap.
"""

from __future__ import annotations

import itertools
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from dtmsi import model as m
from dtmsi.diagnostics import render_text
from dtmsi.driver import compile_file
from dtmsi.options import CompileOptions
from tests.conftest import RunDtc, pci_tree_problems, read_nodes

Kind = Literal["endpoint", "root-port", "switch", "downstream", "pci-bridge", "pcie-to-pci-bridge"]
BarKind = Literal["io", "mem32", "mem64"]
PrefWindow = Literal["none", "mem64", "mem32"]

MAX_BRIDGES = 10  # per host bridge: keeps bus numbers and I/O windows (4 KiB per bridge) ample
MAX_DEPTH = 4
CLASSES = (0x020000, 0x010802, 0x030000, 0x0C0330, 0x078000, 0x120000, 0x040100, 0x010601)
IDS = ("8086:10d3", "144d:a808", "1af4:1041", "10de:1eb8", "1b36:0010", "15b3:101b")


@dataclass
class Bar:
    index: int
    kind: BarKind
    prefetchable: bool
    size: int


@dataclass
class Fn:
    kind: Kind
    device: int
    function: int
    ident: str = "8086:10d3"
    class_code: int = 0x020000
    bars: list[Bar] = field(default_factory=list)
    msi: tuple[int, bool, bool] | None = None  # vectors, addr64, maskable
    msix: tuple[int, int, int, int, int] | None = None  # size, table bir/offset, pba bir/offset
    intx: int = 0
    pcie: bool | None = None  # pci-bridge only: 'pcie;' when True
    children: list[Fn] = field(default_factory=list)


@dataclass
class Host:
    domain: int
    first_bus: int
    last_bus: int
    has_io: bool
    io_pci: int
    pref: PrefWindow
    its: int  # which ITS the msi-map targets
    spi: int
    spi_count: int
    swizzle: bool
    children: list[Fn]


@dataclass
class Topology:
    hosts: list[Host]
    two_its: bool


@dataclass
class Budget:
    bridges: int = 0


# ---------------------------------------------------------------- strategies


def _pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


@st.composite
def bars_and_caps(draw: st.DrawFn, has_io: bool, pref: PrefWindow) -> Fn:
    """An endpoint function's BARs, MSI, MSI-X and INTx pin (device/function set later)."""
    fn = Fn("endpoint", 0, 0, ident=draw(st.sampled_from(IDS)),
            class_code=draw(st.sampled_from(CLASSES)))
    slot = 0
    kinds: list[str] = ["none", "mem32", "mem64"] + (["io"] if has_io else [])
    while slot < 6:
        kind = draw(st.sampled_from(kinds))
        if kind == "none":
            slot += 1
            continue
        if kind == "mem64" and slot == 5:
            kind = "mem32"
        if kind == "io":
            fn.bars.append(Bar(slot, "io", False, 1 << draw(st.integers(2, 8))))
        else:
            prefetchable = draw(st.booleans())
            big = prefetchable and kind == "mem64" and pref == "mem64"
            size = 1 << draw(st.integers(4, 26 if big else 22))
            fn.bars.append(Bar(slot, "mem64" if kind == "mem64" else "mem32", prefetchable, size))
        slot += 2 if kind == "mem64" else 1
    if draw(st.booleans()):
        fn.msi = (1 << draw(st.integers(0, 5)), draw(st.booleans()), draw(st.booleans()))
    if draw(st.booleans()):
        mem = [b for b in fn.bars if b.kind != "io"]
        if not mem:
            used = {s for b in fn.bars
                    for s in ((b.index, b.index + 1) if b.kind == "mem64" else (b.index,))}
            free = [s for s in range(6) if s not in used]
            if free:
                mem = [Bar(free[0], "mem32", False, 4096)]
                fn.bars.append(mem[0])
                fn.bars.sort(key=lambda b: b.index)
        if mem:
            n = draw(st.one_of(st.integers(1, 70), st.sampled_from([128, 256, 2048])))
            table = draw(st.sampled_from(mem))
            toff = draw(st.sampled_from([0, 0x800, 0x2000]))
            pba = draw(st.sampled_from(mem))
            if pba is table:
                poff = (toff + 16 * n + 7) // 8 * 8
                if draw(st.booleans()):
                    poff = (poff + 0xFFF) // 0x1000 * 0x1000
            else:
                poff = 0
            table.size = max(table.size, _pow2(toff + 16 * n))
            pba.size = max(pba.size, _pow2(poff + 8 * ((n + 63) // 64)))
            fn.msix = (n, table.index, toff, pba.index, poff)
    fn.intx = draw(st.integers(0, 4))
    if fn.msi is None and fn.msix is None and fn.intx == 0:
        fn.intx = 1  # a function with no interrupt at all is warned about (W612)
    return fn


@st.composite
def endpoint_device(draw: st.DrawFn, device: int, has_io: bool, pref: PrefWindow) -> list[Fn]:
    """One device: function 0 plus a random set of functions 1..7."""
    functions = [0, *sorted(draw(st.sets(st.integers(1, 7), max_size=3)))]
    out = []
    for f in functions:
        fn = draw(bars_and_caps(has_io, pref))
        fn.device, fn.function = device, f
        out.append(fn)
    return out


@st.composite
def bridge(draw: st.DrawFn, kind: Kind, device: int, depth: int, budget: Budget, has_io: bool,
           pref: PrefWindow) -> Fn:
    budget.bridges += 1
    fn = Fn(kind, device, 0)
    if kind == "pci-bridge" and draw(st.booleans()):
        fn.pcie = True
    below: Literal["link", "switch", "conventional"] = (
        "switch" if kind == "switch"
        else "link" if kind in ("root-port", "downstream") else "conventional")
    fn.children = draw(bus(below, depth + 1, budget, has_io, pref))
    return fn


@st.composite
def bus(draw: st.DrawFn, what: Literal["root", "link", "switch", "conventional"], depth: int,
        budget: Budget, has_io: bool, pref: PrefWindow) -> list[Fn]:
    """The functions on one bus. A PCIe link (below a root or downstream port)
    carries device 0 only; a switch's internal bus holds downstream ports only."""
    deep = depth >= MAX_DEPTH or budget.bridges >= MAX_BRIDGES
    if what == "link":
        choices: list[str] = ["empty", "endpoint", "endpoint"]
        if not deep:
            choices += ["switch", "pcie-to-pci-bridge", "pci-bridge"]
        choice = draw(st.sampled_from(choices))
        if choice == "empty":
            return []
        if choice == "endpoint":
            return draw(endpoint_device(0, has_io, pref))
        return [draw(bridge(choice, 0, depth, budget, has_io, pref))]  # type: ignore[arg-type]
    if what == "switch":
        if deep:
            return []
        devices = sorted(draw(st.sets(st.integers(0, 31), min_size=1, max_size=3)))
        return [draw(bridge("downstream", d, depth, budget, has_io, pref)) for d in devices
                if budget.bridges < MAX_BRIDGES]
    devices = sorted(draw(st.sets(st.integers(0, 31), min_size=1 if what == "root" else 0,
                                  max_size=4 if what == "root" else 3)))
    out: list[Fn] = []
    for d in devices:
        kinds: list[str] = ["endpoint"]
        if not (depth >= MAX_DEPTH or budget.bridges >= MAX_BRIDGES):
            kinds += ["pci-bridge"] + (["root-port", "root-port", "pcie-to-pci-bridge"]
                                       if what == "root" else [])
        kind = draw(st.sampled_from(kinds))
        if kind == "endpoint":
            out.extend(draw(endpoint_device(d, has_io, pref)))
        else:
            out.append(draw(bridge(kind, d, depth, budget, has_io, pref)))  # type: ignore[arg-type]
    return out


def _count_bridges(fns: list[Fn]) -> int:
    return sum(1 + _count_bridges(f.children) for f in fns if f.kind != "endpoint")


@st.composite
def topologies(draw: st.DrawFn) -> Topology:
    n_hosts = draw(st.integers(1, 2))
    two_its = draw(st.booleans())
    hosts: list[Host] = []
    next_bus = 0
    for i in range(n_hosts):
        has_io = draw(st.booleans())
        pref: PrefWindow = draw(st.sampled_from(["none", "mem64", "mem32"]))
        children = draw(bus("root", 0, Budget(), has_io, pref))
        need = 1 + _count_bridges(children)
        # Each host bridge with its own ITS: bus numbers may repeat; one ITS for
        # both: identity msi-maps need disjoint requester IDs.
        first = draw(st.integers(0, 0x40)) if two_its else next_bus + draw(st.integers(0, 8))
        count = need + draw(st.integers(0, 12))
        hosts.append(Host(
            domain=i, first_bus=first, last_bus=first + count - 1, has_io=has_io,
            io_pci=draw(st.sampled_from([0, 0x1000])), pref=pref, its=i if two_its else 0,
            spi=3 + 4 * i, spi_count=draw(st.sampled_from([4, 4, 1])),
            swizzle=draw(st.booleans()), children=children))
        next_bus = first + count
    return Topology(hosts, two_its)


# ---------------------------------------------------------------- .msi text


def render(topo: Topology) -> str:
    lines = [
        'platform "example,hypothesis" { msi native; }',
        "gic = interrupt-controller gicv3 @ 0x0800_0000 size 64K {",
        "    redistributor @ 0x080a_0000 size 0xf6_0000;",
        "}",
        "its0 = msi-controller gicv3-its @ 0x0808_0000 size 128K { parent gic; }",
    ]
    if topo.two_its:
        lines.append("its1 = msi-controller gicv3-its @ 0x0802_0000 size 128K { parent gic; }")
    counter = [0]
    for i, h in enumerate(topo.hosts):
        nbus = h.last_bus - h.first_bus + 1
        lines += [
            f"host-bridge hb{i} ecam @ {0x40_0000_0000 + i * 0x1_0000_0000:#x} size {nbus}M {{",
            f"    domain {h.domain};",
            f"    buses {h.first_bus:#x}..{h.last_bus:#x};",
            f"    window mem32 cpu {0x4000_0000 + i * 0x4000_0000:#x} size 1G;",
        ]
        if h.has_io:
            lines.append(f"    window io cpu {0x3EFF_0000 - i * 0x10000:#x} pci {h.io_pci:#x} "
                         f"size {0x10000 - h.io_pci:#x};")
        if h.pref == "mem64":
            cpu = 0x80_0000_0000 + i * 0x10_0000_0000
            lines.append(f"    window mem64 prefetchable cpu {cpu:#x} size 64G;")
        elif h.pref == "mem32":
            cpu = 0xC000_0000 + i * 0x0800_0000
            lines.append(f"    window mem32 prefetchable cpu {cpu:#x} size 128M;")
        lines.append(f"    msi map rid {h.first_bus << 8:#06x}..{h.last_bus << 8 | 0xFF:#06x} "
                     f"-> its{h.its};")
        last_spi = h.spi + h.spi_count - 1
        swizzle = "" if h.swizzle else " no-swizzle"
        lines.append(f"    intx -> gic spi {h.spi}..{last_spi} level{swizzle};")
        for f in h.children:
            _render_fn(f, 1, lines, counter)
        lines.append("}")
    return "\n".join(lines) + "\n"


def _render_fn(f: Fn, level: int, lines: list[str], counter: list[int]) -> None:
    pad = "    " * level
    counter[0] += 1
    lines.append(f"{pad}{f.kind} f{counter[0]} @ {f.device:02x}.{f.function:x} {{")
    inner = pad + "    "
    if f.kind == "endpoint":
        lines.append(f"{inner}id {f.ident} class {f.class_code:#08x};")
        for b in f.bars:
            pref = " prefetchable" if b.prefetchable else ""
            lines.append(f"{inner}bar {b.index} {b.kind}{pref} {b.size:#x};")
        if f.msi is not None:
            vectors, addr64, maskable = f.msi
            flags = (" addr64" if addr64 else "") + (" maskable" if maskable else "")
            lines.append(f"{inner}msi {vectors}{flags};")
        if f.msix is not None:
            n, tb, to, pb, po = f.msix
            lines.append(f"{inner}msix {n} table bar {tb} + {to:#x} pba bar {pb} + {po:#x};")
        lines.append(f"{inner}intx {'none' if f.intx == 0 else 'ABCD'[f.intx - 1]};")
    if f.pcie:
        lines.append(f"{inner}pcie;")
    for c in f.children:
        _render_fn(c, level + 1, lines, counter)
    lines.append(f"{pad}}}")


# ---------------------------------------------------------------- the property


def _ancestors(f: m.Function) -> list[m.Function]:
    out = []
    up = f.parent
    while up is not None:
        out.append(up)
        up = up.parent
    return out


def _space(kind: str) -> str:
    return "io" if kind == "io" else "mem"


def check_buses(machine: m.Machine) -> None:
    seen: set[tuple[int, int]] = set()
    for hb in machine.host_bridges:
        for f in hb.functions():
            key = (hb.domain_or_zero, f.rid)
            assert key not in seen, f"requester ID {f.rid:#06x} twice in domain {key[0]}"
            seen.add(key)
            want_bus = f.parent.secondary if f.parent is not None else hb.bus_first
            assert f.bus == want_bus, f"{f.name} on bus {f.bus:#x}, its bus is {want_bus:#x}"
            if not f.is_bridge:
                continue
            lo, hi = ((f.parent.secondary, f.parent.subordinate) if f.parent
                      else (hb.bus_first, hb.bus_last))
            assert f.secondary > f.bus, f"{f.name}: secondary {f.secondary:#x} <= bus {f.bus:#x}"
            assert lo < f.secondary <= f.subordinate <= hi, (
                f"{f.name}: buses {f.secondary:#x}..{f.subordinate:#x} not inside {lo:#x}..{hi:#x}")
        for parent in [None, *[f for f in hb.functions() if f.is_bridge]]:
            kids = hb.children if parent is None else parent.children
            ranges = sorted((c.secondary, c.subordinate, c.name) for c in kids if c.is_bridge)
            for a, b in itertools.pairwise(ranges):
                assert b[0] > a[1], f"sibling bridges {a[2]} and {b[2]} share buses"


_GRANULE = {"io": 0x1000, "mem": 0x100000, "pref": 0x100000}


def _check_bar(hb: m.HostBridge, f: m.Function, b: m.Bar) -> None:
    assert b.address is not None, f"{f.name} BAR {b.index} not placed"
    where = (f"{f.name} BAR {b.index} ({b.kind}{' pref' if b.prefetchable else ''}) "
             f"[{b.address:#x}, {b.address + b.size:#x})")
    assert b.address % b.size == 0, f"{where} not aligned to its size"
    windows = [w for w in hb.windows
               if w.pci <= b.address and b.address + b.size <= w.pci_end
               and (w.kind == "io") == (b.kind == "io")]
    assert windows, f"{where} in no host-bridge window of its space"
    w = windows[0]
    assert b.prefetchable or not w.prefetchable, f"{where} in a prefetchable window"
    assert b.kind != "mem32" or b.address + b.size <= 1 << 32, f"{where} above 4 GiB"
    assert (b.resource == "pref") == w.prefetchable, f"{where}: class {b.resource} in {w.kind}"
    for up in _ancestors(f):
        bw = [x for x in up.windows if x.resource == b.resource]
        assert bw and bw[0].base <= b.address and b.address + b.size <= bw[0].base + bw[0].size, \
            f"{where} outside the {b.resource} window of bridge {up.name}: {bw}"


def _check_bridge_window(hb: m.HostBridge, br: m.Function, w: m.BridgeWindow,
                         placed: list[tuple[str, int, int, m.Function, int]]) -> None:
    what = f"{br.name}: {w.resource} window [{w.base:#x}, {w.base + w.size:#x})"
    granule = _GRANULE[w.resource]
    assert w.base % granule == 0 and w.size % granule == 0, f"{what} not on the bridge granule"
    assert w.resource != "mem" or w.base + w.size <= 1 << 32, f"{what}: 32-bit window above 4 GiB"
    host = hb.window_for(w.resource)
    assert host is not None and host.pci <= w.base and w.base + w.size <= host.pci_end, \
        f"{what} outside the host bridge's window"
    space = "io" if w.resource == "io" else "mem"
    for bar_space, lo, hi, f, index in placed:
        if bar_space == space and lo < w.base + w.size and w.base < hi:
            assert br in _ancestors(f), f"{what} claims {f.name} BAR {index}, not below it"


def check_bars(machine: m.Machine) -> None:
    for hb in machine.host_bridges:
        placed: list[tuple[str, int, int, m.Function, int]] = []
        for f in hb.functions():
            for b in f.bars:
                _check_bar(hb, f, b)
                assert b.address is not None
                placed.append((_space(b.kind), b.address, b.address + b.size, f, b.index))
        placed.sort(key=lambda p: (p[0], p[1]))
        for a, b2 in itertools.pairwise(placed):
            assert a[0] != b2[0] or b2[1] >= a[2], (
                f"BARs overlap: {a[3].name} BAR {a[4]} and {b2[3].name} BAR {b2[4]}")
        for br in hb.functions():
            for w in br.windows:
                _check_bridge_window(hb, br, w, placed)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topo=topologies())
def test_random_valid_topologies(topo: Topology, run_dtc: RunDtc) -> None:
    text = render(topo)
    note(text)
    with tempfile.TemporaryDirectory(prefix="dtmsi-prop-") as tmp:
        src = Path(tmp) / "random.msi"
        src.write_text(text, encoding="utf-8")
        result = compile_file(CompileOptions(input=src))
        diags = list(result.sink)
        assert not diags, "diagnostics for a valid topology:\n" + "\n".join(
            render_text(d) for d in diags)
        assert result.machine is not None
        check_buses(result.machine)
        check_bars(result.machine)
        artifacts = {a.name: a.data for a in result.artifacts}
        dtb = Path(tmp) / "system.dtb"
        dtb.write_bytes(artifacts["system.dtb"])
        proc = run_dtc("-I", "dtb", "-O", "dts", "-o", "/dev/null", dtb)
        assert proc.returncode == 0, f"dtc fails on our DTB:\n{proc.stderr.decode()}"
        assert proc.stderr == b"", f"dtc warns on our DTB:\n{proc.stderr.decode()}"
        dts = Path(tmp) / "system.dts"
        dts.write_bytes(artifacts["system.dts"])
        proc = run_dtc("-I", "dts", "-O", "dtb", dts)
        assert proc.returncode == 0, f"dtc fails on our DTS:\n{proc.stderr.decode()}"
        assert proc.stderr == b"", f"dtc warns on our DTS:\n{proc.stderr.decode()}"
        assert proc.stdout == artifacts["system.dtb"], "dtc compiles our DTS to other bytes"
        problems = pci_tree_problems(read_nodes(artifacts["system.dtb"]))
        assert not problems, "\n".join(problems)
