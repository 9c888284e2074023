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

import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .tree import (
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
)

if TYPE_CHECKING:
    import lark

_M64 = (1 << 64) - 1
_MAX_INCLUDE_DEPTH = 100  # dtc: MAX_SRCFILE_DEPTH


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


# ---- the parser ----------------------------------------------------------------

_LARK: lark.Lark | None = None


def _parser() -> lark.Lark:
    """The Lark parser, built on first use (building it costs ~0.1 s)."""
    global _LARK
    if _LARK is None:
        import lark

        from dtmsi.resources import grammar_text

        _LARK = lark.Lark(
            grammar_text("dts.lark"),
            parser="lalr",
            lexer="contextual",
            propagate_positions=True,
            start=["dts_file", "body_file"],
        )
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

    def error(self, message: str) -> BaseTreeError:
        filename, line = _source_line(self.filename, self.text, self.line)
        return BaseTreeError(message, filename, line, self.column)


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


def _make_transformer(filename: str, text: str) -> lark.Transformer[lark.Token, object]:
    import lark

    def pos_of(item: lark.Token | lark.tree.Meta) -> _Pos:
        return _Pos(filename, text, item.line or 0, item.column or 0)

    def labels_of(children: list[object]) -> list[str]:
        out: list[str] = []
        for c in children:
            if isinstance(c, lark.Tree) and c.data == "labels":
                out.extend(str(t)[:-1] for t in c.children)
        return out

    def unsupported(meta: lark.tree.Meta, what: str) -> BaseTreeError:
        return pos_of(meta).error(f"{what} is not supported in a base tree")

    def binop(fn: object) -> object:
        def method(self: object, children: list[int]) -> int:
            return fn(children[0], children[1]) & _M64  # type: ignore[operator,no-any-return]

        return method

    @lark.v_args(meta=True)
    class T(lark.Transformer[lark.Token, object]):
        # -- integers (dtc evaluates in uint64) --
        def integer(self, meta: lark.tree.Meta, c: list[lark.Token]) -> int:
            try:
                return _literal(str(c[0]))
            except ValueError as e:
                raise pos_of(c[0]).error(str(e)) from None

        def char(self, meta: lark.tree.Meta, c: list[lark.Token]) -> int:
            try:
                data = _string_bytes(str(c[0])[1:-1])
            except ValueError as e:
                raise pos_of(c[0]).error(str(e)) from None
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
            try:
                data = _string_bytes(str(c[0])[1:-1])
            except ValueError as e:
                raise pos_of(c[0]).error(str(e)) from None
            try:
                return Str(data.decode("utf-8"))
            except UnicodeDecodeError:
                return Bytes(data + b"\0")  # same bytes, not text

        def bytestring(self, meta: lark.tree.Meta, c: list[lark.Token]) -> Chunk:
            digits = re.sub(r"\s", "", str(c[0])[1:-1])
            if len(digits) % 2:
                raise pos_of(c[0]).error("byte string has an odd number of hex digits")
            return Bytes(bytes.fromhex(digits))

        def path_ref(self, meta: lark.tree.Meta, c: list[lark.Token]) -> Chunk:
            return PathRef(_ref_target(str(c[0])))

        def ref(self, meta: lark.tree.Meta, c: list[lark.Token]) -> Ref:
            return Ref(_ref_target(str(c[0])))

        def bits(self, meta: lark.tree.Meta, c: list[lark.Token]) -> int:
            bits = _literal(str(c[0]))
            if bits not in (8, 16, 32, 64):
                raise pos_of(c[0]).error("array elements must be 8, 16, 32 or 64 bits")
            return bits

        def cells(self, meta: lark.tree.Meta, c: list[object]) -> Chunk:
            bits = 32
            values: list[Cell] = []
            for i, item in enumerate(c):
                if isinstance(item, lark.Token):
                    continue  # a label inside the cells: nothing in the DTB
                if i == 0 and isinstance(item, _Bits):
                    bits = item.bits
                elif isinstance(item, Ref):
                    if bits != 32:
                        raise pos_of(meta).error(
                            "references are only allowed in arrays with 32-bit elements"
                        )
                    values.append(item)
                else:
                    assert isinstance(item, int)
                    mask = (1 << bits) - 1
                    if item > mask and (item | mask) != _M64:
                        raise pos_of(meta).error(
                            f"value {item:#x} out of range for {bits}-bit array element"
                        )
                    values.append(item & mask)
            return Cells(tuple(values), bits)

        def incbin(self, meta: lark.tree.Meta, c: list[object]) -> Chunk:
            raise unsupported(meta, "/incbin/")

        # -- structure --
        def property(self, meta: lark.tree.Meta, c: list[object]) -> _Prop:
            labels = labels_of(c)
            rest = [x for x in c if not (isinstance(x, lark.Tree) and x.data == "labels")]
            name = _name(rest[0])
            chunks = tuple(x for x in rest[1:] if not isinstance(x, lark.Token))
            return _Prop(name, chunks, dict.fromkeys(labels, True), pos_of(meta))  # type: ignore[arg-type]

        def node_body(self, meta: lark.tree.Meta, c: list[object]) -> list[object]:
            return c

        def subnode(self, meta: lark.tree.Meta, c: list[object]) -> _RawNode:
            labels = labels_of(c)
            rest = [x for x in c if not (isinstance(x, lark.Tree) and x.data == "labels")]
            return _RawNode(_name(rest[0]), labels, rest[1], pos_of(meta))  # type: ignore[arg-type]

        def delete_property(self, meta: lark.tree.Meta, c: list[lark.Token]) -> _DeleteProp:
            return _DeleteProp(_name(c[0]), pos_of(meta))

        def delete_subnode(self, meta: lark.tree.Meta, c: list[lark.Token]) -> _DeleteNode:
            return _DeleteNode(_name(c[0]), pos_of(meta))

        def omit_subnode(self, meta: lark.tree.Meta, c: list[object]) -> object:
            raise unsupported(meta, "/omit-if-no-ref/")

        def include(self, meta: lark.tree.Meta, c: list[lark.Token]) -> _Include:
            try:
                path = _string_bytes(str(c[0])[1:-1]).decode("utf-8")
            except (ValueError, UnicodeDecodeError) as e:
                raise pos_of(c[0]).error(f"bad /include/ file name: {e}") from None
            return _Include(path, pos_of(meta))

        # -- top level --
        def version(self, meta: lark.tree.Meta, c: list[object]) -> _Top:
            return _Top("version", pos_of(meta))

        def plugin(self, meta: lark.tree.Meta, c: list[object]) -> _Top:
            raise pos_of(meta).error(
                "overlays (/plugin/) are not supported as base trees; apply the overlay "
                "first (fdtoverlay) and give the result"
            )

        def memreserve(self, meta: lark.tree.Meta, c: list[object]) -> _Top:
            nums = [x for x in c if isinstance(x, int)]
            return _Top("memreserve", pos_of(meta), reservation=Reservation(nums[0], nums[1]))

        def root_node(self, meta: lark.tree.Meta, c: list[object]) -> _Top:
            node = _RawNode("", [], c[0], pos_of(meta))  # type: ignore[arg-type]
            return _Top("root", pos_of(meta), node=node)

        def override(self, meta: lark.tree.Meta, c: list[object]) -> _Top:
            labels = labels_of(c)
            rest = [x for x in c if not (isinstance(x, lark.Tree) and x.data == "labels")]
            tok = rest[0]
            assert isinstance(tok, lark.Token)
            node = _RawNode("", [], rest[1], pos_of(meta))  # type: ignore[arg-type]
            return _Top("override", pos_of(tok), _ref_target(str(tok)), labels, node)

        def delete_ref(self, meta: lark.tree.Meta, c: list[lark.Token]) -> _Top:
            return _Top("delete", pos_of(c[0]), _ref_target(str(c[0])))

        def omit_ref(self, meta: lark.tree.Meta, c: list[lark.Token]) -> _Top:
            raise unsupported(meta, "/omit-if-no-ref/")

        def dts_file(self, meta: lark.tree.Meta, c: list[object]) -> list[object]:
            return c

        def body_file(self, meta: lark.tree.Meta, c: list[object]) -> list[object]:
            return c

    ops = {
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
        "lshift": lambda a, b: a << b if b < 64 else 0,
        "rshift": lambda a, b: a >> b if b < 64 else 0,
        "add": lambda a, b: a + b,
        "sub": lambda a, b: a - b,
        "mul": lambda a, b: a * b,
    }
    for name, fn in ops.items():
        setattr(T, name, lark.v_args(inline=False)(binop(fn)))
    return T()


@dataclass
class _Bits:
    bits: int


def _name(tok: object) -> str:
    text = str(tok)
    return text[1:] if text.startswith("\\") else text  # "\name" escapes a keyword


def _ref_target(text: str) -> str:
    """``&label`` -> label, ``&{/path}`` -> /path."""
    return text[2:-1] if text.startswith("&{") else text[1:]
