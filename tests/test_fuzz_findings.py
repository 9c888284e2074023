"""Regression tests for what `make fuzz` found (each was an exit 3 or a tree dtc warns about)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dtmsi.driver import compile_file
from dtmsi.options import CompileOptions

ROOT = Path(__file__).resolve().parent.parent
GIC = """gic = interrupt-controller gicv3 @ 0x0800_0000 size 64K {
    redistributor @ 0x080a_0000 size 0xf6_0000;
}
"""
BRIDGE = """host-bridge pcie0 ecam @ 0x3000_0000 size 16M {
    buses 0..15;
    window mem32 cpu 0x4000_0000 size 256M;
    msi map rid 0x0000..0x0fff -> its;
    endpoint nic0 @ 01.0 { id 8086:10d3 class 0x020000; bar 0 mem32 128K; msi 1 addr64; }
}
"""


def _codes(tmp_path: Path, text: str, files: dict[str, str] | None = None) -> list[str]:
    for name, body in (files or {}).items():
        (tmp_path / name).write_text(body)
    src = tmp_path / "in.msi"
    src.write_text(text)
    result = compile_file(CompileOptions(input=src, output_dir=tmp_path / "out"))
    return [d.code.id for d in result.sink if d.code.is_error]


def test_its_id_bits_beyond_32_are_refused(tmp_path: Path) -> None:
    # 'device-id-bits 0x1_0000_0000_0000_0000' made a check compute 1 << 2**64: MemoryError
    its = ("its = msi-controller gicv3-its @ 0x0808_0000 size 128K "
           "{ parent gic; device-id-bits 0x1_0000_0000_0000_0000; }\n")
    assert _codes(tmp_path, GIC + its + BRIDGE) == ["E106"]
    fine = its.replace("0x1_0000_0000_0000_0000", "32")
    assert _codes(tmp_path, GIC + fine + BRIDGE) == []


def test_a_controller_at_an_address_needs_its_size(tmp_path: Path) -> None:
    # 'gicv3 @ 64K' without 'size' made a node with a unit address and no reg (dtc: unit_address_vs_reg)
    its = "its = msi-controller gicv3-its @ 0x0808_0000 size 128K { parent gic; }\n"
    unsized = GIC.replace("@ 0x0800_0000 size 64K", "@ 64K")
    assert _codes(tmp_path, unsized + its + BRIDGE) == ["E110"]
    assert _codes(tmp_path, GIC + its + BRIDGE) == []


def test_a_base_tree_dtc_refuses_is_refused(tmp_path: Path) -> None:
    # a duplicate label: dtc errors (and wrote output only under -f); dtmsi's reader let it through
    base = '/dts-v1/;\n/ {\n\tcompatible = "x";\n\ta: node1 { };\n\ta: node2 { };\n};\n'
    its = "its = msi-controller gicv3-its @ 0x0808_0000 size 128K { parent gic; }\n"
    text = 'platform "x" { base "b.dts"; }\n' + GIC + its + BRIDGE
    assert "E901" in _codes(tmp_path, text, {"b.dts": base})
    good = base.replace("a: node2", "b: node2")
    assert "E901" not in _codes(tmp_path, text, {"b.dts": good})


def _e500(tmp_path: Path) -> tuple[str, str]:
    """The qemu-e500 example's base tree (copied into ``tmp_path``) and .msi text."""
    example = ROOT / "examples" / "qemu-e500"
    base = (example / "qemu-e500-base.dts").read_text()
    (tmp_path / "qemu-e500-base.dts").write_text(base)
    return base, (example / "qemu-e500.msi").read_text()


def test_a_base_interrupt_controller_must_be_one(tmp_path: Path) -> None:
    # a mutated e500 base tree whose MPIC lost 'interrupt-controller': dtmsi's MSI
    # node named it as interrupt-parent and dtc warned (interrupts_property)
    base, text = _e500(tmp_path)
    assert "interrupt-controller;" in base.split("mpic:")[1].split("};")[0]
    assert _codes(tmp_path, text) == []
    broken = base.split("mpic:")
    broken[1] = broken[1].replace("interrupt-controller;", "", 1)
    (tmp_path / "qemu-e500-base.dts").write_text("mpic:".join(broken))
    assert _codes(tmp_path, text) == ["E902"]


def _dtc_warnings(dts: Path) -> str:
    import subprocess

    r = subprocess.run(["dtc", "-I", "dts", "-O", "dtb", "-o", "/dev/null", str(dts)], capture_output=True, text=True)
    return r.stderr


def test_a_node_on_a_base_nodes_unit_address_is_refused(tmp_path: Path) -> None:
    # the e500 example with its host bridge's ECAM moved to 0: dtmsi's pcie@0
    # went beside the base tree's memory@0 and dtc warned (unique_unit_address)
    base, text = _e500(tmp_path)
    ecam = "ecam @ 0xe_0000_0000"
    assert ecam in text and "memory@0 {" in base
    assert _codes(tmp_path, text) == []
    good = (tmp_path / "out" / "system.dts").read_bytes()
    assert _dtc_warnings(tmp_path / "out" / "system.dts") == ""
    assert _codes(tmp_path, text.replace(ecam, "ecam @ 0")) == ["E906"]
    assert (tmp_path / "out" / "system.dts").read_bytes() == good  # the error wrote nothing
    # Negative control: the same tree without the check is what dtc warns about.
    from dtmsi.backends import devicetree

    saved = devicetree._report_unit_address_clashes
    devicetree._report_unit_address_clashes = lambda *a: None
    try:
        assert _codes(tmp_path, text.replace(ecam, "ecam @ 0")) == []
    finally:
        devicetree._report_unit_address_clashes = saved
    assert "unique_unit_address" in _dtc_warnings(tmp_path / "out" / "system.dts")


def test_a_node_beside_a_base_node_on_its_bus_is_refused_too(tmp_path: Path) -> None:
    # The FSL MSI block goes into the base tree's SoC bus, beside the MPIC:
    # moved onto the guts' address (CCSR + 0xe0000) it would share its unit address.
    base, text = _e500(tmp_path)
    block = "fsl-msi @ 0xf_e004_1600"
    assert block in text and "global-utilities@e0000" in base
    assert _codes(tmp_path, text.replace(block, "fsl-msi @ 0xf_e00e_0000")) == ["E906"]


def test_a_base_interrupt_controllers_cells_must_be_what_dtmsi_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a mutated e500 base tree whose MPIC said #interrupt-cells = <0>: dtmsi's
    # MSI node still gave 2-cell specifiers and dtc warned (interrupts_property)
    base, text = _e500(tmp_path)
    cells = "#interrupt-cells = <0x02>;"
    assert cells in base.split("mpic:")[1].split("};")[0]

    def with_cells(n: int) -> None:
        head, mpic = base.split("mpic:")
        mpic = mpic.replace(cells, f"#interrupt-cells = <{n}>;", 1)
        (tmp_path / "qemu-e500-base.dts").write_text(head + "mpic:" + mpic)

    with_cells(4)  # fsl,mpic's other form: source, sense, type, info
    assert _codes(tmp_path, text) == []
    assert _dtc_warnings(tmp_path / "out" / "system.dts") == ""
    for wrong in (0, 1, 3):
        with_cells(wrong)
        assert _codes(tmp_path, text) == ["E902"], wrong
    # Negative control: let 0 through, and dtc warns about what dtmsi writes.
    from dtmsi.backends import devicetree

    with_cells(0)
    monkeypatch.setattr(devicetree, "interrupt_cells", lambda node: None)  # the check sees no cell count
    assert _codes(tmp_path, text) == []
    assert "interrupts_property" in _dtc_warnings(tmp_path / "out" / "system.dts")
