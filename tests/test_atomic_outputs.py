"""All-or-nothing output sets (issue 10 point 5).

A compile killed at any moment leaves the output directory holding exactly
the old set of outputs or exactly the new one, never a mix, and the next
compile removes what the killed one left behind and succeeds.

* Every step of the commit: a forked compile installs ``artifacts.STEP_HOOK``
  and SIGKILLs itself after step N, for every N (staged files, hard links,
  the exchange, the removal of the old directory); also with the fallback
  swap (no RENAME_EXCHANGE) and into a directory that does not exist yet.
* A large compile (10k generated functions): killed by the hook inside its
  commit (after the last link, the exchange, the first removal), and through
  the real command line in a child process SIGKILLed at seeded random times,
  each time towards the other input.
* Leftovers: earlier versions' ``.NAME.XXXXXXXX.tmp`` files go, a staging
  directory whose lock a running compile holds stays; ``-o .`` (the working
  directory is swapped) still puts the depfile into the new directory.
* Where dtmsi cannot swap (a mount point, a shared build tree) it renames
  file by file under a journal: killed at every step, the set is old or new
  once the journal is honoured, as the next compile does. Negative control:
  without the journal the same kills leave mixed sets, and the same checker
  says so.

Every compile compares against reference compiles of the old and the new
input; unchanged outputs keep their mtime through kills and recovery.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.gen import generate
from dtmsi import artifacts
from dtmsi.driver import compile_file
from dtmsi.options import CompileOptions

ROOT = Path(__file__).resolve().parent.parent
OLD_NS = 1_000_000_000 * 1_000_000_000  # older than anything a compile writes

OLD = """\
platform "example,atomic" { msi native; }
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
        endpoint a0 @ 00.0 { id 8086:10d3 class 0x020000; bar 0 mem32 4K; msi 1; }
    }
    root-port rp1 @ 02.0 {
        endpoint b0 @ 00.0 { id 8086:10d3 class 0x020000; bar 0 mem32 4K; msi 1; }
    }
    root-port rp2 @ 03.0 {
        endpoint c0 @ 00.0 { id 8086:10d3 class 0x020000; bar 0 mem32 4K; msi 1; }
    }
}
partition pa { cpus 0..0; owns rp0.*; }
partition pb { cpus 1..1; owns rp1.*; }
partition pc { cpus 2..2; owns rp2.*; }
"""
# Another device ID in partition pc: the whole machine's and pc's outputs
# change, pa's and pb's do not (and must keep their mtimes).
NEW = OLD.replace("endpoint c0 @ 00.0 { id 8086:10d3", "endpoint c0 @ 00.0 { id 8086:1533")

Outputs = dict[str, bytes]


def _files(directory: Path) -> Outputs:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def _compile(src: Path, out: Path) -> None:
    result = compile_file(CompileOptions(input=src, output_dir=out))
    assert result.ok, [str(d) for d in result.sink]


def _state(out: Path, old: Outputs, new: Outputs, foreign: Outputs, stage_inside: bool = False) -> str:
    """'old', 'new' or 'absent'; fails the test on anything else (a mix, a
    stray entry inside the directory, a lost file that is not ours)."""
    if not out.exists():
        return "absent"
    held = _files(out)
    assert {n: held.get(n) for n in foreign} == foreign, "a file not written by dtmsi was lost"
    ours = {n: b for n, b in held.items() if n not in foreign}
    extra = sorted(set(os.listdir(out)) - set(held) - {"meson-private"})
    if stage_inside:
        extra = [n for n in extra if not n.startswith(".dtmsi-")]
    assert not extra, f"stray entries in {out}: {extra}"
    if ours == old:
        return "old"
    if ours == new:
        return "new"
    as_old = sorted(n for n in ours if ours[n] == old.get(n) != new.get(n))
    as_new = sorted(n for n in ours if ours[n] == new.get(n) != old.get(n))
    raise AssertionError(f"a mixed output set: old {as_old}, new {as_new}")


def _leftovers(out: Path) -> list[str]:
    """dtmsi's temporaries beside and inside the output directory."""
    beside = [n for n in os.listdir(out.parent) if n.startswith(f".{out.name}.dtmsi-")]
    inside = [n for n in os.listdir(out) if n.startswith(".")] if out.is_dir() else []
    return sorted(beside + inside)


def _fork_compile(src: Path, out: Path, kill_after: int | None, patch: Callable[[], None] | None = None) -> int:
    """Compile in a forked child; with ``kill_after``, the child SIGKILLs itself
    right after that step of the writer. Without, returns the number of steps."""
    return len(_fork_steps(src, out, kill_after, patch))


def _fork_steps(src: Path, out: Path, kill_after: int | None,
                patch: Callable[[], None] | None = None) -> list[str]:
    """:func:`_fork_compile`, returning the names of the steps (none if killed)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 3
        try:
            os.close(read_end)
            steps: list[str] = []

            def hook(what: str) -> None:
                steps.append(what)
                if len(steps) == kill_after:
                    os.kill(os.getpid(), signal.SIGKILL)

            artifacts.STEP_HOOK = hook
            if patch is not None:
                patch()
            result = compile_file(CompileOptions(input=src, output_dir=out))
            os.write(write_end, "\n".join(steps).encode())
            code = 0 if result.ok else 1
        finally:
            os._exit(code)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(read_end, "rb") as fh:
        report = fh.read()
    if kill_after is None:
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        return report.decode().split("\n")
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, \
        f"the compile was not killed at step {kill_after} (status {status})"
    return []


@pytest.fixture(scope="module")
def refs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, Outputs, Outputs]]:
    d = tmp_path_factory.mktemp("refs")
    old_src, new_src = d / "old.msi", d / "new.msi"
    old_src.write_text(OLD)
    new_src.write_text(NEW)
    _compile(old_src, d / "old")
    _compile(new_src, d / "new")
    old, new = _files(d / "old"), _files(d / "new")
    same = sorted(n for n in old if new.get(n) == old[n])
    assert len(old) >= 15 and {"pa.dtb", "pb.dtb"} <= set(same) and old["pc.dtb"] != new["pc.dtb"], same
    yield old_src, new_src, old, new


def _prepare(tmp_path: Path, old_src: Path) -> tuple[Path, Outputs]:
    """``out`` holding the old compile, aged, with a file of someone else's in
    it (a depfile). (A subdirectory would make it a shared build tree, which
    is committed file by file: test_a_shared_build_tree_is_never_swapped.)"""
    out = tmp_path / "out"
    shutil.copytree(old_src.parent / "old", out)  # the reference compile of old_src
    (out / "deps.d").write_bytes(b"out/system.dtb: old.msi\n")
    for p in out.iterdir():
        os.utime(p, ns=(OLD_NS, OLD_NS))
    return out, {"deps.d": b"out/system.dtb: old.msi\n"}


def _recover_and_check(out: Path, new_src: Path, old: Outputs, new: Outputs, foreign: Outputs) -> None:
    """The next compile cleans up, succeeds, and rewrote nothing that did not change."""
    _compile(new_src, out)
    assert _state(out, old, new, foreign) == "new"
    assert _leftovers(out) == [], "the next compile left temporaries"
    for name in old:
        if old[name] == new[name]:
            assert (out / name).stat().st_mtime_ns == OLD_NS, f"unchanged {name} was rewritten"


def _kill_at_every_step(tmp_path: Path, refs: tuple[Path, Path, Outputs, Outputs],
                        patch: Callable[[], None] | None, allowed: set[str]) -> list[str]:
    old_src, new_src, old, new = refs
    probe, _ = _prepare(tmp_path / "probe", old_src)
    total = _fork_compile(new_src, probe, None, patch)
    assert total >= len(old) + 5, f"only {total} steps"
    seen: list[str] = []
    for n in range(1, total + 1):
        case = tmp_path / f"kill{n}"
        out, foreign = _prepare(case, old_src)
        _fork_compile(new_src, out, n, patch)
        state = _state(out, old, new, foreign)
        assert state in allowed, f"killed after step {n}: the output directory is {state}"
        seen.append(state)
        _recover_and_check(out, new_src, old, new, foreign)
    return seen


def test_killed_at_every_step_of_the_commit(tmp_path: Path, refs: tuple[Path, Path, Outputs, Outputs]) -> None:
    seen = _kill_at_every_step(tmp_path, refs, None, {"old", "new"})
    # Staging keeps the old set; from the exchange on, the new one is there.
    assert seen[0] == "old" and seen[-1] == "new" and seen == sorted(seen, key=["old", "new"].index), seen


def test_killed_at_every_step_without_rename_exchange(tmp_path: Path,
                                                      refs: tuple[Path, Path, Outputs, Outputs]) -> None:
    """Where the kernel or file system cannot exchange (NFS): two renames.
    Killed between them the directory is missing (never mixed), and the next
    compile puts the old one back before it starts."""

    def no_exchange() -> None:
        def refuse(a: Path, b: Path) -> None:
            raise OSError(errno.EINVAL, "Invalid argument")
        artifacts._exchange = refuse  # only in the forked child

    seen = _kill_at_every_step(tmp_path, refs, no_exchange, {"old", "new", "absent"})
    assert seen.count("absent") == 1, seen
    # The missing directory is restored from what the killed compile left.
    old_src, new_src, old, new = refs
    step = seen.index("absent") + 1
    out, foreign = _prepare(tmp_path / "restore", old_src)
    _fork_compile(new_src, out, step, no_exchange)
    assert not out.exists()
    artifacts.clean_stale(out)
    assert _state(out, old, new, foreign) == "old" and _leftovers(out) == []


def test_killed_while_making_a_new_directory(tmp_path: Path, refs: tuple[Path, Path, Outputs, Outputs]) -> None:
    _, new_src, old, new = refs
    total = _fork_compile(new_src, tmp_path / "probe" / "out", None)
    assert total == len(new) + 1  # each file staged, then one rename of the directory
    for n in range(1, total + 1):
        out = tmp_path / f"kill{n}" / "out"
        _fork_compile(new_src, out, n)
        assert _state(out, old, new, {}) == ("absent" if n <= len(new) else "new"), n
        _compile(new_src, out)
        assert _state(out, old, new, {}) == "new" and _leftovers(out) == []


def _in_place() -> None:
    """Stage inside the output directory and commit file by file, as dtmsi
    does in a mount point (only in the forked child)."""
    os.path.ismount = lambda p: True  # type: ignore[assignment]


def _shared_tree(out: Path) -> Outputs:
    """Make ``out`` a shared build tree (a subdirectory of the build tool's)."""
    (out / "meson-private").mkdir()
    (out / "meson-private" / "state").write_bytes(b"kept\n")
    return {}


def _no_journal() -> None:
    """The per-file commit without its journal (only in the forked child)."""

    def rename_in(stage: Path, target: Path, changed: list[str]) -> None:
        for name in changed:
            os.replace(stage / name, target / name)
            artifacts._step(f"rename {name}")

    artifacts.Outputs._rename_in = staticmethod(rename_in)  # type: ignore[method-assign]


def _kill_per_file_commit(tmp_path: Path, refs: tuple[Path, Path, Outputs, Outputs],
                          patch: Callable[[], None] | None, shared: bool) -> tuple[list[str], int]:
    """Kill a per-file commit after every step; honour what it left as a
    reader and the next compile do (finish a journalled commit), then ask
    for exactly the old or the new set. The states seen, and how many kills
    left a journal."""
    old_src, new_src, old, new = refs
    probe, _ = _prepare(tmp_path / "probe", old_src)
    if shared:
        _shared_tree(probe)
    total = _fork_compile(new_src, probe, None, patch)
    seen: list[str] = []
    journals = 0
    for n in range(1, total + 1):
        out, foreign = _prepare(tmp_path / f"kill{n}", old_src)
        if shared:
            _shared_tree(out)
        _fork_compile(new_src, out, n, patch)
        if (out / ".dtmsi-commit").exists():
            journals += 1
            assert artifacts.finish_interrupted_commit(out)
            assert not (out / ".dtmsi-commit").exists()
        try:
            seen.append(_state(out, old, new, foreign, stage_inside=not shared))
        except AssertionError as e:
            assert "mixed output set" in str(e), e
            seen.append("mixed")
        _recover_and_check(out, new_src, old, new, foreign)  # its leftovers go too
        if shared:
            assert (out / "meson-private" / "state").read_bytes() == b"kept\n"
    return seen, journals


@pytest.mark.parametrize("shared", [False, True], ids=["mount-point", "shared-build-tree"])
def test_a_per_file_commit_killed_at_every_step_is_finished_by_its_journal(
    tmp_path: Path, refs: tuple[Path, Path, Outputs, Outputs], shared: bool
) -> None:
    """Where the directory is not swapped (a mount point; a shared build tree)
    the changed files are renamed in one by one. A kill between two renames
    leaves a mix, and the journal written before the first rename says so:
    finished as the next compile finishes it, the set is the new one, never
    a mix, and unchanged files keep their mtime."""
    _, _, old, new = refs
    changed = sum(1 for n in new if old.get(n) != new[n])
    assert changed >= 3
    seen, journals = _kill_per_file_commit(tmp_path, refs, None if shared else _in_place, shared)
    assert "mixed" not in seen, seen
    assert journals == changed + 1, (journals, seen)  # from the journal to the last rename
    assert seen[0] == "old" and seen[-1] == "new" and seen == sorted(seen, key=["old", "new"].index), seen


def test_negative_control_a_per_file_commit_without_journal_is_caught(
    tmp_path: Path, refs: tuple[Path, Path, Outputs, Outputs]
) -> None:
    """Without the journal, the same kills leave mixed sets that nothing
    finishes, and the checker above sees each of them."""
    _, _, old, new = refs
    changed = sum(1 for n in new if old.get(n) != new[n])
    seen, journals = _kill_per_file_commit(tmp_path, refs, _no_journal, True)
    assert journals == 0
    assert seen.count("mixed") == changed - 1, f"{seen}: renames between which a kill mixes: {changed - 1}"


def test_a_journal_names_only_dtmsis_own_staging_directories(tmp_path: Path) -> None:
    """A damaged or planted journal moves nothing from elsewhere; it is dropped."""
    out = tmp_path / "out"
    out.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "system.dtb").write_bytes(b"not ours")
    (out / "system.dtb").write_bytes(b"ours")
    for stage in ("../elsewhere", "elsewhere", "../../x", "/tmp", ".dtmsi-gone"):
        (out / ".dtmsi-commit").write_text(f"dtmsi-commit 1\n{stage}\nsystem.dtb\n")
        assert artifacts.finish_interrupted_commit(out)
        assert not (out / ".dtmsi-commit").exists()
        assert (out / "system.dtb").read_bytes() == b"ours"
        assert (elsewhere / "system.dtb").read_bytes() == b"not ours"
    (out / ".dtmsi-commit").write_text("not a journal\n")
    artifacts.clean_stale(out)
    assert sorted(os.listdir(out)) == ["system.dtb"]


def test_a_running_compiles_journal_is_left_to_it(tmp_path: Path) -> None:
    """A journal whose staging directory a live compile holds locked is that
    compile's commit in progress: another compile neither finishes nor drops it."""
    out = tmp_path / "out"
    out.mkdir()
    stage = tmp_path / ".out.dtmsi-new-0badcafe"
    stage.mkdir()
    (stage / "system.dtb").write_bytes(b"new")
    (out / "system.dtb").write_bytes(b"old")
    (out / ".dtmsi-commit").write_text(f"dtmsi-commit 1\n../{stage.name}\nsystem.dtb\n")
    fd = artifacts._lock(stage, wait=True)
    try:
        assert not artifacts.finish_interrupted_commit(out)
        assert (out / ".dtmsi-commit").exists() and (out / "system.dtb").read_bytes() == b"old"
    finally:
        assert fd is not None
        os.close(fd)
    assert artifacts.finish_interrupted_commit(out)  # its holder died: finished
    assert sorted(os.listdir(out)) == ["system.dtb"] and (out / "system.dtb").read_bytes() == b"new"


# ------------------------------------------------------------------ large, real CLI, random times


def _cli(src: Path, out: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.Popen([sys.executable, "-m", "dtmsi", "compile", str(src), "-o", str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


Big = tuple[dict[str, Path], dict[str, Outputs]]


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Big:
    """Two 10k-function inputs (another root ``model``: the trees change, the
    stubs and allocation.json do not) and their reference compiles."""
    d = tmp_path_factory.mktemp("big")
    text = generate(10_000, 0)
    sources = {k: d / k / "big.msi" for k in "ab"}  # one name: the stubs cite it
    for src in sources.values():
        src.parent.mkdir()
    sources["a"].write_text(text)
    sources["b"].write_text(text.replace('model "dtmsi benchmark machine', 'model "dtmsi benchmark machine B'))
    refs = {}
    for k, src in sources.items():
        _compile(src, d / f"ref-{k}")
        refs[k] = _files(d / f"ref-{k}")
    assert refs["a"]["system.dtb"] != refs["b"]["system.dtb"]
    assert refs["a"]["system_msi.c"] == refs["b"]["system_msi.c"]  # one that must keep its mtime
    return sources, refs


def _start_from(ref: Path, out: Path) -> None:
    """``out`` holding a copy of a reference compile, every file aged."""
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(ref, out)
    for p in out.iterdir():
        os.utime(p, ns=(OLD_NS, OLD_NS))


def test_large_compile_killed_inside_the_commit(tmp_path: Path, big: Big) -> None:
    """The 10k compile killed right after its last hard link (the old set
    stays), the exchange and the first removal of an old file (the new set)."""
    sources, refs = big
    out = tmp_path / "out"
    _start_from(sources["a"].parent.parent / "ref-a", out)
    steps = _fork_steps(sources["b"], out, None)
    assert _files(out) == refs["b"]
    last = {label.split()[0]: i + 1 for i, label in enumerate(steps)}
    first_removal = next(i + 1 for i, label in enumerate(steps) if label.startswith("remove"))
    expect = {last["link"]: "a", last["exchange"]: "b", first_removal: "b"}
    for n, state in sorted(expect.items()):
        _start_from(sources["a"].parent.parent / "ref-a", out)
        _fork_compile(sources["b"], out, n)
        held = _files(out)
        assert held in (refs["a"], refs["b"]), f"killed after {steps[n - 1]!r}: a mixed output set"
        assert held == refs[state], f"killed after {steps[n - 1]!r}: expected the {state} set"
        assert not [name for name in os.listdir(out) if name.startswith(".")]
        assert (out / "system_msi.c").stat().st_mtime_ns == OLD_NS
    _compile(sources["b"], out)
    assert _files(out) == refs["b"] and _leftovers(out) == []
    assert (out / "system_msi.c").stat().st_mtime_ns == OLD_NS


def test_large_compile_killed_at_random_times(tmp_path: Path, big: Big) -> None:
    """10k functions through the real command line, SIGKILLed after a seeded
    random delay, each run compiling towards the set that is not on disk."""
    sources, refs = big
    out = tmp_path / "out"
    start = time.monotonic()
    proc = _cli(sources["a"], out)
    assert proc.wait(timeout=300) == 0, proc.stderr.read() if proc.stderr else ""
    full = time.monotonic() - start
    assert _files(out) == refs["a"]
    for p in out.iterdir():
        os.utime(p, ns=(OLD_NS, OLD_NS))
    on_disk = "a"
    rng = random.Random(10_5)
    # Half anywhere in a compile, half near its end, where the commit is.
    delays = [rng.uniform(0.05, 1.0) * full for _ in range(2)] + [rng.uniform(0.8, 1.05) * full]
    outcomes = []
    for delay in delays:
        target = "b" if on_disk == "a" else "a"
        proc = _cli(sources[target], out)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        code = proc.wait(timeout=300)
        held = _files(out)
        assert held in (refs["a"], refs["b"]), f"killed after {delay:.2f} s: a mixed output set"
        assert not [n for n in os.listdir(out) if n.startswith(".")], "temporaries inside the output directory"
        on_disk = "a" if held == refs["a"] else "b"
        outcomes.append((round(delay, 2), code, on_disk))
        assert (out / "system_msi.c").stat().st_mtime_ns == OLD_NS, "an unchanged output was rewritten"
    target = "b" if on_disk == "a" else "a"
    proc = _cli(sources[target], out)
    assert proc.wait(timeout=300) == 0, proc.stderr.read() if proc.stderr else ""
    assert _files(out) == refs[target] and _leftovers(out) == [], outcomes
    print("kills (delay s, exit status, set on disk):", outcomes)
    assert (out / "system_msi.c").stat().st_mtime_ns == OLD_NS


# ------------------------------------------------------------------ leftovers and odd directories


def test_old_temporaries_inside_go_and_a_running_compiles_staging_stays(
        tmp_path: Path, refs: tuple[Path, Path, Outputs, Outputs]) -> None:
    old_src, new_src, old, new = refs
    out, foreign = _prepare(tmp_path, old_src)
    # What earlier versions (and write_if_changed) left when killed: ".NAME.XXXXXXXX.tmp".
    (out / ".system.dtb.k2j_9x0q.tmp").write_bytes(b"half a tree")
    (out / ".hidden-notes").write_bytes(b"not a temporary")
    foreign[".hidden-notes"] = b"not a temporary"
    live = tmp_path / ".out.dtmsi-new-running"
    live.mkdir()
    (live / "system.dtb").write_bytes(b"being written")
    fd = os.open(live, os.O_RDONLY | os.O_DIRECTORY)
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX)  # as a compile running beside this one holds it
        _compile(new_src, out)
        assert live.is_dir(), "a running compile's staging directory was removed"
    finally:
        os.close(fd)
    assert _state(out, old, new, foreign) == "new"
    assert not (out / ".system.dtb.k2j_9x0q.tmp").exists()
    _compile(new_src, out)  # unlocked now: stale
    assert not live.exists() and _leftovers(out) == [".hidden-notes"]


def test_output_directory_is_the_working_directory(tmp_path: Path,
                                                   refs: tuple[Path, Path, Outputs, Outputs]) -> None:
    """``cd out && dtmsi compile ../new.msi -o . -M deps.d``: the swap replaces
    the working directory; the depfile written after it lands in the new one."""
    old_src, new_src, old, new = refs
    out, foreign = _prepare(tmp_path, old_src)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-m", "dtmsi", "compile", str(new_src), "-o", ".", "-M", "deps.d"],
                          cwd=out, env=env, capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    depfile = (out / "deps.d").read_bytes()
    assert depfile != foreign["deps.d"] and b"system.dtb" in depfile and str(new_src).encode() in depfile
    assert _state(out, old, new, {"deps.d": depfile}) == "new"
    assert _leftovers(out) == []


def test_a_symlinked_output_directory_stays_a_symlink(tmp_path: Path,
                                                      refs: tuple[Path, Path, Outputs, Outputs]) -> None:
    """``out -> elsewhere/real``: the real directory is the one swapped, beside
    itself; the link is left as the user made it."""
    old_src, new_src, old, new = refs
    real, _ = _prepare(tmp_path / "elsewhere", old_src)
    link = tmp_path / "out"
    link.symlink_to(real)
    _compile(new_src, link)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert _state(real, old, new, {"deps.d": b"out/system.dtb: old.msi\n"}) == "new"
    assert _leftovers(real) == [] and sorted(os.listdir(tmp_path)) == ["elsewhere", "out"]


def test_a_shared_build_tree_is_never_swapped(tmp_path: Path, refs: tuple[Path, Path, Outputs, Outputs]) -> None:
    """An output directory with a subdirectory is a build tool's (Meson's build
    root: build.ninja, meson-private/; ninja runs in it): it stays the same
    directory, its subdirectory untouched, and each changed file is renamed
    in whole; a process working in it keeps working. (Swapping it made ninja
    fail with "Error writing to build log".)"""
    old_src, new_src, old, new = refs
    out, foreign = _prepare(tmp_path, old_src)
    (out / "meson-private").mkdir()
    (out / "meson-private" / "state").write_bytes(b"kept\n")
    before = os.stat(out).st_ino
    resident = subprocess.Popen([sys.executable, "-c", "import sys, os; sys.stdin.read(); "
                                 "open('ninja_log', 'a').write('still here\\n')"],
                                cwd=out, stdin=subprocess.PIPE)
    try:
        _compile(new_src, out)
    finally:
        resident.communicate(b"", timeout=30)
    assert resident.returncode == 0, "a process working in the directory lost it"
    assert os.stat(out).st_ino == before, "the shared directory was swapped"
    assert (out / "ninja_log").read_bytes() == b"still here\n"
    assert (out / "meson-private" / "state").read_bytes() == b"kept\n"
    foreign["ninja_log"] = b"still here\n"
    assert _state(out, old, new, foreign) == "new" and _leftovers(out) == []
    for name in old:
        if old[name] == new[name]:
            assert (out / name).stat().st_mtime_ns == OLD_NS, f"unchanged {name} was rewritten"
