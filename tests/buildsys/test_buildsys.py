"""dtmsi under the real make, ninja, cmake and meson (issue 11 point 4).

The build files are the forms the README shows under "Using dtmsi in your
build", read from README.md itself, so the documentation and what is tested
cannot drift apart. Each runs over a copy of examples/qemu-virt (an include,
qemu-devices.msi, and a base tree, qemu-virt-base.dts) with a dependant that
compiles the generated C stub, and goes through one build's life:

1. the first build runs dtmsi once and compiles the stub;
2. a second build runs nothing;
3. touching the include reruns dtmsi, whose unchanged outputs keep their
   mtimes, so the dependant is not rebuilt; the build after that runs nothing;
4. changing the include (fewer e1000e vectors) rebuilds the dependant: the
   control that shows step 3's check can fail;
5. deleting the include fails the build with dtmsi's E103 and leaves the
   outputs as they were, not a stale success.

``dtmsi`` on PATH is a wrapper that logs each run and calls this tree's dtmsi.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.golden_update import ROOT

EXAMPLE = ROOT / "examples" / "qemu-virt"
INCLUDE = "qemu-devices.msi"
SECTION = "## Using dtmsi in your build"
NAMES = ("system.dtb", "system.dts", "allocation.json", "system_msi.c", "system_msi.h", "system_msi.py")


def readme_forms() -> dict[str, str]:
    """The fenced code blocks of the README's build section, by language."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start : end if end >= 0 else None]
    forms: dict[str, str] = {}
    for m in re.finditer(r"^```(\w+)\n(.*?)^```$", section, re.S | re.M):
        assert m[1] not in forms, f"two {m[1]} blocks in the README's build section"
        forms[m[1]] = m[2]
    return forms


@dataclass(frozen=True)
class BuildSystem:
    name: str
    tool: str  # the executable that must be installed
    build_file: str  # written from the README block of language ``name``
    configure: tuple[str, ...]
    build: tuple[str, ...]
    out_dir: str  # where the six outputs land, relative to the project
    dependant: str  # what the build makes from system_msi.c


SYSTEMS = [
    BuildSystem("make", "make", "Makefile", (), ("make",), "msi", "board_stub.o"),
    BuildSystem("ninja", "ninja", "build.ninja", (), ("ninja",), "msi", "board_stub.o"),
    BuildSystem("cmake", "cmake", "CMakeLists.txt",
                ("cmake", "-S", ".", "-B", "build", "-G", "Ninja", f"-DCMAKE_MODULE_PATH={ROOT / 'cmake'}"),
                ("cmake", "--build", "build"), "build/board_msi", "build/libboard_stub.a"),
    BuildSystem("meson", "meson", "meson.build", ("meson", "setup", "build"),
                ("meson", "compile", "-C", "build"), "build", "build/libboard_stub.a"),
]


class Project:
    def __init__(self, root: Path, system: BuildSystem) -> None:
        self.root = root
        self.system = system
        self.log = root.parent / "dtmsi.log"
        shutil.copytree(EXAMPLE, root)
        (root / system.build_file).write_text(readme_forms()[system.name])
        bin_dir = root.parent / "bin"
        bin_dir.mkdir()
        wrapper = bin_dir / "dtmsi"
        wrapper.write_text(
            "#!/bin/sh\n"
            f'echo "$*" >> "{self.log}"\n'
            f'PYTHONPATH="{ROOT}" exec "{sys.executable}" -m dtmsi "$@"\n'
        )
        wrapper.chmod(0o755)
        self.env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "NO_COLOR")}
        self.env["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
        if system.configure:
            self.run(*system.configure)

    def run(self, *cmd: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(cmd, cwd=self.root, env=self.env, capture_output=True, text=True,
                              timeout=300, check=False)
        if ok:
            assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc

    def build(self, ok: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(*self.system.build, ok=ok)

    @property
    def runs(self) -> int:
        return len(self.log.read_text().splitlines()) if self.log.exists() else 0

    @property
    def outputs(self) -> list[Path]:
        return [self.root / self.system.out_dir / n for n in NAMES]

    @property
    def dependant(self) -> Path:
        return self.root / self.system.dependant

    def mtimes(self) -> dict[str, int]:
        return {str(p.relative_to(self.root)): p.stat().st_mtime_ns for p in [*self.outputs, self.dependant]}

    def touch(self, name: str) -> None:
        """A new mtime, later than every output's, without changing the bytes."""
        path = self.root / name
        latest = max(p.stat().st_mtime_ns for p in [*self.outputs, self.dependant])
        now = max(time.time_ns(), latest + 1_000_000)
        os.utime(path, ns=(now, now))


@pytest.fixture(params=SYSTEMS, ids=[s.name for s in SYSTEMS])
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    system: BuildSystem = request.param
    assert shutil.which(system.tool), f"{system.tool} is not installed (scripts/apt-packages.txt)"
    return Project(tmp_path / "proj", system)


def test_the_readme_shows_every_form() -> None:
    assert sorted(readme_forms()) == sorted(s.name for s in SYSTEMS)


def test_build_life(project: Project) -> None:
    # 1. The first build compiles and makes the dependant.
    project.build()
    assert project.runs == 1
    assert all(p.is_file() for p in project.outputs), project.outputs
    assert project.dependant.is_file()
    first = project.mtimes()
    stub = (project.root / project.system.out_dir / "system_msi.c").read_bytes()

    # 2. Nothing changed: nothing runs.
    project.build()
    assert project.runs == 1, "a no-op build ran dtmsi"
    assert project.mtimes() == first

    # 3. The include is touched, not changed: dtmsi reruns, nothing else does.
    project.touch(INCLUDE)
    project.build()
    assert project.runs == 2, "touching an include must rerun dtmsi"
    assert project.mtimes() == first, "unchanged outputs kept their mtimes; the dependant was not rebuilt"
    project.build()
    assert project.runs == 2, "the build after a touch ran dtmsi again"

    # 4. The include really changes: the stub changes and its dependant is rebuilt.
    devices = project.root / INCLUDE
    text = devices.read_text()
    assert "vectors 3 min 3;" in text
    devices.write_text(text.replace("vectors 3 min 3;", "vectors 2 min 2;"))
    project.touch(INCLUDE)
    project.build()
    assert project.runs == 3
    assert (project.root / project.system.out_dir / "system_msi.c").read_bytes() != stub
    changed = project.mtimes()
    assert changed[project.system.dependant] != first[project.system.dependant], "the dependant was not rebuilt"

    # 5. The include is deleted: dtmsi says so, and the outputs stay as they were.
    before = {p: p.read_bytes() for p in project.outputs}
    devices.unlink()
    failed = project.build(ok=False)
    said = failed.stdout + failed.stderr
    assert failed.returncode != 0, said
    assert project.runs == 4, "the build must run dtmsi, not stop before it"
    # The include's path as the build system passed the top file (relative or absolute).
    assert re.search(rf"error\[E103\]: cannot read '(?:[^']*/)?{re.escape(INCLUDE)}'", said), said
    assert "No rule to make target" not in said
    assert {p: p.read_bytes() for p in project.outputs} == before
    assert project.mtimes() == changed


def test_without_phony_rules_make_cannot_build_after_a_deleted_include(tmp_path: Path) -> None:
    """The negative control for the depfile's -MP rules: the same project
    with them removed from the depfile stops in make itself, before dtmsi."""
    project = Project(tmp_path / "proj", SYSTEMS[0])
    project.build()
    depfile = project.root / "msi" / "dtmsi.d"
    text = depfile.read_text()
    rule = text.split("\n\n")[0] + "\n"
    assert f"\n{INCLUDE}:\n" in text and f"\n{INCLUDE}:\n" not in rule
    depfile.write_text(rule)
    (project.root / INCLUDE).unlink()
    failed = project.build(ok=False)
    assert failed.returncode != 0
    assert f"No rule to make target '{INCLUDE}'" in failed.stderr, failed.stderr
    assert project.runs == 1, "make stopped before running dtmsi"
