"""Write a :class:`Tree` as a flattened device tree blob (FDT v17).

The bytes are exactly those of ``dtc -I dts -O dtb`` (dtc 1.6.1) on
``render_dts(tree)``, so the DTS and DTB a compile produces always agree.
That means copying what dtc does, not merely what the FDT format allows:

* blocks in the order header, memory reservations (at 0x28), structure,
  strings; no padding after the strings;
* a property name is stored once, and a name that is the tail of one already
  stored ("cells" in "#interrupt-cells") points into it (flattree.c
  stringtable_insert takes the first match at any offset);
* phandles come from one counter starting at 1 that skips values taken by
  explicit ``phandle``/``linux,phandle`` properties, handed out as dtc's fixup
  pass meets references: nodes in pre-order, properties in order, references
  in order (checks.c fixup_phandle_references, livetree.c get_node_phandle);
  a node that gets one this way has ``phandle = <n>`` appended after its last
  property, unless it already has a ``phandle`` property;
* a reference outside cells (:class:`PathRef`) becomes the target's full path;
* labels and comments leave no trace;
* ``boot_cpuid_phys`` is ``tree.boot_cpuid_phys`` when non-zero (``dtc -b``),
  else dtc's guess: the ``reg`` of the first child of ``/cpus``.

It is also where a tree is validated: anything dtc would refuse (a dangling
reference, a duplicate label, a bad name or value) raises
:class:`DeviceTreeError` listing every problem found.

Speed: one pass over the tree, a few dict lookups and one ``struct.pack`` per
property. References are resolved as they are met; the one thing a single
pass cannot know is a reference back to a node already written, whose
``phandle`` property must go into its (already written) property list and
whose name string must go where dtc would have put it. The first is patched in
place; when the second cannot be (new names were stored since that node),
or when an explicit phandle turns up after the counter already handed its
value out, the tree is written once more with every phandle known up front.
"""

from __future__ import annotations

import contextlib
import operator
import struct
import tempfile
from collections.abc import Callable
from typing import BinaryIO

from .dts import DtsPrinter
from .tree import (
    LABEL_RE,
    NODE_NAME_RE,
    PATH_RE,
    PROPERTY_NAME_RE,
    Bytes,
    Cell,
    Cells,
    DeviceTreeError,
    Node,
    PathRef,
    Property,
    Ref,
    Str,
    Tree,
    canonical_path,
    child_nodes,
    iter_nodes,
    materialize_all,
)

FDT_MAGIC = 0xD00DFEED
FDT_BEGIN_NODE = 1
FDT_END_NODE = 2
FDT_PROP = 3
FDT_NOP = 4
FDT_END = 9
FDT_VERSION = 17
FDT_LAST_COMP_VERSION = 16
_HEADER_SIZE = 40  # 10 x u32; dtc puts the reservation map right after it.
# Streaming: spill final structure to disk once this many node pieces wait.
_SPILL_PARTS = 2048

_PHANDLE_NAMES = ("phandle", "linux,phandle")
_UNRESOLVED = 0xFFFFFFFF

_pack_prop_header = struct.Struct(">III").pack
_pack_u32 = struct.Struct(">I").pack
_END_NODE_BYTES = _pack_u32(FDT_END_NODE)
_ROOT_BEGIN = _pack_u32(FDT_BEGIN_NODE) + b"\0\0\0\0"
_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")  # indexed by length % 4
_BITS_CODES = {8: "B", 16: "H", 32: "I", 64: "Q"}
_get_name = operator.attrgetter("name")


class _CellPackers(dict[int, Callable[..., bytes]]):
    """n -> packer of a whole property (token, len, nameoff, n cells) in one call."""

    def __missing__(self, n: int) -> Callable[..., bytes]:
        packer = struct.Struct(f">III{n}I").pack
        self[n] = packer
        return packer


_CELL_PACKERS = _CellPackers()


class _StringTable:
    """The strings block, with dtc's reuse of tails of stored names.

    dtc scans the whole block for each name (quadratic); a dict of every
    suffix of every stored name gives the same first-match offset directly,
    because suffixes are recorded in increasing offset order.
    """

    def __init__(self) -> None:
        self.offsets: dict[str, int] = {}
        self.blobs: list[bytes] = []
        self.size = 0

    def insert(self, name: str) -> tuple[int, bool]:
        """(offset, whether the name had to be appended)."""
        off = self.offsets.get(name)
        if off is not None:
            return off, False
        off = self.size
        setdefault = self.offsets.setdefault
        for k in range(len(name) + 1):
            setdefault(name[k:], off + k)
        data = name.encode("ascii") + b"\0"
        self.blobs.append(data)
        self.size += len(data)
        return off, True


class _Redo(Exception):
    """The single pass guessed wrong; write again with every phandle known."""


class _Materialize(Exception):
    """A streamed tree needs a node no longer (or not yet) in memory: a
    reference to it from afar, or an error to describe. Make every deferred
    node for good and write the tree again."""


# How a plan names a node: by id() if it stays in memory, else (streamed
# nodes are made afresh on every walk) by its place in the walk.
_NodeKey = int | tuple[str, int]


class _Plan:
    """Phandles decided before writing: explicit ones and counter-assigned ones."""

    def __init__(self, explicit: dict[_NodeKey, int], ref_order: list[_NodeKey]) -> None:
        self.assigned = dict(explicit)
        self.auto: set[_NodeKey] = set()
        used = set(explicit.values())
        counter = 1
        for nid in ref_order:
            if nid in self.assigned:
                continue
            while counter in used:
                counter += 1
            self.assigned[nid] = counter
            self.auto.add(nid)
            used.add(counter)


class _Writer:
    def __init__(self, tree: Tree, plan: _Plan | None, dts: DtsPrinter | None = None) -> None:
        self.tree = tree
        self.plan = plan
        self.dts = dts
        # Streaming (a tree with deferred children): nodes made during the walk
        # are gone once written, so anything keyed by id(node) must forget
        # them, or keep them alive (``pinned``) so their id is not reused.
        self.skeleton: set[int] = set()
        self.streaming = False
        self.pinned: list[Node] = []
        # Streaming: structure already final goes to a temporary file; part
        # index of its (empty) stand-in -> (offset, size) there.
        self.spill_from = 0
        self.spill_file: BinaryIO | None = None
        self.cleanup = contextlib.ExitStack()
        self.spilled: dict[int, tuple[int, int]] = {}
        # Shared properties packed once: id(property) -> bytes.
        self.shared_packed: dict[int, bytes] = {}
        self.dead_labels: set[str] = set()
        self.errors: list[str] = []
        self.strings = _StringTable()
        # Names known valid and not special, for the fast path.
        self.name_offsets: dict[str, int] = {}
        self.node_begins: dict[str, bytes] = {}
        self.string_values: dict[str, tuple[int, bytes]] = {}
        self.parts: list[bytes] = []
        # id(node) -> index in parts of the last piece of its property list.
        self.last_part: dict[int, int] = {}
        # Part index of the latest name appended to the strings block, and the
        # earliest part index at which "phandle" could have been stored and
        # give the same block (None: not stored yet).
        self.last_new_string = 0
        self.phandle_string_lo: int | None = None
        # References.
        self.label_nodes: dict[str, Node] = {}
        self.labels_complete = False
        self.prop_labels: dict[str, str] = {}
        self.paths: dict[str, Node] | None = None
        self.path_of: dict[int, str] = {}
        # Phandles.
        self.assigned: dict[int, int] = {}
        self.auto: set[int] = set()
        # Streamed nodes a plan gives a phandle: walk number -> (value, auto).
        self.planned_walk: dict[int, tuple[int, bool]] = {}
        if plan is not None:
            for key, value in plan.assigned.items():
                if isinstance(key, int):
                    self.assigned[key] = value
                    if key in plan.auto:
                        self.auto.add(key)
                else:
                    self.planned_walk[key[1]] = (value, key in plan.auto)
        # Walk numbers (pre-order) of the streamed nodes still in memory.
        self.walk_number: dict[int, int] = {}
        self.used: set[int] = set(self.assigned.values())
        self.counter = 1
        self.explicit: dict[int, int] = {}
        self.explicit_owner: dict[int, Node] = {}
        self.has_phandle_prop: set[int] = set()
        self.ref_order: list[int] = []
        # Resolved references, so later uses of the same Ref skip the lookup.
        self.ref_values: dict[Cell, int] = {}
        self.pending_special: list[tuple[str, bytes, bool]] = []
        self.redo = False

    # -- errors and lookups -------------------------------------------------

    def error(self, node: Node, message: str) -> None:
        self.errors.append(f"{self.describe(node)}: {message}")

    def describe(self, node: Node) -> str:
        self.ensure_paths()
        path = self.path_of.get(id(node))
        if path is None and self.streaming:
            raise _Materialize()
        return path or node.name or "/"

    def ensure_paths(self) -> None:
        """Paths of the nodes that stay in memory (all of them unless streaming)."""
        if self.paths is None:
            self.paths = {}
            for path, node in iter_nodes(self.tree, deferred=False):
                self.paths.setdefault(path, node)
                self.path_of[id(node)] = path

    def ensure_labels(self) -> None:
        """Register the labels of the nodes that stay in memory; when streaming,
        the walk registers those of the others as it makes them."""
        if self.labels_complete:
            return
        self.labels_complete = True
        stack = [self.tree.root]
        while stack:
            node = stack.pop()
            for label in node.labels:
                self.register_node_label(label, node)
            stack.extend(reversed(node.children))

    def register_node_label(self, label: str, node: Node) -> None:
        other = self.label_nodes.get(label)
        if other is node:
            return
        if label in self.dead_labels:
            raise _Materialize()  # a duplicate of a streamed node's label: describe both
        if other is not None:
            self.error(node, f"duplicate label '{label}' (also on {self.describe(other)})")
            return
        if label in self.prop_labels:
            self.error(node, f"duplicate label '{label}' (also on {self.prop_labels[label]})")
            return
        if not LABEL_RE.match(label):
            self.error(node, f"bad label '{label}'")
        self.label_nodes[label] = node

    def register_prop_label(self, label: str, node: Node, prop: Property) -> None:
        where = f"property {prop.name} of {self.describe(node)}"
        if label in self.label_nodes:
            owner = self.describe(self.label_nodes[label])
            self.error(node, f"duplicate label '{label}' on property {prop.name} (also on {owner})")
        elif label in self.prop_labels:
            other = self.prop_labels[label]
            self.error(node, f"duplicate label '{label}' on property {prop.name} (also on {other})")
        elif not LABEL_RE.match(label):
            self.error(node, f"bad label '{label}' on property {prop.name}")
        self.prop_labels[label] = where

    def lookup(self, node: Node | None, target: str) -> Node | None:
        """The node ``target`` names; None, with an error against ``node``
        unless that is None, if there is none."""
        if target.startswith("/"):
            if not PATH_RE.match(target):
                if node is not None:
                    self.error(node, f"bad reference path '{target}'")
                return None
            self.ensure_paths()
            assert self.paths is not None
            canon = canonical_path(target)
            found = self.paths.get(canon) if canon else None
        else:
            if not LABEL_RE.match(target):
                if node is not None:
                    self.error(node, f"bad reference label '{target}'")
                return None
            found = self.label_nodes.get(target)
            if found is None and not self.labels_complete:
                self.ensure_labels()
                found = self.label_nodes.get(target)
        if found is None and self.streaming:
            # A node written and gone, one not made yet, or none at all: only
            # the whole tree in memory can tell.
            raise _Materialize()
        if found is None and node is not None:
            self.error(node, f'reference to non-existent node or label "{target}"')
        return found

    # -- phandles ------------------------------------------------------------

    def phandle_of(self, target: Node) -> int:
        """livetree.c get_node_phandle, called in fixup order."""
        tid = id(target)
        value = self.assigned.get(tid)
        if value is not None:
            return value
        # Only first references matter to the counter: replaying them in order
        # (see _Plan) gives dtc's assignment.
        self.ref_order.append(tid)
        if self.plan is not None:
            raise AssertionError("plan misses a referenced node")
        counter = self.counter
        while counter in self.used:
            counter += 1
        self.counter = counter
        self.assigned[tid] = counter
        self.auto.add(tid)
        self.used.add(counter)
        last = self.last_part.get(tid)
        if last is not None and tid not in self.has_phandle_prop and not self.redo:
            # A reference back to a node already written: add its property now.
            off = self.phandle_name_offset(last)
            if off is not None:
                self.parts[last] += _pack_prop_header(FDT_PROP, 4, off) + _pack_u32(counter)
        return counter

    def phandle_name_offset(self, node_last_part: int) -> int | None:
        """Offset of "phandle" in the strings block, valid as if it had been stored
        right after the node whose property list ends at part ``node_last_part``;
        None (and a redo) when it cannot be."""
        if "phandle" not in self.strings.offsets:
            if self.last_new_string > node_last_part:
                self.redo = True  # names were stored since: "phandle" belongs before them
                return None
            return self.name_offset("phandle")
        lo = self.phandle_string_lo
        if lo is None or node_last_part < lo:
            self.redo = True
            return None
        return self.strings.offsets["phandle"]

    def name_offset(self, name: str) -> int:
        off, new = self.strings.insert(name)
        if new:
            # Remember where names were appended, for the "phandle" rule above.
            index = len(self.parts)
            if self.phandle_string_lo is None:
                if name == "phandle":
                    self.phandle_string_lo = self.last_new_string
                elif name.endswith("phandle"):
                    self.phandle_string_lo = index
            self.last_new_string = index
        return off

    def close_properties(self, node: Node) -> None:
        """End of a node's property list: explicit phandles, then dtc's added property."""
        nid = id(node)
        if self.pending_special:
            self.explicit_phandles(node)
        if nid in self.auto and nid not in self.has_phandle_prop:
            off = self.name_offset("phandle")
            self.parts.append(_pack_prop_header(FDT_PROP, 4, off) + _pack_u32(self.assigned[nid]))
        self.last_part[nid] = len(self.parts) - 1

    def explicit_phandles(self, node: Node) -> None:
        """checks.c check_explicit_phandles for the node just written."""
        values: dict[str, int] = {}
        for name, data, has_ref in self.pending_special:
            if has_ref:
                # "phandle = <&self>" asks for one to be allocated, as a
                # reference would; a reference to another node is nonsense.
                if any(self.lookup(node, ref) is not node for ref in self.prop_refs(node, name)):
                    self.error(node, f"{name} is a reference to another node")
                continue
            if len(data) != 4:
                self.error(node, f"bad length ({len(data)}) {name} property")
                continue
            value = int.from_bytes(data, "big")
            if value in (0, 0xFFFFFFFF):
                self.error(node, f"bad value ({value:#x}) in {name} property")
                continue
            values[name] = value
        self.pending_special.clear()
        if not values:
            return
        value = values.get("phandle", values.get("linux,phandle", 0))
        if len(set(values.values())) > 1:
            self.error(
                node,
                f"mismatching 'linux,phandle' ({values['linux,phandle']:#x}) and "
                f"'phandle' ({values['phandle']:#x}) properties",
            )
        other = self.explicit_owner.get(value)
        if other is not None:
            where = self.describe(other)
            self.error(node, f"duplicated phandle {value:#x} (seen before at {where})")
            return
        nid = id(node)
        self.explicit_owner[value] = node
        self.explicit[nid] = value
        if self.plan is not None:
            return
        if nid in self.assigned or value in self.used:
            # Referenced before its explicit value was known, or the counter
            # already handed this value out: only a second pass gets it right.
            self.redo = True
        self.assigned.setdefault(nid, value)
        self.used.add(value)

    def resolve_refs(self, values: list[Cell] | tuple[Cell, ...]) -> bool:
        """Resolve (in order) and cache the references among ``values``;
        False, leaving the rest to the general path, at the first that fails."""
        cache = self.ref_values
        for v in values:
            if isinstance(v, Ref) and v not in cache:
                target = self.lookup(None, v.target)
                if target is None:
                    return False
                cache[v] = self.phandle_of(target)
        return True

    @staticmethod
    def prop_refs(node: Node, name: str) -> list[str]:
        prop = node.prop(name)
        if prop is None:
            return []
        return [
            v.target
            for c in prop.chunks
            if isinstance(c, Cells)
            for v in c.values
            if isinstance(v, Ref)
        ]

    # -- values --------------------------------------------------------------

    def encode(self, node: Node, prop: Property) -> tuple[bytes, bool]:
        """The property value and whether it holds a phandle reference."""
        out: list[bytes] = []
        has_ref = False
        for chunk in prop.chunks:
            if isinstance(chunk, Cells):
                data, refs = self.encode_cells(node, prop, chunk)
                out.append(data)
                has_ref = has_ref or refs
            elif isinstance(chunk, Str):
                out.append(chunk.text.encode("utf-8") + b"\0")
            elif isinstance(chunk, Bytes):
                out.append(bytes(chunk.data))
            elif isinstance(chunk, PathRef):
                target = self.lookup(node, chunk.target)
                if target is not None:
                    out.append(self.describe(target).encode("ascii") + b"\0")
            else:
                self.error(node, f"property {prop.name}: not a value chunk: {chunk!r}")
        return b"".join(out), has_ref

    def encode_cells(self, node: Node, prop: Property, chunk: Cells) -> tuple[bytes, bool]:
        bits = chunk.bits
        code = _BITS_CODES.get(bits)
        if code is None:
            self.error(node, f"property {prop.name}: cells must be 8, 16, 32 or 64 bits: {bits}")
            return b"", False
        values: list[int] = []
        has_ref = False
        for v in chunk.values:
            if isinstance(v, Ref):
                has_ref = True
                if bits != 32:
                    self.error(node, f"property {prop.name}: references need 32-bit cells")
                    values.append(0)
                    continue
                value = self.ref_values.get(v)
                if value is None:
                    target = self.lookup(node, v.target)
                    if target is None:
                        value = _UNRESOLVED
                    else:
                        value = self.ref_values[v] = self.phandle_of(target)
                values.append(value)
            elif isinstance(v, int) and 0 <= v < (1 << bits):
                values.append(v)
            else:
                self.error(node, f"property {prop.name}: value {v!r} does not fit in {bits} bits")
                values.append(0)
        return struct.pack(f">{len(values)}{code}", *values), has_ref

    # -- the walk ------------------------------------------------------------

    def property(self, node: Node, prop: Property) -> None:
        """Any property the fast path in :meth:`write_struct` does not take."""
        name = prop.name
        off = self.name_offsets.get(name)
        if off is None:
            if not PROPERTY_NAME_RE.match(name):
                self.error(node, f"bad property name '{name}'")
            off = self.name_offset(name)
            if name not in _PHANDLE_NAMES:
                self.name_offsets[name] = off
        for label in prop.labels:
            self.register_prop_label(label, node, prop)
        data, has_ref = self.encode(node, prop)
        if name in _PHANDLE_NAMES:
            self.pending_special.append((name, data, has_ref))
            if name == "phandle":
                self.has_phandle_prop.add(id(node))
        n = len(data)
        self.parts.append(_pack_prop_header(FDT_PROP, n, off) + data + _PAD[n & 3])

    def pack_shared(self, node: Node, prop: Property) -> bytes:
        """A shared property (one object in many nodes, alive all the walk),
        packed once. Its name is stored at its first use, as dtc would."""
        name = prop.name
        assert not prop.labels and name not in _PHANDLE_NAMES, "a shared property must be plain"
        off = self.name_offsets.get(name)
        if off is None:
            if not PROPERTY_NAME_RE.match(name):
                self.error(node, f"bad property name '{name}'")
            off = self.name_offsets[name] = self.name_offset(name)
        data, has_ref = self.encode(node, prop)
        n = len(data)
        packed = _pack_prop_header(FDT_PROP, n, off) + data + _PAD[n & 3]
        if not has_ref and not self.errors:
            self.shared_packed[id(prop)] = packed
        return packed

    def node_begin(self, node: Node) -> bytes:
        name = node.name
        if not name or not NODE_NAME_RE.match(name):
            self.error(node, f"bad node name '{name}'")
        data = name.encode("utf-8") + b"\0"
        begin = _pack_u32(FDT_BEGIN_NODE) + data + _PAD[len(data) & 3]
        self.node_begins[name] = begin
        return begin

    def check_duplicates(self, node: Node, items: list[Property] | list[Node], what: str) -> None:
        names = list(map(_get_name, items))
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            self.error(node, f"duplicate {what} name {', '.join(dup)}")

    def write_struct(self) -> None:
        # Hot loop: locals for everything touched per node or property.
        parts = self.parts
        append = parts.append
        name_offsets = self.name_offsets
        node_begins = self.node_begins
        string_values = self.string_values
        cell_packers = _CELL_PACKERS
        prop_header = _pack_prop_header
        slow_property = self.property
        close = self.close_properties
        end_node = _END_NODE_BYTES
        pack_error = struct.error
        ref_get = self.ref_values.get
        resolve_refs = self.resolve_refs
        pending_special = self.pending_special
        auto = self.auto
        last_part = self.last_part

        root = self.tree.root
        dts = self.dts
        streaming = self.streaming
        skeleton = self.skeleton
        walk_number = self.walk_number
        planned_walk = self.planned_walk
        shared_packed = self.shared_packed
        walked = -1
        stack = [iter((root,))]
        # The open nodes, root first: what ``stack`` iterates the children of.
        open_nodes: list[Node] = []
        while stack:
            node = next(stack[-1], None)
            if node is None:
                stack.pop()
                append(end_node)
                if open_nodes:
                    closed = open_nodes.pop()
                    if dts is not None:
                        dts.close(len(open_nodes))
                    if streaming and id(closed) not in skeleton:
                        self.forget(closed)
                        if (
                            open_nodes
                            and id(open_nodes[-1]) in skeleton
                            and len(parts) - self.spill_from >= _SPILL_PARTS
                        ):
                            self.spill()
                continue
            node_start = len(parts)
            if node is root:
                append(_ROOT_BEGIN)
            else:
                begin = node_begins.get(node.name)
                append(begin if begin is not None else self.node_begin(node))
            walked += 1
            if streaming and id(node) not in skeleton:
                walk_number[id(node)] = walked
                if planned_walk and walked in planned_walk:
                    phandle, is_auto = planned_walk[walked]
                    self.assigned[id(node)] = phandle
                    if is_auto:
                        auto.add(id(node))
            if dts is not None:
                dts.open(node, len(open_nodes))
            open_nodes.append(node)
            if node.labels and (not self.labels_complete or (streaming and id(node) not in skeleton)):
                for label in node.labels:
                    self.register_node_label(label, node)
            props = node.properties
            for prop in props:
                if prop.shared:
                    packed = shared_packed.get(id(prop))
                    append(packed if packed is not None else self.pack_shared(node, prop))
                    continue
                off = name_offsets.get(prop.name)
                if off is None or prop.labels:
                    slow_property(node, prop)
                    continue
                chunks = prop.chunks
                values: list[Cell] | tuple[Cell, ...] | None
                if len(chunks) == 1:
                    chunk = chunks[0]
                    if type(chunk) is Cells and chunk.bits == 32:
                        values = chunk.values
                    elif type(chunk) is Str:
                        text = chunk.text
                        value = string_values.get(text)
                        if value is None:
                            data = text.encode("utf-8") + b"\0"
                            value = string_values[text] = (len(data), data + _PAD[len(data) & 3])
                        append(prop_header(FDT_PROP, value[0], off))
                        append(value[1])
                        continue
                    else:
                        slow_property(node, prop)
                        continue
                else:
                    # Several chunks: rows of cells (reg, ranges...) or a string list.
                    values = []
                    for chunk in chunks:
                        if type(chunk) is not Cells or chunk.bits != 32:
                            values = None
                            break
                        values += chunk.values
                    if values is None:
                        texts = [c.text for c in chunks if type(c) is Str]
                        if len(texts) == len(chunks):
                            data = ("\0".join(texts) + "\0").encode("utf-8")
                            n = len(data)
                            append(prop_header(FDT_PROP, n, off) + data + _PAD[n & 3])
                        else:
                            slow_property(node, prop)
                        continue
                n = len(values)
                try:
                    append(cell_packers[n](FDT_PROP, 4 * n, off, *values))
                except pack_error:
                    # References: resolved ones from the cache, new ones resolved
                    # (in order) first; anything wrong takes the general path.
                    packer = cell_packers[n]
                    try:
                        append(packer(FDT_PROP, 4 * n, off, *map(ref_get, values, values)))
                    except pack_error:
                        if resolve_refs(values):
                            try:
                                append(packer(FDT_PROP, 4 * n, off, *map(ref_get, values, values)))
                                continue
                            except pack_error:
                                pass
                        slow_property(node, prop)
            if len(parts) - node_start > 1:
                # One piece per node, not per property: a million small bytes
                # objects cost more than the 34 MB of a 100k-function blob.
                self.collapse(node_start, b"".join(parts[node_start:]))
            nid = id(node)
            if pending_special or nid in auto:
                close(node)
            else:
                last_part[nid] = len(parts) - 1
            if streaming and nid in skeleton:
                self.spill_from = len(parts)  # this node's part may still be patched
            children = node.children if node.deferred is None else child_nodes(node)
            if len(props) > 1 and len(set(map(_get_name, props))) != len(props):
                self.check_duplicates(node, props, "property")
            if len(children) > 1 and len(set(map(_get_name, children))) != len(children):
                self.check_duplicates(node, children, "node")
            stack.append(iter(children))
        parts.pop()  # the END_NODE for the (root,) iterator itself
        append(_pack_u32(FDT_END))

    def forget(self, node: Node) -> None:
        """A node made during the walk is written: drop what is keyed by its id,
        unless it has a phandle (then keep it alive, so its id stays its own)."""
        nid = id(node)
        if nid in self.assigned or nid in self.has_phandle_prop or nid in self.explicit:
            self.pinned.append(node)
            return
        self.last_part.pop(nid, None)
        del self.walk_number[nid]
        for label in node.labels:
            if self.label_nodes.get(label) is node:
                del self.label_nodes[label]
                self.dead_labels.add(label)

    def plan_key(self, nid: int) -> _NodeKey:
        """How a plan for the next walk names the node with this id."""
        if self.streaming and nid not in self.skeleton:
            return ("walk", self.walk_number[nid])
        return nid

    def start(self) -> None:
        """Note which nodes stay in memory, if the tree streams any."""
        stack = [self.tree.root]
        while stack:
            node = stack.pop()
            self.skeleton.add(id(node))
            if node.deferred is not None:
                self.streaming = True
            stack.extend(node.children)
        if not self.streaming:
            self.skeleton.clear()

    def spill(self) -> None:
        """Move the structure written since the last node that stays in memory
        to the spill file: streamed nodes, once closed, are never patched again
        (a late reference to one makes the whole tree, see _Materialize)."""
        start = self.spill_from
        data = b"".join(self.parts[start:])
        if self.spill_file is None:
            self.spill_file = self.cleanup.enter_context(tempfile.TemporaryFile())  # noqa: SIM115 (closed by the stack)
        self.spilled[start] = (self.spill_file.tell(), len(data))
        self.spill_file.write(data)
        self.collapse(start, b"")
        self.spill_from = len(self.parts)

    def collapse(self, start: int, piece: bytes) -> None:
        """Replace the parts from ``start`` on by one piece, keeping the part
        indices that record where names were stored pointing inside it."""
        self.parts[start:] = [piece]
        if self.last_new_string > start:
            self.last_new_string = start
        if self.phandle_string_lo is not None and self.phandle_string_lo > start:
            self.phandle_string_lo = start

    def write_parts(self, write: Callable[[bytes], object]) -> None:
        parts, spilled, spill_file = self.parts, self.spilled, self.spill_file
        batch: list[bytes] = []
        for index, part in enumerate(parts):
            segment = spilled.get(index)
            if segment is None:
                batch.append(part)
                if len(batch) >= 4096:
                    write(b"".join(batch))
                    batch.clear()
                continue
            if batch:
                write(b"".join(batch))
                batch.clear()
            assert spill_file is not None
            offset, left = segment
            spill_file.seek(offset)
            while left:
                chunk = spill_file.read(min(left, 1 << 20))
                write(chunk)
                left -= len(chunk)
        if batch:
            write(b"".join(batch))

    def write_blob(self, write: Callable[[bytes], object]) -> None:
        """Walk the tree (printing the DTS on the way, if given a printer) and
        write the blob in pieces."""
        with self.cleanup:
            self.write_blob_once(write)

    def write_blob_once(self, write: Callable[[bytes], object]) -> None:
        tree = self.tree
        self.start()
        if self.dts is not None:
            self.dts.begin(tree)
        self.write_struct()
        if self.errors:
            raise DeviceTreeError("\n".join(self.errors))
        if self.redo:
            raise _Redo()
        if self.dts is not None:
            self.dts.end(tree)
        rsv = b"".join(struct.pack(">QQ", r.address, r.size) for r in tree.reservations)
        rsv += b"\0" * 16
        struct_size = sum(map(len, self.parts)) + sum(size for _, size in self.spilled.values())
        dt_strings = b"".join(self.strings.blobs)
        off_struct = _HEADER_SIZE + len(rsv)
        off_strings = off_struct + struct_size
        total = off_strings + len(dt_strings)
        boot_cpu = tree.boot_cpuid_phys or self.guess_boot_cpuid()
        header = struct.pack(
            ">10I",
            FDT_MAGIC,
            total,
            off_struct,
            off_strings,
            _HEADER_SIZE,
            FDT_VERSION,
            FDT_LAST_COMP_VERSION,
            boot_cpu,
            len(dt_strings),
            struct_size,
        )
        write(header + rsv)
        self.write_parts(write)
        write(dt_strings)

    def guess_boot_cpuid(self) -> int:
        """livetree.c guess_boot_cpuid: ``reg`` of the first child of /cpus, if one cell.

        dtc guesses while parsing, before references are fixed up, when a
        reference still reads 0xffffffff and a path reference is empty.
        """
        cpus = self.tree.root.child("cpus")
        if cpus is None or not cpus.children:
            return 0
        reg = cpus.children[0].prop("reg")
        if reg is None:
            return 0
        data = bytearray()
        for chunk in reg.chunks:
            if isinstance(chunk, Cells):
                code = _BITS_CODES.get(chunk.bits, "I")
                values = [_UNRESOLVED if isinstance(v, Ref) else v for v in chunk.values]
                data += struct.pack(f">{len(values)}{code}", *values)
            elif isinstance(chunk, Str):
                data += chunk.text.encode("utf-8") + b"\0"
            elif isinstance(chunk, Bytes):
                data += chunk.data
        return int.from_bytes(data, "big") if len(data) == 4 else 0


def render_dtb(tree: Tree) -> bytes:
    """The tree as an FDT v17 blob, byte-identical to dtc's from ``render_dts(tree)``.

    Raises :class:`DeviceTreeError` for anything dtc would refuse.
    """
    chunks: list[bytes] = []
    write_tree(tree, chunks.append)
    return b"".join(chunks)


def write_tree(tree: Tree, write: Callable[[bytes], object], dts: DtsPrinter | None = None) -> None:
    """Write the tree's blob through ``write`` and, given a printer, its DTS,
    in one walk: a tree with deferred children is made once, node by node,
    and never whole. The blob is written only once the walk succeeded; a
    printer that has to start over is told to (``DtsPrinter.restart``).

    Raises :class:`DeviceTreeError` for anything dtc would refuse.
    """
    first = _Writer(tree, None, dts)
    try:
        first.write_blob(write)
        return
    except _Materialize:
        redo_with_plan = False
    except _Redo:
        redo_with_plan = True
    if dts is not None:
        dts.restart()
    if not redo_with_plan:
        # Rare: a reference (by label or path) to a streamed node from outside
        # its ancestors, or an error to describe with full paths. Keep the
        # whole tree this time.
        materialize_all(tree)
        write_tree(tree, write, dts)
        return
    plan = _Plan({first.plan_key(n): v for n, v in first.explicit.items()}, list(map(first.plan_key, first.ref_order)))
    _Writer(tree, plan, dts).write_blob(write)
