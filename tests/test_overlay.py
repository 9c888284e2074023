"""Overlays (``--emit dtbo``): judged by Debian's fdtoverlay and dtc.

fdtoverlay applies ``<stem>.dtbo`` to the board's DTB; the result must hold
the same nodes and the same properties, value for value, as the merged
``<stem>.dtb`` dtmsi writes (read with pylibfdt). Two differences are allowed,
and only these: properties and children come in another order (libfdt inserts
what an overlay adds in front of what a node has, so they come reversed), and
phandle numbers differ (fdtoverlay renumbers the overlay's own), so a cell
that differs must be a phandle in both trees naming the same node path;
``phandle`` properties themselves, and the symbol tables, are compared only
through that. The overlay must also be, byte for byte, what ``dtc -@`` makes
of the equivalent ``/plugin/`` source, and dtc must read it with no warning
it does not also give its own overlay.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import libfdt
import pytest

from dtmsi.driver import compile_file
from dtmsi.options import CompileOptions
from tests.conftest import cells, read_nodes, run_dtc_command

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SYMBOL_NODES = ("/__symbols__", "/__fixups__", "/__local_fixups__")

PARTITIONS = """
partition front { owns net0, nic0; }
partition back { owns nvme0; }
"""


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; install Debian's 'device-tree-compiler' "
                    "(scripts/bootstrap.sh does)", pytrace=False)
    return found


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*map(str, args)], capture_output=True, text=True, check=False, timeout=120)


def compile_msi(msi: Path, out: Path, emit: str = "dtb,dts,dtbo") -> None:
    options = CompileOptions(input=msi, output_dir=out, keep_artifacts=False, emit=frozenset(emit.split(",")))
    result = compile_file(options)
    assert result.ok, [str(d.message) for d in result.sink]


def board_dtb(base_dts: Path, out: Path) -> Path:
    """The board's DTB as a board build makes it for overlays: ``dtc -@``."""
    r = run_dtc_command("-@", "-I", "dts", "-O", "dtb", "-o", out, base_dts)
    assert r.returncode == 0, r.stderr.decode()
    return out


def apply(board: Path, overlay: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return run(tool("fdtoverlay"), "-i", board, "-o", out, overlay)


def tree_differences(got: bytes, want: bytes) -> list[str]:
    """What differs between two DTBs, beyond property/child order and phandle numbers."""
    a, b = read_nodes(got), read_nodes(want)
    for nodes in (a, b):
        for path in [p for p in nodes if any(p == s or p.startswith(s + "/") for s in SYMBOL_NODES)]:
            del nodes[path]
    ph_a = {cells(p["phandle"])[0]: path for path, p in a.items() if "phandle" in p}
    ph_b = {cells(p["phandle"])[0]: path for path, p in b.items() if "phandle" in p}
    problems = [f"{p}: only in the applied tree" for p in sorted(set(a) - set(b))]
    problems += [f"{p}: missing from the applied tree" for p in sorted(set(b) - set(a))]
    for path in sorted(set(a) & set(b)):
        pa = {k: v for k, v in a[path].items() if k not in ("phandle", "linux,phandle")}
        pb = {k: v for k, v in b[path].items() if k not in ("phandle", "linux,phandle")}
        if set(pa) != set(pb):
            problems.append(f"{path}: properties {sorted(set(pa) ^ set(pb))} in one tree only")
        for name in sorted(set(pa) & set(pb)):
            va, vb = pa[name], pb[name]
            if va == vb:
                continue
            if len(va) != len(vb) or len(va) % 4:
                problems.append(f"{path}:{name}: {va.hex()} != {vb.hex()}")
                continue
            for i, (x, y) in enumerate(zip(cells(va), cells(vb), strict=True)):
                if x != y and (x not in ph_a or ph_a[x] != ph_b.get(y)):
                    problems.append(f"{path}:{name} cell {i}: {x:#x} ({ph_a.get(x)}) != {y:#x} ({ph_b.get(y)})")
    return problems


def plugin_source(system_dts: str, label: str, node: str) -> str:
    """The ``/plugin/`` source a person would write: the host bridge block of
    the merged DTS, added to the root (whose cell sizes it restates)."""
    lines = system_dts.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"\t{label}: {node} {{"))
    end = next(i for i in range(start, len(lines)) if lines[i] == "\t};")
    body = "\n".join(lines[start:end + 1])
    return ("/dts-v1/;\n/plugin/;\n\n&{/} {\n\t#address-cells = <0x02>;\n\t#size-cells = <0x02>;\n"
            f"{body}\n}};\n")


@pytest.fixture(scope="module")
def virt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/qemu-virt compiled with its overlay, beside the board's DTB."""
    out = tmp_path_factory.mktemp("virt")
    compile_msi(EXAMPLES / "qemu-virt" / "qemu-virt.msi", out)
    board_dtb(EXAMPLES / "qemu-virt" / "qemu-virt-base.dts", out / "board.dtb")
    return out


@pytest.mark.parametrize("example", ["qemu-virt", "qemu-virt-switch"])
def test_overlay_applied_to_the_board_is_the_merged_tree(example: str, tmp_path: Path) -> None:
    compile_msi(EXAMPLES / example / f"{example}.msi", tmp_path)
    board = board_dtb(EXAMPLES / "qemu-virt" / "qemu-virt-base.dts", tmp_path / "board.dtb")
    r = apply(board, tmp_path / "system.dtbo", tmp_path / "applied.dtb")
    assert r.returncode == 0, r.stderr
    applied = (tmp_path / "applied.dtb").read_bytes()
    assert tree_differences(applied, (tmp_path / "system.dtb").read_bytes()) == []
    # The overlay's labels reach the board's symbol table at their final paths.
    symbols = read_nodes(applied)["/__symbols__"]
    assert symbols["pcie0"] == b"/pcie@4010000000\0"
    assert symbols["its"] == b"/intc@8000000/its@8080000\0"  # the board's own


def test_partition_overlays_apply_to_the_board(tmp_path: Path) -> None:
    """Each partition's overlay gives that partition's tree, its own msi-map rows only."""
    src = tmp_path / "src"
    shutil.copytree(EXAMPLES / "qemu-virt", src)
    msi = src / "qemu-virt.msi"
    msi.write_text(msi.read_text() + PARTITIONS)
    compile_msi(msi, tmp_path)
    board = board_dtb(src / "qemu-virt-base.dts", tmp_path / "board.dtb")
    for stem in ("system", "front", "back"):
        r = apply(board, tmp_path / f"{stem}.dtbo", tmp_path / f"{stem}-applied.dtb")
        assert r.returncode == 0, r.stderr
        applied = (tmp_path / f"{stem}-applied.dtb").read_bytes()
        assert tree_differences(applied, (tmp_path / f"{stem}.dtb").read_bytes()) == [], stem
    back = read_nodes((tmp_path / "back-applied.dtb").read_bytes())
    assert sorted(p for p in back if p.startswith("/pcie@4010000000/")) == ["/pcie@4010000000/nvme@3"]


@pytest.mark.parametrize("example", ["qemu-virt", "qemu-virt-switch"])
def test_overlay_is_what_dtc_makes_of_the_plugin_source(example: str, tmp_path: Path) -> None:
    """Byte for byte dtc -@'s blob: fragments, __symbols__, __fixups__ and
    __local_fixups__ (the switch's bridges refer to each other) and phandle numbers."""
    compile_msi(EXAMPLES / example / f"{example}.msi", tmp_path)
    source = tmp_path / "plugin.dts"
    source.write_text(plugin_source((tmp_path / "system.dts").read_text(), "pcie0", "pcie@4010000000"))
    r = run_dtc_command("-@", "-I", "dts", "-O", "dtb", "-o", tmp_path / "dtc.dtbo", source)
    assert r.returncode == 0, r.stderr.decode()
    assert (tmp_path / "system.dtbo").read_bytes() == (tmp_path / "dtc.dtbo").read_bytes()
    # dtc reads ours with exactly the warnings it gives its own blob (none for a
    # tree without bridges; dtc 1.6.1 checks the __local_fixups__ nodes it makes
    # itself as if they were devices).
    ours = run_dtc_command("-I", "dtb", "-O", "dts", tmp_path / "system.dtbo")
    theirs = run_dtc_command("-I", "dtb", "-O", "dts", tmp_path / "dtc.dtbo")
    assert ours.returncode == 0
    assert ours.stderr == theirs.stderr
    if example == "qemu-virt":
        assert ours.stderr == b""


def test_dtc_warnings_would_be_seen(virt: Path, tmp_path: Path) -> None:
    """Negative control: the same overlay without the root's cell sizes restated
    makes dtc warn, so the empty stderr above is a real check."""
    fdt = libfdt.Fdt(bytearray((virt / "system.dtbo").read_bytes()))
    node = fdt.path_offset("/fragment@0/__overlay__")
    fdt.delprop(node, "#address-cells")
    fdt.delprop(node, "#size-cells")
    fdt.pack()
    bad = tmp_path / "bad.dtbo"
    bad.write_bytes(bytes(fdt.as_bytearray()))
    r = run_dtc_command("-I", "dtb", "-O", "dts", bad)
    assert b"Warning (reg_format)" in r.stderr


def _edit_dts(dtbo: Path, old: str, new: str, out: Path) -> Path:
    r = run_dtc_command("-I", "dtb", "-O", "dts", dtbo)
    text = r.stdout.decode()
    assert old in text
    src = out.with_suffix(".dts")
    src.write_text(text.replace(old, new, 1))
    r = run_dtc_command("-I", "dts", "-O", "dtb", "-o", out, src)
    assert r.returncode == 0, r.stderr.decode()
    return out


def test_fdtoverlay_refuses_a_wrong_overlay(virt: Path, tmp_path: Path) -> None:
    """Negative controls: fragments or references naming what the board lacks fail to apply."""
    board = virt / "board.dtb"
    missing_label = _edit_dts(virt / "system.dtbo", "\t\tits = ", "\t\tno_such_label = ", tmp_path / "label.dtbo")
    r = apply(board, missing_label, tmp_path / "x.dtb")
    assert r.returncode != 0
    missing_path = _edit_dts(virt / "system.dtbo", 'target-path = "/";', 'target-path = "/no-such-node";',
                             tmp_path / "path.dtbo")
    r = apply(board, missing_path, tmp_path / "y.dtb")
    assert r.returncode != 0
    # And a board built without -@ has no symbols for the overlay's references.
    plain = tmp_path / "plain.dtb"
    r2 = run_dtc_command("-I", "dts", "-O", "dtb", "-o", plain, EXAMPLES / "qemu-virt" / "qemu-virt-base.dts")
    assert r2.returncode == 0
    assert apply(plain, virt / "system.dtbo", tmp_path / "z.dtb").returncode != 0


def test_the_comparison_sees_a_wrong_value_and_a_wrong_phandle(virt: Path, tmp_path: Path) -> None:
    """Negative controls for tree_differences: an overlay that applies but says
    something else (a domain number; INTx routed to the GPIO controller, not the GIC) differs."""
    want = (virt / "system.dtb").read_bytes()
    wrong_value = _edit_dts(virt / "system.dtbo", "linux,pci-domain = <0x00>", "linux,pci-domain = <0x01>",
                            tmp_path / "v.dtbo")
    wrong_target = _edit_dts(virt / "system.dtbo", "\t\tgic = ", "\t\tgpio = ", tmp_path / "t.dtbo")
    for bad, what in ((wrong_value, "linux,pci-domain"), (wrong_target, "interrupt-map")):
        r = apply(virt / "board.dtb", bad, tmp_path / "applied.dtb")
        assert r.returncode == 0, r.stderr
        problems = tree_differences((tmp_path / "applied.dtb").read_bytes(), want)
        assert problems and all(what in p for p in problems), problems


def test_overlay_on_a_dtb_from_qemu_uses_its_phandles(tmp_path: Path) -> None:
    """A board DTB without __symbols__ (QEMU's dumpdtb): references to its nodes
    are the phandles it already has, and the overlay applies to that very blob."""
    dtb = tmp_path / "virt.dtb"
    r = run(tool("qemu-system-aarch64"), "-M", f"virt,gic-version=3,its=on,dumpdtb={dtb}",
            "-cpu", "cortex-a57", "-m", "1G", "-smp", "1", "-nodefaults", "-display", "none")
    assert r.returncode == 0 and dtb.is_file(), r.stderr
    (tmp_path / "board.msi").write_text(
        'platform "linux,dummy-virt" { msi native; base "virt.dtb"; cpus 1; }\n'
        'gic = interrupt-controller gicv3 @ 0x0800_0000 size 64K {\n'
        '    redistributor @ 0x080a_0000 size 0xf6_0000; from base "/intc@8000000"; }\n'
        'its = msi-controller gicv3-its @ 0x0808_0000 size 128K {\n'
        '    parent gic; from base "/intc@8000000/its@8080000"; }\n'
        'host-bridge pcie1 ecam @ 0x40_1000_0000 size 256M {\n'
        '    domain 1; buses 0..255;\n'
        '    window mem32 cpu 0x1000_0000 size 0x2eff_0000;\n'
        '    msi map rid 0x0000..0xffff -> its;\n'
        '    intx -> gic spi 3..6 level;\n'
        '    endpoint nic0 @ 02.0 { id 8086:10d3 class 0x020000; bar 0 mem32 128K; msix 5 table bar 0 + 0x8000'
        ' pba bar 0 + 0xa000; intx A; }\n'
        '}\n')
    compile_msi(tmp_path / "board.msi", tmp_path)
    fixups = read_nodes((tmp_path / "system.dtbo").read_bytes())
    assert "/__fixups__" not in fixups  # nothing to look up: QEMU's phandles are in the cells
    r2 = apply(dtb, tmp_path / "system.dtbo", tmp_path / "applied.dtb")
    assert r2.returncode == 0, r2.stderr
    assert tree_differences((tmp_path / "applied.dtb").read_bytes(), (tmp_path / "system.dtb").read_bytes()) == []


def test_dtbo_only_on_request_deterministic_and_in_the_depfile(tmp_path: Path) -> None:
    msi = EXAMPLES / "qemu-virt" / "qemu-virt.msi"
    cli = [sys.executable, "-m", "dtmsi", "compile", str(msi)]
    env = {**os.environ, "NO_COLOR": "1"}
    r = subprocess.run([*cli, "-o", str(tmp_path / "plain")], capture_output=True, text=True, env=env, check=False)
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "plain" / "system.dtbo").exists()  # not by default
    for run_no in (1, 2):
        r = subprocess.run([*cli, "-o", str(tmp_path / f"o{run_no}"), "--emit", "dtb,dtbo",
                            "-M", str(tmp_path / f"o{run_no}.d")], capture_output=True, text=True, env=env,
                           check=False)
        assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(tmp_path / "o1")) == ["system.dtb", "system.dtbo"]
    assert (tmp_path / "o1" / "system.dtbo").read_bytes() == (tmp_path / "o2" / "system.dtbo").read_bytes()
    assert "system.dtbo" in (tmp_path / "o1.d").read_text()


def test_no_base_tree_warns_and_writes_no_overlay(tmp_path: Path) -> None:
    result = compile_file(CompileOptions(input=EXAMPLES / "switch-sriov" / "switch-sriov.msi",
                                         output_dir=tmp_path, keep_artifacts=False,
                                         emit=frozenset({"dtb", "dtbo"})))
    assert result.ok
    assert "W980" in [d.code.id for d in result.sink]
    assert sorted(os.listdir(tmp_path)) == ["system.dtb"]
