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
