"""Names become identifiers, comments and string literals safely.

The generated files are compiled and imported elsewhere; here each escaper is
checked against the real language: a C compiler reads the comment and the
string back, Python's own tokenizer reads the Python forms back.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dtmsi.stubs.names import (
    C_KEYWORDS,
    PYTHON_KEYWORDS,
    IdentifierError,
    Namespace,
    c_comment,
    c_string,
    mangle,
    printable,
    py_comment,
    py_docstring,
    py_string,
)

HOSTILE = [
    "nvme0",
    "*/ int evil; /*",
    "/* nested",
    'a"b',
    "back\\slash",
    "line\nbreak",
    "tri??/graph",
    "??=??(??)",
    "caf\u00e9",
    "snow\u2603man",
    "emoji\U0001f600",
    "nul\x00byte",
    "tab\tand\rcr",
    "'single'",
    '"""triple"""',
    "\\",
    "?",
]


def test_mangle_spells_any_name_as_an_identifier() -> None:
    assert mangle("nvme0") == "nvme0"
    assert mangle("ssd-3.1") == "ssd_3_1"
    assert mangle("0day") == "_0day"
    assert mangle("caf\u00e9") == "caf_"


@pytest.mark.parametrize("word", ["int", "for", "class", "None", "match", "static_assert", "uint32_t", "NULL"])
def test_mangle_refuses_keywords(word: str) -> None:
    with pytest.raises(IdentifierError, match="keyword"):
        mangle(word)


@pytest.mark.parametrize("name", ["__x", "_Foo", "***", ""])
def test_mangle_refuses_reserved_and_empty(name: str) -> None:
    with pytest.raises(IdentifierError):
        mangle(name)


def test_keyword_lists_hold_both_languages() -> None:
    assert {"while", "_Bool", "template", "nullptr"} <= C_KEYWORDS
    assert {"lambda", "await", "match", "type"} <= PYTHON_KEYWORDS


def test_namespace_finds_collisions_ignoring_case() -> None:
    ns = Namespace()
    assert ns.take("nic-0") == "nic_0"
    assert ns.take("nic-0") == "nic_0"  # the same name again is not a collision
    with pytest.raises(IdentifierError, match="'nic_0' and 'nic-0' both become 'nic_0'"):
        ns.take("nic_0")
    with pytest.raises(IdentifierError, match="both become"):
        ns.take("NIC-0")


@given(st.text())
def test_escapes_are_printable_ascii(text: str) -> None:
    for out in (printable(text), c_comment(text), py_comment(text), c_string(text), py_string(text)):
        assert all(" " <= ch <= "~" for ch in out), out


@given(st.text())
def test_c_comment_cannot_end_or_nest(text: str) -> None:
    out = c_comment(text)
    assert "*/" not in out and "/*" not in out and "??" not in out


@given(st.text())
def test_python_forms_read_back(text: str) -> None:
    assert ast.literal_eval(py_string(text)) == text
    assert "\n" not in py_comment(text) and "\r" not in py_comment(text)
    # Inside a docstring the escaped text reads back as the text itself.
    doc = '"""' + py_docstring(text) + '"""'
    assert ast.literal_eval(doc) == text


def test_c_forms_read_back_through_gcc(tmp_path: Path) -> None:
    """gcc -std=c99 (trigraphs on) reads every string back byte for byte, and
    every comment stays a comment."""
    lines = ["#include <stdio.h>", "static const char *const s[] = {"]
    for text in HOSTILE:
        lines.append(f"    /* {c_comment(text)} */ {c_string(text)},")
    lines += ["};", "int main(void) {", "    unsigned i;"]
    lines.append(f'    for (i = 0; i < {len(HOSTILE)}U; i++) {{ fputs(s[i], stdout); fputc(0x1e, stdout); }}')
    lines += ["    return 0;", "}"]
    src = tmp_path / "names.c"
    src.write_text("\n".join(lines) + "\n")
    exe = tmp_path / "names"
    for cc in ("gcc", "clang"):
        subprocess.run(
            [cc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wtrigraphs", "-Wcomment", "-o", exe, src],
            check=True,
        )
        out = subprocess.run([exe], check=True, capture_output=True).stdout
        # C strings end at a NUL: compare up to the first one, as C sees them.
        expected = b"".join(t.encode().split(b"\0")[0] + b"\x1e" for t in HOSTILE)
        assert out == expected, cc


@settings(max_examples=50)
@given(st.text(min_size=1, max_size=20))
def test_mangled_names_are_identifiers_in_both_languages(name: str) -> None:
    try:
        ident = mangle(name)
    except IdentifierError:
        return
    assert ident.isidentifier()
    assert ident not in C_KEYWORDS and ident not in PYTHON_KEYWORDS


def test_plan_and_generated_constants_agree(tmp_path: Path) -> None:
    """The plan's codes (dtmsi/stubs/plan.py) and the generated code's own copy
    of them (the engine must stand alone) are the same numbers."""
    from dtmsi.stubs import plan
    from tests.golden_update import EXAMPLES
    from tests.stubs.stubrun import compile_msi, load_python_stub

    compiled = compile_msi(EXAMPLES / "qemu-virt" / "qemu-virt.msi", tmp_path)
    stub = load_python_stub(compiled.stubs[0].py)
    header = compiled.stubs[0].h.read_text()
    for bit, name in plan.FLAG_NAMES:
        assert getattr(stub, f"F_{name}") == bit
        assert f"#define DTMSI_SYSTEM_F_{name} {bit:#x}U" in header
    for mech, code in plan.MECH_CODES.items():
        assert getattr(stub, f"MECH_{mech.upper()}") == code
        assert f"#define DTMSI_SYSTEM_MECH_{mech.upper()} {code}U" in header
    for short, code in plan.SHORT_CODES.items():
        assert getattr(stub, f"SHORT_{short.upper()}") == code
    for mode, code in plan.MODE_CODES.items():
        assert getattr(stub, f"MODE_{mode.upper()}") == code
    assert stub.ABI == plan.ABI
