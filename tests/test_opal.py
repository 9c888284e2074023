"""OPAL (firmware-composed MSI): allocation.json says which address/data
skiboot will compose for each planned vector.

skiboot composes the message from the XIVE number alone (hw/phb3.c and
hw/phb4.c, ``phb*_get_msi_64``/``_32``): data = the XIVE number's low five
bits; the 64-bit address is ``1 << 60`` with the XIVE number's upper bits at
bit 9 and up (``(xive << 4) & ~0x1f0``), the 32-bit one the same under
0xffff0000.  The expectations below are written out by hand from those two
lines, for XIVE numbers that cross a 32 boundary (the address changes, the
data starts again), a 32-bit function (the no-64bit-msi quirk), and a
multi-message MSI block (one get_msi for the block, the device adds the
vector to the data).  The real skiboot judges the same prediction in
tests/linux/test_opal_baremetal.py.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from dtmsi.driver import compile_file
from dtmsi.opal import compose_msi
from dtmsi.options import CompileOptions

MACHINE = """\
platform "example,opal" {
    cpus 4;
    msi firmware-composed opal { get-msi-32 39; get-msi-64 40; }
}
xics = interrupt-controller xics { servers 0..3; }
policy many { prefer msix; vectors 40; }
policy msi8 { prefer msi; vectors 8; }
host-bridge phb0 opal phbid 0 @ 0x3fff_e400_0000 size 1M {
    domain 0;
    buses 0..15;
    window mem32 cpu 0x3fe0_8000_0000 pci 0x8000_0000 size 2G;
    msi-ranges 0x7f0..0x8ef;
    intx -> xics irq 0x900..0x903 level;
    root-port rp0 @ 00.0 {
        id 1014:03dc;
        endpoint big @ 00.0 {
            id 144d:a808 class 0x010802;
            bar 0 mem32 64K;
            msix 64 table bar 0 + 0x2000 pba bar 0 + 0x3000;
            policy many;
        }
        endpoint old @ 01.0 {
            id 8086:100e class 0x020000;
            bar 0 mem32 128K;
            msi 8 maskable;
            intx A;
            policy msi8;
        }
        endpoint old64 @ 02.0 {
            id 8086:100e class 0x020000;
            bar 0 mem32 128K;
            msi 8 addr64;
            intx A;
            quirk no-64bit-msi;
            policy msi8;
        }
    }
}
"""


def _functions() -> dict[str, dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="dtmsi-opal-") as tmp:
        src = Path(tmp) / "opal.msi"
        src.write_text(MACHINE, encoding="utf-8")
        result = compile_file(CompileOptions(input=src))
        errors = [(d.code.id, d.message) for d in result.sink if d.code.is_error]
        assert not errors, errors
        doc = json.loads(next(a.data for a in result.artifacts if a.name == "allocation.json"))
    return {f["name"]: f for f in doc["functions"]}


def _vectors(fn: dict[str, Any]) -> list[tuple[int, int, int]]:
    """(hwirq, address, data) per vector, from the message runs."""
    out: list[tuple[int, int, int]] = []
    for m in fn["messages"]:
        out.extend((m["hwirq"] + i, m["address"], m["data"] + i) for i in range(m["count"]))
    return out


def test_compose_msi_is_skiboots_formula() -> None:
    assert compose_msi(0, True) == (0x1000_0000_0000_0000, 0)
    assert compose_msi(0x1F, True) == (0x1000_0000_0000_0000, 0x1F)
    assert compose_msi(0x25, True) == (0x1000_0000_0000_0200, 0x05)
    assert compose_msi(0xFF7, True) == (0x1000_0000_0000_FE00, 0x17)
    assert compose_msi(0x25, False) == (0xFFFF_0200, 0x05)


def test_msix_vectors_crossing_a_32_boundary_change_address_and_restart_the_data() -> None:
    big = _functions()["big"]
    assert big["mechanism"] == "msix" and big["vectors_granted"] == 40
    # the range starts at 0x7f0: XIVE 0.. ; vectors 0..31 share one address, 32..39 the next
    want = [(0x7F0 + i, 0x1000_0000_0000_0000 | (0x200 if i >= 32 else 0), i % 32) for i in range(40)]
    assert _vectors(big) == want
    assert [(m["vector"], m["count"]) for m in big["messages"]] == [(0, 32), (32, 8)]


def test_msi_block_is_one_message_plus_the_vector_and_32_bit_without_addr64() -> None:
    fns = _functions()
    # big took XIVE 0..39; an 8-vector MSI block is aligned to 8 in XIVE numbers: 40..47
    old = fns["old"]
    assert old["mechanism"] == "msi" and old["hardware_vectors"] == 8
    assert _vectors(old) == [(0x7F0 + 40 + i, 0xFFFF_0200, 8 + i) for i in range(8)]
    # the capability is 64-bit, but the quirk makes the stub ask get_msi_32
    old64 = fns["old64"]
    assert _vectors(old64) == [(0x7F0 + 48 + i, 0xFFFF_0200, 16 + i) for i in range(8)]
    assert "OPAL_GET_MSI_32 (token 39)" in " ".join(old64["reasons"])
