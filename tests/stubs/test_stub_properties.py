"""Random valid machines (Hypothesis): the C and the Python stub against the simulator.

Each example is a random, valid ``.msi`` machine in one of the three MSI
modes: native (a GICv3 ITS through ``msi map``, ECAM host bridges),
firmware-composed OPAL (``opal phbid`` host bridges with ``msi-ranges``) and
PAPR (``papr buid`` host bridges under the hypervisor). One or two host
bridges in their own PCI domains carry random trees of root ports, switches
with downstream ports, PCI-PCI and PCIe-to-PCI bridges, and endpoints:
multi-function devices, SR-IOV PFs with VFs (some with ARI), random BARs,
MSI (1..32 vectors, 64-bit, maskable, sometimes at a declared offset), MSI-X
(table and PBA in BARs, sometimes at a declared offset), INTx pins and the
stubs' quirks. Policies have random ``prefer`` chains, vector counts (``N``,
``N min M``, ``A..B``, ``cpus + K``, ``requested``) and ``on-short``
behaviours, attached per function, per SR-IOV block or by class; 0 to 3
partitions own the functions (whole DMA-alias groups; under PAPR whole PEs).

Every machine is valid by construction (a compile error fails the test: the
generator or the compiler is wrong). For every stub (one per partition, or
``system``), the Python stub and the C stub (gcc, through dtmsi.sim's
harness) run the same scenario on two identical simulators and:

* make the same hook calls, return the same values and leave the same results
  (``parity``);
* set every function up (``setup_all`` returns 0);
* break none of the simulator's live invariants (no message write to an
  unmasked MSI-X entry, Enable only after the messages, nothing outside the
  partition, under PAPR no address/data/MME write and one ``ibm,change-msi``
  for the whole count before the queries);
* leave every function as allocation.json describes;

and, checked again here on the trace itself: no hook call names a function
outside the partition; no address/data write to an MSI-X entry the stub has
not masked; under PAPR no MSI address/data register or MSI-X address/data
word written at all, and exactly one whole ``ibm,change-msi`` grant before a
function's queries.

The three modes are three tests, so each gets its examples (220 in all, in
about 80 s on two cores: the C harness is built at -O0, two stubs at a time);
each asserts that partitioned machines, SR-IOV, two host bridges, class
rules, declared capability offsets, quirks and the longer ``setup_all,
teardown_all, setup_all`` scenario really occurred.

Bugs this test found (all fixed): ``KNOWN_BUGS`` keeps each one's minimal
machine and ``test_known_bug`` runs them as regression tests (PAPR quotas
below a policy's minimum, vector counts that are not powers of two or round
up beyond the table, OPAL ``msi-ranges`` not aligned to an MSI block, VF BAR
blocks behind a bridge).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from unittest import mock

import pytest
from hypothesis import HealthCheck, Phase, event, find, given, note, settings
from hypothesis import strategies as st

from dtmsi.sim import SimOptions, Simulator, build_c_harness, parse_bdf
from tests.stubs import stubrun
from tests.stubs.stubrun import Compiled, StubFiles, compile_msi, final_state_problems, parity

Mode = Literal["native", "opal", "papr"]
Kind = Literal["endpoint", "root-port", "switch", "downstream", "pci-bridge", "pcie-to-pci-bridge"]
BarKind = Literal["io", "mem32", "mem64"]
Mech = Literal["msix", "msi", "intx"]

# PAPR: the hypervisor dtmsi's prediction assumes (Linux's arithmetic, multi-
# vector MSI, any count granted up to the capability): PowerVM's rules with its
# power-of-two refusal off. The refusal and QEMU's one-vector MSI are
# tests/stubs/test_stub_papr.py's (the stub's policy handling).
POWERVM = SimOptions(powervm=True, powervm_non_pow2="allow")
# The parity and invariants are the point here; the strict-flag compile
# matrix is tests/stubs/test_stub_compile.py. -O0 halves gcc's time.
FAST_CFLAGS = ("-std=c99", "-O0", "-pipe", "-Wall", "-Wextra", "-Werror", "-pedantic")

MAX_BRIDGES = 6  # per host bridge
MAX_DEPTH = 3
MAX_FUNCTIONS = 12  # endpoint functions per host bridge, VFs not counted
IDS = ("8086:10d3", "144d:a808", "1af4:1041", "10de:1eb8", "1b36:0010", "15b3:101b", "1014:034a")
# Class codes no 'apply' rule uses (rules get their own, below).
PLAIN_CLASSES = (0x020000, 0x010802, 0x030000, 0x078000, 0x120000, 0x040100)
RULE_CLASSES = (0x0C0330, 0x010601, 0x028000, 0x088000)
PARTITION_NAMES = ("lpar1", "lpar2", "part-a", "guest_b", "vm0", "io-domain")
NAME_STEMS = ("f", "nic", "ssd", "dev-", "gpu_", "acc")

# Known compiler/simulator disagreements the generator steers around while
# they stand (see the module docstring); False draws them too.

PCIE_CAP = 0x3C  # the simulator's PCI Express capability, placed in the first gap
MSIX_CAP = 12


# ---------------------------------------------------------------- the model drawn


@dataclass
class Bar:
    index: int
    kind: BarKind
    prefetchable: bool
    size: int


@dataclass
class Msi:
    vectors: int
    addr64: bool
    maskable: bool
    offset: int | None = None

    @property
    def size(self) -> int:
        return 10 + (4 if self.addr64 else 0) + (10 if self.maskable else 0)


@dataclass
class Msix:
    size: int
    table_bir: int
    table_offset: int
    pba_bir: int
    pba_offset: int
    offset: int | None = None


@dataclass
class Caps:
    """What one function (or every VF of a PF) has."""

    bars: list[Bar] = field(default_factory=list)
    msi: Msi | None = None
    msix: Msix | None = None
    intx: int = 0
    quirks: tuple[str, ...] = ()


@dataclass
class Sriov:
    total: int
    vfs: int
    offset: int
    stride: int
    vf_id: int
    caps: Caps
    policy: str | None = None


@dataclass
class Fn:
    kind: Kind
    name: str
    device: int
    function: int
    ident: str = "8086:10d3"
    class_code: int = 0x020000
    caps: Caps = field(default_factory=Caps)
    policy: str | None = None
    pcie: bool = False  # pci-bridge: 'pcie;' (passes requester IDs through)
    bridge_class: int | None = None  # bridges: 'class ...;' when set
    sriov: Sriov | None = None
    ari: bool = False
    children: list[Fn] = field(default_factory=list)
    parent: Fn | None = None

    @property
    def is_bridge(self) -> bool:
        return self.kind != "endpoint"

    @property
    def aliasing(self) -> bool:
        """Forwards the requests of everything below with one requester ID."""
        return self.kind == "pcie-to-pci-bridge" or (self.kind == "pci-bridge" and not self.pcie)

    def walk(self) -> Iterator[Fn]:
        yield self
        for c in self.children:
            yield from c.walk()


@dataclass
class Host:
    name: str
    index: int
    first_bus: int
    last_bus: int
    has_io: bool
    its: int
    swizzle: bool
    children: list[Fn]
    msi_base: int = 0  # OPAL msi-ranges
    msi_count: int = 0
    pe_total: int = 0  # PAPR
    phb_id: int = 0  # OPAL

    def walk(self) -> Iterator[Fn]:
        for c in self.children:
            yield from c.walk()


@dataclass
class Policy:
    name: str
    prefer: tuple[Mech, ...]
    vectors: tuple[str, int, int]  # ("requested"|"count"|"range"|"cpus", a, b)
    minimum: int | None
    on_short: Literal["degrade", "fallback", "fail"]
    up_front: bool


@dataclass
class Unit:
    """What goes to one partition whole: a function, a DMA-alias group (the
    subtree of an aliasing bridge), a PE, or a run of VFs."""

    selector: str  # what 'owns' says
    functions: list[Fn]  # endpoints (PFs), for the CPU count of their policies
    vfs: list[tuple[Fn, int]] = field(default_factory=list)  # (PF, VF index)
    host: int = 0


@dataclass
class Partition:
    name: str
    cpus: int | None  # CPU count ('cpus 0..N-1'), None: the platform's
    owns: list[str]
    budget: int | None
    prefix: str | None


@dataclass(repr=False)
class Machine:
    mode: Mode
    cpus: int
    hosts: list[Host]
    two_its: bool
    policies: list[Policy]
    applies: list[tuple[str, int]]
    pes: list[tuple[str, list[str]]]
    partitions: list[Partition]
    platform_prefix: str | None
    tokens: tuple[int, int]  # PAPR change-msi, query-interrupt-source-number
    long_scenario: bool

    def __repr__(self) -> str:
        return f"<{self.mode} machine: its .msi text is printed below>"

    def _repr_pretty_(self, p: object, cycle: bool) -> None:
        """How Hypothesis prints a failing example: its .msi text follows (note())."""
        p.text(repr(self))  # type: ignore[attr-defined]


@dataclass
class Budget:
    bridges: int = 0
    functions: int = 0
    counter: list[int] = field(default_factory=lambda: [0])


# ---------------------------------------------------------------- strategies: functions


def _pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def _name(draw: st.DrawFn, budget: Budget) -> str:
    budget.counter[0] += 1
    return f"{draw(st.sampled_from(NAME_STEMS))}{budget.counter[0]}"


def _layout_fits(msi: Msi | None, msix: Msix | None) -> bool:
    """The simulator's capability layout (declared offsets kept, the PCI
    Express capability and the undeclared ones first-fit from 0x40) has room."""
    placed: list[tuple[int, int]] = []
    wanted: list[tuple[int | None, int]] = [(None, PCIE_CAP)]
    if msi is not None:
        wanted.append((msi.offset, msi.size))
    if msix is not None:
        wanted.append((msix.offset, MSIX_CAP))

    def free(off: int, size: int) -> bool:
        return off + size <= 0x100 and all(off + size <= o or o + s <= off for o, s in placed)

    for off, size in wanted:
        if off is not None:
            if not free(off, size):
                return False
            placed.append((off, size))
    for off, size in wanted:
        if off is None:
            at = 0x40
            while not free(at, size):
                at += 4
                if at + size > 0x100:
                    return False
            placed.append((at, size))
    return True


@st.composite
def caps(draw: st.DrawFn, has_io: bool, mode: Mode, vf: bool = False) -> Caps:
    """BARs, MSI, MSI-X, INTx pin and quirks of one function (or of every VF)."""
    c = Caps()
    slot = 0
    kinds: list[str] = ["none", "mem32", "mem64", "mem64"] + (["io"] if has_io and not vf else [])
    while slot < 6 and len(c.bars) < 3:
        kind = draw(st.sampled_from(kinds))
        if kind == "none":
            slot += draw(st.integers(1, 3))
            continue
        if kind == "mem64" and slot == 5:
            kind = "mem32"
        if kind == "io":
            c.bars.append(Bar(slot, "io", False, 1 << draw(st.integers(2, 8))))
        else:
            pref = kind == "mem64" and draw(st.booleans())
            size = 1 << draw(st.integers(4, 24 if pref else 18))
            c.bars.append(Bar(slot, kind, pref, size))  # type: ignore[arg-type]
        slot += 2 if kind == "mem64" else 1
    if draw(st.integers(0, 3)) > 0 or vf:
        n = draw(st.one_of(st.integers(1, 24), st.sampled_from([32, 64, 128])))
        mem = [b for b in c.bars if b.kind != "io"]
        if not mem:
            used = {s for b in c.bars for s in ((b.index, b.index + 1) if b.kind == "mem64" else (b.index,))}
            free_slot = next(s for s in range(6) if s not in used)
            mem = [Bar(free_slot, "mem32", False, 0x1000)]
            c.bars.append(mem[0])
            c.bars.sort(key=lambda b: b.index)
        table = draw(st.sampled_from(mem))
        toff = draw(st.sampled_from([0, 0x800, 0x2000]))
        pba = draw(st.sampled_from(mem))
        if pba is table:
            poff = (toff + 16 * n + 7) // 8 * 8
            if draw(st.booleans()):
                poff = (poff + 0xFFF) // 0x1000 * 0x1000
        else:
            poff = draw(st.sampled_from([0, 0x1000]))
        table.size = max(table.size, _pow2(toff + 16 * n))
        pba.size = max(pba.size, _pow2(poff + 8 * ((n + 63) // 64)))
        c.msix = Msix(n, table.index, toff, pba.index, poff)
    if draw(st.integers(0, 2)) > 0 or (c.msix is None and vf):
        c.msi = Msi(1 << draw(st.integers(0, 5)), draw(st.booleans()), draw(st.booleans()))
    # Declared capability offsets (dword aligned, in 0x40..0xff, apart), kept
    # only where the simulator's layout still has room for the others.
    if c.msi is not None and draw(st.integers(0, 3)) == 0:
        c.msi.offset = draw(st.sampled_from(range(0x40, 0x100 - c.msi.size + 1, 4)))
    if c.msix is not None and draw(st.integers(0, 3)) == 0:
        c.msix.offset = draw(st.sampled_from(range(0x40, 0x100 - MSIX_CAP + 1, 4)))
    if not _layout_fits(c.msi, c.msix):
        if c.msix is not None:
            c.msix.offset = None
        if not _layout_fits(c.msi, c.msix) and c.msi is not None:
            c.msi.offset = None
    if not vf:
        c.intx = draw(st.integers(0, 4))
        if c.msi is None and c.msix is None and c.intx == 0:
            c.intx = 1
        quirks = draw(st.sets(st.sampled_from(["no-intx-disable", "no-64bit-msi"]), max_size=2))
        if draw(st.integers(0, 2)) == 0:
            c.quirks = tuple(sorted(quirks))
    return c


@st.composite
def endpoint_device(draw: st.DrawFn, device: int, has_io: bool, budget: Budget, mode: Mode) -> list[Fn]:
    """One device: function 0 and, room allowing, a few of functions 1..7."""
    room = max(0, MAX_FUNCTIONS - budget.functions - 1)
    functions = [0, *sorted(draw(st.sets(st.integers(1, 7), max_size=min(2, room))))]
    out = []
    for f in functions:
        fn = Fn("endpoint", _name(draw, budget), device, f, ident=draw(st.sampled_from(IDS)),
                class_code=draw(st.sampled_from(PLAIN_CLASSES)), caps=draw(caps(has_io, mode)))
        out.append(fn)
    budget.functions += len(out)
    return out


@st.composite
def sriov_pf(draw: st.DrawFn, has_io: bool, budget: Budget, mode: Mode) -> Fn:
    """An SR-IOV PF at device 0 of a PCIe link, its VFs at the following
    functions (with ARI past function 7)."""
    budget.functions += 1
    pf = Fn("endpoint", _name(draw, budget), 0, 0, ident=draw(st.sampled_from(IDS)),
            class_code=draw(st.sampled_from(PLAIN_CLASSES)), caps=draw(caps(has_io, mode)))
    vfs = draw(st.integers(1, 8))
    if draw(st.booleans()) or vfs == 8:
        pf.ari = True  # ARI: VFs past function 7 of device 0
        offset, stride = draw(st.sampled_from([(1, 1), (2, 1), (4, 2)]))
    else:
        offset, stride = 1, 1  # functions 1..7 of device 0
        vfs = min(vfs, 7)
    total = vfs + draw(st.integers(0, 8))
    vf_caps = draw(caps(False, mode, vf=True))
    pf.sriov = Sriov(total, vfs, offset, stride, 0x1000 + draw(st.integers(0, 0xFFF)), vf_caps)
    return pf


@st.composite
def bridge(draw: st.DrawFn, kind: Kind, device: int, depth: int, budget: Budget, has_io: bool, mode: Mode,
           aliased: bool) -> Fn:
    budget.bridges += 1
    fn = Fn(kind, _name(draw, budget), device, 0)
    if kind == "pci-bridge" and draw(st.booleans()):
        fn.pcie = True
    if mode == "papr" or draw(st.integers(0, 3)) == 0:
        fn.bridge_class = draw(st.sampled_from([0x060400, 0x060400, 0x060401]))
    below: Literal["link", "switch", "conventional"] = (
        "switch" if kind == "switch" else "link" if kind in ("root-port", "downstream") else "conventional")
    fn.children = draw(bus(below, depth + 1, budget, has_io, mode, aliased or fn.aliasing))
    return fn


@st.composite
def bus(draw: st.DrawFn, what: Literal["root", "link", "switch", "conventional"], depth: int, budget: Budget,
        has_io: bool, mode: Mode, aliased: bool = False) -> list[Fn]:
    """The functions on one bus. A PCIe link (below a root or downstream port)
    carries device 0 only; a switch's internal bus holds downstream ports only."""
    deep = depth >= MAX_DEPTH or budget.bridges >= MAX_BRIDGES
    full = budget.functions >= MAX_FUNCTIONS
    if what == "link":
        choices: list[str] = ["empty"] + ([] if full else ["endpoint", "endpoint"])
        if not full and not aliased:
            choices += ["sriov", "sriov"]
        if not deep:
            choices += ["switch", "pcie-to-pci-bridge", "pci-bridge"]
        choice = draw(st.sampled_from(choices))
        if choice == "empty":
            return []
        if choice == "endpoint":
            return draw(endpoint_device(0, has_io, budget, mode))
        if choice == "sriov":
            return [draw(sriov_pf(has_io, budget, mode))]
        return [draw(bridge(choice, 0, depth, budget, has_io, mode, aliased))]  # type: ignore[arg-type]
    if what == "switch":
        if deep:
            return []
        devices = sorted(draw(st.sets(st.integers(0, 31), min_size=1, max_size=3)))
        return [draw(bridge("downstream", d, depth, budget, has_io, mode, aliased)) for d in devices
                if budget.bridges < MAX_BRIDGES]
    devices = sorted(draw(st.sets(st.integers(0, 31), min_size=1 if what == "root" else 0,
                                  max_size=4 if what == "root" else 3)))
    out: list[Fn] = []
    for d in devices:
        kinds: list[str] = [] if budget.functions >= MAX_FUNCTIONS else ["endpoint", "endpoint"]
        if not (depth >= MAX_DEPTH or budget.bridges >= MAX_BRIDGES):
            kinds += ["pci-bridge"] + (["root-port", "root-port", "pcie-to-pci-bridge"] if what == "root" else [])
        if not kinds:
            break
        kind = draw(st.sampled_from(kinds))
        if kind == "endpoint":
            out.extend(draw(endpoint_device(d, has_io, budget, mode)))
        else:
            out.append(draw(bridge(kind, d, depth, budget, has_io, mode, aliased)))  # type: ignore[arg-type]
    return out


def _link_parents(fns: list[Fn], parent: Fn | None = None) -> None:
    for f in fns:
        f.parent = parent
        _link_parents(f.children, f)


def _count_bridges(fns: list[Fn]) -> int:
    return sum(1 + _count_bridges(f.children) for f in fns if f.is_bridge)


# ---------------------------------------------------------------- strategies: policies


@st.composite
def policy(draw: st.DrawFn, name: str) -> Policy:
    mechs: list[Mech] = ["msix", "msi", "intx"]
    order = draw(st.permutations(mechs))
    prefer = tuple(order[: draw(st.integers(1, 3))])
    kind = draw(st.sampled_from(["requested", "count", "count", "range", "cpus"]))
    a = b = 0
    if kind == "count":
        a = draw(st.integers(1, 40))
    elif kind == "range":
        a = draw(st.integers(1, 8))
        b = a + draw(st.integers(0, 24))
    elif kind == "cpus":
        a, b = draw(st.integers(1, 2)), draw(st.integers(0, 2))
    minimum = draw(st.one_of(st.none(), st.integers(1, 16))) if kind != "requested" else None
    return Policy(name, prefer, (kind, a, b), minimum, draw(st.sampled_from(["degrade", "fallback", "fail"])),
                  draw(st.booleans()))


def _capacity(c: Caps, mech: Mech) -> int:
    if mech == "msix":
        return c.msix.size if c.msix else 0
    return c.msi.vectors if c.msi else 0


def _wanted(p: Policy, capacity: int, cpus: int) -> tuple[int, int]:
    """alloc.Allocator.wanted: (vectors wanted, minimum acceptable)."""
    kind, a, b = p.vectors
    want = capacity if kind == "requested" else a * cpus + b if kind == "cpus" else b if kind == "range" else a
    want = max(want, 1)
    minimum = p.minimum if p.minimum is not None else a if kind == "range" else want if p.on_short == "fail" else 1
    return want, max(1, min(minimum, want))


def policy_fits(p: Policy, c: Caps, explicit: bool, vf: bool, cpus: int, mode: Mode) -> bool:
    """The allocator gives the function a mechanism without an error (E503,
    E607, E608, E609) under ``p`` (alloc.Allocator.allocate, transcribed)."""
    have = {"msix": c.msix is not None, "msi": c.msi is not None, "intx": c.intx > 0 and not vf}
    if explicit and not all(have[m] for m in p.prefer):
        return False
    chain = [m for m in p.prefer if have[m]]
    if not chain:
        return False
    for i, mech in enumerate(chain):
        if mech == "intx":
            return True
        last = i == len(chain) - 1
        capacity = _capacity(c, mech)
        want, minimum = _wanted(p, capacity, cpus)
        grant = min(want, capacity)
        if grant < want:
            if p.on_short == "fallback" and not last:
                continue
            if p.on_short == "fail" or grant < minimum:
                if not last:
                    continue
                return False
        return True
    return False


# ---------------------------------------------------------------- strategies: machines


def _aliasing_root(f: Fn) -> Fn | None:
    top = None
    up = f.parent
    while up is not None:
        if up.aliasing:
            top = up
        up = up.parent
    return top


def _units(host: Host, mode: Mode, draw: st.DrawFn, pes: list[tuple[str, list[str]]]) -> list[Unit]:
    """The host's functions in the pieces partitions take whole: a DMA-alias
    group (native: one DeviceID; PAPR: one PE) as 'BRIDGE.*', the functions of
    a device (under PAPR sometimes a PE), single functions, runs of VFs."""
    units: list[Unit] = []
    groups: dict[int, list[Fn]] = {}
    roots: dict[int, Fn] = {}
    devices: dict[tuple[int, int], list[Fn]] = {}
    for f in host.walk():
        if f.is_bridge:
            continue
        root = _aliasing_root(f)
        if root is not None:
            groups.setdefault(id(root), []).append(f)
            roots[id(root)] = root
            continue
        devices.setdefault((id(f.parent), f.device), []).append(f)
    for key, members in groups.items():
        root = roots[key]
        selector = f"{root.name}.*"
        if mode == "papr":
            pe = f"pe_{root.name.replace('-', '_')}"
            pes.append((pe, [selector]))
            selector = f"pe {pe}"
        units.append(Unit(selector, members, host=host.index))
    for members in devices.values():
        if mode == "papr" and len(members) > 1 and draw(st.booleans()):
            pe = f"pe_{members[0].name.replace('-', '_')}"
            pes.append((pe, [", ".join(m.name for m in members)]))
            units.append(Unit(f"pe {pe}", members, host=host.index))
            continue
        for f in members:
            units.append(Unit(f.name, [f], host=host.index))
            if f.sriov is not None:
                cuts = sorted(draw(st.sets(st.integers(1, f.sriov.vfs - 1), max_size=2))) if f.sriov.vfs > 1 else []
                bounds = [0, *cuts, f.sriov.vfs]
                for lo, hi in itertools.pairwise(bounds):
                    units.append(Unit(f"{f.name}.vf[{lo}..{hi - 1}]" if hi - lo > 1 else f"{f.name}.vf[{lo}]",
                                      [], [(f, i) for i in range(lo, hi)], host=host.index))
    return units


@st.composite
def machines(draw: st.DrawFn, mode: Mode) -> Machine:
    cpus = draw(st.integers(1, 8))
    n_hosts = draw(st.sampled_from([1, 1, 2]))
    two_its = mode == "native" and draw(st.booleans())
    hosts: list[Host] = []
    next_bus = 0
    counter = [0]
    for i in range(n_hosts):
        has_io = draw(st.booleans())
        budget = Budget(counter=counter)
        children = draw(bus("root", 0, budget, has_io, mode))
        _link_parents(children)
        need = 1 + _count_bridges(children)
        if mode == "native" and not two_its:
            first = next_bus + draw(st.integers(0, 4))  # one ITS: disjoint requester IDs
        else:
            first = draw(st.sampled_from([0, 0, 0x10]))
        last = first + need - 1 + draw(st.integers(0, 6))
        host = Host(f"{draw(st.sampled_from(['pcie', 'phb', 'hb']))}{i}", i, first, last, has_io,
                    i if two_its else 0, draw(st.booleans()), children)
        if mode == "opal":
            host.phb_id = i * draw(st.sampled_from([1, 3]))
            # msi-ranges: mostly aligned to the largest MSI block, as skiboot's are.
            bases = [0x800, 0x1000, 0x7F0]
            host.msi_base = draw(st.sampled_from(bases)) + 0x10000 * i
            # Room for every vector any policy can give, MSI blocks aligned to their size.
            need = sum(32 + max(_capacity(c, "msix"), _capacity(c, "msi")) * n
                       for f in host.walk() if not f.is_bridge
                       for c, n in ((f.caps, 1), *(((f.sriov.caps, f.sriov.vfs),) if f.sriov else ())))
            host.msi_count = max(_pow2(need), draw(st.sampled_from([0x400, 0x800])))
        hosts.append(host)
        next_bus = last + 1

    # Partitions: the units, whole, to 0..3 partitions.
    pes: list[tuple[str, list[str]]] = []
    units = [u for h in hosts for u in _units(h, mode, draw, pes)]
    n_parts = draw(st.sampled_from([0, 0, 1, 2, 3]))
    names = draw(st.permutations(PARTITION_NAMES))[:n_parts]
    partitions = [
        Partition(n, draw(st.one_of(st.none(), st.integers(1, 6))), [], None,
                  f"my_{n.replace('-', '_')}" if draw(st.integers(0, 4)) == 0 else None)
        for n in names
    ]
    owner: dict[int, Partition] = {}  # id(Fn) -> its partition
    vf_owner: dict[tuple[int, int], Partition] = {}  # (id(PF), VF index) -> its partition
    if partitions:
        by_part: dict[str, list[Unit]] = {p.name: [] for p in partitions}
        for u in units:
            part = draw(st.sampled_from(partitions))
            by_part[part.name].append(u)
            for f in u.functions:
                owner[id(f)] = part
            for pf, k in u.vfs:
                vf_owner[(id(pf), k)] = part
        for part in partitions:
            mine = by_part[part.name]
            whole = [h for h in hosts if (hu := [u for u in units if u.host == h.index]) and all(u in mine for u in hu)]
            for h in whole:
                if draw(st.booleans()):
                    mine = [u for u in mine if u.host != h.index]
                    part.owns.append(f"{h.name}.*")
            part.owns.extend(u.selector for u in mine)
            if draw(st.integers(0, 3)) == 0:
                part.budget = 1 << 20

    def cpus_of(part: Partition | None) -> int:
        return part.cpus if part is not None and part.cpus is not None else cpus

    # Policies: explicit, per SR-IOV block, by class rule, or the default.
    pool = [draw(policy(f"pol{i}")) for i in range(draw(st.integers(1, 4)))]
    applies: list[tuple[str, int]] = []
    rule_classes = list(RULE_CLASSES)
    pending: list[tuple[Fn, int]] = []  # functions still on the default: may join a class rule

    def vf_cpus(f: Fn) -> set[int]:
        return {cpus_of(vf_owner.get((id(f), k))) for k in range(f.sriov.vfs if f.sriov else 0)}

    def vfs_take(f: Fn, pol: Policy, explicit: bool) -> bool:
        """VFs take the 'sriov' block's policy, else the PF's (explicitly) or its class rule's."""
        sv = f.sriov
        if sv is None or sv.policy is not None:
            return True
        return all(policy_fits(pol, sv.caps, explicit, True, c, mode) for c in vf_cpus(f))

    for h in hosts:
        for f in h.walk():
            if f.is_bridge:
                continue
            if f.sriov is not None and draw(st.booleans()):
                sv = f.sriov
                ok = [pol for pol in pool if all(policy_fits(pol, sv.caps, True, True, c, mode) for c in vf_cpus(f))]
                if ok:
                    sv.policy = draw(st.sampled_from(ok)).name
            how = draw(st.sampled_from(["explicit", "explicit", "class", "default"]))
            explicit = how == "explicit"
            fits = [pol for pol in pool
                    if policy_fits(pol, f.caps, explicit, False, cpus_of(owner.get(id(f))), mode)
                    and vfs_take(f, pol, explicit)]
            if explicit and fits:
                f.policy = draw(st.sampled_from(fits)).name
            elif how == "class":
                pending.append((f, cpus_of(owner.get(id(f)))))
    for pol in pool:
        if not pending or not rule_classes:
            break
        members = [(f, c) for f, c in pending
                   if policy_fits(pol, f.caps, False, False, c, mode) and vfs_take(f, pol, False)]
        if not members:
            continue
        chosen = draw(st.lists(st.sampled_from(members), min_size=1, max_size=len(members),
                               unique_by=lambda m: id(m[0])))
        code = rule_classes.pop(0)
        applies.append((pol.name, code))
        for f, _ in chosen:
            f.class_code = code
        pending = [m for m in pending if all(m[0] is not c[0] for c in chosen)]

    # PAPR: ibm,pe-total-#msi at least the devices under the PHB (E804), often ample.
    if mode == "papr":
        for h in hosts:
            devices = sum(1 + (f.sriov.vfs if f.sriov else 0) for f in h.walk() if not f.is_bridge)
            factors = [1, 2, 8, 64, 256]
            h.pe_total = max(devices, 1) * draw(st.sampled_from(factors))
    tokens = (0x2019, 0x2018) if draw(st.booleans()) else (draw(st.integers(0x10, 0x7FFF)), 0)
    if tokens[1] == 0:
        tokens = (tokens[0], tokens[0] + 1)
    prefix = "board" if draw(st.integers(0, 5)) == 0 else None
    return Machine(mode, cpus, hosts, two_its, pool, applies, pes, partitions, prefix, tokens,
                   draw(st.integers(0, 4)) == 0)


# ---------------------------------------------------------------- .msi text


def render(m: Machine) -> str:
    lines = [f'platform "example,hypothesis-{m.mode}" {{', f"    cpus {m.cpus};"]
    if m.mode == "native":
        lines.append("    msi native;")
    elif m.mode == "opal":
        lines.append("    msi firmware-composed opal { get-msi-32 39; get-msi-64 40; }")
    else:
        lines.append(f"    msi hypervisor papr {{ change-msi {m.tokens[0]:#x}; "
                     f"query-interrupt-source-number {m.tokens[1]:#x}; }}")
    if m.platform_prefix:
        lines.append(f'    stub-prefix "{m.platform_prefix}";')
    lines.append("}")
    if m.mode == "native":
        lines += [
            "gic = interrupt-controller gicv3 @ 0x0800_0000 size 64K { redistributor @ 0x080a_0000 size 0xf6_0000; }",
            "its0 = msi-controller gicv3-its @ 0x0808_0000 size 128K { parent gic; }",
        ]
        if m.two_its:
            lines.append("its1 = msi-controller gicv3-its @ 0x0802_0000 size 128K { parent gic; }")
    else:
        lines.append(f"xics = interrupt-controller xics {{ servers 0..{m.cpus - 1}; }}")
    for p in m.policies:
        kind, a, b = p.vectors
        vec = ("requested" if kind == "requested" else f"{a}..{b}" if kind == "range"
               else f"{a} * cpus + {b}" if kind == "cpus" and a > 1 else f"cpus + {b}" if kind == "cpus" and b
               else "cpus" if kind == "cpus" else str(a))
        if p.minimum is not None:
            vec += f" min {p.minimum}"
        up = " up-front;" if p.up_front else ""
        lines.append(f"policy {p.name} {{ prefer {', '.join(p.prefer)}; vectors {vec}; on-short {p.on_short};{up} }}")
    for name, code in m.applies:
        lines.append(f"apply {name} to class {code:#08x};")
    for h in m.hosts:
        _render_host(m, h, lines)
    for name, owns in m.pes:
        lines.append(f"pe {name} {{ owns {', '.join(owns)}; }}")
    for part in m.partitions:
        body = []
        if part.cpus is not None:
            body.append(f"cpus 0..{part.cpus - 1};")
        if part.owns:
            body.append(f"owns {', '.join(part.owns)};")
        if part.budget is not None:
            body.append(f"msi-budget {part.budget};")
        if part.prefix is not None:
            body.append(f'stub-prefix "{part.prefix}";')
        lines.append(f"partition {part.name} {{ {' '.join(body)} }}")
    return "\n".join(lines) + "\n"


def _render_host(m: Machine, h: Host, lines: list[str]) -> None:
    i = h.index
    if m.mode == "native":
        nbus = h.last_bus - h.first_bus + 1
        lines += [
            f"host-bridge {h.name} ecam @ {0x40_0000_0000 + i * 0x1_0000_0000:#x} size {nbus}M {{",
            f"    window mem32 cpu {0x4000_0000 + i * 0x4000_0000:#x} size 1G;",
            f"    window mem64 prefetchable cpu {0x80_0000_0000 + i * 0x10_0000_0000:#x} size 64G;",
        ]
        if h.has_io:
            lines.append(f"    window io cpu {0x3EFF_0000 - i * 0x10000:#x} pci 0x0 size 64K;")
        lines.append(f"    msi map rid {h.first_bus << 8:#06x}..{h.last_bus << 8 | 0xFF:#06x} -> its{h.its};")
        lines.append(f"    intx -> gic spi {3 + 4 * i}..{6 + 4 * i} level{'' if h.swizzle else ' no-swizzle'};")
    elif m.mode == "opal":
        lines += [
            f"host-bridge {h.name} opal phbid {h.phb_id} @ {0x3FFF_E400_0000 + i * 0x10_0000:#x} size 1M {{",
            f"    window mem32 cpu {0x3FE0_8000_0000 + i * 0x1_0000_0000:#x} pci 0x8000_0000 size 2G;",
            f"    window mem64 prefetchable cpu {0x3C00_0000_0000 + i * 0x10_0000_0000:#x} size 64G;",
            f"    msi-ranges {h.msi_base:#x}..{h.msi_base + h.msi_count - 1:#x};",
            f"    intx -> xics irq {0x800 + 0x100 * i:#x}..{0x803 + 0x100 * i:#x} level;",
        ]
        if h.has_io:
            lines.append(f"    window io cpu {0x3FD0_0000_0000 + i * 0x10000:#x} pci 0x0 size 64K;")
    else:
        lines += [
            f"host-bridge {h.name} papr buid {0x800_0000_2000_0000 + i:#x} {{",
            f"    window mem32 cpu {0x200_8000_0000 + i * 0x1_0000_0000:#x} pci 0x8000_0000 size 2G;",
            f"    window mem64 prefetchable cpu {0x210_0000_0000 + i * 0x10_0000_0000:#x} size 64G;",
            f"    pe-total-msi {h.pe_total};",
            f"    intx -> xics irq {0x1200 + 0x100 * i:#x}..{0x1203 + 0x100 * i:#x} level;",
        ]
        if h.has_io:
            lines.append(f"    window io cpu {0x200_0000_0000 + i * 0x1_0000_0000:#x} pci 0x0 size 64K;")
    lines.append(f"    buses {h.first_bus:#x}..{h.last_bus:#x};")
    lines.append(f"    domain {i};")
    for f in h.children:
        _render_fn(f, 1, lines)
    lines.append("}")


def _render_caps(c: Caps, pad: str, lines: list[str]) -> None:
    for b in c.bars:
        pref = " prefetchable" if b.prefetchable else ""
        lines.append(f"{pad}bar {b.index} {b.kind}{pref} {b.size:#x};")
    if c.msi is not None:
        flags = (" addr64" if c.msi.addr64 else "") + (" maskable" if c.msi.maskable else "")
        at = f" @ {c.msi.offset:#x}" if c.msi.offset is not None else ""
        lines.append(f"{pad}msi {c.msi.vectors}{flags}{at};")
    if c.msix is not None:
        x = c.msix
        at = f" @ {x.offset:#x}" if x.offset is not None else ""
        lines.append(f"{pad}msix {x.size} table bar {x.table_bir} + {x.table_offset:#x} "
                     f"pba bar {x.pba_bir} + {x.pba_offset:#x}{at};")


def _render_fn(f: Fn, level: int, lines: list[str]) -> None:
    pad = "    " * level
    inner = pad + "    "
    lines.append(f"{pad}{f.kind} {f.name} @ {f.device:02x}.{f.function:x} {{")
    if f.kind == "endpoint":
        lines.append(f"{inner}id {f.ident} class {f.class_code:#08x};")
        _render_caps(f.caps, inner, lines)
        lines.append(f"{inner}intx {'none' if f.caps.intx == 0 else 'ABCD'[f.caps.intx - 1]};")
        if f.caps.quirks:
            lines.append(f"{inner}quirk {', '.join(f.caps.quirks)};")
        if f.policy is not None:
            lines.append(f"{inner}policy {f.policy};")
        if f.ari:
            lines.append(f"{inner}ari;")
        if f.sriov is not None:
            sv = f.sriov
            lines.append(f"{inner}sriov {{")
            lines.append(f"{inner}    total-vfs {sv.total}; vfs {sv.vfs}; offset {sv.offset}; stride {sv.stride}; "
                         f"vf-id {sv.vf_id:#06x};")
            _render_caps(sv.caps, inner + "    ", lines)
            if sv.policy is not None:
                lines.append(f"{inner}    policy {sv.policy};")
            lines.append(f"{inner}}}")
    if f.bridge_class is not None:
        lines.append(f"{inner}class {f.bridge_class:#08x};")
    if f.pcie:
        lines.append(f"{inner}pcie;")
    for c in f.children:
        _render_fn(c, level + 1, lines)
    lines.append(f"{pad}}}")


# ---------------------------------------------------------------- running the stubs


@contextlib.contextmanager
def fast_c_builds() -> Iterator[None]:
    """stubrun's harness builds at -O0 while the property runs."""
    fast = functools.partial(build_c_harness, cflags=FAST_CFLAGS)
    with mock.patch.object(stubrun, "build_c_harness", fast):
        yield


def _planned(compiled: Compiled, stub: StubFiles) -> list[dict[str, object]]:
    return [f for f in compiled.allocation["functions"] if stub.partition is None or f["partition"] == stub.partition]


def _tables(sim: Simulator, allowed: set[tuple[int, int, int]]) -> list[tuple[int, int, tuple[int, int, int]]]:
    """(first CPU address, entries, function) of every MSI-X table the stub may reach."""
    out = []
    for bdf in allowed:
        msix = sim.devices[bdf].fn.msix
        base = sim.bar_cpu_address(bdf, msix.table_bir) if msix is not None else None
        if msix is not None and base is not None:
            out.append((base + msix.table_offset, msix.table_size, bdf))
    return out


def trace_problems(compiled: Compiled, stub: StubFiles, sim: Simulator) -> list[str]:
    """The issue's trace invariants, checked again on the trace itself (the
    simulator's checker holds them live): no hook call names a function
    outside the stub's table; no address/data write to an MSI-X entry not
    masked by the stub (native, OPAL); under PAPR no write to the MSI
    address/data registers or an MSI-X entry's address/data words at all,
    exactly one whole ibm,change-msi grant before each function's queries,
    and one request at least for every function planned MSI or MSI-X."""
    planned = _planned(compiled, stub)
    allowed = {parse_bdf(str(f["bdf"])) for f in planned}
    papr = compiled.allocation["msi_mode"] == "hypervisor"
    problems = [f"outside the stub's functions: {r.line}" for r in sim.trace if r.bdf is not None
                and r.bdf not in allowed]
    tables = _tables(sim, allowed)
    masked: dict[tuple[tuple[int, int, int], int], bool] = {}  # entries start masked (power-on)
    for r in sim.trace:
        words = r.line.split()
        if r.hook == "cfg_write" and papr and r.bdf in allowed:
            off, width = int(words[2], 16), int(words[3])
            for name, (at, size) in sim.devices[r.bdf].msi_registers().items():
                if name in ("address", "address_hi", "data") and off < at + size and at < off + width:
                    problems.append(f"MSI {name} written under PAPR: {r.line}")
        elif r.hook == "mmio_write32":
            pa, value = int(words[1], 16), int(words[2], 16)
            for first, entries, bdf in tables:
                if first <= pa < first + 16 * entries:
                    entry, word = divmod(pa - first, 16)
                    if word == 12:
                        masked[(bdf, entry)] = bool(value & 1)
                    elif papr:
                        problems.append(f"MSI-X entry {entry} address/data written under PAPR: {r.line}")
                    elif not masked.get((bdf, entry), True):
                        problems.append(f"MSI-X entry {entry} address/data written while unmasked: {r.line}")
    if not papr:
        return problems
    granted: dict[tuple[int, int, int], int] = {}  # function -> whole grants since its last release
    changes: Counter[tuple[int, int, int]] = Counter()
    for q in sim.papr.requests:
        if q.bdf is None:
            problems.append(f"RTAS call for no function: {q.service} {q.args}")
            continue
        if q.service == "change-msi":
            changes[q.bdf] += 1
            if q.args[4] == 0:
                granted[q.bdf] = 0  # a release: the next grant is asked afresh
            elif q.rets[0] == 0 and q.rets[1] == q.args[4]:
                granted[q.bdf] = granted.get(q.bdf, 0) + 1
        elif granted.get(q.bdf, 0) != 1:
            problems.append(f"{q.bdf}: query {q.args[3]} after {granted.get(q.bdf, 0)} whole ibm,change-msi grants")
    for f in planned:
        bdf = parse_bdf(str(f["bdf"]))
        if f["mechanism"] in ("msi", "msix") and int(str(f["vectors_granted"])) > 0 and not changes[bdf]:
            problems.append(f"{f['name']}: planned {f['mechanism']} but no ibm,change-msi was made")
    return problems


# What a machine holds that the run must have seen (the mode aside).
FEATURES = ("partitioned", "two host bridges", "sr-iov", "class rule", "declared offsets", "quirks", "long scenario")


def facts(m: Machine) -> dict[str, bool]:
    fns = [f for h in m.hosts for f in h.walk()]
    return {
        f"mode {m.mode}": True,
        "partitioned": bool(m.partitions),
        "two host bridges": len(m.hosts) > 1,
        "sr-iov": any(f.sriov is not None for f in fns),
        "class rule": bool(m.applies),
        "declared offsets": any((f.caps.msi is not None and f.caps.msi.offset is not None)
                                or (f.caps.msix is not None and f.caps.msix.offset is not None) for f in fns),
        "quirks": any(f.caps.quirks for f in fns),
        "empty partition": any(not part.owns for part in m.partitions),
        "long scenario": m.long_scenario,
    }


def run_machine(m: Machine, seen: Counter[str], in_test: bool = True) -> None:
    """Compile ``m``, run each of its stubs in C and Python, check everything.
    (Outside a Hypothesis test, what would be notes is printed.)"""
    say: Callable[[str], None] = note if in_test else print
    text = render(m)
    say(text)
    for what, happened in facts(m).items():
        if happened:
            seen[what] += 1
            if in_test:
                event(what)
    steps: list[str] = ["setup_all", "teardown_all", "setup_all"] if m.long_scenario else ["setup_all"]
    with tempfile.TemporaryDirectory(prefix="dtmsi-stubprop-") as tmp:
        src = Path(tmp) / "random.msi"
        src.write_text(text, encoding="utf-8")
        compiled = compile_msi(src, Path(tmp) / "out")
        work = Path(tmp) / "build"
        # Build every stub's harness first, two at a time (parity then finds them built).
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(functools.partial(stubrun.build_c, work=work), compiled.stubs))
        for stub in compiled.stubs:
            say(f"stub {stub.stem} (prefix {stub.prefix}), steps {steps}")
            py, _, c_sim = parity(compiled, stub, steps, work, POWERVM)
            planned = [(f["name"], f["mechanism"], f["vectors_granted"]) for f in _planned(compiled, stub)]
            got = [(r.mechanism, r.status, r.vectors) for r in py.results]
            tail = "\n".join(c_sim.trace_lines()[-25:])
            assert py.values == [0] * len(steps), f"{stub.stem}: {py.values}\nplanned {planned}\ngot {got}\n{tail}"
            for who, sim in (("C", c_sim), ("Python", py.sim)):
                assert sim.violations == [], f"{stub.stem} ({who}): {sim.violations}"
                problems = final_state_problems(compiled, stub, sim) + trace_problems(compiled, stub, sim)
                assert problems == [], f"{stub.stem} ({who}):\n" + "\n".join(problems) + f"\nplanned {planned}"
            seen["stubs"] += 1


SETTINGS = settings(
    deadline=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
                           HealthCheck.filter_too_much],
)
FIND = settings(database=None, deadline=None, max_examples=5000, phases=[Phase.generate],
                suppress_health_check=list(HealthCheck))
# Examples per mode: 220 in all (the issue asks at least 200 per CI run).
EXAMPLES: dict[Mode, int] = {"native": 90, "opal": 55, "papr": 75}


# One @given per mode (module level, so that each has its own key in
# Hypothesis's example database), run by the tests below.
SEEN: dict[Mode, Counter[str]] = {"native": Counter(), "opal": Counter(), "papr": Counter()}


@settings(SETTINGS, max_examples=EXAMPLES["native"])
@given(m=machines("native"))
def native_machines(m: Machine) -> None:
    run_machine(m, SEEN["native"])


@settings(SETTINGS, max_examples=EXAMPLES["opal"])
@given(m=machines("opal"))
def opal_machines(m: Machine) -> None:
    run_machine(m, SEEN["opal"])


@settings(SETTINGS, max_examples=EXAMPLES["papr"])
@given(m=machines("papr"))
def papr_machines(m: Machine) -> None:
    run_machine(m, SEEN["papr"])


def _property(mode: Mode, run: Callable[[], None]) -> Counter[str]:
    seen = SEEN[mode]
    seen.clear()
    with fast_c_builds():
        run()
        # A feature the random run happened to miss (Hypothesis's choices
        # cluster) is run once more, on the first machine drawn that has it: no
        # run leaves a hole, and a generator that cannot make it fails here.
        for what in FEATURES:
            if not seen[what]:
                seen[f"found {what}"] += 1
                m = find(machines(mode), functools.partial(_has, what), settings=FIND)
                run_machine(m, seen, in_test=False)
    return seen


def _has(what: str, m: Machine) -> bool:
    return facts(m)[what]


def _coverage(mode: Mode, seen: Counter[str]) -> None:
    """What the examples really held: a generator that never made one of these
    would leave a silent hole."""
    print(f"{mode}: {dict(seen)}")  # shown with -rP / -s: what the examples held
    runs = seen[f"mode {mode}"]
    assert runs >= EXAMPLES[mode], seen
    for what in FEATURES:
        assert seen[what] > 0, f"no {mode} example had {what}: {seen}"
    assert seen["stubs"] > runs, seen  # partitioned machines have several stubs


def test_native_its_machines() -> None:
    _coverage("native", _property("native", native_machines))


def test_opal_machines() -> None:
    _coverage("opal", _property("opal", opal_machines))


def test_papr_machines() -> None:
    _coverage("papr", _property("papr", papr_machines))


# ---------------------------------------------------------------- known bugs, minimal

# Each is a minimal machine the generator drew before its bug was fixed.
_PAPR_HEAD = """platform "example,papr" {
    msi hypervisor papr { change-msi 0x2019; query-interrupt-source-number 0x2018; }
}
xics = interrupt-controller xics { servers 0..0; }
"""
_PAPR_PHB = """host-bridge phb0 papr buid 0x800_0000_2000_0000 {{
    buses 0..1;
    window mem32 cpu 0x200_8000_0000 pci 0x8000_0000 size 2G;
    pe-total-msi {total};
    intx -> xics irq 0x1200..0x1203 level;
    endpoint {endpoint}
}}
"""
_NVME = "nvme0 @ 01.0 {{ id 144d:a808 class 0x010802; bar 0 mem32 16K; " \
        "msix {n} table bar 0 + 0x2000 pba bar 0 + 0x3000; intx A;{policy} }}"

KNOWN_BUGS: dict[str, tuple[str, str]] = {
    "BUG-1": (
        "PAPR: the quota (pe-total-msi 4, one device) is below the policy's minimum 8, so papr.py predicts 0 "
        "vectors (W812) but the plan keeps mechanism msix with vectors_granted 0; the stub asks ibm,change-msi "
        "for 0 vectors (a release), fails E_FW, and the function is not in the planned state",
        _PAPR_HEAD + "policy eight { prefer msix; vectors 8 min 8; }\n"
        + _PAPR_PHB.format(total=4, endpoint=_NVME.format(n=8, policy=" policy eight;")),
    ),
    "BUG-2a": (
        "PAPR: MSI 3 vectors: the plan's hardware_vectors is 3 (not 2^MME), ibm,change-msi asks 3, which "
        "PowerVM refuses (counts must be powers of two): E_FW instead of the planned MSI",
        _PAPR_HEAD + "policy three { prefer msi; vectors 3; }\n"
        + _PAPR_PHB.format(total=64, endpoint="eth0 @ 01.0 { id 8086:10d3 class 0x020000; bar 0 mem32 128K; "
                           "msi 4 addr64; intx A; policy three; }"),
    ),
    "BUG-2b": (
        "PAPR: MSI-X 12 on a 12-entry table: rounding up to 16 is beyond the table (and the quota), so the "
        "plan asks 12, which PowerVM refuses: the default policy ends in INTx, not the planned MSI-X",
        _PAPR_HEAD + _PAPR_PHB.format(total=12, endpoint=_NVME.format(n=12, policy="")),
    ),
    "BUG-3": (
        "PAPR: MSI-X 12 of a 16-entry table, rounded up to 16 (hardware_vectors 16): the stub queries and "
        "unmasks the 12 granted entries (as Linux does); dtmsi.sim.check_final_state wants all 16 unmasked",
        _PAPR_HEAD + "policy twelve { prefer msix; vectors 12; }\n"
        + _PAPR_PHB.format(total=64, endpoint=_NVME.format(n=16, policy=" policy twelve;")),
    ),
    "BUG-4": (
        "OPAL: msi-ranges 0x7f0..0x83f: alloc.firmware_hwirqs aligns the MSI 32 block's hwirq (0x800), not "
        "its XIVE (hwirq - 0x7f0 = 0x10); firmware's data 0x10 is not aligned to 32: E_DATA_ALIGN",
        """platform "example,opal" { cpus 1; msi firmware-composed opal { get-msi-32 39; get-msi-64 40; } }
xics = interrupt-controller xics { servers 0..0; }
host-bridge phb0 opal phbid 0 @ 0x3fff_e400_0000 size 1M {
    buses 0..1;
    window mem32 cpu 0x3fe0_8000_0000 pci 0x8000_0000 size 2G;
    msi-ranges 0x7f0..0x83f;
    intx -> xics irq 0x800..0x803 level;
    endpoint eth0 @ 01.0 { id 8086:10d3 class 0x020000; bar 0 mem32 128K; msi 32 addr64; intx A; }
}
""",
    ),
    "BUG-6": (
        "BAR placement: resolve._max_align ignores SR-IOV VF BAR blocks, so root port rp's prefetchable "
        "window is measured 8M at a 4M-aligned base but placed at 0x8000200000 (1M granule): the VFs move up "
        "to 0x8000400000..0x8000c00000 and a's BAR 2 (0x8000a00000) overlaps pf_vf1's BAR 0 (the simulator "
        "refuses the machine)",
        """platform "example,vf-bars" { msi native; }
gic = interrupt-controller gicv3 @ 0x0800_0000 size 64K { redistributor @ 0x080a_0000 size 0xf6_0000; }
its = msi-controller gicv3-its @ 0x0808_0000 size 128K { parent gic; }
host-bridge pcie0 ecam @ 0x40_0000_0000 size 16M {
    buses 0..15;
    window mem32 cpu 0x4000_0000 size 1G;
    window mem64 prefetchable cpu 0x80_0000_0000 size 64G;
    msi map rid 0x0000..0x0fff -> its;
    intx -> gic spi 3..6 level;
    endpoint a @ 00.0 { id 8086:10d3 class 0x020000; bar 0 mem64 prefetchable 2M; bar 2 mem64 prefetchable 16; intx A; }
    root-port rp @ 03.0 {
        endpoint pf @ 00.0 {
            id 8086:10d3 class 0x020000;
            intx A;
            sriov {
                total-vfs 2; vfs 2; vf-id 0x1000;
                bar 0 mem64 prefetchable 4M;
                msix 1 table bar 0 + 0x0 pba bar 0 + 0x10;
            }
        }
    }
}
""",
    ),
}


@pytest.mark.parametrize("bug", list(KNOWN_BUGS))
def test_known_bug(bug: str, tmp_path: Path) -> None:
    """Each bug this test once found, as a regression test (all fixed)."""
    _, text = KNOWN_BUGS[bug]
    src = tmp_path / f"{bug}.msi"
    src.write_text(text, encoding="utf-8")
    compiled = compile_msi(src, tmp_path / "out")
    stub = compiled.stubs[0]
    py, _, c_sim = parity(compiled, stub, ["setup_all"], tmp_path, POWERVM)
    assert py.values == [0], [(r.mechanism, r.status, r.fw_status) for r in py.results]
    assert c_sim.violations == []
    assert final_state_problems(compiled, stub, c_sim) == []
    assert trace_problems(compiled, stub, c_sim) == []

