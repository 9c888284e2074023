"""PAPR (hypervisor-managed) MSI: the ``ibm,req#msi``/``ibm,req#msi-x`` values
dtmsi publishes, and the vector count Linux will end up with.

Linux decides in arch/powerpc/platforms/pseries/msi.c (rtas_prepare_msi_irqs
and msi_quota_for_device); this module transcribes that arithmetic over the
device tree a partition sees (domain.md 3.5), so that a build can say, per
function, what the driver will get, and refuse a budget that cannot work.

One correction to the hand computation in domain.md 3.5: the spare walk
(pci_traverse_device_nodes -> count_spare_msis) also visits bridge nodes,
which have no ``ibm,req#`` property, so each bridge under the PE node adds a
whole quota to the spare pool.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dtmsi import codes as C
from dtmsi.alloc import Allocation, AllocationResult, Allocator
from dtmsi.diagnostics import DiagnosticSink, Note
from dtmsi.model import Function, HostBridge, Machine, Partition
from dtmsi.source import Span

PCI_CLASS_BRIDGE_PCI = 0x0604
PCI_CLASS_BRIDGE_CARDBUS = 0x0607
RTAS_CHANGE_MSI_FN = 3
RTAS_CHANGE_MSIX_FN = 4


def _pow2_ceil(n: int) -> int:
    return 1 << (n - 1).bit_length() if n > 1 else 1


@dataclass(eq=False)
class QNode:
    """A device-tree node as the Linux quota walk sees it."""

    function: Function | None  # None for the PHB node
    class_code: int
    req_msi: int | None = None
    req_msix: int | None = None
    pe_total: int | None = None
    parent: QNode | None = None
    children: list[QNode] = field(default_factory=list)


def req_values(alloc: Allocator, a: Allocation) -> tuple[int | None, int | None]:
    """``ibm,req#msi`` and ``ibm,req#msi-x`` from the policy and the capabilities.

    A mechanism the policy does not allow gets no property (Linux then never
    uses it: -ENOENT); the count is what the policy wants, capped by the
    capability, MSI rounded up to a power of two (MME is log2).
    """
    f = a.function
    msi_n, msix_n = alloc.caps(f)
    req_msi = req_msix = None
    for mech in a.policy.prefer:
        if mech == "msi" and msi_n:
            want, _ = alloc.wanted(a, msi_n, "msi")
            req_msi = min(_pow2_ceil(want), msi_n)
        elif mech == "msix" and msix_n:
            want, _ = alloc.wanted(a, msix_n, "msix")
            req_msix = min(want, msix_n)
    return req_msi, req_msix


def raw_req(f: Function, name: str) -> int | None:
    for p in f.properties:
        if p.name == name and p.chunks:
            ch = p.chunks[0]
            values = getattr(ch, "values", ())
            if values and isinstance(values[0], int):
                return int(values[0])
    return None


def build_view(
    hb: HostBridge, keep: set[int] | None, allocs: AllocationResult, pe_totals: dict[int, int] | None = None
) -> tuple[QNode, dict[int, QNode]]:
    """The PHB's subtree as a partition sees it (keep = ids of owned functions;
    pe_totals = bridge id -> ibm,pe-total-#msi of the PE anchored there)."""
    totals = pe_totals or {}
    root = QNode(None, 0, pe_total=hb.pe_total_msi)
    index: dict[int, QNode] = {}

    def kept(f: Function) -> bool:
        return keep is None or id(f) in keep

    def has_kept(f: Function) -> bool:
        if kept(f) or (f.sriov and any(kept(v) for v in f.sriov.vfs)):
            return True
        return f.is_bridge and any(has_kept(c) for c in f.children)

    def add(parent: QNode, fns: list[Function]) -> None:
        for f in fns:
            if f.is_bridge:
                if not any(has_kept(c) for c in f.children) and not kept(f):
                    continue
                q = QNode(f, f.class_code, parent=parent, pe_total=totals.get(id(f)))
                parent.children.append(q)
                index[id(f)] = q
                add(q, f.children)
                continue
            members = [f] if kept(f) else []
            if f.sriov:
                members += [v for v in f.sriov.vfs if kept(v)]
            for g in members:
                a = allocs.by_function.get(id(g))
                q = QNode(
                    g, g.class_code, parent=parent, req_msi=a.req_msi if a else None, req_msix=a.req_msix if a else None
                )
                parent.children.append(q)
                index[id(g)] = q

    add(root, hb.children)
    return root, index


def _is_bridge_class(class_code: int) -> bool:
    return (class_code >> 8) in (PCI_CLASS_BRIDGE_PCI, PCI_CLASS_BRIDGE_CARDBUS)


def traverse(start: QNode) -> list[QNode]:
    """pci_traverse_device_nodes: children of start, descending only into bridges."""
    out: list[QNode] = []

    def walk(n: QNode) -> None:
        for c in n.children:
            out.append(c)
            if c.children and _is_bridge_class(c.class_code):
                walk(c)

    walk(start)
    return out


def pe_node(node: QNode) -> QNode | None:
    """find_pe_total_msi: the device itself or the nearest ancestor with the property."""
    n: QNode | None = node
    while n is not None:
        if n.pe_total is not None:
            return n
        n = n.parent
    return None


def count_devices(pe: QNode) -> int:
    return sum(1 for n in traverse(pe) if (n.class_code >> 8) != PCI_CLASS_BRIDGE_PCI)


def msi_quota_for_device(node: QNode, request: int) -> int:
    """Linux msi_quota_for_device(), over our tree."""
    pe = pe_node(node)
    if pe is None or pe.pe_total is None:
        return request  # Linux: "couldn't find PE" -> request unchanged
    total = pe.pe_total
    nodes = traverse(pe)
    num = count_devices(pe)
    if num == 0:
        return request
    quota = total // num
    if request <= quota:
        return request
    spare = over = 0
    for n in nodes:
        req = request if n is node else max(n.req_msi or 0, n.req_msix or 0)
        if req < quota:
            spare += quota - req
        elif req > quota:
            over += 1
    spare += total % num
    if over:
        quota += spare // over
    return min(quota, request)


@dataclass
class Prediction:
    granted: int  # vectors the driver ends up with (0 = the mechanism failed)
    allocated: int  # vectors firmware allocates (MSI-X rounded to a power of two)
    quota: int
    steps: list[str]


def predict(node: QNode, mech: str, nvec: int, minvec: int, table_size: int | None = None) -> Prediction:
    """rtas_prepare_msi_irqs() with the __pci_enable_msi[x]_range() retry loop."""
    steps: list[str] = []
    req = node.req_msix if mech == "msix" else node.req_msi
    prop = "ibm,req#msi-x" if mech == "msix" else "ibm,req#msi"
    if req is None:
        return Prediction(0, 0, 0, [f"no {prop}: Linux never uses {mech} (-ENOENT)"])
    if req == 0:
        return Prediction(0, 0, 0, [f"{prop} = 0: -ENOSPC"])
    quota = 0
    for _ in range(64):
        if req < nvec:
            steps.append(f"{prop} = {req} < {nvec}: retry with {req}")
            nvec = req
        if nvec < minvec:
            steps.append(f"{nvec} is below the driver's minimum {minvec}")
            return Prediction(0, 0, quota, steps)
        quota = msi_quota_for_device(node, nvec)
        if quota and quota < nvec:
            steps.append(f"quota {quota} < {nvec}: retry with {quota}")
            nvec = quota
            continue
        break
    if nvec < minvec:
        return Prediction(0, 0, quota, steps)
    allocated = nvec
    if mech == "msix":
        m = _pow2_ceil(nvec)
        q = msi_quota_for_device(node, m)
        if q >= m:
            if m != nvec and table_size is not None and m > table_size:
                # Linux asks m anyway; the hypervisor grants at most the table
                # (QEMU: a short answer, nothing allocated) and Linux asks nvec again.
                steps.append(f"MSI-X rounded up to {m}, beyond the {table_size}-entry table: asked again for {nvec}")
            else:
                allocated = m
                if m != nvec:
                    steps.append(f"MSI-X rounded up to {m} (firmware wants powers of two)")
    steps.append(
        f"ibm,change-msi function {RTAS_CHANGE_MSIX_FN if mech == 'msix' else RTAS_CHANGE_MSI_FN}, count {allocated}"
    )
    return Prediction(nvec, allocated, quota, steps)


def config_addr(f: Function) -> int:
    """RTAS config_addr for register 0: bus << 16 | devfn << 8 (rtas_config_addr)."""
    return (f.bus << 16) | (f.devfn << 8)


def plan(machine: Machine, allocs: AllocationResult, sink: DiagnosticSink) -> None:
    """Fill req# values and Linux's predicted grant into every allocation."""
    allocator = Allocator(machine, sink)
    for a in allocs.order:
        f = a.function
        if f.host.kind != "papr":
            continue
        req_msi, req_msix = req_values(allocator, a)
        override = raw_req(f, "ibm,req#msi")
        if override is not None:
            req_msi = override
        override_x = raw_req(f, "ibm,req#msi-x")
        if override_x is not None:
            req_msix = override_x
        a.req_msi, a.req_msix = req_msi, req_msix
    views: list[tuple[Partition | None, set[int] | None]] = [
        (p, {id(f) for f in p.functions}) for p in machine.partitions
    ]
    if not views:
        views = [(None, None)]
    for part, keep in views:
        for hb in machine.host_bridges:
            if hb.kind != "papr":
                continue
            pe_totals = {id(pe.anchor): pe.total_msi for pe in machine.pes if pe.anchor and pe.total_msi is not None}
            root, index = build_view(hb, keep, allocs, pe_totals)
            if not root.children:
                continue
            n = count_devices(root)
            if hb.pe_total_msi is not None and hb.pe_total_msi < n:
                where = f" in partition '{part.name}'" if part else ""
                sink.report(
                    C.PE_TOTAL_BELOW_DEVICES,
                    hb.span,
                    f"ibm,pe-total-#msi of '{hb.name}' is {hb.pe_total_msi}, below its {n} "
                    f"devices{where}: Linux's per-device quota becomes 0 and stops limiting requests",
                    hint=f"give 'pe-total-msi' at least {n}",
                )
                continue
            for a in allocs.order:
                q = index.get(id(a.function))
                if q is None or q.function is None:
                    continue
                _predict_one(a, q, allocator, sink)
            _check_total(hb, root, index, allocs, sink, part)
            for pe in machine.pes:
                anchor = index.get(id(pe.anchor)) if pe.anchor else None
                if anchor is not None and pe.total_msi is not None:
                    _check_pe(pe.name, pe.span, pe.total_msi, anchor, allocs, sink)


def _predict_one(a: Allocation, q: QNode, allocator: Allocator, sink: DiagnosticSink) -> None:
    """What Linux ends with: the planned mechanism through the quota; below the
    driver's minimum, the next mechanism of the policy as Linux's drivers go
    on (pci_alloc_irq_vectors: MSI-X, then MSI through ibm,change-msi function
    3/1, then INTx), as the real pseries kernel does (realclient.md)."""
    f = a.function
    if a.mechanism not in ("msi", "msix"):
        return
    chain = list(a.policy.prefer)
    later = chain[chain.index(a.mechanism) :] if a.mechanism in chain else [a.mechanism]
    first = True
    for mech in later:
        if mech == "intx":
            if not f.intx_pin or f.kind == "vf":
                continue
            a.mechanism, a.requested, a.granted, a.hardware_vectors = "intx", 1, 1, 0
            a.say(f"INTx pin {'ABCD'[f.intx_pin - 1]} (shared, level): Linux's last resort")
            return
        capacity = f.msix.table_size if mech == "msix" and f.msix else f.msi.vectors if mech == "msi" and f.msi else 0
        if not capacity:
            continue
        want, minimum = allocator.wanted(a, capacity, mech)
        want = min(want, capacity)
        pred = predict(q, mech, want, minimum, f.msix.table_size if mech == "msix" and f.msix else None)
        for step in pred.steps:
            a.say(step)
        if first and pred.granted < want:
            below = f", below its minimum {minimum}: it moves on to the next mechanism"
            sink.report(
                C.QUOTA_SHORT,
                f.name_span,
                f"Linux will give '{f.name}' {pred.granted} of the {want} {mech} vectors "
                f"policy '{a.policy.name}' asks for" + (below if pred.granted < minimum else ""),
                hint="; ".join(pred.steps),
                notes=(Note(f"policy '{a.policy.name}'", a.policy.span),),
            )
        first = False
        a.quota = pred.quota
        if pred.granted >= max(minimum, 1):
            a.mechanism, a.requested = mech, want
            a.granted, a.hardware_vectors = pred.granted, pred.allocated
            return
        a.say(f"{mech}: {pred.granted} below the driver's minimum {minimum}: the next mechanism")
    a.mechanism, a.requested, a.granted, a.hardware_vectors = "none", 0, 0, 0
    a.say("no mechanism of the policy is left: no interrupt")


def _check_pe(name: str, span: Span, total: int, anchor: QNode, allocs: AllocationResult, sink: DiagnosticSink) -> None:
    n = count_devices(anchor)
    if total < n:
        sink.report(
            C.PE_TOTAL_BELOW_DEVICES,
            span,
            f"PE '{name}' has total-msi {total}, below its {n} devices: Linux's quota becomes 0",
            hint=f"give it at least {n}",
        )
        return
    used = 0
    for q in traverse(anchor):
        a = allocs.by_function.get(id(q.function)) if q.function is not None else None
        if a is not None and a.mechanism in ("msi", "msix"):
            used += a.hardware_vectors
    if used > total:
        sink.report(
            C.PE_OVERCOMMIT,
            span,
            f"planned MSI allocations in PE '{name}' add up to {used}, above its total-msi of {total}",
        )


def _check_total(
    hb: HostBridge,
    root: QNode,
    index: dict[int, QNode],
    allocs: AllocationResult,
    sink: DiagnosticSink,
    part: Partition | None,
) -> None:
    if hb.pe_total_msi is None:
        return
    used = sum(
        allocs.by_function[id(q.function)].hardware_vectors
        for q in index.values()
        if q.function is not None
        and id(q.function) in allocs.by_function
        and allocs.by_function[id(q.function)].mechanism in ("msi", "msix")
    )
    if used > hb.pe_total_msi:
        where = f" in partition '{part.name}'" if part else ""
        sink.report(
            C.PE_OVERCOMMIT,
            hb.span,
            f"planned MSI allocations under '{hb.name}'{where} add up to {used}, above its "
            f"ibm,pe-total-#msi of {hb.pe_total_msi}",
            hint="Linux's spare redistribution can promise more than the PE holds; the hypervisor "
            "will refuse the last requests",
        )
