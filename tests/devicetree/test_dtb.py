"""render_dtb gives exactly the bytes dtc gives for render_dts, and FDT readers agree."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable

import libfdt
import pyfdt.pyfdt
import pytest

from dtmsi.devicetree.dtb import render_dtb
from dtmsi.devicetree.dts import render_dts
from dtmsi.devicetree.tree import (
    Bytes,
    Cells,
    DeviceTreeError,
    Node,
    PathRef,
    Property,
    Ref,
    Reservation,
    Str,
    Tree,
    cells,
    u32,
)

DtcRun = Callable[..., bytes]


# ---- trees ----------------------------------------------------------------------


def _root(tree: Tree) -> Node:
    tree.root.set("#address-cells", u32(2))
    tree.root.set("#size-cells", u32(2))
    return tree.root


def _gic(label: str = "gic", at: int = 0x8000000) -> Node:
    gic = Node(f"interrupt-controller@{at:x}", labels=[label])
    gic.set("compatible", Str("arm,gic-v3"))
    gic.set("reg", cells(0, at, 0, 0x10000))
    gic.set("interrupt-controller")
    gic.set("#interrupt-cells", u32(3))
    gic.set("#address-cells", u32(0))
    return gic


def _device(name: str, at: int) -> Node:
    dev = Node(f"{name}@{at:x}")
    dev.set("compatible", Str(f"vendor,{name}"))
    dev.set("reg", cells(0, at, 0, 0x1000))
    return dev


def tree_references() -> Tree:
    """Label and path references, in and out of cells, forward and backward."""
    t = Tree()
    root = _root(t)
    root.set("interrupt-parent", cells(Ref("gic")))  # forward: gic comes later
    root.set("model", Str("dtmsi test"))
    root.add_child(_gic())
    its = root.add_child(Node("msi-controller@8080000", labels=["its"]))
    its.set("compatible", Str("arm,gic-v3-its"))
    its.set("reg", cells(0, 0x8080000, 0, 0x20000))
    its.set("msi-controller")
    its.set("#msi-cells", u32(1))
    uart = root.add_child(_device("serial", 0x9000000))
    uart.labels.append("uart0")
    uart.set("interrupts", cells(0, 1, 4))
    dev = root.add_child(_device("dev", 0x10000000))
    dev.set("interrupts", cells(0, 5, 4))
    dev.set("msi-parent", cells(Ref("its"), 0x10))
    dev.set("vendor,peer", cells(Ref("/serial@9000000"), Ref("uart0")))
    dev.set("vendor,peer-path", PathRef("uart0"))
    dev.set("vendor,self-path", PathRef("/dev@10000000"))
    chosen = root.add_child(Node("chosen"))
    chosen.set("stdout-path", PathRef("uart0"))
    aliases = root.add_child(Node("aliases"))
    aliases.set("serial0", PathRef("/serial@9000000"))
    return t


def tree_explicit_phandles() -> Tree:
    """A base tree that already carries phandles: the counter must skip them."""
    t = Tree()
    root = _root(t)
    a = root.add_child(Node("a", labels=["a"]))
    a.set("phandle", u32(1))
    b = root.add_child(Node("b", labels=["b"]))
    b.set("linux,phandle", u32(2))  # referenced: keeps 2, gets no "phandle"
    c = root.add_child(Node("c", labels=["c"]))
    c.set("phandle", u32(4))
    c.set("linux,phandle", u32(4))
    root.add_child(Node("d", labels=["d"]))
    root.add_child(Node("e", labels=["e"]))
    user = root.add_child(Node("user"))
    user.set("refs", cells(Ref("d"), Ref("a"), Ref("b"), Ref("e"), Ref("c"), Ref("late")))
    late = root.add_child(Node("late", labels=["late"]))
    late.set("phandle", u32(3))  # found after d got 3 from a single pass: rewrite
    return t


def tree_chunks() -> Tree:
    """Every kind of value, empty ones, string lists, escapes, /bits/."""
    t = Tree()
    root = _root(t)
    target = root.add_child(Node("target", labels=["tgt"]))
    target.set("flag")
    n = root.add_child(Node("values"))
    n.set("empty-cells", Cells(()))
    n.set("empty-bytes", Bytes(b""))
    n.set("empty-string", Str(""))
    n.set("boolean")
    n.set("strings", Str("first"), Str(""), Str("third"))
    n.set("escapes", Str('tab\there "quoted" back\\slash\nnewline \x01 caf\u00e9'))
    n.set("bytes", Bytes(bytes(range(0, 256, 17))))
    n.set("b8", Cells((0, 0x7F, 0xFF), 8))
    n.set("b16", Cells((1, 0xFFFF), 16))
    n.set("b64", Cells((0x123456789ABCDEF0, 2**64 - 1, 5), 64))
    n.set(
        "mixed",
        Str("str"),
        cells(1, 0xFFFFFFFF, Ref("tgt")),
        Bytes(b"\x0a\x0b"),
        Cells((7,), 8),
        PathRef("tgt"),
        Cells((9,), 16),
        Str("end"),
    )
    rows = n.set("rows", *(cells(i, i + 1, i + 2) for i in range(0, 30, 3)))
    rows.chunk_comments = ("first row", None, "third row */ not the end")
    n.set("long", *(cells(0x1000000 * i, 0xDEADBEEF, i) for i in range(6)))
    n.set("commented", u32(5), comment="a comment\nover two lines")
    return t


def tree_deep(depth: int = 120) -> Tree:
    t = Tree()
    node = t.root
    path = ""
    for i in range(depth):
        child = node.add_child(Node(f"level{i}"))
        child.set("depth", u32(i))
        path += f"/level{i}"
        node = child
    node.labels.append("deepest")
    t.root.set("to-deepest", cells(Ref("deepest"), Ref(path)))
    t.root.set("deepest-path", PathRef(path))
    return t


def tree_tails() -> Tree:
    """Names that are tails of others share their bytes in the strings block."""
    t = Tree()
    root = _root(t)
    root.add_child(_gic())
    dev = root.add_child(_device("dev", 0x10000000))
    dev.set("interrupt-parent", cells(Ref("gic")))
    dev.set("interrupts", cells(0, 5, 4))
    dev.set("cells", u32(1))  # tail of "#interrupt-cells"
    dev.set("rupts", u32(2))  # tail of "interrupts"
    dev.set("s", u32(3))
    base = root.add_child(Node("base", labels=["base"]))
    base.set("linux,phandle", u32(7))
    later = root.add_child(Node("later", labels=["later"]))
    later.set("x", u32(0))
    user = root.add_child(Node("user"))
    user.set("refs", cells(Ref("base"), Ref("later")))  # later's "phandle" is a tail
    user.set("handle", u32(4))
    return t


def tree_backward_refs() -> Tree:
    """References only to nodes already written, with new names stored since."""
    t = Tree()
    root = _root(t)
    root.add_child(_gic())
    mid = root.add_child(Node("middle"))
    for i in range(5):
        mid.set(f"vendor,new-name-{i}", u32(i))
    user = root.add_child(_device("dev", 0x10000000))
    user.set("interrupt-parent", cells(Ref("gic")))
    user.set("interrupts", cells(0, 3, 4))
    quiet = root.add_child(Node("quiet", labels=["quiet"]))
    quiet.set("vendor,new-name-0", u32(1))
    back = root.add_child(Node("back"))
    back.set("vendor,new-name-1", cells(Ref("quiet")))  # no new name since: patched in place
    return t


def tree_self_reference() -> Tree:
    """``phandle = <&me>``: allocate one even though nothing else refers to it."""
    t = Tree()
    root = _root(t)
    me = root.add_child(Node("me", labels=["me"]))
    me.set("phandle", cells(Ref("me")))
    other = root.add_child(Node("other", labels=["other"]))
    other.set("linux,phandle", cells(Ref("other")))
    return t


def tree_reservations_and_cpus() -> Tree:
    t = Tree()
    root = _root(t)
    t.reservations += [
        Reservation(0x40000000, 0x100000),
        Reservation(0, 0x1000),
        Reservation(2**64 - 0x1000, 0x1000),
    ]
    t.header_comment = "provenance: test */ with a stray terminator"
    cpus = root.add_child(Node("cpus"))
    cpus.set("#address-cells", u32(1))
    cpus.set("#size-cells", u32(0))
    for i in (2, 0):
        cpu = cpus.add_child(Node(f"cpu@{i}"))
        cpu.set("device_type", Str("cpu"))
        cpu.set("compatible", Str("arm,cortex-a57"))
        cpu.set("reg", u32(i))
    return t


def tree_labels_everywhere() -> Tree:
    t = Tree()
    root = _root(t)
    root.labels.append("root_label")
    n = root.add_child(Node("n", labels=["one", "two"], comment="several labels"))
    p = n.set("value", u32(1))
    p.labels = ("value_label",)
    n.set("to-root", cells(Ref("root_label")), comment="the root, by label")
    return t


TREES: dict[str, Callable[[], Tree]] = {
    "references": tree_references,
    "explicit_phandles": tree_explicit_phandles,
    "chunks": tree_chunks,
    "deep": tree_deep,
    "tails": tree_tails,
    "backward_refs": tree_backward_refs,
    "self_reference": tree_self_reference,
    "reservations_and_cpus": tree_reservations_and_cpus,
    "labels_everywhere": tree_labels_everywhere,
}


# ---- byte identity ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TREES))
def test_matches_dtc(name: str, dtc: DtcRun) -> None:
    tree = TREES[name]()
    assert render_dtb(tree) == dtc(render_dts(tree))


def test_empty_tree(dtc: DtcRun) -> None:
    tree = Tree()
    assert render_dtb(tree) == dtc(render_dts(tree))


def test_explicit_boot_cpuid_is_dtc_b(dtc: DtcRun) -> None:
    tree = tree_reservations_and_cpus()
    tree.boot_cpuid_phys = 5
    assert render_dtb(tree) == dtc(render_dts(tree), "-b", "5")


def test_large_tree(dtc: DtcRun) -> None:
    """Enough nodes that a quadratic step would show, and every fast path in use."""
    t = Tree()
    root = _root(t)
    root.add_child(_gic())
    bus = root.add_child(Node("bus", labels=["bus"]))
    bus.set("compatible", Str("simple-bus"))
    bus.set("#address-cells", u32(2))
    bus.set("#size-cells", u32(2))
    bus.set("ranges")
    for i in range(3000):
        dev = bus.add_child(Node(f"dev@{i:x}", comment=f"device {i}"))
        dev.set("compatible", Str("vendor,dev"), Str("vendor,generic"))
        dev.set("reg", cells(0, i, 0, 1))
        dev.set("interrupt-parent", cells(Ref("gic")))
        dev.set("interrupts", cells(0, i % 900, 4))
        dev.set("vendor,id", u32(i * 0x10001))
        dev.set("vendor,rows", cells(i, 0x80000000), cells(0xFFFFFFFF, i))
    assert render_dtb(t) == dtc(render_dts(t))


# ---- what was written -------------------------------------------------------------


def test_header_layout() -> None:
    blob = render_dtb(tree_reservations_and_cpus())
    (magic, total, off_struct, off_strings, off_rsv, version, last_comp, boot, size_strings,
     size_struct) = struct.unpack_from(">10I", blob)  # fmt: skip
    assert magic == 0xD00DFEED
    assert (version, last_comp) == (17, 16)
    assert off_rsv == 0x28
    assert off_struct == 0x28 + 16 * 4  # three entries and the terminator
    assert off_strings == off_struct + size_struct
    assert total == len(blob) == off_strings + size_strings
    assert boot == 2  # dtc's guess: reg of the first child of /cpus


def test_phandles_follow_dtc_counter() -> None:
    fdt = libfdt.Fdt(render_dtb(tree_explicit_phandles()))
    phandle = {name: fdt.get_phandle(fdt.path_offset(f"/{name}")) for name in "abcde"}
    assert phandle == {"a": 1, "b": 2, "c": 4, "d": 5, "e": 6}
    user = fdt.getprop(fdt.path_offset("/user"), "refs")
    assert struct.unpack(">6I", bytes(user)) == (5, 1, 2, 6, 4, 3)
    # b keeps only its linux,phandle: dtc adds "phandle" only to nodes it numbers.
    assert not fdt.hasprop(fdt.path_offset("/b"), "phandle")


def test_only_referenced_nodes_get_phandles() -> None:
    fdt = libfdt.Fdt(render_dtb(tree_references()))
    assert fdt.get_phandle(fdt.path_offset("/interrupt-controller@8000000")) == 1
    assert fdt.get_phandle(fdt.path_offset("/msi-controller@8080000")) == 2
    assert fdt.get_phandle(fdt.path_offset("/serial@9000000")) == 3
    assert fdt.get_phandle(fdt.path_offset("/dev@10000000")) == 0
    # The added property comes last in the node.
    off = fdt.path_offset("/serial@9000000")
    names = []
    prop_off = fdt.first_property_offset(off)
    while prop_off >= 0:
        names.append(fdt.get_property_by_offset(prop_off).name)
        prop_off = fdt.next_property_offset(prop_off, libfdt.QUIET_NOTFOUND)
    assert names[-1] == "phandle"


def test_values_read_back_with_libfdt() -> None:
    fdt = libfdt.Fdt(render_dtb(tree_chunks()))
    off = fdt.path_offset("/values")

    def raw(name: str) -> bytes:
        return bytes(fdt.getprop(off, name))

    assert raw("empty-cells") == raw("empty-bytes") == raw("boolean") == b""
    assert raw("empty-string") == b"\0"
    assert raw("strings") == b"first\0\0third\0"
    assert raw("escapes") == 'tab\there "quoted" back\\slash\nnewline \x01 caf\u00e9\0'.encode()
    assert raw("b8") == b"\x00\x7f\xff"
    assert raw("b16") == b"\x00\x01\xff\xff"
    assert raw("b64") == struct.pack(">3Q", 0x123456789ABCDEF0, 2**64 - 1, 5)
    target = fdt.get_phandle(fdt.path_offset("/target"))
    assert target == 1
    assert raw("mixed") == (
        b"str\0" + struct.pack(">3I", 1, 0xFFFFFFFF, target) + b"\x0a\x0b" + b"\x07"
        b"/target\0" + b"\x00\x09" + b"end\0"
    )
    assert fdt.getprop(off, "rows").as_int32_list() == list(range(30))


def test_values_read_back_with_pyfdt() -> None:
    blob = render_dtb(tree_references())
    fdt = pyfdt.pyfdt.FdtBlobParse(io.BytesIO(blob)).to_fdt()
    assert fdt.resolve_path("/model").strings == ["dtmsi test"]
    assert fdt.resolve_path("/chosen/stdout-path").strings == ["/serial@9000000"]
    assert fdt.resolve_path("/dev@10000000/msi-parent").words == [2, 0x10]
    assert fdt.resolve_path("/dev@10000000/vendor,peer").words == [3, 3]
    assert fdt.resolve_path("/interrupt-parent").words == [1]
    assert fdt.resolve_path("/dev@10000000/vendor,self-path").strings == ["/dev@10000000"]


def test_labels_and_comments_leave_no_trace(dtc: DtcRun) -> None:
    plain = tree_labels_everywhere()
    blob = render_dtb(plain)
    fdt = libfdt.Fdt(blob)
    assert fdt.getprop(fdt.path_offset("/n"), "to-root").as_int32_list() == [1]
    assert fdt.get_phandle(fdt.path_offset("/")) == 1
    assert b"value_label" not in blob and b"several" not in blob


def test_same_tree_same_bytes() -> None:
    assert render_dtb(tree_chunks()) == render_dtb(tree_chunks())
    assert render_dts(tree_chunks()) == render_dts(tree_chunks())


# ---- refused trees ---------------------------------------------------------------


def _errors(tree: Tree) -> str:
    with pytest.raises(DeviceTreeError) as info:
        render_dtb(tree)
    return str(info.value)


def test_missing_label(dtc_error: Callable[[str], str]) -> None:
    t = Tree()
    t.root.set("x", cells(Ref("nowhere")))
    assert 'non-existent node or label "nowhere"' in _errors(t)
    assert "nowhere" in dtc_error(render_dts(t))


def test_missing_path_and_path_ref(dtc_error: Callable[[str], str]) -> None:
    t = Tree()
    t.root.add_child(Node("a"))
    t.root.set("x", cells(Ref("/a/b")))
    t.root.set("y", PathRef("/b"))
    message = _errors(t)
    assert '"/a/b"' in message and '"/b"' in message
    dtc_error(render_dts(t))


def test_duplicate_labels(dtc_error: Callable[[str], str]) -> None:
    t = Tree()
    t.root.add_child(Node("a", labels=["same"]))
    t.root.add_child(Node("b", labels=["same"]))
    assert "duplicate label 'same'" in _errors(t)
    assert "same" in dtc_error(render_dts(t))


def test_duplicate_label_on_property() -> None:
    t = Tree()
    t.root.add_child(Node("a", labels=["same"]))
    t.root.set("p", u32(1)).labels = ("same",)
    assert "duplicate label 'same'" in _errors(t)


def test_bad_values_and_names() -> None:
    t = Tree()
    n = t.root.add_child(Node("bad name"))
    n.set("too-big", u32(2**32))
    n.set("negative", u32(-1))
    n.set("ref-in-16", Cells((Ref("x"),), 16))
    n.set("bits", Cells((1,), 12))
    n.set("bad=name", u32(0))
    message = _errors(t)
    for text in ("bad node name 'bad name'", "too-big", "negative", "32-bit cells",
                 "8, 16, 32 or 64 bits", "bad property name 'bad=name'"):  # fmt: skip
        assert text in message


def test_duplicate_names(dtc_error: Callable[[str], str]) -> None:
    t = Tree()
    t.root.add_child(Node("twin"))
    t.root.add_child(Node("twin"))
    assert "duplicate node name twin" in _errors(t)
    t = Tree()
    t.root.properties += [Property("p", (u32(1),)), Property("p", (u32(2),))]
    assert "duplicate property name p" in _errors(t)
    assert "Duplicate property name" in dtc_error(render_dts(t))


def test_bad_explicit_phandles(dtc_error: Callable[[str], str]) -> None:
    t = Tree()
    t.root.add_child(Node("a")).set("phandle", u32(1))
    t.root.add_child(Node("b")).set("phandle", u32(1))
    t.root.add_child(Node("c")).set("phandle", u32(0))
    d = t.root.add_child(Node("d"))
    d.set("phandle", u32(2))
    d.set("linux,phandle", u32(3))
    message = _errors(t)
    assert "duplicated phandle 0x1" in message
    assert "bad value (0x0)" in message
    assert "mismatching" in message
    dtc_error(render_dts(t))


def test_phandle_referring_to_another_node(dtc_error: Callable[[str], str]) -> None:
    t = Tree()
    t.root.add_child(Node("a", labels=["a"]))
    t.root.add_child(Node("b")).set("phandle", cells(Ref("a")))
    assert "phandle is a reference to another node" in _errors(t)
    assert "reference to another node" in dtc_error(render_dts(t))
