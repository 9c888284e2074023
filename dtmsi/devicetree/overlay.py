"""A ``/plugin/`` overlay: what a merged tree adds to its board's base tree.

The overlay is the difference between the base tree and the tree dtmsi merged
it into, laid out as ``dtc -@`` lays out a plugin source of ``&{/path} {...}``
blocks (dtc livetree.c add_orphan_node, generate_label_tree,
generate_fixups_tree, generate_local_fixups_tree):

* one ``fragment@N`` per base node that gains properties or children, in the
  order the tree is walked, each with ``target-path`` (a path works on any
  board DTB, with or without ``__symbols__``) and an ``__overlay__`` holding
  the new or changed properties and the new child nodes whole;
* references between nodes the overlay adds are phandles local to the
  overlay, listed in ``__local_fixups__`` (fdtoverlay renumbers them);
* a reference to a node of the board goes through ``__fixups__`` by the
  node's label (the board DTB must then be built with ``dtc -@``, so that it
  has ``__symbols__``) or, for a node the base tree gives no label, is the
  phandle the base tree already gives it (a DTB dumped by QEMU or firmware);
* ``__symbols__`` lists every label of the added nodes, each of which gets a
  phandle, referenced ones first, as ``dtc -@`` numbers them.

Applied by ``fdtoverlay`` to the board DTB, it gives the merged tree: the same
nodes and properties, phandle numbers aside.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .tree import (
    Bytes,
    Cells,
    Chunk,
    Node,
    PathRef,
    Property,
    Ref,
    Str,
    Tree,
    canonical_path,
    child_nodes,
    find_node_by_label,
    find_node_by_path,
    iter_nodes,
)

# What dtc puts in a cell whose phandle __fixups__ will supply.
UNRESOLVED = 0xFFFFFFFF


class OverlayError(Exception):
    """The overlay cannot name a node of the board (no label, no phandle)."""

    def __init__(self, target: str, message: str) -> None:
        super().__init__(message)
        self.target = target
        self.message = message


@dataclass
class _Fragment:
    target: str  # path of the base node it adds to
    properties: list[Property]
    children: list[Node]


_CELL_SIZES = ("#address-cells", "#size-cells")


def _join(path: str, name: str) -> str:
    return "/" + name if path == "/" else f"{path}/{name}"


def _fragments(base: Node, merged: Node) -> list[_Fragment]:
    """Per base node (pre-order): the properties merged changed or added, the children it added."""
    out: list[_Fragment] = []
    stack: list[tuple[str, Node, Node]] = [("/", base, merged)]
    while stack:
        path, old, new = stack.pop()
        before = {p.name: p.chunks for p in old.properties}
        props = [p for p in new.properties if before.get(p.name) != p.chunks or p.name not in before]
        olds = {c.name: c for c in old.children}
        added: list[Node] = []
        both: list[tuple[str, Node, Node]] = []
        for c in child_nodes(new):
            o = olds.get(c.name)
            if o is None:
                added.append(c)
            else:
                both.append((_join(path, c.name), o, c))
        if added:
            # The cell sizes the added nodes' reg is read with, restated at their
            # old values (no change once applied): dtc checks an overlay's nodes
            # against its __overlay__, where they would default to 2 and 1.
            names = {p.name for p in props}
            sizes = [new.prop(name) for name in _CELL_SIZES if name not in names]
            props = [p for p in sizes if p is not None] + props
        if props or added:
            out.append(_Fragment(path, props, added))
        stack.extend(reversed(both))
    return out


def _chunk_size(chunk: Chunk) -> int:
    if isinstance(chunk, Cells):
        return len(chunk.values) * chunk.bits // 8
    if isinstance(chunk, Str):
        return len(chunk.text.encode()) + 1
    if isinstance(chunk, Bytes):
        return len(chunk.data)
    return len(chunk.target.encode()) + 1


def _has_refs(prop: Property) -> bool:
    return any(
        isinstance(c, PathRef) or (isinstance(c, Cells) and any(isinstance(v, Ref) for v in c.values))
        for c in prop.chunks
    )


@dataclass
class _Walk:
    """What one walk over the added nodes finds, in dtc's order."""

    labels: dict[str, str] = field(default_factory=dict)  # label -> overlay path
    labelled: list[tuple[str, list[str]]] = field(default_factory=list)  # (overlay path, labels), pre-order
    # (overlay path of the node, property, target, byte offset), in walk order
    refs: list[tuple[str, str, str, int]] = field(default_factory=list)


class _Overlay:
    def __init__(self, base: Tree, merged: Tree) -> None:
        self.base = base
        self.fragments = _fragments(base.root, merged.root)
        # overlay path prefix of each fragment's content, and the merged path it lands at
        self.prefixes = [f"/fragment@{i}/__overlay__" for i in range(len(self.fragments))]
        # merged path of each added subtree -> its overlay path
        self.added: dict[str, str] = {}
        for prefix, frag in zip(self.prefixes, self.fragments, strict=True):
            for c in frag.children:
                self.added[_join(frag.target, c.name)] = f"{prefix}/{c.name}"
        self.walk = _Walk()
        self._walk_all()
        self.phandles: dict[str, int] = {}  # overlay path -> phandle
        self.values: dict[str, int] = {}  # reference target -> the cell value
        self.fixups: dict[str, list[str]] = {}  # board label -> "path:property:offset"
        self.local_fixups: list[tuple[str, str, int]] = []  # (overlay path, property, offset)
        self._resolve()

    # ---------------------------------------------------------------- walk 1

    def _walk_all(self) -> None:
        for prefix, frag in zip(self.prefixes, self.fragments, strict=True):
            self._walk_props(prefix, frag.properties)
            for c in frag.children:
                self._walk_node(c, f"{prefix}/{c.name}")

    def _walk_props(self, path: str, props: list[Property]) -> None:
        for p in props:
            if not _has_refs(p):
                continue
            offset = 0
            for chunk in p.chunks:
                if isinstance(chunk, Cells):
                    for i, v in enumerate(chunk.values):
                        if isinstance(v, Ref):
                            self.walk.refs.append((path, p.name, v.target, offset + 4 * i))
                offset += _chunk_size(chunk)

    def _walk_node(self, node: Node, path: str) -> None:
        stack = [(path, node)]
        w = self.walk
        while stack:
            path, n = stack.pop()
            if n.labels:
                w.labelled.append((path, n.labels))
                for label in n.labels:
                    w.labels.setdefault(label, path)
            self._walk_props(path, n.properties)
            stack.extend((_join(path, c.name), c) for c in reversed(child_nodes(n)))

    # ---------------------------------------------------------------- resolve

    def local_path(self, target: str) -> str | None:
        """The overlay path of a reference's target if the overlay adds that node."""
        if not target.startswith("/"):
            return self.walk.labels.get(target)
        canon = canonical_path(target)
        if canon is None:
            return None
        for merged, over in self.added.items():
            if canon == merged or canon.startswith(merged + "/"):
                return over + canon[len(merged) :]
        return None

    def _resolve(self) -> None:
        local: dict[str, str] = {}
        for _, _, target, _ in self.walk.refs:
            if target in local or target in self.values:
                continue
            at = self.local_path(target)
            if at is not None:
                local[target] = at
                self.phandles.setdefault(at, len(self.phandles) + 1)
            else:
                self.values[target] = self.board_value(target)
        # dtc -@ gives every labelled node a phandle, after the referenced ones.
        for path, _ in self.walk.labelled:
            self.phandles.setdefault(path, len(self.phandles) + 1)
        for target, at in local.items():
            self.values[target] = self.phandles[at]
        for path, prop, target, offset in self.walk.refs:
            if target in local:
                self.local_fixups.append((path, prop, offset))
            elif self.values[target] == UNRESOLVED:
                self.fixups.setdefault(self.board_label(target), []).append(f"{path}:{prop}:{offset}")

    def board_node(self, target: str) -> Node:
        found = (
            find_node_by_path(self.base, target)
            if target.startswith("/")
            else find_node_by_label(self.base, target)
        )
        if found is None:
            raise OverlayError(target, f"the base tree has no node '{target}'")
        return found

    def board_label(self, target: str) -> str:
        return target if not target.startswith("/") else self.board_node(target).labels[0]

    def board_value(self, target: str) -> int:
        """The cell for a reference to a board node: fixed up by label, or its phandle."""
        node = self.board_node(target)
        if node.labels:
            return UNRESOLVED
        for p in node.properties:
            if p.name in ("phandle", "linux,phandle") and p.chunks and isinstance(p.chunks[0], Cells):
                value = p.chunks[0].values[0]
                if isinstance(value, int):
                    return value
        raise OverlayError(
            target,
            f"base node '{target}' has neither a label nor a phandle, so an overlay cannot refer to it",
        )

    def final_path(self, target: str) -> str:
        """Where a ``&ref`` used as a path string points once the overlay is applied."""
        at = self.local_path(target)
        if at is not None:
            i = int(at.split("/")[1].removeprefix("fragment@"))
            return _join(self.fragments[i].target, at[len(self.prefixes[i]) + 1 :])
        node = self.board_node(target)
        if target.startswith("/"):
            return canonical_path(target) or target
        return next(p for p, n in iter_nodes(self.base) if n is node)

    # ---------------------------------------------------------------- the tree

    def prop(self, p: Property) -> Property:
        if not _has_refs(p):
            return p
        chunks: list[Chunk] = []
        for c in p.chunks:
            if isinstance(c, PathRef):
                chunks.append(Str(self.final_path(c.target)))
            elif isinstance(c, Cells):
                chunks.append(
                    Cells(tuple(self.values[v.target] if isinstance(v, Ref) else v for v in c.values), c.bits)
                )
            else:
                chunks.append(c)
        return Property(p.name, tuple(chunks), p.comment, p.chunk_comments, p.labels)

    def node(self, n: Node, path: str) -> Node:
        props = [self.prop(p) for p in n.properties]
        phandle = self.phandles.get(path)
        if phandle is not None and n.prop("phandle") is None:
            props.append(Property("phandle", (Cells((phandle,)),)))
        out = Node(n.name, props, [self.node(c, _join(path, c.name)) for c in n.children], list(n.labels), n.comment)
        if n.deferred is not None:
            out.deferred = self._deferred(n.deferred, path)
        return out

    def _deferred(self, make: Callable[[], list[Node]], path: str) -> Callable[[], list[Node]]:
        return lambda: [self.node(c, _join(path, c.name)) for c in make()]

    def tree(self) -> Tree:
        root = Node("")
        for i, (prefix, frag) in enumerate(zip(self.prefixes, self.fragments, strict=True)):
            content = Node(
                "__overlay__",
                [self.prop(p) for p in frag.properties],
                [self.node(c, f"{prefix}/{c.name}") for c in frag.children],
            )
            root.add_child(Node(f"fragment@{i}", [Property("target-path", (Str(frag.target),))], [content]))
        if self.walk.labelled:
            symbols = Node("__symbols__")
            seen: set[str] = set()
            for path, label in ((p, lab) for p, labels in self.walk.labelled for lab in labels):
                if label not in seen:
                    seen.add(label)
                    symbols.properties.append(Property(label, (Str(path),)))
            root.add_child(symbols)
        if self.fixups:
            root.add_child(
                Node("__fixups__", [Property(k, tuple(Str(s) for s in v)) for k, v in self.fixups.items()])
            )
        if self.local_fixups:
            lf = Node("__local_fixups__")
            made: dict[str, Node] = {"": lf}
            for path, prop, offset in self.local_fixups:
                at, sofar = lf, ""
                for comp in path.split("/")[1:]:
                    sofar += "/" + comp
                    nxt = made.get(sofar)
                    if nxt is None:
                        nxt = made[sofar] = at.add_child(Node(comp))
                    at = nxt
                old = at.prop(prop)
                cells = (old.chunks[0].values if old is not None and isinstance(old.chunks[0], Cells) else ()) + (
                    offset,
                )
                at.set(prop, Cells(cells))
            root.add_child(lf)
        tree = Tree(root)
        tree.header_comment = "dtmsi overlay: apply with fdtoverlay to the board's DTB"
        return tree


def build_overlay(base: Tree, merged: Tree) -> Tree:
    """The overlay that turns ``base`` into ``merged``. Raises :class:`OverlayError`."""
    return _Overlay(base, merged).tree()
