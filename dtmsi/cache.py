"""A per-user cache of what dtmsi would otherwise build the same way on every
run: the base-tree parser's LALR tables (~0.1 s to build) and the stub
templates' compiled code. It only saves start-up time; no output depends on
it.

Where: ``$DTMSI_CACHE_DIR``, else ``$XDG_CACHE_HOME/dtmsi``, else
``~/.cache/dtmsi``. Entries are named by a hash of everything they are built
from (grammar text, library and Python versions), written to a temporary
name and renamed, so concurrent compiles never read half an entry. Where the
directory cannot be made or written (a read-only home, a sandbox), every run
builds in memory, as without a cache. ``DTMSI_CACHE_DIR=`` (empty) turns it off.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from dtmsi import __version__


def directory() -> Path | None:
    """The cache directory (made if missing), or None if there is none to use."""
    configured = os.environ.get("DTMSI_CACHE_DIR")
    if configured is not None:
        if not configured:
            return None
        path = Path(configured)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
        path = base / "dtmsi"
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except (OSError, RuntimeError):  # RuntimeError: no home directory
        return None
    return path


def key(*parts: str | bytes) -> str:
    """A file-name-safe digest of what an entry is built from (and of the
    dtmsi and Python versions, which every entry depends on)."""
    import hashlib

    digest = hashlib.sha256()
    for part in (__version__, sys.version, *parts):
        data = part if isinstance(part, bytes) else part.encode("utf-8", "surrogateescape")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()[:32]


def code_key(*paths: Path) -> str:
    """A digest of source files (the code an entry was made by), for keys: a
    changed dtmsi, in a checkout as much as in a release, misses."""
    import hashlib

    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path).encode("utf-8", "surrogateescape") + b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"\0missing")
    return digest.hexdigest()[:32]


def read(name: str) -> bytes | None:
    """The entry ``name``, or None if it is missing or unreadable."""
    where = directory()
    if where is None:
        return None
    try:
        return (where / name).read_bytes()
    except OSError:
        return None


def write(name: str, data: bytes, keep: int | None = None) -> None:
    """Store entry ``name``; silently nothing if the cache cannot be written.
    ``keep``: at most that many entries whose names start like this one's
    (up to its last '-') stay, the most recently written."""
    where = directory()
    if where is None:
        return
    if keep is not None:
        _prune(where, name[: name.rfind("-") + 1], keep - 1)
    tmp = where / f".{name}.{os.getpid()}.tmp"
    try:
        tmp.write_bytes(data)
        os.replace(tmp, where / name)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _prune(where: Path, prefix: str, keep: int) -> None:
    with contextlib.suppress(OSError):
        entries = [p for p in where.iterdir() if p.name.startswith(prefix)]
        entries.sort(key=lambda p: p.stat().st_mtime_ns)
        for old in entries[: max(0, len(entries) - keep)]:
            old.unlink()
