"""x86 APIC vectors fit the MSI data's vector field (checks.msi.x86_vectors).

An x86 MSI's data holds the vector in bits 7:0 and the delivery mode in bits
10:8 (Intel SDM vol. 3, 11.11.2); vectors 0..31 are the processor's
exceptions. Regression (found while judging the x86 stub in a q35 guest): an
``x86-apic`` with ``vectors 0xf0..0x1ff`` compiled, and with enough vectors to
hand out it planned data 0x100 and up: vector 0 with delivery mode "lowest
priority" on the wire.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dtmsi.driver import compile_file
from dtmsi.options import CompileOptions


def _source(vectors: str) -> str:
    return f"""
platform "dtmsi,q35" {{ model "QEMU q35"; msi native; cpus 2; }}
apic = msi-controller x86-apic {{ cpus 0..1; vectors {vectors}; }}
policy all {{ prefer msix; vectors 32; }}
host-bridge pcie0 ecam @ 0xb000_0000 size 256M {{
    buses 0..255;
    window mem32 cpu 0xc000_0000 size 256M;
    msi parent apic;
    endpoint nic0 @ 02.0 {{
        id 8086:10d3 class 0x020000;
        bar 0 mem32 128K;
        msix 32 table bar 0 + 0x0 pba bar 0 + 0x1000;
        policy all;
    }}
}}
"""


def _compile(tmp_path: Path, vectors: str) -> tuple[list[str], list[int]]:
    """Codes of the diagnostics, and every planned data value."""
    src = tmp_path / "x86.msi"
    src.write_text(_source(vectors))
    result = compile_file(CompileOptions(src, emit=frozenset({"json"})))
    codes = [d.code.id for d in result.sink]
    if not result.ok:
        return codes, []
    doc = json.loads(next(a.data for a in result.artifacts if a.name == "allocation.json"))
    (nic,) = doc["functions"]
    return codes, [m["data"] + i for m in nic["messages"] for i in range(m["count"])]


@pytest.mark.parametrize("vectors", ["0xf8..0x1ff", "0x1f..0x40", "0x0..0xff"])
def test_a_range_outside_0x20_to_0xff_is_refused(tmp_path: Path, vectors: str) -> None:
    codes, data = _compile(tmp_path, vectors)
    assert codes == ["E111"] and data == []


@pytest.mark.parametrize("vectors", ["0x20..0xff", "0xf0..0xff"])
def test_every_planned_vector_fits_the_data_field(tmp_path: Path, vectors: str) -> None:
    codes, data = _compile(tmp_path, vectors)
    assert codes == []
    assert len(data) == 32 and all(0x20 <= d <= 0xFF for d in data), [hex(d) for d in data]
