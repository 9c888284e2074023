"""``dtmsi import``: a board's device tree (.dtb or .dts) -> a ``.msi`` describing
its PCI side, with the original tree as the base tree.

    read (devicetree.basetree) -> scan (Board) -> write (.msi text)
"""

from __future__ import annotations

import os
from pathlib import Path

from dtmsi.devicetree import basetree
from dtmsi.devicetree.tree import Tree
from dtmsi.importer.scan import Board, ImportProblem, scan
from dtmsi.importer.write import render

__all__ = ["Board", "ImportProblem", "import_tree", "read_tree"]


def read_tree(path: Path) -> Tree:
    """A .dtb (by its magic number) or DTS source. Raises :class:`ImportProblem`."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ImportProblem(f"cannot read: {e.strerror}") from None
    try:
        if data[:4] == b"\xd0\x0d\xfe\xed":
            return basetree.read_dtb(data, str(path))
        return basetree.parse_dts(data.decode("utf-8"), str(path), base_dir=path.parent)
    except basetree.BaseTreeError as e:
        where = f"{e.line}:{e.column}: " if e.line else ""
        raise ImportProblem(f"{where}{e.message}") from None
    except UnicodeDecodeError:
        raise ImportProblem("neither a device tree blob nor UTF-8 device tree source") from None


def import_tree(path: Path, output: Path | None) -> tuple[str, list[str]]:
    """The ``.msi`` text for the tree at ``path`` and what was not imported.

    The base is named relative to where the .msi will be (``output``'s
    directory, else the current one), as compiles resolve it.
    """
    tree = read_tree(path)
    board = scan(tree)
    if not board.host_bridges:
        raise ImportProblem("no PCI host bridge in the tree (device_type = \"pci\" under a non-PCI node)")
    where = output.parent if output is not None else Path(".")
    base = Path(os.path.relpath(path.resolve(), where.resolve())).as_posix()
    return render(board, base, path.name), board.notes
