"""Outputs: files are staged beside their final names while the backends
write them, and reach those names all together, only if changed, or not at all."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dtmsi.artifacts import Outputs
from dtmsi.driver import compile_file
from dtmsi.options import CompileOptions

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "qemu-virt" / "qemu-virt.msi"
OLD_NS = 1_000_000_000_000_000_000


def _write(outputs: Outputs, name: str, data: bytes) -> None:
    with outputs.open(name) as fh:
        fh.write(data)


def test_nothing_is_visible_before_commit(tmp_path: Path) -> None:
    out = tmp_path / "out"
    outputs = Outputs(out)
    _write(outputs, "a.dtb", b"A")
    _write(outputs, "b.dts", b"B")
    assert not (out / "a.dtb").exists() and not (out / "b.dts").exists()
    assert sorted(outputs.commit()) == [out / "a.dtb", out / "b.dts"]
    assert sorted(os.listdir(out)) == ["a.dtb", "b.dts"]  # no temporary left
    assert (out / "a.dtb").read_bytes() == b"A"


def test_unchanged_files_keep_their_mtime(tmp_path: Path) -> None:
    (tmp_path / "same").write_bytes(b"same bytes")
    (tmp_path / "other").write_bytes(b"old bytes!")  # same size, other bytes
    for p in tmp_path.iterdir():
        os.utime(p, ns=(OLD_NS, OLD_NS))
    outputs = Outputs(tmp_path)
    _write(outputs, "same", b"same bytes")
    _write(outputs, "other", b"new bytes!")
    assert outputs.commit() == [tmp_path / "other"]
    assert (tmp_path / "same").stat().st_mtime_ns == OLD_NS
    assert (tmp_path / "other").read_bytes() == b"new bytes!"
    assert sorted(os.listdir(tmp_path)) == ["other", "same"]


def test_a_blocked_name_commits_nothing(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"old")
    (tmp_path / "b").mkdir()
    outputs = Outputs(tmp_path)
    _write(outputs, "a", b"new")
    _write(outputs, "b", b"new")
    with pytest.raises(OSError, match="is a directory"):
        outputs.commit()
    assert (tmp_path / "a").read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["a", "b"]


def test_discard_removes_staged_files_and_the_directories_it_made(tmp_path: Path) -> None:
    out = tmp_path / "new" / "out"
    outputs = Outputs(out)
    _write(outputs, "a", b"x" * 100_000)
    assert not out.exists()  # staged beside it, in a directory made for the purpose
    assert [n.startswith(".out.dtmsi-new-") for n in os.listdir(out.parent)] == [True]
    outputs.discard()
    assert not (tmp_path / "new").exists()


def test_memory_outputs_without_a_directory() -> None:
    outputs = Outputs(None)
    _write(outputs, "a", b"bytes")
    assert [(a.name, a.data) for a in outputs.artifacts] == [("a", b"bytes")]


def test_compiles_leave_no_temporary_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = compile_file(CompileOptions(input=EXAMPLE, output_dir=out))
    assert first.ok and first.written
    names = sorted(os.listdir(out))
    assert names == sorted(a.name for a in first.artifacts)
    assert all(not n.startswith(".") for n in names)
    second = compile_file(CompileOptions(input=EXAMPLE, output_dir=out))
    assert second.ok and second.written == []
    assert sorted(os.listdir(out)) == names
    # Artifacts of a compile into a directory read back what is on disk.
    assert {a.name: a.data for a in second.artifacts} == {n: (out / n).read_bytes() for n in names}


def test_outputs_made_only_to_be_checked_are_not_kept() -> None:
    outputs = Outputs(None, keep=False)
    with outputs.open("a") as fh:
        fh.write(b"x" * 1000)
        fh.seek(0)
        fh.truncate()
    assert outputs.artifacts == []
    outputs.commit()  # nothing staged, nothing to do


def test_check_still_finds_device_tree_errors_without_keeping_outputs(tmp_path: Path) -> None:
    """``dtmsi check`` makes every output (the device-tree writer is where
    some errors are found) but keeps none of them."""
    bad = (ROOT / "tests" / "errors" / "E904-raw-property-unknown-label.msi")
    kept = compile_file(CompileOptions(input=bad))
    dropped = compile_file(CompileOptions(input=bad, keep_artifacts=False))
    assert [d.code.id for d in dropped.sink] == [d.code.id for d in kept.sink] == ["E904"]
    fine = compile_file(CompileOptions(input=EXAMPLE, keep_artifacts=False))
    assert fine.ok and fine.artifacts == []
