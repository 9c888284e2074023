"""An in-memory device tree: what the DTS and DTB writers print.

This is the layer between dtmsi's resolved model and the two output formats.
It knows nothing about PCI or MSI; it holds nodes, properties and typed
property values, keeping enough type information (cells vs strings vs bytes,
phandle references by label or path) for the DTS to read like hand-written
source and for the DTB writer to match ``dtc -I dts -O dtb`` byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Ref:
    """A phandle reference: ``&label`` or ``&{/path}``.

    ``target`` is a label when it does not start with ``/``, else a full path.
    """

    target: str

    @property
    def is_path(self) -> bool:
        return self.target.startswith("/")


Cell = int | Ref


@dataclass(frozen=True, slots=True)
class Cells:
    """``<a b &c>``: a list of 32-bit cells (or 8/16/64 with ``/bits/``)."""

    values: tuple[Cell, ...]
    bits: int = 32


@dataclass(frozen=True, slots=True)
class Str:
    """One NUL-terminated string: ``"text"``."""

    text: str


@dataclass(frozen=True, slots=True)
class Bytes:
    """``[00 11 22]``: raw bytes."""

    data: bytes


@dataclass(frozen=True, slots=True)
class PathRef:
    """A reference used as a value, not inside cells: ``&label`` -> path string."""

    target: str


Chunk = Cells | Str | Bytes | PathRef


@dataclass(slots=True)
class Property:
    """A property; an empty ``chunks`` tuple is a boolean (``name;``)."""

    name: str
    chunks: tuple[Chunk, ...] = ()
    comment: str | None = None
    # Comments for individual Cells chunks, printed after each one on its
    # own line when the property spans several lines (e.g. ranges rows).
    chunk_comments: tuple[str | None, ...] = ()
    labels: tuple[str, ...] = ()
    # Set by a builder that puts this one object in many nodes and keeps it
    # alive while the tree is written: the writers may then encode it once
    # (keyed by id). Never edit a shared property; replace it.
    shared: bool = False


@dataclass(slots=True)
class Node:
    """A node. ``name`` includes the unit address (``pci@1,0``); root is ``""``.

    ``deferred``, when set, makes more children after ``children``: it is
    called each time the tree is walked and its nodes are not kept, so a
    100k-function tree is never in memory at once. The writers walk such a
    tree once; code that edits or searches it calls :func:`materialize`.
    """

    name: str
    properties: list[Property] = field(default_factory=list)
    children: list[Node] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    comment: str | None = None
    deferred: Callable[[], list[Node]] | None = None

    def prop(self, name: str) -> Property | None:
        for p in self.properties:
            if p.name == name:
                return p
        return None

    def child(self, name: str) -> Node | None:
        """The child called ``name`` (materialising deferred children, so the
        node returned is part of the tree and may be edited)."""
        materialize(self)
        for c in self.children:
            if c.name == name:
                return c
        return None

    def set(self, name: str, *chunks: Chunk, comment: str | None = None) -> Property:
        """Add or replace a property, keeping its position when replacing."""
        new = Property(name, tuple(chunks), comment)
        for i, p in enumerate(self.properties):
            if p.name == name:
                new.labels = p.labels
                self.properties[i] = new
                return new
        self.properties.append(new)
        return new

    def add_child(self, node: Node) -> Node:
        self.children.append(node)
        return node


@dataclass(frozen=True, slots=True)
class Reservation:
    """A ``/memreserve/ address size;`` entry."""

    address: int
    size: int


@dataclass(slots=True)
class Tree:
    root: Node = field(default_factory=lambda: Node(""))
    reservations: list[Reservation] = field(default_factory=list)
    boot_cpuid_phys: int = 0
    # Free text printed at the top of the DTS (provenance), never in the DTB.
    header_comment: str | None = None


def child_nodes(node: Node) -> list[Node]:
    """All children of ``node``, deferred ones made afresh (and not kept)."""
    if node.deferred is None:
        return node.children
    return node.children + node.deferred()


def materialize(node: Node) -> None:
    """Make ``node``'s deferred children ordinary ones, so they can be edited."""
    if node.deferred is not None:
        node.children.extend(node.deferred())
        node.deferred = None


def materialize_all(tree: Tree) -> None:
    stack = [tree.root]
    while stack:
        node = stack.pop()
        materialize(node)
        stack.extend(node.children)


def cells(*values: Cell, bits: int = 32) -> Cells:
    return Cells(tuple(values), bits)


def u32(value: int) -> Cells:
    return Cells((value,))


def string(text: str) -> Str:
    return Str(text)


class DeviceTreeError(Exception):
    """A tree that ``dtc`` would refuse: a dangling reference, a duplicate label..."""


# dtc's character sets (dtc checks.c NODECHARS / PROPNODECHARS, dtc-lexer.l LABEL).
NODE_NAME_RE = re.compile(r"[a-zA-Z0-9,._+\-]*(?:@[a-zA-Z0-9,._+\-]*)?\Z")
PROPERTY_NAME_RE = re.compile(r"[a-zA-Z0-9,._+*#?\-]+\Z")
LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
# What ``&{...}`` may contain (dtc-lexer.l PATHCHAR).
PATH_RE = re.compile(r"/[a-zA-Z0-9,._+*#?@/\-]*\Z")


def iter_nodes(tree: Tree, deferred: bool = True) -> Iterator[tuple[str, Node]]:
    """Every node with its full path, in pre-order (the order dtc visits them).

    ``deferred=False`` skips deferred children: only the nodes that stay in memory.
    """
    stack: list[tuple[str, Node]] = [("/", tree.root)]
    while stack:
        path, node = stack.pop()
        yield path, node
        prefix = path if path == "/" else path + "/"
        children = child_nodes(node) if deferred else node.children
        stack.extend((prefix + c.name, c) for c in reversed(children))


def find_node_by_label(tree: Tree, label: str) -> Node | None:
    """The first node in pre-order carrying ``label`` (dtc's get_node_by_label)."""
    for _, node in iter_nodes(tree):
        if label in node.labels:
            return node
    return None


def canonical_path(path: str) -> str | None:
    """Reduce a reference path to ``/a/b`` form the way dtc's get_node_by_path reads it.

    dtc skips runs of ``/`` between components and accepts one trailing ``/``
    ("/a/" is /a) but not more ("/a//" looks for a child named ""). None means
    no node can match.
    """
    if path == "/":
        return "/"
    comps: list[str] = []
    rest = path
    while rest:
        rest = rest.lstrip("/")
        head, sep, rest = rest.partition("/")
        if not head:
            return None
        comps.append(head)
        if not sep:
            break
    return "/" + "/".join(comps)


def find_node_by_path(tree: Tree, path: str) -> Node | None:
    """The node at ``path`` ("/", "/cpus/cpu@0"); names match exactly, unit address included."""
    canon = canonical_path(path)
    if canon is None:
        return None
    node = tree.root
    for comp in canon.split("/")[1:] if canon != "/" else []:
        found = node.child(comp)
        if found is None:
            return None
        node = found
    return node
