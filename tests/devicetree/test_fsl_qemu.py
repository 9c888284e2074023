"""The FSL MSI block, judged by QEMU's own ``ppce500`` tree.

No e500 Linux kernel ships with Debian 12, so the reference is the tree QEMU
itself builds for the machine (hw/ppc/e500.c), dumped at test time with
Debian's u-boot-qemu firmware (``-machine dumpdtb=``). dtmsi's
examples/qemu-e500 describes that board; its tree must hold QEMU's MSI block
property by property:

* where it sits: ``/soc@fe0000000/msi@41600``, beside the MPIC under the SoC
  node, so its ``reg`` is in the SoC's cells (not under the MPIC, whose
  ``#address-cells`` is 0);
* ``compatible``, ``reg``, ``msi-available-ranges``, the eight cascade
  ``interrupts`` (MPIC sources 0xe0..0xe7, edge) in the MPIC's cells, and
  ``interrupt-parent`` = the MPIC; no property QEMU's node lacks;
* the host bridge's link to it (``fsl,msi``), its windows, and its INTx
  ``interrupt-map`` rows: MPIC specifiers in ``fsl,mpic``'s two cells
  (source, 1 = active-low level).

Intended differences are named below (INTENDED_*); each wrong variant of the
example (or of its tree) must fail the same comparison.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import RunDtc, cells, parent_path, read_nodes
from tests.golden_update import EXAMPLES, ROOT

UBOOT = Path("/usr/lib/u-boot/qemu-ppce500/uboot.elf")
QEMU_MSI = "/soc@fe0000000/msi@41600"
QEMU_PCI = "/pci@fe0008000"

# phandle values are compared as the paths they name; QEMU also writes the
# legacy duplicate 'linux,phandle', which Linux does not need.
INTENDED_MSI = {"phandle", "linux,phandle"}
# dtmsi describes an ECAM host bridge (pci-host-ecam-generic); QEMU's ppce500
# has Freescale's indirect-config controller (fsl,mpc8540-pci) with a register
# block at 0xf_e000_8000, its own error interrupt, a clock and a cell index.
INTENDED_PCI_QEMU_ONLY = {"clock-frequency", "cell-index", "interrupts", "interrupt-parent"}
INTENDED_PCI_DIFFERENT = {"compatible", "reg"}


def qemu_tree(tmp: Path) -> dict[str, dict[str, bytes]]:
    """QEMU's own ppce500 tree, dumped now."""
    qemu = shutil.which("qemu-system-ppc64")
    if qemu is None or not UBOOT.is_file():
        pytest.fail("needs qemu-system-ppc64 and u-boot-qemu's qemu-ppce500/uboot.elf "
                    "(Debian packages qemu-system-ppc, u-boot-qemu; scripts/bootstrap.sh installs them)",
                    pytrace=False)
    dtb = tmp / "qemu-e500.dtb"
    proc = subprocess.run(
        [qemu, "-M", "ppce500", "-cpu", "e5500", "-nodefaults", "-display", "none", "-bios", str(UBOOT),
         "-device", "e1000e", "-machine", f"dumpdtb={dtb}"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0 and dtb.is_file(), proc.stderr
    return read_nodes(dtb.read_bytes())


def _paths_by_phandle(nodes: dict[str, dict[str, bytes]]) -> dict[int, str]:
    return {cells(p["phandle"])[0]: path for path, p in nodes.items() if "phandle" in p}


def _link(nodes: dict[str, dict[str, bytes]], path: str, name: str) -> str | None:
    value = nodes[path].get(name)
    if value is None or len(value) != 4:
        return None
    return _paths_by_phandle(nodes).get(cells(value)[0])


def _interrupt_map(nodes: dict[str, dict[str, bytes]], path: str) -> dict[tuple[int, ...], tuple[object, ...]]:
    """Child (phys.hi, mid, lo, pin) -> (parent path, specifier...), for a map
    whose parent has no unit-address cells (an MPIC's #address-cells is 0)."""
    by_phandle = _paths_by_phandle(nodes)
    raw = cells(nodes[path].get("interrupt-map", b""))
    out: dict[tuple[int, ...], tuple[object, ...]] = {}
    i = 0
    while i < len(raw):
        child, parent = tuple(raw[i:i + 4]), by_phandle.get(raw[i + 4], "?")
        n = cells(nodes[parent]["#interrupt-cells"])[0] if parent in nodes else 0
        out[child] = (parent, *raw[i + 5:i + 5 + n])
        i += 5 + n
    return out


def differences(ours: dict[str, dict[str, bytes]], qemu: dict[str, dict[str, bytes]]) -> list[str]:
    """Every way dtmsi's FSL MSI block, its MPIC links and the host bridge's
    MSI and INTx description differ from QEMU's, beyond the intended ones."""
    out: list[str] = []
    if QEMU_MSI not in ours:
        fsl = [p for p, props in ours.items() if props.get("compatible", b"").startswith(b"fsl,mpic-msi")]
        return [f"no MSI node at {QEMU_MSI} (dtmsi's: {fsl})"]
    q, o = qemu[QEMU_MSI], ours[QEMU_MSI]
    for name in sorted((set(q) | set(o)) - INTENDED_MSI):
        if name not in o:
            out.append(f"{QEMU_MSI}: missing {name}")
        elif name not in q:
            out.append(f"{QEMU_MSI}: {name} is not in QEMU's node")
        elif name == "interrupt-parent":
            if _link(ours, QEMU_MSI, name) != _link(qemu, QEMU_MSI, name):
                out.append(f"{QEMU_MSI}: interrupt-parent {_link(ours, QEMU_MSI, name)} "
                           f"!= QEMU's {_link(qemu, QEMU_MSI, name)}")
        elif q[name] != o[name]:
            out.append(f"{QEMU_MSI}: {name} {o[name].hex()} != QEMU's {q[name].hex()}")
    mpic = _link(qemu, QEMU_MSI, "interrupt-parent")
    assert mpic is not None
    if parent_path(QEMU_MSI) != parent_path(mpic):
        out.append("QEMU's tree changed: its MSI block is no sibling of its MPIC")
    for name in ("#interrupt-cells", "#address-cells", "compatible"):
        if ours.get(mpic, {}).get(name) != qemu[mpic].get(name):
            out.append(f"{mpic}: {name} differs")

    # The host bridge that links to the MSI block.
    hosts = [p for p in ours if _link(ours, p, "fsl,msi") == QEMU_MSI]
    if len(hosts) != 1:
        return [*out, f"{len(hosts)} host bridges link to {QEMU_MSI} with fsl,msi (QEMU: {QEMU_PCI})"]
    (host,) = hosts
    if _link(qemu, QEMU_PCI, "fsl,msi") != QEMU_MSI:
        out.append("QEMU's tree changed: its host bridge does not link to the MSI block")
    q, o = qemu[QEMU_PCI], ours[host]
    if "msi-parent" in o or "msi-map" in o:
        out.append(f"{host}: msi-parent/msi-map: QEMU's host bridge finds its MSI block by fsl,msi only")
    for name in sorted(set(q) - INTENDED_PCI_QEMU_ONLY - INTENDED_PCI_DIFFERENT - {"fsl,msi", "interrupt-map"}):
        if o.get(name) != q[name]:
            out.append(f"{host}: {name} {o.get(name, b'').hex()} != QEMU's {q[name].hex()}")
    for name in sorted(INTENDED_PCI_QEMU_ONLY):
        if name in o:
            out.append(f"{host}: {name} is named as QEMU-only but dtmsi writes it")
    for name in sorted(set(o) - set(q) - {"phandle", "msi-parent", "msi-map"}):
        out.append(f"{host}: {name} is not in QEMU's host bridge")
    q_map, o_map = _interrupt_map(qemu, QEMU_PCI), _interrupt_map(ours, host)
    if not o_map:
        out.append(f"{host}: no interrupt-map")
    for child, spec in sorted(o_map.items()):
        if q_map.get(child) != spec:
            out.append(f"{host}: interrupt-map {child} -> {spec} != QEMU's {q_map.get(child)}")
    return out


@pytest.fixture(scope="module")
def qemu(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, bytes]]:
    return qemu_tree(tmp_path_factory.mktemp("qemu-e500"))


def _compile(msi: Path, out: Path) -> dict[str, dict[str, bytes]]:
    proc = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "-m", "dtmsi", "compile", str(msi), "-o", str(out), "--emit", "dtb"],
        capture_output=True, text=True, cwd=ROOT, check=False, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return read_nodes((out / "system.dtb").read_bytes())


def test_qemu_e500_msi_block_matches_qemu(qemu: dict[str, dict[str, bytes]],
                                          tmp_path: Path) -> None:
    ours = _compile(EXAMPLES / "qemu-e500" / "qemu-e500.msi", tmp_path / "out")
    assert differences(ours, qemu) == []
    # What the comparison leans on, stated once: eight cascades 0xe0..0xe7, edge.
    assert cells(ours[QEMU_MSI]["interrupts"]) == [v for b in range(8) for v in (0xE0 + b, 0)]


# Wrong variants of the example: (what, old text, new text) in qemu-e500.msi.
WRONG_SOURCES = [
    ("fewer available banks", "available 0..255;", "available 0..127;"),
    ("wrong cascade source", "msiir 0xf_e004_1740;", "msiir 0xf_e004_1740; cascade 0xf0;"),
    ("MSI block elsewhere in the SoC", "0xf_e004_1600 size 0x200", "0xf_e004_1800 size 0x200"),
    ("INTx not swizzled", "intx -> mpic irq 1..4 level;", "intx -> mpic irq 1..4 level no-swizzle;"),
    ("INTx as edges", "intx -> mpic irq 1..4 level;", "intx -> mpic irq 1..4 edge;"),
    ("different I/O window", "pci 0x0 size 64K;", "pci 0x0 size 32K;"),
]


@pytest.mark.parametrize(("what", "old", "new"), WRONG_SOURCES, ids=[w[0] for w in WRONG_SOURCES])
def test_wrong_example_fails_the_comparison(qemu: dict[str, dict[str, bytes]], tmp_path: Path,
                                            what: str, old: str, new: str) -> None:
    src = tmp_path / "src"
    shutil.copytree(EXAMPLES / "qemu-e500", src)
    msi = src / "qemu-e500.msi"
    text = msi.read_text()
    assert old in text
    msi.write_text(text.replace(old, new))
    assert differences(_compile(msi, tmp_path / "out"), qemu) != [], what


# Wrong trees, edited as DTS text: the layouts dtmsi used to emit.
WRONG_TREES = [
    ("msi-parent instead of fsl,msi", "fsl,msi = <&msi0>;", "msi-parent = <&msi0>;"),
    ("no cascade interrupts", "\t\t\tinterrupts = <0xe0 0 ", "\t\t\tx-interrupts = <0xe0 0 "),
    ("an msi-controller property", "compatible = \"fsl,mpic-msi\";", "compatible = \"fsl,mpic-msi\"; msi-controller;"),
    ("MPIC specifier with a wrong sense", "&mpic 2 1>,", "&mpic 2 2>,"),
]


@pytest.mark.parametrize(("what", "old", "new"), WRONG_TREES, ids=[w[0] for w in WRONG_TREES])
def test_wrong_tree_fails_the_comparison(qemu: dict[str, dict[str, bytes]], tmp_path: Path, run_dtc: RunDtc,
                                         what: str, old: str, new: str) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "-m", "dtmsi", "compile",
         str(EXAMPLES / "qemu-e500" / "qemu-e500.msi"), "-o", str(out), "--emit", "dts"],
        capture_output=True, text=True, cwd=ROOT, check=False, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    dts = (out / "system.dts").read_text()
    assert old in dts, old
    (out / "wrong.dts").write_text(dts.replace(old, new, 1))
    done = run_dtc("-q", "-I", "dts", "-O", "dtb", "-o", out / "wrong.dtb", out / "wrong.dts")
    assert done.returncode == 0, done.stderr
    assert differences(read_nodes((out / "wrong.dtb").read_bytes()), qemu) != [], what


def test_four_cell_mpic_specifiers(tmp_path: Path) -> None:
    """fsl,mpic also has a 4-cell form (source, sense, type, info): with a base
    MPIC of #interrupt-cells = <4>, the cascades and the INTx map use it."""
    src = tmp_path / "src"
    shutil.copytree(EXAMPLES / "qemu-e500", src)
    base = src / "qemu-e500-base.dts"
    text = base.read_text()
    assert "#interrupt-cells = <0x02>;" in text
    base.write_text(text.replace("#interrupt-cells = <0x02>;", "#interrupt-cells = <0x04>;"))
    ours = _compile(src / "qemu-e500.msi", tmp_path / "out")
    assert cells(ours[QEMU_MSI]["interrupts"]) == [v for b in range(8) for v in (0xE0 + b, 0, 0, 0)]
    host = next(p for p in ours if "fsl,msi" in ours[p])
    rows = _interrupt_map(ours, host)
    assert rows[(0x800, 0, 0, 1)] == ("/soc@fe0000000/pic@40000", 2, 1, 0, 0)
