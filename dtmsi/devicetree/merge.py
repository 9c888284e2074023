"""Merge the compiler's nodes into a board's base tree.

The rules are dtc's for a later ``/ { ... };`` block (livetree.c merge_nodes),
so a merged tree reads as if the compiler's nodes had been written after the
base source: a node of the same name merges recursively, a property of the
same name takes the new value in its old position, anything new is appended
after what the base tree has, and labels add up.
"""

from __future__ import annotations

import copy

from .tree import Node, Property, Tree, materialize


def _merge_labels(old: list[str] | tuple[str, ...], new: list[str] | tuple[str, ...]) -> list[str]:
    return list(old) + [label for label in new if label not in old]


def _merge_node(old: Node, new: Node) -> None:
    materialize(old)
    materialize(new)
    old.labels = _merge_labels(old.labels, new.labels)
    if new.comment is not None:
        old.comment = new.comment
    index = {p.name: i for i, p in enumerate(old.properties)}
    for prop in new.properties:
        i = index.get(prop.name)
        if i is None:
            index[prop.name] = len(old.properties)
            old.properties.append(prop)
        else:
            base = old.properties[i]
            old.properties[i] = Property(
                prop.name,
                prop.chunks,
                prop.comment if prop.comment is not None else base.comment,
                prop.chunk_comments,
                tuple(_merge_labels(base.labels, prop.labels)),
            )
    children = {c.name: c for c in old.children}
    for child in new.children:
        existing = children.get(child.name)
        if existing is None:
            children[child.name] = child
            old.children.append(child)
        else:
            _merge_node(existing, child)


def merge_into(base: Tree, root: Node) -> Tree:
    """A copy of ``base`` with ``root`` (a root node built by the compiler) merged in.

    ``base`` is not changed. The compiler's nodes and properties are taken
    over as they are (not copied), so the result shares them with ``root``.
    """
    merged = Tree(
        copy.deepcopy(base.root),
        list(base.reservations),
        base.boot_cpuid_phys,
        base.header_comment,
    )
    _merge_node(merged.root, root)
    return merged


def unit_address_clashes(merged: Node, ours: Node, path: str = "") -> list[tuple[str, Node, Node]]:
    """(bus path, our node, base node) for every node of ``ours`` that the
    merge put beside a base-tree node with the same unit address, on every
    bus where the compiler's nodes went (dtc's unique_unit_address: the
    unit addresses of siblings are compared as strings).

    ``merged`` is :func:`merge_into`'s result for ``ours``: the compiler's
    nodes are in it as they are, so identity tells them from the base's."""
    mine = {id(c) for c in ours.children}
    by_unit: dict[str, list[Node]] = {}
    for c in merged.children:
        _, at, unit = c.name.partition("@")
        if at:
            by_unit.setdefault(unit, []).append(c)
    clashes: list[tuple[str, Node, Node]] = []
    for group in by_unit.values():
        theirs = [n for n in group if id(n) not in mine]
        if len(group) > 1 and theirs:
            clashes.extend((path or "/", n, theirs[0]) for n in group if id(n) in mine)
    # Down the paths where a node of ours was merged into the base's (an FSL
    # MSI block goes into the SoC bus beside the base tree's MPIC).
    merged_by_name = {c.name: c for c in merged.children}
    for c in ours.children:
        into = merged_by_name.get(c.name)
        if into is not None and into is not c:
            clashes.extend(unit_address_clashes(into, c, f"{path}/{into.name}"))
    return clashes
