"""Every example compiles to its reviewed golden DTS, and real tools accept the output.

For each examples/<name>/<name>.msi (compiled once per session through the CLI):
the .dts files equal tests/golden/<name>/ (``make golden`` regenerates those,
on purpose only); dtc decompiles our DTB without a single warning; dtc compiles
our DTS to the very bytes of our DTB; pylibfdt and pyfdt read the DTB back
(v17, last compatible 16) with the host bridge properties the example
describes; and the PCI encodings that dtc does not check hold (domain.md 4.1, 5.1).
"""

from __future__ import annotations

import difflib
from pathlib import Path

import libfdt
import pytest
from pyfdt.pyfdt import FdtBlobParse

from tests.conftest import CompileExample, RunDtc, cells, pci_tree_problems, read_nodes
from tests.golden_update import example_names, golden_files, reviewed_outputs

EXAMPLES = example_names()

# Host bridge properties each example must produce (read back from the DTB).
# msi-map phandles are written as the target node's path.
HOST_BRIDGES: dict[str, dict[str, dict[str, list[int | str]]]] = {
    "worked-native": {
        "/pcie@30000000": {
            "bus-range": [0, 1],
            "linux,pci-domain": [0],
            "msi-map": [0, "/interrupt-controller@8000000/msi-controller@8080000", 0, 0x200],
            "interrupt-map-mask": [0xF800, 0, 0, 7],
        },
        "/pcie@30000000/pci@1": {"bus-range": [1, 1]},
    },
    "qemu-virt-switch": {
        "/pcie@4010000000": {
            "bus-range": [0, 0xFF],
            "msi-map": [0, "/intc@8000000/its@8080000", 0, 0x10000],
        },
        "/pcie@4010000000/pci@1": {"bus-range": [1, 4]},
        "/pcie@4010000000/pci@1/pci@0": {"bus-range": [2, 4]},
        "/pcie@4010000000/pci@1/pci@0/pci@0": {"bus-range": [3, 3]},
        "/pcie@4010000000/pci@1/pci@0/pci@1": {"bus-range": [4, 4]},
    },
    "powernv-opal": {
        "/pcie@3fffe4000000": {"bus-range": [0, 0xF], "ibm,opal-phbid": [0, 0], "ibm,opal-msi-ranges": [0x7F0, 16]},
        "/pcie@3fffe4100000": {"bus-range": [0, 0xF], "ibm,opal-phbid": [0, 1], "ibm,opal-msi-ranges": [0xFF0, 16]},
    },
    "partitions": {
        "/pci@800000020000000": {"bus-range": [0, 1], "linux,pci-domain": [0], "ibm,pe-total-#msi": [64]},
        "/pci@800000020000001": {"bus-range": [0, 4], "linux,pci-domain": [1], "ibm,pe-total-#msi": [64]},
        "/pci@800000020000001/pci@1": {"bus-range": [1, 3], "class-code": [0x060400]},
    },
    "worked-papr": {
        "/pci@800000020000000": {
            "bus-range": [0, 1],
            "ibm,pe-total-#msi": [24],
            "ibm,pci-config-space-type": [1],
            "interrupt-map-mask": [0xF800, 0, 0, 7],
        },
        "/pci@800000020000000/pci@1": {"bus-range": [1, 1], "class-code": [0x060400]},
        "/pci@800000020000000/pci@1/ethernet@0": {"ibm,req#msi": [4]},
        "/pci@800000020000000/pci@1/nvme@1": {"ibm,req#msi-x": [16]},
    },
    "qemu-pseries": {
        "/pci@800000020000000": {
            "bus-range": [0, 0xFF],
            "ibm,pe-total-#msi": [0xD00],
            "reg": [0x8000000, 0x20000000, 0, 0],
        },
        "/pci@800000020000000/pci@1": {"bus-range": [1, 1], "class-code": [0x060400]},
        "/pci@800000020000000/pci@1/ethernet@0": {"ibm,req#msi": [1], "ibm,req#msi-x": [3]},
        "/pci@800000020000000/pci@1/nvme@1": {"ibm,req#msi-x": [9]},
        "/pci@800000020000000/ethernet@2": {"ibm,req#msi-x": [3]},
    },
    "legacy-bridges": {
        "/pcie@30000000": {
            "bus-range": [0, 0xF],
            "msi-map": [0, "/interrupt-controller@8000000/msi-controller@8080000", 0, 0x1000],
            "interrupt-map-mask": [0xF800, 0, 0, 7],
        },
        "/pcie@30000000/pci@1c": {"bus-range": [1, 3]},
        "/pcie@30000000/pci@1c/pci@0": {"bus-range": [2, 3]},
        "/pcie@30000000/pci@1c/pci@0/pci@3": {"bus-range": [3, 3]},
    },
    "switch-sriov": {
        "/pcie@4000000000": {
            "bus-range": [0, 0xFF],
            "linux,pci-domain": [0],
            "msi-map": [0, "/interrupt-controller@8000000/msi-controller@8080000", 0, 0x10000],
        },
        "/pcie@4000000000/pci@1": {"bus-range": [1, 8]},
        "/pcie@4000000000/pci@1/pci@0/pci@a/pci@0/pci@1": {"bus-range": [8, 8]},
        "/pcie@4000000000/pci@2": {"bus-range": [9, 9]},
    },
    "qemu-e500": {
        "/pcie@e00000000": {
            "bus-range": [0, 0xFF],
            "fsl,msi": ["/soc@fe0000000/msi@41600"],
            "interrupt-map-mask": [0xF800, 0, 0, 7],
        },
    },
    "qemu-virt": {
        "/pcie@4010000000": {
            "bus-range": [0, 0xFF],
            "linux,pci-domain": [0],
            "msi-map": [0, "/intc@8000000/its@8080000", 0, 0x10000],
            "reg": [0x40, 0x10000000, 0, 0x10000000],
        },
    },
}


def _diff(expected: str, actual: str, name: str) -> str:
    return "".join(difflib.unified_diff(
        expected.splitlines(keepends=True), actual.splitlines(keepends=True),
        fromfile=f"tests/golden/{name}", tofile=f"compiled/{name}", n=3))


def test_every_example_has_golden_files() -> None:
    missing = [n for n in EXAMPLES if not golden_files(n)]
    assert not missing, (f"examples without golden files: {missing}; run `make golden` "
                         "(python -m tests.golden_update) and review the result")
    assert set(HOST_BRIDGES) == set(EXAMPLES), "describe each example's host bridge in HOST_BRIDGES"


@pytest.mark.parametrize("name", EXAMPLES)
def test_outputs_match_golden(name: str, compile_example: CompileExample) -> None:
    out = compile_example(name)
    actual = reviewed_outputs(out, name)
    expected = golden_files(name)
    assert sorted(actual) == sorted(expected), (
        f"{name}: compiled files {sorted(actual)} differ from golden {sorted(expected)}")
    diffs = [_diff(expected[f], actual[f], f"{name}/{f}")
             for f in expected if expected[f] != actual[f]]
    if diffs:
        pytest.fail(f"{name}: output differs from the golden files (if the change is intended, "
                    "run `make golden` and review the diff):\n" + "\n".join(diffs), pytrace=False)


def _dtbs(out: Path) -> list[Path]:
    dtbs = sorted(out.glob("*.dtb"))
    assert [p.stem for p in dtbs] == [p.stem for p in sorted(out.glob("*.dts"))], \
        "every .dts must come with its .dtb"
    assert dtbs, f"no .dtb in {out}"
    return dtbs


@pytest.mark.parametrize("name", EXAMPLES)
def test_dtc_reads_dtb_without_warnings(name: str, compile_example: CompileExample,
                                        run_dtc: RunDtc) -> None:
    for dtb in _dtbs(compile_example(name)):
        proc = run_dtc("-I", "dtb", "-O", "dts", "-o", "/dev/null", dtb)
        assert proc.returncode == 0, f"{dtb.name}: dtc failed: {proc.stderr.decode()}"
        assert proc.stderr == b"", f"{dtb.name}: dtc warns:\n{proc.stderr.decode()}"


@pytest.mark.parametrize("name", EXAMPLES)
def test_dtc_compiles_dts_to_same_bytes(name: str, compile_example: CompileExample,
                                        run_dtc: RunDtc) -> None:
    for dtb in _dtbs(compile_example(name)):
        dts = dtb.with_suffix(".dts")
        proc = run_dtc("-I", "dts", "-O", "dtb", dts)
        assert proc.returncode == 0, f"{dts.name}: dtc failed: {proc.stderr.decode()}"
        assert proc.stderr == b"", f"{dts.name}: dtc warns:\n{proc.stderr.decode()}"
        ours = dtb.read_bytes()
        if proc.stdout != ours:
            pairs = enumerate(zip(proc.stdout, ours, strict=False))
            first = next((i for i, (a, b) in pairs if a != b), min(len(proc.stdout), len(ours)))
            pytest.fail(f"{dtb.name}: dtc's DTB for our DTS ({len(proc.stdout)} bytes) differs "
                        f"from ours ({len(ours)} bytes) first at byte offset {first:#x}",
                        pytrace=False)


@pytest.mark.parametrize("name", EXAMPLES)
def test_libfdt_reads_back(name: str, compile_example: CompileExample) -> None:
    out = compile_example(name)
    for dtb in _dtbs(out):
        fdt = libfdt.Fdt(dtb.read_bytes())
        assert fdt.magic() == 0xD00DFEED
        assert fdt.version() == 17
        assert fdt.last_comp_version() == 16
        assert fdt.totalsize() == dtb.stat().st_size
    nodes = read_nodes((out / "system.dtb").read_bytes())
    paths = {cells(p["phandle"])[0]: path for path, p in nodes.items() if "phandle" in p}
    for path, expected in HOST_BRIDGES[name].items():
        assert path in nodes, f"{name}: no node {path} in system.dtb"
        for prop, want in expected.items():
            assert prop in nodes[path], f"{name}: {path} has no {prop}"
            got = cells(nodes[path][prop])
            shown: list[int | str] = [
                paths.get(v, f"<bad phandle {v}>") if isinstance(w, str) else v
                for v, w in zip(got, want, strict=False)]
            assert shown == want, f"{name}: {path} {prop} = {shown}, expected {want}"


@pytest.mark.parametrize("name", EXAMPLES)
def test_pyfdt_reads_back(name: str, compile_example: CompileExample) -> None:
    out = compile_example(name)
    for dtb in _dtbs(out):
        with dtb.open("rb") as fh:
            blob = FdtBlobParse(fh)
        header = blob.fdt_header
        assert header["magic"] == 0xD00DFEED
        assert header["version"] == 17
        assert header["last_comp_version"] == 16
        assert header["off_mem_rsvmap"] == 0x28, "dtc puts the reserve map right after the header"
        assert header["off_dt_struct"] == 0x38, "no reservations: structure block at 0x38"
        assert header["totalsize"] == dtb.stat().st_size
        tree = blob.to_fdt()
        for path, expected in HOST_BRIDGES[name].items():
            if dtb.stem != "system":
                break
            prop = tree.resolve_path(f"{path}/bus-range")
            if "bus-range" in expected:
                assert prop is not None, f"{name}: pyfdt finds no {path}/bus-range"
                assert list(prop.words) == expected["bus-range"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_pci_encodings(name: str, compile_example: CompileExample) -> None:
    """Bus numbers, phys.hi, BAR placement, msi-map, INTx swizzle (domain.md 4.1, 5.1, 5.2)."""
    for dtb in _dtbs(compile_example(name)):
        problems = pci_tree_problems(read_nodes(dtb.read_bytes()))
        assert not problems, f"{dtb.name}:\n" + "\n".join(problems)


def test_downstream_ports_report_their_switch_id(compile_example: CompileExample) -> None:
    """A PCIe switch's downstream ports are functions of the same chip: they report
    the switch's vendor and device ID (e.g. every port of a PEX 8724 reads 10b5:8724)."""
    nodes = read_nodes((compile_example("switch-sriov") / "system.dtb").read_bytes())
    sw1 = "/pcie@4000000000/pci@1/pci@0/pci@a/pci@0"
    want = (cells(nodes[sw1]["vendor-id"]), cells(nodes[sw1]["device-id"]))
    assert want == ([0x10B5], [0x8724])
    for port in ("pci@0", "pci@1"):
        props = nodes[f"{sw1}/{port}"]
        assert (cells(props["vendor-id"]), cells(props["device-id"])) == want, f"{sw1}/{port}"
