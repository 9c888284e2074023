"""QEMU's own pseries tree judges the PAPR example, property by property.

``examples/qemu-pseries/qemu-pseries.msi`` describes QEMU 7.2's ``pseries``
machine with a PCI-PCI bridge, an e1000e and an NVMe controller behind it and a
virtio-net on the root bus.  QEMU builds its own device tree for the same
command line (``-M pseries,dumpdtb=``, hw/ppc/spapr_pci.c writes a node per
function with its config-space facts and ``ibm,req#msi``/``ibm,req#msi-x``).
This test pairs the nodes of both trees by PCI address (not by name) under the
PHB, plus the XICS and ``/rtas``, and compares every property:

* a property both trees have must be byte-identical, unless ``DIFFERENT``
  names it with the reason and a check that the two values still agree on
  what matters (for example: every ``interrupt-map`` entry dtmsi writes is in
  QEMU's map);
* a property only one tree has must be named in ``QEMU_ONLY`` or
  ``DTMSI_ONLY`` with the reason.

Anything else is a difference nobody decided on and fails the test.  A
deliberately wrong variant of the example (a BAR size, a PE total and a LSI
off) must fail the same comparison.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libfdt
import pytest

from dtmsi.diagnostics import render_text
from dtmsi.driver import compile_file
from dtmsi.options import CompileOptions

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "qemu-pseries" / "qemu-pseries.msi"
PHB = "/pci@800000020000000"

# The machine the example's header comment describes.
QEMU_ARGS = (
    "-M", "pseries", "-smp", "1,maxcpus=8", "-display", "none", "-nodefaults",
    "-device", "pci-bridge,id=br,chassis_nr=1,addr=01.0",
    "-device", "e1000e,bus=br,addr=00.0,romfile=",
    "-device", "nvme,bus=br,addr=01.0,serial=x",
    "-device", "virtio-net-pci,addr=02.0,romfile=",
)

Props = dict[str, bytes]

_DRC = "dynamic-reconfiguration connectors (PAPR hotplug): QEMU's DRC model; dtmsi describes a static machine"
_HEADER = (
    "a copy of a config-space register (IEEE 1275 PCI binding); Linux on pseries reads config space "
    "itself, and dtmsi's .msi does not declare it"
)

# Properties QEMU writes and dtmsi does not, per kind of node.
QEMU_ONLY: dict[str, dict[str, str]] = {
    "phb": {
        "ibm,drc-indexes": _DRC, "ibm,drc-names": _DRC, "ibm,drc-power-domains": _DRC,
        "ibm,drc-types": _DRC, "ibm,my-drc-index": _DRC,
        "ibm,dma-window": "TCE DMA window: IOMMU, outside dtmsi's MSI/INTx scope",
        "ibm,#dma-address-cells": "TCE DMA window cells, outside dtmsi's scope",
        "ibm,#dma-size-cells": "TCE DMA window cells, outside dtmsi's scope",
        "ibm,ddw-applicable": "dynamic DMA windows (RTAS tokens), outside dtmsi's scope",
        "ibm,ddw-extensions": "dynamic DMA windows, outside dtmsi's scope",
        "qemu,phb-enumerated": "QEMU's own marker that SLOF need not enumerate the bus",
    },
    "bridge": {
        "ibm,drc-indexes": _DRC, "ibm,drc-names": _DRC, "ibm,drc-power-domains": _DRC,
        "ibm,drc-types": _DRC, "ibm,my-drc-index": _DRC,
        "ibm,req#msi": (
            "QEMU publishes the bridge's one-vector SHPC MSI capability; dtmsi publishes ibm,req#msi only "
            "for a function its plan gives MSI, and no policy here uses the bridge's"
        ),
        "66mhz-capable": _HEADER, "fast-back-to-back": _HEADER, "devsel-speed": _HEADER,
        "cache-line-size": _HEADER,
    },
    "function": {
        "ibm,my-drc-index": _DRC,
        "ibm,pci-config-space-type": "dtmsi states the config-space type once, on the PHB",
        "devsel-speed": _HEADER, "cache-line-size": _HEADER, "max-latency": _HEADER, "min-grant": _HEADER,
    },
    "xics": {
        "phandle": "dtmsi numbers phandles itself; references are compared by target",
        "linux,phandle": "a legacy duplicate of phandle (Linux reads phandle)",
    },
    "rtas": {},  # /rtas is compared only on dtmsi's properties (below)
}

# Properties dtmsi writes and QEMU does not.
DTMSI_ONLY: dict[str, dict[str, str]] = {
    "phb": {
        "linux,pci-domain": "the .msi's 'domain 0': Linux's PCI domain; QEMU leaves it to probing order",
        "phandle": "referenced by dtmsi's own tree (labels)",
    },
    "bridge": {
        "compatible": "IEEE 1275 PCI binding: pciVVVV,DDDD then the class; QEMU writes none",
        "device_type": "PCI bus binding: a bridge is a 'pci' bus node; QEMU's pseries nodes omit it",
        "#interrupt-cells": "the bridge is an interrupt nexus in dtmsi's tree (below)",
        "interrupt-map": (
            "dtmsi routes INTx through the bridge explicitly; QEMU leaves the standard swizzle to Linux "
            "(checked: dtmsi's map equals that swizzle over QEMU's PHB map)"
        ),
        "interrupt-map-mask": "belongs with interrupt-map",
        "ranges": "empty ranges: the bridge passes its parent's address space through (PCI bus binding)",
        "bus-range": "the bridge's secondary..subordinate buses, numbered at build time",
        "assigned-addresses": "dtmsi assigns BARs at build time; QEMU leaves that to SLOF or Linux",
    },
    "function": {
        "compatible": "IEEE 1275 PCI binding: pciVVVV,DDDD then the class; QEMU writes none",
        "assigned-addresses": "dtmsi assigns BARs at build time; QEMU leaves that to SLOF or Linux",
    },
    "xics": {
        "#address-cells": "dtc's interrupt_provider check wants it on a node interrupt-map refers to",
    },
    "rtas": {},
}


@dataclass
class Tree:
    """One device tree, read with libfdt: properties by path, nodes by PCI address."""

    props: dict[str, Props] = field(default_factory=dict)
    by_pci: dict[tuple[int, ...], str] = field(default_factory=dict)  # devfn path under the PHB -> path
    phandles: dict[int, str] = field(default_factory=dict)

    @classmethod
    def read(cls, blob: bytes) -> Tree:
        fdt = libfdt.Fdt(blob)
        tree = cls()

        def walk(off: int, path: str, pci: tuple[int, ...] | None) -> None:
            props: Props = {}
            poff = fdt.first_property_offset(off, libfdt.QUIET_NOTFOUND)
            while poff >= 0:
                prop = fdt.get_property_by_offset(poff)
                props[prop.name] = bytes(prop)
                poff = fdt.next_property_offset(poff, libfdt.QUIET_NOTFOUND)
            tree.props[path] = props
            if "phandle" in props:
                tree.phandles[_cells(props["phandle"])[0]] = path
            if path == PHB:
                pci = ()
            elif pci is not None:
                devfn = (_cells(props["reg"])[0] >> 8) & 0xFF
                pci = (*pci, devfn)
            if pci is not None:
                tree.by_pci[pci] = path
            child = fdt.first_subnode(off, libfdt.QUIET_NOTFOUND)
            while child >= 0:
                name = fdt.get_name(child)
                walk(child, f"{path.rstrip('/')}/{name}", pci)
                child = fdt.next_subnode(child, libfdt.QUIET_NOTFOUND)

        walk(0, "/", None)
        return tree

    def kind(self, path: str) -> str:
        if path == PHB:
            return "phb"
        return "bridge" if _cells(self.props[path].get("class-code", b"\0\0\0\0"))[0] >> 8 == 0x0604 else "function"


def _cells(value: bytes) -> tuple[int, ...]:
    return struct.unpack(f">{len(value) // 4}I", value[: len(value) // 4 * 4])


# ----------------------------------------------------------------- named differences


def _imap_entries(props: Props, tree: Tree) -> set[tuple[Any, ...]]:
    """interrupt-map as (child device bits, pin, parent compatible, parent unit
    address, parent specifier) entries; the parent phandle is resolved to the
    node's compatible, so trees with different phandle numbers compare."""
    cells = _cells(props["interrupt-map"])
    out: set[tuple[Any, ...]] = set()
    i = 0
    while i < len(cells):
        unit, pin, phandle = cells[i:i + 3], cells[i + 3], cells[i + 4]
        parent = tree.props[tree.phandles[phandle]]
        icells = _cells(parent["#interrupt-cells"])[0]
        acells = _cells(parent["#address-cells"])[0] if "#address-cells" in parent else 0
        paddr = cells[i + 5:i + 5 + acells]
        spec = cells[i + 5 + acells:i + 5 + acells + icells]
        out.add((unit[0] & 0xF800, pin, parent.get("compatible", parent.get("device_type")), paddr, spec))
        i += 5 + acells + icells
    return out


def _phb_interrupt_map(ours: Props, theirs: Props, our_tree: Tree, qemu: Tree) -> str | None:
    mine, qemus = _imap_entries(ours, our_tree), _imap_entries(theirs, qemu)
    missing = sorted(mine - qemus)
    return f"entries QEMU's map does not have: {missing}" if missing else None


def _pin_mask(ours: Props, theirs: Props, our_tree: Tree, qemu: Tree) -> str | None:
    # QEMU masks the pin with 0xffffffff, dtmsi with 7 (pins are 1..4): the
    # same entries match either way; the device part must be equal.
    a, b = _cells(ours["interrupt-map-mask"]), _cells(theirs["interrupt-map-mask"])
    return None if a[:3] == b[:3] and a[3] & 7 == 7 and b[3] & 7 == 7 else f"{a} vs {b}"


def _req_msix(ours: Props, theirs: Props, our_tree: Tree, qemu: Tree) -> str | None:
    # QEMU publishes the MSI-X table size; dtmsi publishes the policy's count,
    # which Linux's check_req then hands the driver (tests/linux/test_papr_kexec.py).
    # It can never exceed the table.
    a, b = _cells(ours["ibm,req#msi-x"])[0], _cells(theirs["ibm,req#msi-x"])[0]
    return None if 0 < a <= b else f"dtmsi {a} > QEMU's table size {b}"


Check = Callable[[Props, Props, Tree, Tree], "str | None"]

# Properties both trees have with different bytes, with why and what must still agree.
DIFFERENT: dict[str, dict[str, tuple[str, Check]]] = {
    "phb": {
        "interrupt-map": (
            "QEMU maps all 32 slots x 4 pins; dtmsi maps the slots that hold a function", _phb_interrupt_map,
        ),
        "interrupt-map-mask": ("pin mask 7 (dtmsi) vs 0xffffffff (QEMU)", _pin_mask),
    },
    "bridge": {},
    "function": {
        "ibm,req#msi-x": ("QEMU: MSI-X table size; dtmsi: the policy's vector count", _req_msix),
    },
    "xics": {
        "phandle": ("numbered by each tool", lambda a, b, t, q: None),
    },
    "rtas": {},
}

# Node names that differ (the trees are paired by PCI address, not by name).
NODE_NAMES: dict[tuple[str, str], str] = {
    ("nvme", "mass-storage"): (
        "class 0x010802: QEMU 7.2's spapr class table has no NVM subclass and falls back to the class "
        "name; Linux on pseries matches PCI nodes by their reg, not their name"
    ),
}

# QEMU omits subsystem-id when the register is 0 (spapr_pci.c writes only
# non-zero subsystem registers); dtmsi writes what the .msi declares.
ZERO_SUBSYSTEM_ID = "subsystem-id"


def compare(ours: Tree, qemu: Tree) -> list[str]:
    """Every difference between the two trees that is not named above."""
    problems: list[str] = []
    pairs: list[tuple[str, str, str]] = []
    for pci, path in sorted(qemu.by_pci.items()):
        mine = ours.by_pci.get(pci)
        if mine is None:
            problems.append(f"{path}: QEMU has a function dtmsi does not describe")
            continue
        pairs.append((qemu.kind(path), mine, path))
        names = (mine.rsplit("/", 1)[-1].split("@")[0], path.rsplit("/", 1)[-1].split("@")[0])
        if names[0] != names[1] and names not in NODE_NAMES:
            problems.append(f"{path}: dtmsi names it {mine}")
    for pci, path in sorted(ours.by_pci.items()):
        if pci not in qemu.by_pci:
            problems.append(f"{path}: dtmsi describes a function QEMU does not have")
    pairs.append(("xics", "/interrupt-controller", "/interrupt-controller"))
    for kind, mine_path, qemu_path in pairs:
        a, b = ours.props[mine_path], qemu.props[qemu_path]
        for name in sorted(set(a) | set(b)):
            where = f"{mine_path} (QEMU {qemu_path}) {name}"
            if name in a and name in b:
                if a[name] == b[name]:
                    continue
                named = DIFFERENT[kind].get(name)
                if named is None:
                    problems.append(f"{where}: dtmsi {a[name].hex()} vs QEMU {b[name].hex()}")
                elif (why := named[1](a, b, ours, qemu)) is not None:
                    problems.append(f"{where}: {named[0]}, but {why}")
            elif name in b:
                if name not in QEMU_ONLY[kind]:
                    problems.append(f"{where}: only QEMU writes it ({b[name].hex()})")
            elif name == ZERO_SUBSYSTEM_ID and _cells(a[name]) == (0,):
                continue
            elif name not in DTMSI_ONLY[kind]:
                problems.append(f"{where}: only dtmsi writes it ({a[name].hex()})")
    # /rtas: the services dtmsi names must be QEMU's, token for token.
    for name, value in ours.props["/rtas"].items():
        if qemu.props["/rtas"].get(name) != value:
            problems.append(f"/rtas {name}: dtmsi {value.hex()} vs QEMU {qemu.props['/rtas'].get(name)!r}")
    return problems


def bridge_swizzle_problems(ours: Tree, qemu: Tree) -> list[str]:
    """dtmsi's bridge interrupt-map must be the standard swizzle (PCI-to-PCI
    bridge spec) onto the bridge's own slot, and QEMU's PHB map must route
    that slot and pin: that is what Linux computes on QEMU."""
    problems: list[str] = []
    qemu_phb = {(unit, pin) for unit, pin, *_ in _imap_entries(qemu.props[PHB], qemu)}
    for pci, path in ours.by_pci.items():
        if ours.kind(path) != "bridge":
            continue
        bridge_unit = (pci[-1] >> 3) << 11
        for unit, pin, _parent, paddr, spec in _imap_entries(ours.props[path], ours):
            want = (pin - 1 + (unit >> 11)) % 4 + 1
            if (paddr[:1], spec) != ((bridge_unit,), (want,)):
                problems.append(f"{path}: device {unit >> 11} pin {pin} -> {paddr} {spec}, swizzle says pin {want}")
            elif (bridge_unit, want) not in qemu_phb:
                problems.append(f"{path}: QEMU's PHB map does not route slot {bridge_unit >> 11} pin {want}")
    return problems


# ----------------------------------------------------------------- fixtures and tests


@pytest.fixture(scope="module")
def qemu_tree(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    qemu = shutil.which("qemu-system-ppc64")
    assert qemu, "qemu-system-ppc64 missing: scripts/bootstrap.sh installs qemu-system-ppc"
    dtb = tmp_path_factory.mktemp("qemu") / "pseries.dtb"
    args = list(QEMU_ARGS)
    args[1] += f",dumpdtb={dtb}"
    run = subprocess.run([qemu, *args], capture_output=True, text=True, timeout=60, check=False)
    assert dtb.exists(), run.stderr
    return Tree.read(dtb.read_bytes())


def _compile(msi: Path, out: Path) -> Tree:
    result = compile_file(CompileOptions(input=msi, output_dir=out, emit=frozenset({"dtb"})))
    assert result.ok, "\n".join(render_text(d) for d in result.sink.items)
    return Tree.read((out / "system.dtb").read_bytes())


def test_example_command_line_is_the_one_compared() -> None:
    header = EXAMPLE.read_text()
    for arg in QEMU_ARGS:
        if arg.startswith(("pci-bridge", "e1000e", "nvme", "virtio-net", "1,maxcpus")):
            assert arg in header, f"the example's header does not show {arg}"


def test_papr_example_reproduces_qemus_tree(qemu_tree: Tree, tmp_path: Path) -> None:
    ours = _compile(EXAMPLE, tmp_path)
    assert len(ours.by_pci) == len(qemu_tree.by_pci) == 5  # PHB, bridge, 3 functions
    problems = compare(ours, qemu_tree) + bridge_swizzle_problems(ours, qemu_tree)
    assert not problems, "differences nobody named:\n" + "\n".join(problems)


def test_every_named_difference_still_exists(qemu_tree: Tree, tmp_path: Path) -> None:
    """A named difference that disappeared (QEMU or dtmsi changed) is stale: drop it."""
    ours = _compile(EXAMPLE, tmp_path)
    seen: dict[str, set[str]] = {k: set() for k in QEMU_ONLY}
    for pci, path in qemu_tree.by_pci.items():
        kind = qemu_tree.kind(path)
        a, b = ours.props[ours.by_pci[pci]], qemu_tree.props[path]
        seen[kind] |= {n for n in set(a) ^ set(b)} | {n for n in set(a) & set(b) if a[n] != b[n]}
    a, b = ours.props["/interrupt-controller"], qemu_tree.props["/interrupt-controller"]
    seen["xics"] |= {n for n in set(a) ^ set(b)} | {n for n in set(a) & set(b) if a[n] != b[n]}
    for kind in QEMU_ONLY:
        named = set(QEMU_ONLY[kind]) | set(DTMSI_ONLY[kind]) | set(DIFFERENT[kind])
        stale = named - seen[kind]
        assert not stale, f"{kind}: named differences that no longer occur: {sorted(stale)}"


def _mutants() -> Iterator[tuple[str, str, str]]:
    yield "bar size", "bar 0 mem32 128K;", "bar 0 mem32 64K;"
    yield "PE total", "pe-total-msi 0xd00;", "pe-total-msi 0xc00;"
    yield "LSI base", "irq 0x1200..0x1203", "irq 0x1201..0x1204"
    yield "RTAS token", "change-msi 0x2019;", "change-msi 0x2020;"


@pytest.mark.parametrize(("what", "old", "new"), list(_mutants()), ids=[m[0] for m in _mutants()])
def test_a_wrong_example_fails_the_comparison(qemu_tree: Tree, tmp_path: Path, what: str, old: str, new: str) -> None:
    src = tmp_path / "src"
    shutil.copytree(EXAMPLE.parent, src)
    files = [p for p in src.glob("*.msi") if old in p.read_text()]
    assert len(files) == 1, f"{old!r} must occur in exactly one file of the example"
    files[0].write_text(files[0].read_text().replace(old, new, 1))
    ours = _compile(src / EXAMPLE.name, tmp_path / "out")
    problems = compare(ours, qemu_tree) + bridge_swizzle_problems(ours, qemu_tree)
    assert problems, f"a wrong {what} passed the comparison"
