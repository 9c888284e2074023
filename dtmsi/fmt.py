"""``dtmsi fmt``: the canonical layout of a .msi file, comments kept where they are.

The layout only moves whitespace: the tokens come out exactly as they went in
(a check at the end refuses to return anything else), so a formatted file
compiles to the same thing, with only provenance line numbers moving.

The rules:

* one statement per line, four spaces per block level, ``{`` at the end of
  the statement's line and ``}`` on its own line;
* a block written on one line without comments inside stays on one line
  (``endpoint nic0 @ 02.0 { use e1000e; }``) if that fits in 100 columns;
  an empty block is ``{}``;
* inside a statement, one space between arguments, around binary operators,
  ``@``, ``->`` and ``=``, and after a comma; none before ``,``, ``;``, ``..``
  and ``.*``, after ``..``, inside brackets, after a unary ``-`` or ``~``,
  before a selector's ``[index]``, or between a template's name and its
  ``(parameters)`` in ``template`` and ``use``;
* blank lines between statements are kept, at most one in a row, none at the
  start or end of a block or the file;
* a comment on a line of its own stays on a line of its own, indented like
  the code around it (a ``/* */`` comment's later lines move with its first);
  a comment after code stays after that code, and such comments on
  consecutive lines line up two spaces after the longest code; a ``//``
  comment inside a statement ends that line and the statement goes on,
  indented one level further.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dtmsi import syntax as s
from dtmsi.parser import lexemes, parse
from dtmsi.source import SourceFile

WIDTH = 100  # one-line blocks longer than this are opened up
INDENT = "    "

Lexeme = tuple[str, str, int, int]  # kind, text, start, end

# No space before these tokens, none after those.
_TIGHT_BEFORE = frozenset({"COMMA", "SEMI", "RPAR", "RBRACKET", "DOTDOT", "DOTSTAR", "DOT"})
_TIGHT_AFTER = frozenset({"LPAR", "LBRACKET", "DOTDOT", "DOT", "TILDE"})


class FormatError(Exception):
    """The layout would change the tokens or comments: a bug in the formatter."""


@dataclass
class _Comment:
    text: str
    start: int
    own_line: bool  # nothing but whitespace before it on its source line
    blank_before: bool

    @property
    def is_line(self) -> bool:
        return self.text.startswith("//")


@dataclass
class _Stmt:
    head: list[Lexeme | _Comment]  # the word, its arguments, comments among them
    block: list[_Stmt | _Comment] | None = None
    one_line: bool = False  # '{' ... '}' on one source line with no comment inside
    open_comments: list[_Comment] = field(default_factory=list)  # after '{' on its line
    trailing: list[_Comment] = field(default_factory=list)  # after ';' or '}' on its line
    blank_before: bool = False


@dataclass
class _Line:
    code: str  # may hold newlines: a multi-line comment inside it
    comment: str | None = None  # a one-line comment after the code, aligned with its neighbours


def format_source(file: SourceFile) -> str:
    """The canonical layout of ``file``. Raises ``ParseError`` if it does not parse."""
    binary = _binary_operators(parse(file), file)
    lex = lexemes(file)
    return _Formatter(file, lex, binary).run()


def _binary_operators(stmts: list[s.Stmt], file: SourceFile) -> set[int]:
    """Source offsets where a binary operator's token can start: right after its
    left operand (whitespace and comments aside). A '-' anywhere else is unary."""
    ends: set[int] = set()

    def expr(e: s.Expr) -> None:
        if isinstance(e, s.BinOp):
            ends.add(e.left.span.end)
            expr(e.left)
            expr(e.right)
        elif isinstance(e, s.UnOp):
            expr(e.operand)
        elif isinstance(e, s.Paren):
            expr(e.inner)

    def arg(a: s.Arg) -> None:
        if isinstance(a, s.RangeArg):
            expr(a.lo)
            expr(a.hi)
        elif isinstance(a, s.TupleArg):
            for item in a.items:
                expr(item)
        elif isinstance(a, s.IndexArg):
            expr(a.lo)
            if a.hi is not None:
                expr(a.hi)
        elif isinstance(a, s.Expr):
            expr(a)

    def stmt(st: s.Stmt) -> None:
        for a in st.args:
            arg(a)
        for child in st.body or ():
            stmt(child)

    for st in stmts:
        stmt(st)
    return ends


def _tight(code: list[Lexeme], j: int) -> bool:
    """Whether code token ``j`` is written against the one before it, beyond
    the rules by kind: a selector's '[' and a template's '('."""
    kind = code[j][0]
    if kind == "LBRACKET":
        return code[j - 1][0] in ("WORD", "RBRACKET", "RPAR", "NUMBER", "STRING")
    return (
        kind == "LPAR"
        and j >= 2
        and code[j - 2][1] in ("template", "use")
        and code[j - 1][0] == "WORD"
        and (j == 2 or code[j - 3][0] in ("SEMI", "LBRACE", "RBRACE"))
    )


class _Formatter:
    def __init__(self, file: SourceFile, lex: list[Lexeme], operand_ends: set[int]) -> None:
        self.file = file
        self.lex = lex
        self.i = 0
        text = file.text
        # Newlines between each lexeme and the one before it.
        self.newlines = [text.count("\n", lex[k - 1][3] if k else 0, lex[k][2]) for k in range(len(lex))]
        # A '-' is binary when the code token before it ends an operand.
        self.binary: set[int] = set()
        prev_end = -1
        for kind, _text, start, end in lex:
            if kind == "COMMENT":
                continue
            if kind == "MINUS" and prev_end in operand_ends:
                self.binary.add(start)
            prev_end = end
        # Tokens written against the one before them: the '(' of
        # 'template NAME(params)' and 'use NAME(args)', and the '[' of a
        # selector's index ('nic0.vf[0..3]').
        code = [t for t in lex if t[0] != "COMMENT"]
        self.tight = {code[j][2] for j in range(1, len(code)) if _tight(code, j)}
        self.lines: list[_Line] = []

    # ------------------------------------------------------------ reading

    def _comment(self, k: int) -> _Comment:
        _kind, text, start, _end = self.lex[k]
        return _Comment(text, start, k == 0 or self.newlines[k] > 0, k > 0 and self.newlines[k] >= 2)

    def _same_line_comments(self) -> list[_Comment]:
        out = []
        while self.i < len(self.lex) and self.lex[self.i][0] == "COMMENT" and self.newlines[self.i] == 0:
            out.append(self._comment(self.i))
            self.i += 1
        return out

    def _items(self) -> list[_Stmt | _Comment]:
        out: list[_Stmt | _Comment] = []
        while self.i < len(self.lex) and self.lex[self.i][0] != "RBRACE":
            if self.lex[self.i][0] == "COMMENT":
                out.append(self._comment(self.i))
                self.i += 1
            else:
                out.append(self._stmt())
        return out

    def _stmt(self) -> _Stmt:
        lex = self.lex
        st = _Stmt([], blank_before=self.i > 0 and self.newlines[self.i] >= 2)
        while lex[self.i][0] not in ("SEMI", "LBRACE"):
            st.head.append(self._comment(self.i) if lex[self.i][0] == "COMMENT" else lex[self.i])
            self.i += 1
        if lex[self.i][0] == "SEMI":
            self.i += 1
            st.trailing = self._same_line_comments()
            return st
        open_at = self.i
        self.i += 1
        st.open_comments = self._same_line_comments()
        st.block = self._items()
        close_at = self.i
        assert lex[close_at][0] == "RBRACE"
        self.i += 1
        st.one_line = (
            not any(lex[k][0] == "COMMENT" for k in range(open_at, close_at))
            and "\n" not in self.file.text[lex[open_at][2] : lex[close_at][3]]
        )
        st.trailing = self._same_line_comments()
        return st

    # ------------------------------------------------------------ writing

    def run(self) -> str:
        items = self._items()
        assert self.i == len(self.lex)
        self._items_out(items, 0)
        text = _join(self.lines)
        _same_tokens(self.file, text)
        return text

    def _comment_text(self, c: _Comment, column: int) -> str:
        """The comment as printed at ``column`` (0-based): '//' ones without
        trailing blanks; a multi-line '/* */' one with its later lines moved
        as far as its first line moved."""
        if c.is_line:
            return c.text.rstrip()
        if "\n" not in c.text:
            return c.text
        shift = column - (self.file.line_col(c.start)[1] - 1)
        first, *rest = c.text.split("\n")
        moved = []
        for line in rest:
            if shift >= 0:
                moved.append(" " * shift + line if line.strip() else line.rstrip())
            else:
                lead = len(line) - len(line.lstrip(" "))
                moved.append(line[min(lead, -shift) :] if line.strip() else line.rstrip())
        return "\n".join([first, *moved])

    def _items_out(self, items: list[_Stmt | _Comment], depth: int) -> None:
        indent = INDENT * depth
        for k, item in enumerate(items):
            if k > 0 and item.blank_before:
                self.lines.append(_Line(""))
            if isinstance(item, _Comment):
                self.lines.append(_Line(indent + self._comment_text(item, len(indent))))
            else:
                self._stmt_out(item, depth)

    def _spaced(self, prev: Lexeme | None, tok: Lexeme) -> bool:
        if prev is None:
            return False
        if tok[0] in _TIGHT_BEFORE or prev[0] in _TIGHT_AFTER or tok[2] in self.tight:
            return False
        return not (prev[0] == "MINUS" and prev[2] not in self.binary)

    def _stmt_out(self, st: _Stmt, depth: int) -> None:
        indent = INDENT * depth
        more = indent + INDENT  # a statement broken by a '//' comment goes on here
        code = indent
        prev: Lexeme | None = None
        after_comment = False  # the last thing on the line is a /* */ comment
        for part in st.head:
            if isinstance(part, _Comment):
                if part.own_line and code.strip():
                    self.lines.append(_Line(code))
                    code = more
                if part.is_line:
                    if code.strip():
                        self.lines.append(_Line(code, self._comment_text(part, 0)))
                    else:
                        self.lines.append(_Line(code + self._comment_text(part, len(code))))
                    code, prev, after_comment = more, None, False
                else:
                    sep = " " if code.strip() else ""
                    code += sep + self._comment_text(part, _column(code) + len(sep))
                    prev, after_comment = None, True
                continue
            if (after_comment and code.strip()) or self._spaced(prev, part):
                code += " "
            code += part[1]
            prev, after_comment = part, False
        if st.block is None:
            self._end_line(code + ";", st.trailing)
            return
        opener = code + (" {" if code.strip() else "{")
        inline = self._inline_block(st) if st.one_line else None
        if inline is not None and len(opener) + len(inline) <= WIDTH and "\n" not in opener:
            self._end_line(opener + inline, st.trailing)
            return
        if not st.block and not st.open_comments:
            self._end_line(opener + "}", st.trailing)
            return
        self._end_line(opener, st.open_comments)
        self._items_out(st.block, depth + 1)
        self._end_line(indent + "}", st.trailing)

    def _inline_block(self, st: _Stmt) -> str | None:
        """`` a; b { c; } }`` after the '{': a block with no comment inside, on one line."""
        assert st.block is not None
        if not st.block:
            return "}"
        parts = []
        for child in st.block:
            assert isinstance(child, _Stmt)  # one_line: no comments inside
            text = ""
            prev: Lexeme | None = None
            for tok in child.head:
                assert not isinstance(tok, _Comment)
                text += (" " if self._spaced(prev, tok) else "") + tok[1]
                prev = tok
            if child.block is None:
                parts.append(text + ";")
            else:
                inner = self._inline_block(child)
                assert inner is not None
                parts.append(text + " {" + ("" if inner == "}" else " ") + inner)
        return " " + " ".join(parts) + " }"

    def _end_line(self, code: str, comments: list[_Comment]) -> None:
        if not comments:
            self.lines.append(_Line(code))
            return
        texts = []
        column = _column(code) + 2
        for c in comments:
            texts.append(self._comment_text(c, column))
            column += len(texts[-1].rsplit("\n", 1)[-1]) + 1
        joined = " ".join(texts)
        if "\n" in joined:  # a multi-line comment is not aligned with anything
            self.lines.append(_Line(code + "  " + joined))
        else:
            self.lines.append(_Line(code, joined))


def _column(code: str) -> int:
    """Where the next character of ``code`` goes on its (last) line, 0-based."""
    return len(code) - code.rfind("\n") - 1


def _join(lines: list[_Line]) -> str:
    """The lines as text: trailing comments of consecutive lines aligned two
    spaces after the longest code among them."""
    out: list[str] = []
    k = 0
    while k < len(lines):
        if lines[k].comment is None:
            out.append(lines[k].code.rstrip(" "))
            k += 1
            continue
        run_end = k
        while run_end < len(lines) and lines[run_end].comment is not None and "\n" not in lines[run_end].code:
            run_end += 1
        run = lines[k : max(run_end, k + 1)]
        width = max(len(line.code) for line in run)
        for line in run:
            pad = width - len(line.code) + 2 if line.code.strip() else 0
            if "\n" in line.code:
                pad = 2
            out.append(line.code + " " * pad + (line.comment or ""))
        k += len(run)
    while out and not out[-1].strip():
        out.pop()
    return "\n".join(out) + "\n" if out else ""


def _same_tokens(before: SourceFile, after_text: str) -> None:
    """Refuse a layout that changed a token, or a comment beyond its blanks."""
    after = SourceFile(before.name, after_text)

    def key(lex: list[Lexeme]) -> list[tuple[str, str]]:
        return [(k, " ".join(t.split()) if k == "COMMENT" else t) for k, t, _s, _e in lex]

    if key(lexemes(before)) != key(lexemes(after)):
        raise FormatError(f"formatting {before.name} would change its tokens (a bug in dtmsi fmt)")
