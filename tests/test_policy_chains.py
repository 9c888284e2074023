"""Policies written for many functions (a default or a class rule) and policies a
VF inherits from its PF: a mechanism a function lacks is skipped with a reason
in the report, not an error; only a policy attached to one function that
names nothing it has is (E608, alone). The error fixtures hold the
diagnostics (E608, W970, E201, E302, E101); these tests hold the report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dtmsi.driver import compile_file
from dtmsi.options import CompileOptions
from dtmsi.report import to_json

HEAD = """\
platform "x" { msi native; cpus 2; }
gic = interrupt-controller gicv3 @ 0x0800_0000 size 64K { redistributor @ 0x080a_0000 size 0xf6_0000; }
its = msi-controller gicv3-its @ 0x0808_0000 size 128K { parent gic; }
"""

BRIDGE = """\
host-bridge pcie0 ecam @ 0x3000_0000 size 16M {
    buses 0..15;
    window mem32 cpu 0x4000_0000 size 256M;
    msi map rid 0x0000..0x0fff -> its;
    intx -> gic spi 3..6 level;
"""

BODY = BRIDGE + """\
    endpoint nic @ 01.0 {
        id 8086:10d3 class 0x020000;
        bar 0 mem32 128K;
        msix 8 table bar 0 + 0x0 pba bar 0 + 0x800;
        intx A;
        PF_POLICY
        sriov {
            total-vfs 4; vfs 2; offset 1; stride 1; vf-id 0x10ed;
            bar 0 mem32 16K;
            msix 4 table bar 0 + 0x0 pba bar 0 + 0x800;
        }
    }
    endpoint nvme0 @ 02.0 { id 144d:a808 class 0x010802; bar 0 mem32 16K; msi 8 addr64; intx A; }
}
"""


def _report(tmp_path: Path, text: str) -> tuple[dict[str, dict[str, Any]], list[str]]:
    src = tmp_path / "board.msi"
    src.write_text(text)
    result = compile_file(CompileOptions(input=src))
    codes = [d.code.id for d in result.sink]
    if result.machine is None or result.allocation is None:
        return {}, codes
    doc = json.loads(to_json(result.machine, result.allocation))
    return {f["name"]: f for f in doc["functions"]}, codes


def test_class_and_default_chains_skip_what_a_function_lacks(tmp_path: Path) -> None:
    text = HEAD + "policy any { prefer msix, msi, intx; vectors 2; }\napply any to class 0x010802;\n"
    fns, codes = _report(tmp_path, text + BODY.replace("PF_POLICY", ""))
    assert codes == []
    nvme = fns["nvme0"]
    assert nvme["mechanism"] == "msi" and nvme["policy_source"].startswith("class rule (board.msi:")
    assert nvme["reasons"][0] == f"msix: skipped, 'nvme0' has no MSI-X capability ({nvme['policy_source']})"
    nic = fns["nic"]  # the built-in default: msix, msi, intx
    assert nic["mechanism"] == "msix" and "msi: skipped, 'nic' has no MSI capability (default policy)" in nic["reasons"]


def test_vfs_say_they_inherit_the_pfs_policy(tmp_path: Path) -> None:
    text = HEAD + "policy pf { prefer msix, intx; vectors 4; }\n"
    fns, codes = _report(tmp_path, text + BODY.replace("PF_POLICY", "policy pf;"))
    assert codes == []  # the PF's 'intx' is no error for its VFs, which have none
    assert fns["nic"]["policy_source"] == "function (board.msi:15)"
    for vf in ("nic_vf0", "nic_vf1"):
        f = fns[vf]
        assert (f["policy"], f["mechanism"], f["vectors_granted"]) == ("pf", "msix", 4)
        assert f["policy_source"] == "inherited from PF 'nic' (board.msi:15)"
        assert f["reasons"][0] == (
            f"intx: skipped, '{vf}' is an SR-IOV VF (no INTx) (inherited from PF 'nic' (board.msi:15))")


def test_a_vf_policy_of_its_own_is_attached(tmp_path: Path) -> None:
    text = HEAD + "policy pf { prefer msix; vectors 4; }\npolicy vf { prefer msix, intx; vectors 1; }\n"
    body = BODY.replace("PF_POLICY", "policy pf;").replace("vf-id 0x10ed;", "vf-id 0x10ed; policy vf;")
    _fns, codes = _report(tmp_path, text + body)
    assert codes == ["E503"]  # named for the VFs, so INTx there is their policy's mistake


def test_a_class_policy_naming_nothing_available_warns(tmp_path: Path) -> None:
    text = HEAD + "policy storage { prefer msix; vectors 2; }\napply storage to class 0x010802;\n"
    fns, codes = _report(tmp_path, text + BODY.replace("PF_POLICY", ""))
    assert codes == ["W970"]
    assert fns["nvme0"]["mechanism"] == "none"
    assert fns["nvme0"]["reasons"][-1] == "no interrupt mechanism available"


# ---------------------------------------------------------------- a count per mechanism

ONE_FUNCTION = BRIDGE + """\
    endpoint nic @ 01.0 {
        id 8086:10d3 class 0x020000;
        bar 0 mem32 16K;
        msix MSIX table bar 0 + 0x2000 pba bar 0 + 0x3000;
        msi 4 addr64;
        intx A;
        policy e1000e;
    }
}
"""


def _one(tmp_path: Path, policy: str, msix: int) -> tuple[dict[str, Any], list[str]]:
    fns, codes = _report(tmp_path, HEAD + policy + "\n" + ONE_FUNCTION.replace("MSIX", str(msix)))
    return fns["nic"], codes


def test_a_mechanism_with_a_count_of_its_own_is_asked_that_count(tmp_path: Path) -> None:
    """e1000e: MSI-X for exactly 3, else MSI for 1. With 3 table entries it
    gets MSI-X 3; with 2, MSI-X is short of its minimum and MSI is asked for
    its own count, 1 (not 3, which the general line would ask and the
    4-vector capability would grant)."""
    policy = "policy e1000e { prefer msix, msi, intx; vectors 3 min 3; vectors msi 1; }"
    nic, codes = _one(tmp_path, policy, 3)
    assert (nic["mechanism"], nic["vectors_granted"]) == ("msix", 3), nic
    nic, codes = _one(tmp_path, policy, 2)
    assert (nic["mechanism"], nic["vectors_requested"], nic["vectors_granted"]) == ("msi", 1, 1), nic
    assert codes == ["W611"], codes
    # Negative control: without the MSI line the same policy asks MSI for 3
    # (the capability's 4 round it to 4 data values).
    nic, _ = _one(tmp_path, "policy e1000e { prefer msix, msi, intx; vectors 3 min 3; }", 2)
    assert (nic["mechanism"], nic["vectors_requested"], nic["vectors_granted"]) == ("msi", 3, 3), nic


def test_a_mechanism_count_has_its_own_minimum(tmp_path: Path) -> None:
    """``vectors msix 8 min 4;`` with a 6-entry table: 6 (degraded, at least 4);
    the general line does not apply to MSI-X at all."""
    nic, codes = _one(tmp_path, "policy e1000e { prefer msix, msi; vectors 1; vectors msix 8 min 4; }", 6)
    assert (nic["mechanism"], nic["vectors_requested"], nic["vectors_granted"]) == ("msix", 8, 6), nic
    assert codes == ["W610"], codes
    nic, codes = _one(tmp_path, "policy e1000e { prefer msix, msi; vectors 1; vectors msix 8 min 7; }", 6)
    assert nic["mechanism"] == "msi" and nic["vectors_granted"] == 1, nic
