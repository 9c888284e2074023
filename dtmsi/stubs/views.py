"""What the stub templates print: the plan with every value already spelled
as the target language spells it (hex with ``U`` suffixes, macro names,
escaped strings). The templates only place these strings; they compute nothing.

The per-function parts of the files (the C table, the Python rows, the run
tables, the index constants) are made in one walk over the plan's functions
and kept in :class:`Sections`, temporary files the templates stream back: a
100k-function stub is never whole in memory, and each function's plan is made
once for every output.
"""

from __future__ import annotations

import contextlib
import functools
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO

from dtmsi.diagnostics import DiagnosticSink
from dtmsi.stubs.names import c_comment, c_string, py_docstring, py_string
from dtmsi.stubs.plan import PlanFunction, PlanHostBridge, PlanRun, PlanWindow, StubPlan

MODE_WORDS = {
    "native": "the stub composes each message from the plan and writes the MSI capability or MSI-X table.",
    "opal": "firmware (OPAL) composes each message: opal_pci_set_xive_pe, then opal_get_msi, then the stub "
    "writes it.",
    "papr": "the hypervisor writes the messages: the stub asks RTAS ibm,change-msi for the whole count up "
    "front, queries each vector's interrupt source and writes only enable and mask bits.",
}


def _h(v: int) -> str:
    return f"{v:#x}"


def _cu(v: int) -> str:
    return f"{v:#x}U" if v > 9 else f"{v}U"


def _cull(v: int) -> str:
    return f"{v:#x}ULL" if v > 9 else f"{v}ULL"


class FunctionView:
    """One table row, in C and in Python (made when read)."""

    __slots__ = ("f", "upper")

    def __init__(self, f: PlanFunction, upper: str) -> None:
        self.f = f
        self.upper = upper

    @property
    def c_record(self) -> str:
        """The function's table record: its provenance, then C designated
        initializers in the struct's field order, a line per topic."""
        f, upper = self.f, self.upper
        flags = _c_flags(upper, f.flag_names)
        i = "        "
        return (
            f"    /* {f.comment_c} */\n    [{upper}_FN_{f.ident}] = {{\n"
            f"{i}.name = {f.name_c}, .seg = {f.seg:#x}U, .bus = {f.bus:#x}U, .devfn = {f.devfn:#x}U, "
            f".vendor = {f.vendor:#x}U, .device = {f.device:#x}U,\n"
            f"{i}.mech = {upper}_MECH_{f.mech_name.upper()}, .flags = {flags}, "
            f".msi_cap = {f.msi_cap:#x}U, .msix_cap = {f.msix_cap:#x}U,\n"
            f"{i}.nvec = {f.nvec}U, .nvec_min = {f.nvec_min}U, .hw_vectors = {f.hw_vectors}U, "
            f".on_short = {upper}_SHORT_{f.on_short_name.upper()},\n"
            f"{i}.msix_tsize = {f.msix_tsize}U, .msix_bir = {f.msix_bir}U, .msix_offset = {f.msix_offset:#x}U, "
            f".bar_pci = {f.bar_pci:#x}ULL,\n"
            f"{i}.hb = {f.hb}U, .run_first = {f.run_first}U, .run_count = {len(f.runs)}U, "
            f".slot = {f.slot}U, .slots = {f.slots}U,\n"
            f"{i}.config_addr = {f.config_addr:#x}U, .fb_msi_nvec = {f.fb_msi_nvec}U, "
            f".fb_msi_min = {f.fb_msi_min}U, .opal_pe = {f.opal_pe}U, .opal_mve = {f.opal_mve}U\n"
            "    },\n"
        )

    @property
    def comment_py_raw(self) -> str:
        """The provenance, safe inside a raw triple-quoted string."""
        return self.f.comment_py.replace('"', "\\x22")

    @property
    def py_row(self) -> str:
        """The Function fields after ``name``, in order, as one line of text."""
        f = self.f
        return (
            f"{f.seg:#x} {f.bus:#x} {f.devfn:#x} {f.vendor:#x} {f.device:#x} {f.mech} "
            f"{f.flags:#x} {f.msi_cap:#x} {f.msix_cap:#x} {f.nvec} {f.nvec_min} {f.hw_vectors} "
            f"{f.msix_tsize} {f.msix_bir} {f.msix_offset:#x} {f.bar_pci:#x} {f.hb} {f.run_first} "
            f"{len(f.runs)} {f.slot} {f.slots} {f.on_short} {f.config_addr:#x} {f.fb_msi_nvec} "
            f"{f.fb_msi_min} {f.opal_pe} {f.opal_mve}"
        )


@functools.cache
def _c_flags(upper: str, names: tuple[str, ...]) -> str:
    return " | ".join(f"{upper}_F_{n}" for n in names) or "0U"


def _run_c(r: PlanRun) -> str:
    return (
        f"{{.vector = {r.vector}U, .n = {r.count}U, .address = {_cull(r.address)}, .data = {_cu(r.data)}, "
        f".irq = {_cu(r.irq)}}},"
    )


def _run_py(r: PlanRun) -> str:
    return f"{r.vector} {r.count} {r.address:#x} {r.data:#x} {r.irq:#x}"


_SECTIONS = {
    "c": ("h_fn", "c_table", "c_runs"),
    "python": ("py_fn", "py_names", "py_rows", "py_runs"),
}


class Sections:
    """The per-function parts of one stub's files, made in one walk over the
    plan's functions (see the module docstring); a template streams one with
    ``{% for chunk in sections.stream("c_table") %}{{ chunk }}{% endfor %}``."""

    def __init__(self, plan: StubPlan, languages: Sequence[str], sink: DiagnosticSink) -> None:
        self._stack = contextlib.ExitStack()
        self._files: dict[str, IO[str]] = {}
        for lang in languages:
            for name in _SECTIONS[lang]:
                # A plain temporary file: its writes are the C text layer's (a
                # spooled one costs a Python call per write, 10% of a 10k compile).
                self._files[name] = self._stack.enter_context(
                    tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115
                )
        self.nfunctions = self.nvectors = self.nruns = 0
        upper = plan.upper
        parts: dict[str, list[str]] = {name: [] for name in self._files}
        h_fn, c_table, c_runs = (parts.get(n) for n in _SECTIONS["c"])
        py_fn, py_names, py_rows, py_runs = (parts.get(n) for n in _SECTIONS["python"])
        for f in plan.functions(sink):
            view = FunctionView(f, upper)
            ident_lower = f.ident.lower()
            if h_fn is not None and c_table is not None and c_runs is not None:
                h_fn.append(f"#define {upper}_FN_{f.ident} {f.position}U\n")
                c_table.append(view.c_record)
                for r in f.runs:
                    c_runs.append(f"    {_run_c(r)} /* {ident_lower} */\n")
            if py_fn is not None and py_names is not None and py_rows is not None and py_runs is not None:
                py_fn.append(f"FN_{f.ident}: Final = {f.position}\n")
                py_names.append(f"    {f.name_py},\n")
                py_rows.append(f"{view.py_row}  # {view.comment_py_raw}\n")
                for r in f.runs:
                    py_runs.append(f"{_run_py(r)}  # {ident_lower}\n")
            self.nfunctions += 1
            self.nvectors = f.slot + f.slots
            self.nruns = f.run_first + len(f.runs)
            if self.nfunctions % 1024 == 0:  # spill: memory stays flat however many functions
                self._flush(parts)
        self._flush(parts)

    def _flush(self, parts: dict[str, list[str]]) -> None:
        for name, pending in parts.items():
            if pending:
                self._files[name].write("".join(pending))
                pending.clear()

    def stream(self, name: str) -> Iterator[str]:
        """The section ``name`` from its start, in chunks."""
        fh = self._files[name]
        fh.seek(0)
        return iter(lambda: fh.read(1 << 16), "")

    def __enter__(self) -> Sections:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


@dataclass(frozen=True, slots=True)
class HostBridgeView:
    comment_c: str
    comment_py: str
    name_c: str
    name_py: str
    segment: int
    buid_hex: str
    opal_phb_id_hex: str
    msi_base_hex: str
    buid_c: str
    opal_phb_id_c: str
    msi_base_c: str
    window_first: int
    window_count: int


@dataclass(frozen=True, slots=True)
class WindowView:
    pci_hex: str
    cpu_hex: str
    size_hex: str
    pci_c: str
    cpu_c: str
    size_c: str


def _hb(h: PlanHostBridge) -> HostBridgeView:
    return HostBridgeView(
        h.comment_c,
        h.comment_py,
        h.name_c,
        h.name_py,
        h.segment,
        _h(h.buid),
        _h(h.opal_phb_id),
        _h(h.msi_base),
        _cull(h.buid),
        _cull(h.opal_phb_id),
        _cu(h.msi_base),
        h.window_first,
        len(h.windows),
    )


def _window(w: PlanWindow) -> WindowView:
    return WindowView(_h(w.pci), _h(w.cpu), _h(w.size), _cull(w.pci), _cull(w.cpu), _cull(w.size))


class StubView:
    """The whole context of one stub's templates."""

    def __init__(self, plan: StubPlan, sections: Sections) -> None:
        self.plan = plan
        p = plan
        self.prefix = p.prefix  # C symbols: {{ p }}_setup_all
        self.upper = p.upper  # C macros: {{ P }}_NFUNCTIONS
        self.stem = p.stem
        self.header = p.header
        self.guard = p.guard
        self.abi = 1
        self.version = p.version
        self.mode = p.mode
        self.mode_code = p.mode_code
        self.mode_upper = p.mode.upper()
        self.mode_words = MODE_WORDS[p.mode]
        what = f"partition '{p.partition}'" if p.partition else "the whole machine"
        self.what_c = c_comment(what)
        self.what_doc = py_docstring(what)
        self.source_c = c_comment(p.source)
        self.source_py = py_string(p.source)
        self.source_doc = py_docstring(p.source)
        self.digest = p.digest
        self.digest_py = py_string(p.digest)
        self.digest_c = c_string(p.digest)
        self.prefix_py = py_string(p.prefix)
        self.rtas_change_msi_hex = _h(p.rtas_change_msi)
        self.rtas_query_irq_hex = _h(p.rtas_query_irq)
        self.rtas_change_msi_c = _cu(p.rtas_change_msi)
        self.rtas_query_irq_c = _cu(p.rtas_query_irq)
        self.nfunctions = sections.nfunctions
        self.nvectors = sections.nvectors
        self.nruns = sections.nruns
        self.nhost_bridges = len(p.host_bridges)
        self.nwindows = len(p.windows)
        self.host_bridges = [_hb(h) for h in p.host_bridges]
        self.windows = [_window(w) for w in p.windows]


__all__ = ["FunctionView", "Sections", "StubView"]
