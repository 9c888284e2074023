"""One error fixture per diagnostic code, checked through the real command line.

Every ``tests/errors/<CODE>-<short-name>.msi`` is a small, realistic input that
triggers that diagnostic. Its leading comment block states what must happen:

``// expect: CODE [FILE:]LINE:COL TEXT``
    A diagnostic with that code, primary span and a message containing TEXT.
    The first line of every fixture is one. FILE (relative to the fixture's
    directory) is for diagnostics located in an included file. Each expect
    line consumes one diagnostic, and a diagnostic no expect line accounts for
    fails the test: a fixture triggers exactly what it says.
``// hint: TEXT``
    The diagnostic of the expect line above has a hint containing TEXT.
``// env: NAME=VALUE``
    Run dtmsi with that environment variable set (e.g. ``DTMSI_DTC``).
``// compile-blocker: NAME``
    Run ``dtmsi compile FILE -o DIR`` with a directory NAME already in DIR
    (so that writing the output NAME fails) instead of ``dtmsi check``.
``// compile-args: ARGS``
    Run ``dtmsi compile FILE -o DIR ARGS`` instead of ``dtmsi check``, for a
    diagnostic only some outputs give (``--emit dtb,dts,dtbo``); every
    compile of the fixture gets ARGS.
``// xfail(KIND, ...): REASON``
    A known bug: the tests of those kinds (``json``, ``text``, ``compile``)
    are expected to fail, strictly, until dtmsi is fixed.

Helper inputs (included files, base trees) live in ``tests/errors/files/``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dtmsi import codes
from dtmsi.limits import MAX_SNIPPET_COLUMNS

ROOT = Path(__file__).resolve().parent.parent
ERRORS = ROOT / "tests" / "errors"
PACKAGE = ROOT / "dtmsi"

# Catalogue codes that no dtmsi source references yet. When one becomes
# emitted, move it out of this list and add its fixture.
NOT_YET_EMITTED = [
    "E501",
    "E702",
    "E710",
]

TEST_KINDS = ("json", "text", "compile")
OLD_MTIME_NS = 1_000_000_000 * 1_000_000_000  # 2001-09-09: clearly not "just written"

_NAME_RE = re.compile(r"(?P<code>[EW]\d{3})-[a-z0-9]+(?:-[a-z0-9]+)*\.msi")
_EXPECT_RE = re.compile(
    r"// expect: (?P<code>[EW]\d{3}) (?:(?P<file>[^\s:]+):)?(?P<line>\d+):(?P<col>\d+)"
    r" (?P<text>\S.*)"
)
_HINT_RE = re.compile(r"// hint: (?P<text>\S.*)")
_XFAIL_RE = re.compile(r"// xfail\((?P<kinds>[a-z, ]+)\): (?P<reason>\S.*)")
_BLOCKER_RE = re.compile(r"// compile-blocker: (?P<name>[^\s/]+)")
_ARGS_RE = re.compile(r"// compile-args: (?P<args>\S.*)")
_ENV_RE = re.compile(r"// env: (?P<name>[A-Z_][A-Z0-9_]*)=(?P<value>\S*)")
_DIRECTIVE_RE = re.compile(r"// (?:expect|hint|xfail|compile-blocker|compile-args|env)\b")
_HEADER_RE = re.compile(r"^\S+:\d+:\d+: (?:error|warning)\[[EW]\d{3}\]: ")
_TRACEBACK = "Traceback (most recent call last)"


@dataclass(frozen=True)
class Expect:
    code: str
    file: str  # as dtmsi prints it: relative to ROOT, since the tests run there
    line: int
    column: int
    text: str
    hints: tuple[str, ...] = ()

    @property
    def severity(self) -> str:
        return "error" if self.code.startswith("E") else "warning"

    def __str__(self) -> str:
        return f"{self.code} at {self.file}:{self.line}:{self.column} containing {self.text!r}"


@dataclass(frozen=True)
class Fixture:
    path: Path
    expects: tuple[Expect, ...]
    xfail: tuple[tuple[str, str], ...]  # (test kind, reason)
    blocker: str | None
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()

    @property
    def rel(self) -> str:
        return self.path.relative_to(ROOT).as_posix()

    @property
    def has_error(self) -> bool:
        return any(e.severity == "error" for e in self.expects)

    @property
    def exit_code(self) -> int:
        return 1 if self.has_error else 0


def parse_fixture(path: Path) -> Fixture:
    lines = path.read_text(encoding="utf-8").splitlines()
    rel_dir = path.parent.relative_to(ROOT)
    expects: list[Expect] = []
    xfail: list[tuple[str, str]] = []
    blocker: str | None = None
    args: tuple[str, ...] = ()
    env: list[tuple[str, str]] = []
    for number, line in enumerate(lines, 1):
        if not line.startswith("//"):
            break  # directives live in the leading comment block
        if not _DIRECTIVE_RE.match(line):
            continue
        if m := _EXPECT_RE.fullmatch(line):
            file = os.path.normpath(rel_dir / m["file"]) if m["file"] else path.relative_to(ROOT)
            expects.append(Expect(m["code"], Path(file).as_posix(), int(m["line"]),
                                  int(m["col"]), m["text"]))
        elif m := _HINT_RE.fullmatch(line):
            if not expects:
                raise ValueError(f"{path}:{number}: '// hint:' before any '// expect:'")
            last = expects[-1]
            expects[-1] = Expect(last.code, last.file, last.line, last.column, last.text,
                                 (*last.hints, m["text"]))
        elif m := _XFAIL_RE.fullmatch(line):
            for kind in (k.strip() for k in m["kinds"].split(",")):
                if kind not in TEST_KINDS:
                    raise ValueError(f"{path}:{number}: unknown test kind {kind!r}")
                xfail.append((kind, m["reason"]))
        elif m := _BLOCKER_RE.fullmatch(line):
            blocker = m["name"]
        elif m := _ARGS_RE.fullmatch(line):
            args = tuple(m["args"].split())
        elif m := _ENV_RE.fullmatch(line):
            env.append((m["name"], m["value"]))
        else:
            raise ValueError(f"{path}:{number}: malformed directive: {line}")
    if not lines or not _EXPECT_RE.fullmatch(lines[0]):
        raise ValueError(f"{path}:1: the first line must be '// expect: CODE LINE:COL TEXT'")
    return Fixture(path, tuple(expects), tuple(xfail), blocker, args, tuple(env))


FIXTURES = [parse_fixture(p) for p in sorted(ERRORS.glob("*.msi"))]


def _params(kind: str, fixtures: list[Fixture]) -> list[Any]:
    out: list[Any] = []
    for fx in fixtures:
        reasons = [reason for k, reason in fx.xfail if k == kind]
        marks = [pytest.mark.xfail(strict=True, reason=r) for r in reasons[:1]]
        out.append(pytest.param(fx, id=fx.path.stem, marks=marks))
    return out


def run_dtmsi(*args: str, extra_env: tuple[tuple[str, str], ...] = ()) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"} | dict(extra_env)
    return subprocess.run(
        [sys.executable, "-m", "dtmsi", *args, "--color", "never"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def run_fixture(fx: Fixture, fmt: str, out_dir: Path) -> subprocess.CompletedProcess[str]:
    """``dtmsi check`` (or ``compile`` into a blocked DIR) in the given diagnostics format."""
    if fx.blocker is None and not fx.args:
        return run_dtmsi("check", fx.rel, "--diagnostics-format", fmt, extra_env=fx.env)
    out_dir.mkdir(exist_ok=True)
    if fx.blocker is not None:
        (out_dir / fx.blocker).mkdir()
    return run_dtmsi("compile", fx.rel, "-o", str(out_dir), *fx.args, "--diagnostics-format", fmt,
                     extra_env=fx.env)


def assert_clean_exit(r: subprocess.CompletedProcess[str], expected: int) -> None:
    assert _TRACEBACK not in r.stderr, r.stderr
    assert "internal error" not in r.stderr, r.stderr
    assert r.returncode == expected, f"exit code {r.returncode}, expected {expected}\n{r.stderr}"


def _matches(d: dict[str, Any], e: Expect) -> bool:
    span = d["span"]
    return bool(
        d["code"] == e.code
        and os.path.normpath(span["file"]) == e.file
        and (span["line"], span["column"]) == (e.line, e.column)
        and e.text in d["message"]
    )


def _show(diags: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"  {d['code']} {s['file']}:{s['line']}:{s['column']}: {d['message']}"
        for d in diags
        for s in [d["span"]]
    ) or "  (none)"


# ---------------------------------------------------------------- per fixture


@pytest.mark.parametrize("fx", _params("json", FIXTURES))
def test_json_diagnostics(fx: Fixture, tmp_path: Path) -> None:
    r = run_fixture(fx, "json", tmp_path / "out")
    assert_clean_exit(r, fx.exit_code)
    diags: list[dict[str, Any]] = json.loads(r.stderr)["diagnostics"]
    left = list(diags)
    for e in fx.expects:
        found = next((d for d in left if _matches(d, e)), None)
        assert found is not None, f"no diagnostic {e}; dtmsi reported:\n{_show(left)}"
        left.remove(found)
        assert found["severity"] == e.severity
        for hint in e.hints:
            assert hint in (found["hint"] or ""), f"hint {found['hint']!r} lacks {hint!r}"
    assert not left, f"diagnostics the fixture does not expect:\n{_show(left)}"


@pytest.mark.parametrize("fx", _params("text", FIXTURES))
def test_text_diagnostics(fx: Fixture, tmp_path: Path) -> None:
    r = run_fixture(fx, "text", tmp_path / "out")
    assert_clean_exit(r, fx.exit_code)
    lines = r.stderr.splitlines()
    for e in fx.expects:
        header = f"{e.file}:{e.line}:{e.column}: {e.severity}[{e.code}]: "
        at = next((i for i, line in enumerate(lines)
                   if line.startswith(header) and e.text in line), None)
        assert at is not None, f"no line {header}...{e.text}... in:\n{r.stderr}"
        source = (ROOT / e.file).read_text(encoding="utf-8").splitlines()[e.line - 1]
        caret = lines[at + 2] if at + 2 < len(lines) else ""
        assert re.fullmatch(r" {4}[ \t]*\^~*", caret), f"no caret line under:\n{lines[at + 1]}"
        if len(source) <= MAX_SNIPPET_COLUMNS:
            assert lines[at + 1 : at + 2] == [f"    {source}"], f"no source line after:\n{lines[at]}"
            assert caret.index("^") - 4 == e.column - 1, f"caret not at column {e.column}:\n{caret}"
        else:
            # A long line is shown as a window around the column, "..." marking
            # what is cut: what is left of the caret ends the line's text up to
            # the column, what is right of it continues from the column.
            shown = lines[at + 1][4:] if at + 1 < len(lines) else ""
            assert len(shown) <= MAX_SNIPPET_COLUMNS + 6, f"long snippet:\n{shown}"
            c = caret.index("^") - 4
            before, after = shown[:c], shown[c:]
            before = before[3:] if before.startswith("...") else before
            after = after[:-3] if after.endswith("...") else after
            assert source[: e.column - 1].endswith(before), f"window before column {e.column}:\n{shown}"
            assert source[e.column - 1 :].startswith(after), f"window after column {e.column}:\n{shown}"
            assert after, f"no text at column {e.column}:\n{shown}"
        end = next((j for j in range(at + 1, len(lines))
                    if _HEADER_RE.match(lines[j]) or lines[j].startswith("dtmsi: ")), len(lines))
        block = lines[at:end]
        for hint in e.hints:
            assert any(x.startswith("hint: ") and hint in x for x in block), \
                f"no 'hint: ...{hint}...' in:\n" + "\n".join(block)
    if fx.has_error:
        assert re.fullmatch(r"dtmsi: \d+ error\(s\).*", lines[-1]), lines[-1]


@pytest.mark.parametrize("fx", _params("compile", [f for f in FIXTURES if f.has_error]))
def test_failed_compile_writes_nothing(fx: Fixture, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    previous = out / "system.dtb"  # an output's name: a failed build must not replace it
    previous.write_bytes(b"\xd0\x0d\xfe\xed previous build\n")
    os.utime(previous, ns=(OLD_MTIME_NS, OLD_MTIME_NS))
    if fx.blocker is not None:
        (out / fx.blocker).mkdir()
    before = sorted(p.name for p in out.iterdir())
    r = run_dtmsi("compile", fx.rel, "-o", str(out), *fx.args, extra_env=fx.env)
    assert_clean_exit(r, 1)
    assert sorted(p.name for p in out.iterdir()) == before
    assert previous.read_bytes() == b"\xd0\x0d\xfe\xed previous build\n"
    assert previous.stat().st_mtime_ns == OLD_MTIME_NS


@pytest.mark.parametrize("fx", _params("compile", [f for f in FIXTURES if not f.has_error]))
def test_warning_fixture_compiles(fx: Fixture, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = run_dtmsi("compile", fx.rel, "-o", str(out), *fx.args, extra_env=fx.env)
    assert_clean_exit(r, 0)
    for e in fx.expects:
        assert f"{e.file}:{e.line}:{e.column}: warning[{e.code}]: " in r.stderr, r.stderr
    assert (out / "system.dts").is_file()
    assert (out / "system.dtb").is_file()


# ---------------------------------------------------------------- the catalogue


def _code_names() -> dict[str, str]:
    """Attribute name in ``dtmsi.codes`` -> code, e.g. ``DUPLICATE_BDF`` -> ``E302``."""
    return {name: value.id for name, value in vars(codes).items() if isinstance(value, codes.Code)}


def _referenced_names() -> dict[str, set[str]]:
    """``C.<NAME>`` uses in the dtmsi package -> the files that use them."""
    out: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for m in re.finditer(r"\bC\.([A-Z][A-Z0-9_]*)\b", path.read_text(encoding="utf-8")):
            out.setdefault(m[1], set()).add(path.relative_to(ROOT).as_posix())
    return out


def _emitted_codes() -> set[str]:
    names = _code_names()
    return {names[n] for n in _referenced_names() if n in names}


def test_fixture_names_and_codes() -> None:
    assert FIXTURES, f"no fixtures in {ERRORS}"
    for fx in FIXTURES:
        m = _NAME_RE.fullmatch(fx.path.name)
        assert m, f"{fx.path.name}: name it <CODE>-<short-name>.msi (lower case, '-' between words)"
        first = fx.expects[0]
        assert first.code == m["code"], f"{fx.path.name}: its first expect is {first}"
        for e in fx.expects:
            assert e.code in codes.CATALOGUE, f"{fx.path.name}: {e.code} is not in the catalogue"
            assert (ROOT / e.file).is_file(), f"{fx.path.name}: {e.file} does not exist"


def test_referenced_code_names_exist() -> None:
    names = _code_names()
    unknown = {n: sorted(files) for n, files in _referenced_names().items() if n not in names}
    assert not unknown, f"C.<NAME> uses that dtmsi.codes does not define: {unknown}"


def test_every_emitted_code_has_a_fixture() -> None:
    covered = {e.code for fx in FIXTURES for e in fx.expects}
    missing = sorted(_emitted_codes() - covered)
    assert not missing, f"codes dtmsi can emit without a fixture in tests/errors/: {missing}"


def test_not_yet_emitted_codes() -> None:
    actual = sorted(set(codes.CATALOGUE) - _emitted_codes())
    emitted_now = sorted(set(NOT_YET_EMITTED) - set(actual))
    unlisted = sorted(set(actual) - set(NOT_YET_EMITTED))
    assert actual == NOT_YET_EMITTED, (
        f"emitted now (drop from NOT_YET_EMITTED, add fixtures): {emitted_now}; "
        f"in the catalogue but emitted nowhere (add to NOT_YET_EMITTED): {unlisted}"
    )
