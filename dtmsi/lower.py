"""Syntax tree -> declarations (``ast.py``): the statement schema of the language.

The grammar only knows ``WORD arg* ;`` and ``WORD arg* { ... }``. This module
says what every statement means in every block, expands ``include``,
``const``, ``template``/``use`` and ``repeat``, evaluates integer expressions,
and reports what does not fit with a span. It is the last stage that sees
syntax; nothing after it imports ``syntax`` or the parser.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NoReturn, TypeVar, cast

from dtmsi import ast
from dtmsi import codes as C
from dtmsi import syntax as s
from dtmsi.codes import Code
from dtmsi.diagnostics import DiagnosticSink, Note
from dtmsi.limits import (
    EXPANSION_BYTES,
    MAX_BLOCK_DEPTH,
    MAX_CPU_LIST,
    MAX_EXPANSION,
    MAX_INCLUDE_DEPTH,
    MAX_INTERPOLATION_WIDTH,
    MAX_REPEAT,
    MAX_VALUE_BITS,
)
from dtmsi.parser import ParseError, parse, parse_statements
from dtmsi.source import InputFileError, SourceFile, Span, find_include, printable_name, read_input_text

_T = TypeVar("_T")
_UNSET = object()

# The ``use`` statements being expanded, outermost first: an error inside a
# template body says which use it came through.
_USE_SITES: list[tuple[str, Span]] = []


class _Bad(Exception):
    def __init__(
        self,
        code: Code,
        span: Span,
        message: str,
        hint: str | None = None,
        notes: tuple[Note, ...] = (),
    ) -> None:
        self.code, self.span, self.message, self.hint, self.notes = code, span, message, hint, notes
        self.uses = tuple(_USE_SITES)


class _Restart(Exception):
    """Lowering while parsing met something only the whole file can answer."""


class _Expansion(Exception):
    """The expansion limit reached at ``span``: nothing more is lowered."""

    def __init__(self, span: Span) -> None:
        self.span = span


def _fail(code: Code, span: Span, message: str, hint: str | None = None) -> NoReturn:
    raise _Bad(code, span, message, hint)


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    if len(name) > 64:  # no name is that long; difflib would index every character
        return None
    close = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


# ---------------------------------------------------------------- environments


@dataclass
class Env:
    """Integer names in scope: constants, template parameters, loop variables."""

    values: dict[str, int]
    parent: Env | None = None

    def lookup(self, name: str) -> int | None:
        env: Env | None = self
        while env is not None:
            v = env.values.get(name)
            if v is not None:
                return v
            env = env.parent
        return None

    def names(self) -> set[str]:
        out: set[str] = set()
        env: Env | None = self
        while env is not None:
            out.update(env.values)
            env = env.parent
        return out

    def child(self, values: dict[str, int] | None = None) -> Env:
        return Env(values or {}, self)


@dataclass
class Template:
    name: str
    params: tuple[str, ...]
    body: tuple[s.Stmt, ...]
    span: Span


def evaluate(expr: s.Arg, env: Env, what: str = "a number") -> int:
    """The value of an integer expression.

    Iterative, not recursive: a flat 5,000-term sum is a tree 5,000 deep.
    Every value, computed or literal, stays within MAX_VALUE_BITS, so no
    input can make Python compute numbers of millions of digits.
    """
    if type(expr) is s.Num:
        return expr.value
    if type(expr) is s.Name:
        return _lookup(expr, env, what)
    # Post-order walk: (node, operands done) on the work stack, values on another.
    work: list[tuple[s.Arg, bool]] = [(expr, False)]
    values: list[int] = []
    while work:
        e, done = work.pop()
        if type(e) is s.Num:
            values.append(e.value)
        elif type(e) is s.Name:
            values.append(_lookup(e, env, what))
        elif type(e) is s.Paren:
            work.append((e.inner, False))
        elif type(e) is s.UnOp:
            if done:
                v = values.pop()
                values.append(-v if e.op == "-" else ~v)
            else:
                work.append((e, True))
                work.append((e.operand, False))
        elif type(e) is s.BinOp:
            if done:
                b = values.pop()
                a = values.pop()
                values.append(_binary(e, a, b))
            else:
                work.append((e, True))
                work.append((e.right, False))
                work.append((e.left, False))
        else:
            _fail(C.BAD_VALUE, e.span, f"expected {what}, found {_describe(e)}")
    return values[0]


def _lookup(expr: s.Name, env: Env, what: str) -> int:
    if len(expr.parts) == 1:
        v = env.lookup(expr.parts[0])
        if v is not None:
            return v
        hint = did_you_mean(expr.parts[0], env.names())
        if hint is None and re.fullmatch(r"[A-Za-z_]\w*-\w+", expr.parts[0]):
            hint = "subtraction needs spaces around '-': write 'a - b'"
        _fail(C.UNKNOWN_NAME, expr.span, f"unknown constant '{expr.parts[0]}'", hint)
    _fail(C.BAD_VALUE, expr.span, f"expected {what}, found '{expr.text}'")


_VALUE_LIMIT = 1 << MAX_VALUE_BITS


def _binary(expr: s.BinOp, a: int, b: int) -> int:
    op = expr.op
    if op == "+":
        v = a + b
    elif op == "-":
        v = a - b
    elif op == "*":
        v = a * b
    elif op in ("/", "%"):
        if b == 0:
            _fail(C.DIVISION_BY_ZERO, expr.right.span, "division by zero")
        v = a // b if op == "/" else a % b
    elif op == "<<":
        if b < 0 or b > MAX_VALUE_BITS:
            _fail(C.NUMBER_RANGE, expr.right.span, f"shift count {b} outside 0..{MAX_VALUE_BITS}")
        v = a << b
    elif op == ">>":
        if b < 0:
            _fail(C.NUMBER_RANGE, expr.right.span, f"shift count {b} is negative")
        v = a >> b
    elif op == "&":
        v = a & b
    elif op == "|":
        v = a | b
    else:
        v = a ^ b
    if not -_VALUE_LIMIT < v < _VALUE_LIMIT:
        _fail(
            C.VALUE_WIDTH,
            expr.span,
            f"the value of this expression is wider than {MAX_VALUE_BITS} bits",
            "addresses, sizes and counts fit in 64 bits",
        )
    return v


# Parser errors by their code (the parser does not import the catalogue).
_PARSE_CODES: dict[str, Code] = {
    c.id: c
    for c in (
        C.SYNTAX,
        C.UNTERMINATED,
        C.BAD_VALUE,
        C.NUMBER_DIGITS,
        C.VALUE_WIDTH,
        C.NESTING_DEPTH,
        C.STRING_LENGTH,
        C.STATEMENT_LENGTH,
    )
}


def _in_minus(arg: s.Arg) -> tuple[s.Name, s.Arg] | None:
    """``in - 1 .. 2`` (how "in -1..2" parses) -> ``in`` and ``-1 .. 2``;
    None if ``arg`` is not of that shape.

    The leftmost operand of the expression is ``in - X``; the minus is
    unary, so it goes onto X's own leftmost operand (unary minus binds
    tighter than any binary operator: "in -7 / 2" is (-7) / 2)."""
    lo = arg.lo if isinstance(arg, s.RangeArg) else arg
    spine: list[s.BinOp] = []
    e = lo
    while isinstance(e, s.BinOp) and not (e.op == "-" and isinstance(e.left, s.Name) and e.left.text == "in"):
        spine.append(e)
        e = e.left
    if not (isinstance(e, s.BinOp) and isinstance(e.left, s.Name) and e.left.text == "in"):
        return None
    word = e.left
    file = e.span.file
    minus = file.text.rfind("-", word.span.end, e.right.span.start)
    # Negate the leftmost operand of X.
    path: list[s.BinOp] = []
    x: s.Expr = e.right
    while isinstance(x, s.BinOp):
        path.append(x)
        x = x.left
    new: s.Expr = s.UnOp("-", x, Span(file, minus, x.span.end))
    for node in reversed(path):
        new = s.BinOp(node.op, new, node.right, Span(file, minus, node.span.end))
    for node in reversed(spine):
        new = s.BinOp(node.op, new, node.right, Span(file, minus, node.span.end))
    if isinstance(arg, s.RangeArg):
        return word, s.RangeArg(new, arg.hi, Span(file, minus, arg.span.end))
    return word, new


def _describe(arg: s.Arg) -> str:
    if isinstance(arg, s.StrArg):
        return f'string "{arg.text}"'
    if isinstance(arg, s.Punct):
        return f"'{arg.text}'"
    if isinstance(arg, s.DevFnArg):
        return "a dev.fn address"
    if isinstance(arg, s.IdPairArg):
        return "a vendor:device pair"
    if isinstance(arg, s.RangeArg):
        return "a range"
    if isinstance(arg, s.TupleArg):
        return "a parenthesised list"
    if isinstance(arg, s.IndexArg):
        return "an index [..]"
    if isinstance(arg, s.Name):
        return f"'{arg.text}'"
    return "an expression"


_INTERP = re.compile(r"\{([^{}]*)\}")
# Python's format mini-language for an integer, with width and precision
# capped (digits beyond the cap are still matched, then refused).
_FORMAT_SPEC = re.compile(
    r"(?:.?[<>=^])?[+\- ]?z?#?0?(?P<width>[0-9]{1,20})?[_,]?(?:\.(?P<precision>[0-9]{1,20}))?[bcdoxXn]?"
)
_FORMAT_HINT = "formats: {i}, {i:x}, {i:02x}, {i:b}, {i:d} (width at most 64)"


# ---------------------------------------------------------------- argument cursor


class Args:
    """Reads one statement's arguments left to right, reporting what it expected."""

    def __init__(self, stmt: s.Stmt, env: Env) -> None:
        self.stmt = stmt
        self.args = stmt.args
        self.i = 0
        self.env = env

    def peek(self) -> s.Arg | None:
        return self.args[self.i] if self.i < len(self.args) else None

    def _where(self) -> Span:
        a = self.peek()
        if a is not None:
            return a.span
        end = self.stmt.span.end
        return Span(self.stmt.span.file, end - 1, end)

    def next(self, what: str) -> s.Arg:
        a = self.peek()
        if a is None:
            _fail(C.SYNTAX, self._where(), f"'{self.stmt.word}' expects {what}")
        self.i += 1
        return a

    def peek_word(self) -> str | None:
        a = self.peek()
        if isinstance(a, s.Name) and len(a.parts) == 1:
            return a.parts[0]
        return None

    def word(self, *choices: str, what: str | None = None) -> tuple[str, Span]:
        a = self.peek()
        if isinstance(a, s.Name) and len(a.parts) == 1 and (not choices or a.parts[0] in choices):
            self.i += 1
            return a.parts[0], a.span
        listing = what or " or ".join(f"'{c}'" for c in choices)
        if a is None:
            _fail(C.SYNTAX, self._where(), f"'{self.stmt.word}' expects {listing}")
        hint = None
        if isinstance(a, s.Name) and choices:
            hint = did_you_mean(a.text, list(choices))
        _fail(C.SYNTAX, a.span, f"expected {listing}, found {_describe(a)}", hint)

    def opt_word(self, *choices: str) -> tuple[str, Span] | None:
        w = self.peek_word()
        if w is not None and w in choices:
            a = self.args[self.i]
            self.i += 1
            return w, a.span
        return None

    def punct(self, text: str) -> Span:
        a = self.peek()
        if isinstance(a, s.Punct) and a.text == text:
            self.i += 1
            return a.span
        if a is None:
            _fail(C.SYNTAX, self._where(), f"'{self.stmt.word}' expects '{text}'")
        _fail(C.SYNTAX, a.span, f"expected '{text}', found {_describe(a)}")

    def at_punct(self, text: str) -> bool:
        a = self.peek()
        return isinstance(a, s.Punct) and a.text == text

    def opt_punct(self, text: str) -> Span | None:
        a = self.peek()
        if isinstance(a, s.Punct) and a.text == text:
            self.i += 1
            return a.span
        return None

    def number(self, what: str, lo: int | None = 0, hi: int | None = None) -> tuple[int, Span]:
        a = self.next(what)
        v = evaluate(a, self.env, what)
        _check_range(v, a.span, what, lo, hi)
        return v, a.span

    def string(self, what: str) -> tuple[str, Span]:
        a = self.next(what)
        if not isinstance(a, s.StrArg):
            _fail(C.SYNTAX, a.span, f"expected {what} (a string), found {_describe(a)}")
        return a.text, a.span

    def name(self, what: str) -> tuple[str, Span]:
        """A name: a plain word or an interpolated string ``"ssd{i}"``."""
        a = self.next(what)
        if isinstance(a, s.Name) and len(a.parts) == 1:
            return a.parts[0], a.span
        if isinstance(a, s.StrArg):
            return interpolate(a, self.env), a.span
        _fail(C.SYNTAX, a.span, f"expected {what}, found {_describe(a)}")

    def range(self, what: str, lo: int | None = 0, hi: int | None = None) -> tuple[int, int, Span]:
        a = self.next(what)
        if isinstance(a, s.RangeArg):
            first = evaluate(a.lo, self.env, what)
            last = evaluate(a.hi, self.env, what)
            _check_range(first, a.lo.span, what, lo, hi)
            _check_range(last, a.hi.span, what, lo, hi)
            if last < first:
                _fail(C.BAD_RANGE, a.span, f"range {first:#x}..{last:#x} is reversed")
            return first, last, a.span
        v = evaluate(a, self.env, what)
        _check_range(v, a.span, what, lo, hi)
        return v, v, a.span

    def end(self) -> None:
        a = self.peek()
        if a is None:
            return
        hint = None
        if a.span.line > self.stmt.word_span.line:
            hint = f"is a ';' missing at the end of line {a.span.line - 1}?"
        _fail(
            C.SYNTAX,
            a.span,
            f"unexpected {_describe(a)} in '{self.stmt.word}' statement",
            hint,
        )

    def at_end(self) -> bool:
        return self.i >= len(self.args)


def _check_range(v: int, span: Span, what: str, lo: int | None, hi: int | None) -> None:
    if lo is not None and v < lo:
        _fail(C.NUMBER_RANGE, span, f"{what} {v} is below {lo}")
    if hi is not None and v > hi:
        _fail(C.NUMBER_RANGE, span, f"{what} {v:#x} is above {hi:#x}")


def interpolate(arg: s.StrArg, env: Env) -> str:
    """``"ssd{i}"`` -> ``ssd3``: each ``{expr}`` is a constant or loop variable."""

    def sub(m: re.Match[str]) -> str:
        inner = m.group(1).strip()
        fmt = ""
        if ":" in inner:
            inner, fmt = inner.split(":", 1)
        v = env.lookup(inner.strip())
        if v is None:
            _fail(
                C.UNKNOWN_NAME,
                arg.span,
                f"unknown name '{inner.strip()}' in \"{arg.text}\"",
                did_you_mean(inner.strip(), env.names()),
            )
        # Width and precision are checked before format() runs: "{v:300000000}"
        # would build a 300 MB string first.
        spec = _FORMAT_SPEC.fullmatch(fmt)
        if spec is None:
            _fail(C.BAD_VALUE, arg.span, f"bad format '{fmt}' in \"{arg.text}\"", _FORMAT_HINT)
        for part in ("width", "precision"):
            if spec[part] and int(spec[part]) > MAX_INTERPOLATION_WIDTH:
                _fail(
                    C.INTERPOLATION_WIDTH,
                    arg.span,
                    f"{part} {spec[part]} in '{{{m.group(1)}}}' is above {MAX_INTERPOLATION_WIDTH}",
                )
        try:
            return format(v, fmt)
        except (ValueError, OverflowError):
            # e.g. 'c' of a negative number or of one beyond U+10FFFF
            _fail(C.BAD_VALUE, arg.span, f"format '{fmt}' cannot show {v} in \"{arg.text}\"", _FORMAT_HINT)

    text = _INTERP.sub(sub, arg.text)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(-[A-Za-z0-9_]+)*", text):
        _fail(C.BAD_VALUE, arg.span, f"'{text}' is not a valid name")
    return text


def _linear_in_cpus(expr: s.Arg, env: Env) -> tuple[int, int]:
    """``a * cpus + b`` -> (a, b); any other use of ``cpus`` is refused.

    Iterative like :func:`evaluate` (a 1,500-term sum is a tree that deep);
    subtrees without ``cpus`` are handed to it whole."""
    work: list[tuple[s.Arg, bool]] = [(expr, False)]
    values: list[tuple[int, int]] = []
    while work:
        e, done = work.pop()
        if isinstance(e, s.Name) and e.text == "cpus":
            values.append((1, 0))
        elif isinstance(e, s.Paren):
            work.append((e.inner, False))
        elif isinstance(e, s.BinOp) and e.op in ("+", "-", "*"):
            if not done:
                work.extend(((e, True), (e.right, False), (e.left, False)))
                continue
            ra, rb = values.pop()
            la, lb = values.pop()
            if e.op == "+":
                pair = (la + ra, lb + rb)
            elif e.op == "-":
                pair = (la - ra, lb - rb)
            else:
                if la and ra:
                    _fail(C.BAD_VALUE, e.span, "vectors must be linear in 'cpus' (e.g. 2 * cpus + 1)")
                pair = (la * rb + ra * lb, lb * rb)
            if not all(-_VALUE_LIMIT < v < _VALUE_LIMIT for v in pair):
                _fail(C.VALUE_WIDTH, e.span, f"the value of this expression is wider than {MAX_VALUE_BITS} bits")
            values.append(pair)
        elif isinstance(e, s.UnOp) and e.op == "-":
            if not done:
                work.extend(((e, True), (e.operand, False)))
                continue
            a, b = values.pop()
            values.append((-a, -b))
        else:
            values.append((0, evaluate(e, env, "a vector count")))
    return values[0]


def _split_plus(expr: s.Arg, env: Env, what: str) -> tuple[int, int]:
    """``bar 1 + 0x800`` arrives as one expression; split the leftmost term off."""
    terms: list[s.Expr] = []
    e: s.Arg = expr
    while isinstance(e, s.BinOp) and e.op == "+":
        terms.append(e.right)
        e = e.left
    first = evaluate(e, env, what)
    rest = sum(evaluate(t, env, what) for t in terms)
    return first, rest


# ---------------------------------------------------------------- the lowerer

_PCI_WORDS: dict[str, ast.FunctionKind] = {
    "endpoint": "endpoint",
    "root-port": "root-port",
    "switch": "switch",
    "downstream": "downstream",
    "pci-bridge": "pci-bridge",
    "pcie-to-pci-bridge": "pcie-to-pci-bridge",
}
# Device quirks the generated stubs honour (Linux's names in parentheses):
# no-intx-disable (PCI_DEV_FLAGS_MSI_INTX_DISABLE_BUG) never touches
# Command.INTx_Disable; no-64bit-msi (pdev->no_64bit_msi) limits MSI to
# 32-bit addresses (PAPR functions 5/6).
QUIRKS = ("no-intx-disable", "no-64bit-msi")

_INTX_PINS = {"none": 0, "A": 1, "B": 2, "C": 3, "D": 4, "a": 1, "b": 2, "c": 3, "d": 4}


def _span_key(span: Span) -> tuple[int, int, int]:
    return (id(span.file), span.start, span.end)


@dataclass
class _Seen:
    """Settings already given in one block: a second one is E109, unless the
    first came from a template and the second overrides it."""

    # Spans of words inside template bodies: a block may override a setting
    # that a template it uses gave (``use nic_port(64); intx B;``).
    templated: set[tuple[int, int, int]]
    spans: dict[str, Span] = field(default_factory=dict)

    def once(self, key: str, span: Span) -> None:
        prev = self.spans.get(key)
        t = self.templated
        if prev is not None and _span_key(prev) in t and _span_key(span) not in t:
            self.spans[key] = span
            return
        if prev is not None:
            raise _Bad(
                C.REPEATED_SETTING,
                span,
                f"'{key}' given twice",
                notes=(Note("first given here", prev),),
            )
        self.spans[key] = span


class Lowerer:
    def __init__(
        self, sink: DiagnosticSink, read_file: Callable[[Path], str], include_dirs: tuple[Path, ...] = ()
    ) -> None:
        self.sink = sink
        self.read_file = read_file
        self.include_dirs = include_dirs  # -I: searched after the including file's directory
        self.program = ast.Program()
        self.templates: dict[str, Template] = {}
        self.globals = Env({})
        # _memo: template statements parsed once per distinct use; a global
        # constant defined later bumps the generation.
        self._memos: dict[tuple[int, tuple[tuple[str, int], ...], int], object] = {}
        self._globals_gen = 0
        self._included: set[Path] = set()
        self._stack: list[Path] = []
        self._using: list[str] = []
        self._templated: set[tuple[int, int, int]] = set()
        self._top_dir = Path(".")
        self.streaming = False
        # Statements expanded so far (and CPU numbers listed), and how many
        # may be: MAX_EXPANSION, plus one per EXPANSION_BYTES of source read.
        self._expanded = 0
        self._expansion_limit_now = MAX_EXPANSION
        self._expanding: list[Span] = []  # the 'repeat' and 'use' statements being expanded

    # ------------------------------------------------------------ entry

    def lower_file(self, path: Path, display: str, text: str | None = None) -> ast.Program:
        """Lower the file statement by statement as it is parsed, so a large
        file's syntax tree (~2 KB a function) never exists whole. What only
        the whole file can answer (a template used before its definition, a
        syntax error, a problem with an include) starts over the other way:
        parse everything, collect every template, then lower."""
        mark = self.sink.mark()
        try:
            return self._lower_streaming(path, display, text)
        except _Restart:
            self.sink.rollback(mark)
        return Lowerer(self.sink, self.read_file, self.include_dirs)._lower_whole(path, display, text)

    def _expansion_limit(self, e: _Expansion) -> ast.Program:
        self._report(
            _Bad(
                C.EXPANSION_LIMIT,
                e.span,
                f"more than {self._expansion_limit_now} statements after expanding 'repeat' and 'use'",
                "a loop or template nesting multiplies: check the counts",
            )
        )
        _USE_SITES.clear()
        return self.program

    def _lower_whole(self, path: Path, display: str, text: str | None) -> ast.Program:
        self.streaming = False
        self._top_dir = path.parent
        stmts = self._load(path, display, text, None)
        if stmts is not None:
            self._collect_templates(stmts)
            try:
                self._lower_statements(stmts)
            except _Expansion as e:
                return self._expansion_limit(e)
        return self.program

    def _lower_streaming(self, path: Path, display: str, text: str | None) -> ast.Program:
        self.streaming = True
        self._top_dir = path.parent
        opened = self._open(path, display, text, None)
        if opened is None:
            raise _Restart()  # unreadable: the whole-file path says so
        file, key = opened
        self._stack.append(key)
        try:
            for st in parse_statements(file):
                if st.word == "include":
                    mark = self.sink.mark()
                    sub = self._include(st, path, display)
                    if self.sink.mark() != mark:
                        raise _Restart()
                    if sub:
                        self._collect_templates(sub)
                        self._lower_statements(sub)
                elif st.word == "template":
                    self._collect_templates([st])
                else:
                    self._lower_statements([st])
        except ParseError:
            raise _Restart() from None
        except _Expansion as e:
            return self._expansion_limit(e)
        self._stack.pop()
        return self.program

    def _lower_statements(self, stmts: list[s.Stmt]) -> None:
        """Lower top-level statements in order, letting go of each one's syntax
        once lowered."""
        stmts.reverse()
        while stmts:
            for stmt, env in self._expand((stmts.pop(),), self.globals):
                self._guard(self._top, stmt, env)

    def _open(
        self, path: Path, display: str, text: str | None, include_span: Span | None
    ) -> tuple[SourceFile, Path] | None:
        """The file to read next and its resolved path, noted as read; None for
        a file already included (a diamond), an include cycle or an unreadable
        file (those two reported)."""
        # realpath, not Path.resolve(): a symlink loop is then an unreadable
        # file (ELOOP below), not a RuntimeError.
        key = Path(os.path.realpath(path))
        if key in self._stack:
            assert include_span is not None
            cycle = " -> ".join(p.name for p in [*self._stack, key][self._stack.index(key) :])
            self.sink.report(C.INCLUDE_CYCLE, include_span, f"include cycle: {cycle}")
            return None
        if key in self._included:
            return None  # included once already (a diamond, not a cycle)
        if text is None:
            try:
                text = self.read_file(path)
            except (OSError, UnicodeDecodeError, InputFileError) as e:
                if include_span is None:
                    include_span = Span(SourceFile(display, ""), 0, 0)
                code = C.INCLUDE_NOT_FOUND
                if isinstance(e, InputFileError):
                    reason = e.reason
                    if e.limit:
                        code = C.INPUT_FILE
                else:
                    reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
                hint = None
                missing = isinstance(e, FileNotFoundError) or (isinstance(e, InputFileError) and e.missing)
                if missing and include_span.file.text:  # an include, not the input
                    where = [include_span.file.name.rpartition("/")[0] or ".", *map(str, self.include_dirs)]
                    hint = f"looked in {', '.join(where)}" + ("" if self.include_dirs else "; -I DIR adds a directory")
                self.sink.report(code, include_span, f"cannot read '{display}': {reason}", hint=hint)
                return None
        self._included.add(key)
        self._expansion_limit_now += len(text) // EXPANSION_BYTES
        self.program.files.append(display)
        try:
            stable = path.relative_to(self._top_dir).as_posix()
        except ValueError:
            stable = path.name
        return SourceFile(display, text, printable_name(stable)), key

    def _load(self, path: Path, display: str, text: str | None, include_span: Span | None) -> list[s.Stmt] | None:
        opened = self._open(path, display, text, include_span)
        if opened is None:
            return None
        file, key = opened
        try:
            stmts = parse(file)
        except ParseError as e:
            self.sink.report(_PARSE_CODES.get(e.code, C.SYNTAX), e.span, e.message, hint=e.hint)
            return None
        # Expand includes in place, depth-first, so declarations keep file order.
        out: list[s.Stmt] = []
        self._stack.append(key)
        for st in stmts:
            if st.word == "include":
                sub = self._include(st, path, display)
                if sub:
                    out.extend(sub)
            else:
                out.append(st)
        self._stack.pop()
        return out

    def _include(self, st: s.Stmt, path: Path, display: str) -> list[s.Stmt] | None:
        """The statements of ``include "file";`` (its own includes expanded)."""
        try:
            a = Args(st, self.globals)
            name, span = a.string("a file name")
            a.end()
            if st.body is not None:
                _fail(C.SYNTAX, st.span, "'include' takes no block")
        except _Bad as b:
            self._report(b)
            return None
        if len(self._stack) >= MAX_INCLUDE_DEPTH:
            # Checked before reading: a chain of 1,000 includes is refused at
            # the first one too deep, with the chain so far cut short.
            self._report(
                _Bad(
                    C.INCLUDE_DEPTH,
                    span,
                    f"includes nested more than {MAX_INCLUDE_DEPTH} deep",
                    f"the outermost is {self._stack[0].name}",
                )
            )
            return None
        sub_path, sub_display = find_include(name, path.parent, str(Path(display).parent), self.include_dirs)
        return self._load(sub_path, sub_display, None, span)

    def _report(self, b: _Bad) -> None:
        uses = tuple(Note(f"in template '{name}', used here", span) for name, span in reversed(b.uses))
        self.sink.report(b.code, b.span, b.message, hint=b.hint, notes=b.notes + uses)

    def _guard(self, fn: Callable[[s.Stmt, Env], None], stmt: s.Stmt, env: Env) -> None:
        try:
            fn(stmt, env)
        except _Bad as b:
            self._report(b)

    def _collect_templates(self, stmts: list[s.Stmt]) -> None:
        for st in stmts:
            if st.word != "template":
                continue
            try:
                a = Args(st, self.globals)
                name, span = a.name("a template name")
                params: list[str] = []
                p = a.peek()
                if isinstance(p, s.TupleArg):
                    a.i += 1
                    for item in p.items:
                        if not (isinstance(item, s.Name) and len(item.parts) == 1):
                            _fail(C.SYNTAX, item.span, "template parameters are plain names")
                        params.append(item.parts[0])
                elif isinstance(p, s.Paren):
                    a.i += 1
                    if not (isinstance(p.inner, s.Name) and len(p.inner.parts) == 1):
                        _fail(C.SYNTAX, p.span, "template parameters are plain names")
                    params.append(p.inner.parts[0])
                a.end()
                if st.body is None:
                    _fail(C.SYNTAX, st.span, "a template needs a '{ ... }' body")
                if name in self.templates:
                    prev = self.templates[name].span
                    raise _Bad(
                        C.DUPLICATE_NAME,
                        span,
                        f"template '{name}' defined twice",
                        notes=(Note("first defined here", prev),),
                    )
                self.templates[name] = Template(name, tuple(params), st.body, span)
                self._mark_template(st.body)
            except _Bad as b:
                self._report(b)

    def _mark_template(self, body: tuple[s.Stmt, ...]) -> None:
        for st in body:
            self._templated.add(_span_key(st.word_span))
            for a in st.args:
                self._templated.add(_span_key(a.span))
            if st.body:
                self._mark_template(st.body)

    # ------------------------------------------------------------ expansion

    def _expand(self, stmts: tuple[s.Stmt, ...] | list[s.Stmt], env: Env) -> Iterator[tuple[s.Stmt, Env]]:
        """Yield the statements of a block with const/use/repeat/template handled."""
        for st in stmts:
            self._count(st)
            w = st.word
            if w == "template":
                if env is not self.globals:
                    self._report(_Bad(C.UNKNOWN_STATEMENT, st.word_span, "templates are defined at the top level"))
                continue
            if w == "const":
                try:
                    self._const(st, env)
                except _Bad as b:
                    self._report(b)
                continue
            if w == "use":
                try:
                    (tname, tbody), inner = self._use(st, env)
                except _Bad as b:
                    self._report(b)
                    continue
                if len(self._using) >= MAX_BLOCK_DEPTH:
                    self._report(
                        _Bad(C.NESTING_DEPTH, st.span, f"template uses nested more than {MAX_BLOCK_DEPTH} deep")
                    )
                    continue
                self._using.append(tname)
                _USE_SITES.append((tname, st.span))
                self._expanding.append(st.span)
                try:
                    yield from self._expand(tbody, inner)
                finally:
                    self._using.pop()
                    _USE_SITES.pop()
                    self._expanding.pop()
                continue
            if w == "repeat":
                try:
                    var, values, body = self._repeat(st, env)
                except _Bad as b:
                    self._report(b)
                    continue
                self._expanding.append(st.span)
                try:
                    for v in values:
                        self._count(st)
                        yield from self._expand(body, env.child({var: v} if var else {}))
                finally:
                    self._expanding.pop()
                continue
            if w == "include":
                self._report(
                    _Bad(C.UNKNOWN_STATEMENT, st.word_span, "'include' is allowed at the top level of a file only")
                )
                continue
            yield st, env

    def _count(self, st: s.Stmt, n: int = 1) -> None:
        """Count ``n`` more expanded statements (or listed values) against
        the limit. Past it, lowering stops: the error is final."""
        self._expanded += n
        if self._expanded > self._expansion_limit_now:
            # Reported at the outermost 'repeat' or 'use' being expanded: the
            # statement that multiplied, not wherever the count ran out.
            raise _Expansion(self._expanding[0] if self._expanding else st.span)

    def _const(self, st: s.Stmt, env: Env) -> None:
        a = Args(st, env)
        name, span = a.name("a constant name")
        a.punct("=")
        value, _ = a.number("the constant's value", lo=None)
        a.end()
        if name in env.values:
            _fail(C.DUPLICATE_NAME, span, f"constant '{name}' defined twice")
        env.values[name] = value
        if env is self.globals:
            self._globals_gen += 1

    def _use(self, st: s.Stmt, env: Env) -> tuple[tuple[str, tuple[s.Stmt, ...]], Env]:
        a = Args(st, env)
        name, span = a.name("a template name")
        t = self.templates.get(name)
        if t is None:
            if self.streaming:
                raise _Restart()  # it may be defined further down
            _fail(C.UNKNOWN_NAME, span, f"unknown template '{name}'", did_you_mean(name, self.templates))
        if name in self._using:
            _fail(C.TEMPLATE_RECURSION, span, f"template '{name}' uses itself")
        values: list[int] = []
        p = a.peek()
        if isinstance(p, s.TupleArg):
            a.i += 1
            values = [evaluate(x, env, "a template argument") for x in p.items]
        elif isinstance(p, s.Paren):
            a.i += 1
            values = [evaluate(p.inner, env, "a template argument")]
        a.end()
        if st.body is not None:
            _fail(C.SYNTAX, st.span, "'use' takes no block")
        if len(values) != len(t.params):
            raise _Bad(
                C.TEMPLATE_ARGS,
                st.span,
                f"template '{name}' takes {len(t.params)} argument(s), {len(values)} given",
                notes=(Note("defined here", t.span),),
            )
        # Lexical scope: a template body sees the globals and its parameters only.
        return (name, t.body), self.globals.child(dict(zip(t.params, values, strict=True)))

    def _repeat(self, st: s.Stmt, env: Env) -> tuple[str | None, range, tuple[s.Stmt, ...]]:
        a = Args(st, env)
        var: str | None = None
        split = _in_minus(a.args[1]) if a.peek_word() is not None and len(a.args) == 2 else None
        if split is not None:
            # "repeat i in -1..2" reads as "in - 1 .. 2" (a word may not be
            # followed by a minus sign otherwise): take it as "in" and "-1..2".
            a = Args(s.Stmt(st.word, st.word_span, (a.args[0], *split), st.body, st.span), env)
        if a.peek_word() is not None and len(a.args) >= 2 and isinstance(a.args[1], s.Name) and a.args[1].text == "in":
            var = a.word()[0]
            a.word("in")
            first, last, rspan = a.range("a range of values", lo=None)
            if last - first + 1 > MAX_REPEAT:
                _fail(C.REPEAT_SIZE, rspan, f"repeat over {last - first + 1} values (at most {MAX_REPEAT})")
            values = range(first, last + 1)
        else:
            count, cspan = a.number("a repeat count", lo=0)
            if count > MAX_REPEAT:
                _fail(C.REPEAT_SIZE, cspan, f"repeat count {count} is above {MAX_REPEAT}")
            values = range(count)
        a.end()
        if st.body is None:
            _fail(C.SYNTAX, st.span, "'repeat' needs a '{ ... }' body")
        return var, values, st.body

    # ------------------------------------------------------------ top level

    def _top(self, st: s.Stmt, env: Env) -> None:
        w = st.word
        a = Args(st, env)
        if isinstance(a.peek(), s.Punct) and cast(s.Punct, a.peek()).text == "=":
            self._controller(st, env)
            return
        if w == "platform":
            self._platform(st, env)
        elif w == "host-bridge":
            self.program.host_bridges.append(self._host_bridge(st, env))
        elif w == "policy":
            self.program.policies.append(self._policy(st, env))
        elif w == "apply":
            self._apply(st, env)
        elif w == "pe":
            self.program.pes.append(self._pe(st, env))
        elif w == "partition":
            self.program.partitions.append(self._partition(st, env))
        elif w == "unassigned":
            sels = self._selectors(a)
            self.program.unassigned.append(ast.UnassignedDecl(tuple(sels), st.span))
        elif w == "node":
            self.program.raw_nodes.append(self._raw_node(st, env, top=True))
        elif w in _PCI_WORDS:
            _fail(C.UNKNOWN_STATEMENT, st.word_span, f"'{w}' belongs inside a host bridge or bridge block")
        else:
            self._unknown(
                st,
                [
                    "platform",
                    "host-bridge",
                    "policy",
                    "apply",
                    "pe",
                    "partition",
                    "unassigned",
                    "node",
                    "const",
                    "template",
                    "use",
                    "repeat",
                    "include",
                ],
                "at the top level",
                "controllers are declared as 'NAME = msi-controller KIND ...'",
            )

    def _unknown(self, st: s.Stmt, allowed: list[str], where: str, extra: str | None = None) -> NoReturn:
        hint = did_you_mean(st.word, allowed) or extra
        _fail(C.UNKNOWN_STATEMENT, st.word_span, f"unknown statement '{st.word}' {where}", hint)

    def _block(self, st: s.Stmt, what: str) -> tuple[s.Stmt, ...]:
        if st.body is None:
            _fail(C.SYNTAX, Span(st.span.file, st.span.end - 1, st.span.end), f"{what} needs a '{{ ... }}' block")
        return st.body

    # ------------------------------------------------------------ platform

    def _platform(self, st: s.Stmt, env: Env) -> None:
        a = Args(st, env)
        name: str | None = None
        if not a.at_end():
            name = a.string("the platform's compatible string")[0]
        a.end()
        if self.program.platform is not None:
            raise _Bad(
                C.REPEATED_SETTING,
                st.word_span,
                "platform declared twice",
                notes=(Note("first declared here", self.program.platform.span),),
            )
        model: str | None = None
        compatible: tuple[str, ...] = (name,) if name else ()
        mode: ast.MsiModeDecl | None = None
        base: tuple[str, Span] | None = None
        acells, scells = 2, 2
        cpus: int | None = None
        prefix: tuple[str, Span] | None = None
        raw: list[ast.RawNode] = []
        seen = _Seen(self._templated)
        for sub, senv in self._expand(self._block(st, "'platform'"), env):
            try:
                b = Args(sub, senv)
                w = sub.word
                if w == "node":
                    raw.append(self._raw_node(sub, senv, top=True))
                    continue
                seen.once(w, sub.word_span)
                if w == "model":
                    model = b.string("the model name")[0]
                elif w == "compatible":
                    compatible = tuple(self._strings(b))
                elif w == "msi":
                    mode = self._msi_mode(sub, b, senv)
                    continue
                elif w == "base":
                    base = b.string("the base device tree file")
                elif w == "address-cells":
                    acells = b.number("#address-cells", 1, 2)[0]
                elif w == "size-cells":
                    scells = b.number("#size-cells", 1, 2)[0]
                elif w == "cpus":
                    cpus = b.number("the CPU count", 1, 1 << 16)[0]
                elif w == "stub-prefix":
                    prefix = b.string("the symbol prefix of the system stubs")
                else:
                    self._unknown(
                        sub,
                        [
                            "model",
                            "compatible",
                            "msi",
                            "base",
                            "address-cells",
                            "size-cells",
                            "cpus",
                            "stub-prefix",
                            "node",
                        ],
                        "in 'platform'",
                    )
                b.end()
                self._no_block(sub)
            except _Bad as e:
                self._report(e)
        self.program.platform = ast.PlatformDecl(
            name, model, compatible, mode, base, acells, scells, cpus, tuple(raw), st.span, prefix
        )

    def _no_block(self, st: s.Stmt) -> None:
        if st.body is not None:
            _fail(C.SYNTAX, st.span, f"'{st.word}' takes no '{{ ... }}' block")

    def _strings(self, a: Args) -> list[str]:
        out = [a.string("a string")[0]]
        while a.opt_punct(","):
            out.append(a.string("a string")[0])
        return out

    def _msi_mode(self, st: s.Stmt, a: Args, env: Env) -> ast.MsiModeDecl:
        kind, kspan = a.word("native", "firmware-composed", "hypervisor")
        flavour: str | None = None
        if kind == "hypervisor":
            flavour = a.word("papr")[0]
        elif kind == "firmware-composed":
            flavour = (a.opt_word("opal") or ("opal", kspan))[0]
        a.end()
        tokens: list[tuple[str, int, Span]] = []
        if st.body is not None:
            if kind == "native":
                _fail(C.SYNTAX, st.span, "'msi native' takes no block")
            allowed = (
                ["change-msi", "query-interrupt-source-number"]
                if kind == "hypervisor"
                else ["get-msi-32", "get-msi-64"]
            )
            seen = _Seen(self._templated)
            for sub, senv in self._expand(st.body, env):
                try:
                    if sub.word not in allowed:
                        self._unknown(sub, allowed, f"in 'msi {kind}'")
                    seen.once(sub.word, sub.word_span)
                    b = Args(sub, senv)
                    v, _ = b.number("a service token", 0, 0xFFFFFFFF)
                    b.end()
                    self._no_block(sub)
                    tokens.append((sub.word, v, sub.span))
                except _Bad as e:
                    self._report(e)
        mk = cast(ast.MsiModeKind, kind)
        return ast.MsiModeDecl(mk, flavour, tuple(tokens), st.span)

    # ------------------------------------------------------------ controllers

    def _controller(self, st: s.Stmt, env: Env) -> None:
        name = st.word
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            _fail(
                C.BAD_VALUE,
                st.word_span,
                f"'{name}' is not a valid controller name",
                "controller names become device-tree labels: letters, digits and '_'",
            )
        a = Args(st, env)
        a.punct("=")
        role_word, _ = a.word("interrupt-controller", "msi-controller")
        role: ast.ControllerRole = "interrupt" if role_word == "interrupt-controller" else "msi"
        kind, _ = a.word(what="the controller kind (e.g. gicv3, gicv3-its, fsl-msi, x86-apic, xics)")
        address: int | None = None
        size: int | None = None
        if a.opt_punct("@"):
            address = a.number("the controller's address", 0, (1 << 64) - 1)[0]
            if a.opt_word("size"):
                size = a.number("the register size", 1, 1 << 48)[0]
        a.end()
        parent: tuple[str, Span] | None = None
        from_base: tuple[str, Span] | None = None
        settings: list[tuple[str, tuple[int, ...], Span]] = []
        compatible: tuple[str, ...] = ()
        props: list[ast.RawProperty] = []
        seen = _Seen(self._templated)
        for sub, senv in self._expand(st.body or (), env):
            try:
                b = Args(sub, senv)
                w = sub.word
                self._no_block(sub)
                if w == "property":
                    props.append(self._raw_property(sub, senv))
                    continue
                seen.once(w, sub.word_span)
                if w == "parent":
                    parent = b.name("the parent controller")
                elif w == "from":
                    b.word("base")
                    from_base = b.string("a label or path in the base tree")
                elif w == "compatible":
                    compatible = tuple(self._strings(b))
                else:
                    values: list[int] = []
                    while not b.at_end():
                        if b.opt_punct("@") or b.opt_punct(",") or b.opt_word("size"):
                            continue
                        lo, hi, _ = b.range(f"a value for '{w}'", lo=None)
                        # 'cpus' is a CPU list like a partition's: every item a
                        # range (3 is 3..3), so 'cpus 0..3' is four CPUs, not {0, 3}.
                        ranged = w == "cpus" or isinstance(b.args[b.i - 1], s.RangeArg)
                        values.extend((lo, hi) if ranged else (lo,))
                    settings.append((w, tuple(values), sub.span))
                b.end()
            except _Bad as e:
                self._report(e)
        self.program.controllers.append(
            ast.ControllerDecl(
                name, role, kind, address, size, parent, from_base, tuple(settings), compatible, tuple(props), st.span
            )
        )

    # ------------------------------------------------------------ host bridges

    def _host_bridge(self, st: s.Stmt, env: Env) -> ast.HostBridgeDecl:
        a = Args(st, env)
        name, name_span = a.name("the host bridge's name")
        kind, _ = a.word("ecam", "papr", "opal")
        base = size = buid = None
        if kind == "opal":
            # PowerNV: the OPAL PHB id, then the PHB's register block.
            a.word("phbid")
            buid = a.number("the OPAL PHB id", 0, (1 << 64) - 1)[0]
            a.punct("@")
            base = a.number("the PHB register address", 0, (1 << 64) - 1)[0]
            a.word("size")
            size = a.number("the PHB register size", 1, 1 << 40)[0]
        elif kind == "ecam":
            a.punct("@")
            base = a.number("the ECAM base address", 0, (1 << 64) - 1)[0]
            a.word("size")
            size = a.number("the ECAM size", 1 << 20, 1 << 28)[0]
        else:
            a.word("buid")
            buid = a.number("the PHB's BUID", 0, (1 << 64) - 1)[0]
        a.end()
        compatible: tuple[str, ...] = ()
        domain = buses = msi_map_mask = msi_parent = pe_total = msi_ranges = None
        node_name: str | None = None
        windows: list[ast.WindowDecl] = []
        maps: list[ast.MsiMapDecl] = []
        intx: ast.IntxRouteDecl | None = None
        props: list[ast.RawProperty] = []
        children: list[ast.FunctionDecl] = []
        seen = _Seen(self._templated)
        for sub, senv in self._expand(self._block(st, "'host-bridge'"), env):
            try:
                w = sub.word
                b = Args(sub, senv)
                if w in _PCI_WORDS:
                    if w == "downstream":
                        _fail(C.UNKNOWN_STATEMENT, sub.word_span, "'downstream' ports belong inside a 'switch'")
                    children.append(self._function(sub, senv))
                    continue
                self._no_block(sub)
                if w == "property":
                    props.append(self._raw_property(sub, senv))
                    continue
                if w == "window":
                    windows.append(self._window(sub, b))
                    continue
                if w == "msi":
                    what, wspan = b.word("map", "map-mask", "parent")
                    if what == "map":
                        maps.append(self._msi_map(sub, b))
                    elif what == "map-mask":
                        seen.once("msi map-mask", wspan)
                        msi_map_mask = b.number("the msi-map-mask", 0, 0xFFFF)
                    else:
                        seen.once("msi parent", wspan)
                        msi_parent = b.name("the MSI controller")
                    b.end()
                    continue
                seen.once(w, sub.word_span)
                if w == "compatible":
                    compatible = tuple(self._strings(b))
                elif w == "domain":
                    domain = b.number("the PCI domain", 0, 0xFFFF)
                elif w == "buses":
                    lo, hi, sp = b.range("a bus range", 0, 0xFF)
                    buses = (lo, hi, sp)
                elif w == "intx":
                    intx = self._intx_route(sub, b)
                elif w == "pe-total-msi":
                    pe_total = b.number("ibm,pe-total-#msi", 0, 0xFFFFFFFF)
                elif w == "msi-ranges" and kind == "opal":
                    msi_ranges = b.range("the PHB's MSI hwirq range", 0, 0xFFFFFFFF)
                elif w == "name":
                    # A board's own node name (dtmsi import): QEMU's virt calls its
                    # high-ECAM bridge pcie@10000000 after the legacy window.
                    node_name = b.string("the device-tree node name")[0]
                    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9,._+-]{0,30}(@[A-Za-z0-9,._+-]{1,30})?", node_name):
                        _fail(C.BAD_VALUE, sub.args[0].span, f"'{node_name}' is not a valid node name")
                else:
                    self._unknown(
                        sub,
                        [
                            "compatible",
                            "domain",
                            "buses",
                            "window",
                            "msi",
                            "intx",
                            "pe-total-msi",
                            "msi-ranges",
                            "name",
                            "property",
                            *_PCI_WORDS,
                        ],
                        "in 'host-bridge'",
                    )
                b.end()
            except _Bad as e:
                self._report(e)
        return ast.HostBridgeDecl(
            name,
            name_span,
            cast(Literal["ecam", "papr", "opal"], kind),
            base,
            size,
            buid,
            compatible,
            domain,
            buses,
            tuple(windows),
            tuple(maps),
            msi_map_mask,
            msi_parent,
            intx,
            pe_total,
            tuple(props),
            tuple(children),
            st.span,
            msi_ranges,
            node_name,
        )

    def _window(self, st: s.Stmt, a: Args) -> ast.WindowDecl:
        kind, _ = a.word("io", "mem32", "mem64")
        pref = a.opt_word("prefetchable") is not None
        if pref and kind == "io":
            _fail(C.BAD_VALUE, st.span, "I/O windows cannot be prefetchable")
        a.word("cpu")
        cpu = a.number("the CPU address", 0, (1 << 64) - 1)[0]
        pci = cpu
        if a.opt_word("pci"):
            pci = a.number("the PCI address", 0, (1 << 64) - 1)[0]
        a.word("size")
        size = a.number("the window size", 1, 1 << 60)[0]
        a.end()
        return ast.WindowDecl(cast(ast.WindowKind, kind), pref, cpu, pci, size, st.span)

    def _msi_map(self, st: s.Stmt, a: Args) -> ast.MsiMapDecl:
        a.word("rid")
        lo, hi, _ = a.range("a requester ID range", 0, 0xFFFF)
        a.punct("->")
        target_arg = a.next("the MSI controller")
        offset = 0
        explicit: int | None = None
        if isinstance(target_arg, s.BinOp) and target_arg.op in ("+", "-") and isinstance(target_arg.left, s.Name):
            target, tspan = target_arg.left.text, target_arg.left.span
            offset = evaluate(target_arg.right, a.env, "a DeviceID offset")
            if target_arg.op == "-":
                offset = -offset
        elif isinstance(target_arg, s.Name) and len(target_arg.parts) == 1:
            target, tspan = target_arg.parts[0], target_arg.span
        else:
            _fail(C.SYNTAX, target_arg.span, "expected an MSI controller name, optionally '+ offset'")
        if a.opt_word("base"):
            explicit = a.number("the first DeviceID", 0, 0xFFFFFFFF)[0]
        a.end()
        msi_base = explicit if explicit is not None else lo + offset
        if msi_base < 0:
            _fail(C.NUMBER_RANGE, st.span, f"DeviceID {msi_base} would be negative")
        return ast.MsiMapDecl(lo, hi, target, tspan, msi_base, st.span)

    def _intx_route(self, st: s.Stmt, a: Args) -> ast.IntxRouteDecl:
        a.punct("->")
        ctrl, cspan = a.name("the interrupt controller")
        kind, _ = a.word("spi", "irq", what="'spi' (GIC) or 'irq'")
        first, last, rspan = a.range("interrupt numbers", 0, 0xFFFFFFFF)
        if last - first + 1 not in (1, 4):
            _fail(C.BAD_VALUE, rspan, "INTx routes take 4 consecutive interrupts (one per pin) or a single shared one")
        trig = "level"
        swizzle = True
        while not a.at_end():
            opt, _ = a.word("level", "edge", "no-swizzle")
            if opt == "no-swizzle":
                swizzle = False
            else:
                trig = opt
        return ast.IntxRouteDecl(ctrl, cspan, kind, first, last, cast(Literal["level", "edge"], trig), swizzle, st.span)

    # ------------------------------------------------------------ functions

    def _devfn(self, a: Args, ari: bool = False) -> tuple[int, int, Span]:
        a.punct("@")
        arg = a.next("a dev.fn address such as 01.0")
        if isinstance(arg, s.DevFnArg):
            return arg.device, arg.function, arg.span
        if isinstance(arg, s.TupleArg) and len(arg.items) == 2:
            return (
                evaluate(arg.items[0], a.env, "a device number"),
                evaluate(arg.items[1], a.env, "a function number"),
                arg.span,
            )
        _fail(C.SYNTAX, arg.span, f"expected a dev.fn address such as 01.0 or (dev, fn), found {_describe(arg)}")

    def _function(self, st: s.Stmt, env: Env) -> ast.FunctionDecl:
        kind = _PCI_WORDS[st.word]
        a = Args(st, env)
        name, name_span = a.name("the function's name")
        dev, fn, dspan = self._devfn(a)
        a.end()
        vendor = device_id = class_code = None
        revision = 0
        subsystem: tuple[int, int] | None = None
        bars: list[ast.BarDecl] = []
        msi: ast.MsiCapDecl | None = None
        msix: ast.MsixCapDecl | None = None
        intx = 0
        intx_span: Span | None = None
        policy: tuple[str, Span] | None = None
        sriov: ast.SriovDecl | None = None
        ari = False
        pcie = kind != "pci-bridge"
        bus: tuple[int, Span] | None = None
        node_name: str | None = None
        props: list[ast.RawProperty] = []
        children: list[ast.FunctionDecl] = []
        quirks: list[str] = []
        seen = _Seen(self._templated)
        is_bridge = kind in ast.BRIDGE_KINDS
        for sub, senv in self._expand(st.body or (), env):
            try:
                w = sub.word
                b = Args(sub, senv)
                if w in _PCI_WORDS:
                    if not is_bridge:
                        _fail(
                            C.UNKNOWN_STATEMENT,
                            sub.word_span,
                            f"an endpoint cannot contain '{w}'",
                            "only bridges (root-port, switch, downstream, pci-bridge, pcie-to-pci-bridge) "
                            "have a bus below them",
                        )
                    if kind == "switch" and w != "downstream":
                        _fail(C.UNKNOWN_STATEMENT, sub.word_span, "a switch contains 'downstream' ports only")
                    if w == "downstream" and kind != "switch":
                        _fail(C.UNKNOWN_STATEMENT, sub.word_span, "'downstream' ports belong inside a 'switch'")
                    children.append(self._function(sub, senv))
                    continue
                if w == "sriov":
                    seen.once(w, sub.word_span)
                    b.end()
                    sriov = self._sriov(sub, senv)
                    continue
                self._no_block(sub)
                if w == "property":
                    props.append(self._raw_property(sub, senv))
                    continue
                if w == "bar":
                    bars.append(self._memo(sub, senv, functools.partial(self._bar, sub, b)))
                    continue
                if w == "quirk":
                    while True:
                        q, _ = b.word(*QUIRKS, what="a quirk: " + ", ".join(QUIRKS))
                        if q not in quirks:
                            quirks.append(q)
                        if not b.opt_punct(","):
                            break
                    b.end()
                    continue
                if w == "id":
                    seen.once(w, sub.word_span)
                    ids = self._memo(sub, senv, functools.partial(self._ids, b))
                    vendor, device_id = ids[0], ids[1]
                    for extra, espan, value in ids[2]:
                        seen.once(extra, espan)
                        if extra == "class":
                            class_code = value
                        else:
                            revision = value
                    continue
                if w in ("msi", "msix", "intx", "subsystem"):
                    # Parsed once per template statement (and its arguments),
                    # however many functions use the template.
                    seen.once(w, sub.word_span)
                    got = self._memo(sub, senv, functools.partial(self._capability_statement, w, sub, b))
                    if isinstance(got, ast.MsiCapDecl):
                        msi = got
                    elif isinstance(got, ast.MsixCapDecl):
                        msix = got
                    elif w == "intx":
                        intx, intx_span = cast(tuple[int, Span], got)
                    else:
                        subsystem = cast(tuple[int, int], got)
                    continue
                seen.once(w, sub.word_span)
                if w == "class":
                    class_code = b.number("the class code", 0, 0xFFFFFF)[0]
                elif w == "revision":
                    revision = b.number("the revision ID", 0, 0xFF)[0]
                elif w == "policy":
                    policy = b.name("a policy name")
                elif w == "ari":
                    ari = True
                elif w == "pcie":
                    pcie = True
                elif w == "conventional":
                    pcie = False
                elif w == "bus":
                    if not is_bridge:
                        _fail(C.UNKNOWN_STATEMENT, sub.word_span, "only bridges have a secondary bus to pin")
                    bus = b.number("the secondary bus number", 1, 0xFF)
                elif w == "name":
                    node_name = b.string("the device-tree node name")[0]
                    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9,._+-]{0,30}", node_name):
                        _fail(C.BAD_VALUE, sub.args[0].span, f"'{node_name}' is not a valid node name")
                else:
                    self._unknown(
                        sub,
                        [
                            "id",
                            "class",
                            "revision",
                            "subsystem",
                            "bar",
                            "msi",
                            "msix",
                            "intx",
                            "policy",
                            "sriov",
                            "ari",
                            "pcie",
                            "conventional",
                            "bus",
                            "name",
                            "property",
                            "quirk",
                            *(_PCI_WORDS if is_bridge else ()),
                        ],
                        f"in '{st.word}'",
                    )
                b.end()
            except _Bad as e:
                self._report(e)
        return ast.FunctionDecl(
            kind,
            name,
            name_span,
            dev,
            fn,
            dspan,
            vendor,
            device_id,
            class_code,
            revision,
            subsystem,
            tuple(bars),
            msi,
            msix,
            intx,
            intx_span,
            policy,
            sriov,
            ari,
            pcie,
            bus,
            node_name,
            tuple(props),
            tuple(children),
            st.span,
            tuple(quirks),
        )

    def _memo(self, st: s.Stmt, env: Env, make: Callable[[], _T]) -> _T:
        """``make()`` for a statement of a template body (or a top-level
        repeat), remembered by the statement and its environment's values: a
        template used by 10k functions is parsed once per distinct use, not
        10k times. Only complete results are kept (an error is raised again,
        and reported once, on every use)."""
        if env.parent is not self.globals:
            return make()
        key = (id(st), tuple(env.values.items()), self._globals_gen)
        got = self._memos.get(key, _UNSET)
        if got is _UNSET:
            got = make()
            self._memos[key] = got
        return cast(_T, got)

    def _ids(self, b: Args) -> tuple[int, int, tuple[tuple[str, Span, int], ...]]:
        """``id VVVV:DDDD [class C] [revision R]``: the IDs and the extras, each with its span."""
        arg = b.next("vendor:device, such as 8086:10d3")
        if not isinstance(arg, s.IdPairArg):
            _fail(C.SYNTAX, arg.span, f"expected vendor:device such as 8086:10d3, found {_describe(arg)}")
        extras: list[tuple[str, Span, int]] = []
        while not b.at_end():
            extra, espan = b.word("class", "revision")
            if extra == "class":
                extras.append((extra, espan, b.number("the class code", 0, 0xFFFFFF)[0]))
            else:
                extras.append((extra, espan, b.number("the revision ID", 0, 0xFF)[0]))
        return arg.vendor, arg.device, tuple(extras)

    def _capability_statement(
        self, w: str, st: s.Stmt, b: Args
    ) -> ast.MsiCapDecl | ast.MsixCapDecl | tuple[int, Span] | tuple[int, int]:
        """msi, msix, intx or subsystem, parsed and checked to its end."""
        out: ast.MsiCapDecl | ast.MsixCapDecl | tuple[int, Span] | tuple[int, int]
        if w == "msi":
            out = self._msi_cap(st, b)
        elif w == "msix":
            out = self._msix_cap(st, b)
        elif w == "intx":
            pin, span = b.word(*_INTX_PINS, what="an INTx pin: A, B, C, D or none")
            out = (_INTX_PINS[pin], span)
        else:
            arg = b.next("subsystem vendor:device")
            if not isinstance(arg, s.IdPairArg):
                _fail(C.SYNTAX, arg.span, f"expected vendor:device, found {_describe(arg)}")
            out = (arg.vendor, arg.device)
        b.end()
        return out

    def _bar(self, st: s.Stmt, a: Args) -> ast.BarDecl:
        index, _ = a.number("the BAR index", None, None)
        kind, _ = a.word("io", "mem32", "mem64")
        pref = a.opt_word("prefetchable") is not None
        if pref and kind == "io":
            _fail(C.BAD_VALUE, st.span, "I/O BARs cannot be prefetchable")
        size, _ = a.number("the BAR size", 1, 1 << 60)
        fixed: int | None = None
        if a.opt_punct("@"):
            fixed = a.number("the BAR's PCI address", 0, (1 << 64) - 1)[0]
        a.end()
        return ast.BarDecl(index, cast(ast.BarKind, kind), pref, size, fixed, st.span)

    def _msi_cap(self, st: s.Stmt, a: Args) -> ast.MsiCapDecl:
        vectors, _ = a.number("the MSI vector count", 0, None)
        is64 = maskable = False
        while not a.at_end() and not a.at_punct("@"):
            flag, _ = a.word("addr64", "maskable")
            if flag == "addr64":
                is64 = True
            else:
                maskable = True
        return ast.MsiCapDecl(vectors, is64, maskable, st.span, self._cap_offset(a))

    def _msix_cap(self, st: s.Stmt, a: Args) -> ast.MsixCapDecl:
        size, _ = a.number("the MSI-X table size", 0, None)
        a.word("table")
        tbir, toff = self._bar_offset(a)
        a.word("pba")
        pbir, poff = self._bar_offset(a)
        return ast.MsixCapDecl(size, tbir, toff, pbir, poff, st.span, self._cap_offset(a))

    @staticmethod
    def _cap_offset(a: Args) -> tuple[int, Span] | None:
        """``@ 0xd0``: where the capability sits in config space (checked by the stubs)."""
        if not a.opt_punct("@"):
            return None
        value, span = a.number("the capability's offset in config space", 0, 0xFFF)
        return value, span

    def _bar_offset(self, a: Args) -> tuple[int, int]:
        a.word("bar")
        arg = a.next("a BAR index and offset: bar N + OFFSET")
        bir, off = _split_plus(arg, a.env, "a BAR index")
        if a.opt_word("offset"):
            off += a.number("an offset", 0, None)[0]
        return bir, off

    def _sriov(self, st: s.Stmt, env: Env) -> ast.SriovDecl:
        total = None
        num = 0
        offset, stride = 1, 1
        vf_device: int | None = None
        bars: list[ast.BarDecl] = []
        msi = msix = None
        policy: tuple[str, Span] | None = None
        seen = _Seen(self._templated)
        for sub, senv in self._expand(self._block(st, "'sriov'"), env):
            try:
                b = Args(sub, senv)
                w = sub.word
                self._no_block(sub)
                if w == "bar":
                    bars.append(self._bar(sub, b))
                    continue
                seen.once(w, sub.word_span)
                if w == "total-vfs":
                    total = b.number("TotalVFs", 1, 0xFFFF)[0]
                elif w == "vfs":
                    num = b.number("NumVFs", 0, 0xFFFF)[0]
                elif w == "offset":
                    offset = b.number("First VF Offset", 1, 0xFFFF)[0]
                elif w == "stride":
                    stride = b.number("VF Stride", 0, 0xFFFF)[0]
                elif w == "vf-id":
                    vf_device = b.number("the VF device ID", 0, 0xFFFF)[0]
                elif w == "msi":
                    msi = self._msi_cap(sub, b)
                elif w == "msix":
                    msix = self._msix_cap(sub, b)
                elif w == "policy":
                    policy = b.name("a policy name")
                else:
                    self._unknown(
                        sub,
                        ["total-vfs", "vfs", "offset", "stride", "vf-id", "bar", "msi", "msix", "policy"],
                        "in 'sriov'",
                    )
                b.end()
            except _Bad as e:
                self._report(e)
        if total is None:
            _fail(C.MISSING_SETTING, st.word_span, "'sriov' needs 'total-vfs N;'")
        if num > total:
            _fail(C.NUMBER_RANGE, st.span, f"vfs {num} exceeds total-vfs {total}")
        if num > 1 and stride == 0:
            _fail(C.NUMBER_RANGE, st.span, "VF Stride 0 gives every VF the same requester ID")
        return ast.SriovDecl(total, num, offset, stride, vf_device, tuple(bars), msi, msix, policy, st.span)

    # ------------------------------------------------------------ policies, PEs, partitions

    def _policy(self, st: s.Stmt, env: Env) -> ast.PolicyDecl:
        a = Args(st, env)
        name, _ = a.name("the policy's name")
        a.end()
        prefer: list[tuple[ast.Mechanism, Span]] = []
        vectors: ast.VectorsDecl | None = None
        vectors_for: list[tuple[Literal["msix", "msi"], ast.VectorsDecl]] = []
        up_front = False
        on_short = "degrade"
        on_short_span: Span | None = None
        seen = _Seen(self._templated)
        for sub, senv in self._expand(self._block(st, "'policy'"), env):
            try:
                b = Args(sub, senv)
                w = sub.word
                self._no_block(sub)
                for_mech = b.peek_word() if w == "vectors" else None
                if for_mech not in ("msix", "msi"):
                    for_mech = None
                seen.once(f"{w} {for_mech}" if for_mech else w, sub.word_span)
                if w == "prefer":
                    while True:
                        m, mspan = b.word("msix", "msi", "intx")
                        if any(p[0] == m for p in prefer):
                            _fail(C.REPEATED_SETTING, mspan, f"'{m}' listed twice")
                        prefer.append((cast(ast.Mechanism, m), mspan))
                        if not b.opt_punct(","):
                            break
                elif w == "vectors" and for_mech is not None:
                    b.word("msix", "msi")
                    vectors_for.append((cast(Literal["msix", "msi"], for_mech), self._vectors(sub, b)))
                elif w == "vectors":
                    vectors = self._vectors(sub, b)
                elif w == "up-front":
                    up_front = True
                elif w == "on-short":
                    on_short, on_short_span = b.word("degrade", "fallback", "fail")
                else:
                    self._unknown(sub, ["prefer", "vectors", "up-front", "on-short"], "in 'policy'")
                b.end()
            except _Bad as e:
                self._report(e)
        return ast.PolicyDecl(
            name,
            tuple(prefer),
            vectors,
            up_front,
            cast(Literal["degrade", "fallback", "fail"], on_short),
            on_short_span,
            st.span,
            tuple(vectors_for),
        )

    def _vectors(self, st: s.Stmt, a: Args) -> ast.VectorsDecl:
        arg = a.next("a vector count: requested, N, cpus, cpus + N or MIN..MAX")
        base: Literal["requested", "count", "cpus"]
        maximum: int | None = None
        scale = 0
        if isinstance(arg, s.Name) and arg.text == "requested":
            base, count = "requested", 0
        elif isinstance(arg, s.RangeArg):
            base = "count"
            count = evaluate(arg.lo, a.env, "a number")
            maximum = evaluate(arg.hi, a.env, "a number")
            if count < 1 or maximum < count:
                _fail(C.BAD_RANGE, arg.span, f"vector range {count}..{maximum} must satisfy 1 <= min <= max")
        else:
            # A linear expression in the partition's CPU count: 2 * cpus + 1.
            scale, count = _linear_in_cpus(arg, a.env)
            base = "cpus" if scale else "count"
            if scale < 0:
                _fail(C.BAD_VALUE, arg.span, "the vector count cannot fall as CPUs are added")
            if not scale and count < 1:
                _fail(C.NUMBER_RANGE, arg.span, "a function needs at least 1 vector")
        minimum: int | None = count if maximum is not None else None
        if a.opt_word("min"):
            minimum, _mspan = a.number("the minimum vector count", 1, 2048)
        a.end()
        return ast.VectorsDecl(base, count, maximum, minimum, st.span, scale)

    def _apply(self, st: s.Stmt, env: Env) -> None:
        a = Args(st, env)
        policy, pspan = a.name("a policy name")
        a.word("to")
        a.word("class")
        code, _ = a.number("a class code", 0, 0xFFFFFF)
        mask = 0xFFFFFF
        if a.opt_word("mask"):
            mask = a.number("a class mask", 0, 0xFFFFFF)[0]
        a.end()
        self._no_block(st)
        self.program.applies.append(ast.ApplyDecl(policy, pspan, code, mask, st.span))

    def _selectors(self, a: Args) -> list[ast.Selector]:
        out: list[ast.Selector] = []
        while True:
            start = a.peek()
            if a.opt_word("pe"):
                name, span = a.name("a PE name")
                out.append(
                    ast.Selector(
                        (name,), False, None, True, Span(span.file, start.span.start if start else span.start, span.end)
                    )
                )
            else:
                arg = a.next("a function, 'NAME.*' or 'pe NAME'")
                if not isinstance(arg, s.Name):
                    _fail(C.SYNTAX, arg.span, f"expected a function name, found {_describe(arg)}")
                path = arg.parts
                span = arg.span
                subtree = False
                vfs: tuple[int, int] | None = None
                nxt = a.peek()
                if isinstance(nxt, s.Punct) and nxt.text == ".*":
                    a.i += 1
                    subtree = True
                    span = Span(span.file, span.start, nxt.span.end)
                elif isinstance(nxt, s.IndexArg) and path[-1] == "vf" and len(path) >= 2:
                    a.i += 1
                    lo = evaluate(nxt.lo, a.env, "a VF index")
                    hi = evaluate(nxt.hi, a.env, "a VF index") if nxt.hi is not None else lo
                    if hi < lo or lo < 0:
                        _fail(C.BAD_RANGE, nxt.span, f"VF range [{lo}..{hi}] is empty or negative")
                    vfs = (lo, hi)
                    path = path[:-1]
                    span = Span(span.file, span.start, nxt.span.end)
                out.append(ast.Selector(tuple(path), subtree, vfs, False, span))
            if not a.opt_punct(","):
                break
        a.end()
        return out

    def _pe(self, st: s.Stmt, env: Env) -> ast.PeDecl:
        a = Args(st, env)
        name, _ = a.name("the PE's name")
        a.end()
        members: list[ast.Selector] = []
        total: tuple[int, Span] | None = None
        for sub, senv in self._expand(self._block(st, "'pe'"), env):
            try:
                b = Args(sub, senv)
                self._no_block(sub)
                if sub.word == "owns":
                    members.extend(self._selectors(b))
                elif sub.word == "total-msi":
                    total = b.number("the PE's MSI total", 0, 0xFFFFFFFF)
                    b.end()
                else:
                    self._unknown(sub, ["owns", "total-msi"], "in 'pe'")
            except _Bad as e:
                self._report(e)
        return ast.PeDecl(name, tuple(members), total, st.span)

    def _partition(self, st: s.Stmt, env: Env) -> ast.PartitionDecl:
        a = Args(st, env)
        name, _ = a.name("the partition's name")
        a.end()
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name):
            _fail(C.BAD_VALUE, st.span, f"'{name}' cannot name output files")
        cpus: list[int] = []
        owns: list[ast.Selector] = []
        budget: tuple[int, Span] | None = None
        prefix: tuple[str, Span] | None = None
        seen = _Seen(self._templated)
        for sub, senv in self._expand(self._block(st, "'partition'"), env):
            try:
                b = Args(sub, senv)
                self._no_block(sub)
                w = sub.word
                if w == "owns":
                    owns.extend(self._selectors(b))
                    continue
                seen.once(w, sub.word_span)
                if w == "cpus":
                    while True:
                        lo, hi, cspan = b.range("CPU numbers", 0, 0xFFFF)
                        if len(cpus) + hi - lo + 1 > MAX_CPU_LIST:
                            _fail(C.REPEAT_SIZE, cspan, f"'cpus' lists more than {MAX_CPU_LIST} CPU numbers")
                        self._count(sub, hi - lo + 1)
                        cpus.extend(range(lo, hi + 1))
                        if not b.opt_punct(","):
                            break
                elif w == "msi-budget":
                    budget = b.number("the MSI budget", 0, 0xFFFFFFFF)
                elif w == "stub-prefix":
                    prefix = b.string("the symbol prefix of the partition's stubs")
                else:
                    self._unknown(sub, ["cpus", "owns", "msi-budget", "stub-prefix"], "in 'partition'")
                b.end()
            except _Bad as e:
                self._report(e)
        return ast.PartitionDecl(name, tuple(cpus), tuple(owns), budget, st.span, prefix)

    # ------------------------------------------------------------ raw nodes

    def _raw_node(self, st: s.Stmt, env: Env, top: bool) -> ast.RawNode:
        a = Args(st, env)
        label: str | None = None
        first = a.peek()
        if isinstance(first, s.Name) and len(a.args) > 1:
            label, lspan = a.name("a label")
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", label):
                _fail(
                    C.BAD_VALUE,
                    lspan,
                    f"'{label}' is not a valid device-tree label",
                    "labels are letters, digits and '_', not starting with a digit",
                )
        path, pspan = a.string("the node's path" if top else "the node's name")
        a.end()
        if top and not path.startswith("/"):
            _fail(C.BAD_VALUE, pspan, f"'{path}' is not an absolute node path", 'write it like "/chosen"')
        if not top and "/" in path:
            _fail(C.BAD_VALUE, pspan, "a nested node takes a plain name, not a path")
        props: list[ast.RawProperty] = []
        children: list[ast.RawNode] = []
        for sub, senv in self._expand(self._block(st, "'node'"), env):
            try:
                if sub.word == "property":
                    props.append(self._raw_property(sub, senv))
                elif sub.word == "node":
                    children.append(self._raw_node(sub, senv, top=False))
                else:
                    self._unknown(sub, ["property", "node"], "in 'node'")
            except _Bad as e:
                self._report(e)
        return ast.RawNode(path, label, tuple(props), tuple(children), st.span)

    def _raw_property(self, st: s.Stmt, env: Env) -> ast.RawProperty:
        """``property "name" = 1 2 &x, "str", bytes "0a0b";`` or ``property "flag";``."""
        a = Args(st, env)
        name, _ = a.string("the property's name")
        if not re.fullmatch(r"[A-Za-z0-9,._+?#-]{1,31}", name):
            _fail(C.BAD_VALUE, st.args[0].span, f"'{name}' is not a valid property name")
        chunks: list[ast.RawChunk] = []
        if a.opt_punct("="):
            cells: list[int | str] = []
            bits = 32
            while not a.at_end():
                arg = a.peek()
                assert arg is not None
                if isinstance(arg, s.Punct) and arg.text == ",":
                    a.i += 1
                    if cells:
                        chunks.append(ast.RawCells(tuple(cells), bits))
                        cells, bits = [], 32
                    continue
                if isinstance(arg, s.StrArg):
                    a.i += 1
                    if cells:
                        _fail(C.SYNTAX, arg.span, "separate strings from cells with ','")
                    chunks.append(ast.RawString(arg.text))
                    continue
                if isinstance(arg, s.Name) and arg.text == "bytes":
                    a.i += 1
                    text, bspan = a.string('hex bytes such as "0a1b2c"')
                    try:
                        chunks.append(ast.RawBytes(bytes.fromhex(text)))
                    except ValueError:
                        _fail(C.BAD_VALUE, bspan, f"'{text}' is not a string of hex bytes")
                    continue
                if isinstance(arg, s.Name) and arg.text == "bits" and not cells:
                    a.i += 1
                    bits = a.number("a cell width", 8, 64)[0]
                    if bits not in (8, 16, 32, 64):
                        _fail(C.BAD_VALUE, st.span, "cell width must be 8, 16, 32 or 64")
                    continue
                if isinstance(arg, s.Name) and len(arg.parts) == 1 and env.lookup(arg.parts[0]) is None:
                    a.i += 1
                    cells.append(arg.parts[0])  # a reference to a declared name
                    continue
                v, vspan = a.number("a cell value", None, None)
                if v < 0:
                    v &= (1 << bits) - 1
                if v >= 1 << bits:
                    _fail(C.NUMBER_RANGE, vspan, f"{v:#x} does not fit in {bits} bits")
                cells.append(v)
            if cells:
                chunks.append(ast.RawCells(tuple(cells), bits))
        a.end()
        return ast.RawProperty(name, tuple(chunks), st.span)


def lower(
    path: Path,
    display: str,
    sink: DiagnosticSink,
    text: str | None = None,
    read_file: Callable[[Path], str] | None = None,
    include_dirs: tuple[Path, ...] = (),
) -> ast.Program:
    """Read, parse and lower one top-level file (and everything it includes)."""

    def default_read(p: Path) -> str:
        return read_input_text(p)

    return Lowerer(sink, read_file or default_read, include_dirs).lower_file(path, display, text)
