"""merge_into: the compiler's nodes land in the base tree as a later dtc block would."""

from __future__ import annotations

from collections.abc import Callable

from dtmsi.devicetree.basetree import parse_dts
from dtmsi.devicetree.dtb import render_dtb
from dtmsi.devicetree.dts import render_dts
from dtmsi.devicetree.merge import merge_into
from dtmsi.devicetree.tree import (
    Node,
    Ref,
    Str,
    Tree,
    cells,
    find_node_by_label,
    find_node_by_path,
    u32,
)

DtcRun = Callable[..., bytes]

BASE = """\
/dts-v1/;
/memreserve/ 0x1000 0x1000;
/ {
	#address-cells = <2>;
	#size-cells = <2>;
	model = "base";
	compatible = "vendor,board";

	gic: intc@8000000 {
		compatible = "arm,gic-v3";
		reg = <0 0x8000000 0 0x10000>;
		interrupt-controller;
		#interrupt-cells = <3>;
		#address-cells = <0>;
	};

	chosen {
		bootargs = "console=ttyAMA0";
	};
};
"""


def compiler_root() -> Node:
    root = Node("")
    root.set("model", Str("dtmsi machine"))  # replaces the base value in place
    root.set("interrupt-parent", cells(Ref("gic")))  # new: appended
    gic = root.add_child(Node("intc@8000000", labels=["intc"]))
    gic.set("#address-cells", u32(2))  # replaced in place
    gic.set("#size-cells", u32(2))
    gic.set("ranges")
    its = gic.add_child(Node("msi-controller@8080000", labels=["its"]))
    its.set("compatible", Str("arm,gic-v3-its"))
    its.set("reg", cells(0, 0x8080000, 0, 0x20000))
    its.set("msi-controller")
    its.set("#msi-cells", u32(1))
    pcie = root.add_child(Node("pcie@10000000", comment="host bridge"))
    pcie.set("compatible", Str("pci-host-ecam-generic"))
    pcie.set("device_type", Str("pci"))
    pcie.set("#address-cells", u32(3))
    pcie.set("#size-cells", u32(2))
    pcie.set("reg", cells(0, 0x10000000, 0, 0x1000000))
    pcie.set("bus-range", cells(0, 0))
    pcie.set("ranges", cells(0x2000000, 0, 0x20000000, 0, 0x20000000, 0, 0x10000000))
    pcie.set("msi-map", cells(0, Ref("its"), 0, 0x100))
    return root


def test_merge_rules() -> None:
    base = parse_dts(BASE, "base.dts")
    before = render_dts(base)
    merged = merge_into(base, compiler_root())
    assert render_dts(base) == before  # the base tree is left alone
    root = merged.root
    assert [p.name for p in root.properties] == [
        "#address-cells", "#size-cells", "model", "compatible", "interrupt-parent",
    ]  # fmt: skip
    assert root.prop("model").chunks == (Str("dtmsi machine"),)  # type: ignore[union-attr]
    assert [c.name for c in root.children] == ["intc@8000000", "chosen", "pcie@10000000"]
    gic = find_node_by_label(merged, "gic")
    assert gic is not None and gic is find_node_by_label(merged, "intc")
    assert gic.labels == ["gic", "intc"]
    assert [p.name for p in gic.properties][-3:] == ["#address-cells", "#size-cells", "ranges"]
    assert find_node_by_path(merged, "/intc@8000000/msi-controller@8080000") is not None
    assert merged.reservations == base.reservations


def test_merged_tree_matches_dtc(dtc: DtcRun) -> None:
    merged = merge_into(parse_dts(BASE, "base.dts"), compiler_root())
    assert render_dtb(merged) == dtc(render_dts(merged))


def test_same_as_dtc_merging_two_blocks(dtc: DtcRun) -> None:
    """merge_into(base, ours) == dtc's own merge of the base text and ours as a later block."""
    ours = Tree(compiler_root())
    ours_text = render_dts(ours).replace("/dts-v1/;\n", "", 1)
    combined = dtc(BASE + ours_text)
    assert render_dtb(merge_into(parse_dts(BASE, "base.dts"), compiler_root())) == combined


def test_property_labels_and_comments_kept() -> None:
    base = Tree()
    p = base.root.set("x", u32(1), comment="from the board")
    p.labels = ("xl",)
    root = Node("")
    root.set("x", u32(2))
    merged = merge_into(base, root)
    x = merged.root.prop("x")
    assert x is not None and x.labels == ("xl",) and x.comment == "from the board"
    assert x.chunks == (u32(2),)


def test_find_helpers() -> None:
    tree = parse_dts(BASE, "base.dts")
    assert find_node_by_path(tree, "/") is tree.root
    assert find_node_by_path(tree, "/chosen/") is find_node_by_path(tree, "//chosen")
    assert find_node_by_path(tree, "/chosen//") is None  # as dtc's get_node_by_path
    assert find_node_by_path(tree, "/intc") is None  # the unit address is part of the name
    assert find_node_by_label(tree, "nothing") is None
