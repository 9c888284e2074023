"""Regenerate the reviewed golden outputs in tests/golden/<example>/.

    python -m tests.golden_update [EXAMPLE ...]     (``make golden`` runs it for all)

This is the only code that writes tests/golden/. Every example in examples/
is compiled exactly as tests/test_examples.py compiles it (the CLI, run from
the repository root on ``examples/<name>/<name>.msi``), and every ``.dts`` it
produces (system.dts plus one per partition), and for one example per MSI
mode (``STUB_GOLDEN``) the generated stubs ``*_msi.h/.c/.py``, replace the
golden copies; golden files the compiler no longer produces are removed. Review the diff
like code before committing it: the golden files are what the tests hold the
compiler to.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
GOLDEN = ROOT / "tests" / "golden"


def example_names() -> list[str]:
    """Every directory examples/<name>/ holding <name>.msi, sorted."""
    return sorted(p.parent.name for p in EXAMPLES.glob("*/*.msi") if p.stem == p.parent.name)


def example_argument(name: str) -> str:
    """The input as the CLI is given it: relative to the repository root.

    Provenance comments in the outputs print the input as given, so the
    golden files, the tests and ``make golden`` all spell it this one way.
    """
    return f"examples/{name}/{name}.msi"


def compile_example(name: str, outdir: Path) -> subprocess.CompletedProcess[str]:
    """``python -m dtmsi compile examples/<name>/<name>.msi -o OUTDIR`` from the repository root."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "dtmsi", "compile", example_argument(name), "-o", str(outdir)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )


# One example per MSI mode whose generated stubs are golden too (native, OPAL, PAPR).
STUB_GOLDEN = ("qemu-virt", "powernv-opal", "worked-papr")


def reviewed_outputs(outdir: Path, name: str) -> dict[str, str]:
    """File name -> text of the outputs of example ``name`` that are held to
    golden copies: every .dts, and the stubs of the STUB_GOLDEN examples."""
    patterns = ["*.dts", *(("*_msi.h", "*_msi.c", "*_msi.py") if name in STUB_GOLDEN else ())]
    return {p.name: p.read_text(encoding="utf-8") for pat in patterns for p in sorted(outdir.glob(pat))}


def golden_files(name: str) -> dict[str, str]:
    """File name -> text of the golden files of one example (empty if none)."""
    return reviewed_outputs(GOLDEN / name, name) if (GOLDEN / name).is_dir() else {}


def update(name: str) -> tuple[bool, list[str]]:
    """Regenerate one example's golden files; (compiled, changed file names)."""
    with tempfile.TemporaryDirectory(prefix="dtmsi-golden-") as tmp:
        out = Path(tmp) / "out"
        proc = compile_example(name, out)
        if proc.returncode != 0:
            sys.stderr.write(f"golden: {name}: compile failed (exit {proc.returncode}):\n"
                             f"{proc.stderr}")
            return False, []
        new = reviewed_outputs(out, name)
    old = golden_files(name)
    target = GOLDEN / name
    target.mkdir(parents=True, exist_ok=True)
    changed: list[str] = []
    for fname, text in new.items():
        if old.get(fname) != text:
            (target / fname).write_text(text, encoding="utf-8")
            changed.append(fname)
    for fname in sorted(set(old) - set(new)):
        (target / fname).unlink()
        changed.append(fname + " (removed)")
    return True, changed


def main(argv: list[str]) -> int:
    known = example_names()
    names = argv or known
    unknown = [n for n in names if n not in known]
    if unknown:
        sys.stderr.write(f"golden: no such example: {', '.join(unknown)} "
                         f"(known: {', '.join(known)})\n")
        return 2
    failed = False
    for name in names:
        ok, changed = update(name)
        failed |= not ok
        if ok:
            what = ", ".join(changed) + " updated" if changed else "unchanged"
            print(f"golden: {name}: {what}")
    stale = sorted(p.name for p in GOLDEN.iterdir() if p.is_dir() and p.name not in known) \
        if GOLDEN.is_dir() and not argv else []
    for name in stale:
        shutil.rmtree(GOLDEN / name)
        print(f"golden: {name}: removed (no such example any more)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
