"""The only code that writes output files: all together or not at all, and
only the files whose bytes changed.

Build systems compare timestamps; rewriting an unchanged output would make
every dependent rebuild. A compile that is stopped at any moment (an error, a
crash, SIGKILL) must leave the output directory holding exactly the old set of
files or exactly the new one. So the outputs are written into a staging
directory beside the output directory; when every one is complete, the
staging directory is given every entry of the old one that is not replaced
(hard links: an unchanged output keeps its inode and its mtime) and the two
directories are exchanged in one ``renameat2(RENAME_EXCHANGE)``. The next
compile removes what a killed one left behind.

Where the directory cannot be swapped (a shared build tree, a mount point)
the changed files are renamed in one by one under a journal,
``DIR/.dtmsi-commit``: written before the first rename and removed after the
last, it names the staging directory and the files. A kill between two
renames leaves the journal, and the next compile (or :func:`clean_stale`)
finishes the renames before anything else, so the set ends up new.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import os
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, cast


class Artifact:
    """One output file: its name in the output directory and its bytes, held
    in memory or (for outputs staged on disk) read back when asked for."""

    __slots__ = ("_data", "_path", "name")

    def __init__(self, name: str, data: bytes | None = None, path: Path | None = None) -> None:
        self.name = name
        self._data = data
        self._path = path

    @property
    def data(self) -> bytes:
        if self._data is None:
            assert self._path is not None
            return self._path.read_bytes()
        return self._data


class _Discard(io.RawIOBase):
    """A seekable binary file that keeps nothing."""

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        return len(data)

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def truncate(self, size: int | None = None) -> int:
        return 0


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` unless it already holds exactly that; True if written."""
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return True


def _same_contents(a: Path, b: Path) -> bool:
    """Whether two files hold the same bytes, compared a block at a time."""
    try:
        if b.stat().st_size != a.stat().st_size:
            return False
    except FileNotFoundError:
        return False
    with a.open("rb") as fa, b.open("rb") as fb:
        while True:
            x = fa.read(1 << 20)
            if x != fb.read(1 << 20):
                return False
            if not x:
                return True


# A test seam: called with a short description after every step that changes
# the disk (a staged file closed, a link, the exchange, a removal), so that a
# test can kill the compile at each of them. None outside tests.
STEP_HOOK: Callable[[str], None] | None = None


def _step(what: str) -> None:
    if STEP_HOOK is not None:
        STEP_HOOK(what)


_STAGE_MARK = ".dtmsi-"  # in every name dtmsi gives a staging directory
# Temporaries of earlier dtmsi versions and of write_if_changed: ".NAME.XXXXXXXX.tmp".
_LEGACY_TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> None:
    """Swap two directory entries in one step (Linux renameat2, since 3.15).

    OSError(EINVAL/ENOSYS) where the C library or the file system cannot."""
    import ctypes  # only when a compile changed something: start-up stays small

    libc = ctypes.CDLL(None, use_errno=True)
    try:
        renameat2 = libc.renameat2
    except AttributeError:
        raise OSError(errno.ENOSYS, "renameat2 is not available") from None
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(a), None, str(b))


def _new_directory(parent: Path, prefix: str) -> Path:
    """A new empty directory ``parent/PREFIX`` + 8 random hex digits, mode 0700
    (tempfile.mkdtemp, without importing tempfile and random at start-up)."""
    while True:
        path = parent / f"{prefix}{os.urandom(4).hex()}"
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        return path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _is_cwd(path: Path) -> bool:
    try:
        return os.path.samestat(os.stat("."), os.stat(path))
    except OSError:
        return False


def _lock(path: Path, wait: bool) -> int | None:
    """An open descriptor holding an exclusive flock on directory ``path``;
    None if another process holds it (``wait=False``). The kernel drops the
    lock when its holder dies, which is how a stale staging directory is told
    from one a running compile is filling."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _remove_tree(path: Path, step: bool = False) -> None:
    """Remove a staging directory (or an old output directory) and what it holds."""
    with os.scandir(path) as it:
        entries = list(it)
    for e in sorted(entries, key=lambda e: e.name):
        if e.is_dir(follow_symlinks=False):
            import shutil

            shutil.rmtree(e.path)
        else:
            os.unlink(e.path)
        if step:
            _step(f"remove {e.name}")
    os.rmdir(path)


def _holds_directories(path: Path) -> bool:
    """Whether ``path`` has a subdirectory other than a staging one of dtmsi's."""
    if not path.is_dir():
        return False
    with os.scandir(path) as it:
        return any(e.is_dir(follow_symlinks=False) and not e.name.startswith(_STAGE_MARK) for e in it)


def _carry_subdirectories(old: Path, new: Path) -> None:
    """Move the subdirectories of ``old`` (not dtmsi's: a shared build
    directory's) that ``new`` lacks into ``new``: they cannot be hard-linked."""
    with os.scandir(old) as it:
        subdirs = sorted(e.name for e in it if e.is_dir(follow_symlinks=False))
    for name in subdirs:
        if not os.path.lexists(new / name):
            os.rename(old / name, new / name)
            _step(f"move {name}")


_JOURNAL = ".dtmsi-commit"  # inside DIR while a per-file commit renames
_JOURNAL_HEAD = "dtmsi-commit 1"


def _journal_text(stage: Path, target: Path, names: list[str]) -> str:
    """The journal: a header, the staging directory relative to DIR, the names."""
    return "\n".join([_JOURNAL_HEAD, os.path.relpath(stage, target), *names]) + "\n"


def _journal_stage(directory: Path, lines: list[str]) -> Path | None:
    """The staging directory a journal names, if it is one dtmsi would have
    made for ``directory`` (inside it, or beside it); None for anything else,
    so that a damaged or planted journal moves no file from elsewhere."""
    if len(lines) < 2 or lines[0] != _JOURNAL_HEAD:
        return None
    rel = lines[1]
    if "/" not in rel:
        inside = rel.startswith(_STAGE_MARK)
        return directory / rel if inside else None
    up, _, name = rel.partition("/")
    if up == ".." and "/" not in name and name.startswith(f".{directory.name}{_STAGE_MARK}"):
        return directory.parent / name
    return None


def finish_interrupted_commit(directory: Path) -> bool:
    """Finish the per-file commit a killed compile left a journal for: rename
    the files still staged into ``directory``, then drop the journal. False
    if there is none, or a running compile holds its staging directory."""
    journal = directory / _JOURNAL
    try:
        lines = journal.read_text(encoding="utf-8", errors="replace").splitlines()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return False
    stage = _journal_stage(directory, lines)
    if stage is not None and stage.is_dir():
        fd = _lock(stage, wait=False)
        if fd is None:
            return False  # its compile is still running, and will finish it
        try:
            for name in lines[2:]:
                if not name or "/" in name or name in (".", "..", _JOURNAL):
                    continue
                with contextlib.suppress(FileNotFoundError):  # renamed before the kill
                    os.replace(stage / name, directory / name)
        finally:
            os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(journal)
    return True


def clean_stale(directory: Path) -> None:
    """Remove what a killed compile into ``directory`` left behind.

    A per-file commit that was cut short is finished first (its journal
    names what was still to be renamed). Staging directories ``.DIR.dtmsi-*`` beside it whose lock no one holds go
    (after giving back subdirectories that were being carried across); if
    the directory itself is missing because a compile was killed between the
    two renames of the fallback swap, the old one is put back first. Inside
    it, staging directories ``.dtmsi-*`` and ``.NAME.XXXXXXXX.tmp`` files go."""
    finish_interrupted_commit(directory)
    parent, prefix = directory.parent, f".{directory.name}{_STAGE_MARK}"
    try:
        with os.scandir(parent) as it:
            stale = sorted(e.name for e in it if e.name.startswith(prefix) and e.is_dir(follow_symlinks=False))
    except OSError:
        stale = []
    for name in stale:
        path = parent / name
        fd = _lock(path, wait=False)
        if fd is None:
            continue  # a running compile's
        try:
            if name.startswith(prefix + "old-") and not os.path.lexists(directory):
                os.rename(path, directory)
                continue
            if directory.is_dir():
                _carry_subdirectories(path, directory)
            _remove_tree(path)
        finally:
            os.close(fd)
    if not directory.is_dir():
        return
    with os.scandir(directory) as it:
        inside = sorted((e.name, e.is_dir(follow_symlinks=False)) for e in it)
    for name, is_dir in inside:
        path = directory / name
        if is_dir and name.startswith(_STAGE_MARK):
            fd = _lock(path, wait=False)
            if fd is not None:
                try:
                    _remove_tree(path)
                finally:
                    os.close(fd)
        elif not is_dir and _LEGACY_TEMPORARY.fullmatch(name):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


class Outputs:
    """Where the backends put their files, all or nothing.

    Without a directory (``dtmsi check``, ``report``, tests) every file is
    kept in memory. With one, each file is written as it is made into a
    staging directory (so a 100k-function tree is never whole in memory);
    :meth:`commit` makes them visible all at once, leaving files whose bytes
    did not change untouched, and :meth:`discard` removes them.

    The staging directory is ``.DIR.dtmsi-new-XXXXXXXX`` beside the output
    directory DIR, and commit swaps the two. Where that cannot work (DIR is
    a mount point, or its parent is not writable), it is
    ``DIR/.dtmsi-XXXXXXXX`` and commit renames the changed files into DIR one
    by one under a journal (``DIR/.dtmsi-commit``): each file is whole, and a
    set cut short by a kill is finished by the next compile, which the
    journal tells readers to wait for. The same per-file commit serves a DIR
    with subdirectories: a shared build tree, which is never swapped from
    under the build tool running in it.
    """

    def __init__(self, directory: Path | None, keep: bool = True) -> None:
        self.directory = directory
        self.keep = keep
        self.staged: list[str] = []  # names written into the staging directory
        self.artifacts: list[Artifact] = []
        self._target: Path | None = None  # the output directory, symlinks resolved
        self._stage: Path | None = None
        self._lock_fd: int | None = None
        self._swap = True
        self._swapped = False  # the staging path holds the old directory now
        self._made: list[Path] = []  # directories made for the outputs, deepest last

    def _staging_directory(self) -> Path:
        """The staging directory, made (and stale ones removed) on first use."""
        if self._stage is not None:
            return self._stage
        assert self.directory is not None
        target = Path(os.path.realpath(self.directory))
        self._target = target
        missing = [p for p in (target, *target.parents) if not p.exists()]
        for p in reversed(missing[1:]):
            p.mkdir()
            self._made.append(p)
        clean_stale(target)
        stage: Path | None = None
        if not os.path.ismount(target):
            with contextlib.suppress(PermissionError, OSError):
                stage = _new_directory(target.parent, f".{target.name}{_STAGE_MARK}new-")
        if stage is None:  # a mount point, or a parent we may not write: stage inside
            self._swap = False
            if not target.exists():
                target.mkdir()
                self._made.append(target)
            stage = _new_directory(target, _STAGE_MARK)
        self._stage = stage
        self._lock_fd = _lock(stage, wait=True)
        return stage

    @contextlib.contextmanager
    def open(self, name: str, wanted: bool = True) -> Iterator[BinaryIO]:
        """A binary file to write output ``name`` into (seekable, for restarts).
        ``wanted=False``: made (its errors count) but not kept (``--emit``)."""
        if not wanted or (self.directory is None and not self.keep):
            yield cast(BinaryIO, _Discard())  # made to be checked, not kept: memory stays flat
            return
        if self.directory is None:
            buf = io.BytesIO()
            yield buf
            self.artifacts.append(Artifact(name, buf.getvalue()))
            return
        stage = self._staging_directory()
        self.staged.append(name)
        with (stage / name).open("w+b") as fh:
            yield fh
        os.chmod(stage / name, 0o644)
        _step(f"staged {name}")
        self.artifacts.append(Artifact(name, path=self.directory / name))

    def add(self, name: str, data: bytes) -> None:
        with self.open(name) as fh:
            fh.write(data)

    # A forked worker (dtmsi.backends.worker) writes into the same place and
    # hands back what it staged: prepare() before the fork, mark() and
    # since() in the worker, adopt() in the parent.

    def prepare(self) -> None:
        """Make the staging directory now (as the first :meth:`open` would)."""
        if self.directory is not None:
            self._staging_directory()

    def mark(self) -> tuple[int, int]:
        return len(self.staged), len(self.artifacts)

    def since(self, mark: tuple[int, int]) -> tuple[list[str], list[Artifact]]:
        return self.staged[mark[0]:], self.artifacts[mark[1]:]

    def adopt(self, taken: tuple[list[str], list[Artifact]]) -> None:
        self.staged.extend(taken[0])
        self.artifacts.extend(taken[1])

    def commit(self) -> list[Path]:
        """Make every staged file visible at once; the paths that changed."""
        if self._stage is None:
            return []
        stage, target = self._stage, self._target
        assert target is not None and self.directory is not None
        try:
            changed = [n for n in self.staged if self._check_and_compare(stage / n, target / n)]
            if changed:
                if self._swap and not _holds_directories(target):
                    self._swap_in(stage, target, changed)
                else:
                    # A directory with subdirectories is a shared build tree
                    # (Meson's or CMake's build root: the build tool's state
                    # lives there and it runs in it, so swapping the directory
                    # pulled it from under ninja): each file is renamed in,
                    # whole, under a journal that the next compile finishes.
                    self._rename_in(stage, target, changed)
        except BaseException:
            self.discard()
            raise
        # The unchanged copies, or the old directory; what is left here the
        # next compile removes.
        with contextlib.suppress(OSError):
            if os.path.lexists(stage):
                _remove_tree(stage, step=True)
        self._release()
        self.staged.clear()
        self._made.clear()
        return [self.directory / n for n in changed]

    @staticmethod
    def _rename_in(stage: Path, target: Path, changed: list[str]) -> None:
        """Rename the changed files into ``target`` one by one, journalled."""
        journal = target / _JOURNAL
        (stage / _JOURNAL).write_text(_journal_text(stage, target, changed), encoding="utf-8")
        os.replace(stage / _JOURNAL, journal)  # whole or absent
        _step("journal")
        for name in changed:
            os.replace(stage / name, target / name)
            _step(f"rename {name}")
        os.unlink(journal)
        _step("journal done")

    @staticmethod
    def _check_and_compare(staged: Path, final: Path) -> bool:
        """True if ``final`` must be replaced by ``staged``."""
        if final.is_dir():
            raise OSError(f"'{final}' is a directory")
        return not _same_contents(staged, final)

    def _swap_in(self, stage: Path, target: Path, changed: list[str]) -> None:
        """Give ``stage`` everything of ``target`` not replaced, then swap them."""
        if not target.exists():
            os.chmod(stage, 0o777 & ~_umask())  # as mkdir would have made it
            os.rename(stage, target)  # a new directory: one rename is the swap
            _step("rename directory")
            return
        replaced = set(changed)
        with os.scandir(target) as it:
            entries = sorted((e.name, e.is_dir(follow_symlinks=False)) for e in it)
        for name, is_dir in entries:
            if name in replaced or is_dir:
                continue  # subdirectories are moved across after the swap
            kept = stage / name
            if os.path.lexists(kept):
                os.unlink(kept)  # an unchanged output: the old file stays, mtime and all
            try:
                os.link(target / name, kept, follow_symlinks=False)
            except OSError:  # a file system without hard links: a copy with its times
                import shutil

                shutil.copy2(target / name, kept, follow_symlinks=False)
            _step(f"link {name}")
        os.chmod(stage, stat.S_IMODE(os.stat(target).st_mode))
        cwd_inside = _is_cwd(target)
        try:
            _exchange(stage, target)
            self._swapped = True
            _step("exchange")
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
            # No RENAME_EXCHANGE here (NFS, old kernels): two renames. Killed
            # between them, DIR is missing and the next compile puts the old
            # one back, so readers still never see a mixed set.
            old = _new_directory(target.parent, f".{target.name}{_STAGE_MARK}old-")
            os.rename(target, old)  # replaces the empty directory just made
            _step("rename old directory")
            os.rename(stage, target)
            _step("rename new directory")
            os.rename(old, stage)
            self._swapped = True
        if cwd_inside:  # ``-o .``: later relative paths (the depfile) mean the new one
            os.chdir(target)
        _carry_subdirectories(stage, target)

    def _release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        self._stage = None

    def discard(self) -> None:
        """Remove the staging directory (and the directories made for it)."""
        if self._stage is not None and os.path.lexists(self._stage):
            with contextlib.suppress(OSError):
                if self._swapped and self._target is not None:
                    _carry_subdirectories(self._stage, self._target)
                _remove_tree(self._stage)
        self._release()
        self.staged.clear()
        self.artifacts.clear()
        for p in reversed(self._made):
            with contextlib.suppress(OSError):
                p.rmdir()
        self._made.clear()


def depfile_text(targets: list[str], inputs: list[str]) -> str:
    """A Make/Ninja depfile: every output depends on every input file read.

    Each input also gets an empty rule of its own, as gcc's -MP writes: when an
    included file is deleted, make then rebuilds (and dtmsi reports the missing
    include) instead of stopping with "No rule to make target".
    """

    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace(" ", "\\ ").replace("#", "\\#").replace("$", "$$")

    head = " ".join(esc(t) for t in targets)
    deps = " \\\n  ".join(esc(i) for i in inputs)
    phony = "".join(f"\n{esc(i)}:\n" for i in inputs)
    return f"{head}: \\\n  {deps}\n{phony}"
