"""The stub plan: what one partition's generated setup code must do, as plain data.

Built once per partition (or for the whole machine when it has none) from the
resolved model and the MSI allocation: functions in (segment, bus, devfn)
order with their planned mechanism, capability offsets, message runs, PAPR
and OPAL parameters, identifiers already mangled and provenance already
escaped. The C and Python backends only render it (dtmsi/stubs/CONTRACT.md
says what each field means to the engine).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Literal, NamedTuple

from dtmsi import __version__
from dtmsi import codes as C
from dtmsi.alloc import Allocation, AllocationResult, Allocator
from dtmsi.diagnostics import DiagnosticSink
from dtmsi.model import Function, HostBridge, Machine, Partition
from dtmsi.source import Span
from dtmsi.stubs.names import IdentifierError, Namespace, c_comment, c_string, mangle, py_comment, py_string

StubMode = Literal["native", "opal", "papr"]

ABI = 1

MECH_CODES = {"none": 0, "intx": 1, "msi": 2, "msix": 3}
SHORT_CODES = {"degrade": 0, "fallback": 1, "fail": 2}

F_ADDR64 = 0x1
F_MASKABLE = 0x2
F_VF = 0x4
F_NO_INTX_DISABLE = 0x8
F_NO_64BIT_MSI = 0x10
F_BUS_MASTER = 0x20
F_LEAVE_MASKED = 0x40
F_INTX_FALLBACK = 0x80

FLAG_NAMES = (
    (F_ADDR64, "ADDR64"),
    (F_MASKABLE, "MASKABLE"),
    (F_VF, "VF"),
    (F_NO_INTX_DISABLE, "NO_INTX_DISABLE"),
    (F_NO_64BIT_MSI, "NO_64BIT_MSI"),
    (F_BUS_MASTER, "BUS_MASTER"),
    (F_LEAVE_MASKED, "LEAVE_MASKED"),
    (F_INTX_FALLBACK, "INTX_FALLBACK"),
)


@dataclass(frozen=True, slots=True)
class PlanRun:
    """Vector ``vector + i`` sends ``data + i`` to ``address`` and is interrupt ``irq + i``."""

    vector: int
    count: int
    address: int
    data: int
    irq: int


@dataclass(frozen=True, slots=True)
class PlanWindow:
    pci: int
    cpu: int
    size: int


@dataclass(frozen=True, slots=True)
class PlanHostBridge:
    index: int
    name: str
    name_c: str
    name_py: str
    comment_c: str
    comment_py: str
    segment: int
    buid: int  # PAPR
    opal_phb_id: int  # OPAL
    msi_base: int  # OPAL: first hwirq of the PHB's MSI range
    window_first: int
    windows: tuple[PlanWindow, ...]


class PlanFunction(NamedTuple):
    """One function's row (a tuple: a 100k-function plan makes 100k of them)."""

    position: int  # index in the table
    ident: str  # mangled, upper-case: FN_<IDENT>
    name_c: str
    name_py: str
    comment_c: str  # "0000:01:00.0 nvme0 - board.msi:14", escaped for /* */
    comment_py: str
    seg: int
    bus: int
    devfn: int
    vendor: int
    device: int
    mech: int
    mech_name: str
    flags: int
    flag_names: tuple[str, ...]
    msi_cap: int
    msix_cap: int
    nvec: int
    nvec_min: int
    hw_vectors: int
    msix_tsize: int
    msix_bir: int
    msix_offset: int
    bar_pci: int
    hb: int
    run_first: int
    runs: tuple[PlanRun, ...]
    slot: int
    slots: int
    on_short: int
    on_short_name: str
    config_addr: int
    fb_msi_nvec: int
    fb_msi_min: int
    opal_pe: int
    opal_mve: int


@dataclass(frozen=True, slots=True)
class StubPlan:
    """One stub's plan. Its functions are made one at a time by
    :meth:`functions` (a 100k-function machine never holds them all): the
    backends render every output in one walk over them."""

    stem: str  # output file stem: "<partition>_msi" or "system_msi"
    prefix: str  # C symbol prefix: dtmsi_<partition>
    upper: str  # macro prefix
    partition: str | None
    mode: StubMode
    mode_code: int
    source: str  # the top-level input, as generated files name it
    digest: str  # "sha256:<hex>" of allocation.json: changes exactly when an MSI decision does
    version: str
    rtas_change_msi: int
    rtas_query_irq: int
    host_bridges: tuple[PlanHostBridge, ...]
    windows: tuple[PlanWindow, ...]
    allocations: tuple[Allocation, ...]  # the functions, in (segment, bus, devfn) order
    hb_index: dict[int, int]  # id(HostBridge) -> index in host_bridges
    allocator: Allocator  # the policies' vector arithmetic

    @property
    def header(self) -> str:
        return f"{self.stem}.h"

    @property
    def guard(self) -> str:
        return f"{self.upper}_MSI_H"

    def functions(self, sink: DiagnosticSink) -> Iterator[PlanFunction]:
        """Every function's plan, in table order. A name that cannot become an
        identifier is reported (E204) and its function left out."""
        names = Namespace()
        run_first = slot = 0
        index = 0
        for a in self.allocations:
            f = a.function
            try:
                if "\0" in f.name:
                    raise IdentifierError("it holds a NUL character, which would end the C string early")
                ident = names.take(f.name).upper()
            except IdentifierError as e:
                sink.report(
                    C.STUB_IDENTIFIER,
                    f.name_span,
                    f"function name cannot become a stub identifier: {e}",
                    hint="rename one of the functions",
                )
                continue
            pf = _function(a, f, index, ident, self.hb_index[id(f.host)], run_first, slot, self.mode, self.allocator)
            yield pf
            index += 1
            run_first += len(pf.runs)
            slot += pf.slots


MODE_CODES: dict[StubMode, int] = {"native": 0, "opal": 1, "papr": 2}


def stub_mode(machine: Machine) -> StubMode:
    kind = machine.platform.msi_mode.kind
    return "papr" if kind == "hypervisor" else "opal" if kind == "firmware-composed" else "native"


def _prefix(machine: Machine, part: Partition | None, sink: DiagnosticSink) -> str | None:
    given = part.stub_prefix if part is not None else machine.platform.stub_prefix
    if given is not None:
        text, span = given
        try:
            return mangle(text)
        except IdentifierError as e:
            sink.report(C.STUB_IDENTIFIER, span, f"stub prefix: {e}", hint="give 'stub-prefix' a C identifier")
            return None
    return "dtmsi_" + (part.name if part is not None else "system").replace("-", "_")


def build_plans(machine: Machine, allocation: AllocationResult, digest: str, sink: DiagnosticSink) -> list[StubPlan]:
    """One plan per partition, or one for the whole machine without partitions.

    Reports E204 for prefixes that cannot become identifiers (a keyword, two
    stubs with one prefix); function names are checked as the plan's
    functions are made (:meth:`StubPlan.functions`).
    """
    parts: list[Partition | None] = list(machine.partitions) or [None]
    allocator = Allocator(machine, DiagnosticSink())  # for the policies' vector arithmetic only
    plans: list[StubPlan] = []
    prefixes: dict[str, Span | None] = {}
    for part in parts:
        prefix = _prefix(machine, part, sink)
        if prefix is None:
            continue
        span = part.stub_prefix[1] if part is not None and part.stub_prefix else part.span if part else None
        if prefix.upper() in prefixes:
            sink.report(
                C.STUB_IDENTIFIER,
                span or machine.platform.span or machine.host_bridges[0].span,
                f"two stubs would share the symbol prefix '{prefix}'",
                hint="give one partition 'stub-prefix \"NAME\";'",
            )
            continue
        prefixes[prefix.upper()] = span
        plans.append(_build_plan(machine, allocation, part, prefix, digest, allocator))
    return plans


def _functions_of(allocation: AllocationResult, part: Partition | None) -> list[Allocation]:
    if part is None:
        chosen = list(allocation.order)
    else:
        owned = {id(f) for f in part.functions}
        chosen = [a for a in allocation.order if id(a.function) in owned]
    chosen.sort(key=lambda a: (a.function.host.domain_or_zero, a.function.rid))
    return chosen


def _host_bridge(hb: HostBridge, index: int, window_first: int) -> PlanHostBridge:
    windows = tuple(PlanWindow(w.pci, w.cpu, w.size) for w in hb.windows if w.kind != "io")
    what = f"{hb.name} - {hb.span.short()}"
    return PlanHostBridge(
        index,
        hb.name,
        c_string(hb.name),
        py_string(hb.name),
        c_comment(what),
        py_comment(what),
        hb.domain_or_zero,
        hb.buid or 0 if hb.kind == "papr" else 0,
        hb.buid or 0 if hb.kind == "opal" else 0,
        hb.msi_ranges[0] if hb.msi_ranges else 0,
        window_first,
        windows,
    )


def _build_plan(
    machine: Machine,
    allocation: AllocationResult,
    part: Partition | None,
    prefix: str,
    digest: str,
    allocator: Allocator,
) -> StubPlan:
    mode = stub_mode(machine)
    chosen = _functions_of(allocation, part)
    hbs: dict[int, PlanHostBridge] = {}
    windows: list[PlanWindow] = []
    for a in chosen:
        host = a.function.host
        if id(host) not in hbs:
            hb = _host_bridge(host, len(hbs), len(windows))
            hbs[id(host)] = hb
            windows.extend(hb.windows)
    tokens = machine.platform.msi_mode.tokens
    return StubPlan(
        f"{part.name if part is not None else 'system'}_msi",
        prefix,
        prefix.upper(),
        part.name if part is not None else None,
        mode,
        MODE_CODES[mode],
        machine.source_name,
        digest,
        __version__,
        tokens.get("change-msi", 0) if mode == "papr" else 0,
        tokens.get("query-interrupt-source-number", 0) if mode == "papr" else 0,
        tuple(hbs.values()),
        tuple(windows),
        tuple(chosen),
        {key: hb.index for key, hb in hbs.items()},
        allocator,
    )


@cache
def _flag_names(flags: int) -> tuple[str, ...]:
    return tuple(n for bit, n in FLAG_NAMES if flags & bit)


def _function(
    a: Allocation,
    f: Function,
    index: int,
    ident: str,
    hb_index: int,
    run_first: int,
    slot: int,
    mode: StubMode,
    allocator: Allocator,
) -> PlanFunction:
    msi, msix = f.msi, f.msix
    flags = F_BUS_MASTER
    if msi is not None and msi.is64:
        flags |= F_ADDR64
    if msi is not None and msi.maskable:
        flags |= F_MASKABLE
    if f.kind == "vf":
        flags |= F_VF
    if "no-intx-disable" in f.quirks:
        flags |= F_NO_INTX_DISABLE
    if "no-64bit-msi" in f.quirks:
        flags |= F_NO_64BIT_MSI
    mech = a.mechanism
    chain = a.policy.prefer
    later = chain[chain.index(mech) + 1 :] if mech in chain else []
    fb_msi_nvec = fb_msi_min = 0
    if mode == "papr" and mech == "msix" and "msi" in later and msi is not None:
        want, minimum = allocator.wanted(a, msi.vectors, "msi")
        fb_msi_nvec = min(want, msi.vectors)
        fb_msi_min = min(minimum, fb_msi_nvec)
    if mode == "papr" and mech in ("msi", "msix") and "intx" in later and f.intx_pin and f.kind != "vf":
        flags |= F_INTX_FALLBACK
    nvec = a.granted if mech in ("msi", "msix") else 0
    nvec_min = 0
    if mech in ("msi", "msix"):
        capacity = (msix.table_size if mech == "msix" and msix else msi.vectors if msi else 0) or 1
        nvec_min = min(allocator.wanted(a, capacity, mech)[1], nvec)
    runs: tuple[PlanRun, ...] = ()
    if mode != "papr" and mech in ("msi", "msix"):
        runs = tuple(
            PlanRun(
                m.vector,
                m.count,
                # OPAL: firmware composes the messages at run time; the stub
                # writes what it answers, so its runs carry none (CONTRACT.md)
                m.address or 0 if mode == "native" else 0,
                m.data or 0 if mode == "native" else 0,
                m.event_id if m.event_id is not None else m.hwirq if m.hwirq is not None else m.data or 0,
            )
            for m in a.messages
        )
    bar_pci = 0
    if f.kind == "vf" and msix is not None:
        bar = next((b for b in f.bars if b.index == msix.table_bir), None)
        bar_pci = bar.address or 0 if bar is not None else 0
    where = f"{f.full_bdf} {f.name} - {f.span.short()}"
    slots = max(nvec, fb_msi_nvec)
    opal_pe = f.bus if mode == "opal" else 0  # OPAL: one PE per bus, numbered by it (Linux's powernv bus PEs)
    return PlanFunction(
        index,
        ident,
        c_string(f.name),
        py_string(f.name),
        c_comment(where),
        py_comment(where),
        f.host.domain_or_zero,
        f.bus,
        f.devfn,
        f.vendor,
        f.device_id,
        MECH_CODES[mech],
        mech,
        flags,
        _flag_names(flags),
        (msi.offset or 0) if msi is not None else 0,
        (msix.offset or 0) if msix is not None else 0,
        nvec,
        nvec_min,
        a.hardware_vectors if mech in ("msi", "msix") else 0,
        msix.table_size if msix is not None else 0,
        msix.table_bir if msix is not None else 0,
        msix.table_offset if msix is not None else 0,
        bar_pci,
        hb_index,
        run_first,
        runs,
        slot,
        slots,
        SHORT_CODES[a.policy.on_short],
        a.policy.on_short,
        (f.bus << 16) | (f.devfn << 8),
        fb_msi_nvec,
        fb_msi_min,
        opal_pe,
        opal_pe,  # MVE = PE number, as Linux's pnv_ioda assigns it
    )
