"""Start-up (issue 11 point 7): what a small compile does not redo or import.

* dtmsi's cache (``dtmsi/cache.py``) keeps a base DTS as read (when it
  includes nothing), the base-tree parser's tables and the stub templates'
  compiled code: with it warm, a compile does not even import lark, nor
  compile a template (hooks that fail if either happens; the same hooks fail
  with the cache off, so they can fail), and every output is byte-identical
  with the cache off, cold, warm, damaged or unwritable.
* A base DTS that includes a file is read afresh: an edit to the included
  file shows in the output.
* A base tree with a syntax error reads the same with a cached parser.
* Jinja is imported only when a stub is emitted.
* ``python -m bench.startup`` runs and prints its figures.

Wall-clock targets are not asserted here (the machine is shared); the figures
are in the README's measured section, from ``bench/startup.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "qemu-virt" / "qemu-virt.msi"
BAD_BASE = ROOT / "tests" / "errors" / "E901-base-tree-syntax.msi"

# Fail if the base-tree parser is built or a template compiled in this process.
NOTHING_BUILT = """
import lark, jinja2.environment
def built(*a, **k): raise RuntimeError("the LALR parser was built")
def compiled(*a, **k): raise RuntimeError("a template was compiled")
lark.Lark._build_parser = built
jinja2.environment.Environment._compile = compiled
"""
# Fail if lark is imported at all (a base DTS read from the cache needs none).
NO_LARK = """
import sys, jinja2.environment
sys.modules["lark"] = None
def compiled(*a, **k): raise RuntimeError("a template was compiled")
jinja2.environment.Environment._compile = compiled
"""


def dtmsi(*args: str | Path, cache: Path | str, prelude: str = "",
          cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """The command line in a child process, with DTMSI_CACHE_DIR=cache ("" = off)."""
    env = dict(os.environ, DTMSI_CACHE_DIR=str(cache),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    code = prelude + "\nimport sys\nfrom dtmsi.entry import main\nsys.argv[0] = 'dtmsi'\nmain()\n"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, check=False, timeout=120)


def _outputs(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_the_cache_changes_no_output_and_is_used(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    runs: dict[str, dict[str, bytes]] = {}

    def compile_with(name: str, where: Path | str, prelude: str = "") -> None:
        proc = dtmsi("compile", EXAMPLE, "-o", tmp_path / name, "--debug", cache=where, prelude=prelude)
        assert proc.returncode == 0, f"{name}: {proc.stderr}"
        runs[name] = _outputs(tmp_path / name)

    compile_with("off", "")
    compile_with("cold", cache)
    entries = sorted(p.name for p in cache.iterdir())
    assert [e.rsplit("-", 1)[0] for e in entries] == ["base-dts", "dts-parser", "templates"], entries
    base, parser = cache / entries[0], cache / entries[1]
    assert len(list((cache / entries[2]).iterdir())) == 3  # msi.h, msi.c, msi.py
    compile_with("warm", cache, NO_LARK)
    base.write_bytes(b"not a pickle")  # damaged: read again, and stored again
    compile_with("damaged tree", cache, NOTHING_BUILT)
    assert base.read_bytes() != b"not a pickle"
    base.unlink()
    parser.write_bytes(b"not a pickle")  # damaged: built again, and stored again
    compile_with("damaged parser", cache)
    assert parser.read_bytes() != b"not a pickle" and base.exists()
    compile_with("damaged-then-warm", cache, NO_LARK)
    blocked = tmp_path / "a-file"
    blocked.write_text("in the way of the cache directory")
    compile_with("unwritable", blocked)
    assert len(runs["off"]) == 6  # trees, allocation.json, C and Python stubs
    for name, files in runs.items():
        assert files == runs["off"], f"outputs with the cache {name} differ"


def test_the_hooks_fail_when_the_cache_is_off(tmp_path: Path) -> None:
    """The negative control of the test above: without a cache, the same
    hooks see the parser built and lark imported."""
    proc = dtmsi("compile", EXAMPLE, "-o", tmp_path / "out", "--debug", cache="", prelude=NOTHING_BUILT)
    assert proc.returncode != 0 and "the LALR parser was built" in proc.stderr
    proc = dtmsi("compile", EXAMPLE, "-o", tmp_path / "out2", "--debug", cache="", prelude=NO_LARK)
    assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr and "lark" in proc.stderr


def test_a_base_tree_that_includes_a_file_is_read_afresh(tmp_path: Path) -> None:
    case = tmp_path / "case"
    shutil.copytree(EXAMPLE.parent, case)
    base = case / "qemu-virt-base.dts"
    base.write_text(base.read_text() + '\n/include/ "marker.dtsi"\n')
    cache = tmp_path / "cache"
    for marker in ("first", "second"):
        (case / "marker.dtsi").write_text(f'/ {{ dtmsi-test-marker = "{marker}"; }};\n')
        proc = dtmsi("compile", case / EXAMPLE.name, "-o", tmp_path / "out", cache=cache)
        assert proc.returncode == 0, proc.stderr
        assert f'dtmsi-test-marker = "{marker}";' in (tmp_path / "out" / "system.dts").read_text()
    assert not list(cache.glob("base-dts-*"))


def test_a_cached_parser_reports_base_tree_errors_alike(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    warm = dtmsi("compile", EXAMPLE, "-o", tmp_path / "out", cache=cache)
    assert warm.returncode == 0, warm.stderr
    fresh = dtmsi("check", BAD_BASE.relative_to(ROOT), "--color", "never", cache="")
    cached = dtmsi("check", BAD_BASE.relative_to(ROOT), "--color", "never", cache=cache, prelude=NOTHING_BUILT)
    assert fresh.returncode == cached.returncode == 1
    assert "error[E901]" in fresh.stderr and "expected" in fresh.stderr, fresh.stderr
    assert cached.stderr == fresh.stderr


def test_jinja_is_imported_only_for_stubs(tmp_path: Path) -> None:
    report = ("import os, sys\n_exit = os._exit\n"
              "def _report(code):\n"
              "    sys.stderr.write('jinja2 imported: %s\\n' % ('jinja2' in sys.modules))\n"
              "    _exit(code)\n"
              "os._exit = _report\n")
    trees = dtmsi("compile", EXAMPLE, "-o", tmp_path / "trees", "--emit", "dtb,dts,json", cache="",
                  prelude=report)
    stubs = dtmsi("compile", EXAMPLE, "-o", tmp_path / "stubs", "--emit", "c", cache="", prelude=report)
    assert trees.returncode == 0 and "jinja2 imported: False" in trees.stderr, trees.stderr
    assert stubs.returncode == 0 and "jinja2 imported: True" in stubs.stderr, stubs.stderr


def test_the_startup_benchmark_runs() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    proc = subprocess.run([sys.executable, "-m", "bench.startup", "--repeat", "1"], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "python -c pass" in proc.stdout and "ratio" in proc.stdout and "target <= 150 ms" in proc.stdout
