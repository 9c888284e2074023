"""Device-tree backend: ``system.dts/.dtb`` and one ``<partition>.dts/.dtb`` each,
and with a base tree, on request, the overlays ``system.dtbo`` / ``<partition>.dtbo``."""

from __future__ import annotations

from dtmsi import codes as C
from dtmsi.alloc import AllocationResult
from dtmsi.artifacts import Outputs
from dtmsi.ast import RawCells, RawNode, RawProperty
from dtmsi.devicetree.build import Keep, TreeBuilder, attach_raw_nodes
from dtmsi.devicetree.dtb import write_tree
from dtmsi.devicetree.dts import DtsPrinter
from dtmsi.devicetree.overlay import OverlayError, build_overlay
from dtmsi.devicetree.place import BasePlace, base_place, interrupt_cells
from dtmsi.devicetree.tree import (
    DeviceTreeError,
    Node,
    Property,
    Str,
    Tree,
    find_node_by_label,
    find_node_by_path,
    iter_nodes,
)
from dtmsi.diagnostics import DiagnosticSink
from dtmsi.model import Machine
from dtmsi.source import BUILTIN


def base_refs(machine: Machine, base: Tree | None, sink: DiagnosticSink) -> dict[str, str]:
    """Controllers declared ``from base "..."``: where their node is in the base tree."""
    refs: dict[str, str] = {}
    for c in machine.controllers:
        if c.from_base is None:
            continue
        span = c.span or BUILTIN
        if base is None:
            sink.report(
                C.BASE_NODE_MISSING, span, f"controller '{c.name}' is 'from base', but the platform has no 'base' tree"
            )
            continue
        found = (
            find_node_by_path(base, c.from_base)
            if c.from_base.startswith("/")
            else find_node_by_label(base, c.from_base)
        )
        if found is None:
            sink.report(
                C.BASE_NODE_MISSING,
                span,
                f"the base tree has no node {'at' if c.from_base.startswith('/') else 'labelled'} "
                f"'{c.from_base}' for controller '{c.name}'",
            )
            continue
        if c.is_msi and c.kind != "fsl-msi" and found.prop("msi-controller") is None:
            sink.report(C.BASE_NODE_MISMATCH, span, f"base node '{c.from_base}' has no 'msi-controller' property")
        if not c.is_msi and found.prop("interrupt-controller") is None:
            # dtmsi's nodes name it as their interrupt parent: dtc (interrupts_property)
            # and Linux want an interrupt controller there (found by the fuzzer).
            sink.report(
                C.BASE_NODE_MISSING,
                span,
                f"base node '{c.from_base}' for interrupt controller '{c.name}' has no 'interrupt-controller' property",
            )
            continue
        cells = interrupt_cells(found)
        # The cells dtmsi writes specifiers with: the kind's (resolve.CONTROLLER_KINDS)
        # or the declared count; an fsl,mpic may also take 4 (type and info).
        takes = (c.interrupt_cells, 4) if c.kind == "mpic" else (c.interrupt_cells,)
        if not c.is_msi and cells is not None and cells not in takes:
            # dtmsi writes its interrupt specifiers for this kind of controller:
            # another cell count in the base makes every one of them wrong (dtc
            # interrupts_property; found by the fuzzer: an MPIC with 0 cells).
            sink.report(
                C.BASE_NODE_MISSING,
                span,
                f"base node '{c.from_base}' for {c.kind} '{c.name}' has #interrupt-cells = <{cells}>; "
                f"dtmsi's specifiers for it take {' or '.join(map(str, takes))}",
            )
            continue
        refs[c.name] = c.from_base
    return refs


def base_places(
    machine: Machine, base: Tree | None, refs: dict[str, str], sink: DiagnosticSink
) -> dict[str, BasePlace]:
    """Controllers from the base tree: the place beside their node (its parent's
    path and cells), for the compiler's nodes that sit next to them. An FSL MSI
    block beside a base MPIC must have its registers inside that bus's ranges."""
    places: dict[str, BasePlace] = {}
    if base is None:
        return places
    paths = {label: path for path, n in iter_nodes(base) for label in n.labels}
    for name, ref in refs.items():
        path = ref if ref.startswith("/") else paths.get(ref)
        place = base_place(base, path) if path is not None else None
        if place is not None:
            places[name] = place
    for c in machine.controllers:
        if c.kind != "fsl-msi" or c.from_base is not None or c.parent is None or c.address is None:
            continue
        place = places.get(c.parent.name)
        if place is None or c.size is None:
            continue
        if place.child_address(c.address, c.size) is None:
            sink.report(
                C.CONTROLLER_OUTSIDE_BUS,
                c.span or BUILTIN,
                f"'{c.name}' at {c.address:#x} (size {c.size:#x}) is not inside the 'ranges' of "
                f"{place.parent_path}, where it sits beside its MPIC '{c.parent.name}'",
                hint="give the block's CPU address inside that bus's window (for QEMU's ppce500: "
                "CCSR 0xf_e000_0000 + 0x41600)",
            )
    return places


def build_tree(
    machine: Machine,
    allocation: AllocationResult,
    base: Tree | None,
    keep: Keep | None,
    refs: dict[str, str],
    sink: DiagnosticSink,
    places: dict[str, BasePlace] | None = None,
) -> Tree:
    ours = TreeBuilder(machine, keep, refs, allocation, places).build()
    if base is not None:
        from dtmsi.devicetree.merge import merge_into, unit_address_clashes

        tree = merge_into(base, ours.root)  # a copy: the base tree serves every partition
        tree.header_comment = ours.header_comment
        if keep is None:  # a partition's tree holds a subset of the system tree's nodes
            _report_unit_address_clashes(machine, unit_address_clashes(tree.root, ours.root), sink)
    else:
        tree = ours
    if tree.root.prop("model") is None:
        # The DT spec requires a root 'model'; with none in the .msi or the base
        # tree, the platform's compatible names the machine (QEMU's virt does the same).
        at = next((i + 1 for i, p in enumerate(tree.root.properties) if p.name == "compatible"), 0)
        tree.root.properties.insert(at, Property("model", (Str(machine.platform.compatible[0]),)))
    missing = attach_raw_nodes(tree, machine.raw_nodes, lambda n: refs.get(n, n.replace("-", "_")))
    for n in missing:
        sink.report(C.RAW_NODE, n.span, f"the parent of raw node '{n.path}' does not exist")
    return tree


def _report_unit_address_clashes(
    machine: Machine, clashes: list[tuple[str, Node, Node]], sink: DiagnosticSink
) -> None:
    spans = {c.label: c.span for c in machine.controllers if c.span is not None}
    spans.update((hb.label, hb.span) for hb in machine.host_bridges)
    for bus, ours, theirs in clashes:
        span = next((spans[label] for label in ours.labels if label in spans), machine.platform.span or BUILTIN)
        sink.report(
            C.BASE_UNIT_ADDRESS,
            span,
            f"the node dtmsi makes for this, '{ours.name}', has the unit address of the base tree's "
            f"'{theirs.name}' (both on {bus})",
            hint="two nodes at one address on one bus: move the registers (or ECAM) off the base tree's node",
        )


def _raw_properties(machine: Machine) -> list[RawProperty]:
    props: list[RawProperty] = []
    stack: list[RawNode] = list(reversed(machine.raw_nodes))
    while stack:
        n = stack.pop()
        props.extend(n.properties)
        stack.extend(reversed(n.children))
    for c in machine.controllers:
        props.extend(c.properties)
    for hb in machine.host_bridges:
        props.extend(hb.properties)
        for f in hb.functions():
            props.extend(f.properties)
    return props


def check_raw_references(machine: Machine, tree: Tree, refs: dict[str, str], sink: DiagnosticSink) -> None:
    """Every name a raw property refers to (``= serial0``) is a label in the tree."""
    props = [p for p in _raw_properties(machine) if any(isinstance(c, RawCells) for c in p.chunks)]
    if not props:
        return  # nothing to check: do not make the (deferred) PCI nodes for it
    labels = {label for _, n in iter_nodes(tree) for label in n.labels}
    for p in props:
        for chunk in p.chunks:
            if not isinstance(chunk, RawCells):
                continue
            for v in chunk.values:
                if isinstance(v, str):
                    target = refs.get(v, v.replace("-", "_"))
                    if not target.startswith("/") and target not in labels:
                        sink.report(
                            C.RAW_NODE,
                            p.span,
                            f'reference to non-existent node or label "{v}" in property "{p.name}"',
                            hint="name a declared controller, host bridge or function, or a label of the base tree",
                        )


def render(
    machine: Machine,
    allocation: AllocationResult,
    base: Tree | None,
    sink: DiagnosticSink,
    outputs: Outputs,
    emit: frozenset[str] = frozenset({"dtb", "dts"}),
) -> None:
    refs = base_refs(machine, base, sink)
    places = base_places(machine, base, refs, sink)
    if sink.has_errors:
        return
    overlays = "dtbo" in emit and base is not None
    if "dtbo" in emit and base is None:
        sink.report(
            C.OVERLAY_NO_BASE,
            machine.platform.span or BUILTIN,
            "no overlay (.dtbo) is written: the platform names no 'base' tree for it to apply to",
            hint="name the board's tree with 'base \"board.dts\";' (or .dtb), or leave dtbo out of --emit",
        )
    views: list[tuple[str, Keep | None]] = [("system", None)]
    for part in machine.partitions:
        owned = {id(f) for f in part.functions}
        views.append((part.name, lambda f, owned=owned: id(f) in owned))  # type: ignore[misc]
    for name, keep in views:
        # The PCI nodes are deferred (made as the writer walks them), so the
        # tree is never whole in memory: both files are written in one walk.
        tree = build_tree(machine, allocation, base, keep, refs, sink, places)
        if keep is None:  # the system tree holds every label a raw property may name
            check_raw_references(machine, tree, refs, sink)
            if sink.has_errors:
                return
        try:
            # Trees are made even when not emitted: the writer finds some errors.
            with outputs.open(f"{name}.dtb", "dtb" in emit) as dtb, outputs.open(f"{name}.dts", "dts" in emit) as dts:
                printer = DtsPrinter(dts.write, lambda dts=dts: (dts.seek(0), dts.truncate()))  # type: ignore[misc]
                write_tree(tree, dtb.write, printer)
        except DeviceTreeError as e:
            sink.report(C.RAW_NODE, machine.platform.span or BUILTIN, f"{name} tree: {e}")
            return
        if overlays:
            assert base is not None
            _render_overlay(machine, base, tree, name, sink, outputs)


def _render_overlay(
    machine: Machine, base: Tree, tree: Tree, name: str, sink: DiagnosticSink, outputs: Outputs
) -> None:
    try:
        overlay = build_overlay(base, tree)
    except OverlayError as e:
        user = next((c for c in machine.controllers if c.from_base == e.target), None)
        sink.report(
            C.OVERLAY_BASE_REF,
            (user.span if user is not None else None) or machine.platform.base_span or BUILTIN,
            f"{name}.dtbo: {e.message}",
            hint="give the node a label in the base tree (and build the board's DTB with 'dtc -@'), "
            "or name it by a label with 'from base \"LABEL\"'",
        )
        return
    try:
        with outputs.open(f"{name}.dtbo", True) as dtbo:
            write_tree(overlay, dtbo.write)
    except DeviceTreeError as e:
        sink.report(C.RAW_NODE, machine.platform.span or BUILTIN, f"{name}.dtbo: {e}")
