"""An imported :class:`Board` -> ``.msi`` source text.

The text names the original tree as its ``base``: compiling it merges
dtmsi's host-bridge nodes over the board's own (same node names), so every
property dtmsi makes replaces the board's in place, and what dtmsi does not
model (vendor properties, DRC tables...) stays as the board had it.
"""

from __future__ import annotations

import json

from dtmsi.importer.scan import Bar, Board, Controller, Function, HostBridge

_PIN = " ABCD"


def _size(v: int) -> str:
    for unit, shift in (("G", 30), ("M", 20), ("K", 10)):
        if v >= 1 << shift and v % (1 << shift) == 0:
            return f"{v >> shift}{unit}"
    return f"{v:#x}"


def _q(text: str) -> str:
    return json.dumps(text)


def _controller(c: Controller) -> list[str]:
    head = f"{c.name} = {c.role} {c.kind}"
    if c.address is not None and c.size is not None:
        head += f" @ {c.address:#x} size {_size(c.size)}"
    body: list[str] = []
    if c.redistributor is not None:
        body.append(f"redistributor @ {c.redistributor[0]:#x} size {_size(c.redistributor[1])};")
    if c.parent is not None:
        body.append(f"parent {c.parent};")
    if c.servers is not None:
        body.append(f"servers {c.servers[0]}..{c.servers[1]};")
    body.append(f"from base {_q(c.from_base)};")
    return [head + " {", *("    " + b for b in body), "}"]


def _bar(b: Bar) -> str:
    pref = " prefetchable" if b.prefetchable else ""
    at = f" @ {b.address:#x}" if b.address is not None else ""
    return f"bar {b.index} {b.kind}{pref} {_size(b.size)}{at};"


def _msix_bar(f: Function, n: int) -> tuple[int, int] | None:
    """A memory BAR the MSI-X table and PBA fit into (table at 0): (BAR, PBA offset)."""
    pba = (n * 16 + 7) // 8 * 8
    need = pba + (n + 63) // 64 * 8
    for b in f.bars:
        if b.kind != "io" and b.size >= need:
            return b.index, pba
    return None


def _function(f: Function, indent: str, notes: list[str]) -> list[str]:
    at = f"{f.dev:02x}.{f.fn}"
    out = [f"{indent}{f.word} {f.name} @ {at} {{  // {f.path}"]
    inner = indent + "    "
    out.append(f"{inner}id {f.vendor:04x}:{f.device:04x} class {f.class_code:#08x} revision {f.revision};")
    if f.node_name:
        out.append(f"{inner}name {_q(f.node_name)};")
    if f.subsystem is not None:
        out.append(f"{inner}subsystem {f.subsystem[0]:04x}:{f.subsystem[1]:04x};")
    if f.secondary is not None and f.word != "endpoint":
        out.append(f"{inner}bus {f.secondary};")
    out.extend(inner + _bar(b) for b in sorted(f.bars, key=lambda b: b.index))
    if f.req_msi:
        out.append(f"{inner}msi {f.req_msi};")
    if f.req_msix:
        fit = _msix_bar(f, f.req_msix)
        if fit is None:
            notes.append(f"{f.path}: ibm,req#msi-x {f.req_msix}: no memory BAR holds the table; MSI-X not imported")
        else:
            out.append(f"{inner}msix {f.req_msix} table bar {fit[0]} + 0 pba bar {fit[0]} + {fit[1]:#x};")
    if f.intx_pin:
        out.append(f"{inner}intx {_PIN[f.intx_pin]};")
    for c in f.children:
        out.extend(_function(c, inner, notes))
    out.append(f"{indent}}}")
    return out


def _host_bridge(hb: HostBridge, notes: list[str]) -> list[str]:
    if hb.kind == "ecam":
        head = f"host-bridge {hb.name} ecam @ {hb.address:#x} size {_size(hb.size)}"
    elif hb.kind == "papr":
        head = f"host-bridge {hb.name} papr buid {hb.address:#x}"
    else:
        head = f"host-bridge {hb.name} opal phbid {hb.phbid or 0} @ {hb.address:#x} size {_size(hb.size)}"
    out = [head + " {  // " + hb.path]
    i = "    "
    if hb.node_name is not None:
        out.append(f"{i}name {_q(hb.node_name)};")
    if hb.domain is not None:
        out.append(f"{i}domain {hb.domain};")
    out.append(f"{i}buses {hb.buses[0]}..{hb.buses[1]};")
    for kind, pref, cpu, pci, size in hb.windows:
        out.append(f"{i}window {kind}{' prefetchable' if pref else ''} cpu {cpu:#x} pci {pci:#x} size {_size(size)};")
    for lo, hi, ctrl, base in hb.msi_maps:
        out.append(f"{i}msi map rid {lo:#06x}..{hi:#06x} -> {ctrl} base {base:#x};")
    if hb.msi_map_mask is not None:
        out.append(f"{i}msi map-mask {hb.msi_map_mask:#x};")
    if hb.msi_parent is not None:
        out.append(f"{i}msi parent {hb.msi_parent};")
    if hb.pe_total_msi is not None:
        out.append(f"{i}pe-total-msi {hb.pe_total_msi};")
    if hb.msi_ranges is not None:
        out.append(f"{i}msi-ranges {hb.msi_ranges[0]:#x}..{hb.msi_ranges[1]:#x};")
    if hb.intx is not None:
        r = hb.intx
        last = r.first + r.count - 1
        extra = "" if r.swizzle else " no-swizzle"
        out.append(f"{i}intx -> {r.controller} {r.word} {r.first:#x}..{last:#x} {r.trigger}{extra};")
    for f in hb.children:
        out.extend(_function(f, i, notes))
    out.append("}")
    return out


def render(board: Board, base: str, source: str) -> str:
    """The ``.msi`` text; ``base`` is the original tree's path as the .msi names it."""
    notes = list(board.notes)
    body: list[str] = []
    for c in board.controllers:
        body.extend(_controller(c))
    for hb in board.host_bridges:
        body.append("")
        body.extend(_host_bridge(hb, notes))
    head = [
        f"// Imported by dtmsi from {source}. The PCI side of the board as dtmsi",
        "// declarations; the rest of the tree is the base tree, which dtmsi's nodes",
        "// merge over (same node names: dtmsi's properties replace the board's).",
        "// A device tree carries no MSI/MSI-X capabilities on native platforms, no",
        "// PCIe port types and no policies: check the functions below.",
    ]
    head.extend(f"// not imported: {n}" for n in notes)
    compat = board.compatible[0] if board.compatible else "unknown,board"
    platform = [f"platform {_q(compat)} {{"]
    if len(board.compatible) > 1:
        platform.append("    compatible " + ", ".join(map(_q, board.compatible)) + ";")
    if board.model is not None:
        platform.append(f"    model {_q(board.model)};")
    if board.papr_tokens is not None:
        platform.append("    msi hypervisor papr {")
        platform.extend(f"        {k} {v:#x};" for k, v in board.papr_tokens.items())
        platform.append("    }")
    else:
        platform.append("    msi native;")
    platform.append(f"    base {_q(base)};")
    platform.append("}")
    return "\n".join([*head, "", *platform, "", *body]) + "\n"
