"""Where a compiler node goes beside a base-tree node, and its ``reg`` there.

An FSL MSI block sits beside its MPIC, under the SoC node (QEMU's ``ppce500``
tree, Freescale's ``pq3-msi-0.dtsi``), so its ``reg`` is in the SoC's cells
and relative to the SoC's ``ranges``, not a CPU address in the root's cells.
This module reads those facts from the base tree: the parent's path and cells,
the chain of ``ranges`` from the root down to it (Devicetree spec 2.3.8), and
the base node's own ``#interrupt-cells``.
"""

from __future__ import annotations

from dataclasses import dataclass

from dtmsi.devicetree.tree import Cells, Node, Tree, canonical_path


@dataclass(frozen=True, slots=True)
class BasePlace:
    """The parent of a base-tree node, as a sibling of that node would see it."""

    parent_path: str  # "/" or "/soc@fe0000000"
    address_cells: int
    size_cells: int
    # Per bus from the root down to the parent: None for a bus without
    # 'ranges' (nothing maps into it), () for an empty 'ranges' (identity),
    # else (child address, parent address, size) rows.
    ranges: tuple[tuple[tuple[int, int, int], ...] | None, ...]
    interrupt_cells: int | None  # the base node's own #interrupt-cells

    def child_address(self, cpu: int, size: int) -> int | None:
        """``cpu`` .. ``cpu + size`` in the parent's address space, or None when
        no 'ranges' row holds all of it."""
        address = cpu
        for rows in self.ranges:
            if rows is None:
                return None
            if not rows:
                continue
            for child, parent, length in rows:
                if parent <= address and address + size <= parent + length:
                    address = address - parent + child
                    break
            else:
                return None
        return address


def _u32s(node: Node, name: str) -> list[int] | None:
    prop = node.prop(name)
    if prop is None:
        return None
    out: list[int] = []
    for chunk in prop.chunks:
        if not isinstance(chunk, Cells) or chunk.bits != 32:
            return None
        out.extend(v for v in chunk.values if isinstance(v, int))
    return out


def interrupt_cells(node: Node) -> int | None:
    """A node's own ``#interrupt-cells`` (None if it has none, or not one u32)."""
    got = _u32s(node, "#interrupt-cells")
    return got[0] if got is not None and len(got) == 1 else None


def _cells(node: Node, name: str, default: int) -> int:
    got = _u32s(node, name)
    return got[0] if got else default


def _number(cells: list[int]) -> int:
    value = 0
    for c in cells:
        value = value << 32 | c
    return value


def _ranges(bus: Node, parent_acells: int) -> tuple[tuple[int, int, int], ...] | None:
    raw = _u32s(bus, "ranges")
    if raw is None:
        return None
    ac, sc = _cells(bus, "#address-cells", 2), _cells(bus, "#size-cells", 1)
    width = ac + parent_acells + sc
    rows = []
    for i in range(0, len(raw) - width + 1, width):
        row = raw[i : i + width]
        rows.append((_number(row[:ac]), _number(row[ac : ac + parent_acells]), _number(row[ac + parent_acells :])))
    return tuple(rows)


def base_place(tree: Tree, path: str) -> BasePlace | None:
    """The place beside the base node at ``path`` (a full path), or None if
    there is no such node or it is the root."""
    canon = canonical_path(path)
    if canon is None or canon == "/":
        return None
    names = canon.split("/")[1:]
    chain = [tree.root]
    for name in names:
        nxt = chain[-1].child(name)
        if nxt is None:
            return None
        chain.append(nxt)
    node, parent = chain[-1], chain[-2]
    ranges = []
    acells = _cells(tree.root, "#address-cells", 2)
    for bus in chain[1:-1]:  # the buses between the root and the node
        ranges.append(_ranges(bus, acells))
        acells = _cells(bus, "#address-cells", 2)
    return BasePlace(
        "/" + "/".join(names[:-1]),
        _cells(parent, "#address-cells", 2),
        _cells(parent, "#size-cells", 1),
        tuple(ranges),
        _cells(node, "#interrupt-cells", 0) or None,
    )
