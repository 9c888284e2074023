"""The syntax tree: what the parser builds, one frozen dataclass per phrase.

The grammar has a single statement shape (``WORD arg* ;`` or ``WORD arg* {...}``);
``lower.py`` gives each statement its meaning. Every node carries its span.
"""

from __future__ import annotations

from dataclasses import dataclass

from dtmsi.source import Span


@dataclass(frozen=True, slots=True)
class Num:
    value: int
    span: Span


@dataclass(frozen=True, slots=True)
class Name:
    """A word or dotted path (``pcie0.rp0``); a keyword or a reference."""

    parts: tuple[str, ...]
    span: Span

    @property
    def text(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True, slots=True)
class BinOp:
    op: str
    left: Expr
    right: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class UnOp:
    op: str
    operand: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Paren:
    inner: Expr
    span: Span


Expr = Num | Name | BinOp | UnOp | Paren


@dataclass(frozen=True, slots=True)
class RangeArg:
    lo: Expr
    hi: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class StrArg:
    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class DevFnArg:
    device: int
    function: int
    span: Span


@dataclass(frozen=True, slots=True)
class IdPairArg:
    vendor: int
    device: int
    span: Span


@dataclass(frozen=True, slots=True)
class Punct:
    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class IndexArg:
    lo: Expr
    hi: Expr | None
    span: Span


@dataclass(frozen=True, slots=True)
class TupleArg:
    """``(a, b, ...)``: template arguments and computed ``@ (dev, fn)`` addresses."""

    items: tuple[Expr, ...]
    span: Span


Arg = TupleArg | Num | Name | BinOp | UnOp | Paren | RangeArg | StrArg | DevFnArg | IdPairArg | Punct | IndexArg


@dataclass(frozen=True, slots=True)
class Stmt:
    word: str
    word_span: Span
    args: tuple[Arg, ...]
    body: tuple[Stmt, ...] | None
    span: Span
