"""``dtmsi graph``: the topology view -> Graphviz DOT text, and DOT -> SVG through ``dot``.

The DOT is a pure function of :class:`dtmsi.graphview.TopologyView` (fixed
order, no timestamps), so the same input gives the same bytes. Layout:
left to right from the host bridges down the PCI tree to the controllers;
one fill colour per partition (keyed in a legend), one box (cluster) per PE,
a solid edge per MSI/MSI-X route labelled with what the allocation granted,
a dashed one per INTx route.
"""

from __future__ import annotations

import shutil
import subprocess

from dtmsi.graphview import FunctionBox, TopologyView

_FONT = "Helvetica"


class GraphvizError(Exception):
    """``dot`` is missing or refused the graph."""


def _q(text: str) -> str:
    """A DOT quoted ID: quotes and backslashes escaped (so that a trailing
    backslash cannot swallow the closing quote; dot keeps the doubled one)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _label(*lines: str) -> str:
    """A multi-line label: each line escaped, joined by DOT's centred line break."""
    return '"' + "\\n".join(line.replace("\\", "\\\\").replace('"', '\\"') for line in lines) + '"'


def _function_node(f: FunctionBox, indent: str) -> str:
    lines = [f"{f.bdf} {f.name}", f.kind if f.kind != "endpoint" else "", f"RID {f.requester_id:#06x}"]
    if f.dma_alias != f.requester_id:
        lines[-1] += f" (alias {f.dma_alias:#06x})"
    if f.partition is not None:
        lines.append(f"partition {f.partition}")
    shown = [line for line in lines if line]
    attrs = [f"label={_label(*shown)}", f"tooltip={_q(f.source)}"]
    if f.kind == "vf":
        attrs.append('shape=box, style="rounded,dashed' + (',filled"' if f.colour else '"'))
    elif f.kind == "endpoint":
        attrs.append('shape=box, style="rounded' + (',filled"' if f.colour else '"'))
    else:  # bridges and ports: square corners
        attrs.append("shape=box" + (', style="filled"' if f.colour else ""))
    if f.colour:
        attrs.append(f"fillcolor={_q(f.colour)}")
    return f"{indent}{_q(f.id)} [{', '.join(attrs)}];"


def to_dot(view: TopologyView) -> str:
    out = [
        f"digraph {_q('dtmsi')} {{",
        f"  graph [rankdir=LR, fontname={_q(_FONT)}, fontsize=12, labelloc=t, "
        f"label={_label(f'{view.title} ({view.msi_mode} MSI)')}];",
        f"  node [fontname={_q(_FONT)}, fontsize=10];",
        f"  edge [fontname={_q(_FONT)}, fontsize=9];",
    ]
    out.append("  // host bridges")
    for hb in view.host_bridges:
        buses = f"domain {hb.domain:04x}, buses {hb.buses[0]:02x}-{hb.buses[1]:02x}"
        out.append(f"  {_q(hb.id)} [shape=box3d, label={_label(hb.name, f'host bridge ({hb.kind})', buses)}];")
    in_pe = {m for pe in view.pes for m in pe.members}
    by_id = {f.id: f for f in view.functions}
    out.append("  // PEs: the functions isolated together")
    for pe in view.pes:
        out.append(f"  subgraph {_q('cluster_' + pe.id)} {{")
        out.append(f'    label={_label(f"PE {pe.name}")}; style="dashed"; color="#555555";')
        out.extend(_function_node(by_id[m], "    ") for m in pe.members if m in by_id)
        out.append("  }")
    out.append("  // functions")
    out.extend(_function_node(f, "  ") for f in view.functions if f.id not in in_pe)
    out.append("  // where messages go")
    for t in view.targets:
        out.append(f"  {_q(t.id)} [shape=hexagon, label={_label(t.name, t.detail)}];")
    for t in view.targets:
        if t.parent is not None:
            out.append(f'  {_q(t.id)} -> {_q(t.parent)} [style=dotted, label="parent"];')
    out.append("  // the PCI tree")
    for link in view.links:
        style = ' [style=dashed, arrowhead=none, label="VF"]' if link.virtual else " [arrowhead=none]"
        out.append(f"  {_q(link.upper)} -> {_q(link.lower)}{style};")
    out.append("  // interrupt routes, as allocated")
    for r in view.routes:
        head = f"{r.mechanism}: {r.vectors} vector{'s' if r.vectors != 1 else ''}" if r.mechanism != "intx" else "intx"
        lines = [head, r.detail] if r.detail else [head]
        style = ", style=dashed" if r.mechanism == "intx" else ""
        out.append(f"  {_q(r.function)} -> {_q(r.target)} [label={_label(*lines)}{style}];")
    if view.partitions:
        out.append("  // partitions: one fill colour each")
        out.append(f"  subgraph {_q('cluster_legend')} {{")
        out.append(f'    label={_label("partitions")}; style="solid"; color="#999999";')
        for p in view.partitions:
            count = f"{p.functions} function{'s' if p.functions != 1 else ''}"
            out.append(
                f"    {_q('partition/' + p.name)} [shape=box, style=filled, fillcolor={_q(p.colour)}, "
                f"label={_label(p.name, count)}];"
            )
        out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"


def dot_program() -> str | None:
    return shutil.which("dot")


def render_svg(dot_text: str, timeout: float = 120.0) -> bytes:
    """Lay out and draw ``dot_text`` with Graphviz; raises GraphvizError if
    ``dot`` is missing or reports an error."""
    program = dot_program()
    if program is None:
        raise GraphvizError("Graphviz 'dot' is not installed (Debian package 'graphviz')")
    try:
        proc = subprocess.run(
            [program, "-Tsvg"], input=dot_text.encode(), capture_output=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise GraphvizError(f"cannot run '{program}': {e}") from None
    if proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip() or f"exit status {proc.returncode}"
        raise GraphvizError(f"dot refused the graph: {message}")
    return proc.stdout
