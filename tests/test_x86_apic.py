"""x86 APIC MSI: the controller's CPU list and the messages it makes.

The platform's ``cpus N`` is a count (CPUs 0..N-1); an ``x86-apic``
controller's ``cpus`` lists CPU numbers as a partition's does, ranges included,
and CPU n is APIC ID n. An x86 message is ``0xFEE00000 | APIC ID << 12`` with
the vector in the data (Intel SDM vol. 3, 11.11). Regressions from issue 10:
``cpus 0..3`` became the two CPUs {0, 3}; ``cpus 16`` was taken as APIC ID 16
on a 16-CPU platform with no check; the readable report showed one address for
vectors spread over CPUs.
"""

from __future__ import annotations

import json
from pathlib import Path

from dtmsi.driver import compile_file
from dtmsi.options import CompileOptions
from dtmsi.report import render_table

X86_BASE = 0xFEE00000


def _source(platform_cpus: int, apic: str) -> str:
    return f"""
platform "dtmsi,q35" {{ model "QEMU q35"; msi native; cpus {platform_cpus}; }}
apic = msi-controller x86-apic {{ {apic} }}
policy spread {{ prefer msix; vectors 8; up-front; }}
host-bridge pcie0 ecam @ 0xb000_0000 size 256M {{
    buses 0..255;
    window mem32 cpu 0xc000_0000 size 256M;
    msi parent apic;
    endpoint nic0 @ 02.0 {{
        id 8086:10d3 class 0x020000;
        bar 0 mem32 128K;
        msix 8 table bar 0 + 0x0 pba bar 0 + 0x1000;
        policy spread;
    }}
}}
"""


def _messages(tmp_path: Path, platform_cpus: int, apic: str) -> tuple[list[tuple[int, int]], str]:
    """(address, data) of every vector of nic0, and the readable table."""
    src = tmp_path / "x86.msi"
    src.write_text(_source(platform_cpus, apic))
    result = compile_file(CompileOptions(src, emit=frozenset({"json"})))
    assert result.ok, [d.message for d in result.sink]
    assert result.machine is not None and result.allocation is not None
    doc = json.loads(next(a.data for a in result.artifacts if a.name == "allocation.json"))
    (nic,) = doc["functions"]
    out = [
        (m["address"], m["data"] + i)
        for m in nic["messages"]
        for i in range(m.get("count", 1))
    ]
    return out, render_table(result.machine, result.allocation)


def test_cpu_range_is_every_cpu_in_it(tmp_path: Path) -> None:
    msgs, _ = _messages(tmp_path, 4, "cpus 0..3;")
    assert len(msgs) == 8
    # Four destinations, two vectors each: not the two CPUs {0, 3}.
    assert sorted({a for a, _ in msgs}) == [X86_BASE | n << 12 for n in range(4)]
    assert len(set(msgs)) == 8, "two vectors share one message"


def test_single_cpus_and_ranges_mix(tmp_path: Path) -> None:
    msgs, _ = _messages(tmp_path, 8, "cpus 5, 1..2;")
    assert sorted({a for a, _ in msgs}) == [X86_BASE | n << 12 for n in (1, 2, 5)]


def test_default_is_every_platform_cpu(tmp_path: Path) -> None:
    msgs, _ = _messages(tmp_path, 2, "")
    assert sorted({a for a, _ in msgs}) == [X86_BASE, X86_BASE | 1 << 12]


def test_report_lists_every_distinct_message(tmp_path: Path) -> None:
    msgs, table = _messages(tmp_path, 4, "cpus 0..3;")
    line = next(row for row in table.splitlines() if " nic0 " in row)
    for address in sorted({a for a, _ in msgs}):
        data = sorted(d for a, d in msgs if a == address)
        assert f"data {data[0]:#x}..{data[-1]:#x} @ {address:#x}" in line, line
