"""The only code that writes output files: atomically, and only when the bytes changed.

Build systems compare timestamps; rewriting an unchanged output would make
every dependent rebuild. Each file goes to a temporary name in the same
directory while it is made, and is renamed over the old one once every
output is complete, so a reader never sees half a file or a half-updated set.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator
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


class Outputs:
    """Where the backends put their files, all or nothing.

    Without a directory (``dtmsi check``, ``report``, tests) every file is
    kept in memory. With one, each file is written as it is made to a
    temporary name beside its final one, so a 100k-function tree is never
    whole in memory; :meth:`commit` renames them into place only once every
    one is written (skipping those whose bytes did not change, which keeps
    build systems from rebuilding), and :meth:`discard` removes them.
    """

    def __init__(self, directory: Path | None, keep: bool = True) -> None:
        self.directory = directory
        self.keep = keep
        self.made_directory = False
        self.staged: list[tuple[str, Path]] = []  # (temporary file, final path)
        self.artifacts: list[Artifact] = []

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
        if not self.directory.is_dir():
            self.directory.mkdir(parents=True, exist_ok=True)
            self.made_directory = True
        final = self.directory / name
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.directory)
        self.staged.append((tmp, final))
        with os.fdopen(fd, "w+b") as fh:
            yield fh
        self.artifacts.append(Artifact(name, path=final))

    def add(self, name: str, data: bytes) -> None:
        with self.open(name) as fh:
            fh.write(data)

    def commit(self) -> list[Path]:
        """Rename every changed file into place; the paths that changed."""
        changed: list[tuple[str, Path]] = []
        try:
            for tmp, final in self.staged:
                if final.is_dir():
                    raise OSError(f"'{final}' is a directory")
                if _same_contents(Path(tmp), final):
                    os.unlink(tmp)
                else:
                    os.chmod(tmp, 0o644)
                    changed.append((tmp, final))
        except BaseException:
            self.discard()
            raise
        for tmp, final in changed:
            os.replace(tmp, final)
        self.staged.clear()
        return [final for _, final in changed]

    def discard(self) -> None:
        """Remove every staged file (and the directory, if made for them)."""
        for tmp, _ in self.staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self.staged.clear()
        self.artifacts.clear()
        if self.made_directory and self.directory is not None:
            with contextlib.suppress(OSError):
                self.directory.rmdir()


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
