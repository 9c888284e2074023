"""Builds are reproducible and incremental (style.md habits 5 and 7).

* The same input gives byte-identical outputs under different PYTHONHASHSEED
  values, from different working directories and into different output paths.
* A second compile into the same directory rewrites nothing that did not
  change (mtimes stay); a changed input rewrites only the outputs that changed.
* ``--depfile`` lists every input read (the .msi, included files, the base
  tree) in Make syntax, and make itself accepts it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.golden_update import EXAMPLES, ROOT, example_names

OLD_NS = 1_000_000_000 * 1_000_000_000  # 2001-09-09: older than anything a compile writes


def run(*args: str | Path, cwd: Path, seed: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    if seed is not None:
        env["PYTHONHASHSEED"] = seed
    proc = subprocess.run([sys.executable, "-m", "dtmsi", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, f"dtmsi {' '.join(map(str, args))} exited {proc.returncode}:\n" \
                                 f"{proc.stderr}"
    return proc


def outputs(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def mtimes(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(directory.iterdir()) if p.is_file()}


def age(directory: Path) -> None:
    """Give every file an old mtime, so that any rewrite shows."""
    for p in directory.iterdir():
        os.utime(p, ns=(OLD_NS, OLD_NS))


def copy_example(name: str, dest: Path) -> Path:
    """examples/<name>/ copied to dest (base trees and includes come along)."""
    shutil.copytree(EXAMPLES / name, dest)
    return dest / f"{name}.msi"


def assert_same(a: dict[str, bytes], b: dict[str, bytes], what: str) -> None:
    assert sorted(a) == sorted(b), f"{what}: different files {sorted(a)} vs {sorted(b)}"
    differ = [n for n in a if a[n] != b[n]]
    assert not differ, f"{what}: {differ} differ"


@pytest.mark.parametrize("name", example_names())
def test_hash_seed_does_not_matter(name: str, tmp_path: Path) -> None:
    src = f"examples/{name}/{name}.msi"
    results = []
    for seed in ("0", "1", "4242", "random"):
        out = tmp_path / f"seed-{seed}"
        run("compile", src, "-o", out, cwd=ROOT, seed=seed)
        results.append(outputs(out))
    for other in results[1:]:
        assert_same(results[0], other, f"{name} under another PYTHONHASHSEED")


def test_output_path_does_not_matter(tmp_path: Path) -> None:
    src = copy_example("switch-sriov", tmp_path / "case")
    run("compile", src.name, "-o", "out", cwd=src.parent)
    run("compile", src.name, "-o", tmp_path / "deep" / "er" / "out", cwd=src.parent)
    run("compile", src.name, "-o", "../elsewhere", cwd=src.parent)
    first = outputs(src.parent / "out")
    assert_same(first, outputs(tmp_path / "deep" / "er" / "out"), "absolute nested output dir")
    assert_same(first, outputs(tmp_path / "elsewhere"), "output dir outside the input's")


@pytest.mark.parametrize("name", ["qemu-virt", "legacy-bridges"])
def test_working_directory_does_not_matter(name: str, tmp_path: Path) -> None:
    """Two copies of an example in different places, each compiled from its own directory."""
    a = copy_example(name, tmp_path / "one" / "place")
    b = copy_example(name, tmp_path / "another" / "much" / "deeper" / "place")
    run("compile", a.name, "-o", "out", cwd=a.parent)
    run("compile", b.name, "-o", "out", cwd=b.parent)
    assert_same(outputs(a.parent / "out"), outputs(b.parent / "out"), "another working directory")


def _spellings(name: str, tmp_path: Path) -> list[dict[str, bytes]]:
    """One input file named three ways: from the repository root, from its own
    directory, and by absolute path from an unrelated directory."""
    rel = f"examples/{name}/{name}.msi"
    run("compile", rel, "-o", tmp_path / "from-root", cwd=ROOT)
    run("compile", f"{name}.msi", "-o", tmp_path / "from-dir", cwd=EXAMPLES / name)
    (tmp_path / "elsewhere").mkdir()
    run("compile", ROOT / rel, "-o", tmp_path / "absolute", cwd=tmp_path / "elsewhere")
    return [outputs(tmp_path / d) for d in ("from-root", "from-dir", "absolute")]


def test_input_spelling_does_not_change_the_dtb(tmp_path: Path) -> None:
    results = _spellings("worked-native", tmp_path)
    for other in results[1:]:
        assert other["system.dtb"] == results[0]["system.dtb"]


def test_input_spelling_does_not_change_any_output(tmp_path: Path) -> None:
    results = _spellings("worked-native", tmp_path)
    assert b"/work/" not in results[2]["system.dts"] and str(ROOT).encode() not in \
        results[2]["system.dts"], "absolute path in system.dts"
    for other in results[1:]:
        assert_same(results[0], other, "the same input named another way")


def test_second_compile_rewrites_nothing(tmp_path: Path) -> None:
    src = copy_example("qemu-virt", tmp_path / "case")
    out, dep = tmp_path / "out", tmp_path / "out.d"
    run("compile", src.name, "-o", out, "--depfile", dep, cwd=src.parent)
    age(out)
    os.utime(dep, ns=(OLD_NS, OLD_NS))
    before, data = mtimes(out), outputs(out)
    run("compile", src.name, "-o", out, "--depfile", dep, cwd=src.parent)
    assert mtimes(out) == before, "unchanged outputs were rewritten"
    assert dep.stat().st_mtime_ns == OLD_NS, "unchanged depfile was rewritten"
    assert outputs(out) == data
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")], "temporary files left"


PARTITIONED = """\
platform "example,parts" { msi native; }
gic = interrupt-controller gicv3 @ 0x0800_0000 size 64K {
    redistributor @ 0x080a_0000 size 0xf6_0000;
}
its = msi-controller gicv3-its @ 0x0808_0000 size 128K { parent gic; }
host-bridge pcie0 ecam @ 0x3000_0000 size 16M {
    domain 0;
    buses 0..15;
    window mem32 cpu 0x4000_0000 size 256M;
    msi map rid 0x0000..0x0fff -> its;
    intx -> gic spi 3..6 level;
    root-port rp0 @ 01.0 {
        endpoint left0 @ 00.0 { id 8086:10d3 class 0x020000; bar 0 mem32 4K; msi 1; }
    }
    root-port rp1 @ 02.0 {
        endpoint right0 @ 00.0 { id 8086:10d3 class 0x020000; bar 0 mem32 4K; msi 1; }
    }
}
partition left { cpus 0..0; owns rp0.*; }
partition right { cpus 1..1; owns rp1.*; }
"""


def test_changed_input_rewrites_only_what_changed(tmp_path: Path) -> None:
    src = tmp_path / "parts.msi"
    src.write_text(PARTITIONED)
    out = tmp_path / "out"
    run("compile", src.name, "-o", out, cwd=tmp_path)
    names = sorted(outputs(out))
    for part in ("system", "left", "right"):
        assert f"{part}.dts" in names and f"{part}.dtb" in names, names

    # A comment at the end changes no output: nothing is rewritten.
    age(out)
    src.write_text(PARTITIONED + "// a comment changes nothing\n")
    run("compile", src.name, "-o", out, cwd=tmp_path)
    assert set(mtimes(out).values()) == {OLD_NS}, f"rewritten: {mtimes(out)}"

    # Another device ID for the right partition's function: the whole-machine
    # tree and the right partition's change; the left partition's do not.
    age(out)
    before = outputs(out)
    src.write_text(PARTITIONED.replace("endpoint right0 @ 00.0 { id 8086:10d3",
                                       "endpoint right0 @ 00.0 { id 8086:1533"))
    run("compile", src.name, "-o", out, cwd=tmp_path)
    after, times = outputs(out), mtimes(out)
    changed = sorted(n for n in after if after[n] != before.get(n))
    rewritten = sorted(n for n, t in times.items() if t != OLD_NS)
    assert {"system.dts", "system.dtb", "right.dts", "right.dtb"} <= set(changed), changed
    assert "left.dts" not in changed and "left.dtb" not in changed, changed
    assert rewritten == changed, f"rewritten {rewritten}, but only {changed} changed"


def _parse_depfile(text: str) -> tuple[list[str], list[str]]:
    """Make syntax: ``targets: deps`` with backslash-newline continuations and
    backslash-escaped spaces, then an empty rule ``dep:`` per dep (gcc's -MP)."""
    joined = text.replace("\\\n", " ")
    assert joined.endswith("\n"), text
    rule, *phony = [line for line in joined.splitlines() if line]
    head, sep, tail = rule.partition(": ")
    assert sep, f"no 'targets: deps' rule in:\n{text}"

    def words(s: str) -> list[str]:
        out, cur, i = [], "", 0
        while i < len(s):
            if s[i] == "\\" and i + 1 < len(s):
                cur += s[i + 1]
                i += 2
                continue
            if s[i].isspace():
                if cur:
                    out.append(cur)
                cur = ""
            else:
                cur += s[i]
            i += 1
        if cur:
            out.append(cur)
        return out

    deps = words(tail.replace("$$", "$"))
    assert [words(p.removesuffix(":").replace("$$", "$")) for p in phony] == [[d] for d in deps], \
        f"an empty rule per input expected after the rule:\n{text}"
    return words(head), deps


INCLUDED = """\
// shared settings, included by main.msi
const ITS_BASE = 0x0808_0000;
template nic {
    id 8086:10d3 class 0x020000;
    bar 0 mem32 128K;
    msi 4 addr64;
    intx A;
}
"""


def test_depfile_lists_every_input(tmp_path: Path) -> None:
    case = tmp_path / "case"
    (case / "common dir").mkdir(parents=True)
    (case / "common dir" / "defs.msi").write_text(INCLUDED)
    main = (EXAMPLES / "worked-native" / "worked-native.msi").read_text()
    main = 'include "common dir/defs.msi";\n' + main.replace("0x0808_0000", "ITS_BASE")
    main = main.replace("endpoint eth0 @ 00.0 {", "endpoint eth0 @ 00.0 {\n            use nic;")
    main = main.replace("            id 8086:10d3 class 0x020000;\n            bar 0 mem32 128K;\n"
                        "            msi 4 addr64;\n            intx A;\n", "")
    (case / "main.msi").write_text(main)
    run("compile", "main.msi", "-o", "out", "--depfile", "out/deps.d", cwd=case)
    targets, deps = _parse_depfile((case / "out" / "deps.d").read_text())
    assert {"out/system.dts", "out/system.dtb"} <= set(targets), targets
    assert "main.msi" in deps and "common dir/defs.msi" in deps, deps
    for d in deps:
        assert (case / d).is_file(), f"depfile names {d!r}, which does not exist"

    # make reads it: up to date now, out of date once the included file changes.
    (case / "Makefile").write_text(
        "out/system.dtb: main.msi\n\t@echo rebuild\ninclude out/deps.d\n")
    make = shutil.which("make")
    if make is None:
        pytest.fail("make is not installed; install Debian's 'make' package", pytrace=False)
    assert subprocess.run([make, "-q", "out/system.dtb"], cwd=case, check=False).returncode == 0
    future = (case / "out" / "system.dtb").stat().st_mtime_ns + 10_000_000_000
    os.utime(case / "common dir" / "defs.msi", ns=(future, future))
    assert subprocess.run([make, "-q", "out/system.dtb"], cwd=case, check=False).returncode == 1


def test_depfile_names_the_base_tree(tmp_path: Path) -> None:
    src = copy_example("qemu-virt", tmp_path / "case")
    run("compile", src.name, "-o", "out", "--depfile", "deps.d", cwd=src.parent)
    targets, deps = _parse_depfile((src.parent / "deps.d").read_text())
    assert "qemu-virt.msi" in deps
    assert "qemu-virt-base.dts" in deps, deps
    assert "out/system.dtb" in targets
