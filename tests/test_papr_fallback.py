"""PAPR prediction follows Linux all the way down (issue 9, point 1).

When the quota Linux computes is below a driver's minimum for MSI-X, the
driver goes on to the next mechanism of its chain, as the real pseries
kernel does (realclient.md: e1000e to MSI x1, virtio-net to INTx):
allocation.json must say what Linux ends with, not "MSI-X, 0 granted". One
fixture per branch: MSI-X kept (degraded), MSI-X -> MSI, MSI-X -> MSI ->
INTx, MSI-X -> INTx, and nothing left. The rounding of an MSI-X request to a
power of two beyond the table is predicted as Linux's retry makes it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dtmsi.driver import compile_file
from dtmsi.options import CompileOptions

HEAD = """platform "example,papr-fallback" {
    msi hypervisor papr { change-msi 0x2019; query-interrupt-source-number 0x2018; }
}
xics = interrupt-controller xics { servers 0..0; }
"""

PHB = """host-bridge phb0 papr buid 0x800_0000_2000_0000 {{
    buses 0..1;
    window mem32 cpu 0x200_8000_0000 pci 0x8000_0000 size 2G;
    pe-total-msi {total};
    intx -> xics irq 0x1200..0x1203 level;
    endpoint dev0 @ 01.0 {{
        id 8086:10d3 class 0x020000;
        bar 0 mem32 128K;
        {caps}
        policy p;
    }}
}}
"""


def predict(tmp_path: Path, policy: str, caps: str, total: int) -> tuple[dict[str, Any], list[str]]:
    src = tmp_path / "fallback.msi"
    src.write_text(HEAD + f"policy p {{ {policy} }}\n" + PHB.format(total=total, caps=caps))
    result = compile_file(CompileOptions(input=src))
    assert result.ok, [d.message for d in result.sink]
    out = tmp_path / "allocation.json"
    from dtmsi.report import to_json

    assert result.machine is not None and result.allocation is not None
    out.write_text(to_json(result.machine, result.allocation))
    entry = json.loads(out.read_text())["functions"][0]
    return entry, [d.code.id for d in result.sink]


MSIX8 = "msix 8 table bar 0 + 0x2000 pba bar 0 + 0x3000;"
MSI4 = "msi 4 addr64;"


@pytest.mark.parametrize(
    ("policy", "caps", "total", "mechanism", "granted"),
    [
        # quota 8 covers the request: MSI-X 8
        ("prefer msix, msi, intx; vectors 8 min 4;", f"{MSIX8} {MSI4} intx A;", 8, "msix", 8),
        # quota 6 >= minimum 4: MSI-X degraded to 6 (Linux retries with the quota)
        ("prefer msix, msi, intx; vectors 8 min 4;", f"{MSIX8} {MSI4} intx A;", 6, "msix", 6),
        # quota 2 < minimum 4 for MSI-X; MSI min(4, 4)=... 2 < 4 too: INTx
        ("prefer msix, msi, intx; vectors 8 min 4;", f"{MSIX8} {MSI4} intx A;", 2, "intx", 1),
        # ibm,req#msi-x capped at 2 (below the minimum 4): MSI 4 through function 3
        (
            "prefer msix, msi, intx; vectors 8 min 4;",
            f'{MSIX8} {MSI4} intx A; property "ibm,req#msi-x" = 2;',
            8,
            "msi",
            4,
        ),
        # MSI-X below the minimum and no MSI: INTx
        ("prefer msix, intx; vectors 8 min 8;", f"{MSIX8} intx A;", 4, "intx", 1),
        # MSI-X below the minimum, nothing else: no interrupt at all
        ("prefer msix; vectors 8 min 8;", MSIX8, 4, "none", 0),
    ],
)
def test_prediction_walks_the_chain(
    tmp_path: Path, policy: str, caps: str, total: int, mechanism: str, granted: int
) -> None:
    entry, codes = predict(tmp_path, policy, caps, total)
    assert (entry["mechanism"], entry["vectors_granted"]) == (mechanism, granted), entry["reasons"]
    if mechanism != "msix" or granted < 8:
        assert "W812" in codes  # the planned mechanism fell short, and says so
    if mechanism in ("msi", "intx", "none") and "msix" in policy:
        assert any("below the driver's minimum" in r for r in entry["reasons"]), entry["reasons"]


def test_msix_rounded_beyond_the_table_is_asked_again(tmp_path: Path) -> None:
    """MSI-X 3 of a 3-entry table: Linux rounds up to 4 (the quota allows it),
    the hypervisor grants at most the table, Linux asks 3 again: 3 allocated."""
    caps = "msix 3 table bar 0 + 0x2000 pba bar 0 + 0x3000;"
    entry, _ = predict(tmp_path, "prefer msix; vectors 3;", caps, 64)
    assert (entry["mechanism"], entry["vectors_granted"], entry["hardware_vectors"]) == ("msix", 3, 3)
    assert any("beyond the 3-entry table" in r for r in entry["reasons"])
    # With room in the table the request is rounded up, as Linux does.
    caps = "msix 8 table bar 0 + 0x2000 pba bar 0 + 0x3000;"
    entry, _ = predict(tmp_path, "prefer msix; vectors 3;", caps, 64)
    assert (entry["vectors_granted"], entry["hardware_vectors"]) == (3, 4)
