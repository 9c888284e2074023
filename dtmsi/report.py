"""The allocation report: ``allocation.json`` (stable schema) and a readable table.

Schema ``dtmsi-allocation/1`` (documented in README.md): one object per
function in BDF order with its requester ID, mechanism, vectors
requested/granted, controller, DeviceID, every message (address/data or
EventID) and the reasons behind the decision. Numbers are JSON integers;
keys are sorted; the file ends with a newline, so it is byte-stable.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from dtmsi.alloc import Allocation, AllocationResult
from dtmsi.model import Machine

SCHEMA = "dtmsi-allocation/1"


def _function_entry(a: Allocation, machine: Machine, owner: str | None) -> dict[str, object]:
    f = a.function
    entry: dict[str, object] = {
        "name": f.name,
        "bdf": f.full_bdf,
        "kind": f.kind,
        "host_bridge": f.host.name,
        "requester_id": f.rid,
        "dma_alias": f.dma_alias,
        "dma_alias_of": f.dma_alias_of.name if f.dma_alias_of else None,
        "partition": owner,
        "policy": a.policy.name,
        "policy_source": a.policy_source,
        "mechanism": a.mechanism,
        "vectors_requested": a.requested,
        "vectors_granted": a.granted,
        "hardware_vectors": a.hardware_vectors,
        "up_front": a.up_front,
        "controller": a.controller.name if a.controller else None,
        "device_id": a.device_id,
        "shares_device_id_with": a.shares_device_id_with,
        "messages": [
            {
                k: v
                for k, v in (
                    ("vector", m.vector),
                    ("count", m.count),
                    ("address", m.address),
                    ("data", m.data),
                    ("event_id", m.event_id),
                    ("hwirq", m.hwirq),
                )
                if v is not None
            }
            for m in a.messages
        ],
        "reasons": a.reasons,
        "source": f.span.short(),
    }
    if machine.platform.msi_mode.kind == "hypervisor":
        entry["papr"] = {
            "ibm,req#msi": a.req_msi,
            "ibm,req#msi-x": a.req_msix,
            "quota": a.quota,
        }
    return entry


def to_json(machine: Machine, alloc: AllocationResult) -> str:
    return "".join(json_pieces(machine, alloc))


def json_pieces(machine: Machine, alloc: AllocationResult) -> Iterator[str]:
    """allocation.json in pieces of a few hundred functions, so a large report
    is written without being one string in memory."""
    doc = {
        "schema": SCHEMA,
        "source": machine.source_name,
        "msi_mode": machine.platform.msi_mode.kind,
        "controllers": [
            {"name": c.name, "kind": c.kind, "address": c.address, "from_base": c.from_base}
            for c in machine.controllers
        ],
    }
    # One function per line: readable, diff-friendly, and written by json's C
    # encoder (an indented dump runs the pure-Python one: 5 s at 10k functions).
    head = json.dumps(doc, sort_keys=True, separators=(",", ": "))
    yield head[:-1] + ', "functions": ['
    owners = {id(f): p.name for p in reversed(machine.partitions) for f in p.functions}
    order = alloc.order
    dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode
    for i in range(0, len(order), 512):
        lines = [
            "\n  " + dumps(_function_entry(a, machine, owners.get(id(a.function)))) for a in order[i : i + 512]
        ]
        yield ",".join(lines) if i == 0 else "," + ",".join(lines)
    yield "\n]}\n"


def _distinct_messages(a: Allocation) -> str:
    """Every distinct address/data pair, grouped by address in the order the
    vectors first use it: vectors spread over CPUs (x86) or over broken pools
    (FSL) are not one run, and one address would hide where they go."""
    by_address: dict[int, list[tuple[int, int]]] = {}
    for run in a.messages:
        assert run.address is not None and run.data is not None
        by_address.setdefault(run.address, []).append((run.data, run.data + run.count - 1))
    parts = []
    for address, spans in by_address.items():
        merged: list[tuple[int, int]] = []
        for lo, hi in sorted(spans):
            if merged and lo <= merged[-1][1] + 1:  # touching or overlapping: one range
                merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
            else:
                merged.append((lo, hi))
        data = ", ".join(f"{lo:#x}" if lo == hi else f"{lo:#x}..{hi:#x}" for lo, hi in merged)
        parts.append(f"data {data} @ {address:#x}")
    return "; ".join(parts)


def render_table(machine: Machine, alloc: AllocationResult) -> str:
    rows = [("BDF", "name", "RID", "mech", "req", "got", "ctrl", "DeviceID", "messages", "why")]
    for a in alloc.order:
        f = a.function
        if a.messages:
            first, last = a.messages[0], a.messages[-1].expand()[-1]
            if first.address is None or first.data is None:
                msgs = f"hwirq {first.hwirq}..{last.hwirq}, firmware composes"
            elif first.event_id is not None:
                msgs = f"EventID {first.event_id}..{last.event_id} @ {first.address:#x}"
            else:
                msgs = _distinct_messages(a)
        elif a.mechanism == "intx":
            msgs = f"INT{'ABCD'[f.intx_pin - 1]}"
        else:
            msgs = "-"
        rows.append(
            (
                f.full_bdf,
                f.name,
                f"{f.rid:#06x}" + (f"->{f.dma_alias:#06x}" if f.dma_alias != f.rid else ""),
                a.mechanism,
                str(a.requested or "-"),
                str(a.granted or "-"),
                a.controller.name if a.controller else "-",
                f"{a.device_id:#x}" if a.device_id is not None else "-",
                msgs,
                a.reasons[-1] if a.reasons else "",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    out = []
    for r in rows:
        out.append("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1])
    return "\n".join(line.rstrip() for line in out) + "\n"
