"""The generated C compiles everywhere the issue names, warning-free.

gcc and clang at C99, C11 and C17 with -Wall -Wextra -Werror -pedantic
-Wconversion -Wshadow (and more), at -O0 and -O2; the header from C++17
(compiled, linked with the C stub and run); Debian's cross compilers for
aarch64 and big-endian powerpc64; and the big-endian build runs the
simulator's harness under qemu-user with the same trace as the Python stub.
A deliberately broken stub shows each compiler really checks.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dtmsi.sim import SimOptions
from tests.golden_update import EXAMPLES, example_names
from tests.stubs.stubrun import Compiled, compile_msi, final_state_problems, have, parity

WARNINGS = [
    "-Wall",
    "-Wextra",
    "-Werror",
    "-pedantic",
    "-Wconversion",
    "-Wshadow",
    "-Wstrict-prototypes",
    "-Wmissing-prototypes",
    "-Wcast-qual",
    "-Wundef",
]


@pytest.fixture(scope="module")
def every_stub(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Every example's generated .c files (one per partition)."""
    files: list[Path] = []
    for name in example_names():
        out = tmp_path_factory.mktemp(name)
        compile_msi(EXAMPLES / name / f"{name}.msi", out)
        files.extend(sorted(out.glob("*_msi.c")))
    assert len(files) >= len(example_names())
    return files


def _cc(cmd: list[str], cwd: Path) -> None:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, f"{' '.join(cmd[:6])} ... failed:\n{done.stdout}{done.stderr}"


@pytest.mark.parametrize("std", ["c99", "c11", "c17"])
@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_every_stub_compiles_warning_free(every_stub: list[Path], cc: str, std: str, tmp_path: Path) -> None:
    have(cc)
    for opt in ("-O0", "-O2"):
        for c in every_stub:
            _cc([cc, f"-std={std}", opt, *WARNINGS, "-I", str(c.parent), "-c", str(c), "-o", "x.o"], tmp_path)


@pytest.mark.parametrize("cc", ["aarch64-linux-gnu-gcc", "powerpc64-linux-gnu-gcc"])
def test_every_stub_cross_compiles(every_stub: list[Path], cc: str, tmp_path: Path) -> None:
    have(cc)
    for c in every_stub:
        _cc([cc, "-std=c99", "-O2", "-ffreestanding", *WARNINGS, "-I", str(c.parent), "-c", str(c), "-o", "x.o"],
            tmp_path)


def test_a_broken_stub_is_refused(every_stub: list[Path], tmp_path: Path) -> None:
    """The flags bite: an implicit narrowing the stub must never contain fails."""
    src = every_stub[0].read_text() + "int dtmsi_narrow(int x);\nint dtmsi_narrow(int x) { uint8_t c = x; return c; }\n"
    bad = every_stub[0].parent / "broken_msi.c"
    bad.write_text(src)
    done = subprocess.run(["gcc", "-std=c99", *WARNINGS, "-I", str(bad.parent), "-c", str(bad), "-o", "x.o"],
                          cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "conversion" in done.stderr


CPP_USE = r"""
#include "{header}"
#include <cstdio>
#include <cstring>

// Includable from C++: the header's declarations have C linkage.
static_assert(sizeof(struct {p}_result) >= 8, "result");

int main() {{
    static struct {p}_state st;  // zeroed
    struct {p}_hooks hooks;
    std::memset(&hooks, 0, sizeof hooks);
    // Without hooks every function reports a missing hook, and no call is made.
    int failed = {p}_setup_all(&hooks, &st);
    if (failed != (int){P}_NFUNCTIONS) return 1;
    if (std::strcmp({p}_strerror({P}_E_HOOK), "a platform hook failed or is missing") != 0) return 2;
    const struct {p}_function *f = &{p}_table[0];
    if ({p}_find(f->seg, f->bus, f->devfn) != 0) return 3;
    if ({p}_find(0xffffu, 0xffu, 0xffu) != -1) return 4;
    std::printf("%s\n", {p}_digest);
    return 0;
}}
"""


def test_header_works_from_cplusplus(every_stub: list[Path], tmp_path: Path) -> None:
    have("g++")
    for c in every_stub:
        header = c.with_suffix(".h")
        prefix = next(line.split()[1][: -len("_hooks")] for line in header.read_text().splitlines()
                      if line.startswith("struct ") and line.split()[1].endswith("_hooks"))
        use = tmp_path / f"use_{c.stem}.cpp"
        use.write_text(CPP_USE.format(header=header.name, p=prefix, P=prefix.upper()))
        _cc(["gcc", "-std=c99", *WARNINGS, "-c", str(c), "-o", f"{c.stem}.o"], tmp_path)
        _cc(["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I", str(c.parent), str(use),
             f"{c.stem}.o", "-o", f"use_{c.stem}"], tmp_path)
        run = subprocess.run([str(tmp_path / f"use_{c.stem}")], capture_output=True, text=True, check=False)
        assert run.returncode == 0, (c.name, run.returncode)
        assert run.stdout.startswith("sha256:"), run.stdout


# One example per mode, on a big-endian powerpc64 build run under qemu-user.
BIG_ENDIAN = ["qemu-virt", "powernv-opal", "worked-papr"]


@pytest.mark.parametrize("example", BIG_ENDIAN)
def test_big_endian_build_behaves_like_python(example: str, tmp_path: Path) -> None:
    have("powerpc64-linux-gnu-gcc")
    have("qemu-ppc64")
    compiled: Compiled = compile_msi(EXAMPLES / example / f"{example}.msi", tmp_path / "out")
    stub = compiled.stubs[0]
    py, _, c_sim = parity(
        compiled,
        stub,
        ["setup_all", "teardown_all", "setup_all"],
        tmp_path,
        SimOptions(powervm=True),
        cc="powerpc64-linux-gnu-gcc",
        ldflags=("-static",),
        runner=("qemu-ppc64",),
    )
    assert py.values == [0, 0, 0]
    assert c_sim.violations == []
    assert final_state_problems(compiled, stub, c_sim) == []
