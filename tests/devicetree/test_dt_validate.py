"""Every example's trees pass ``dt-validate`` (dtschema, from PyPI).

The schemas are dtschema's own (the core, the root node, the generic PCI bus,
bridge and device schemas) plus the Linux-only bindings our trees use, whose
rules are restated in tests/data/dt-schemas (arm,gic-v3 with its ITS child,
fsl,mpic-msi). Every tree of every example (the system tree and each
partition's) is validated in one run.

A rule is excused only if QEMU's own trees break it too, and each excuse is
proven here by validating trees QEMU dumps at test time (arm64 virt with a
GICv3 ITS, ppce500, pseries with a PCI bridge): an exception no QEMU tree
needs fails the test. A deliberately wrong tree (no root ``model``; an ITS
without ``#msi-cells``) must fail validation.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import CompileExample, RunDtc, read_nodes
from tests.golden_update import ROOT, example_names

SCHEMAS = ROOT / "tests" / "data" / "dt-schemas"
DT_VALIDATE = ROOT / ".venv" / "bin" / "dt-validate"
UBOOT_E500 = Path("/usr/lib/u-boot/qemu-ppce500/uboot.elf")
UNDESCRIBED = "is not of type 'object', 'integer', 'array', 'boolean', 'null'"

Error = dict[str, object]


@dataclass(frozen=True)
class Excuse:
    name: str
    why: str
    matches: Callable[[Error], bool]


def _schema(e: Error) -> str:
    return str(e.get("schema") or "")


def _path(e: Error) -> list[str]:
    return [str(p) for p in e.get("schema_path") or []]  # type: ignore[attr-defined]


EXCUSES = [
    Excuse(
        "undescribed-property",
        "a property no schema here describes: the IEEE 1275 PCI properties (class-code, revision-id, "
        "subsystem-*), PAPR's ibm,* (req#msi, pe-total-#msi, RTAS tokens), OPAL's ibm,opal-*, fsl,msi, "
        "msi-available-ranges without its binding; QEMU writes the same ones",
        lambda e: _schema(e).endswith("/dt-core.yaml") and UNDESCRIBED in str(e.get("message")),
    ),
    Excuse(
        "pci-child-reg-entries",
        "dtschema's pci-device schema lets a PCI function's reg hold only its config-space entry; the "
        "IEEE 1275 PCI binding lists one entry per BAR after it (QEMU's pseries does too)",
        lambda e: re.search(r"/pci/pci-(bus-common|pci-bridge)\.yaml$", _schema(e)) is not None
        and "reg" in _path(e) and _path(e)[-1] == "maxItems",
    ),
    Excuse(
        "gic-node-names",
        "QEMU's virt names the GICv3 'intc@...' and its ITS 'its@...'; the Linux binding wants "
        "interrupt-controller@ and msi-controller@ (our qemu-virt base tree is QEMU's)",
        lambda e: _schema(e).endswith("/arm,gic-v3.yaml")
        and re.search(r"'(intc|its)@[0-9a-f]+' does not match", str(e.get("message"))) is not None,
    ),
]


def dt_validate(dtbs: list[Path], tmp: Path) -> list[Error]:
    """dt-validate's findings for ``dtbs``, as its JSON records."""
    if not DT_VALIDATE.is_file():
        pytest.fail("dt-validate is missing: install the test extras (pip install -e '.[test]', dtschema)",
                    pytrace=False)
    out = tmp / "dt-validate.json"
    proc = subprocess.run([str(DT_VALIDATE), "-s", str(SCHEMAS), "--json-output", str(out), *map(str, dtbs)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert out.is_file(), proc.stderr
    errors: list[Error] = json.loads(out.read_text())
    assert all(e.get("type") == "validation" for e in errors), [e for e in errors if e.get("type") != "validation"]
    return errors


def unexcused(errors: list[Error]) -> list[str]:
    return [str(e["formatted"]) for e in errors if not any(x.matches(e) for x in EXCUSES)]


def test_every_example_tree_is_schema_clean(compile_example: CompileExample, tmp_path: Path) -> None:
    dtbs = [p for name in example_names() for p in sorted(compile_example(name).glob("*.dtb"))]
    assert len(dtbs) > len(example_names()), "partition trees are missing"
    assert unexcused(dt_validate(dtbs, tmp_path)) == []


def test_no_invented_properties(compile_example: CompileExample) -> None:
    """dtmsi writes no property of its own vendor prefix: information for
    people (OPAL tokens, provenance) goes into DTS comments."""
    found = [
        f"{name}/{dtb.name}:{path}:{prop}"
        for name in example_names()
        for dtb in sorted(compile_example(name).glob("*.dtb"))
        for path, props in read_nodes(dtb.read_bytes()).items()
        for prop in props
        if prop.startswith("dtmsi,")
    ]
    assert found == []


def _qemu(binary: str, *args: str, dtb: Path) -> Path:
    exe = shutil.which(binary)
    if exe is None:
        pytest.fail(f"{binary} is missing (Debian's qemu-system-arm / qemu-system-ppc)", pytrace=False)
    proc = subprocess.run([exe, *args, "-nodefaults", "-display", "none", "-machine", f"dumpdtb={dtb}"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0 and dtb.is_file(), proc.stderr
    return dtb


def test_qemu_breaks_every_excused_rule(tmp_path: Path) -> None:
    if not UBOOT_E500.is_file():
        pytest.fail("u-boot-qemu is missing (its qemu-ppce500/uboot.elf starts QEMU's ppce500)", pytrace=False)
    trees = [
        _qemu("qemu-system-aarch64", "-M", "virt,gic-version=3,its=on", "-cpu", "cortex-a57", "-m", "1G",
              dtb=tmp_path / "virt.dtb"),
        _qemu("qemu-system-ppc64", "-M", "ppce500", "-cpu", "e5500", "-bios", str(UBOOT_E500),
              "-device", "e1000e", dtb=tmp_path / "e500.dtb"),
        _qemu("qemu-system-ppc64", "-M", "pseries", "-device", "pci-bridge,id=b1,chassis_nr=1,addr=1",
              "-device", "e1000e,bus=b1,addr=0", dtb=tmp_path / "pseries.dtb"),
    ]
    errors = dt_validate(trees, tmp_path)
    unused = [x.name for x in EXCUSES if not any(x.matches(e) for e in errors)]
    assert unused == [], f"excused rules that none of QEMU's trees breaks: {unused}"


WRONG = [
    ("root without model", lambda dts: re.sub(r'\n\tmodel = "[^"]*";', "", dts, count=1), "'model' is a required"),
    ("ITS without #msi-cells", lambda dts: re.sub(r"\n\t\t\t#msi-cells = <1>;", "", dts, count=1), "#msi-cells"),
]


@pytest.mark.parametrize(("what", "edit", "expect"), WRONG, ids=[w[0] for w in WRONG])
def test_wrong_tree_fails_validation(compile_example: CompileExample, run_dtc: RunDtc, tmp_path: Path,
                                     what: str, edit: Callable[[str], str], expect: str) -> None:
    dts = (compile_example("worked-native") / "system.dts").read_text()
    wrong = edit(dts)
    assert wrong != dts, what
    (tmp_path / "wrong.dts").write_text(wrong)
    done = run_dtc("-q", "-I", "dts", "-O", "dtb", "-o", tmp_path / "wrong.dtb", tmp_path / "wrong.dts")
    assert done.returncode == 0, done.stderr
    left = unexcused(dt_validate([tmp_path / "wrong.dtb"], tmp_path))
    assert any(expect in e for e in left), left
