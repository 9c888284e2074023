"""What a compile keeps in memory: the model and the allocation, nothing more.

Compiles run with the cyclic GC off (it was half the parse time), so anything
caught in a reference cycle lives until exit. These tests fail if a phase
leaves its intermediate data reachable or cyclic: the syntax tree after
lowering, the declarations after resolution, the device-tree nodes after
writing. Peak memory itself is measured by the benchmark (bench/), not here.
"""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from dtmsi import ast, syntax
from dtmsi.devicetree.tree import Node
from dtmsi.driver import compile_file
from dtmsi.options import CompileOptions

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*/*.msi"))


def _alive(*types: type) -> list[object]:
    return [o for o in gc.get_objects() if isinstance(o, types)]


@pytest.mark.parametrize("example", [p for p in EXAMPLES if p.stem == p.parent.name], ids=lambda p: p.stem)
def test_compile_leaves_no_syntax_declarations_or_tree_nodes(example: Path, tmp_path: Path) -> None:
    gc.collect()
    gc.disable()  # as in a compile; else a collection could hide a cycle
    try:
        before = {id(o) for o in _alive(syntax.Stmt, ast.FunctionDecl, ast.HostBridgeDecl, Node)}
        result = compile_file(CompileOptions(input=example, output_dir=tmp_path / "out"))
        assert result.ok, [d.message for d in result.sink.items]
        assert result.machine is not None  # the model is what a compile keeps
        left = [o for o in _alive(syntax.Stmt, ast.FunctionDecl, ast.HostBridgeDecl, Node) if id(o) not in before]
    finally:
        gc.enable()
    kinds = sorted({type(o).__name__ for o in left})
    assert not left, f"{len(left)} objects of {kinds} outlived the compile"


@pytest.mark.parametrize("example", [p for p in EXAMPLES if p.stem == p.parent.name], ids=lambda p: p.stem)
def test_pci_nodes_are_streamed_not_kept(example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The device-tree writer makes each bus's nodes once and drops them: it
    never has to fall back to making the whole tree (which it does, correctly,
    only for a reference into the PCI nodes from elsewhere in the tree)."""
    from dtmsi.devicetree import dtb

    fallbacks: list[object] = []
    monkeypatch.setattr(dtb, "materialize_all", fallbacks.append)
    result = compile_file(CompileOptions(input=example, output_dir=tmp_path / "out"))
    assert result.ok
    assert fallbacks == []


@pytest.mark.parametrize("example", [p for p in EXAMPLES if p.stem == p.parent.name], ids=lambda p: p.stem)
def test_spilling_the_blob_changes_no_byte(example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A large tree's finished structure goes to a temporary file every 2048
    nodes; spilling after every node gives the same files."""
    from dtmsi.devicetree import dtb

    normal = compile_file(CompileOptions(input=example, output_dir=tmp_path / "a"))
    monkeypatch.setattr(dtb, "_SPILL_PARTS", 1)
    spilled = compile_file(CompileOptions(input=example, output_dir=tmp_path / "b"))
    assert normal.ok and spilled.ok
    assert {a.name: a.data for a in spilled.artifacts} == {a.name: a.data for a in normal.artifacts}
