"""Small DTB edits for the Linux boot tests (pylibfdt), and dtc invocation.

* :func:`compile_dts` runs dtc and fails on any warning.
* :func:`delete_property` removes one property (e.g. ``msi-map``).
* :func:`graft_node` copies a subtree of one DTB into another, rewriting the
  phandles inside ``interrupt-parent``, ``interrupt-map``, ``msi-parent`` and
  ``msi-map`` so that they point at the node with the same path in the
  target tree (used to put QEMU's own ``pcie@...`` node on our base tree).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libfdt

from .guest import HarnessError

__all__ = [
    "DtcResult",
    "canonical",
    "compile_dts",
    "delete_property",
    "get_property",
    "graft_node",
    "phandle_positions",
]


@dataclass(frozen=True)
class DtcResult:
    dtb: bytes
    warnings: str


def compile_dts(source: Path | str, *, allow_warnings: bool = False) -> DtcResult:
    """Compile DTS (a path or the text itself) with ``dtc -I dts -O dtb``."""
    if shutil.which("dtc") is None:
        raise HarnessError(
            "dtc is missing: apt-get install device-tree-compiler "
            "(scripts/apt-packages.txt lists it)"
        )
    with tempfile.TemporaryDirectory(prefix="dtmsi-dtc-") as tmp:
        if isinstance(source, Path):
            src = source
        else:
            src = Path(tmp) / "input.dts"
            src.write_text(source)
        out = Path(tmp) / "out.dtb"
        proc = subprocess.run(
            ["dtc", "-I", "dts", "-O", "dtb", "-o", str(out), str(src)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if proc.returncode != 0:
            raise HarnessError(f"dtc failed on {src}:\n{proc.stderr}")
        if proc.stderr.strip() and not allow_warnings:
            raise HarnessError(f"dtc warned on {src}:\n{proc.stderr}")
        return DtcResult(out.read_bytes(), proc.stderr)


def _open(blob: bytes, extra: int = 0) -> Any:
    fdt = libfdt.Fdt(bytearray(blob))
    if extra:
        fdt.resize(fdt.totalsize() + extra)
    return fdt


def _finish(fdt: Any) -> bytes:
    fdt.pack()
    return bytes(fdt.as_bytearray())


def get_property(blob: bytes, path: str, name: str) -> bytes | None:
    """The raw value of ``path``'s property ``name``, or None."""
    fdt = _open(blob)
    offset = fdt.path_offset(path)
    value = fdt.getprop(offset, name, libfdt.QUIET_NOTFOUND)
    if isinstance(value, int):
        return None
    return bytes(value)


def delete_property(blob: bytes, path: str, name: str) -> bytes:
    """The tree without ``path``'s property ``name`` (which must exist)."""
    fdt = _open(blob)
    fdt.delprop(fdt.path_offset(path), name)
    return _finish(fdt)


def _cells(value: bytes) -> list[int]:
    return [int.from_bytes(value[i : i + 4], "big") for i in range(0, len(value), 4)]


def _pack_cells(cells: list[int]) -> bytes:
    return b"".join(c.to_bytes(4, "big") for c in cells)


def _u32(fdt: Any, offset: int, name: str, default: int) -> int:
    value = fdt.getprop(offset, name, libfdt.QUIET_NOTFOUND)
    if isinstance(value, int):
        return default
    return int.from_bytes(bytes(value)[:4], "big")


class _PhandleMap:
    """Donor phandle -> phandle of the node at the same path in the target."""

    def __init__(self, donor: Any, target: Any) -> None:
        self.donor = donor
        self.target = target
        self._next = 1 + max((target.get_phandle(o) for o in _offsets(target)), default=0)

    def donor_node(self, phandle: int) -> int:
        try:
            return int(self.donor.node_offset_by_phandle(phandle))
        except libfdt.FdtException as exc:
            raise HarnessError(f"donor tree has no node with phandle {phandle:#x}") from exc

    def __call__(self, phandle: int) -> int:
        path = self.donor.get_path(self.donor_node(phandle))
        try:
            offset = self.target.path_offset(path)
        except libfdt.FdtException as exc:
            raise HarnessError(f"target tree has no {path} (referenced by phandle)") from exc
        existing = int(self.target.get_phandle(offset))
        if existing:
            return existing
        value = self._next
        self._next += 1
        self.target.setprop_u32(offset, "phandle", value)
        return value


def _offsets(fdt: Any) -> list[int]:
    offsets = [0]
    offset, depth = 0, 0
    while True:
        result = fdt.next_node(offset, depth, libfdt.QUIET_NOTFOUND)
        if isinstance(result, int):  # -FDT_ERR_NOTFOUND: the end
            break
        offset, depth = result
        if offset < 0 or depth <= 0:  # left the root node
            break
        offsets.append(offset)
    return offsets


#: property -> the cell count property of the node its phandles point at
#: (a list of "phandle + that many cells" entries).
_PHANDLE_LISTS = {
    "clocks": "#clock-cells",
    "gpios": "#gpio-cells",
    "msi-parent": "#msi-cells",
    "interrupts-extended": "#interrupt-cells",
}


def phandle_positions(fdt: Any, node: int, name: str, value: bytes) -> list[int]:
    """Indexes of the cells of ``node``'s property ``name`` that hold phandles.

    Knows ``interrupt-parent``, ``cpu``, ``clocks``, ``*gpios``,
    ``msi-parent``, ``interrupts-extended``, ``msi-map``, ``iommu-map`` and
    ``interrupt-map``; other properties hold no phandle.
    """
    cells = _cells(value)
    if name in ("interrupt-parent", "cpu"):
        return [0]

    def target(i: int) -> int:
        try:
            return int(fdt.node_offset_by_phandle(cells[i]))
        except libfdt.FdtException as exc:
            raise HarnessError(f"{name}: no node with phandle {cells[i]:#x}") from exc

    positions: list[int] = []
    i = 0
    list_key = "gpios" if name.endswith("gpios") else name
    if list_key in _PHANDLE_LISTS:
        while i < len(cells):
            positions.append(i)
            i += 1 + _u32(fdt, target(i), _PHANDLE_LISTS[list_key], 0)
    elif name in ("msi-map", "iommu-map"):
        count = "#msi-cells" if name == "msi-map" else "#iommu-cells"
        while i < len(cells):
            positions.append(i + 1)
            i += 3 + _u32(fdt, target(i + 1), count, 1)
    elif name == "interrupt-map":
        child = _u32(fdt, node, "#address-cells", 2) + _u32(fdt, node, "#interrupt-cells", 1)
        while i < len(cells):
            i += child
            positions.append(i)
            parent = target(i)
            i += (
                1
                + _u32(fdt, parent, "#address-cells", 0)
                + _u32(fdt, parent, "#interrupt-cells", 0)
            )
    return positions


def _remap(name: str, value: bytes, donor: Any, node: int, remap: _PhandleMap) -> bytes:
    """Rewrite the phandles in one property of donor node ``node``."""
    positions = phandle_positions(donor, node, name, value)
    if not positions:
        return value
    cells = _cells(value)
    for i in positions:
        cells[i] = remap(cells[i])
    return _pack_cells(cells)


def canonical(blob: bytes) -> dict[str, dict[str, bytes]]:
    """path -> properties, with every phandle replaced by a number that
    depends only on the referenced node's path, and ``phandle`` dropped.

    Two trees that differ only in phandle numbering compare equal.
    """
    fdt = _open(blob)
    paths = {off: fdt.get_path(off) for off in _offsets(fdt)}
    ordinal = {path: n + 1 for n, path in enumerate(sorted(paths.values()))}
    result: dict[str, dict[str, bytes]] = {}
    for off, path in paths.items():
        props: dict[str, bytes] = {}
        poff = fdt.first_property_offset(off, libfdt.QUIET_NOTFOUND)
        while poff >= 0:
            prop = fdt.get_property_by_offset(poff)
            name, value = prop.name, bytes(prop)
            poff = fdt.next_property_offset(poff, libfdt.QUIET_NOTFOUND)
            if name in ("phandle", "linux,phandle"):
                continue
            positions = phandle_positions(fdt, off, name, value)
            if positions:
                cells = _cells(value)
                for i in positions:
                    cells[i] = ordinal[fdt.get_path(fdt.node_offset_by_phandle(cells[i]))]
                value = _pack_cells(cells)
            props[name] = value
        result[path] = props
    return result


def graft_node(target: bytes, donor: bytes, path: str) -> bytes:
    """``target`` with ``donor``'s subtree at ``path`` added (same path).

    The parent of ``path`` must exist in ``target`` and ``path`` must not.
    Phandles in the copied properties are rewritten to the target's nodes
    with the same path (a ``phandle`` is added where the target has none).
    """
    dst = _open(target, extra=len(donor) + 4096)
    src = _open(donor)
    remap = _PhandleMap(src, dst)
    if not path.strip("/"):
        raise HarnessError("cannot graft the root node")
    parent_path, _, _ = path.rstrip("/").rpartition("/")
    start = src.path_offset(path)

    def copy(src_off: int, dst_parent_path: str) -> None:
        name = src.get_name(src_off)
        dst_path = f"{dst_parent_path.rstrip('/')}/{name}"
        dst.add_subnode(dst.path_offset(dst_parent_path or "/"), name)
        props: list[tuple[str, bytes]] = []
        poff = src.first_property_offset(src_off, libfdt.QUIET_NOTFOUND)
        while poff >= 0:
            prop = src.get_property_by_offset(poff)
            if prop.name == "phandle":
                raise HarnessError(f"{dst_path} carries a phandle; grafting it is not supported")
            props.append((prop.name, bytes(prop)))
            poff = src.next_property_offset(poff, libfdt.QUIET_NOTFOUND)
        for pname, value in props:
            new = _remap(pname, value, src, src_off, remap)
            dst.setprop(dst.path_offset(dst_path), pname, new)
        child = src.first_subnode(src_off, libfdt.QUIET_NOTFOUND)
        while child >= 0:
            copy(child, dst_path)
            child = src.next_subnode(child, libfdt.QUIET_NOTFOUND)

    copy(start, parent_path or "/")
    return _finish(dst)
