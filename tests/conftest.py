"""Shared fixtures: where the examples are, compiling them, running dtc.

A missing tool (dtc) fails the test that needs it with a message saying what
to install; no test skips itself because of the machine it runs on.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import libfdt
import pytest

from tests.golden_update import EXAMPLES, GOLDEN, ROOT, compile_example, example_names

RunDtc = Callable[..., "subprocess.CompletedProcess[bytes]"]
CompileExample = Callable[[str], Path]


def dtc_path() -> str:
    """dtc's path, or fail the calling test (never skip it)."""
    found = shutil.which("dtc")
    if found is None:
        pytest.fail("dtc (the device-tree compiler) is not installed; these tests need it. "
                    "Install Debian's 'device-tree-compiler' package (scripts/bootstrap.sh does).",
                    pytrace=False)
    return found


def run_dtc_command(*args: str | Path,
                    stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run dtc with ``args``; stdout and stderr captured as bytes; no exception on exit status."""
    return subprocess.run([dtc_path(), *map(str, args)], input=stdin, capture_output=True,
                          check=False, timeout=60)


@pytest.fixture(scope="session")
def run_dtc() -> RunDtc:
    """``run_dtc("-I", "dtb", "-O", "dts", path)`` -> CompletedProcess[bytes].

    Fails (never skips) the test if dtc is missing.
    """
    dtc_path()
    return run_dtc_command


@pytest.fixture(scope="session")
def root_dir() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def examples_dir() -> Path:
    return EXAMPLES


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return GOLDEN


@pytest.fixture(scope="session", name="compile_example")
def compile_example_fixture(tmp_path_factory: pytest.TempPathFactory) -> CompileExample:
    """Compile examples/<name>/<name>.msi once per session through the CLI; -> its output dir.

    A failed compile fails the test, with the compiler's stderr.
    """
    done: dict[str, Path] = {}

    def compile_one(name: str) -> Path:
        if name not in done:
            out = tmp_path_factory.mktemp(f"example-{name}") / "out"
            proc = compile_example(name, out)
            if proc.returncode != 0:
                pytest.fail(f"dtmsi compile {name} exited {proc.returncode}:\n{proc.stderr}",
                            pytrace=False)
            done[name] = out
        return done[name]

    return compile_one


@pytest.fixture(scope="session")
def all_examples() -> list[str]:
    return example_names()


# ---------------------------------------------------------------- reading DTBs


def cells(value: bytes) -> list[int]:
    """A property value as big-endian 32-bit cells."""
    assert len(value) % 4 == 0, f"property of {len(value)} bytes is not a list of cells"
    return [int.from_bytes(value[i:i + 4], "big") for i in range(0, len(value), 4)]


def read_nodes(dtb: bytes) -> dict[str, dict[str, bytes]]:
    """Node path -> {property name -> raw value}, parents before children (libfdt)."""
    fdt = libfdt.Fdt(dtb)
    out: dict[str, dict[str, bytes]] = {}

    def walk(off: int, path: str) -> None:
        props: dict[str, bytes] = {}
        poff = fdt.first_property_offset(off, libfdt.QUIET_NOTFOUND)
        while poff >= 0:
            prop = fdt.get_property_by_offset(poff)
            props[str(prop.name)] = bytes(prop)
            poff = fdt.next_property_offset(poff, libfdt.QUIET_NOTFOUND)
        out[path] = props
        child = fdt.first_subnode(off, libfdt.QUIET_NOTFOUND)
        while child >= 0:
            walk(child, f"{path.rstrip('/')}/{fdt.get_name(child)}")
            child = fdt.next_subnode(child, libfdt.QUIET_NOTFOUND)

    walk(0, "/")
    return out


def parent_path(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


def _string(value: bytes | None) -> str | None:
    return value.rstrip(b"\0").decode() if value is not None else None


def pci_tree_problems(nodes: dict[str, dict[str, bytes]]) -> list[str]:
    """Rules of domain.md 4.1 and 5.1/5.2 that dtc does not (fully) check, read off a DTB.

    Bus numbers (a node's bus = its parent bus node's first bus; bridge ranges
    nested, disjoint between siblings, secondary > own bus); config-space and
    BAR encodings in reg/assigned-addresses (ss, n, p, register numbers);
    assigned BARs aligned, inside a host-bridge window of their space (a
    non-prefetchable BAR never in a prefetchable window, a 32-bit BAR below
    4 GiB) and not overlapping; msi-map shape and targets; every bridge node's
    interrupt-map swizzles every pin used below it.
    """
    problems: list[str] = []
    by_phandle = {cells(p["phandle"])[0]: path for path, p in nodes.items() if "phandle" in p}

    def is_pci(path: str) -> bool:
        return path in nodes and _string(nodes[path].get("device_type")) == "pci"

    def host_of(path: str) -> str:
        while is_pci(parent_path(path)):
            path = parent_path(path)
        return path

    bus_nodes = [p for p in nodes if is_pci(p)]
    ranges_of: dict[str, tuple[int, int]] = {}
    for path in bus_nodes:
        br = cells(nodes[path].get("bus-range", b""))
        if len(br) != 2 or not br[0] <= br[1] <= 0xFF:
            problems.append(f"{path}: bus-range {br} is not <first last>, first <= last <= 0xff")
            continue
        ranges_of[path] = (br[0], br[1])

    # Every function below a bus node.
    assigned: dict[str, list[tuple[int, int, int, str]]] = {}  # host -> (space, lo, hi, who)
    for path, props in nodes.items():
        parent = parent_path(path)
        if path == "/" or not is_pci(parent) or parent not in ranges_of:
            continue
        reg = cells(props.get("reg", b""))
        if len(reg) < 5 or len(reg) % 5:
            problems.append(f"{path}: reg has {len(reg)} cells, not 5 per entry")
            continue
        hi = reg[0]
        bus, dev, fn = (hi >> 16) & 0xFF, (hi >> 11) & 0x1F, (hi >> 8) & 7
        if hi & 0xFF000000 or hi & 0xFF or any(reg[1:5]):
            problems.append(f"{path}: first reg entry {reg[:5]} is not a config-space entry")
        if bus != ranges_of[parent][0]:
            problems.append(f"{path}: on bus {bus:#x}, but its parent {parent} has bus-range "
                            f"{ranges_of[parent]} (a device sits on its parent's first bus)")
        unit = path.rsplit("@", 1)[-1] if "@" in path.rsplit("/", 1)[-1] else None
        want_unit = f"{dev:x}" if fn == 0 else f"{dev:x},{fn:x}"
        if unit not in (want_unit, f"{dev:x},0" if fn == 0 else want_unit):
            problems.append(f"{path}: unit address {unit!r} does not match reg ({want_unit})")
        bars: dict[int, tuple[int, int]] = {}
        for i in range(5, len(reg), 5):
            bhi, mid, lo, s_hi, s_lo = reg[i:i + 5]
            ss, register = (bhi >> 24) & 3, bhi & 0xFF
            if bhi & 0x80000000 or mid or lo:
                problems.append(f"{path}: reg BAR entry {bhi:#x} is not relocatable at 0")
            if (bhi & 0x00FFFF00) != (hi & 0x00FFFF00):
                problems.append(f"{path}: reg BAR entry {bhi:#x} is not function {hi:#x}")
            if ss == 0 or register not in (0x10, 0x14, 0x18, 0x1C, 0x20, 0x24, 0x30, 0x38):
                problems.append(f"{path}: reg BAR entry {bhi:#x}: space {ss} / register "
                                f"{register:#x} invalid")
            if ss == 3 and register == 0x24:
                problems.append(f"{path}: a 64-bit BAR cannot start at register 0x24")
            bars[bhi & 0x7FFFFFFF] = (s_hi << 32 | s_lo, ss)
        aa = cells(props.get("assigned-addresses", b""))
        for i in range(0, len(aa), 5):
            ahi, mid, lo, s_hi, s_lo = aa[i:i + 5]
            addr, size, ss = mid << 32 | lo, s_hi << 32 | s_lo, (ahi >> 24) & 3
            if not ahi & 0x80000000:
                problems.append(f"{path}: assigned-addresses entry {ahi:#x} lacks the n bit")
            if bars.get(ahi & 0x7FFFFFFF, (None, None))[0] != size:
                problems.append(f"{path}: assigned-addresses entry {ahi:#x} has no reg entry "
                                f"of size {size:#x}")
            if size & (size - 1) or addr % size:
                problems.append(f"{path}: BAR {ahi:#x} at {addr:#x} is not aligned to its "
                                f"size {size:#x}")
            if ss == 2 and addr + size > 1 << 32:
                problems.append(f"{path}: 32-bit BAR {ahi:#x} at {addr:#x} ends above 4 GiB")
            assigned.setdefault(host_of(parent), []).append(
                (1 if ss == 1 else 2, addr, addr + size, f"{path} {ahi:#x}"))
            host = nodes[host_of(parent)]
            pna = cells(nodes[parent_path(host_of(parent))].get("#address-cells", b"\0\0\0\2"))[0]
            rng = cells(host.get("ranges", b""))
            width = 3 + pna + 2
            fits = False
            for j in range(0, len(rng), width):
                whi = rng[j]
                wpci = rng[j + 1] << 32 | rng[j + 2]
                wsize = rng[j + width - 2] << 32 | rng[j + width - 1]
                wss, wpref = (whi >> 24) & 3, bool(whi & 0x40000000)
                same_space = (wss == 1) if ss == 1 else wss in (2, 3)
                if not same_space or (wpref and not ahi & 0x40000000):
                    continue
                if wpci <= addr and addr + size <= wpci + wsize:
                    fits = True
            if not fits:
                problems.append(f"{path}: BAR {ahi:#x} [{addr:#x}, {addr + size:#x}) is in no "
                                "host-bridge window of its space (a non-prefetchable BAR never "
                                "in a prefetchable one)")
        pin = cells(props["interrupts"])[0] if "interrupts" in props and is_pci(parent) else 0
        if pin:
            imap = cells(nodes[parent].get("interrupt-map", b""))
            if not any(True for _ in _imap_matches(imap, nodes, by_phandle, parent, hi, pin)):
                problems.append(f"{path}: INTx pin {pin} of slot {dev} has no interrupt-map "
                                f"entry in {parent}")

    for host_path, regions in assigned.items():
        regions.sort()
        for (s1, lo1, hi1, who1), (s2, lo2, _hi2, who2) in itertools.pairwise(regions):
            if s1 == s2 and lo2 < hi1:
                problems.append(f"{host_path}: BARs overlap: {who1} [{lo1:#x}, {hi1:#x}) and "
                                f"{who2} at {lo2:#x}")

    # Bridges: nesting, siblings, swizzle.
    for path in bus_nodes:
        parent = parent_path(path)
        if path not in ranges_of:
            continue
        first, last = ranges_of[path]
        if is_pci(parent) and parent in ranges_of:
            own_bus = (cells(nodes[path]["reg"])[0] >> 16) & 0xFF
            pfirst, plast = ranges_of[parent]
            if not (first > own_bus and pfirst < first and last <= plast):
                problems.append(f"{path}: bus-range {first:#x}..{last:#x} not nested in "
                                f"{parent}'s {pfirst:#x}..{plast:#x} above its own bus "
                                f"{own_bus:#x}")
            _check_swizzle(path, nodes, by_phandle, problems)
        siblings = sorted(ranges_of[p] + (p,) for p in bus_nodes
                          if parent_path(p) == path and p in ranges_of)
        for a, b in itertools.pairwise(siblings):
            if b[0] <= a[1]:
                problems.append(f"{a[2]} and {b[2]}: sibling bus ranges overlap")
        if not is_pci(parent):
            _check_swizzle(path, nodes, by_phandle, problems, host=True)
            problems.extend(_msi_map_problems(path, nodes, by_phandle))
    return problems


def _imap_matches(imap: list[int], nodes: dict[str, dict[str, bytes]], by_phandle: dict[int, str],
                  node: str, child_hi: int, pin: int) -> list[list[int]]:
    """interrupt-map entries of ``node`` matching (child address, pin) under the mask."""
    mask = cells(nodes[node].get("interrupt-map-mask", b"\xff" * 16))
    out: list[list[int]] = []
    i = 0
    while i < len(imap):
        target = by_phandle.get(imap[i + 4])
        if target is None:
            return out
        tprops = nodes[target]
        pac = cells(tprops.get("#address-cells", b"\0\0\0\0"))[0]
        pic = cells(tprops.get("#interrupt-cells", b"\0\0\0\1"))[0]
        entry = imap[i:i + 5 + pac + pic]
        if entry[0] & mask[0] == child_hi & mask[0] and entry[3] & mask[3] == pin & mask[3]:
            out.append(entry)
        i += 5 + pac + pic
    return out


def _check_swizzle(path: str, nodes: dict[str, dict[str, bytes]], by_phandle: dict[int, str],
                   problems: list[str], host: bool = False) -> None:
    """Every pin used below a bus node has an interrupt-map entry; on a bridge it
    maps to the bridge's own address with pin' = ((pin - 1 + device) % 4) + 1,
    in the parent bus node (domain.md 4.1)."""
    props = nodes[path]
    imap = cells(props.get("interrupt-map", b""))
    own_hi = 0 if host else cells(props["reg"])[0]
    children = [p for p in nodes if parent_path(p) == path and p != path]
    for child in children:
        cprops = nodes[child]
        chi = cells(cprops["reg"])[0]
        pins = [cells(cprops["interrupts"])[0]] if "interrupts" in cprops else []
        if "interrupt-map" in cprops:  # a bridge below: every pin it forwards
            cimap = cells(cprops["interrupt-map"])
            i = 0
            while i < len(cimap):
                target = by_phandle.get(cimap[i + 4])
                assert target is not None
                pac = cells(nodes[target].get("#address-cells", b"\0\0\0\0"))[0]
                pic = cells(nodes[target].get("#interrupt-cells", b"\0\0\0\1"))[0]
                pins.append(cimap[i + 5 + pac])
                i += 5 + pac + pic
        dev = (chi >> 11) & 0x1F
        for pin in sorted(set(pins)):
            got = _imap_matches(imap, nodes, by_phandle, path, chi, pin)
            want = [own_hi, 0, 0, ((pin - 1 + dev) % 4) + 1]
            if not got:
                problems.append(f"{path}: no interrupt-map entry for slot {dev} pin {pin} "
                                f"({child})")
            elif not host and (got[0][5:] != want
                               or by_phandle.get(got[0][4]) != parent_path(path)):
                problems.append(f"{path}: slot {dev} pin {pin} maps to {got[0][4:]}, expected "
                                f"<&{parent_path(path)} {want}> (swizzle)")


def _msi_map_problems(host: str, nodes: dict[str, dict[str, bytes]],
                      by_phandle: dict[int, str]) -> list[str]:
    out: list[str] = []
    if "msi-map" not in nodes[host]:
        if "msi-map-mask" in nodes[host]:
            out.append(f"{host}: msi-map-mask without msi-map")
        return out
    mm = cells(nodes[host]["msi-map"])
    if not mm or len(mm) % 4:
        return [f"{host}: msi-map has {len(mm)} cells, not 4 per entry"]
    for i in range(0, len(mm), 4):
        rid, ph, _base, length = mm[i:i + 4]
        target = by_phandle.get(ph)
        if length < 1 or rid + length > 0x10000:
            out.append(f"{host}: msi-map entry {mm[i:i + 4]} is empty or passes RID 0xffff")
        if target is None or "msi-controller" not in nodes[target] \
                or cells(nodes[target].get("#msi-cells", b"")) != [1]:
            out.append(f"{host}: msi-map entry {mm[i:i + 4]} targets {target}, not an MSI "
                       "controller with #msi-cells = <1>")
    return out
