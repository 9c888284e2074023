"""render_dts: readable, deterministic source that dtc reads back."""

from __future__ import annotations

from collections.abc import Callable

from dtmsi.devicetree.dts import render_dts
from dtmsi.devicetree.tree import (
    Bytes,
    Cells,
    Node,
    PathRef,
    Ref,
    Reservation,
    Str,
    Tree,
    cells,
    u32,
)

DtcRun = Callable[..., bytes]


def small_tree() -> Tree:
    t = Tree(header_comment="made by dtmsi\nfrom topology.msi")
    t.reservations.append(Reservation(0x8000000, 0x10000))
    t.root.set("#address-cells", u32(2))
    t.root.set("#size-cells", u32(2))
    t.root.set("model", Str("board"))
    ic = t.root.add_child(Node("intc@8000000", labels=["gic"], comment="GICv3"))
    ic.set("reg", cells(0, 0x8000000, 0, 0x10000))
    ic.set("interrupt-controller")
    ic.set("#interrupt-cells", u32(3))
    ic.set("#address-cells", u32(0))
    dev = t.root.add_child(Node("dev@10000000"))
    dev.set("reg", cells(0, 0x10000000, 0, 0x1000), comment="BAR0")
    dev.set("interrupts-extended", cells(Ref("gic"), 0, 10, 4))
    dev.set("peer", PathRef("/intc@8000000"))
    dev.set("mac", Bytes(b"\x02\x00\x00\xab\xcd\xef"))
    dev.set("wide", Cells((1 << 40,), 64))
    p = dev.set("map", cells(0x800, Ref("gic"), 1), cells(0x1000, Ref("gic"), 2))
    p.chunk_comments = ("slot 1", "slot 2")
    return t


EXPECTED = """\
/dts-v1/;

/*
 * made by dtmsi
 * from topology.msi
 */

/memreserve/ 0x8000000 0x10000;

/ {
\t#address-cells = <2>;
\t#size-cells = <2>;
\tmodel = "board";

\tgic: intc@8000000 {\t/* GICv3 */
\t\treg = <0 0x8000000 0 0x10000>;
\t\tinterrupt-controller;
\t\t#interrupt-cells = <3>;
\t\t#address-cells = <0>;
\t};

\tdev@10000000 {
\t\treg = <0 0x10000000 0 0x1000>;\t/* BAR0 */
\t\tinterrupts-extended = <&gic 0 0xa 4>;
\t\tpeer = &{/intc@8000000};
\t\tmac = [02 00 00 ab cd ef];
\t\twide = /bits/ 64 <0x10000000000>;
\t\tmap = <0x800 &gic 1>,  /* slot 1 */
\t\t      <0x1000 &gic 2>; /* slot 2 */
\t};
};
"""


def test_layout() -> None:
    assert render_dts(small_tree()) == EXPECTED


def test_dtc_reads_it_without_warnings(dtc: DtcRun) -> None:
    dtc(render_dts(small_tree()))


def test_numbers_are_decimal_below_ten_else_hex() -> None:
    t = Tree()
    t.root.set("n", cells(0, 9, 10, 15, 0xFFFF, 0x10000, 0xFFFFFFFF))
    assert "n = <0 9 0xa 0xf 0xffff 0x10000 0xffffffff>;" in render_dts(t)


def test_strings_are_escaped_and_ascii() -> None:
    t = Tree()
    t.root.set("s", Str('a"b\\c\nd\te\x7f\u00e9'))
    text = render_dts(t)
    assert text.isascii()
    assert 's = "a\\"b\\\\c\\nd\\te\\x7f\\xc3\\xa9";' in text


def test_comments_cannot_close_early(dtc: DtcRun) -> None:
    t = Tree(header_comment="a */ b")
    t.root.add_child(Node("n", comment="c */ d")).set("p", u32(1), comment="e */ f")
    text = render_dts(t)
    assert "*/ b" not in text and "*/ d" not in text and "*/ f" not in text
    dtc(text)


def test_root_labels_become_an_override(dtc: DtcRun) -> None:
    t = Tree()
    t.root.labels.append("top")
    t.root.set("self", cells(Ref("top")))
    text = render_dts(t)
    assert text.endswith("\ntop: &{/} {\n};\n")
    dtc(text)


def test_properties_before_subnodes_and_tabs() -> None:
    t = Tree()
    a = t.root.add_child(Node("a"))
    a.add_child(Node("b")).set("x", u32(1))
    a.set("y", u32(2))
    expected = "\ta {\n\t\ty = <2>;\n\n\t\tb {\n\t\t\tx = <1>;\n\t\t};\n\t};\n};\n"
    assert render_dts(t).endswith(expected)


def test_deterministic() -> None:
    assert render_dts(small_tree()) == render_dts(small_tree())
