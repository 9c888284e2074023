"""The command line speaks gcc's and dtc's dialect (issue 11 point 5).

``-Werror`` and ``-Wno-CODE`` as gcc spells them, ``-I DIR`` searched after
the including file's directory, ``-`` for standard input (named ``<stdin>``),
``-o -`` refused, a warning for a file with nothing to compile, ``dtmsi
explain CODE`` for every code, and a progress line on a terminal only. Every
test runs the real program (``python -m dtmsi``) in a subprocess, except the
explain-every-code test, which calls the click command in-process to keep a
hundred runs cheap.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from dtmsi import codes
from dtmsi.cli import main as cli_main
from dtmsi.driver import compile_file
from dtmsi.explain import EXPLANATIONS
from dtmsi.options import DEFAULT_OUTPUTS, CompileOptions
from tests.golden_update import ROOT
from tests.test_cli import ERROR_MSI, WARN_AT, WARN_CODE, WARN_MSI, python_m
from tests.test_errors import FIXTURES, NOT_YET_EMITTED

# WARN_MSI split in two: the controller lives in an included file.
CONTROLLERS = """\
gic = interrupt-controller gicv3 @ 0x0800_0000 size 64K {
    redistributor @ 0x080a_0000 size 0xf6_0000;
}
"""
TOP = WARN_MSI.replace(CONTROLLERS, 'include "controllers.msi";\n')
assert TOP != WARN_MSI
BROKEN = "gic = interrupt-controller gicv3 @ {\n"  # E101 if this copy is the one read


def _codes(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [d["code"] for d in json.loads(proc.stderr)["diagnostics"]]


def _no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr


# ---------------------------------------------------------------- -Werror, -Wno-CODE


def test_gcc_spelling_of_werror_and_wno(tmp_path: Path) -> None:
    (tmp_path / "warn.msi").write_text(WARN_MSI)
    werror = python_m("compile", "warn.msi", "-o", "out", "-Werror", cwd=tmp_path)
    assert werror.returncode == 1, werror.stderr
    assert f"warn.msi:{WARN_AT[0]}:{WARN_AT[1]}: error[{WARN_CODE}]" in werror.stderr
    assert not (tmp_path / "out").exists(), "-Werror failure must write nothing"
    silenced = python_m("compile", "warn.msi", "-o", "out", f"-Wno-{WARN_CODE}", cwd=tmp_path)
    assert silenced.returncode == 0 and silenced.stderr == "", silenced.stderr
    both = python_m("check", "warn.msi", "-Werror", f"-Wno-{WARN_CODE.lower()}", cwd=tmp_path)
    assert both.returncode == 0 and both.stderr == "", both.stderr
    # The negative control: without -Wno the warning is still there, as a warning.
    plain = python_m("check", "warn.msi", cwd=tmp_path)
    assert plain.returncode == 0 and f"warning[{WARN_CODE}]" in plain.stderr


@pytest.mark.parametrize("flag", ["-Wbogus", "-Wno-E201", "-Wno-W999", "-Werrors"])
def test_bad_W_flags_are_usage_errors(tmp_path: Path, flag: str) -> None:
    (tmp_path / "warn.msi").write_text(WARN_MSI)
    proc = python_m("check", "warn.msi", flag, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "-W" in proc.stderr
    _no_traceback(proc)


# ---------------------------------------------------------------- -I DIR


def _project(tmp_path: Path) -> Path:
    """src/top.msi includes controllers.msi, which lives in inc1/ (and a broken copy in inc2/)."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "top.msi").write_text(TOP)
    for name, text in (("inc1", CONTROLLERS), ("inc2", BROKEN)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "controllers.msi").write_text(text)
    return tmp_path


def test_include_dirs_are_searched_in_order(tmp_path: Path) -> None:
    case = _project(tmp_path)
    missing = python_m("check", "src/top.msi", "--diagnostics-format", "json", cwd=case)
    assert missing.returncode == 1 and _codes(missing) == ["E103"], missing.stderr
    assert json.loads(missing.stderr)["diagnostics"][0]["hint"] == "looked in src; -I DIR adds a directory"
    nowhere = python_m("check", "src/top.msi", "-I", "src", "-I", ".", "--diagnostics-format", "json", cwd=case)
    assert json.loads(nowhere.stderr)["diagnostics"][0]["hint"] == "looked in src, src, ."
    first = python_m("check", "src/top.msi", "-I", "inc1", "-I", "inc2", cwd=case)
    assert first.returncode == 0, first.stderr
    assert f"warning[{WARN_CODE}]" in first.stderr
    # The same directories the other way round: the broken copy is read, and named.
    second = python_m("check", "src/top.msi", "-I", "inc2", "-I", "inc1", cwd=case)
    assert second.returncode == 1, second.stderr
    assert "inc2/controllers.msi:1:" in second.stderr and "error[E101]" in second.stderr
    _no_traceback(second)


def test_the_including_files_directory_comes_before_include_dirs(tmp_path: Path) -> None:
    case = _project(tmp_path)
    (case / "src" / "controllers.msi").write_text(CONTROLLERS)
    proc = python_m("compile", "src/top.msi", "-I", "inc2", "-o", "out", "-M", "out.d", cwd=case)
    assert proc.returncode == 0, proc.stderr
    depfile = (case / "out.d").read_text()
    assert "src/controllers.msi" in depfile and "inc2" not in depfile, depfile


def test_include_dirs_find_the_base_tree_and_the_depfile_names_it(tmp_path: Path) -> None:
    example = ROOT / "examples" / "qemu-virt"
    (tmp_path / "board").mkdir()
    (tmp_path / "src").mkdir()
    shutil.copy(example / "qemu-virt-base.dts", tmp_path / "board")
    shutil.copy(example / "qemu-devices.msi", tmp_path / "board")
    shutil.copy(example / "qemu-virt.msi", tmp_path / "src")
    missing = python_m("check", "src/qemu-virt.msi", "--diagnostics-format", "json", cwd=tmp_path)
    assert missing.returncode == 1 and "E103" in _codes(missing), missing.stderr
    proc = python_m("compile", "src/qemu-virt.msi", "-I", "board", "-o", "out", "-M", "out.d", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    reference = tmp_path / "reference"
    shutil.copytree(example, reference)
    ref = python_m("compile", "qemu-virt.msi", "-o", "out", cwd=reference)
    assert ref.returncode == 0, ref.stderr
    for name in ("system.dts", "system.dtb"):  # the same tree, base tree included
        assert (tmp_path / "out" / name).read_bytes() == (reference / "out" / name).read_bytes(), name
    depfile = (tmp_path / "out.d").read_text()
    for dep in ("src/qemu-virt.msi", "board/qemu-devices.msi", "board/qemu-virt-base.dts"):
        assert f"  {dep}" in depfile and f"\n{dep}:\n" in depfile, depfile


def test_depfile_has_phony_rules_and_mt_names_the_target(tmp_path: Path) -> None:
    case = _project(tmp_path)
    proc = python_m("compile", "src/top.msi", "-I", "inc1", "-o", "out", "-Mout.d", cwd=case)
    assert proc.returncode == 0, proc.stderr
    rule, *phony = (case / "out.d").read_text().split("\n\n")
    targets, deps = rule.split(":", 1)
    assert sorted(Path(t).name for t in targets.split()) == [
        "allocation.json", "system.dtb", "system.dts", "system_msi.c", "system_msi.h", "system_msi.py"]
    assert deps.replace("\\\n", " ").split() == ["src/top.msi", "inc1/controllers.msi"]
    assert phony == ["src/top.msi:", "inc1/controllers.msi:\n"], "one empty rule per input, as gcc -MP"
    stamp = python_m("compile", "src/top.msi", "-I", "inc1", "-o", "out", "-M", "stamp.d", "-MT", "out/.stamp",
                     cwd=case)
    assert stamp.returncode == 0, stamp.stderr
    assert (case / "stamp.d").read_text().startswith("out/.stamp: \\\n  src/top.msi \\\n")
    gcc = python_m("compile", "src/top.msi", "-I", "inc1", "-o", "out", "-MF", "gcc.d", "-MP", cwd=case)
    assert gcc.returncode == 0, gcc.stderr
    assert (case / "gcc.d").read_text() == (case / "out.d").read_text()
    assert not (case / "P").exists(), "-MP is a flag, not -M with the file name 'P'"
    alone = python_m("compile", "src/top.msi", "-I", "inc1", "-o", "out", "-MT", "x", cwd=case)
    assert alone.returncode == 2 and "-MT" in alone.stderr, alone.stderr


# ---------------------------------------------------------------- standard input


def _stdin(args: list[str], text: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "dtmsi", *args], input=text, cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_dash_reads_standard_input(tmp_path: Path) -> None:
    (tmp_path / "warn.msi").write_text(WARN_MSI)
    proc = _stdin(["compile", "-", "-o", "out"], WARN_MSI, tmp_path)
    assert proc.returncode == 0, proc.stderr
    line, col = WARN_AT
    assert proc.stderr.startswith(f"<stdin>:{line}:{col}: warning[{WARN_CODE}]"), proc.stderr
    assert WARN_MSI.splitlines()[line - 1] in proc.stderr, "the source line is shown"
    from_file = python_m("compile", "warn.msi", "-o", "ref", cwd=tmp_path)
    assert from_file.returncode == 0
    # The same machine: the trees differ only where they name their source.
    dts = (tmp_path / "out" / "system.dts").read_text()
    assert "Generated by dtmsi from <stdin>" in dts
    assert dts.replace("<stdin>", "warn.msi") == (tmp_path / "ref" / "system.dts").read_text()
    bad = _stdin(["check", "-"], ERROR_MSI, tmp_path)
    assert bad.returncode == 1 and "<stdin>:8:" in bad.stderr and "error[E201]" in bad.stderr, bad.stderr
    _no_traceback(bad)


def test_standard_input_includes_are_relative_to_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "inc1").mkdir()
    (tmp_path / "inc1" / "controllers.msi").write_text(CONTROLLERS)
    top = TOP.replace('"controllers.msi"', '"inc1/controllers.msi"')
    proc = _stdin(["compile", "-", "-o", "out", "-M", "out.d"], top, tmp_path)
    assert proc.returncode == 0, proc.stderr
    depfile = (tmp_path / "out.d").read_text()
    assert "inc1/controllers.msi" in depfile and "<stdin>" not in depfile, depfile
    via_I = _stdin(["check", "-", "-I", "inc1"], TOP, tmp_path)
    assert via_I.returncode == 0, via_I.stderr
    elsewhere = _stdin(["check", "-", "--diagnostics-format", "json"], top, tmp_path / "inc1")
    assert elsewhere.returncode == 1 and _codes(elsewhere) == ["E103"], elsewhere.stderr


def test_standard_input_that_is_not_utf8(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "dtmsi", "check", "-"], input=b"platform \xff;\n",
                          cwd=tmp_path, env=env, capture_output=True, timeout=120, check=False)
    assert proc.returncode == 1, proc.stderr
    assert b"standard input is not UTF-8" in proc.stderr and b"Traceback" not in proc.stderr
    closed = subprocess.run([sys.executable, "-m", "dtmsi", "check", "-"], stdin=subprocess.DEVNULL,
                            cwd=tmp_path, env=env, capture_output=True, timeout=120, check=False,
                            preexec_fn=lambda: os.close(0))
    assert closed.returncode == 1, closed.stderr
    assert b"cannot read standard input" in closed.stderr and b"internal error" not in closed.stderr


@pytest.mark.parametrize("args", [["-o", "-"], ["--output=-"], ["-o", "out", "--depfile", "-"]])
def test_dash_as_an_output_is_a_usage_error(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "warn.msi").write_text(WARN_MSI)
    proc = python_m("compile", "warn.msi", *args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "cannot be '-'" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warn.msi"], "nothing may be written"


# ---------------------------------------------------------------- nothing to compile


def test_an_empty_file_is_warned_about(tmp_path: Path) -> None:
    (tmp_path / "empty.msi").write_text("")
    proc = python_m("compile", "empty.msi", "-o", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("empty.msi:1:1: warning[W950]: "), proc.stderr
    strict = python_m("compile", "empty.msi", "-o", "strict", "-Werror", cwd=tmp_path)
    assert strict.returncode == 1 and "error[W950]" in strict.stderr
    assert not (tmp_path / "strict").exists()
    # A file that declares a machine is not warned about.
    (tmp_path / "warn.msi").write_text(WARN_MSI)
    assert "W950" not in python_m("check", "warn.msi", cwd=tmp_path).stderr


# ---------------------------------------------------------------- dtmsi explain


def test_every_code_has_an_explanation() -> None:
    assert sorted(EXPLANATIONS) == sorted(codes.CATALOGUE)
    for code, x in EXPLANATIONS.items():
        assert len(x.rule) > 30 and x.rule.endswith("."), f"{code}: say the rule in a sentence"


def _explain(code: str) -> str:
    result = CliRunner().invoke(cli_main, ["explain", code])
    assert result.exit_code == 0, result.output
    return result.output


_FILE_HEAD = re.compile(r"^(?:Example \((?P<example>[^)]+)\)|Beside it, (?P<helper>\S+)):$")


def _files_of(text: str) -> dict[str, str]:
    """The example and its helper files, as ``dtmsi explain`` prints them (indented blocks)."""
    files: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _FILE_HEAD.match(lines[i])
        i += 1
        if not m:
            continue
        name = m["example"] or m["helper"]
        body: list[str] = []
        i += 1  # the blank line after the heading
        while i < len(lines) and (lines[i] == "" or lines[i].startswith("    ")):
            body.append(lines[i][4:])
            i += 1
        files[name] = "\n".join(body).rstrip("\n") + "\n"
    return files


@pytest.mark.parametrize("code", sorted(codes.CATALOGUE))
def test_explain_example_triggers_its_code(code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = _explain(code)
    title = codes.CATALOGUE[code].title
    assert text.startswith(f"{code}: {title} ("), text
    assert "\nRule:\n" in text and "\nSource:\n" in text
    files = _files_of(text)
    if code in NOT_YET_EMITTED:
        assert not files and "No example" in text, text
        return
    example = next(iter(files))
    assert example.startswith(f"{code}-"), files
    for name, body in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(body)
    fixture = next(fx for fx in FIXTURES if fx.path.name == example)
    out = tmp_path / "out"
    if fixture.blocker is not None:  # E905: an output that cannot be written
        out.mkdir()
        (out / fixture.blocker).mkdir()
    for name, value in fixture.env:  # '// env: NAME=VALUE'
        monkeypatch.setenv(name, value)
    emit = DEFAULT_OUTPUTS
    if "--emit" in fixture.args:  # '// compile-args: --emit ...': a diagnostic of one output kind
        emit = frozenset(fixture.args[fixture.args.index("--emit") + 1].split(","))
    result = compile_file(
        CompileOptions(input=tmp_path / example, output_dir=out, keep_artifacts=False, emit=emit)
    )
    reported = [d.code.id for d in result.sink]
    assert code in reported, f"the example of {code} reports {reported}"


def test_explain_through_the_real_program(tmp_path: Path) -> None:
    proc = python_m("explain", "w612", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("W612: function has neither MSI, MSI-X nor INTx (warning)\n")
    assert "-Wno-W612" in proc.stdout
    bad = python_m("explain", "E999", cwd=tmp_path)
    assert bad.returncode == 2 and "not a dtmsi diagnostic code" in bad.stderr, bad.stderr


def test_explain_examples_can_fail(tmp_path: Path) -> None:
    """The negative control for the example test: the E302 example with its
    mistake fixed (the second NIC moved to slot 02.0) no longer reports E302."""
    files = _files_of(_explain("E302"))
    assert len(files) == 1 and next(iter(files)).startswith("E302-"), list(files)
    example = next(iter(files.values()))
    fixed = re.sub(r"(endpoint eth1 @ )01\.0", r"\g<1>02.0", example)
    assert fixed != example
    for name, text, expected in (("as-shown.msi", example, True), ("fixed.msi", fixed, False)):
        (tmp_path / name).write_text(text)
        sink = compile_file(CompileOptions(input=tmp_path / name)).sink
        assert ("E302" in [d.code.id for d in sink]) is expected, name


# ---------------------------------------------------------------- progress on a terminal


def _on_pty(args: list[str], cwd: Path, stdin_text: str | None = None,
            stdin_delay: float = 0.0) -> tuple[int, bytes]:
    """Run dtmsi with stderr on a pseudo-terminal; its exit code and what it wrote there."""
    import pty  # POSIX only; imported here so that collection works everywhere

    master, slave = pty.openpty()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "dtmsi", *args], cwd=cwd, env=env, stderr=slave,
                            stdout=subprocess.DEVNULL,
                            stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL)
    os.close(slave)
    if stdin_text is not None:
        assert proc.stdin is not None
        time.sleep(stdin_delay)
        proc.stdin.write(stdin_text.encode())
        proc.stdin.close()
    seen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    return proc.wait(timeout=120), seen


_PROGRESS = re.compile(rb"\r\x1b\[Kdtmsi: (?P<name>[^:]+): (?P<phase>[a-zA-Z ]+) \((?P<s>\d+\.\d) s\)")


def test_a_long_compile_shows_progress_on_a_terminal(tmp_path: Path) -> None:
    from bench.gen import generate

    (tmp_path / "big.msi").write_text(generate(20000, seed=1))  # ~3 s here: well above the 1 s delay
    code, seen = _on_pty(["check", "big.msi"], tmp_path)
    assert code == 0, seen
    lines = list(_PROGRESS.finditer(seen))
    assert lines, f"no progress line in {seen[:300]!r}"
    assert {m["name"] for m in lines} == {b"big.msi"}
    assert float(lines[0]["s"]) >= 0.9, "nothing before about a second"
    assert len({m["phase"] for m in lines}) >= 2, "the line follows the phases"
    assert seen.endswith(b"\r\x1b[K"), "the line is erased when the compile ends"


def test_progress_covers_a_slow_standard_input_and_erases_before_diagnostics(tmp_path: Path) -> None:
    code, seen = _on_pty(["check", "-", "--color", "never"], tmp_path, stdin_text=WARN_MSI, stdin_delay=1.6)
    assert code == 0, seen
    assert re.search(rb"dtmsi: <stdin>: reading standard input \(1\.\d s\)", seen), seen
    # The diagnostic starts on a clean line: the progress line was erased first.
    erased = seen.index(f"<stdin>:{WARN_AT[0]}:{WARN_AT[1]}: warning[{WARN_CODE}]".encode())
    assert seen[:erased].endswith(b"\r\x1b[K"), seen


def test_no_progress_when_short_or_not_a_terminal(tmp_path: Path) -> None:
    (tmp_path / "warn.msi").write_text(WARN_MSI)
    code, seen = _on_pty(["check", "warn.msi", "--color", "never"], tmp_path)
    assert code == 0 and b"warning[W612]" in seen
    assert not _PROGRESS.search(seen) and b"\x1b[K" not in seen, seen
    # As long as the slow-stdin compile above, but stderr is a pipe: no progress line.
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "dtmsi", "check", "-"], cwd=tmp_path, env=env,
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    time.sleep(1.6)
    _, err = proc.communicate(WARN_MSI.encode(), timeout=120)
    assert proc.returncode == 0
    assert err.startswith(b"<stdin>:") and b"\x1b" not in err and b"reading" not in err, err
