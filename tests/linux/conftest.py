"""Fixtures for the tests that boot the real Linux kernel under QEMU."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .guest import Guest, ensure_guest


def guest_cache_dir() -> Path:
    """``$DTMSI_CACHE`` or ``~/.cache/dtmsi-linux``: downloads survive reruns."""
    configured = os.environ.get("DTMSI_CACHE")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "dtmsi-linux"


@pytest.fixture(scope="session")
def guest() -> Guest:
    """Debian's current bookworm arm64 kernel with the dtmsi test initramfs.

    Downloaded and built once per cache directory; a missing tool or package
    archive is an error, never a skip.
    """
    return ensure_guest(guest_cache_dir())
