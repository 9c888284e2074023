"""Device-tree backend: ``system.dts/.dtb`` and one ``<partition>.dts/.dtb`` each."""

from __future__ import annotations

from dtmsi import codes as C
from dtmsi.alloc import AllocationResult
from dtmsi.artifacts import Outputs
from dtmsi.ast import RawCells, RawNode, RawProperty
from dtmsi.devicetree.build import Keep, TreeBuilder, attach_raw_nodes
from dtmsi.devicetree.dtb import write_tree
from dtmsi.devicetree.dts import DtsPrinter
from dtmsi.devicetree.tree import DeviceTreeError, Tree, find_node_by_label, find_node_by_path, iter_nodes
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
        if c.is_msi and found.prop("msi-controller") is None:
            sink.report(C.BASE_NODE_MISMATCH, span, f"base node '{c.from_base}' has no 'msi-controller' property")
        refs[c.name] = c.from_base
    return refs


def build_tree(
    machine: Machine,
    allocation: AllocationResult,
    base: Tree | None,
    keep: Keep | None,
    refs: dict[str, str],
    sink: DiagnosticSink,
) -> Tree:
    ours = TreeBuilder(machine, keep, refs, allocation).build()
    if base is not None:
        from dtmsi.devicetree.merge import merge_into

        tree = merge_into(base, ours.root)  # a copy: the base tree serves every partition
        tree.header_comment = ours.header_comment
    else:
        tree = ours
    missing = attach_raw_nodes(tree, machine.raw_nodes, lambda n: refs.get(n, n.replace("-", "_")))
    for n in missing:
        sink.report(C.RAW_NODE, n.span, f"the parent of raw node '{n.path}' does not exist")
    return tree


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
    if sink.has_errors:
        return
    views: list[tuple[str, Keep | None]] = [("system", None)]
    for part in machine.partitions:
        owned = {id(f) for f in part.functions}
        views.append((part.name, lambda f, owned=owned: id(f) in owned))  # type: ignore[misc]
    for name, keep in views:
        # The PCI nodes are deferred (made as the writer walks them), so the
        # tree is never whole in memory: both files are written in one walk.
        tree = build_tree(machine, allocation, base, keep, refs, sink)
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
