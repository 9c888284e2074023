"""Names from the .msi file as identifiers, comments and string literals of the
generated C and Python.

One mangling function turns a name into an identifier and refuses keywords;
collisions are found by :class:`Namespace`. The escaping functions make sure
no input can end a comment, a string or a block of the generated code: what
they return is printable ASCII with the dangerous characters spelled out.
"""

from __future__ import annotations

import keyword
import re

# C11 keywords, C23 additions, C++17 keywords (the header is included from
# C++), and macros of <stdint.h>/<stddef.h> a name must not shadow.
_C_WORDS = """
    auto break case char const continue default do double else enum extern float for goto if inline int long
    register restrict return short signed sizeof static struct switch typedef union unsigned void volatile while
    _Alignas _Alignof _Atomic _Bool _Complex _Generic _Imaginary _Noreturn _Static_assert _Thread_local
    alignas alignof bool constexpr false nullptr static_assert thread_local true typeof typeof_unqual
    and and_eq asm bitand bitor catch char8_t char16_t char32_t class compl concept consteval constinit
    const_cast co_await co_return co_yield decltype delete dynamic_cast explicit export friend mutable namespace
    new noexcept not not_eq operator or or_eq private protected public reinterpret_cast requires static_cast
    template this throw try typeid typename using virtual wchar_t xor xor_eq
    NULL offsetof size_t ptrdiff_t int8_t int16_t int32_t int64_t uint8_t uint16_t uint32_t uint64_t
    intptr_t uintptr_t
"""
C_KEYWORDS = frozenset(_C_WORDS.split())
# Soft keywords of newer Pythons too ("type" is one from 3.12), so the output
# does not depend on which Python ran the compiler.
PYTHON_KEYWORDS = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | {"match", "case", "type", "_"}

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class IdentifierError(ValueError):
    """A name that cannot become an identifier; the message says why."""


def mangle(name: str) -> str:
    """``name`` as a C and Python identifier: every character outside
    ``[A-Za-z0-9_]`` becomes ``_``, a leading digit gets a ``_`` before it.

    Refuses what no spelling fixes: an empty result, a C, C++ or Python
    keyword, and identifiers C reserves (a leading ``__`` or ``_`` + capital).
    """
    out = re.sub(r"[^A-Za-z0-9_]", "_", name)
    if out and out[0].isdigit():
        out = "_" + out
    if not out or set(out) == {"_"}:
        raise IdentifierError(f"'{printable(name)}' has no letters or digits to make an identifier of")
    if out in C_KEYWORDS or out in PYTHON_KEYWORDS:
        raise IdentifierError(f"'{out}' is a C, C++ or Python keyword")
    if out.startswith("__") or (out[0] == "_" and out[1:2].isupper()):
        raise IdentifierError(f"'{out}' is reserved in C (leading '__' or '_' and a capital)")
    assert _IDENT.fullmatch(out)
    return out


class Namespace:
    """Identifiers handed out in one scope: a second name that mangles to an
    identifier already taken (ignoring case, since macros are upper-cased)
    is a collision, and :meth:`take` says with which name."""

    def __init__(self) -> None:
        self._taken: dict[str, str] = {}

    def take(self, name: str) -> str:
        ident = mangle(name)
        key = ident.upper()
        prev = self._taken.get(key)
        if prev is not None and prev != name:
            raise IdentifierError(f"'{printable(name)}' and '{printable(prev)}' both become '{ident}'")
        self._taken[key] = name
        return ident


# Text that every escaper below returns unchanged (the common case, checked fast).
_PLAIN = re.compile(r"[A-Za-z0-9_ .,:;=+@#%&|~^()\[\]{}<>$!'-]*")
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_ .,:;=+@#%&|~^()\[\]{}<>$!'/-]*")


def printable(text: str) -> str:
    """``text`` in printable ASCII: ``\\`` and anything else outside 0x20..0x7e
    spelled as a Python escape (``\\n``, ``\\xe9``, ``\\u2603``)."""
    if _PLAIN_PATH.fullmatch(text):
        return text
    out: list[str] = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            out.append(ascii(ch)[1:-1])  # '\n', '\x00', '\xe9', '\u2603', '\U0001f600'
    return "".join(out)


def c_comment(text: str) -> str:
    """Text safe inside ``/* ... */``: printable ASCII, and no ``*/``, ``/*``
    or trigraph (``??``) can form, so nothing ends or nests the comment."""
    if _PLAIN_PATH.fullmatch(text):
        return text
    return printable(text).replace("*", "\\x2a").replace("??", "?\\x3f")


def py_comment(text: str) -> str:
    """Text safe after ``#`` on one line."""
    return printable(text)


def py_docstring(text: str) -> str:
    """Text safe inside a (non-raw) triple-quoted string: printable ASCII with
    ``\\`` doubled and ``"`` spelled ``\\x22``, so no quote can end it."""
    return printable(text).replace('"', "\\x22")


def c_string(text: str) -> str:
    """A C string literal holding ``text``'s UTF-8 bytes: printable ASCII as
    itself (``"`` and ``\\`` escaped, ``?`` escaped against trigraphs), every
    other byte as a three-digit octal escape (which, unlike ``\\x``, cannot
    swallow the next character)."""
    if _PLAIN.fullmatch(text):
        return f'"{text}"'
    out: list[str] = ['"']
    for b in text.encode("utf-8"):
        ch = chr(b)
        if ch in '"\\?':
            out.append("\\" + ch)
        elif 0x20 <= b <= 0x7E:
            out.append(ch)
        else:
            out.append(f"\\{b:03o}")
    out.append('"')
    return "".join(out)


def py_string(text: str) -> str:
    """A Python string literal of ``text`` in printable ASCII."""
    if _PLAIN.fullmatch(text) and "'" not in text:
        return f"'{text}'"
    return ascii(text)
