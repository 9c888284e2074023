"""Read a board's base device tree, as source (``.dts``) or as a blob (``.dtb``).

The compiler merges its nodes into this tree. Source is read with the LALR
grammar in ``grammars/dts.lark`` and built the way dtc builds it
(livetree.c): top-level ``/ {...}`` and ``&label {...}`` blocks merge into
the tree in order, a later property replaces an earlier one in place, and
``/delete-node/`` and ``/delete-property/`` leave a tombstone that a later
definition revives in its old position. So ``render_dtb(parse_dts(text))``
gives the bytes ``dtc -I dts -O dtb`` gives for ``text``.

Not supported, each with its own message: C preprocessor directives (run
``cpp`` first; its ``# line "file"`` markers are understood), overlays
(``/plugin/``), ``/incbin/`` and ``/omit-if-no-ref/``.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dtmsi.limits import MAX_BASE_TREE_BYTES, MAX_TREE_DEPTH
from dtmsi.source import InputFileError, read_input_text

from .tree import (
    LABEL_RE,
    Bytes,
    Cell,
    Cells,
    Chunk,
    Node,
    PathRef,
    Property,
    Ref,
    Reservation,
    Str,
    Tree,
    canonical_path,
    find_node_by_path,
)

if TYPE_CHECKING:
    import lark

_M64 = (1 << 64) - 1
_MAX_INCLUDE_DEPTH = 100  # dtc: MAX_SRCFILE_DEPTH
# Levels of the parse tree of one file: MAX_TREE_DEPTH nodes take two each
# (subnode, node_body); the rest is room for values and expressions. Lark's
# transformer recurses about three frames a level: this keeps it far from
# Python's recursion limit.
_MAX_PARSE_DEPTH = 2 * MAX_TREE_DEPTH + 72


class BaseTreeError(Exception):
    """A base tree that cannot be read; ``line``/``column`` are 1-based (0: unknown)."""

    def __init__(self, message: str, filename: str, line: int, column: int) -> None:
        super().__init__(message, filename, line, column)
        self.message = message
        self.filename = filename
        self.line = line
        self.column = column

    def __str__(self) -> str:
        if self.line:
            return f"{self.filename}:{self.line}:{self.column}: {self.message}"
        return f"{self.filename}: {self.message}"


class BaseTreeDepthError(BaseTreeError):
    """A base tree nested deeper than MAX_TREE_DEPTH (Linux's FDT_MAX_DEPTH)."""


# ---- the parser ----------------------------------------------------------------

_LARK: lark.Lark | None = None


def _parser() -> lark.Lark:
    """The Lark parser, made on first use: loaded from dtmsi's cache (~10 ms),
    or built (~0.1 s, which was a third of a small compile) and cached."""
    global _LARK
    if _LARK is None:
        import io

        import lark

        from dtmsi import cache
        from dtmsi.resources import grammar_text

        grammar = grammar_text("dts.lark")
        options: dict[str, Any] = {
            "parser": "lalr",
            "lexer": "contextual",
            "propagate_positions": True,
            "start": ["dts_file", "body_file"],
        }
        name = f"dts-parser-{cache.key(grammar, lark.__version__, repr(sorted(options.items())))}.lark"
        saved = cache.read(name)
        if saved is not None:
            try:
                _LARK = lark.Lark.load(io.BytesIO(saved))
            except Exception:  # a damaged entry: build it again
                _LARK = None
        if _LARK is None:
            _LARK = lark.Lark(grammar, **options)
            buf = io.BytesIO()
            _LARK.save(buf)
            cache.write(name, buf.getvalue())
    return _LARK


_CPP_DIRECTIVE = re.compile(
    r"^[ \t]*#[ \t]*(include|define|undef|ifdef|ifndef|if|elif|else|endif|error|pragma)"
    r"(?=[ \t<\"]|$)",
    re.M,
)
_LINEMARKER = re.compile(r'^#(?:line)?[ \t]+([0-9]+)[ \t]+"([^"\n]*)"', re.M)

# Names of terminals as a person would say them, for syntax errors.
_TOKEN_NAMES = {
    "LABEL_DEF": "a label",
    "LABEL_REF": "a reference",
    "PATH_REF": "a path reference",
    "PROPNODENAME": "a name",
    "INTEGER": "a number",
    "CHAR": "a character literal",
    "STRING": "a string",
    "BYTESTRING": "a byte string",
    "$END": "the end of the file",
}


@dataclass
class _Pos:
    filename: str
    text: str
    line: int
    column: int

    def error(self, message: str, kind: type[BaseTreeError] = BaseTreeError) -> BaseTreeError:
        filename, line = _source_line(self.filename, self.text, self.line)
        return kind(message, filename, line, self.column)


def _source_line(filename: str, text: str, line: int) -> tuple[str, int]:
    """Map a line of cpp output back through its ``# N "file"`` markers."""
    best: tuple[str, int] | None = None
    for m in _LINEMARKER.finditer(text):
        marker_line = text.count("\n", 0, m.start()) + 1
        if marker_line >= line:
            break
        best = (m.group(2), int(m.group(1)) + line - marker_line - 1)
    return best if best is not None else (filename, line)


# ---- what the parse produces, before merging ---------------------------------


@dataclass
class _Prop:
    name: str
    chunks: tuple[Chunk, ...]
    labels: dict[str, bool]  # label -> alive (dtc keeps deleted labels, revivable)
    pos: _Pos
    deleted: bool = False


@dataclass
class _Node:
    name: str
    pos: _Pos
    props: list[_Prop] = field(default_factory=list)
    children: list[_Node] = field(default_factory=list)
    labels: dict[str, bool] = field(default_factory=dict)
    deleted: bool = False


@dataclass
class _RawNode:
    """A node body as written, before /include/ inside it is expanded."""

    name: str
    labels: list[str]
    items: list[object]
    pos: _Pos


@dataclass
class _DeleteProp:
    name: str
    pos: _Pos


@dataclass
class _DeleteNode:
    name: str
    pos: _Pos


@dataclass
class _Include:
    path: str
    pos: _Pos


@dataclass
class _Top:
    kind: str  # version, plugin, memreserve, root, override, delete, omit
    pos: _Pos
    ref: str = ""
    labels: list[str] = field(default_factory=list)
    node: _RawNode | None = None
    reservation: Reservation | None = None


def _string_bytes(body: str) -> bytes:
    """dtc's data_copy_escape_string / get_escape_char."""
    raw = body.encode("utf-8")
    out = bytearray()
    i = 0
    n = len(raw)
    simple = {ord("a"): 7, ord("b"): 8, ord("t"): 9, ord("n"): 10, ord("v"): 11, ord("f"): 12}
    simple[ord("r")] = 13
    while i < n:
        c = raw[i]
        i += 1
        if c != 0x5C or i >= n:  # not a backslash
            out.append(c)
            continue
        c = raw[i]
        i += 1
        if c in simple:
            out.append(simple[c])
        elif 0x30 <= c <= 0x37:  # up to three octal digits
            j = i - 1
            while i < n and i - j < 3 and 0x30 <= raw[i] <= 0x37:
                i += 1
            out.append(int(raw[j:i], 8) & 0xFF)
        elif c == ord("x"):
            j = i
            while i < n and i - j < 2 and chr(raw[i]) in "0123456789abcdefABCDEF":
                i += 1
            if i == j:
                raise ValueError("\\x used with no following hex digits")
            out.append(int(raw[j:i], 16))
        else:
            out.append(c)
    return bytes(out)


def _literal(text: str) -> int:
    digits = text.rstrip("UL")
    if digits[:2] in ("0x", "0X"):
        value = int(digits[2:], 16)
    elif len(digits) > 1 and digits[0] == "0":
        if not all(c in "01234567" for c in digits):
            raise ValueError(f"bad octal literal '{text}'")
        value = int(digits, 8)
    else:
        value = int(digits)
    if value > _M64:
        raise ValueError(f"integer literal '{text}' out of range")
    return value


@dataclass
class _Bits:
    bits: int


@dataclass
class _Labels:
    names: list[str]


def _name(tok: object) -> str:
    text = str(tok)
    return text[1:] if text.startswith("\\") else text  # "\name" escapes a keyword


def _ref_target(text: str) -> str:
    """``&label`` -> label, ``&{/path}`` -> /path."""
    return text[2:-1] if text.startswith("&{") else text[1:]


# Binary operators, evaluated as dtc does in uint64 (dtc-parser.y integer_*).
_BINARY: dict[str, Callable[[int, int], int]] = {
    "logical_or": lambda a, b: int(bool(a) or bool(b)),
    "logical_and": lambda a, b: int(bool(a) and bool(b)),
    "bit_or": lambda a, b: a | b,
    "bit_xor": lambda a, b: a ^ b,
    "bit_and": lambda a, b: a & b,
    "eq": lambda a, b: int(a == b),
    "ne": lambda a, b: int(a != b),
    "lt": lambda a, b: int(a < b),
    "gt": lambda a, b: int(a > b),
    "le": lambda a, b: int(a <= b),
    "ge": lambda a, b: int(a >= b),
    "lshift": lambda a, b: (a << b) & _M64 if b < 64 else 0,
    "rshift": lambda a, b: a >> b if b < 64 else 0,
    "add": lambda a, b: (a + b) & _M64,
    "sub": lambda a, b: (a - b) & _M64,
    "mul": lambda a, b: (a * b) & _M64,
}


def _lower(tree: lark.Tree[lark.Token], filename: str, text: str) -> list[object]:
    """The Lark tree of one file -> _Top / _Prop / _RawNode ... items."""
    import lark

    def pos_of(item: lark.Token | lark.tree.Meta) -> _Pos:
        return _Pos(filename, text, getattr(item, "line", 0) or 0, getattr(item, "column", 0) or 0)

    def split_labels(children: list[object]) -> tuple[list[str], list[object]]:
        labels: list[str] = []
        rest: list[object] = []
        for c in children:
            if isinstance(c, _Labels):
                labels.extend(c.names)
            else:
                rest.append(c)
        return labels, rest

    def unsupported(meta: lark.tree.Meta, what: str) -> BaseTreeError:
        return pos_of(meta).error(f"{what} is not supported in a base tree")

    def unescape(tok: lark.Token) -> bytes:
        try:
            return _string_bytes(str(tok)[1:-1])
        except ValueError as e:
            raise pos_of(tok).error(str(e)) from None

    @lark.v_args(meta=True)
    class Lower(lark.Transformer[lark.Token, object]):
        def __default__(self, data: str, children: list[object], meta: lark.tree.Meta) -> object:
            fn = _BINARY.get(data)
            if fn is None:
                raise AssertionError(f"no lowering for rule {data}")
            a, b = children
            assert isinstance(a, int) and isinstance(b, int)
            return fn(a, b)

        def labels(self, meta: lark.tree.Meta, c: list[lark.Token]) -> _Labels:
            return _Labels([str(t)[:-1] for t in c])

        # -- integers (dtc evaluates in uint64) --
        def integer(self, meta: lark.tree.Meta, c: list[lark.Token]) -> int:
            try:
                return _literal(str(c[0]))
            except ValueError as e:
                raise pos_of(c[0]).error(str(e)) from None

        def char(self, meta: lark.tree.Meta, c: list[lark.Token]) -> int:
            data = unescape(c[0])
            if len(data) != 1:
                raise pos_of(c[0]).error(
                    f"character literal has {len(data)} characters instead of 1"
                )
            return data[0]

        def ternary(self, meta: lark.tree.Meta, c: list[int]) -> int:
            return c[1] if c[0] else c[2]

        def div(self, meta: lark.tree.Meta, c: list[int]) -> int:
            if c[1] == 0:
                raise pos_of(meta).error("division by zero")
            return c[0] // c[1]

        def mod(self, meta: lark.tree.Meta, c: list[int]) -> int:
            if c[1] == 0:
                raise pos_of(meta).error("division by zero")
            return c[0] % c[1]

        def neg(self, meta: lark.tree.Meta, c: list[int]) -> int:
            return -c[0] & _M64

        def invert(self, meta: lark.tree.Meta, c: list[int]) -> int:
            return c[0] ^ _M64

        def not_(self, meta: lark.tree.Meta, c: list[int]) -> int:
            return int(not c[0])

        # -- values --
        def string(self, meta: lark.tree.Meta, c: list[lark.Token]) -> Chunk:
            data = unescape(c[0])
            try:
                return Str(data.decode("utf-8"))
            except UnicodeDecodeError:
                return Bytes(data + b"\0")  # the same bytes, though not text

        def bytestring(self, meta: lark.tree.Meta, c: list[lark.Token]) -> Chunk:
            digits = re.sub(r"\s", "", str(c[0])[1:-1])
            if len(digits) % 2:
                raise pos_of(c[0]).error("byte string has an odd number of hex digits")
            return Bytes(bytes.fromhex(digits))

        def path_ref(self, meta: lark.tree.Meta, c: list[lark.Token]) -> Chunk:
            return PathRef(_ref_target(str(c[0])))

        def ref(self, meta: lark.tree.Meta, c: list[lark.Token]) -> Ref:
            return Ref(_ref_target(str(c[0])))

        def bits(self, meta: lark.tree.Meta, c: list[lark.Token]) -> _Bits:
            bits = _literal(str(c[0]))
            if bits not in (8, 16, 32, 64):
                raise pos_of(c[0]).error("array elements must be 8, 16, 32 or 64 bits")
            return _Bits(bits)

        def cells(self, meta: lark.tree.Meta, c: list[object]) -> Chunk:
            bits = c[0].bits if c and isinstance(c[0], _Bits) else 32
            mask = (1 << bits) - 1
            values: list[Cell] = []
            for item in c:
                if isinstance(item, Ref):
                    if bits != 32:
                        raise pos_of(meta).error(
                            "references are only allowed in arrays with 32-bit elements"
                        )
                    values.append(item)
                elif isinstance(item, int):
                    # dtc accepts a value that fits, or a sign-extended negative one.
                    if item > mask and (item | mask) != _M64:
                        raise pos_of(meta).error(
                            f"value {item:#x} out of range for {bits}-bit array element"
                        )
                    values.append(item & mask)
                # else: /bits/, or a label inside the cells (nothing in the DTB)
            return Cells(tuple(values), bits)

        def incbin(self, meta: lark.tree.Meta, c: list[object]) -> Chunk:
            raise unsupported(meta, "/incbin/")

        # -- inside nodes --
        def property(self, meta: lark.tree.Meta, c: list[object]) -> _Prop:
            labels, rest = split_labels(c)
            chunks = tuple(x for x in rest[1:] if isinstance(x, Cells | Str | Bytes | PathRef))
            return _Prop(_name(rest[0]), chunks, dict.fromkeys(labels, True), pos_of(meta))

        def node_body(self, meta: lark.tree.Meta, c: list[object]) -> list[object]:
            return c

        def subnode(self, meta: lark.tree.Meta, c: list[object]) -> _RawNode:
            labels, rest = split_labels(c)
            items = rest[1]
            assert isinstance(items, list)
            return _RawNode(_name(rest[0]), labels, items, pos_of(meta))

        def delete_property(self, meta: lark.tree.Meta, c: list[lark.Token]) -> _DeleteProp:
            return _DeleteProp(_name(c[0]), pos_of(meta))

        def delete_subnode(self, meta: lark.tree.Meta, c: list[lark.Token]) -> _DeleteNode:
            return _DeleteNode(_name(c[0]), pos_of(meta))

        def omit_subnode(self, meta: lark.tree.Meta, c: list[object]) -> object:
            raise unsupported(meta, "/omit-if-no-ref/")

        def include(self, meta: lark.tree.Meta, c: list[lark.Token]) -> _Include:
            try:
                path = unescape(c[0]).decode("utf-8")
            except UnicodeDecodeError:
                raise pos_of(c[0]).error("/include/ file name is not UTF-8") from None
            return _Include(path, pos_of(meta))

        # -- top level --
        def version(self, meta: lark.tree.Meta, c: list[object]) -> _Top:
            return _Top("version", pos_of(meta))

        def plugin(self, meta: lark.tree.Meta, c: list[object]) -> _Top:
            raise pos_of(meta).error(
                "overlays (/plugin/) are not supported as base trees: apply the overlay "
                "first (fdtoverlay) and give the result"
            )

        def memreserve(self, meta: lark.tree.Meta, c: list[object]) -> _Top:
            address, size = (x for x in c if isinstance(x, int))
            return _Top("memreserve", pos_of(meta), reservation=Reservation(address, size))

        def root_node(self, meta: lark.tree.Meta, c: list[object]) -> _Top:
            items = c[0]
            assert isinstance(items, list)
            return _Top("root", pos_of(meta), node=_RawNode("", [], items, pos_of(meta)))

        def override(self, meta: lark.tree.Meta, c: list[object]) -> _Top:
            labels, (tok, items) = split_labels(c)
            assert isinstance(tok, lark.Token) and isinstance(items, list)
            node = _RawNode("", [], items, pos_of(meta))
            return _Top("override", pos_of(tok), _ref_target(str(tok)), labels, node)

        def delete_ref(self, meta: lark.tree.Meta, c: list[lark.Token]) -> _Top:
            return _Top("delete", pos_of(c[0]), _ref_target(str(c[0])))

        def omit_ref(self, meta: lark.tree.Meta, c: list[lark.Token]) -> _Top:
            raise unsupported(meta, "/omit-if-no-ref/")

        def dts_file(self, meta: lark.tree.Meta, c: list[object]) -> list[object]:
            return c

        def body_file(self, meta: lark.tree.Meta, c: list[object]) -> list[object]:
            return c

    try:
        result = Lower().transform(tree)
    except lark.exceptions.VisitError as e:
        # Lark wraps what a callback raises; ours are already well formed.
        if isinstance(e.orig_exc, BaseTreeError):
            raise e.orig_exc from None
        raise
    assert isinstance(result, list)
    return result


def _describe_token(name: str, value: str | None = None) -> str:
    if name == "$END":
        return "the end of the file"
    pattern = _parser().get_terminal(name).pattern
    if type(pattern).__name__ == "PatternStr":
        return f"'{pattern.value}'"
    what = _TOKEN_NAMES.get(name, name.lower())
    return f"{what} '{value}'" if value is not None else what


def _parse_items(text: str, filename: str, start: str) -> list[object]:
    """Parse one file (a whole one, or the inside of a node) into lowered items."""
    import lark

    m = _CPP_DIRECTIVE.search(text)
    if m:
        line = text.count("\n", 0, m.start()) + 1
        column = m.start(1) - text.rfind("\n", 0, m.start(1))
        raise _Pos(filename, text, line, column).error(
            f"C preprocessor directive '#{m.group(1)}': run the file through the C "
            "preprocessor first (cpp -nostdinc -undef -x assembler-with-cpp -P)"
        )
    try:
        tree = _parser().parse(text, start=start)
    except lark.exceptions.UnexpectedToken as e:
        what = _describe_token(e.token.type, str(e.token))
        expected = sorted(_describe_token(t) for t in e.expected if not t.startswith("__"))
        hint = f"; expected {', '.join(expected)}" if 0 < len(expected) <= 6 else ""
        raise _Pos(filename, text, e.line, e.column).error(
            f"syntax error: unexpected {what}{hint}"
        ) from None
    except lark.exceptions.UnexpectedCharacters as e:
        raise _Pos(filename, text, e.line, e.column).error(
            f"syntax error: unexpected character {text[e.pos_in_stream or 0]!r}"
        ) from None
    except lark.exceptions.UnexpectedInput as e:
        line = getattr(e, "line", 0) or text.count("\n") + 1
        column = getattr(e, "column", 0) or 1
        raise _Pos(filename, text, line, column).error(
            "syntax error: unexpected end of file"
        ) from None
    _check_parse_depth(tree, filename, text)
    return _lower(tree, filename, text)


def _check_parse_depth(tree: lark.Tree[lark.Token], filename: str, text: str) -> None:
    """Refuse a file nested too deeply before the (recursive) transformer
    sees it. Walks the tree with an explicit stack."""
    import lark

    stack: list[tuple[lark.Tree[lark.Token], int, int]] = [(tree, 0, 0)]
    while stack:
        t, depth, nodes = stack.pop()
        if t.data == "node_body":
            nodes += 1
        if nodes > MAX_TREE_DEPTH or depth > _MAX_PARSE_DEPTH:
            meta = t.meta
            where = _Pos(filename, text, getattr(meta, "line", 0) or 0, getattr(meta, "column", 0) or 0)
            what = f"nodes nested more than {MAX_TREE_DEPTH} deep" if nodes > MAX_TREE_DEPTH else "nested too deeply"
            raise where.error(what, BaseTreeDepthError)
        stack.extend((c, depth + 1, nodes) for c in t.children if isinstance(c, lark.Tree))


# ---- building the tree as dtc does ---------------------------------------------


def _delete_node(node: _Node) -> None:
    """livetree.c delete_node: a tombstone that keeps its place."""
    node.deleted = True
    for child in node.children:
        if not child.deleted:
            _delete_node(child)
    for prop in node.props:
        if not prop.deleted:
            _delete_prop(prop)
    for label in node.labels:
        node.labels[label] = False


def _delete_prop(prop: _Prop) -> None:
    prop.deleted = True
    for label in prop.labels:
        prop.labels[label] = False


def _merge(old: _Node, new: _Node) -> None:
    """livetree.c merge_nodes."""
    old.deleted = False
    for label in new.labels:
        old.labels[label] = True
    for prop in new.props:
        if prop.deleted:
            for o in old.props:
                if o.name == prop.name:
                    _delete_prop(o)
                    break
            continue
        for o in old.props:
            if o.name == prop.name:
                for label in prop.labels:
                    o.labels[label] = True
                o.chunks = prop.chunks
                o.pos = prop.pos
                o.deleted = False
                break
        else:
            old.props.append(prop)
    for child in new.children:
        if child.deleted:
            for oc in old.children:
                if oc.name == child.name:
                    _delete_node(oc)
                    break
            continue
        for oc in old.children:
            if oc.name == child.name:
                _merge(oc, child)
                break
        else:
            old.children.append(child)


def _by_ref(root: _Node, ref: str) -> _Node | None:
    """livetree.c get_node_by_ref over live nodes."""
    if ref == "/":
        return root
    if ref.startswith("/"):
        canon = canonical_path(ref)
        if canon is None:
            return None
        node = root
        for comp in canon.split("/")[1:] if canon != "/" else []:
            for child in node.children:
                if not child.deleted and child.name == comp:
                    node = child
                    break
            else:
                return None
        return node
    stack = [root]
    while stack:
        node = stack.pop()
        if node.labels.get(ref):
            return node
        stack.extend(c for c in reversed(node.children) if not c.deleted)
    return None


class _Builder:
    def __init__(self) -> None:
        self.root: _Node | None = None
        self.reservations: list[Reservation] = []
        self.saw_version = False
        self.include_stack: list[Path] = []

    def include(self, inc: _Include, base_dir: Path, start: str) -> tuple[list[object], Path]:
        path = _real(base_dir / inc.path)
        if path in self.include_stack:
            raise inc.pos.error(f'/include/ "{inc.path}" includes itself')
        if len(self.include_stack) >= _MAX_INCLUDE_DEPTH:
            raise inc.pos.error("/include/ nested too deeply")
        try:
            text = read_input_text(path, MAX_BASE_TREE_BYTES)
        except InputFileError as e:
            raise inc.pos.error(f'cannot read /include/ "{inc.path}": {e.reason}') from None
        self.include_stack.append(path)
        try:
            return _parse_items(text, str(path), start), path.parent
        finally:
            self.include_stack.pop()

    def expand(self, items: list[object], base_dir: Path) -> Iterator[tuple[object, Path]]:
        """Items of a node body with /include/ replaced by what the file holds."""
        for item in items:
            if isinstance(item, _Include):
                path = _real(base_dir / item.path)
                sub, sub_dir = self.include(item, base_dir, "body_file")
                self.include_stack.append(path)
                try:
                    yield from self.expand(sub, sub_dir)
                finally:
                    self.include_stack.pop()
            else:
                yield item, base_dir

    def node(self, raw: _RawNode, base_dir: Path, depth: int = 1) -> _Node:
        if depth > MAX_TREE_DEPTH:  # deeper through /include/s inside nodes
            raise raw.pos.error(f"nodes nested more than {MAX_TREE_DEPTH} deep", BaseTreeDepthError)
        node = _Node(raw.name, raw.pos, labels=dict.fromkeys(raw.labels, True))
        in_subnodes = False
        for item, item_dir in self.expand(raw.items, base_dir):
            if isinstance(item, _Prop | _DeleteProp):
                if in_subnodes:
                    raise item.pos.error("properties must precede subnodes")
                if isinstance(item, _DeleteProp):
                    item = _Prop(item.name, (), {}, item.pos, deleted=True)
                node.props.append(item)
            elif isinstance(item, _RawNode):
                in_subnodes = True
                node.children.append(self.node(item, item_dir, depth + 1))
            elif isinstance(item, _DeleteNode):
                in_subnodes = True
                node.children.append(_Node(item.name, item.pos, deleted=True))
        return node

    def top(self, items: list[object], base_dir: Path, main: bool) -> None:
        for item in items:
            if isinstance(item, _Include):
                sub, sub_dir = self.include(item, base_dir, "dts_file")
                path = _real(base_dir / item.path)
                self.include_stack.append(path)
                try:
                    self.top(sub, sub_dir, main=False)
                finally:
                    self.include_stack.pop()
                continue
            assert isinstance(item, _Top)
            if item.kind == "version":
                self.saw_version = True
                continue
            if main and not self.saw_version:
                raise item.pos.error("missing '/dts-v1/;' at the start of the file")
            if item.kind == "memreserve":
                assert item.reservation is not None
                self.reservations.append(item.reservation)
            elif item.kind == "root":
                assert item.node is not None
                new = self.node(item.node, base_dir)
                if self.root is None:
                    self.root = new
                else:
                    _merge(self.root, new)
            else:
                target = _by_ref(self.root, item.ref) if self.root is not None else None
                if target is None:
                    raise item.pos.error(f"label or path '{item.ref}' not found")
                if item.kind == "delete":
                    _delete_node(target)
                else:
                    assert item.node is not None
                    for label in item.labels:
                        target.labels[label] = True
                    _merge(target, self.node(item.node, base_dir))


def _real(path: Path) -> Path:
    """The real path; os.path.realpath does not raise on a symlink loop
    (reading the file then fails with ELOOP)."""
    return Path(os.path.realpath(path))


def _check_depth(root: _Node) -> None:
    """Merged overrides can nest a tree deeper than any one file did."""
    stack = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if depth >= MAX_TREE_DEPTH:
            raise node.pos.error(f"nodes nested more than {MAX_TREE_DEPTH} deep", BaseTreeDepthError)
        stack.extend((c, depth + 1) for c in node.children if not c.deleted)


# Properties dtc reads with propval_cell (checks.c), which asserts one cell.
_ONE_CELL = ("interrupt-parent", "phandle", "linux,phandle")


def check_cell_counts(tree: Tree, filename: str) -> None:
    """Every ``#...-cells`` property, and ``interrupt-parent``, holds exactly
    one 32-bit cell.

    dtc only warns about one that does not (``*_is_cell``), then asserts on
    it in later checks (livetree.c propval_cell) and dies: a tree with one is
    refused here rather than merged into output dtc cannot read (found by
    tests/fuzz)."""
    stack: list[tuple[Node, str]] = [(tree.root, "")]
    while stack:
        node, path = stack.pop()
        for prop in node.properties:
            count = prop.name.startswith("#") and prop.name.endswith("-cells")
            if count or prop.name in _ONE_CELL:
                chunks = prop.chunks
                one = (
                    len(chunks) == 1
                    and isinstance(chunks[0], Cells)
                    and chunks[0].bits == 32
                    and len(chunks[0].values) == 1
                    and (isinstance(chunks[0].values[0], int) or not count)
                )
                if not one:
                    raise BaseTreeError(f"{path or '/'}: '{prop.name}' is not a single 32-bit cell", filename, 0, 0)
        stack.extend((c, f"{path}/{c.name}") for c in reversed(node.children))


def _to_tree_node(node: _Node) -> Node:
    props: list[Property] = []
    seen: set[str] = set()
    for p in node.props:
        if p.deleted:
            continue
        if p.name in seen:
            raise p.pos.error(f"duplicate property name '{p.name}'")
        seen.add(p.name)
        props.append(Property(p.name, p.chunks, labels=tuple(k for k, v in p.labels.items() if v)))
    children: list[Node] = []
    names: set[str] = set()
    for c in node.children:
        if c.deleted:
            continue
        if c.name in names:
            raise c.pos.error(f"duplicate node name '{c.name}'")
        names.add(c.name)
        children.append(_to_tree_node(c))
    labels = [k for k, v in node.labels.items() if v]
    return Node(node.name, props, children, labels)


def parse_dts(text: str, filename: str = "<string>", base_dir: Path | str | None = None) -> Tree:
    """Read device tree source; ``/include/`` files are found relative to ``base_dir``
    (default: the directory of ``filename``). Raises :class:`BaseTreeError`."""
    directory = Path(base_dir) if base_dir is not None else Path(filename).parent
    builder = _Builder()
    items = _parse_items(text, filename, "dts_file")
    builder.top(items, directory, main=True)
    if builder.root is None:
        line = text.count("\n") + 1
        raise _Pos(filename, text, line, 1).error("no root node ('/ { ... };') in the file")
    _check_depth(builder.root)
    return Tree(_to_tree_node(builder.root), builder.reservations)


def parse_dts_file(path: Path | str) -> Tree:
    """Read a ``.dts`` file; ``/include/`` is relative to it."""
    path = Path(path)
    try:
        text = read_input_text(path, MAX_BASE_TREE_BYTES)
    except InputFileError as e:
        raise BaseTreeError(f"cannot read: {e.reason}", str(path), 0, 0) from None
    return parse_dts(text, str(path), path.parent)


# ---- reading a blob ------------------------------------------------------------

# Bytes dtc counts as string content (treesource.c isstring: isprint, NUL, \a..\r).
_NOT_STRING = re.compile(rb"[^\x20-\x7e\x00\x07-\x0d]")
_FDT_MAGIC = 0xD00DFEED


def _classify(value: bytes) -> tuple[Chunk, ...]:
    """Typed chunks for a raw value, by dtc's guess (treesource.c guess_value_type)."""
    n = len(value)
    if n == 0:
        return ()
    nul = value.count(0)
    if value[-1] == 0 and nul <= n - nul and not _NOT_STRING.search(value):
        return tuple(Str(s.decode("ascii")) for s in value[:-1].split(b"\0"))
    if n % 4 == 0:
        return (Cells(struct.unpack(f">{n // 4}I", value)),)
    return (Bytes(value),)


def read_dtb(data: bytes, filename: str = "<dtb>") -> Tree:
    """Read a flattened device tree (version 16 or 17) into a :class:`Tree`.

    Values become cells, strings or bytes by dtc's own guess; ``phandle``
    properties stay as they are, so references (plain numbers here) still
    hold. Labels come back from ``/__symbols__`` when the blob has one.
    """

    def fail(message: str) -> BaseTreeError:
        return BaseTreeError(message, filename, 0, 0)

    if len(data) < 40:
        raise fail("too short for a device tree blob")
    (magic, total, off_struct, off_strings, off_rsv, version, last_comp, boot_cpu,
     size_strings, size_struct) = struct.unpack_from(">10I", data)  # fmt: skip
    if magic != _FDT_MAGIC:
        raise fail(f"bad magic {magic:#010x} (not a device tree blob)")
    if version < 16 or last_comp > 17:
        raise fail(f"unsupported blob version {version} (last compatible {last_comp})")
    if total > len(data):
        raise fail(f"truncated: header says {total} bytes, have {len(data)}")
    if version < 17:
        size_struct = off_strings - off_struct if off_strings > off_struct else total - off_struct
    strings = data[off_strings : off_strings + size_strings]

    tree = Tree(boot_cpuid_phys=boot_cpu)
    pos = off_rsv
    while True:
        if pos + 16 > total:
            raise fail("memory reservation map runs past the end")
        address, size = struct.unpack_from(">QQ", data, pos)
        pos += 16
        if address == 0 and size == 0:
            break
        tree.reservations.append(Reservation(address, size))

    pos = off_struct
    end = off_struct + size_struct
    stack: list[Node] = []
    root: Node | None = None
    try:
        while pos + 4 <= end:
            (token,) = struct.unpack_from(">I", data, pos)
            pos += 4
            if token == 1:  # FDT_BEGIN_NODE
                nul = data.index(b"\0", pos, end)
                node = Node(data[pos:nul].decode("utf-8"))
                pos = (nul + 4) & ~3
                if len(stack) >= MAX_TREE_DEPTH:
                    raise BaseTreeDepthError(
                        f"nodes nested more than {MAX_TREE_DEPTH} deep (at offset {pos - 4:#x})", filename, 0, 0
                    )
                if stack:
                    stack[-1].children.append(node)
                elif root is None:
                    root = node
                    node.name = ""
                else:
                    raise fail("more than one root node")
                stack.append(node)
            elif token == 2:  # FDT_END_NODE
                stack.pop()
            elif token == 3:  # FDT_PROP
                length, nameoff = struct.unpack_from(">II", data, pos)
                pos += 8
                value = data[pos : pos + length]
                if len(value) != length or pos + length > end:
                    raise fail("property value runs past the structure block")
                pos = (pos + length + 3) & ~3
                name = strings[nameoff : strings.index(b"\0", nameoff)].decode("utf-8")
                stack[-1].properties.append(Property(name, _classify(value)))
            elif token == 4:  # FDT_NOP
                continue
            elif token == 9:  # FDT_END
                break
            else:
                raise fail(f"bad structure token {token:#x} at offset {pos - 4:#x}")
    except (ValueError, IndexError, struct.error, UnicodeDecodeError) as e:
        raise fail(f"malformed structure block ({e})") from None
    if root is None or stack:
        raise fail("structure block does not hold one complete root node")
    tree.root = root
    _labels_from_symbols(root)
    return tree


def _labels_from_symbols(root: Node) -> None:
    symbols = root.child("__symbols__")
    if symbols is None:
        return
    for prop in symbols.properties:
        if len(prop.chunks) == 1 and isinstance(prop.chunks[0], Str):
            node = find_node_by_path(Tree(root), prop.chunks[0].text)
            if node is not None and LABEL_RE.match(prop.name) and prop.name not in node.labels:
                node.labels.append(prop.name)
