"""Random trees: render_dtb matches dtc on render_dts, byte for byte."""

from __future__ import annotations

from collections.abc import Callable

import libfdt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dtmsi.devicetree.dtb import render_dtb
from dtmsi.devicetree.dts import render_dts
from dtmsi.devicetree.tree import (
    Bytes,
    Cells,
    Chunk,
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

texts = st.text(
    st.characters(min_codepoint=1, max_codepoint=0x3FF, exclude_categories=["Cs"]), max_size=12
)


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
            names: list[str] = draw(
                st.lists(NODE_NAMES, max_size=4 if depth < 2 else 2, unique=True)
            )
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
