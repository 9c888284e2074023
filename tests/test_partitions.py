"""Partition trees hold their own functions and nothing of anybody else's.

domain.md 3.1 and 5.6: an OS must not touch the config space of a function
outside its partition, so a partition's device tree names only the functions
it owns, with the host bridge and bridges above them as path nodes. No other
partition's node, label, ``reg`` (config phys.hi), ``interrupt-map`` slot or
``msi-map`` requester ID may leak into it. A partition may own SR-IOV VFs
without their PF (the VF nodes sit beside the PF, on its bus).

* examples/partitions/partitions.msi: a PAPR machine, three partitions on two
  PHBs, several PEs, two SR-IOV NICs whose VFs are split between partitions.
  It compiles with no diagnostic; every DTB passes dtc without a warning and
  round-trips byte for byte; each partition tree is checked for leaks by
  walking the DTB with pylibfdt.
* A Hypothesis property over random partitionings of generated topologies
  (native GICv3 ITS with msi-map, and PAPR): the same no-leak property, every
  owned function present in its partition's tree, and the system tree holding
  every function and bridge.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import libfdt
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from dtmsi.diagnostics import render_text
from dtmsi.driver import CompileResult, compile_file
from dtmsi.model import Function, HostBridge, Machine, Partition
from dtmsi.options import CompileOptions
from tests.conftest import RunDtc, cells, parent_path, read_nodes

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "partitions" / "partitions.msi"

Nodes = dict[str, dict[str, bytes]]
Key = tuple[str, int]  # (host bridge node name, requester ID bus << 8 | devfn)


# ---------------------------------------------------------------- compiling


def compile_source(path: Path) -> CompileResult:
    result = compile_file(CompileOptions(input=path))
    diags = list(result.sink)
    assert not diags, "diagnostics:\n" + "\n".join(render_text(d) for d in diags)
    assert result.machine is not None
    return result


def artifacts(result: CompileResult) -> dict[str, bytes]:
    return {a.name: a.data for a in result.artifacts}


def check_dtc(name: str, dtb: bytes, dts: bytes, run_dtc: RunDtc, tmp: Path) -> None:
    """dtc reads our DTB without a warning, compiles our DTS to the same bytes, and
    its own DTB -> DTS -> DTB round trip gives the same bytes back."""
    dtb_path, dts_path = tmp / f"{name}.dtb", tmp / f"{name}.dts"
    dtb_path.write_bytes(dtb)
    dts_path.write_bytes(dts)
    back = run_dtc("-I", "dtb", "-O", "dts", dtb_path)
    assert back.returncode == 0, f"{name}: dtc fails on our DTB:\n{back.stderr.decode()}"
    assert back.stderr == b"", f"{name}: dtc warns on our DTB:\n{back.stderr.decode()}"
    again = run_dtc("-I", "dts", "-O", "dtb", stdin=back.stdout)
    assert again.returncode == 0 and again.stderr == b"", again.stderr.decode()
    assert again.stdout == dtb, f"{name}: dtb -> dts -> dtb changes the bytes"
    ours = run_dtc("-I", "dts", "-O", "dtb", dts_path)
    assert ours.returncode == 0, f"{name}: dtc fails on our DTS:\n{ours.stderr.decode()}"
    assert ours.stderr == b"", f"{name}: dtc warns on our DTS:\n{ours.stderr.decode()}"
    assert ours.stdout == dtb, f"{name}: dtc compiles our DTS to other bytes"


# ---------------------------------------------------------------- the model's view


def host_node_name(hb: HostBridge) -> str:
    if hb.kind == "papr":
        return f"pci@{hb.buid or 0:x}"
    return f"pcie@{hb.config_base or 0:x}"


def key(f: Function) -> Key:
    return host_node_name(f.host), f.rid


def has_node(f: Function) -> bool:
    """VFs beyond their PF's bus have no node (W310); every other function has one."""
    return not (f.kind == "vf" and f.pf is not None and f.bus != f.pf.bus)


def all_functions(machine: Machine) -> list[Function]:
    return [f for f in machine.functions() if has_node(f)]


def owned(part: Partition) -> list[Function]:
    return [f for f in part.functions if has_node(f)]


def expected_bridges(machine: Machine, keep: set[int] | None) -> set[Key]:
    """Bridges a tree shows: all of them in the system tree; in a partition tree
    the owned ones and those above an owned function (path nodes)."""
    out: set[Key] = set()
    for hb in machine.host_bridges:
        for f in hb.functions():
            if not f.is_bridge:
                continue
            below = [g for g in f.walk()[1:] if not g.is_bridge]
            below += [vf for g in f.walk() if g.sriov for vf in g.sriov.vfs if has_node(vf)]
            if keep is None or id(f) in keep or any(id(g) in keep for g in below):
                out.add(key(f))
    return out


# ---------------------------------------------------------------- the DTB's view


@dataclass
class TreeView:
    """What a DTB names, read with pylibfdt (via tests.conftest.read_nodes)."""

    nodes: Nodes
    endpoints: dict[Key, str] = field(default_factory=dict)  # non-bridge function nodes
    bridges: dict[Key, str] = field(default_factory=dict)
    bridge_regs: dict[Key, list[int]] = field(default_factory=dict)
    imap_slots: set[tuple[str, int]] = field(default_factory=set)  # (bus node path, device)
    msi_map_rids: dict[str, set[int]] = field(default_factory=dict)  # host node -> RIDs


def _is_pci_bus(props: dict[str, bytes]) -> bool:
    return props.get("device_type") == b"pci\0"


def read_view(dtb: bytes) -> TreeView:
    nodes = read_nodes(dtb)
    libfdt.Fdt(dtb)  # libfdt accepts it (read_nodes walked it with libfdt too)
    view = TreeView(nodes)
    by_phandle = {cells(p["phandle"])[0]: path for path, p in nodes.items() if "phandle" in p}
    for path, props in nodes.items():
        if path == "/":
            continue
        parent = parent_path(path)
        top = path.split("/")[1]
        if parent == "/" and _is_pci_bus(props) and "msi-map" in props:
            mm = cells(props["msi-map"])
            rids: set[int] = set()
            for i in range(0, len(mm), 4):
                rids.update(range(mm[i], mm[i] + mm[i + 3]))
            view.msi_map_rids[top] = rids
        if parent != "/" and _is_pci_bus(nodes[parent]):
            hi = cells(props["reg"])[0]
            k = (top, (hi >> 8) & 0xFFFF)
            if _is_pci_bus(props):
                view.bridges[k] = path
                view.bridge_regs[k] = cells(props["reg"])
            else:
                view.endpoints[k] = path
        if _is_pci_bus(props) and "interrupt-map" in props:
            imap = cells(props["interrupt-map"])
            i = 0
            while i < len(imap):
                target = nodes[by_phandle[imap[i + 4]]]
                pac = cells(target.get("#address-cells", b"\0\0\0\0"))[0]
                pic = cells(target.get("#interrupt-cells", b"\0\0\0\1"))[0]
                view.imap_slots.add((path, (imap[i] >> 11) & 0x1F))
                i += 5 + pac + pic
    return view


def check_partition_tree(machine: Machine, part: Partition, dtb: bytes, dts: str) -> None:
    """The partition's DTB names exactly its own functions, the bridges above them,
    and no requester ID, interrupt-map slot or label of anybody else."""
    view = read_view(dtb)
    mine = {key(f): f for f in owned(part)}
    everyone = {key(f): f for f in all_functions(machine)}
    where = f"partition '{part.name}'"

    leaked = {k: everyone[k].name if k in everyone else "?" for k in view.endpoints
              if k not in mine}
    assert not leaked, f"{where} shows functions it does not own: {leaked}"
    missing = [f.name for k, f in mine.items() if not f.is_bridge and k not in view.endpoints]
    assert not missing, f"{where} lacks its own functions {missing}"

    keep = {id(f) for f in part.functions}
    want_bridges = expected_bridges(machine, keep)
    assert set(view.bridges) == want_bridges, (
        f"{where}: bridges {sorted(view.bridges)} != path bridges {sorted(want_bridges)}")
    for k, path in view.bridges.items():
        below = [e for e in view.endpoints.values() if e.startswith(path + "/")]
        if k not in mine:
            assert below, f"{where}: bridge {path} leads to none of its functions"
            assert len(view.bridge_regs[k]) == 5, f"{where}: foreign bridge {path} shows its BARs"
            assert "assigned-addresses" not in view.nodes[path], path

    # interrupt-map: every child slot is the device number of a node of this tree
    # on that bus (an owned function, or a bridge above one).
    for bus_path, dev in view.imap_slots:
        kids = [p for p in view.nodes if parent_path(p) == bus_path and "reg" in view.nodes[p]]
        devs = {(cells(view.nodes[p]["reg"])[0] >> 11) & 0x1F for p in kids}
        assert dev in devs, f"{where}: {bus_path} interrupt-map names slot {dev}, not in its tree"

    # msi-map: only requester IDs (as the host bridge sees them) of own functions.
    for host, rids in view.msi_map_rids.items():
        allowed = {f.dma_alias for f in mine.values() if key(f)[0] == host}
        assert rids <= allowed, (f"{where}: {host} msi-map covers requester IDs "
                                 f"{sorted(hex(r) for r in rids - allowed)} of other partitions")

    # No label, node name or comment mentions another partition's function.
    present = {k for k in view.bridges} | set(mine)
    foreign = {f.name for f in machine.functions() if key(f) not in present and id(f) not in keep}
    for name in sorted(foreign):
        m = re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", dts)
        assert m is None, f"{where}: DTS mentions '{name}': ...{dts[m.start() - 60:m.end() + 20]}"


def check_system_tree(machine: Machine, dtb: bytes) -> None:
    view = read_view(dtb)
    want = {key(f) for f in all_functions(machine) if not f.is_bridge}
    assert set(view.endpoints) == want, (
        f"system tree: missing {sorted(want - set(view.endpoints))}, "
        f"extra {sorted(set(view.endpoints) - want)}")
    assert set(view.bridges) == expected_bridges(machine, None)


# ---------------------------------------------------------------- the example

# Ownership as the example's comment lays it out (checked against dtmsi's
# resolution of the 'owns' selectors, PEs and VF ranges).
EXAMPLE_OWNERS = {
    "lpar1": {"bridge0", "eth0", "eth1", "nic1", "nic0_vf0", "nic0_vf1", "nic0_vf2", "nic0_vf3",
              "nic1_vf0", "nic1_vf1"},
    "lpar2": {"nvme0", "ssd1", "sw1_dp0", "nic0_vf4", "nic0_vf5", "nic1_vf2", "nic1_vf3"},
    "lpar3": {"nic0", "ssd2", "sw1_dp1", "gpu0", "gpu0_audio", "nic0_vf6", "nic0_vf7"},
}


@pytest.fixture(scope="module")
def example() -> CompileResult:
    return compile_source(EXAMPLE)


def test_example_ownership(example: CompileResult) -> None:
    assert example.machine is not None
    got = {p.name: {f.name for f in p.functions} for p in example.machine.partitions}
    assert got == EXAMPLE_OWNERS
    # VFs split between partitions, and partitions owning VFs without the PF.
    nic0_vfs = {p: {n for n in fs if n.startswith("nic0_vf")} for p, fs in got.items()}
    assert all(nic0_vfs.values()) and "nic0" not in got["lpar1"] | got["lpar2"]
    # Every endpoint and VF has exactly one owner.
    endpoints = [f for f in example.machine.functions() if not f.is_bridge]
    for f in endpoints:
        assert sum(f.name in fs for fs in got.values()) == 1, f.name
    assert {pe.name for pe in example.machine.pes} == {
        "pe_eth", "pe_nvme0", "pe_nic0", "pe_ssd1", "pe_ssd2", "pe_gpu", "pe_nic1"}


def test_example_outputs_pass_dtc(example: CompileResult, run_dtc: RunDtc,
                                  tmp_path: Path) -> None:
    files = artifacts(example)
    names = sorted(n.removesuffix(".dtb") for n in files if n.endswith(".dtb"))
    assert names == ["lpar1", "lpar2", "lpar3", "system"]
    for name in names:
        check_dtc(name, files[f"{name}.dtb"], files[f"{name}.dts"], run_dtc, tmp_path)


@pytest.mark.parametrize("name", ["lpar1", "lpar2", "lpar3"])
def test_example_partition_has_no_leaks(example: CompileResult, name: str) -> None:
    assert example.machine is not None
    part = next(p for p in example.machine.partitions if p.name == name)
    files = artifacts(example)
    check_partition_tree(example.machine, part, files[f"{name}.dtb"],
                         files[f"{name}.dts"].decode())


def test_example_system_tree_has_everything(example: CompileResult) -> None:
    assert example.machine is not None
    check_system_tree(example.machine, artifacts(example)["system.dtb"])


def test_example_partition_quota_views(example: CompileResult) -> None:
    """The PAPR quota is computed over each partition's own tree: the NVMe policy
    asks one vector per CPU of the owning partition (4 in lpar2, 8 in lpar3)."""
    assert example.allocation is not None and example.machine is not None
    by_name = {a.function.name: a for a in example.allocation.order}
    assert (by_name["ssd1"].granted, by_name["ssd2"].granted) == (4, 8)
    assert by_name["nvme0"].req_msix == 4
    for name in ("nic0_vf0", "nic0_vf7", "nic1_vf3"):
        assert (by_name[name].mechanism, by_name[name].granted) == ("msix", 2)


def test_example_quota_views_match_partition_trees(example: CompileResult) -> None:
    """dtmsi predicts Linux's quota over each partition's view of a PHB; the
    Linux walk over the partition's own DTB gives the same numbers."""
    from dtmsi import papr
    from tests.test_papr import dtb_quota

    assert example.machine is not None and example.allocation is not None
    files = artifacts(example)
    for part in example.machine.partitions:
        nodes = read_nodes(files[f"{part.name}.dtb"])
        view = read_view(files[f"{part.name}.dtb"])
        keep = {id(f) for f in part.functions}
        for f in owned(part):
            if f.is_bridge:
                continue
            _root, index = papr.build_view(f.host, keep, example.allocation)
            path = view.endpoints[key(f)]
            for request in (1, 2, 4, 8, 16, 32, 64):
                assert dtb_quota(nodes, path, request) == \
                    papr.msi_quota_for_device(index[id(f)], request), (part.name, f.name, request)


# ---------------------------------------------------------------- random partitionings


Flavour = Literal["native", "papr"]


@dataclass
class Ep:
    """One endpoint device (one or two functions): a PE, owned as a whole."""

    name: str
    device: int
    functions: int
    msix: bool


@dataclass
class SriovPf:
    name: str
    vfs: int
    behind_switch: bool  # on a downstream port of the switch rather than the root bus


@dataclass
class RandomHost:
    root: list[Ep]
    switch: list[Ep] | None  # endpoints behind the downstream ports of a switch
    sriov: SriovPf | None


@dataclass
class Plan:
    flavour: Flavour
    hosts: list[RandomHost]
    partitions: int
    owner: dict[str, int | None]  # unit name (device, PF, VF) -> partition index or None
    by_pe: dict[str, bool]  # device name -> owned through 'pe NAME' rather than by name


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    flavour: Flavour = draw(st.sampled_from(["native", "papr"]))
    counter = [0]

    def ep(device: int) -> Ep:
        counter[0] += 1
        return Ep(f"ep{counter[0]}", device, draw(st.integers(1, 2)), draw(st.booleans()))

    hosts = []
    for _ in range(draw(st.integers(1, 2))):
        root = [ep(d) for d in sorted(draw(st.sets(st.integers(1, 6), max_size=3)))]
        switch = ([ep(0) for _ in range(draw(st.integers(1, 3)))]
                  if draw(st.booleans()) else None)
        sriov = None
        if draw(st.booleans()):
            counter[0] += 1
            sriov = SriovPf(f"sr{counter[0]}", draw(st.integers(1, 6)),
                            switch is not None and draw(st.booleans()))
        if not root and switch is None and sriov is None:
            root = [ep(1)]
        hosts.append(RandomHost(root, switch, sriov))
    partitions = draw(st.integers(1, 3))
    units = [e.name for h in hosts for e in h.root + (h.switch or [])]
    units += [n for h in hosts if h.sriov for n in
              [h.sriov.name, *(f"{h.sriov.name}_vf{i}" for i in range(h.sriov.vfs))]]
    choice = st.one_of(st.integers(0, partitions - 1), st.none())
    owner = {u: draw(choice) for u in units}
    by_pe = {u: draw(st.booleans()) for u in units}
    return Plan(flavour, hosts, partitions, owner, by_pe)


def _endpoint_lines(e: Ep, pad: str) -> list[str]:
    out = []
    for fn in range(e.functions):
        name = e.name if fn == 0 else f"{e.name}_f{fn}"
        cap = ("msix 4 table bar 0 + 0x0 pba bar 0 + 0x2000;" if e.msix else "msi 2 addr64;")
        out += [f"{pad}endpoint {name} @ {e.device:02x}.{fn} {{",
                f"{pad}    id 8086:10d3 class 0x020000;",
                f"{pad}    bar 0 mem32 16K;",
                f"{pad}    {cap}",
                f"{pad}    intx {'AB'[fn]};",
                f"{pad}}}"]
    return out


def _sriov_lines(pf: SriovPf | None, devfn: str) -> list[str]:
    """An SR-IOV NIC at devfn; its VFs follow at routing-ID offset 8, stride 1
    (so at device 1: below a switch port that needs ARI, W313)."""
    if pf is None:
        return []
    return [f"    endpoint {pf.name} @ {devfn} {{",
            *(["        ari;"] if pf.behind_switch else []),
            "        id 15b3:101b class 0x020000;",
            "        bar 0 mem32 16K;",
            "        msix 4 table bar 0 + 0x0 pba bar 0 + 0x2000;",
            "        intx A;",
            "        sriov {",
            f"            total-vfs 8; vfs {pf.vfs}; offset 8; stride 1;",
            "            vf-id 0x101c;",
            "            bar 0 mem32 16K;",
            "            msix 2 table bar 0 + 0x0 pba bar 0 + 0x2000;",
            "        }",
            "    }"]


def device_names(e: Ep) -> list[str]:
    return [e.name if fn == 0 else f"{e.name}_f{fn}" for fn in range(e.functions)]


def render_plan(plan: Plan) -> str:
    native = plan.flavour == "native"
    if native:
        lines = ['platform "example,partitions-native" { msi native; }',
                 "gic = interrupt-controller gicv3 @ 0x0800_0000 size 64K {",
                 "    redistributor @ 0x080a_0000 size 0xf6_0000;",
                 "}"]
        for i in range(len(plan.hosts)):
            lines.append(f"its{i} = msi-controller gicv3-its @ {0x0808_0000 + i * 0x20000:#x} "
                         "size 128K { parent gic; }")
    else:
        lines = ['platform "example,partitions-papr" {',
                 "    msi hypervisor papr { change-msi 0x2019; "
                 "query-interrupt-source-number 0x2018; }",
                 "}",
                 "xics = interrupt-controller xics { servers 0..7; }"]
    for i, h in enumerate(plan.hosts):
        if native:
            lines += [f"host-bridge hb{i} ecam @ {0x40_0000_0000 + i * 0x1_0000_0000:#x} size 16M {{",
                      f"    window mem32 cpu {0x4000_0000 + i * 0x1000_0000:#x} size 256M;",
                      f"    msi map rid 0x0000..0x0fff -> its{i};",
                      f"    intx -> gic spi {4 + 4 * i}..{7 + 4 * i} level;"]
        else:
            lines += [f"host-bridge hb{i} papr buid {0x800_0000_2000_0000 + i:#x} {{",
                      f"    window mem32 cpu {0x200_8000_0000 + i * 0x1_0000_0000:#x} "
                      "pci 0x8000_0000 size 256M;",
                      "    pe-total-msi 512;",
                      f"    intx -> xics irq {0x1200 + 0x10 * i}..{0x1203 + 0x10 * i} level;"]
        lines += [f"    domain {i};", "    buses 0..15;"]
        for e in h.root:
            lines += _endpoint_lines(e, "    ")
        sriov = _sriov_lines(h.sriov, "00.0" if h.sriov and h.sriov.behind_switch else "10.0")
        if h.switch is not None:
            lines += [f"    switch sw{i} @ 08.0 {{", "        id 10b5:8747;"]
            for j, e in enumerate(h.switch):
                lines.append(f"        downstream sw{i}_dp{j} @ {j:02x}.0 {{")
                lines += _endpoint_lines(e, "            ")
                lines.append("        }")
            if h.sriov is not None and h.sriov.behind_switch:
                lines.append(f"        downstream sw{i}_dp{len(h.switch)} @ 10.0 {{")
                lines += ["        " + line for line in sriov]
                lines.append("        }")
            lines.append("    }")
        if h.sriov is not None and not h.sriov.behind_switch:
            lines += sriov
        lines.append("}")
    # PEs: one per endpoint device (all its functions), one per PF, one per VF.
    devices = {e.name: e for h in plan.hosts for e in h.root + (h.switch or [])}
    for name, e in devices.items():
        lines.append(f"pe pe_{name} {{ owns {', '.join(device_names(e))}; }}")
    owns: dict[int | None, list[str]] = {}
    for h in plan.hosts:
        for e in h.root + (h.switch or []):
            sel = f"pe pe_{e.name}" if plan.by_pe[e.name] else ", ".join(device_names(e))
            owns.setdefault(plan.owner[e.name], []).append(sel)
        if h.sriov is not None:
            pf = h.sriov.name
            owns.setdefault(plan.owner[pf], []).append(pf)
            # VF ranges: consecutive VFs with one owner become pf.vf[a..b].
            i = 0
            while i < h.sriov.vfs:
                j = i
                while j + 1 < h.sriov.vfs and \
                        plan.owner[f"{pf}_vf{j + 1}"] == plan.owner[f"{pf}_vf{i}"]:
                    j += 1
                sel = (f"{pf}.vf[{i}..{j}]" if plan.by_pe[f"{pf}_vf{i}"] or i == j
                       else ", ".join(f"{pf}_vf{k}" for k in range(i, j + 1)))
                owns.setdefault(plan.owner[f"{pf}_vf{i}"], []).append(sel)
                i = j + 1
    for p in range(plan.partitions):
        lines.append(f"partition part{p} {{")
        lines.append(f"    cpus {2 * p}..{2 * p + 1};")
        if owns.get(p):
            lines.append(f"    owns {', '.join(owns[p])};")
        lines.append("}")
    if owns.get(None):
        lines.append(f"unassigned {', '.join(owns[None])};")
    return "\n".join(lines) + "\n"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=plans())
def test_random_partitionings_do_not_leak(plan: Plan) -> None:
    text = render_plan(plan)
    note(text)
    with tempfile.TemporaryDirectory(prefix="dtmsi-part-") as tmp:
        src = Path(tmp) / "random.msi"
        src.write_text(text, encoding="utf-8")
        result = compile_source(src)
    machine = result.machine
    assert machine is not None
    files = artifacts(result)
    assert sorted(n for n in files if n.endswith(".dtb")) == sorted(
        [f"part{p}.dtb" for p in range(plan.partitions)] + ["system.dtb"])
    check_system_tree(machine, files["system.dtb"])
    seen: dict[Key, str] = {}
    for part in machine.partitions:
        check_partition_tree(machine, part, files[f"{part.name}.dtb"],
                             files[f"{part.name}.dts"].decode())
        # The model agrees with the plan: who owns what.
        for f in part.functions:
            if f.is_bridge:
                continue
            unit = f.name.split("_f")[0] if f.kind != "vf" else f.name
            assert plan.owner[unit] == int(part.name.removeprefix("part")), f.name
            assert key(f) not in seen, f"{f.name} in {seen.get(key(f))} and {part.name}"
            seen[key(f)] = part.name
    owned_units = {u for u, p in plan.owner.items() if p is not None}
    assert {f.name for p in machine.partitions for f in p.functions
            if f.kind != "vf" and not f.is_bridge and "_f" not in f.name} | {
        f.name for p in machine.partitions for f in p.functions if f.kind == "vf"
    } == owned_units
    unowned = {u for u, p in plan.owner.items() if p is None}
    assert {f.name for f in machine.unassigned if "_f" not in f.name} == unowned


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=plans())
def test_random_partition_dtbs_pass_dtc(plan: Plan, run_dtc: RunDtc) -> None:
    text = render_plan(plan)
    note(text)
    with tempfile.TemporaryDirectory(prefix="dtmsi-part-") as tmp:
        src = Path(tmp) / "random.msi"
        src.write_text(text, encoding="utf-8")
        result = compile_source(src)
        files = artifacts(result)
        for name in sorted(n.removesuffix(".dtb") for n in files if n.endswith(".dtb")):
            check_dtc(name, files[f"{name}.dtb"], files[f"{name}.dts"], run_dtc, Path(tmp))


# ---------------------------------------------------------------- msi-map-mask

MASKED = """\
platform "example,masked-msi-map" { msi native; }
gic = interrupt-controller gicv3 @ 0x0800_0000 size 64K {
    redistributor @ 0x080a_0000 size 0xf6_0000;
}
its = msi-controller gicv3-its @ 0x0808_0000 size 128K { parent gic; }
host-bridge pcie0 ecam @ 0x3000_0000 size 2M {
    buses 0..1;
    window mem32 cpu 0x4000_0000 size 256M;
    // The root complex drops the bus number: the ITS sees devfn only, and the
    // map adds 0x100 back (DeviceID = RID for the function behind rp0).
    msi map rid 0x00..0xff -> its base 0x100;
    msi map-mask 0xff;
    root-port rp0 @ 01.0 {
        endpoint eth0 @ 00.0 { id 8086:10d3 class 0x020000; bar 0 mem32 16K; msi 1; }
    }
}
partition a { cpus 0..1; owns eth0; }
"""


def _msi_map_lookup(props: dict[str, bytes], rid: int) -> int | None:
    """Linux of_map_id(): mask the ID; an entry whose rid-base has bits outside
    the mask aborts the lookup (-EFAULT, here None); first match wins."""
    mask = cells(props["msi-map-mask"])[0] if "msi-map-mask" in props else 0xFFFFFFFF
    masked = rid & mask
    mm = cells(props["msi-map"])
    for i in range(0, len(mm), 4):
        base, _ph, out, length = mm[i:i + 4]
        if base & ~mask:
            return None
        if base <= masked < base + length:
            return out + masked - base
    return None


def test_partition_msi_map_honours_msi_map_mask(tmp_path: Path) -> None:
    src = tmp_path / "masked.msi"
    src.write_text(MASKED, encoding="utf-8")
    result = compile_source(src)
    files = artifacts(result)
    system = read_nodes(files["system.dtb"])["/pcie@30000000"]
    part = read_nodes(files["a.dtb"])["/pcie@30000000"]
    assert _msi_map_lookup(system, 0x100) == 0x100
    assert _msi_map_lookup(part, 0x100) == 0x100
