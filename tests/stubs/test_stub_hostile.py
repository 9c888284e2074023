"""Hostile names and strings: a clear diagnostic, or stubs that compile and behave the same.

Names and strings of a ``.msi`` reach the generated C and Python as
identifiers (``DTMSI_<P>_FN_<NAME>``, the symbol prefix), string literals
(function and host-bridge names, the input's name) and provenance comments
(``/* 0000:01:00.0 nic0 - board.msi:14 */``, ``# ...``). None of them may end
a comment or a string, form a trigraph, or shadow a keyword, whatever the
input says:

* (a) a machine whose names are C, C++ and Python keywords where the language
  allows them (partitions ``int``, ``class``, ``None``; a host bridge ``int``),
  names the stubs themselves use (``self``, ``Stub``, ``setup_all``, ``main``,
  ``errno``, ``FUNCTIONS`` ...), a stub prefix and a ``model`` string full of
  ``*/``, quotes, backslashes, trigraphs, newlines and non-ASCII, read from
  files whose names hold the same: it compiles; every stub compiles with gcc
  and clang at -std=c99 with the strict flags, the Python stubs are mypy
  --strict clean and import; C and Python make the same hook calls with no
  violation; the generated text is ASCII and no hostile sequence survives
  unescaped; the device trees keep the strings (dtc reads them back).
* (b) names that cannot work get an error at their file:line:col: names
  that differ only in case (E204; '-' against '_' is already one label,
  E202), keywords and reserved identifiers (E204), a ``stub-prefix`` that is
  a keyword or has no letters, two partitions with one prefix (E204), string
  names with NUL, quotes, ``*/``, newlines or non-ASCII (E111: function names
  are words); a failing compile writes nothing and the CLI exits 1.
* (c) an input file and an included file whose names hold ``*/`` (through a
  directory), quotes, spaces, a newline, a backslash, three double quotes and
  non-ASCII: the CLI compiles them (exit 0), the provenance comments stay
  comments, the Python docstring stays one, and the stubs compile.

BUG-7 (found here, fixed): a function named like one of dtmsi's VF names
was refused only by the device-tree writer, at 1:1; now E202 where it is named.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import libfdt
import pytest

from dtmsi.diagnostics import Diagnostic
from dtmsi.driver import compile_file
from dtmsi.options import CompileOptions
from dtmsi.parser import unescape
from dtmsi.sim import SimOptions
from tests.stubs.stubrun import Compiled, compile_msi, final_state_problems, have, load_python_stub, parity
from tests.stubs.test_stub_compile import WARNINGS

VENV_BIN = Path(sys.executable).parent
DTMSI = VENV_BIN / "dtmsi"
POWERVM = SimOptions(powervm=True)

# Strings the .msi language can spell (escapes: \n \t \r \0 \" \\ \xHH; UTF-8
# as itself) that would break generated code if copied into it unescaped.
HOSTILE_TEXT = r'*/ evil /* \"quote\"d back\\slash café snow☃ ??/ trigraph new\nline tab\t \x01 /* // \\'
# File names: a directory "we*" puts "*/" into the included file's path.
INCLUDE_DIR = "we*"
INCLUDE_NAME = 'ird "name" café☃ ??=\\ ??\' .msi'
TOP_NAME = 'top "q" café ☃ ??- \\.msi'

DEVICES = """
template dev(vectors) {
    id 8086:10d3 class 0x020000;
    bar 0 mem32 16K;
    msix vectors table bar 0 + 0x2000 pba bar 0 + 0x3000;
    msi 4 addr64 maskable;
    intx A;
}
template legacy {
    id 1af4:1000 class 0x020000;
    bar 0 mem32 4K;
    msi 2;
    intx B;
}
"""

# The included file: a host bridge named after a C keyword, functions named
# after what the stubs themselves define.
INCLUDED = """
host-bridge int ecam @ 0x3000_0000 size 16M {
    domain 0;
    buses 0..15;
    window mem32 cpu 0x4000_0000 size 256M;
    msi map rid 0x0000..0x0fff -> its;
    intx -> gic spi 3..6 level;
    endpoint self @ 01.0 { use dev(4); }
    endpoint Stub @ 02.0 { use dev(8); policy for; }
    endpoint setup_all @ 03.0 { use legacy; }
    endpoint main @ 04.0 { use dev(2); quirk no-intx-disable; }
}
"""

TOP = """
platform "example,hostile\\"*/" {{
    model "{text}";
    compatible "x\\\\y*/", "??/";
    msi native;
    cpus 2;
}}
gic = interrupt-controller gicv3 @ 0x0800_0000 size 64K {{ redistributor @ 0x080a_0000 size 0xf6_0000; }}
its = msi-controller gicv3-its @ 0x0808_0000 size 128K {{ parent gic; }}
its2 = msi-controller gicv3-its @ 0x0802_0000 size 128K {{ parent gic; }}
{devices}
policy for {{ prefer msix, msi, intx; vectors 2; }}
include "{include}";

host-bridge None ecam @ 0x3100_0000 size 16M {{
    domain 1;
    buses 0..15;
    window mem32 cpu 0x5000_0000 size 256M;
    msi map rid 0x0000..0x0fff -> its2;
    intx -> gic spi 7..10 level;
    endpoint printf-x @ 01.0 {{ use dev(4); }}
    endpoint errno @ 02.0 {{ use legacy; property "label" = "{text}"; }}
    endpoint FUNCTIONS @ 03.0 {{ use dev(3); }}
    endpoint h @ 04.0 {{ use dev(1); }}
    endpoint st @ 05.0 {{ use legacy; }}
    endpoint HookError @ 06.0 {{ use dev(5); quirk no-64bit-msi; }}
}}
partition int {{ cpus 0..1; owns self, Stub, setup_all; }}
partition class {{ owns main, printf-x, errno; stub-prefix "p{text}"; }}
partition None {{ owns FUNCTIONS, h, st, HookError; }}
"""

FUNCTION_NAMES = {"self", "Stub", "setup_all", "main", "printf-x", "errno", "FUNCTIONS", "h", "st", "HookError"}


def _write_machine(where: Path, top_name: str = TOP_NAME) -> Path:
    (where / INCLUDE_DIR).mkdir(parents=True, exist_ok=True)
    (where / INCLUDE_DIR / INCLUDE_NAME).write_text(INCLUDED, encoding="utf-8")
    include = f"{INCLUDE_DIR}/{INCLUDE_NAME}".replace("\\", "\\\\").replace('"', '\\"')
    top = where / top_name
    top.write_text(TOP.format(text=HOSTILE_TEXT, devices=DEVICES, include=include), encoding="utf-8")
    return top


# ---------------------------------------------------------------- what generated text may hold


def c_text_problems(text: str) -> list[str]:
    """Lexes C just enough: comments end where they should, nothing is left
    outside comments and strings that a hostile name could have made."""
    problems: list[str] = []
    if not text.isascii():
        problems.append("non-ASCII bytes in generated C")
    if "??" in text:
        problems.append(f"a trigraph-prone '??' at offset {text.index('??')}")
    i, n = 0, len(text)
    while i < n:
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                problems.append(f"unterminated comment at offset {i}")
                break
            body = text[i + 2 : end]
            if "/*" in body:
                problems.append(f"'/*' inside a comment: {body!r}")
            if re.search(r"\\\s*\n", body):
                problems.append(f"a backslash-newline inside a comment: {body!r}")
            i = end + 2
        elif text.startswith("//", i):
            end = text.find("\n", i)
            body = text[i : end if end >= 0 else n]
            if body.rstrip().endswith("\\"):
                problems.append(f"a // comment ending in a backslash: {body!r}")
            i = n if end < 0 else end + 1
        elif text[i] in "\"'":
            quote, j = text[i], i + 1
            while j < n and text[j] != quote:
                if text[j] == "\n":
                    problems.append(f"newline inside a literal at offset {i}")
                    break
                j += 2 if text[j] == "\\" else 1
            i = j + 1
        elif text.startswith("*/", i):
            problems.append(f"'*/' outside a comment at offset {i}: {text[max(0, i - 40) : i + 2]!r}")
            i += 2
        else:
            i += 1
    return problems


def py_text_problems(text: str) -> list[str]:
    problems: list[str] = []
    if not text.isascii():
        problems.append("non-ASCII characters in generated Python")
    try:
        compile(text, "<stub>", "exec")
    except SyntaxError as e:
        problems.append(f"not valid Python: {e}")
    return problems


def _cc(cmd: list[str], cwd: Path) -> None:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout}{done.stderr}"


def compile_c_strictly(c_files: list[Path], work: Path) -> None:
    """gcc and clang, -std=c99 with test_stub_compile's flags (and -trigraphs,
    so a '??/' that slipped through would splice lines)."""
    for cc in ("gcc", "clang"):
        have(cc)
        for c in c_files:
            _cc([cc, "-std=c99", "-O2", "-trigraphs", *WARNINGS, "-I", str(c.parent), "-c", str(c), "-o", "x.o"],
                work)


def mypy_strict(py_files: list[Path], work: Path) -> None:
    cmd = [str(VENV_BIN / "mypy"), "--strict", "--no-error-summary", "--cache-dir", str(work / "mypy-cache"),
           *map(str, py_files)]
    done = subprocess.run(cmd, cwd=work, capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, f"mypy --strict:\n{done.stdout}{done.stderr}"


# ---------------------------------------------------------------- (a) hostile names that must work


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Compiled:
    where = tmp_path_factory.mktemp("hostile")
    return compile_msi(_write_machine(where), where / "out")


def test_hostile_machine_compiles_to_the_expected_stubs(hostile: Compiled) -> None:
    assert sorted(s.partition or "" for s in hostile.stubs) == ["None", "class", "int"]
    prefixes = {s.partition: s.prefix for s in hostile.stubs}
    assert prefixes["int"] == "dtmsi_int"
    assert prefixes["None"] == "dtmsi_None"
    # The stub prefix made of the hostile text: every non-identifier character an underscore.
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", prefixes["class"]), prefixes["class"]
    assert {f["name"] for f in hostile.allocation["functions"]} == FUNCTION_NAMES


def test_hostile_stubs_compile_with_strict_flags(hostile: Compiled, tmp_path: Path) -> None:
    compile_c_strictly([s.c for s in hostile.stubs], tmp_path)


def test_hostile_python_stubs_are_mypy_strict_clean_and_import(hostile: Compiled, tmp_path: Path) -> None:
    mypy_strict([s.py for s in hostile.stubs], tmp_path)
    seen: set[str] = set()
    for stub in hostile.stubs:
        mod = load_python_stub(stub.py)
        assert stub.prefix == mod.PREFIX
        assert mod.SOURCE == TOP_NAME
        names = set(mod.NAMES)
        assert names == {f["name"] for f in hostile.allocation["functions"] if f["partition"] == stub.partition}
        seen |= names
    assert seen == FUNCTION_NAMES


def test_no_hostile_sequence_survives_unescaped(hostile: Compiled) -> None:
    for stub in hostile.stubs:
        for path in (stub.h, stub.c):
            text = path.read_text(encoding="utf-8")
            assert c_text_problems(text) == [], (path.name, c_text_problems(text))
    # The provenance names the included file (where partition int's functions
    # are), escaped: "*" spelled \x2a, "??" as ?\x3f, non-ASCII as \xe9 and \u2603.
    assert "- we\\x2a/ird \"name\" caf\\xe9\\u2603 ?\\x3f=\\\\ ?\\x3f' .msi:8 */" in hostile.stub("int").c.read_text()
    for stub in hostile.stubs:
        text = stub.py.read_text(encoding="utf-8")
        assert py_text_problems(text) == [], (stub.py.name, py_text_problems(text))
    assert "- we*/ird \\x22name\\x22 caf\\xe9\\u2603 ??=\\\\ ??' .msi:8\n" in hostile.stub("int").py.read_text()


def test_hostile_strings_survive_in_the_device_trees(hostile: Compiled, tmp_path: Path) -> None:
    """dtc compiles every DTS to the bytes dtmsi wrote, so every escape in them is right."""
    have("dtc")
    for dts in sorted(hostile.out.glob("*.dts")):
        done = subprocess.run(["dtc", "-I", "dts", "-O", "dtb", "-o", str(tmp_path / "x.dtb"), str(dts)],
                              capture_output=True, check=False, timeout=60)
        assert done.returncode == 0, done.stderr.decode()
        assert (tmp_path / "x.dtb").read_bytes() == dts.with_suffix(".dtb").read_bytes(), dts.name
    # And the strings are the .msi's, byte for byte.
    fdt = libfdt.Fdt((hostile.out / "system.dtb").read_bytes())
    root = fdt.path_offset("/")
    assert bytes(fdt.getprop(root, "model")) == unescape(HOSTILE_TEXT).encode() + b"\0"
    assert bytes(fdt.getprop(root, "compatible")) == b"x\\y*/\0??/\0"


@pytest.mark.parametrize("partition", ["int", "class", "None"])
def test_hostile_stubs_behave_the_same_in_c_and_python(hostile: Compiled, partition: str, tmp_path: Path) -> None:
    stub = hostile.stub(partition)
    py, c, c_sim = parity(hostile, stub, ["setup_all", "teardown_all", "setup_all"], tmp_path, POWERVM)
    assert py.values == [0, 0, 0], [(r.mechanism, r.status) for r in py.results]
    assert c_sim.violations == [] and py.sim.violations == []
    assert final_state_problems(hostile, stub, c_sim) == []
    # The C table's names are the .msi's names, byte for byte (the harness prints them escaped).
    mod = load_python_stub(stub.py)
    assert [r.name for r in c.results] == list(mod.NAMES)
    # Log lines carry the names too: identical in both languages, one line each.
    logs = [line for line in c_sim.trace_lines() if line.startswith("log ")]
    assert logs == [line for line in py.sim.trace_lines() if line.startswith("log ")]
    assert logs and all("\n" not in line for line in logs)


# ---------------------------------------------------------------- (b) names that cannot work

HEAD = """platform "example,bad" { msi native; }
gic = interrupt-controller gicv3 @ 0x0800_0000 size 64K { redistributor @ 0x080a_0000 size 0xf6_0000; }
its = msi-controller gicv3-its @ 0x0808_0000 size 128K { parent gic; }
template dev { id 8086:10d3 class 0x020000; msi 1 addr64; intx A; }
host-bridge pcie0 ecam @ 0x3000_0000 size 16M {
    buses 0..15;
    window mem32 cpu 0x4000_0000 size 256M;
    window mem64 prefetchable cpu 0x80_0000_0000 size 64G;
    msi map rid 0x0000..0x0fff -> its;
    intx -> gic spi 3..6 level;
"""


def _bad(functions: list[str], tail: str = "", inside: str = "") -> str:
    endpoints = "".join(f"    endpoint {name} @ {i + 1:02x}.0 {{ use dev; }}\n" for i, name in enumerate(functions))
    return HEAD + endpoints + inside + "}\n" + tail


SRIOV_NIC = """    root-port rp @ 1f.0 {
        endpoint nic @ 00.0 {
            id 15b3:101b class 0x020000;
            bar 0 mem64 32M;
            msix 64 table bar 0 + 0x2000 pba bar 0 + 0x3000;
            sriov { total-vfs 4; vfs 2; vf-id 0x101c; bar 0 mem64 1M; msix 8 table bar 0 + 0x2000 pba bar 0 + 0x3000; }
        }
    }
"""

# (what, .msi text, code, where (the n-th occurrence of a piece of the text), a piece of the message)
BAD: list[tuple[str, str, str, tuple[str, int], str]] = [
    # '-' and '_' are one name already (device-tree labels): E202, before any stub is made.
    ("two names, one identifier", _bad(["a-b", "a_b"]), "E202", ("a_b @", 0), "'a_b' reuses a name already defined"),
    ("names differing in case", _bad(["nic", "NIC"]), "E204", ("NIC @", 0), "both become 'NIC'"),
    # A VF is named by dtmsi ('nic_vf1') and placed where its PF's name is.
    ("a name like a VF's, in another case", _bad(["NIC_VF1"], inside=SRIOV_NIC), "E204",
     ("nic @", 0), "'nic_vf1' and 'NIC_VF1' both become"),
    ("a C keyword", _bad(["int"]), "E204", ("int @", 0), "'int' is a C, C++ or Python keyword"),
    ("a C++ keyword", _bad(["class"]), "E204", ("class @", 0), "'class' is a C, C++ or Python keyword"),
    ("a Python keyword", _bad(["None"]), "E204", ("None @", 0), "'None' is a C, C++ or Python keyword"),
    ("a stdint name", _bad(["uint8_t"]), "E204", ("uint8_t @", 0), "keyword"),
    ("reserved in C", _bad(["_Ugly"]), "E204", ("_Ugly @", 0), "reserved in C"),
    ("reserved in C (__)", _bad(["__x"]), "E204", ("__x @", 0), "reserved in C"),
    ("stub-prefix a keyword", _bad(["a"], 'partition p { owns a; stub-prefix "for"; }\n'), "E204",
     ('"for"', 0), "stub prefix: 'for' is a C, C++ or Python keyword"),
    ("stub-prefix without letters", _bad(["a"], 'partition p { owns a; stub-prefix "*/ \\t"; }\n'), "E204",
     ('"*/', 0), "no letters or digits"),
    ("platform stub-prefix a keyword", _bad(["a"]).replace("msi native;", 'msi native; stub-prefix "while";'),
     "E204", ('"while"', 0), "stub prefix: 'while' is a C, C++ or Python keyword"),
    ("two partitions, one prefix", _bad(["a", "b"], "partition p-q { owns a; }\npartition p_q { owns b; }\n"),
     "E204", ("partition p_q", 0), "two stubs would share the symbol prefix 'dtmsi_p_q'"),
    ("a partition prefix taken by stub-prefix",
     _bad(["a", "b"], 'partition p { owns a; }\npartition q { owns b; stub-prefix "dtmsi_p"; }\n'),
     "E204", ('"dtmsi_p"', 0), "two stubs would share the symbol prefix 'dtmsi_p'"),
    ("a partition called system", _bad(["a"], "partition system { owns a; }\n"), "E202", ("partition system", 0),
     "'system' is the name of the whole-machine tree"),
]
# Function names are words: a string name is interpolated and must be one.
for _name in ['"*/ evil /*"', '"quote\\"d"', '"back\\\\slash"', '"café"', '"snow☃"', '"??/ trigraph"',
              '"new\\nline"', '"a b"', '""']:
    BAD.append((f"string name {_name}", _bad([_name]), "E111", (f"{_name} @", 0), "is not a valid name"))
# A NUL is refused in every string, where the string is (issue 10).
BAD.append(('string name "a\\0b"', _bad(['"a\\0b"']), "E111", ('"a\\0b" @', 0), "cannot hold a NUL"))


def _line_col(text: str, piece: str, nth: int) -> tuple[int, int]:
    at = -1
    for _ in range(nth + 1):
        at = text.index(piece, at + 1)
    return text.count("\n", 0, at) + 1, at - (text.rfind("\n", 0, at) + 1) + 1


def _where(d: Diagnostic) -> tuple[int, int]:
    return d.span.file.line_col(d.span.start)


@pytest.mark.parametrize(("what", "text", "code", "where", "message"), BAD, ids=[b[0] for b in BAD])
def test_names_that_cannot_work_are_refused_where_they_are(
    what: str, text: str, code: str, where: tuple[str, int], message: str, tmp_path: Path
) -> None:
    src = tmp_path / "bad.msi"
    src.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    result = compile_file(CompileOptions(input=src, output_dir=out))
    errors = [d for d in result.sink if d.code.is_error]
    assert not result.ok
    at = _line_col(text, *where)
    assert any(d.code.id == code and message in d.message and _where(d) == at for d in errors), (
        at, [(d.code.id, _where(d), d.message) for d in errors])
    assert not out.exists() or not any(out.iterdir()), "a failed compile wrote outputs"


def test_the_cli_exits_1_prints_file_line_col_and_writes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "we*ird \"bad\" ☃.msi"
    tail = 'partition p { owns nic, NIC; }\npartition q { owns x; stub-prefix "for"; }\n'
    src.write_text(_bad(["nic", "NIC", "x"], tail), encoding="utf-8")
    out = tmp_path / "out"
    done = subprocess.run([str(DTMSI), "compile", src.name, "-o", "out"], cwd=tmp_path, capture_output=True,
                          text=True, check=False, timeout=120)
    assert done.returncode == 1, done.stderr
    text = src.read_text(encoding="utf-8")
    for piece, code in (("NIC @", "E204"), ('"for"', "E204")):
        line, col = _line_col(text, piece, 0)
        assert f"{src.name}:{line}:{col}: error[{code}]" in done.stderr, done.stderr
    assert not out.exists() or not any(out.iterdir())
    # JSON diagnostics say the same.
    done = subprocess.run([str(DTMSI), "check", src.name, "--diagnostics-format", "json"], cwd=tmp_path,
                          capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 1
    said = json.loads(done.stdout or done.stderr)
    items = said if isinstance(said, list) else said.get("diagnostics", [])
    assert [d["code"] for d in items] == ["E204", "E204"], items


# ---------------------------------------------------------------- (c) hostile file names


def test_hostile_file_names_through_the_cli(tmp_path: Path) -> None:
    """The input is given as 'sub*/<name>' (its directory holds '*/'), it
    includes a file whose relative path holds '*/', quotes, a backslash,
    trigraph starts and non-ASCII; the CLI compiles them, the provenance
    comments stay comments, and the stubs compile."""
    where = tmp_path / "sub*"
    where.mkdir()
    name = 'in "put" café ☃ \\ ??= .msi'
    _write_machine(where, name)
    done = subprocess.run([str(DTMSI), "compile", f"sub*/{name}", "-o", "out", "-M", "out/deps.d"], cwd=tmp_path,
                          capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    c_files = sorted(out.glob("*_msi.c"))
    assert len(c_files) == 3
    for path in [*c_files, *out.glob("*_msi.h")]:
        text = path.read_text(encoding="utf-8")
        assert c_text_problems(text) == [], (path.name, c_text_problems(text))
    assert "- we\\x2a/ird" in (out / "int_msi.c").read_text()  # the '*' of 'we*/' spelled out
    for path in out.glob("*_msi.py"):
        assert py_text_problems(path.read_text(encoding="utf-8")) == [], path.name
    compile_c_strictly(c_files, tmp_path)
    stub = load_python_stub(out / "int_msi.py")
    assert name == stub.SOURCE


def test_a_newline_in_the_input_name(tmp_path: Path) -> None:
    name = 'new\nline "*".msi'
    src = _write_machine(tmp_path, name)
    assert src.name == name
    done = subprocess.run([str(DTMSI), "compile", name, "-o", "out"], cwd=tmp_path, capture_output=True, text=True,
                          check=False, timeout=120, env={**os.environ, "LC_ALL": "C.UTF-8"})
    assert done.returncode == 0, done.stderr
    for path in (tmp_path / "out").glob("*_msi.*"):
        text = path.read_text(encoding="utf-8")
        problems = py_text_problems(text) if path.suffix == ".py" else c_text_problems(text)
        assert problems == [], (path.name, problems)
    assert name == load_python_stub(tmp_path / "out" / "None_msi.py").SOURCE


def test_triple_quotes_in_the_input_name(tmp_path: Path) -> None:
    """The Python stub's docstring names the input: a name holding three
    double quotes must not end it."""
    name = 'x"""y.msi'
    src = _write_machine(tmp_path, name)
    compiled = compile_msi(src, tmp_path / "out")
    for stub in compiled.stubs:
        text = stub.py.read_text(encoding="utf-8")
        assert py_text_problems(text) == [], (stub.py.name, py_text_problems(text), text.splitlines()[0])
        assert c_text_problems(stub.c.read_text(encoding="utf-8")) == []


def test_a_name_taken_by_a_vf_is_refused_where_it_is_written(tmp_path: Path) -> None:
    """BUG-7, fixed: a function named exactly like a VF dtmsi names ('nic_vf1',
    VF 1 of 'nic') is a duplicate name (E202) where it is written (it used to
    reach the device-tree writer: E904 'duplicate label' at 1:1)."""
    text = _bad(["nic_vf1"], inside=SRIOV_NIC)
    src = tmp_path / "bad.msi"
    src.write_text(text, encoding="utf-8")
    result = compile_file(CompileOptions(input=src, output_dir=tmp_path / "out"))
    errors = [(d.code.id, _where(d)) for d in result.sink if d.code.is_error]
    assert not result.ok
    assert any(code in ("E202", "E204") and at == _line_col(text, "nic_vf1 @", 0) for code, at in errors), errors
