"""Lowering while parsing (one top-level statement at a time) gives what
lowering the whole parsed file gives: the same outputs, the same diagnostics.
It falls back to the whole file for what only the whole file can answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from dtmsi import lower as lower_module
from dtmsi.driver import compile_file
from dtmsi.options import CompileOptions

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*/*.msi") if p.stem == p.parent.name)
FIXTURES = sorted((ROOT / "tests" / "errors").glob("*.msi"))


def _whole_file_only(monkeypatch: pytest.MonkeyPatch) -> None:
    def whole(self: lower_module.Lowerer, path: Path, display: str, text: str | None = None) -> object:
        return self._lower_whole(path, display, text)

    monkeypatch.setattr(lower_module.Lowerer, "lower_file", whole)


def _streaming_only(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: lower_module.Lowerer, path: Path, display: str, text: str | None) -> object:
        raise AssertionError("fell back to lowering the whole file")

    monkeypatch.setattr(lower_module.Lowerer, "_lower_whole", refuse)


def _outcome(src: Path) -> tuple[list[tuple[str, str, int, int, str]], dict[str, bytes]]:
    result = compile_file(CompileOptions(input=src))
    diags = [(d.code.id, d.span.file.name, d.span.start, d.span.end, d.message) for d in result.sink]
    return diags, {a.name: a.data for a in result.artifacts}


@pytest.mark.parametrize("src", EXAMPLES + FIXTURES, ids=lambda p: p.stem)
def test_streaming_and_whole_file_lowering_agree(src: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    streamed = _outcome(src)
    with monkeypatch.context() as mp:
        _whole_file_only(mp)
        whole = _outcome(src)
    assert streamed == whole


@pytest.mark.parametrize("src", EXAMPLES, ids=lambda p: p.stem)
def test_examples_stream(src: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Includes, templates defined before use, consts: no fallback needed."""
    _streaming_only(monkeypatch)
    assert compile_file(CompileOptions(input=src)).ok


BOARD = """\
gic = interrupt-controller gicv3 @ 0x0800_0000 size 64K {{
    redistributor @ 0x080a_0000 size 0xf6_0000;
}}
{before}
host-bridge pcie0 ecam @ 0x3000_0000 size 16M {{
    buses 0..15;
    window mem32 cpu 0x4000_0000 size 256M;
    intx -> gic spi 3..6 level;
    endpoint uart0 @ 01.0 {{ use uart; }}
}}
{after}
"""
UART = "template uart { id 1415:c158 class 0x070002; bar 0 mem32 4K; intx A; }"


def test_a_template_used_before_its_definition_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "late.msi"
    src.write_text(BOARD.format(before="", after=UART))
    result = compile_file(CompileOptions(input=src))
    assert result.ok, [d.message for d in result.sink]
    _streaming_only(monkeypatch)
    with pytest.raises(AssertionError, match="fell back"):
        compile_file(CompileOptions(input=src))


def test_a_late_syntax_error_is_the_only_diagnostic(tmp_path: Path) -> None:
    """Statements before it were lowered (and one was wrong); once the syntax
    error turns up, only it is reported, as when the file is parsed first."""
    wrong = "policy q { frobnicate 1; }"  # line 5: a lowering error
    src = tmp_path / "late-syntax.msi"
    src.write_text(BOARD.format(before=UART + "\n" + wrong, after=""))
    assert [(d.code.id, d.span.line) for d in compile_file(CompileOptions(input=src)).sink] == [("E108", 5)]
    src.write_text(BOARD.format(before=UART + "\n" + wrong, after="policy p { prefer msix"))
    assert [(d.code.id, d.span.line) for d in compile_file(CompileOptions(input=src)).sink] == [("E101", 12)]


def test_an_include_streams(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "devices.msi").write_text(UART + "\n")
    src = tmp_path / "board.msi"
    src.write_text(BOARD.format(before='include "devices.msi";', after=""))
    _streaming_only(monkeypatch)
    result = compile_file(CompileOptions(input=src))
    assert result.ok and result.machine is not None
    assert result.machine.files == [str(src), str(tmp_path / "devices.msi")]
