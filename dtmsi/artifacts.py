"""The only code that writes files: atomically, and only when the bytes changed.

Build systems compare timestamps; rewriting an unchanged output would make
every dependent rebuild. Each file goes to a temporary name in the same
directory and is renamed over the old one, so a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Artifact:
    name: str  # file name relative to the output directory
    data: bytes


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


def write_all(directory: Path, artifacts: list[Artifact]) -> list[Path]:
    """Write every changed artifact, all or nothing: each goes to a temporary
    file first; only when all of them are on disk are they renamed into place.
    Returns the paths that changed."""
    staged: list[tuple[str, Path]] = []
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for a in artifacts:
            p = directory / a.name
            try:
                if p.stat().st_size == len(a.data) and p.read_bytes() == a.data:
                    continue
            except FileNotFoundError:
                pass
            except IsADirectoryError:
                raise OSError(f"'{p}' is a directory") from None
            if p.is_dir():
                raise OSError(f"'{p}' is a directory")
            fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=directory)
            staged.append((tmp, p))
            with os.fdopen(fd, "wb") as fh:
                fh.write(a.data)
            os.chmod(tmp, 0o644)
    except BaseException:
        for tmp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise
    for tmp, p in staged:
        os.replace(tmp, p)
    return [p for _, p in staged]


def depfile_text(targets: list[Path], inputs: list[str]) -> str:
    """A Make/Ninja depfile: every output depends on every input file read."""

    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace(" ", "\\ ").replace("#", "\\#").replace("$", "$$")

    head = " ".join(esc(str(t)) for t in targets)
    deps = " \\\n  ".join(esc(i) for i in inputs)
    return f"{head}: \\\n  {deps}\n"
