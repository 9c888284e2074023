"""Text -> syntax tree, with Lark's LALR parser and an inline transformer.

The transformer runs while parsing (no intermediate parse tree), which keeps
large flat topologies fast. Lark stops here: nothing above this module
imports it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

from dtmsi import syntax as s
from dtmsi.limits import (
    MAX_BLOCK_DEPTH,
    MAX_EXPR_DEPTH,
    MAX_NUMBER_DIGITS,
    MAX_STATEMENT_TOKENS,
    MAX_STRING_CHARS,
    MAX_TOPLEVEL_TOKENS,
    MAX_VALUE_BITS,
)
from dtmsi.resources import grammar_text
from dtmsi.source import SourceFile, Span

_SUFFIX = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", '"': '"', "\\": "\\"}
_ESCAPE_RE = re.compile(r"\\(x[0-9a-fA-F]{2}|x|.)")


class ParseError(Exception):
    """A syntax error with the offending span and what was expected."""

    def __init__(self, message: str, span: Span, hint: str | None = None, code: str = "E101"):
        super().__init__(message)
        self.message = message
        self.span = span
        self.hint = hint
        self.code = code


class LiteralError(ValueError):
    """A number or string literal that lexes but cannot be taken: too long,
    too wide, or a bad escape. ``code`` is its diagnostic code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_int(text: str) -> int:
    text = text.replace("_", "")
    digits = len(text) - (2 if text[:2] in ("0x", "0X", "0b", "0B") else 0)
    if digits > MAX_NUMBER_DIGITS:
        # Checked before int(): converting a long decimal takes quadratic time.
        raise LiteralError("E114", f"number literal of {digits} digits (at most {MAX_NUMBER_DIGITS})")
    value = _int_value(text)
    if value >> MAX_VALUE_BITS:
        raise LiteralError("E115", f"number literal wider than {MAX_VALUE_BITS} bits")
    return value


def _int_value(text: str) -> int:
    mult = 1
    if text[-1] in _SUFFIX:
        mult = _SUFFIX[text[-1]]
        text = text[:-1]
    if text[:2] in ("0x", "0X"):
        return int(text[2:], 16) * mult
    if text[:2] in ("0b", "0B"):
        return int(text[2:], 2) * mult
    return int(text, 10) * mult


def unescape(body: str) -> str:
    """The text of a string literal's body. Raises LiteralError for a bad
    escape, a NUL (device-tree strings end at one: "a\\0b" would become two
    strings), or more than MAX_STRING_CHARS characters."""
    if len(body) > MAX_STRING_CHARS:
        raise LiteralError("E121", f"string of {len(body)} characters (at most {MAX_STRING_CHARS})")

    def sub(m: re.Match[str]) -> str:
        e = m.group(1)
        if e[0] == "x":
            if len(e) != 3:
                raise LiteralError("E101", "'\\x' needs two hex digits, as in '\\x0a'")
            return chr(int(e[1:], 16))
        return _ESCAPES.get(e, e)

    text = _ESCAPE_RE.sub(sub, body) if "\\" in body else body
    if "\0" in text:
        raise LiteralError("E111", "a string cannot hold a NUL character")
    return text


# The token pattern mirrors grammars/dtmsi.lark terminal for terminal (a test
# checks both parsers agree). Alternatives are ordered longest-first where
# they share a prefix (".." and ".*" before ".", "->" before "-").
# Whitespace and comments before a token are matched with it (one regex
# match per token, not two: the tokenizer was a sixth of a 10k compile).
# Possessive (*+): a token that fails after a comment must not make the
# regex give the comment back and read its '/' as a token.
# Block comments as "/*, runs of non-stars, runs of stars not followed by
# '/'": each piece a single possessive repeat, so a 50 MB comment costs no
# regex backtracking stack (the lazy "(?:.|\n)*?" cost ~110 bytes a character).
_SKIP = r"(?:[ \t\r\n\f]++|//[^\n]*+|/\*[^*]*+\*++(?:[^/*][^*]*+\*++)*+/)*+"
_SKIP_RE = re.compile(_SKIP)
_TOKEN_RE = re.compile(
    _SKIP
    + r"""(?:
    (?P<DEVFN>[0-9][0-9a-fA-F]?\.[0-9a-fA-F]{1,2}(?![0-9a-fA-FxX_.]))
    |(?P<IDPAIR>[0-9a-fA-F]{4}:[0-9a-fA-F]{4}(?![0-9a-fA-F]))
    |(?P<NUMBER>(?:0[xX][0-9a-fA-F](?:_?[0-9a-fA-F])*|0[bB][01](?:_?[01])*|[0-9](?:_?[0-9])*[KMGT]?)(?![A-Za-z0-9_]))
    |(?P<WORD>[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*)
    |(?P<STRING>"(?:[^"\\\n]|\\.)*")
    |(?P<DOTDOT>\.\.)|(?P<DOTSTAR>\.\*)|(?P<DOT>\.)
    |(?P<ARROW>->)|(?P<SHL><<)|(?P<SHR>>>)
    |(?P<SEMI>;)|(?P<LBRACE>\{)|(?P<RBRACE>\})|(?P<LBRACKET>\[)|(?P<RBRACKET>\])
    |(?P<LPAR>\()|(?P<RPAR>\))|(?P<AT>@)|(?P<COMMA>,)|(?P<EQUALS>=)
    |(?P<PLUS>\+)|(?P<MINUS>-)|(?P<STAR>\*)|(?P<SLASH>/)|(?P<PERCENT>%)
    |(?P<AMP>&)|(?P<PIPE>\|)|(?P<CARET>\^)|(?P<TILDE>~))""",
    re.VERBOSE,
)

# Binary operators by precedence level (low to high), as in the grammar.
_BINARY: dict[str, tuple[int, str]] = {
    "PIPE": (1, "|"),
    "CARET": (2, "^"),
    "AMP": (3, "&"),
    "SHL": (4, "<<"),
    "SHR": (4, ">>"),
    "PLUS": (5, "+"),
    "MINUS": (5, "-"),
    "STAR": (6, "*"),
    "SLASH": (6, "/"),
    "PERCENT": (6, "%"),
}
_PUNCT_ARGS = frozenset({"AT", "ARROW", "COMMA", "EQUALS", "DOTSTAR"})
_EXPR_START = frozenset({"NUMBER", "WORD", "LPAR", "MINUS", "TILDE"})


class _Syntax(Exception):
    """Raised by the fast parser; the Lark parser then words the error."""

    def __init__(self, pos: int) -> None:
        self.pos = pos


def _tokenize(file: SourceFile, pos: int = 0) -> tuple[list[tuple[str, str, int, int]], int]:
    """Tokens of one top-level statement from ``pos``: up to its ``;`` or
    closing ``}`` (or the end of the file), then an ``$END`` sentinel.

    One statement at a time, so a large file never has all its tokens (about
    160 bytes each) alive at once. Returns the tokens and where the next
    statement starts.
    """
    text = file.text
    out: list[tuple[str, str, int, int]] = []
    append = out.append
    n = len(text)
    match = _TOKEN_RE.match
    depth = 0
    # Tokens since the last ';', '{' or '}': one statement's own words.
    own = 0
    while pos < n:
        m = match(text, pos)
        if m is None:
            skipped = _SKIP_RE.match(text, pos)
            at = skipped.end() if skipped is not None else pos
            if at >= n:  # only whitespace and comments were left
                pos = n
                break
            raise _lexical_error(file, at)
        kind = m.lastgroup
        assert kind is not None
        start = m.start(kind)
        end = m.end()
        if kind == "SLASH" and text.startswith("/*", start):
            raise _lexical_error(file, start)
        append((kind, m.group(kind), start, end))
        own += 1
        if own > MAX_STATEMENT_TOKENS or len(out) > MAX_TOPLEVEL_TOKENS:
            raise _statement_too_long(file, out, own)
        if kind == "LBRACE":
            own = 0
            depth += 1
        elif kind == "RBRACE":
            own = 0
            depth -= 1
            if depth <= 0:
                pos = end
                break
        elif kind == "SEMI":
            own = 0
            if depth == 0:
                pos = end
                break
        pos = end
    append(("$END", "", pos, pos))
    return out, pos


_BAD_NUMBER_RE = re.compile(r"[0-9][0-9A-Za-z_]*")


def _statement_too_long(file: SourceFile, toks: list[tuple[str, str, int, int]], own: int) -> ParseError:
    if own > MAX_STATEMENT_TOKENS:
        first = toks[-own]
        return ParseError(
            f"statement longer than {MAX_STATEMENT_TOKENS} words and symbols",
            Span(file, first[2], first[3]),
            "end it with ';' or split its values over several statements",
            "E123",
        )
    first = toks[0]
    return ParseError(
        f"top-level statement longer than {MAX_TOPLEVEL_TOKENS} words and symbols",
        Span(file, first[2], first[3]),
        "split it (a host bridge holds at most 65,536 functions; 'repeat' and 'use' write many at once)",
        "E123",
    )


def _lexical_error(file: SourceFile, pos: int) -> ParseError:
    text = file.text
    if text.startswith("/*", pos):
        return ParseError("unterminated comment", Span(file, pos, pos + 2), "close it with '*/'", "E102")
    if text.startswith('"', pos):
        return ParseError(
            "unterminated string",
            Span(file, pos, pos + 1),
            "a string ends with '\"' on the line it starts on",
            "E102",
        )
    bad = _BAD_NUMBER_RE.match(text, pos)
    if bad is not None:  # '0xZZ00', '64KB', '0x1G': a number that runs into letters
        return ParseError(
            f"bad number '{bad.group()}'",
            Span(file, pos, bad.end()),
            "numbers are hex (0x1f), binary (0b101) or decimal with an optional K, M, G or T suffix (64K)",
        )
    return ParseError(f"unexpected character {text[pos]!r}", Span(file, pos, pos + 1))


class _FastParser:
    """Recursive descent over the grammar in grammars/dtmsi.lark.

    Lark's LALR parser is the reference (and words every syntax error), but
    costs ~7 us a token in CPython; this one ~1 us, which the 10k/100k-function
    budgets need. tests/test_parser_equivalence.py holds the two together.
    """

    def __init__(self, file: SourceFile) -> None:
        self.file = file
        self.toks: list[tuple[str, str, int, int]] = []
        self.i = 0
        # Nesting so far: '{' blocks, and '(' / unary operators in an
        # expression. Checked against the limits, the parser never recurses
        # more than a few hundred frames deep.
        self.depth = 0
        self.expr_depth = 0
        # Where the current top-level statement's text starts and ends.
        self.stmt_start = 0
        self.stmt_end = 0

    def span(self, start: int, end: int) -> Span:
        return Span(self.file, start, end)

    def statements(self) -> Iterator[s.Stmt]:
        pos, n = 0, len(self.file.text)
        while True:
            self.stmt_start = pos
            self.toks, pos = _tokenize(self.file, pos)
            self.stmt_end = pos
            self.i = 0
            if self.toks[0][0] == "$END" and pos >= n:
                return
            if self.toks[0][0] != "WORD":
                raise _Syntax(self.toks[0][2])
            stmt = self.stmt()
            if self.toks[self.i][0] != "$END":
                raise _Syntax(self.toks[self.i][2])
            yield stmt

    def stmts(self) -> list[s.Stmt]:
        out: list[s.Stmt] = []
        toks = self.toks
        while toks[self.i][0] == "WORD":
            out.append(self.stmt())
        return out

    def stmt(self) -> s.Stmt:
        toks = self.toks
        _kind, word, start, end = toks[self.i]
        self.i += 1
        args: list[s.Arg] = []
        while True:
            k = toks[self.i][0]
            if k == "SEMI":
                stmt_end = toks[self.i][3]
                self.i += 1
                return s.Stmt(word, self.span(start, end), tuple(args), None, self.span(start, stmt_end))
            if k == "LBRACE":
                if self.depth >= MAX_BLOCK_DEPTH:
                    raise _nested_too_deeply(self.span(toks[self.i][2], toks[self.i][3]), "blocks", MAX_BLOCK_DEPTH)
                self.depth += 1
                self.i += 1
                body = self.stmts()
                self.depth -= 1
                if toks[self.i][0] != "RBRACE":
                    raise _Syntax(toks[self.i][2])
                stmt_end = toks[self.i][3]
                self.i += 1
                return s.Stmt(word, self.span(start, end), tuple(args), tuple(body), self.span(start, stmt_end))
            args.append(self.arg())

    def arg(self) -> s.Arg:
        toks = self.toks
        k, text, start, end = toks[self.i]
        if k == "LPAR":
            # "(a, b)" is a tuple argument; "(a) + b" an expression.
            self.i += 1
            self._enter(start, end)
            first = self.expr(0)
            self.expr_depth -= 1
            if toks[self.i][0] == "COMMA":
                items = [first]
                while toks[self.i][0] == "COMMA":
                    self.i += 1
                    items.append(self.expr(0))
                if toks[self.i][0] != "RPAR":
                    raise _Syntax(toks[self.i][2])
                close = toks[self.i][3]
                self.i += 1
                return s.TupleArg(tuple(items), self.span(start, close))
            if toks[self.i][0] != "RPAR":
                raise _Syntax(toks[self.i][2])
            close = toks[self.i][3]
            self.i += 1
            e = self.expr(0, s.Paren(first, self.span(start, close)))
            if toks[self.i][0] == "DOTDOT":
                self.i += 1
                hi = self.expr(0)
                return s.RangeArg(e, hi, self.span(e.span.start, hi.span.end))
            return e
        if k in _EXPR_START:
            e = self.expr(0)
            if toks[self.i][0] == "DOTDOT":
                self.i += 1
                hi = self.expr(0)
                return s.RangeArg(e, hi, self.span(e.span.start, hi.span.end))
            return e
        self.i += 1
        if k in _PUNCT_ARGS:
            return s.Punct(text, self.span(start, end))
        if k == "STRING":
            return self.string(text, self.span(start, end))
        if k == "DEVFN":
            dev, fn = text.split(".")
            return s.DevFnArg(int(dev, 16), int(fn, 16), self.span(start, end))
        if k == "IDPAIR":
            ven, did = text.split(":")
            return s.IdPairArg(int(ven, 16), int(did, 16), self.span(start, end))
        if k == "LBRACKET":
            lo = self.expr(0)
            upper: s.Expr | None = None
            if toks[self.i][0] == "DOTDOT":
                self.i += 1
                upper = self.expr(0)
            if toks[self.i][0] != "RBRACKET":
                raise _Syntax(toks[self.i][2])
            close = toks[self.i][3]
            self.i += 1
            return s.IndexArg(lo, upper, self.span(start, close))
        raise _Syntax(start)

    def expr(self, min_level: int, left: s.Expr | None = None) -> s.Expr:
        if left is None:
            left = self.unary()
        toks = self.toks
        while True:
            op = _BINARY.get(toks[self.i][0])
            if op is None or op[0] <= min_level:
                return left
            self.i += 1
            right = self.expr(op[0])
            left = s.BinOp(op[1], left, right, self.span(left.span.start, right.span.end))

    def unary(self) -> s.Expr:
        toks = self.toks
        k, text, start, end = toks[self.i]
        self.i += 1
        if k == "NUMBER":
            try:
                return s.Num(parse_int(text), self.span(start, end))
            except LiteralError as e:
                raise ParseError(e.message, self.span(start, end), code=e.code) from None
        if k == "WORD":
            parts = [text]
            while toks[self.i][0] == "DOT" and toks[self.i + 1][0] == "WORD":
                parts.append(toks[self.i + 1][1])
                end = toks[self.i + 1][3]
                self.i += 2
            if toks[self.i][0] == "DOT":
                raise _Syntax(toks[self.i][2])
            return s.Name(tuple(parts), self.span(start, end))
        if k == "LPAR":
            self._enter(start, end)
            inner = self.expr(0)
            self.expr_depth -= 1
            if toks[self.i][0] != "RPAR":
                raise _Syntax(toks[self.i][2])
            close = toks[self.i][3]
            self.i += 1
            return s.Paren(inner, self.span(start, close))
        if k == "MINUS" or k == "TILDE":
            self._enter(start, end)
            operand = self.unary()
            self.expr_depth -= 1
            return s.UnOp(text, operand, self.span(start, operand.span.end))
        raise _Syntax(start)

    def _enter(self, start: int, end: int) -> None:
        """One more '(' or unary operator around what follows."""
        if self.expr_depth >= MAX_EXPR_DEPTH:
            raise _nested_too_deeply(self.span(start, end), "parentheses and operators", MAX_EXPR_DEPTH)
        self.expr_depth += 1

    def string(self, text: str, span: Span) -> s.StrArg:
        try:
            return s.StrArg(unescape(text[1:-1]), span)
        except LiteralError as e:
            raise ParseError(e.message, span, code=e.code) from None


def _nested_too_deeply(span: Span, what: str, limit: int) -> ParseError:
    return ParseError(f"{what} nested more than {limit} deep", span, code="E116")


@functools.cache
def _lark() -> Any:
    import lark  # local import: only syntax errors and tests pay for it

    return lark.Lark(grammar_text("dtmsi.lark"), parser="lalr", lexer="contextual")


def parse_with_lark(file: SourceFile) -> list[s.Stmt]:
    """The reference parser: Lark LALR over grammars/dtmsi.lark."""
    tree: Any = _lark().parse(file.text)
    result: list[s.Stmt] = _make_transformer(file).transform(tree)
    return result


def _make_transformer(file: SourceFile) -> Any:
    import lark

    def sp(start: int, end: int) -> Span:
        return Span(file, start, end)

    def tsp(tok: Any) -> Span:
        return Span(file, tok.start_pos, tok.end_pos)

    def binop(op: str) -> Any:
        def f(self: Any, c: list[Any]) -> s.BinOp:
            left, right = c[0], c[-1]
            return s.BinOp(op, left, right, sp(left.span.start, right.span.end))

        return f

    class T(lark.Transformer[Any, Any]):
        def start(self, c: list[s.Stmt]) -> list[s.Stmt]:
            return c

        def stmt(self, c: list[Any]) -> s.Stmt:
            word = c[0]
            last = c[-1]
            if isinstance(last, tuple):  # block: (stmts, end offset)
                body: tuple[s.Stmt, ...] | None = last[0]
                end = last[1]
                args = c[1:-1]
            else:
                body = None
                end = last.end_pos
                args = c[1:-1]
            return s.Stmt(str(word), tsp(word), tuple(args), body, sp(word.start_pos, end))

        def block(self, c: list[Any]) -> tuple[tuple[s.Stmt, ...], int]:
            return tuple(c[1:-1]), c[-1].end_pos

        def number(self, c: list[Any]) -> s.Num:
            return s.Num(parse_int(str(c[0])), tsp(c[0]))

        def name(self, c: list[Any]) -> s.Name:
            return s.Name(tuple(str(t) for t in c), sp(c[0].start_pos, c[-1].end_pos))

        def paren(self, c: list[Any]) -> s.Paren:
            return s.Paren(c[1], sp(c[0].start_pos, c[2].end_pos))

        def neg(self, c: list[Any]) -> s.UnOp:
            return s.UnOp("-", c[-1], sp(c[0].start_pos, c[-1].span.end))

        def bnot(self, c: list[Any]) -> s.UnOp:
            return s.UnOp("~", c[-1], sp(c[-1].span.start - 1, c[-1].span.end))

        add = binop("+")
        sub = binop("-")
        mul = binop("*")
        div = binop("/")
        mod = binop("%")
        shl = binop("<<")
        shr = binop(">>")
        band = binop("&")
        bor = binop("|")
        bxor = binop("^")

        def range(self, c: list[Any]) -> s.RangeArg:
            return s.RangeArg(c[0], c[2], sp(c[0].span.start, c[2].span.end))

        def string(self, c: list[Any]) -> s.StrArg:
            return s.StrArg(unescape(str(c[0])[1:-1]), tsp(c[0]))

        def devfn(self, c: list[Any]) -> s.DevFnArg:
            dev, fn = str(c[0]).split(".")
            return s.DevFnArg(int(dev, 16), int(fn, 16), tsp(c[0]))

        def idpair(self, c: list[Any]) -> s.IdPairArg:
            ven, dev = str(c[0]).split(":")
            return s.IdPairArg(int(ven, 16), int(dev, 16), tsp(c[0]))

        def punct(self, c: list[Any]) -> s.Punct:
            return s.Punct(str(c[0]), tsp(c[0]))

        def tuple(self, c: list[Any]) -> s.TupleArg:
            items = tuple(x for x in c[1:-1] if not isinstance(x, lark.Token))
            return s.TupleArg(items, sp(c[0].start_pos, c[-1].end_pos))

        def index(self, c: list[Any]) -> s.IndexArg:
            return s.IndexArg(c[1], None, sp(c[0].start_pos, c[-1].end_pos))

        def index_range(self, c: list[Any]) -> s.IndexArg:
            return s.IndexArg(c[1], c[3], sp(c[0].start_pos, c[-1].end_pos))

    return T()


_TOKEN_NAMES = {
    "SEMI": "';'",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "WORD": "a word",
    "NUMBER": "a number",
    "STRING": "a string",
    "DEVFN": "dev.fn",
    "IDPAIR": "vendor:device",
    "LPAR": "'('",
    "RPAR": "')'",
    "LBRACKET": "'['",
    "RBRACKET": "']'",
    "DOTDOT": "'..'",
    "$END": "end of file",
}


def _expected(names: set[str]) -> str:
    shown = sorted({_TOKEN_NAMES[n] for n in names if n in _TOKEN_NAMES})
    if not shown:
        return ""
    if len(shown) > 4:
        shown = [x for x in shown if x in ("';'", "'{'", "'}'")] or shown[:4]
    return ", expected " + " or ".join(shown)


def parse_statement_at(file: SourceFile, pos: int) -> s.Stmt | None:
    """The statement that starts at ``pos`` (where a kept span begins), parsed
    again from the source; None if it does not parse on its own."""
    fast = _FastParser(file)
    try:
        fast.toks, _ = _tokenize(file, pos)
        return fast.stmt() if fast.toks[0][0] == "WORD" else None
    except (_Syntax, ParseError, RecursionError):
        return None


def parse(file: SourceFile) -> list[s.Stmt]:
    """Parse one file; raises ParseError on the first syntax error."""
    return list(parse_statements(file))


def parse_statements(file: SourceFile) -> Iterator[s.Stmt]:
    """The file's top-level statements, each parsed when asked for, so that a
    caller can be done with one before the next exists. Raises ParseError at
    the first syntax error (after yielding the statements before it)."""
    fast = _FastParser(file)
    try:
        yield from fast.statements()
        return
    except _Syntax as fast_error:
        pos = fast_error.pos
    _explain_with_lark(file, fast.stmt_start, fast.stmt_end)
    # Lark accepted what the fast parser refused: a bug, but still no traceback.
    raise ParseError("syntax error", Span(file, pos, min(pos + 1, len(file.text))))


def _explain_with_lark(file: SourceFile, start: int, end: int) -> None:
    """Re-parse the failing top-level statement (``file.text[start:end]``) with
    the LALR reference parser and raise its wording of the error. Only that
    statement: Lark holds a whole file's tokens and tree at once."""
    from lark import exceptions as lx

    try:
        _lark().parse(file.text[start:end])
    except lx.UnexpectedCharacters as e:
        raise _lexical_error(file, start + (e.pos_in_stream or 0)) from None
    except lx.UnexpectedToken as e:
        tok = e.token
        if tok.type == "$END":
            end = len(file.text)
            raise ParseError(
                "unexpected end of file" + _expected(set(e.expected)),
                Span(file, max(0, end - 1), end),
                "a '{' block is not closed" if "RBRACE" in e.expected else None,
            ) from None
        span = Span(file, start + tok.start_pos, start + tok.end_pos)
        hint = None
        if tok.type in ("WORD", "RBRACE") and "SEMI" in e.expected:
            hint = "the statement before it may be missing its ';'"
        raise ParseError(f"unexpected {str(tok)!r}" + _expected(set(e.expected)), span, hint) from None


_COMMENT_RE = re.compile(r"//[^\n]*|/\*(?:.|\n)*?\*/")
_SPACE_RE = re.compile(r"[ \t\r\n\f]*")


def lexemes(file: SourceFile) -> list[tuple[str, str, int, int]]:
    """Every token of ``file`` in order, comments included (kind ``COMMENT``),
    as (kind, text, start, end). For tools that keep comments (``dtmsi fmt``);
    the file must already have parsed (this does not word errors)."""
    text = file.text
    out: list[tuple[str, str, int, int]] = []
    pos, n = 0, len(text)
    while True:
        space = _SPACE_RE.match(text, pos)
        assert space is not None
        pos = space.end()
        if pos >= n:
            return out
        comment = _COMMENT_RE.match(text, pos)
        if comment is not None:
            out.append(("COMMENT", comment.group(), pos, comment.end()))
            pos = comment.end()
            continue
        m = _TOKEN_RE.match(text, pos)  # nothing to skip here: the token starts at pos
        if m is None or m.lastgroup is None:
            raise _lexical_error(file, pos)
        out.append((m.lastgroup, m.group(m.lastgroup), pos, m.end()))
        pos = m.end()
