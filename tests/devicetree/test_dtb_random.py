"""Random trees: render_dtb matches dtc on render_dts, byte for byte."""

from __future__ import annotations

import copy
from collections.abc import Callable

import libfdt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dtmsi.devicetree import dtb as dtb_module
from dtmsi.devicetree.dtb import render_dtb, write_tree
from dtmsi.devicetree.dts import DtsPrinter, render_dts
from dtmsi.devicetree.tree import (
    Bytes,
    Cells,
    Chunk,
    DeviceTreeError,
    Node,
    PathRef,
    Property,
    Ref,
    Reservation,
    Str,
    Tree,
)

DtcRun = Callable[..., bytes]

# Names dtc's checks have no opinion about (no reg, interrupts, compatible,
# "-gpios"...), drawn from a small pool so that names repeat and share tails.
PROPERTY_NAMES = [
    "x-a", "x-ab", "ab", "b", "x,cells", "cells", "s", "x-long-name", "name-x",
    "handle", "x-handle", "y,phandle-ish", "#x-cells", "x_under", "x.dot", "x+plus", "x?q",
]  # fmt: skip
NODE_NAMES = st.from_regex(r"n[a-z0-9,._+-]{0,6}", fullmatch=True)
LABELS = [f"lbl{i}" for i in range(12)]

texts = st.text(st.characters(min_codepoint=1, max_codepoint=0x3FF, exclude_categories=["Cs"]), max_size=12)


@st.composite
def trees(draw: st.DrawFn) -> Tree:
    free_labels = list(LABELS)
    draw(st.randoms(use_true_random=False)).shuffle(free_labels)
    nodes: list[tuple[str, Node]] = []
    free_phandles = list(range(1, 9))

    def make(name: str, path: str, depth: int) -> Node:
        node = Node(name)
        label_it: bool = draw(st.booleans())
        if free_labels and label_it:
            node.labels.append(free_labels.pop())
        nodes.append((path, node))
        if depth < 4:
            names: list[str] = draw(st.lists(NODE_NAMES, max_size=4 if depth < 2 else 2, unique=True))
            prefix = path if path != "/" else ""
            node.children = [make(n, f"{prefix}/{n}", depth + 1) for n in names]
        return node

    tree = Tree(make("", "/", 0))
    if draw(st.booleans()):
        tree.header_comment = draw(texts)
    reservations = st.builds(Reservation, st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
    tree.reservations = draw(st.lists(reservations, max_size=3))
    comments = st.none() | texts

    def cell(bits: int) -> st.SearchStrategy[int | Ref]:
        ints = st.integers(0, (1 << bits) - 1)
        if bits != 32:
            return ints
        refs = st.sampled_from(nodes).flatmap(
            lambda pn: st.sampled_from([Ref(pn[0]), *(Ref(lbl) for lbl in pn[1].labels)])
        )
        return st.one_of(ints, ints, refs)

    chunk = st.one_of(
        st.builds(lambda v: Cells(tuple(v)), st.lists(cell(32), max_size=5)),
        st.sampled_from([8, 16, 64]).flatmap(
            lambda b: st.builds(lambda v: Cells(tuple(v), b), st.lists(cell(b), max_size=4))
        ),
        st.builds(Str, texts),
        st.builds(Bytes, st.binary(max_size=6)),
        st.sampled_from(nodes).map(lambda pn: PathRef(pn[1].labels[0] if pn[1].labels else pn[0])),
    )

    for _, node in nodes:
        node.comment = draw(comments)
        names = draw(st.lists(st.sampled_from(PROPERTY_NAMES), max_size=5, unique=True))
        for name in names:
            chunks: list[Chunk] = draw(st.lists(chunk, max_size=3))
            notes = tuple(draw(st.lists(comments, max_size=len(chunks))))
            node.properties.append(Property(name, tuple(chunks), draw(comments), notes))
        # Sometimes an explicit phandle, as a base tree read from a blob has.
        if free_phandles and draw(st.integers(0, 5)) == 0:
            value = free_phandles.pop(draw(st.integers(0, len(free_phandles) - 1)))
            node.properties.append(Property("phandle", (Cells((value,)),)))
    return tree


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees())
def test_random_trees_match_dtc(dtc: DtcRun, tree: Tree) -> None:
    blob = render_dtb(tree)
    assert blob == dtc(render_dts(tree))
    libfdt.Fdt(blob)  # and libfdt takes it


def _defer(node: Node, calls: list[str]) -> None:
    """Make ``node``'s children deferred: fresh copies on every call, as the
    compiler's builder makes them."""
    kids = node.children
    node.children = []

    def make() -> list[Node]:
        calls.append(node.name)
        return copy.deepcopy(kids)

    node.deferred = make


def _stream(tree: Tree) -> tuple[bytes, str]:
    dtb: list[bytes] = []
    dts: list[bytes] = []
    write_tree(tree, dtb.append, DtsPrinter(dts.append, dts.clear))
    return b"".join(dtb), b"".join(dts).decode()


def _outcome(render: Callable[[], tuple[bytes, str]]) -> tuple[bytes, str] | str:
    try:
        return render()
    except DeviceTreeError as e:
        return f"error: {e}"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees(), st.randoms(use_true_random=False))
def test_streamed_trees_give_the_same_files_and_errors(tree: Tree, rnd: object) -> None:
    """Deferred children (made while writing, dropped once written) change
    nothing: same blob, same DTS, same errors, whatever refers to what."""
    import random

    assert isinstance(rnd, random.Random)
    whole = _outcome(lambda: (render_dtb(tree), render_dts(tree)))
    streamed = copy.deepcopy(tree)
    calls: list[str] = []
    stack = [streamed.root]
    while stack:  # defer the children of a random half of the nodes
        node = stack.pop()
        stack.extend(node.children)
        if node.children and rnd.random() < 0.5:
            _defer(node, calls)
    # Spill whatever can be spilled (a real tree spills every 2048 nodes).
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(dtb_module, "_SPILL_PARTS", rnd.choice([1, 2, 5]))
        assert _outcome(lambda: _stream(streamed)) == whole


def _pci_like(n_buses: int, per_bus: int) -> tuple[Tree, list[str]]:
    """A root with a controller and bridges whose functions are deferred and
    refer back to the controller and their own bridge (as interrupt-map does)."""
    root = Node("", [Property("#address-cells", (Cells((2,)),))])
    root.children.append(Node("intc", [Property("x-a", (Cells((1,)),))], labels=["gic"]))
    calls: list[str] = []
    for b in range(n_buses):
        bridge = Node(f"pci-{b}", [Property("x-a", (Cells((Ref("gic"),)),))], labels=[f"br{b}"])
        bridge.children = [
            Node(f"dev-{i}", [Property("x-handle", (Cells((Ref(f"br{b}"), i)),))], labels=[f"d{b}_{i}"])
            for i in range(per_bus)
        ]
        _defer(bridge, calls)
        root.children.append(bridge)
    return Tree(root), calls


def test_a_streamed_tree_is_made_once(dtc: DtcRun) -> None:
    """Back-references (to the controller, to the open bridge) need nothing
    made twice: every deferred list is made exactly once."""
    tree, calls = _pci_like(3, 4)
    blob, dts = _stream(tree)
    assert sorted(calls) == ["pci-0", "pci-1", "pci-2"]
    assert blob == dtc(dts)
    assert all(n.deferred is not None for n in tree.root.children[1:])  # nothing kept


def test_a_reference_into_a_streamed_node_from_afar_falls_back(dtc: DtcRun) -> None:
    """A reference to a node already written and dropped (or not made yet)
    makes the tree whole and writes it again: slower, still exact."""
    tree, calls = _pci_like(2, 3)
    tree.root.children.append(Node("chosen", [Property("x-handle", (Cells((Ref("d0_1"),)),))]))
    blob, dts = _stream(tree)
    assert blob == dtc(dts)
    assert len(calls) > 2  # made again, for good
    fdt = libfdt.Fdt(blob)
    dev = fdt.path_offset("/pci-0/dev-1")
    chosen = fdt.path_offset("/chosen")
    assert fdt.getprop(chosen, "x-handle").as_uint32() == fdt.get_phandle(dev) != 0


@pytest.mark.parametrize("where", ["first", "later"])
def test_errors_in_streamed_nodes_name_their_path(where: str) -> None:
    tree, _ = _pci_like(2, 2)
    bad = Node("dev-1", labels=["d0_0"] if where == "later" else [])
    if where == "first":
        bad.properties.append(Property("x-a", (Cells((1 << 40,)),)))
    target = tree.root.children[2]
    kids = target.deferred() if target.deferred else []
    target.deferred = lambda: [*copy.deepcopy(kids), copy.deepcopy(bad)]
    with pytest.raises(DeviceTreeError) as e:
        _stream(tree)
    assert "/pci-1/dev-1" in str(e.value)


def test_a_second_walk_for_phandles_streams_too(dtc: DtcRun, monkeypatch: pytest.MonkeyPatch) -> None:
    """When dtc would have stored "phandle" earlier than a single pass can know
    (a streamed bridge first referred to by its children, after new property
    names), the second walk names streamed nodes by their place in the walk
    and streams again, instead of making the whole tree."""
    def no_fallback(tree: Tree) -> None:
        raise AssertionError("the tree was made whole")

    monkeypatch.setattr(dtb_module, "materialize_all", no_fallback)
    root = Node("", [Property("x-a", (Cells((1,)),))])
    calls: list[str] = []
    for b in range(2):
        top = Node(f"bus-{b}", [Property("x-a", (Cells((b,)),))])
        subs = []
        for s in range(2):
            sub = Node(f"sub-{s}", [Property("x-a", (Cells((s,)),))], labels=[f"sub{b}{s}"])
            sub.children = [
                Node(
                    f"leaf-{i}",
                    [
                        Property(f"x-new-{b}{s}{i}", (Cells((i,)),)),
                        Property("x-handle", (Cells((Ref(f"sub{b}{s}"),)),)),
                    ],
                )
                for i in range(2)
            ]
            subs.append(sub)
        top.children = subs
        _defer(top, calls)
        root.children.append(top)
    blob, dts = _stream(Tree(root))
    assert blob == dtc(dts)
    assert len(calls) == 4  # two walks, each making each bus once
    fdt = libfdt.Fdt(blob)
    for b in range(2):
        for s in range(2):
            sub = fdt.path_offset(f"/bus-{b}/sub-{s}")
            leaf = fdt.path_offset(f"/bus-{b}/sub-{s}/leaf-1")
            assert fdt.getprop(leaf, "x-handle").as_uint32() == fdt.get_phandle(sub) != 0
