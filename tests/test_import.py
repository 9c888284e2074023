"""``dtmsi import``: a board's tree -> .msi -> compile gives the board's PCI/MSI properties.

The judge is the original tree, read with pylibfdt: every PCI node of it
(host bridges and everything below them) must be in the compiled tree, with
every PCI/MSI property it has (PCI_PROPERTIES) equal, value for value; a cell
may differ only where both are phandles of the same node path. Properties
dtmsi adds that the board lacks (``compatible`` on QEMU's function nodes,
``assigned-addresses`` where firmware has not assigned BARs yet) are allowed.

So that dtmsi, not the base tree, is what makes those properties, each
compile runs against the original tree with its host bridges deleted (the
imported .msi names the tree as its base; the test puts the stripped copy
under that name). What cannot come back is listed exactly, per tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import libfdt
import pytest

from tests.conftest import cells, read_nodes

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

PCI_PROPERTIES = frozenset({
    "compatible", "device_type", "#address-cells", "#size-cells", "reg", "ranges", "bus-range",
    "linux,pci-domain", "msi-map", "msi-map-mask", "msi-parent", "#interrupt-cells", "interrupt-map-mask",
    "interrupt-map", "interrupts", "assigned-addresses", "vendor-id", "device-id", "revision-id",
    "class-code", "subsystem-vendor-id", "subsystem-id", "ibm,req#msi", "ibm,req#msi-x",
    "ibm,pe-total-#msi", "ibm,opal-phbid", "ibm,opal-msi-ranges",
})


def dtmsi(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "dtmsi", *map(str, args)], capture_output=True, text=True,
                          env=env, check=False, timeout=120)


def host_bridges(nodes: dict[str, dict[str, bytes]]) -> list[str]:
    def is_pci(path: str) -> bool:
        return nodes.get(path, {}).get("device_type") == b"pci\0"

    return sorted(p for p in nodes if p != "/" and is_pci(p) and not is_pci(p.rsplit("/", 1)[0] or "/"))


def pci_paths(nodes: dict[str, dict[str, bytes]]) -> list[str]:
    hbs = host_bridges(nodes)
    return sorted(p for p in nodes if any(p == h or p.startswith(h + "/") for h in hbs))


def pci_differences(original: bytes, compiled: bytes) -> list[str]:
    a, b = read_nodes(original), read_nodes(compiled)
    ph_a = {cells(p["phandle"])[0]: k for k, p in a.items() if "phandle" in p}
    ph_b = {cells(p["phandle"])[0]: k for k, p in b.items() if "phandle" in p}
    out: list[str] = []
    for path in pci_paths(a):
        if path not in b:
            out.append(f"{path}: missing")
            continue
        for name in sorted(PCI_PROPERTIES & set(a[path])):
            va, vb = a[path][name], b[path].get(name)
            if vb is None:
                out.append(f"{path}:{name}: missing")
            elif va != vb and not (
                len(va) == len(vb) and len(va) % 4 == 0
                and all(x == y or (x in ph_a and ph_a[x] == ph_b.get(y)) for x, y in zip(cells(va), cells(vb),
                                                                                           strict=True))
            ):
                out.append(f"{path}:{name}: differs")
    # Nothing extra: the compiled tree has no host bridge the board lacks.
    out.extend(f"{p}: not in the original" for p in sorted(set(host_bridges(b)) - set(host_bridges(a))))
    return out


def strip_host_bridges(dtb: bytes) -> bytes:
    fdt = libfdt.Fdt(bytearray(dtb))
    for path in host_bridges(read_nodes(dtb)):
        fdt.del_node(fdt.path_offset(path))
    fdt.pack()
    return bytes(fdt.as_bytearray())


def import_and_compile(board: Path, work: Path, edit: tuple[str, str] | None = None) -> tuple[str, bytes]:
    """Import ``board``; compile the .msi against the board minus its host bridges.
    -> (the .msi text, the compiled system.dtb)."""
    work.mkdir(parents=True, exist_ok=True)
    msi = work / "board.msi"
    r = dtmsi("import", board, "-o", msi)
    assert r.returncode == 0, r.stderr
    text = msi.read_text()
    shutil.copy(board, work / "orig.dtb")
    (work / board.name).write_bytes(strip_host_bridges(board.read_bytes()))
    # The .msi names the board relative to itself: point it at the stripped copy.
    msi.write_text(text.replace(f'base "{os.path.relpath(board, work)}";', f'base "{board.name}";'))
    if edit is not None:
        assert edit[0] in msi.read_text()
        msi.write_text(msi.read_text().replace(*edit))
    r = dtmsi("compile", msi, "-o", work / "out", "--emit", "dtb")
    assert r.returncode == 0, r.stderr
    return text, (work / "out" / "system.dtb").read_bytes()


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir()))
def test_own_outputs_round_trip(example: str, tmp_path: Path) -> None:
    r = dtmsi("compile", EXAMPLES / example / f"{example}.msi", "-o", tmp_path / "orig", "--emit", "dtb")
    assert r.returncode == 0, r.stderr
    original = tmp_path / "orig" / "system.dtb"
    _, compiled = import_and_compile(original, tmp_path / "import")
    assert len(pci_paths(read_nodes(original.read_bytes()))) > 3
    assert pci_differences(original.read_bytes(), compiled) == []


def test_import_of_dts_source_merges_over_the_board(tmp_path: Path) -> None:
    """A .dts input (labels kept: 'from base "its"'); compiled against the
    original source itself, the host bridge is merged, not duplicated."""
    r = dtmsi("compile", EXAMPLES / "qemu-virt-switch" / "qemu-virt-switch.msi", "-o", tmp_path, "--emit",
              "dtb,dts")
    assert r.returncode == 0, r.stderr
    r = dtmsi("import", tmp_path / "system.dts", "-o", tmp_path / "imp" / "board.msi")
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "imp" / "board.msi").read_text()
    assert 'from base "its";' in text and 'base "../system.dts";' in text
    r = dtmsi("compile", tmp_path / "imp" / "board.msi", "-o", tmp_path / "imp" / "out", "--emit", "dtb")
    assert r.returncode == 0, r.stderr
    original = (tmp_path / "system.dtb").read_bytes()
    compiled = (tmp_path / "imp" / "out" / "system.dtb").read_bytes()
    assert pci_differences(original, compiled) == []
    assert pci_paths(read_nodes(compiled)) == pci_paths(read_nodes(original))


def test_a_wrong_import_is_seen(tmp_path: Path) -> None:
    """Negative control: an imported .msi edited to say something else (a BAR
    revision, the requester IDs the msi-map covers) gives differences on those properties."""
    r = dtmsi("compile", EXAMPLES / "qemu-virt" / "qemu-virt.msi", "-o", tmp_path / "orig", "--emit", "dtb")
    assert r.returncode == 0, r.stderr
    original = tmp_path / "orig" / "system.dtb"
    _, rev = import_and_compile(original, tmp_path / "rev",
                                ("class 0x010802 revision 2;", "class 0x010802 revision 3;"))
    assert pci_differences(original.read_bytes(), rev) == ["/pcie@4010000000/nvme@3:revision-id: differs"]
    _, base = import_and_compile(original, tmp_path / "map",
                                 ("rid 0x0000..0xffff -> its", "rid 0x0000..0x7fff -> its"))
    assert pci_differences(original.read_bytes(), base) == ["/pcie@4010000000:msi-map: differs"]


def qemu(binary: str, machine: str, *devices: str, out: Path) -> Path:
    exe = shutil.which(binary)
    if exe is None:
        pytest.fail(f"{binary} is not installed (Debian's qemu-system-arm / qemu-system-ppc; "
                    "scripts/bootstrap.sh installs them)", pytrace=False)
    r = subprocess.run([exe, "-M", f"{machine},dumpdtb={out}", "-m", "1G", "-nodefaults", "-display", "none",
                        *devices], capture_output=True, text=True, check=False, timeout=120)
    assert r.returncode == 0 and out.is_file(), r.stderr
    return out


def test_qemu_virt_tree(tmp_path: Path) -> None:
    """QEMU's arm64 virt with a root port, a switch and three devices: its
    tree has the host bridge and no enumerated function (QEMU leaves PCI to
    the guest's scan), so the import has the bridge's windows, msi-map and
    INTx route and no function. With one function added, dtmsi makes every
    PCI/MSI property of QEMU's node but the interrupt-map, which QEMU writes
    for every slot under a 0x1800 mask and dtmsi for the slots in use."""
    dtb = qemu("qemu-system-aarch64", "virt,gic-version=3,its=on", "-cpu", "cortex-a57",
               "-device", "pcie-root-port,id=rp0,chassis=1,addr=04.0", "-device", "x3130-upstream,id=up0,bus=rp0",
               "-device", "xio3130-downstream,id=dn0,bus=up0,chassis=2", "-device", "nvme,serial=a,bus=dn0",
               "-device", "e1000e,addr=02.0", "-device", "virtio-net-pci,addr=03.0", out=tmp_path / "virt.dtb")
    add = "    endpoint nic0 @ 02.0 { id 8086:10d3 class 0x020000; bar 0 mem32 128K; intx A; }\n}\n"
    text, compiled = import_and_compile(dtb, tmp_path / "w", ("level;\n}\n", "level;\n" + add))
    assert 'name "pcie@10000000";' in text and "endpoint" not in text
    assert "msi map rid 0x0000..0xffff -> its base 0x0;" in text
    assert "intx -> intc spi 0x3..0x6 level;" in text
    assert pci_differences(dtb.read_bytes(), compiled) == [
        "/pcie@10000000:interrupt-map: differs", "/pcie@10000000:interrupt-map-mask: differs"]
    # As imported (its base: QEMU's tree itself), it compiles to QEMU's PCI node, once.
    (tmp_path / "w" / "as-is.msi").write_text(text)
    r = dtmsi("compile", tmp_path / "w" / "as-is.msi", "-o", tmp_path / "as-is", "--emit", "dtb")
    assert r.returncode == 0, r.stderr
    assert pci_differences(dtb.read_bytes(), (tmp_path / "as-is" / "system.dtb").read_bytes()) == []


def test_qemu_pseries_tree(tmp_path: Path) -> None:
    """QEMU's pseries lists every function with its BARs and ibm,req#msi(-x):
    dtmsi makes them all back, but the interrupt-map (QEMU: all 32 slots, mask
    0xffffffff on the pin), the expansion ROM entry in reg (not modelled), and
    ibm,req#msi on a bridge (dtmsi plans MSI for endpoints only)."""
    dtb = qemu("qemu-system-ppc64", "pseries", "-device", "e1000e,addr=02.0", "-device", "virtio-net-pci,addr=03.0",
               "-device", "nvme,serial=x,addr=04.0", "-device", "pci-bridge,chassis_nr=1,id=b1,addr=05.0",
               "-device", "e1000,bus=b1,addr=01.0", out=tmp_path / "pseries.dtb")
    text, compiled = import_and_compile(dtb, tmp_path / "w")
    assert "msi hypervisor papr" in text and "pe-total-msi 3328;" in text
    assert "msix 5 table bar 0 + 0 pba bar 0 + 0x50;" in text  # e1000e: ibm,req#msi-x = 5
    hb = "/pci@800000020000000"
    assert pci_differences(dtb.read_bytes(), compiled) == [
        f"{hb}:interrupt-map: differs", f"{hb}:interrupt-map-mask: differs",
        f"{hb}/ethernet@2:reg: differs", f"{hb}/ethernet@3:reg: differs", f"{hb}/pci@5:ibm,req#msi: missing",
        f"{hb}/pci@5/ethernet@1:reg: differs"]
    for rom in ("ethernet@2", "ethernet@3", "pci@5/ethernet@1"):
        assert f"// not imported: {hb}/{rom}: expansion ROM BAR not imported" in text


def test_import_refuses_what_is_not_a_tree(tmp_path: Path) -> None:
    bad = tmp_path / "board.dtb"
    bad.write_bytes(b"\xd0\x0d\xfe\xed" + b"\0" * 12)
    r = dtmsi("import", bad, "-o", tmp_path / "board.msi")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "error: too short for a device tree blob" in r.stderr
    assert not (tmp_path / "board.msi").exists()
    empty = tmp_path / "empty.dts"
    empty.write_text("/dts-v1/;\n/ { model = \"x\"; };\n")
    r = dtmsi("import", empty)
    assert r.returncode == 1 and "no PCI host bridge" in r.stderr


def test_import_is_deterministic(tmp_path: Path) -> None:
    r = dtmsi("compile", EXAMPLES / "partitions" / "partitions.msi", "-o", tmp_path, "--emit", "dtb")
    assert r.returncode == 0, r.stderr
    first, second = dtmsi("import", tmp_path / "system.dtb"), dtmsi("import", tmp_path / "system.dtb")
    assert first.returncode == 0 and first.stdout == second.stdout and "host-bridge" in first.stdout
