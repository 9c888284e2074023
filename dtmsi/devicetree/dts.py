"""Print a :class:`Tree` as device tree source that ``dtc`` reads back.

The output is meant for people first: tab indentation, properties before
subnodes, a blank line before each subnode, comments where the tree carries
them. It is also exact: ``dtc -I dts -O dtb`` on it gives the same bytes as
:func:`dtmsi.devicetree.dtb.render_dtb` on the same tree.

Number format: cell values 0..9 print in decimal, everything else in lowercase
hex (``0x1a``); the two agree for single digits, so nothing is ambiguous.
Memory reservations always print in hex.

This module only prints, it does not validate: a value out of range or a
dangling reference prints as given and dtc (or :func:`render_dtb`, the
validator) refuses it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from .tree import Bytes, Cell, Cells, Chunk, Node, PathRef, Property, Ref, Str, Tree, child_nodes

# A property with several chunks is split one chunk per line past this width
# (tabs counted as 8 columns).
_LONG_LINE = 100


class _NumberText(dict[Cell, str]):
    """Text of cell values, remembered for the 16-bit ones: most cells are
    small, and a dict lookup is far cheaper than formatting each one. Filled
    as values are met: all 65,536 up front cost 20 ms, a tenth of a small
    compile."""

    def __missing__(self, v: Cell) -> str:
        assert isinstance(v, int)  # references are written before numbers are looked up
        text = str(v) if 0 <= v < 10 else hex(v)
        if 0 <= v < 0x10000:
            self[v] = text
        return text


@cache
def _small_numbers() -> _NumberText:
    return _NumberText()


def _ref_text(target: str) -> str:
    return "&{" + target + "}" if target.startswith("/") else "&" + target


def _cells_body(values: tuple[Cell, ...], small_get: Callable[[Cell], str | None]) -> str:
    # Values are not range-checked here: render_dtb is the validator.
    if Ref in map(type, values):  # (checked first: hashing a Ref to look it up is slow)
        return " ".join(
            [
                _ref_text(v.target) if isinstance(v, Ref) else small_get(v) or hex(v)
                for v in values
            ]
        )
    return " ".join([small_get(v) or hex(v) for v in values])  # type: ignore[arg-type]


def _cells_text(chunk: Cells, small_get: Callable[[Cell], str | None]) -> str:
    body = _cells_body(chunk.values, small_get)
    if chunk.bits != 32:
        return f"/bits/ {chunk.bits} <{body}>"
    return "<" + body + ">"


# Escapes dtc's data_copy_escape_string understands; anything else outside
# printable ASCII becomes \xNN (of its UTF-8 bytes), so the output is ASCII.
_ESCAPES = {
    ord("\\"): "\\\\",
    ord('"'): '\\"',
    ord("\n"): "\\n",
    ord("\t"): "\\t",
    ord("\r"): "\\r",
}


def _string_text(text: str) -> str:
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return '"' + text + '"'
    out = []
    for b in text.encode("utf-8"):
        esc = _ESCAPES.get(b)
        if esc is not None:
            out.append(esc)
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        else:
            out.append(f"\\x{b:02x}")
    return '"' + "".join(out) + '"'


def _chunk_text(chunk: Chunk, small_get: Callable[[Cell], str | None]) -> str:
    if type(chunk) is Cells:
        return _cells_text(chunk, small_get)
    if type(chunk) is Str:
        return _string_text(chunk.text)
    if type(chunk) is Bytes:
        return "[" + chunk.data.hex(" ") + "]"
    if type(chunk) is PathRef:
        return _ref_text(chunk.target)
    raise TypeError(f"not a property chunk: {chunk!r}")


def _comment_text(text: str) -> str:
    # "*/" would end the comment early.
    return text.replace("*/", "* /")


def _block_comment(text: str, indent: str) -> list[str]:
    lines = _comment_text(text).splitlines() or [""]
    out = [indent + "/*\n"]
    out.extend(indent + (" * " + line if line else " *") + "\n" for line in lines)
    out.append(indent + " */\n")
    return out


def _one_line(text: str | None) -> bool:
    return text is not None and "\n" not in text


def _labels_text(labels: tuple[str, ...] | list[str]) -> str:
    return "".join(label + ": " for label in labels)


def _property_lines(prop: Property, indent: str, depth: int, out: list[str]) -> None:
    """Any property; :func:`_node_lines` prints the plain one-chunk ones itself."""
    head = indent + _labels_text(prop.labels) + prop.name
    comment = prop.comment
    if not prop.chunks:
        body = [head + ";"]
    else:
        small_get = _small_numbers().__getitem__
        texts = [_chunk_text(c, small_get) for c in prop.chunks]
        chunk_comments = prop.chunk_comments
        has_chunk_comments = bool(chunk_comments) and any(c is not None for c in chunk_comments)
        single = head + " = " + ", ".join(texts) + ";"
        if len(texts) == 1 or (not has_chunk_comments and len(single) + 7 * depth <= _LONG_LINE):
            body = [single]
        else:
            # One chunk per line, aligned under the first, comments in a column.
            cont = indent + " " * (len(head) - len(indent) + 3)
            width = max(len(t) for t in texts) + 1
            body = []
            last = len(texts) - 1
            for i, text in enumerate(texts):
                line = (head + " = " if i == 0 else cont) + text + ("," if i < last else ";")
                note = chunk_comments[i] if i < len(chunk_comments) else None
                if note is not None:
                    pad = " " * (width - len(text) - 1)
                    line += pad + " /* " + _comment_text(note) + " */"
                body.append(line)
    if comment is not None:
        if _one_line(comment) and len(body) == 1:
            body[0] += "\t/* " + _comment_text(comment) + " */"
        else:
            out.extend(_block_comment(comment, indent))
    for line in body:
        out.append(line + "\n")


def _node_head(node: Node, depth: int, out: list[str], shared_lines: dict[tuple[int, int], str] | None = None) -> None:
    """The node's comment, its opening line and its properties (not its children).

    ``shared_lines`` caches the text of shared properties (``Property.shared``)
    by identity and depth: a large tree prints each of them once.
    """
    append = out.append
    indent = "\t" * depth
    comment = node.comment
    if comment is not None and "\n" in comment:
        out.extend(_block_comment(comment, indent))
    if depth == 0:
        head = "/ {"
    elif node.labels:
        head = f"{indent}{_labels_text(node.labels)}{node.name} {{"
    else:
        head = f"{indent}{node.name} {{"
    if comment is not None and "\n" not in comment:
        append(f"{head}\t/* {_comment_text(comment)} */\n")
    else:
        append(head + "\n")
    inner = indent + "\t"
    for prop in node.properties:
        if prop.shared and shared_lines is not None:
            key = (id(prop), depth)
            text = shared_lines.get(key)
            if text is None:
                lines: list[str] = []
                _property_text(prop, inner, depth, lines)
                text = shared_lines[key] = "".join(lines)
            append(text)
        else:
            _property_text(prop, inner, depth, out)


def _property_text(prop: Property, inner: str, depth: int, out: list[str]) -> None:
    chunks = prop.chunks
    # Fast paths for the bulk of a large tree: no comment, no label.
    if prop.comment is not None or prop.labels or prop.chunk_comments:
        _property_lines(prop, inner, depth + 1, out)
        return
    small_get = _small_numbers().__getitem__
    name = prop.name
    if len(chunks) == 1:
        chunk = chunks[0]
        if type(chunk) is Cells and chunk.bits == 32:
            out.append(f"{inner}{name} = <{_cells_body(chunk.values, small_get)}>;\n")
        elif type(chunk) is Str:
            out.append(f"{inner}{name} = {_string_text(chunk.text)};\n")
        else:
            out.append(f"{inner}{name} = {_chunk_text(chunk, small_get)};\n")
    elif chunks:
        texts = [
            f"<{_cells_body(c.values, small_get)}>" if type(c) is Cells and c.bits == 32 else _chunk_text(c, small_get)
            for c in chunks
        ]
        body = ", ".join(texts)
        # Room left on a line once the indentation (tabs of 8 columns) is taken.
        if len(name) + len(body) + 4 <= _LONG_LINE - 8 * (depth + 1):
            out.append(f"{inner}{name} = {body};\n")
        else:  # one chunk per line, aligned under the first
            cont = ",\n" + inner + " " * (len(name) + 3)
            out.append(f"{inner}{name} = {cont.join(texts)};\n")
    else:
        out.append(f"{inner}{name};\n")


class DtsPrinter:
    """Prints a tree node by node, in the order a walker meets them.

    ``open`` a node when it is reached (pre-order) and ``close`` it after its
    children; the text goes to ``write`` (UTF-8 bytes) a few thousand lines at a
    time, so a large tree is never one string in memory. The device-tree
    backend drives it from the DTB writer's walk, which makes every node once
    for both outputs.
    """

    _FLUSH = 4096  # pieces (lines) buffered before a write

    def __init__(self, write: Callable[[bytes], object], restart: Callable[[], object] | None = None) -> None:
        self.write = write
        self.restart_output = restart
        self.out: list[str] = []
        # Per depth: whether the next child needs a blank line before it.
        self.blank: list[bool] = []
        self.shared_lines: dict[tuple[int, int], str] = {}

    def restart(self) -> None:
        """Forget everything printed (the walk starts over)."""
        self.out.clear()
        self.blank.clear()
        if self.restart_output is not None:
            self.restart_output()

    def begin(self, tree: Tree) -> None:
        out = self.out
        out.append("/dts-v1/;\n")
        if tree.header_comment is not None:
            out.append("\n")
            out.extend(_block_comment(tree.header_comment, ""))
        if tree.reservations:
            out.append("\n")
            out.extend(f"/memreserve/ {r.address:#x} {r.size:#x};\n" for r in tree.reservations)
        out.append("\n")

    def open(self, node: Node, depth: int) -> None:
        blank = self.blank
        if depth:
            # A blank line before each subnode, unless it comes first in a
            # node without properties.
            if blank[depth - 1]:
                self.out.append("\n")
            blank[depth - 1] = True
        if len(blank) <= depth:
            blank.append(bool(node.properties))
        else:
            blank[depth] = bool(node.properties)
        _node_head(node, depth, self.out, self.shared_lines)

    def close(self, depth: int) -> None:
        out = self.out
        out.append("\t" * depth + "};\n")
        if len(out) > self._FLUSH:
            self.flush()

    def end(self, tree: Tree) -> None:
        # The root's labels: "label: / {" is not valid input, an override is.
        self.out.extend(f"\n{label}: &{{/}} {{\n}};\n" for label in tree.root.labels)
        self.flush()

    def flush(self) -> None:
        if self.out:
            self.write("".join(self.out).encode("utf-8"))
            self.out.clear()


def print_tree(tree: Tree, printer: DtsPrinter) -> None:
    """Walk the whole tree into ``printer`` (the DTB writer does this itself
    when it renders both formats in one walk)."""
    printer.begin(tree)

    def visit(node: Node, depth: int) -> None:
        printer.open(node, depth)
        for child in child_nodes(node):
            visit(child, depth + 1)
        printer.close(depth)

    visit(tree.root, 0)
    printer.end(tree)


def render_dts(tree: Tree) -> str:
    """The tree as dtc-compatible source text, ending with a newline."""
    chunks: list[bytes] = []
    print_tree(tree, DtsPrinter(chunks.append))
    return b"".join(chunks).decode("utf-8")
