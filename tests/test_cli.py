"""The command line: exit codes, diagnostics on stderr, what gets written.

Exit codes (style.md habit 10): 0 success (warnings allowed), 1 errors in the
input, 2 usage errors; never a Python traceback. Every test runs the real
program in a subprocess: ``python -m dtmsi`` and the ``dtmsi`` console script
named in pyproject.toml (called through its entry point, so the test does not
depend on what happens to be installed on PATH).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import dtmsi
from tests.golden_update import ROOT

# An endpoint with no interrupt at all: valid, but warned about (W612).
WARN_MSI = """\
platform "example,cli" { msi native; }
gic = interrupt-controller gicv3 @ 0x0800_0000 size 64K {
    redistributor @ 0x080a_0000 size 0xf6_0000;
}
host-bridge pcie0 ecam @ 0x3000_0000 size 1M {
    buses 0..0;
    window mem32 cpu 0x4000_0000 size 256M;
    endpoint quiet @ 01.0 { id 8086:10d3 class 0x020000; bar 0 mem32 4K; }
}
"""
WARN_CODE = "W612"
WARN_AT = (8, WARN_MSI.splitlines()[7].index("quiet") + 1)

# The same machine with an msi-map naming a controller that does not exist (E201).
ERROR_MSI = WARN_MSI.replace("size 256M;\n", "size 256M;\n    msi map rid 0x0..0xff -> nosuch;\n")
ERROR_CODE = "E201"
ERROR_AT = (8, ERROR_MSI.splitlines()[7].index("nosuch") + 1)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("NO_COLOR", None)
    return env


def _entry_point() -> tuple[str, str]:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, attr = scripts["dtmsi"].partition(":")
    return module, attr


def dtmsi_script(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the ``dtmsi`` console script (its pyproject entry point) with ``args``."""
    module, attr = _entry_point()
    code = f"import sys; from {module} import {attr} as m; sys.argv[0] = 'dtmsi'; sys.exit(m())"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=cwd, env=_env(),
                          capture_output=True, text=True, check=False, timeout=120)


def python_m(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m dtmsi`` with ``args``."""
    return subprocess.run([sys.executable, "-m", "dtmsi", *map(str, args)], cwd=cwd, env=_env(),
                          capture_output=True, text=True, check=False, timeout=120)


def _no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr


@pytest.fixture
def case(tmp_path: Path) -> Path:
    (tmp_path / "warn.msi").write_text(WARN_MSI)
    (tmp_path / "bad.msi").write_text(ERROR_MSI)
    return tmp_path


def _tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_version(tmp_path: Path) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert dtmsi.__version__ == project["version"]
    proc = dtmsi_script("--version", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"dtmsi {dtmsi.__version__}"


def test_python_m_help(tmp_path: Path) -> None:
    proc = python_m("--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout
    for command in ("compile", "check"):
        assert command in proc.stdout
    sub = python_m("compile", "--help", cwd=tmp_path)
    assert sub.returncode == 0, sub.stderr
    for flag in ("--output", "--depfile", "--diagnostics-format", "--werror", "-W"):
        assert flag in sub.stdout


@pytest.mark.parametrize("args", [
    pytest.param(["compile", "--bogus", "warn.msi", "-o", "out"], id="unknown-option"),
    pytest.param(["compile", "warn.msi"], id="missing-output"),
    pytest.param(["compile", "missing.msi", "-o", "out"], id="nonexistent-input"),
    pytest.param(["frobnicate", "warn.msi"], id="unknown-command"),
    pytest.param(["compile", "warn.msi", "-o", "out", "-W", "no-E101"], id="silence-an-error"),
    pytest.param(["compile", "warn.msi", "-o", "out", "-W", "W612"], id="bad-W-syntax"),
    pytest.param(["compile", "warn.msi", "-o", "out", "--diagnostics-format", "xml"],
                 id="bad-format"),
    pytest.param(["compile", "warn.msi", "-o", "out", "--emit", "c,cpp"], id="unknown-emit-kind"),
])
def test_usage_errors_exit_2(case: Path, args: list[str]) -> None:
    before = _tree(case)
    proc = python_m(*args, cwd=case)
    assert proc.returncode == 2, f"exit {proc.returncode}: {proc.stderr}"
    assert "Usage:" in proc.stderr or "Error:" in proc.stderr, proc.stderr
    _no_traceback(proc)
    assert _tree(case) == before, "a usage error must write nothing"


def test_input_error_exit_1(case: Path) -> None:
    proc = python_m("compile", "bad.msi", "-o", "out", cwd=case)
    assert proc.returncode == 1, f"exit {proc.returncode}: {proc.stderr}"
    line, col = ERROR_AT
    assert f"bad.msi:{line}:{col}: error[{ERROR_CODE}]" in proc.stderr, proc.stderr
    assert proc.stdout == ""
    _no_traceback(proc)
    assert not (case / "out").exists(), "a failed compile must write nothing"


def test_input_error_keeps_old_outputs(case: Path) -> None:
    ok = python_m("compile", "warn.msi", "-o", "out", cwd=case)
    assert ok.returncode == 0, ok.stderr
    before = {p.name: p.read_bytes() for p in (case / "out").iterdir()}
    (case / "warn.msi").write_text(ERROR_MSI)
    proc = python_m("compile", "warn.msi", "-o", "out", cwd=case)
    assert proc.returncode == 1
    assert {p.name: p.read_bytes() for p in (case / "out").iterdir()} == before


def test_json_diagnostics(case: Path) -> None:
    proc = python_m("compile", "bad.msi", "-o", "out", "--diagnostics-format", "json", cwd=case)
    assert proc.returncode == 1
    _no_traceback(proc)
    data = json.loads(proc.stderr)
    diags = data["diagnostics"]
    assert [d["code"] for d in diags] == [ERROR_CODE]
    d = diags[0]
    assert d["severity"] == "error"
    assert (d["span"]["file"], d["span"]["line"], d["span"]["column"]) == ("bad.msi", *ERROR_AT)
    assert "nosuch" in d["message"]
    warn = python_m("check", "warn.msi", "--diagnostics-format", "json", cwd=case)
    assert warn.returncode == 0
    assert [(d["code"], d["severity"]) for d in json.loads(warn.stderr)["diagnostics"]] == [
        (WARN_CODE, "warning")]


def test_warning_exit_0(case: Path) -> None:
    proc = python_m("compile", "warn.msi", "-o", "out", cwd=case)
    assert proc.returncode == 0, proc.stderr
    line, col = WARN_AT
    assert f"warn.msi:{line}:{col}: warning[{WARN_CODE}]" in proc.stderr, proc.stderr
    assert (case / "out" / "system.dtb").is_file()


def test_W_no_code_silences_a_warning(case: Path) -> None:
    proc = python_m("compile", "warn.msi", "-o", "out", "-W", f"no-{WARN_CODE}", cwd=case)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lower = python_m("compile", "warn.msi", "-o", "out2", "-W", f"no-{WARN_CODE.lower()}", cwd=case)
    assert lower.returncode == 0 and lower.stderr == "", "codes are case-insensitive"


def test_werror_turns_a_warning_into_exit_1(case: Path) -> None:
    proc = python_m("compile", "warn.msi", "-o", "out", "--werror", cwd=case)
    assert proc.returncode == 1, proc.stderr
    assert f"error[{WARN_CODE}]" in proc.stderr
    _no_traceback(proc)
    assert not (case / "out").exists(), "--werror failure must write nothing"
    silenced = python_m("compile", "warn.msi", "-o", "out", "--werror", "-W", f"no-{WARN_CODE}",
                        cwd=case)
    assert silenced.returncode == 0, silenced.stderr


def test_check_writes_nothing(case: Path) -> None:
    before = _tree(case)
    for name, code in (("warn.msi", 0), ("bad.msi", 1)):
        proc = python_m("check", name, cwd=case)
        assert proc.returncode == code, proc.stderr
        _no_traceback(proc)
    example = ROOT / "examples" / "worked-native" / "worked-native.msi"
    proc = python_m("check", example, cwd=case)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout == ""
    assert _tree(case) == before


def test_script_and_python_m_agree(case: Path) -> None:
    a = dtmsi_script("compile", "warn.msi", "-o", "a", cwd=case)
    b = python_m("compile", "warn.msi", "-o", "b", cwd=case)
    assert a.returncode == b.returncode == 0
    assert a.stderr == b.stderr
    assert {p.name: p.read_bytes() for p in (case / "a").iterdir()} == \
        {p.name: p.read_bytes() for p in (case / "b").iterdir()}


def test_fast_exit_flushes_everything_to_pipes(case: Path) -> None:
    """The entry point ends with os._exit (skipping the interpreter's teardown
    of a large model): stdout and stderr must still arrive whole, with the
    right exit code."""
    from dtmsi.driver import compile_file
    from dtmsi.options import CompileOptions
    from dtmsi.report import render_table

    example = ROOT / "examples" / "switch-sriov" / "switch-sriov.msi"
    result = compile_file(CompileOptions(input=example))
    assert result.machine is not None and result.allocation is not None
    table = render_table(result.machine, result.allocation)
    for run in (python_m, dtmsi_script):
        proc = run("compile", example, "-o", "out", "--report", cwd=case)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == table
    proc = python_m("report", example, "--json", cwd=case)
    assert proc.returncode == 0 and json.loads(proc.stdout)["schema"] == "dtmsi-allocation/1"
    proc = python_m("compile", "bad.msi", "-o", "out2", cwd=case)
    assert proc.returncode == 1 and f"error[{ERROR_CODE}]" in proc.stderr and proc.stderr.endswith("\n")


def test_emit_chooses_the_outputs_and_the_depfile_names_them(case: Path) -> None:
    """By default every output (trees, allocation.json, C and Python stubs);
    --emit writes only the kinds named; the depfile lists what was written."""
    proc = python_m("compile", "warn.msi", "-o", "all", "-M", "all.d", cwd=case)
    assert proc.returncode == 0, proc.stderr
    everything = ["allocation.json", "system.dtb", "system.dts", "system_msi.c", "system_msi.h", "system_msi.py"]
    assert _tree(case / "all") == everything
    targets = (case / "all.d").read_text().split(":")[0].split()
    assert sorted(Path(t).name for t in targets) == everything
    proc = python_m("compile", "warn.msi", "-o", "some", "--emit", "c", "--emit", "json,dtb", cwd=case)
    assert proc.returncode == 0, proc.stderr
    assert _tree(case / "some") == ["allocation.json", "system.dtb", "system_msi.c", "system_msi.h"]
    # The same bytes as in the full compile: choosing outputs changes none of them.
    for name in _tree(case / "some"):
        assert (case / "some" / name).read_bytes() == (case / "all" / name).read_bytes(), name
