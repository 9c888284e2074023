"""``dtmsi fmt``: canonical, idempotent, comment-keeping, and never changes what a file compiles to.

The judge is the compiler itself: every example, every error fixture that
compiles and Hypothesis-made files (the random topologies of
tests/test_properties.py, laid out at random with comments between their
tokens) are compiled before and after formatting, and every output must be
the same bytes, except that provenance (``file.msi:LINE``) may name the line
its statement moved to and the stubs' digest of allocation.json follows that
file. Negative controls: a changed token makes the comparison fail, and the
formatter refuses to return a layout whose tokens differ.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from dtmsi.driver import compile_file
from dtmsi.fmt import FormatError, _same_tokens, format_source
from dtmsi.options import CompileOptions
from dtmsi.parser import ParseError, lexemes, parse
from dtmsi.source import SourceFile
from tests.golden_update import EXAMPLES, ROOT, example_names
from tests.test_properties import render, topologies

ERRORS = ROOT / "tests" / "errors"
_PROVENANCE = re.compile(r"([\w./-]+\.msi):(\d+)")
_DIGEST = re.compile(rb"sha256:[0-9a-f]{64}")


def fmt_text(text: str, name: str = "t.msi") -> str:
    return format_source(SourceFile(name, text))


def _parses(text: str) -> bool:
    try:
        parse(SourceFile("x.msi", text))
    except ParseError:
        return False
    return True


def _format_tree(root: Path) -> None:
    for path in sorted(root.rglob("*.msi")):
        text = path.read_text(encoding="utf-8")
        try:
            out = fmt_text(text, str(path))
        except ParseError:
            continue  # a syntax-error fixture: nothing to format
        path.write_text(out, encoding="utf-8")


def _line_map(before: str, after: str) -> dict[int, set[int]]:
    """Old line -> the new lines its tokens went to (token by token, in order;
    the outputs, not this map, judge whether a token's text changed)."""
    a, b = SourceFile("a", before), SourceFile("b", after)
    old = [t for t in lexemes(a) if t[0] != "COMMENT"]
    new = [t for t in lexemes(b) if t[0] != "COMMENT"]
    assert [t[0] for t in old] == [t[0] for t in new]
    out: dict[int, set[int]] = {}
    for o, n in zip(old, new, strict=True):
        out.setdefault(a.line_col(o[2])[0], set()).add(b.line_col(n[2])[0])
    return out


def _outputs(src: Path) -> tuple[dict[str, bytes], list[str]]:
    result = compile_file(CompileOptions(input=src))
    return {a.name: a.data for a in result.artifacts}, sorted(d.code.id for d in result.sink)


def output_differences(before: dict[str, bytes], after: dict[str, bytes],
                       maps: dict[str, dict[int, set[int]]]) -> list[str]:
    """How two compiles' outputs differ beyond provenance lines that moved with
    their statement (``maps``: file name -> old line -> new lines) and the
    digest of allocation.json that follows them. [] if they do not."""
    problems: list[str] = []
    if sorted(before) != sorted(after):
        return [f"different outputs: {sorted(before)} vs {sorted(after)}"]
    digests = {}
    for label, outs in (("before", before), ("after", after)):
        if "allocation.json" in outs:
            digests[label] = b"sha256:" + hashlib.sha256(outs["allocation.json"]).hexdigest().encode()
    for name in sorted(before):
        x, y = before[name], after[name]
        if name.endswith(".dtb"):
            if x != y:
                problems.append(f"{name}: different bytes")
            continue
        for label, data in (("before", x), ("after", y)):
            for d in _DIGEST.findall(data):
                if d != digests.get(label):
                    problems.append(f"{name} ({label}): digest {d!r} is not that of its allocation.json")
        xs = _PROVENANCE.split(_DIGEST.sub(b"DIGEST", x).decode())
        ys = _PROVENANCE.split(_DIGEST.sub(b"DIGEST", y).decode())
        if len(xs) != len(ys):
            problems.append(f"{name}: different provenance count")
            continue
        for k in range(0, len(xs), 3):
            if xs[k] != ys[k]:
                problems.append(f"{name}: {xs[k][:200]!r} != {ys[k][:200]!r}")
                break
            if k + 2 < len(xs):
                file, old, new = xs[k + 1], int(xs[k + 2]), int(ys[k + 2])
                moved = maps.get(Path(file).name)  # None: a file formatting left as it was
                if ys[k + 1] != file or new not in (moved.get(old, set()) if moved is not None else {old}):
                    problems.append(f"{name}: {file}:{old} became {ys[k + 1]}:{new}")
    return problems


def _compare_trees(before_root: Path, after_root: Path, top: Path) -> list[str]:
    maps = {}
    for path in sorted(before_root.rglob("*.msi")):
        text, formatted = path.read_text(), (after_root / path.relative_to(before_root)).read_text()
        if text != formatted:
            maps[path.name] = _line_map(text, formatted)
    out_before, diags_before = _outputs(before_root / top)
    out_after, diags_after = _outputs(after_root / top)
    problems = output_differences(out_before, out_after, maps)
    if diags_before != diags_after:
        problems.append(f"diagnostics {diags_before} became {diags_after}")
    return problems


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """examples/ and tests/errors/ as they are ('a') and formatted ('b')."""
    base = tmp_path_factory.mktemp("fmt")
    for side in ("a", "b"):
        shutil.copytree(EXAMPLES, base / side / "examples")
        shutil.copytree(ERRORS, base / side / "errors")
    _format_tree(base / "b")
    return base / "a", base / "b"


@pytest.mark.parametrize("name", example_names())
def test_formatting_an_example_keeps_its_outputs(name: str, trees: tuple[Path, Path]) -> None:
    a, b = trees
    top = Path("examples") / name / f"{name}.msi"
    assert (a / top).read_text() != (b / top).read_text()  # the comparison is not vacuous
    assert _compare_trees(a / "examples", b / "examples", Path(name) / f"{name}.msi") == []


def _fixtures() -> list[str]:
    return sorted(p.name for p in ERRORS.glob("*.msi"))


def test_formatting_fixtures_keeps_outputs_and_diagnostics(trees: tuple[Path, Path]) -> None:
    """Every error fixture that parses: the same diagnostic codes before and
    after; those that compile (warnings only): the same outputs."""
    a, b = trees
    compared = []
    problems = []
    for name in _fixtures():
        if (a / "errors" / name).read_text() == (b / "errors" / name).read_text():
            continue  # already in the canonical layout (or does not parse)
        problems += [f"{name}: {p}" for p in _compare_trees(a / "errors", b / "errors", Path(name))]
        if _outputs(a / "errors" / name)[0]:
            compared.append(name)
    assert problems == []
    assert len(compared) >= 3, compared  # fixtures that compile were compared output for output


def test_format_is_idempotent_on_every_file(trees: tuple[Path, Path]) -> None:
    _a, b = trees
    for path in sorted(b.rglob("*.msi")):
        text = path.read_text()
        if _parses(text):
            assert fmt_text(text) == text, path


def test_comments_all_kept_in_order(trees: tuple[Path, Path]) -> None:
    a, b = trees
    for path in sorted(a.rglob("*.msi")):
        after = (b / path.relative_to(a)).read_text()

        def comments(text: str) -> list[str]:
            return [" ".join(t.split()) for k, t, _s, _e in lexemes(SourceFile("x", text)) if k == "COMMENT"]

        if _parses(after):
            assert comments(path.read_text()) == comments(after), path


# ---------------------------------------------------------------- Hypothesis

_SEPARATORS = (" ", " ", "  ", "\n", "\n\n\n", "\t", " /* c */ ", " // note\n", "\n  /* two\n lines */\n")


@st.composite
def relaid(draw: st.DrawFn) -> str:
    """A random valid topology with its tokens laid out at random, comments between them."""
    text = render(draw(topologies()))
    toks = lexemes(SourceFile("r.msi", text))
    parts = [toks[0][1]]
    for tok in toks[1:]:
        parts.append(draw(st.sampled_from(_SEPARATORS)))
        parts.append(tok[1])
    return "".join(parts) + draw(st.sampled_from(("\n", "", "  // end")))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=relaid())
def test_random_files_compile_the_same_formatted(text: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    note(text)
    out = fmt_text(text)
    assert fmt_text(out) == out
    base = tmp_path_factory.mktemp("prop")
    (base / "a").mkdir()
    (base / "b").mkdir()
    (base / "a" / "r.msi").write_text(text)
    (base / "b" / "r.msi").write_text(out)
    out_a, diags_a = _outputs(base / "a" / "r.msi")
    assert out_a and diags_a == []
    assert _compare_trees(base / "a", base / "b", Path("r.msi")) == []


# ---------------------------------------------------------------- negative controls


def test_comparison_sees_a_changed_token(trees: tuple[Path, Path], tmp_path: Path) -> None:
    """If formatting changed a value, the comparison would say so."""
    a, _b = trees
    wrong = tmp_path / "examples"
    shutil.copytree(a / "examples", wrong)
    devices = wrong / "qemu-virt" / "qemu-devices.msi"
    text = devices.read_text()
    assert "vectors 3 min 3;" in text
    devices.write_text(text.replace("vectors 3 min 3;", "vectors 2 min 2;"))
    problems = _compare_trees(a / "examples", wrong, Path("qemu-virt") / "qemu-virt.msi")
    assert any("allocation.json" in p for p in problems), problems


def test_comparison_sees_a_wrong_provenance_line() -> None:
    before = {"x.dts": b"/* a.msi:3 */\n", "allocation.json": b"{}"}
    after = {"x.dts": b"/* a.msi:4 */\n", "allocation.json": b"{}"}
    assert output_differences(before, after, {"a.msi": {3: {3}}}) != []
    assert output_differences(before, after, {"a.msi": {3: {4}}}) == []


def test_formatter_refuses_a_changed_token() -> None:
    with pytest.raises(FormatError):
        _same_tokens(SourceFile("t.msi", "cpus 2;\n"), "cpus 3;\n")
    with pytest.raises(FormatError):
        _same_tokens(SourceFile("t.msi", "cpus 2; // x\n"), "cpus 2;\n")


# ---------------------------------------------------------------- the layout rules


def test_layout() -> None:
    src = (
        "\n\n// top\nplatform \"x\" {   msi native;  cpus 2; }   // after\n"
        "host-bridge hb ecam @ 0x4000_0000 size 256M { buses 0 .. 255 ;\n"
        "  msi map rid 0x0..0xffff // why\n      -> its ;\n"
        "  window mem32 cpu 0x1000_0000 size ( 1G - - 4K );\n\n\n\n"
        "  endpoint a @ 00.0 { use nic(2); }\n"
        "  endpoint b @ 01.0 {\n   /* one */ id 8086:10d3;\n            /* multi\n              line */\n  }\n"
        "  endpoint c @ 02.0 {\n  }\n}\n"
        "part owns nic0.vf [ 0..3 ], x.*;\n\n"
    )
    assert fmt_text(src) == (
        "// top\n"
        'platform "x" { msi native; cpus 2; }  // after\n'
        "host-bridge hb ecam @ 0x4000_0000 size 256M {\n"
        "    buses 0..255;\n"
        "    msi map rid 0x0..0xffff  // why\n"
        "        -> its;\n"
        "    window mem32 cpu 0x1000_0000 size (1G - -4K);\n"
        "\n"
        "    endpoint a @ 00.0 { use nic(2); }\n"
        "    endpoint b @ 01.0 {\n"
        "        /* one */\n"
        "        id 8086:10d3;\n"
        "        /* multi\n"
        "          line */\n"
        "    }\n"
        "    endpoint c @ 02.0 {}\n"
        "}\n"
        "part owns nic0.vf[0..3], x.*;\n"
    )


def test_trailing_comments_line_up() -> None:
    src = "a 1;  // one\nbbbbbb 2; // two\n\nc 3;      // three\n"
    assert fmt_text(src) == "a 1;       // one\nbbbbbb 2;  // two\n\nc 3;  // three\n"


def test_long_one_line_block_opens_up() -> None:
    body = "; ".join(f"setting{i} {i}" for i in range(12))
    out = fmt_text(f"endpoint e @ 00.0 {{ {body}; }}\n")
    assert out.splitlines()[0] == "endpoint e @ 00.0 {"
    assert len(out.splitlines()) == 14
    assert fmt_text(out) == out


def test_empty_and_comment_only_files() -> None:
    assert fmt_text("") == ""
    assert fmt_text("\n\n  \n") == ""
    assert fmt_text("  // only\n\n\n/* this */  \n") == "// only\n\n/* this */\n"


# ---------------------------------------------------------------- the command


def _cli(*args: str, stdin: str | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "dtmsi", "fmt", *args], cwd=cwd, env=env, input=stdin,
                          capture_output=True, text=True, check=False)


def _files(root: Path) -> Iterator[Path]:
    return iter(sorted(root.rglob("*.msi")))


def test_cli_check_in_place_and_output(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES / "qemu-virt", tmp_path / "qv")
    top, inc = tmp_path / "qv" / "qemu-virt.msi", tmp_path / "qv" / "qemu-devices.msi"
    original = top.read_text()
    check = _cli("--check", str(tmp_path / "qv"))
    assert check.returncode == 1
    assert check.stdout.splitlines() == [str(inc), str(top)]
    assert top.read_text() == original  # --check writes nothing
    to_file = tmp_path / "out.msi"
    assert _cli(str(top), "-o", str(to_file)).returncode == 0
    assert to_file.read_text() == fmt_text(original) and top.read_text() == original
    assert _cli(str(tmp_path / "qv")).returncode == 0  # in place
    assert top.read_text() == fmt_text(original)
    os.utime(top, ns=(10**18, 10**18))
    again = _cli("--check", str(top), str(inc))
    assert again.returncode == 0 and again.stdout == ""
    assert _cli(str(top)).returncode == 0
    assert top.stat().st_mtime_ns == 10**18  # unchanged: not rewritten


def test_cli_stdin_and_errors(tmp_path: Path) -> None:
    proc = _cli("-", stdin="cpus   2 ;")
    assert (proc.returncode, proc.stdout) == (0, "cpus 2;\n")
    check = _cli("--check", "-", stdin="cpus 2;\n")
    assert check.returncode == 0
    bad = tmp_path / "bad.msi"
    bad.write_text("platform \"x\" {\n  msi native\n}\n")
    err = _cli(str(bad))
    assert err.returncode == 1
    assert f"{bad}:3:1: error[E101]: unexpected '}}'" in err.stderr and "Traceback" not in err.stderr
    assert bad.read_text() == "platform \"x\" {\n  msi native\n}\n"
    piped = _cli("-", stdin="x {")
    assert piped.returncode == 1 and "<stdin>:1:" in piped.stderr and piped.stdout == ""
    ok = tmp_path / "ok.msi"
    ok.write_text("cpus  1;\n")
    both = _cli(str(ok), str(bad))  # one bad file: nothing written at all
    assert both.returncode == 1 and ok.read_text() == "cpus  1;\n"
    assert _cli(str(ok), str(bad), "-o", str(tmp_path / "x.msi")).returncode == 2
    assert _cli(str(tmp_path / "missing.msi")).returncode == 2
