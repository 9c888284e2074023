"""PAPR (hypervisor-managed MSI): the worked tree of domain.md 4.6, the quota
table of domain.md 3.5 and the RTAS argument encodings, all as dtmsi produces them.

1. tests/data/domain-4.6-papr.dts is copied verbatim from shared/domain.md 4.6;
   examples/worked-papr/worked-papr.msi describes the same machine. Every node
   and property of the reference is compared with ours (reference through real
   dtc, both read back with pylibfdt); each property we add or change is named
   below with the reason.
2. The quota table of domain.md 3.5, row by row, from dtmsi's own prediction
   (allocation.json of compiled variants, and dtmsi.papr over the same tree),
   cross-checked by an independent transcription of the Linux walk over the
   DTB dtmsi emits. domain.md computed the table by hand and left out one
   detail of the real Linux code: pci_traverse_device_nodes() calls
   count_spare_msis() on *every* child node, bridges included; a bridge has
   no ibm,req# property, so its demand is 0 and it adds a whole quota to the
   spare pool. The tree of 4.6 has a bridge, so two cells of the table differ
   there (see LINUX_WITH_BRIDGE); with both devices directly on the PHB the
   hand-computed numbers hold exactly (DOMAIN_NO_BRIDGE).
3. RTAS config_addr and BUID hi/lo for the worked tree (domain.md 3.2, 4.6).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libfdt
import pytest

from dtmsi import papr
from dtmsi.alloc import AllocationResult
from dtmsi.driver import CompileResult, compile_file
from dtmsi.model import Function, Machine
from dtmsi.options import CompileOptions
from tests.conftest import RunDtc, cells, read_nodes

ROOT = Path(__file__).resolve().parent.parent
WORKED = ROOT / "examples" / "worked-papr" / "worked-papr.msi"
REFERENCE = ROOT / "tests" / "data" / "domain-4.6-papr.dts"

PHB = "/pci@800000020000000"
BRIDGE = f"{PHB}/pci@1"
ETH = f"{BRIDGE}/ethernet@0"
NVME = f"{BRIDGE}/nvme@1"


# ---------------------------------------------------------------- helpers


def _compile(path: Path) -> CompileResult:
    result = compile_file(CompileOptions(input=path))
    errors = [d for d in result.sink if d.code.is_error]
    assert not errors, f"{path.name}: {[(d.code.id, d.message) for d in errors]}"
    return result


def _compile_text(text: str) -> CompileResult:
    with tempfile.TemporaryDirectory(prefix="dtmsi-papr-") as tmp:
        src = Path(tmp) / "variant.msi"
        src.write_text(text, encoding="utf-8")
        return _compile(src)


def _artifacts(result: CompileResult) -> dict[str, bytes]:
    return {a.name: a.data for a in result.artifacts}


def _allocation_json(result: CompileResult) -> dict[str, dict[str, Any]]:
    doc = json.loads(_artifacts(result)["allocation.json"])
    return {f["name"]: f for f in doc["functions"]}


def _function(machine: Machine, name: str) -> Function:
    return next(f for f in machine.functions() if f.name == name)


@pytest.fixture(scope="module")
def worked() -> CompileResult:
    return _compile(WORKED)


# ---------------------------------------------------------------- 1. the worked tree

# Properties of our tree that the reference lacks, and why.
OURS_ONLY = {
    # The DT spec requires a root 'model'; the reference has none, so dtmsi's
    # default (the platform's compatible string) is an extra.
    ("/", "model"),
    # IEEE 1275 PCI binding: every function gets "pciVVVV,DDDD", "pciclass,CCSSPP",
    # "pciclass,CCSS"; the reference (QEMU style) has no compatible on PCI nodes.
    (BRIDGE, "compatible"),
    (ETH, "compatible"),
    (NVME, "compatible"),
    # dtmsi places every BAR at build time and publishes where (n bit set); the
    # reference leaves BARs relocatable (reg only), as QEMU's modern code does.
    (ETH, "assigned-addresses"),
    (NVME, "assigned-addresses"),
    # PAPR: ibm,change-msi functions 3 and 4 (MSI, MSI-X), which dtmsi's stubs
    # use, exist only where /rtas says so; QEMU's own pseries tree says it
    # (tests/devicetree/test_qemu_pseries_tree.py); domain.md's excerpt omits it.
    ("/rtas", "ibm,change-msix-capable"),
}
# Properties whose value differs on purpose, and why.
DIFFERENT = {
    # worked-papr.msi declares the 64-bit window 'prefetchable', so its phys.hi is
    # 0x43000000; the reference writes 0x03000000 (non-prefetchable). Nothing
    # else in ranges differs (checked below).
    (PHB, "ranges"),
}
# Nodes whose properties come in another order; the FDT binding gives property
# order no meaning and Linux looks properties up by name, so order is not compared.
ORDER_DIFFERS = {
    "/rtas",  # we write ibm,change-msi first, the reference ibm,query-... first
    # #address-cells = <0> (needed as an interrupt-map parent, dtc checks it)
    # comes after ibm,interrupt-server-ranges in ours, before it in the reference
    "/interrupt-controller",
    # reference: #interrupt-cells and used-by-rtas right after #size-cells; ours:
    # reg/bus-range/ranges first, PAPR properties, then the INTx block together
    PHB,
    # ours: reg right after compatible/device_type (binding order); reference:
    # vendor/device/revision/class-code first; ibm,loc-code (a raw 'property'
    # of the .msi) comes last in ours, before the INTx block in the reference
    BRIDGE,
    ETH,
    NVME,
}
PHANDLE_PROPS = ("interrupt-parent", "interrupt-map")


def _phandles(nodes: dict[str, dict[str, bytes]]) -> dict[int, str]:
    return {cells(p["phandle"])[0]: path for path, p in nodes.items() if "phandle" in p}


def test_papr_worked_tree_matches_domain_reference(worked: CompileResult,
                                                   run_dtc: RunDtc) -> None:
    dtb = _artifacts(worked)["system.dtb"]
    ref_dtb = run_dtc("-I", "dts", "-O", "dtb", REFERENCE)
    assert ref_dtb.returncode == 0 and ref_dtb.stderr == b"", ref_dtb.stderr.decode()
    ours, ref = read_nodes(dtb), read_nodes(ref_dtb.stdout)
    ours_ph, ref_ph = _phandles(ours), _phandles(ref)

    assert list(ours) == list(ref), "node sets (or node order) differ"
    seen_only: set[tuple[str, str]] = set()
    seen_diff: set[tuple[str, str]] = set()
    order_differs: set[str] = set()
    for path, ref_props in ref.items():
        our_props = ours[path]
        for name in our_props.keys() - ref_props.keys():
            assert (path, name) in OURS_ONLY, f"unexpected extra property {path}:{name}"
            seen_only.add((path, name))
        missing = ref_props.keys() - our_props.keys()
        assert not missing, f"{path} lacks {sorted(missing)}"
        if [k for k in our_props if k in ref_props] != list(ref_props):
            order_differs.add(path)
        for name, want in ref_props.items():
            got = our_props[name]
            if name == "phandle":
                continue  # numbering; references are compared by target below
            if name in PHANDLE_PROPS:
                # A phandle cell must point at the same node; other cells equal.
                want_c, got_c = cells(want), cells(got)
                assert len(want_c) == len(got_c), f"{path}:{name}: length differs"
                for w, g in zip(want_c, got_c, strict=True):
                    if w in ref_ph and g in ours_ph:
                        assert ref_ph[w] == ours_ph[g], f"{path}:{name} points elsewhere"
                    else:
                        assert w == g, f"{path}:{name}: {want_c} != {got_c}"
                continue
            if (path, name) in DIFFERENT:
                seen_diff.add((path, name))
                assert got != want, f"{path}:{name} no longer differs: drop it from DIFFERENT"
                continue
            assert got == want, f"{path}:{name}: ours {got!r} != reference {want!r}"
    assert seen_only == OURS_ONLY
    assert seen_diff == DIFFERENT
    assert order_differs == ORDER_DIFFERS

    # ranges: only the p bit of the mem64 window's phys.hi differs.
    ours_r, ref_r = cells(ours[PHB]["ranges"]), cells(ref[PHB]["ranges"])
    assert len(ours_r) == len(ref_r) == 3 * 7
    assert [i for i, (a, b) in enumerate(zip(ours_r, ref_r, strict=True)) if a != b] == [14]
    assert (ref_r[14], ours_r[14]) == (0x03000000, 0x43000000)
    # The compatible lists follow the binding: vendor/device first, then the class.
    assert ours[ETH]["compatible"] == b"pci8086,10d3\0pciclass,020000\0pciclass,0200\0"
    assert ours[NVME]["compatible"] == b"pci144d,a808\0pciclass,010802\0pciclass,0108\0"
    assert ours[BRIDGE]["compatible"] == b"pci1b36,1\0pciclass,060400\0pciclass,0604\0"
    # assigned-addresses: the BAR entry of reg with the n bit, at a mem32 window address.
    for path in (ETH, NVME):
        reg, aa = cells(ours[path]["reg"]), cells(ours[path]["assigned-addresses"])
        assert aa[0] == reg[5] | 0x80000000 and aa[3:5] == reg[8:10]
        assert aa[2] >= 0x80000000 and aa[2] + aa[4] <= 0x80000000 + 0x80000000


def test_papr_worked_dts_compiles_to_our_dtb(worked: CompileResult, run_dtc: RunDtc,
                                             tmp_path: Path) -> None:
    files = _artifacts(worked)
    dts = tmp_path / "system.dts"
    dts.write_bytes(files["system.dts"])
    proc = run_dtc("-I", "dts", "-O", "dtb", dts)
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr.decode()
    assert proc.stdout == files["system.dtb"]


def test_papr_worked_tree_diagnostics_and_rtas_calls(worked: CompileResult) -> None:
    """The worked example compiles cleanly and plans the RTAS calls of domain.md 4.6."""
    assert not list(worked.sink)
    rows = _allocation_json(worked)
    assert rows["eth0"]["reasons"][-1] == "ibm,change-msi function 3, count 4"
    assert rows["nvme0"]["reasons"][-1] == "ibm,change-msi function 4, count 16"
    assert rows["eth0"]["papr"] == {"ibm,req#msi": 4, "ibm,req#msi-x": None, "quota": 4}
    assert rows["nvme0"]["papr"] == {"ibm,req#msi": None, "ibm,req#msi-x": 16, "quota": 16}


# ---------------------------------------------------------------- 2. the quota table


def variant(*, bridge: bool, total: int, nvme_vectors: int) -> str:
    """The 4.6 machine with ibm,pe-total-#msi = total; the NVMe policy asks for
    nvme_vectors MSI-X vectors (16 = its whole table). With bridge=False the two
    functions sit directly on the PHB's bus (00:01.0 and 00:02.0)."""
    vectors = "requested" if nvme_vectors == 16 else str(nvme_vectors)
    eth = ["endpoint eth0 @ {} {{", "    id 8086:10d3 class 0x020000;",
           "    bar 0 mem32 128K;", "    msi 4 addr64;", "    intx A;", "    policy net;", "}"]
    nvme = ["endpoint nvme0 @ {} {{", "    id 144d:a808 class 0x010802;",
            "    bar 0 mem32 16K;", "    msix 16 table bar 0 + 0x2000 pba bar 0 + 0x3000;",
            "    intx A;", "    policy nvme;", "}"]

    def block(lines: list[str], devfn: str, pad: str) -> str:
        return "\n".join(pad + line.format(devfn) if i == 0 else pad + line
                         for i, line in enumerate(lines))

    if bridge:
        body = ("    buses 0..1;\n    pci-bridge bridge0 @ 01.0 {\n        id 1b36:0001;\n"
                + block(eth, "00.0", "        ") + "\n" + block(nvme, "01.0", "        ")
                + "\n    }")
    else:
        body = ("    buses 0..0;\n" + block(eth, "01.0", "    ") + "\n"
                + block(nvme, "02.0", "    "))
    return f"""platform "example,dtmsi-papr" {{
    msi hypervisor papr {{
        change-msi 0x2019;
        query-interrupt-source-number 0x2018;
    }}
}}
xics = interrupt-controller xics {{ servers 0..0; }}
policy net  {{ prefer msi; vectors requested; }}
policy nvme {{ prefer msix; vectors {vectors}; up-front; }}
host-bridge phb0 papr buid 0x800_0000_2000_0000 {{
    window io    cpu 0x200_0000_0000 pci 0x0 size 64K;
    window mem32 cpu 0x200_8000_0000 pci 0x8000_0000 size 2G;
    pe-total-msi {total};
    intx -> xics irq 0x1200..0x1203 level;
{body}
}}
"""


@dataclass(frozen=True)
class Row:
    """One cell of the table: what Linux does for one request."""

    quota: int  # Linux's counts.quota once spare MSIs are shared out (total / n if not needed)
    granted: int  # vectors the driver ends up with (allocation.json vectors_granted)
    hardware: int  # count passed to ibm,change-msi (hardware_vectors)
    function: int  # ibm,change-msi function: 3 = MSI, 4 = MSI-X
    retry: int | None = None  # "quota Q < N: retry with Q" on the way


# Columns of domain.md 3.5: (function, vectors asked); the NVMe asks MSI-X 16
# in one variant of the tree and MSI-X 3 in another.
ETH_MSI_4, NVME_MSIX_16, NVME_MSIX_3 = ("eth0", 4), ("nvme0", 16), ("nvme0", 3)

# domain.md 3.5 exactly, as computed by hand there (n = 2 devices, no bridge):
#   total 8:  eth quota 4 -> fn 3, 4 | nvme 16: quota 4, no spare -> "retry with 4"
#             | nvme 3: quota 4 >= 3, rounded to 4 -> fn 4, 4
#   total 24: eth quota 12 -> 4 | nvme 16: quota 12 + spare 8 = 20 -> fn 4, 16
#             | nvme 3: rounded to 4 -> 4
DOMAIN_NO_BRIDGE: dict[tuple[int, tuple[str, int]], Row] = {
    (8, ETH_MSI_4): Row(quota=4, granted=4, hardware=4, function=3),
    (8, NVME_MSIX_16): Row(quota=4, granted=4, hardware=4, function=4, retry=4),
    (8, NVME_MSIX_3): Row(quota=4, granted=3, hardware=4, function=4),
    (24, ETH_MSI_4): Row(quota=12, granted=4, hardware=4, function=3),
    (24, NVME_MSIX_16): Row(quota=20, granted=16, hardware=16, function=4),
    (24, NVME_MSIX_3): Row(quota=12, granted=3, hardware=4, function=4),
}

# The real Linux values for the tree of 4.6, where both functions sit behind the
# PCI-PCI bridge 00:01.0. n is still 2 (count_non_bridge_devices skips the
# bridge), but count_spare_msis() runs on the bridge node too: no ibm,req#msi(-x)
# -> demand 0 -> spare += quota. Rows that differ from domain.md:
#   total 8,  nvme MSI-X 16: spare = 4 (bridge) + 0 (eth: 4 = quota) -> quota 8,
#             so Linux retries with 8 and asks firmware for 8 (domain.md: retry
#             with 4, 4 granted). eth 4 + nvme 8 = 12 > 8: the hypervisor's PE
#             total is overcommitted, which dtmsi reports as W813.
#   total 24, nvme MSI-X 16: spare = 12 (bridge) + 8 (eth) -> quota 32, not 20;
#             the grant is min(32, 16) = 16 either way.
# Every other cell is the same as in domain.md (the request fits total / n, so
# the spare walk never runs).
LINUX_WITH_BRIDGE: dict[tuple[int, tuple[str, int]], Row] = {
    **DOMAIN_NO_BRIDGE,
    (8, NVME_MSIX_16): Row(quota=8, granted=8, hardware=8, function=4, retry=8),
    (24, NVME_MSIX_16): Row(quota=32, granted=16, hardware=16, function=4),
}
DIFFERS_FROM_DOMAIN = {(8, NVME_MSIX_16), (24, NVME_MSIX_16)}

# Diagnostics each variant draws: W812 when Linux grants fewer vectors than the
# policy asks for, W813 when the planned allocations exceed the PE total.
EXPECTED_CODES = {
    (True, 8, 16): ["W812", "W813"],
    (False, 8, 16): ["W812"],
}


def linux_quota(machine: Machine, allocs: AllocationResult, name: str, request: int) -> int:
    """counts.quota at the end of Linux's msi_quota_for_device(), from dtmsi.papr:
    total / n when the request fits it (Linux returns early), else the quota
    after the spare redistribution (msi_quota_for_device clamps its result to
    the request, so ask with a request no quota can reach)."""
    f = _function(machine, name)
    _root, index = papr.build_view(f.host, None, allocs)
    node = index[id(f)]
    pe = papr.pe_node(node)
    assert pe is not None and pe.pe_total is not None
    base = pe.pe_total // papr.count_devices(pe)
    if request <= base:
        assert papr.msi_quota_for_device(node, request) == request
        return base
    return papr.msi_quota_for_device(node, 1 << 30)


def _check_cell(result: CompileResult, key: tuple[int, tuple[str, int]], want: Row) -> None:
    total, (name, asked) = key
    assert result.machine is not None and result.allocation is not None
    row = _allocation_json(result)[name]
    where = f"total {total}, {name} asks {asked}"
    mech = "msi" if name == "eth0" else "msix"
    assert (row["mechanism"], row["vectors_requested"]) == (mech, asked), where
    assert row["vectors_granted"] == want.granted, f"{where}: {row['reasons']}"
    assert row["hardware_vectors"] == want.hardware, f"{where}: {row['reasons']}"
    # allocation.json's papr.quota is what msi_quota_for_device() returned for the
    # final request, i.e. min(quota, request): the vectors Linux lets through.
    assert row["papr"]["quota"] == min(want.quota, want.granted), where
    assert linux_quota(result.machine, result.allocation, name, asked) == want.quota, where
    assert row["reasons"][-1] == f"ibm,change-msi function {want.function}, count {want.hardware}"
    retries = [r for r in row["reasons"] if "retry with" in r]
    if want.retry is None:
        assert not retries, f"{where}: {retries}"
    else:
        assert retries == [f"quota {want.retry} < {asked}: retry with {want.retry}"], where
    if want.hardware != want.granted:
        assert f"MSI-X rounded up to {want.hardware} (firmware wants powers of two)" \
            in row["reasons"], where


@pytest.mark.parametrize("bridge", [True, False], ids=["with-bridge", "no-bridge"])
@pytest.mark.parametrize("total", [8, 24])
@pytest.mark.parametrize("nvme_vectors", [16, 3])
def test_quota_table(bridge: bool, total: int, nvme_vectors: int) -> None:
    table = LINUX_WITH_BRIDGE if bridge else DOMAIN_NO_BRIDGE
    result = _compile_text(variant(bridge=bridge, total=total, nvme_vectors=nvme_vectors))
    codes = sorted(d.code.id for d in result.sink)
    assert codes == EXPECTED_CODES.get((bridge, total, nvme_vectors), []), \
        [(d.code.id, d.message) for d in result.sink]
    _check_cell(result, (total, ETH_MSI_4), table[(total, ETH_MSI_4)])
    nvme = (total, ("nvme0", nvme_vectors))
    _check_cell(result, nvme, table[nvme])
    if bridge:
        differs = table[nvme] != DOMAIN_NO_BRIDGE[nvme]
        assert differs == (nvme in DIFFERS_FROM_DOMAIN)


def test_quota_w813_names_the_overcommit() -> None:
    """With the bridge and total 8, Linux's spare sharing promises 4 + 8 = 12."""
    result = _compile_text(variant(bridge=True, total=8, nvme_vectors=16))
    (w813,) = [d for d in result.sink if d.code.id == "W813"]
    assert "add up to 12, above its ibm,pe-total-#msi of 8" in w813.message
    (w812,) = [d for d in result.sink if d.code.id == "W812"]
    assert "Linux will give 'nvme0' 8 of the 16 msix vectors" in w812.message


# An independent transcription of Linux's quota walk, over the DTB dtmsi
# emits (pci_traverse_device_nodes, count_non_bridge_devices, count_spare_msis,
# msi_quota_for_device in arch/powerpc/{kernel/pci_dn.c,platforms/pseries/msi.c}),
# so the tree dtmsi writes yields the quota dtmsi predicts.

PCI_CLASS_BRIDGE_PCI, PCI_CLASS_BRIDGE_CARDBUS = 0x0604, 0x0607


def _u32(props: dict[str, bytes], name: str) -> int | None:
    return cells(props[name])[0] if name in props else None


def _children(nodes: dict[str, dict[str, bytes]], path: str) -> list[str]:
    return [p for p in nodes if p.rsplit("/", 1)[0] == path.rstrip("/") and p != path]


def _traverse(nodes: dict[str, dict[str, bytes]], start: str) -> list[str]:
    out: list[str] = []
    for child in _children(nodes, start):
        out.append(child)
        cls = _u32(nodes[child], "class-code") or 0
        if cls >> 8 in (PCI_CLASS_BRIDGE_PCI, PCI_CLASS_BRIDGE_CARDBUS):
            out.extend(_traverse(nodes, child))
    return out


def dtb_quota(nodes: dict[str, dict[str, bytes]], device: str, request: int) -> int:
    pe = device
    while _u32(nodes[pe], "ibm,pe-total-#msi") is None:
        pe = pe.rsplit("/", 1)[0]
    total = _u32(nodes[pe], "ibm,pe-total-#msi")
    assert total is not None
    walk = _traverse(nodes, pe)
    num = sum(1 for n in walk if (_u32(nodes[n], "class-code") or 0) >> 8 != PCI_CLASS_BRIDGE_PCI)
    quota = total // num
    if request <= quota:
        return request
    spare = over = 0
    for n in walk:
        req = request if n == device else max(_u32(nodes[n], "ibm,req#msi") or 0,
                                              _u32(nodes[n], "ibm,req#msi-x") or 0)
        if req < quota:
            spare += quota - req
        elif req > quota:
            over += 1
    spare += total % num
    if over:
        quota += spare // over
    return min(quota, request)


@pytest.mark.parametrize("bridge", [True, False], ids=["with-bridge", "no-bridge"])
@pytest.mark.parametrize("total", [8, 24])
def test_quota_from_the_emitted_tree_agrees(bridge: bool, total: int) -> None:
    result = _compile_text(variant(bridge=bridge, total=total, nvme_vectors=16))
    assert result.machine is not None and result.allocation is not None
    nodes = read_nodes(_artifacts(result)["system.dtb"])
    paths = {cells(p["reg"])[0] & 0xFFFF00: path for path, p in nodes.items()
             if "vendor-id" in p and "class-code" in p}
    for name in ("eth0", "nvme0"):
        f = _function(result.machine, name)
        path = paths[f.phys_hi_config]
        _root, index = papr.build_view(f.host, None, result.allocation)
        for request in range(1, 33):
            assert dtb_quota(nodes, path, request) == \
                papr.msi_quota_for_device(index[id(f)], request), (name, request)


# ---------------------------------------------------------------- 3. RTAS encodings


def test_rtas_config_addr_and_buid(worked: CompileResult) -> None:
    assert worked.machine is not None
    eth, nvme = _function(worked.machine, "eth0"), _function(worked.machine, "nvme0")
    # config_addr = bus << 16 | dev << 11 | fn << 8 (register 0) - domain.md 3.2 / 4.6
    assert papr.config_addr(eth) == 0x00010000  # 01:00.0
    assert papr.config_addr(nvme) == 0x00010800  # 01:01.0
    nodes = read_nodes(_artifacts(worked)["system.dtb"])
    # Linux takes bus/devfn from phys.hi of the device node's first reg entry.
    for f, path in ((eth, ETH), (nvme, NVME)):
        hi = cells(nodes[path]["reg"])[0]
        assert ((hi >> 16) & 0xFF) << 16 | ((hi >> 8) & 0xFF) << 8 == papr.config_addr(f)
    # BUID = start address of the PHB's first reg entry; passed as hi, lo cells.
    hb = eth.host
    assert hb.buid == 0x800000020000000
    reg = cells(nodes[PHB]["reg"])
    assert reg == [0x08000000, 0x20000000, 0, 0]
    buid = reg[0] << 32 | reg[1]
    assert (buid >> 32, buid & 0xFFFFFFFF) == (0x08000000, 0x20000000)
    assert f"/pci@{hb.buid:x}" == PHB
    # /rtas carries the two tokens the calls use.
    assert cells(nodes["/rtas"]["ibm,change-msi"]) == [0x2019]
    assert cells(nodes["/rtas"]["ibm,query-interrupt-source-number"]) == [0x2018]


def test_libfdt_reads_the_worked_tree(worked: CompileResult) -> None:
    fdt = libfdt.Fdt(_artifacts(worked)["system.dtb"])
    assert fdt.version() == 17 and fdt.last_comp_version() == 16
    off = fdt.path_offset(NVME)
    assert fdt.getprop(off, "ibm,req#msi-x").as_uint32() == 16
    off = fdt.path_offset(ETH)
    assert fdt.getprop(off, "ibm,req#msi").as_uint32() == 4


# ---------------------------------------------------------------- PE totals

PE_TOTAL = """\
platform "IBM,pSeries" {
    msi hypervisor papr {
        change-msi 0x2b;
        query-interrupt-source-number 0x2c;
    }
}
host-bridge phb0 papr buid 0x800000020000000 {
    pe-total-msi 64;
    window mem32 cpu 0x2000_8000_0000 pci 0x8000_0000 size 2G;
    endpoint nvme0 @ 01.0 {
        id 144d:a808 class 0x010802;
        bar 0 mem32 16K;
        msix 16 table bar 0 + 0x2000 pba bar 0 + 0x3000;
    }
}
pe pe0 { owns nvme0; total-msi 2; }
partition lpar1 { cpus 0..3; owns pe pe0; }
"""


def test_pe_total_msi_without_a_bridge_of_its_own_is_refused() -> None:
    """Linux reads ibm,pe-total-#msi on the device or an ancestor and counts the
    devices *below* that node, so a PE's total must sit on a bridge holding
    exactly the PE; a lone endpoint on the root bus has none (E814)."""
    with tempfile.TemporaryDirectory(prefix="dtmsi-papr-") as tmp:
        src = Path(tmp) / "variant.msi"
        src.write_text(PE_TOTAL, encoding="utf-8")
        result = compile_file(CompileOptions(input=src))
    codes = {d.code.id for d in result.sink}
    assert "E814" in codes


PE_TOTAL_BRIDGED = PE_TOTAL.replace(
    """    endpoint nvme0 @ 01.0 {
        id 144d:a808 class 0x010802;
        bar 0 mem32 16K;
        msix 16 table bar 0 + 0x2000 pba bar 0 + 0x3000;
    }""",
    """    pci-bridge br0 @ 01.0 {
        endpoint nvme0 @ 00.0 {
            id 144d:a808 class 0x010802;
            bar 0 mem32 16K;
            msix 16 table bar 0 + 0x2000 pba bar 0 + 0x3000;
        }
    }""",
).replace("pe pe0 { owns nvme0; total-msi 2; }", "pe pe0 { owns br0.*; total-msi 2; }")


def test_pe_total_msi_is_honoured() -> None:
    result = _compile_text(PE_TOTAL_BRIDGED)
    codes = {d.code.id for d in result.sink}
    assert codes & {"W812", "W813"}, "16 vectors planned in a PE whose total is 2"
    assert result.allocation is not None and result.machine is not None
    nvme = next(a for a in result.allocation.order if a.function.name == "nvme0")
    assert nvme.quota == 2 and nvme.granted == 2
