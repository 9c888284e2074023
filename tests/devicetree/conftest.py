"""Shared helpers: the real dtc, run on text we produce."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

import pytest

DtcRun = Callable[..., bytes]


def run_dtc(
    source: str | bytes, *args: str, in_format: str = "dts", out_format: str = "dtb"
) -> bytes:
    """dtc's output for ``source``; fails the test on any error or warning."""
    data = source.encode("utf-8") if isinstance(source, str) else source
    proc = subprocess.run(
        ["dtc", "-I", in_format, "-O", out_format, *args, "-"],
        input=data,
        capture_output=True,
        check=False,
    )
    stderr = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 0, f"dtc failed:\n{stderr}\n--- input ---\n{source!s:.4000}"
    assert stderr == "", f"dtc warned:\n{stderr}\n--- input ---\n{source!s:.4000}"
    return proc.stdout


def dtc_refuses(source: str) -> str:
    """dtc's complaint about ``source``, which it must refuse."""
    proc = subprocess.run(
        ["dtc", "-I", "dts", "-O", "dtb", "-"],
        input=source.encode("utf-8"),
        capture_output=True,
        check=False,
    )
    assert proc.returncode != 0, f"dtc accepted:\n{source}"
    return proc.stderr.decode("utf-8", "replace")


@pytest.fixture(scope="session", autouse=True)
def _need_dtc() -> None:
    if shutil.which("dtc") is None:
        pytest.skip("dtc is not installed")


@pytest.fixture(scope="session")
def dtc() -> DtcRun:
    """``dtc(source, *args)`` -> the blob; no error, no warning allowed."""
    return run_dtc


@pytest.fixture(scope="session")
def dtc_error() -> Callable[[str], str]:
    """``dtc_error(source)`` -> dtc's complaint; dtc must refuse the source."""
    return dtc_refuses
