"""The worked trees of the domain reference come out of .msi files.

tests/data/domain-4.5-native.dts is copied verbatim from shared/domain.md 4.5;
examples/worked-native/worked-native.msi describes the same machine. The test
compares every node and property of the reference with ours (through real dtc
and pylibfdt) and names, explicitly, each property where we differ and why.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import libfdt

ROOT = Path(__file__).resolve().parent.parent


def _dtb_from_dts(path: Path) -> bytes:
    return subprocess.run(["dtc", "-I", "dts", "-O", "dtb", str(path)], check=True,
                          capture_output=True).stdout


def _props(fdt: object) -> dict[str, dict[str, bytes]]:
    """path -> {property name -> raw value}; phandle values normalised to the target's path."""
    assert isinstance(fdt, libfdt.Fdt)
    out: dict[str, dict[str, bytes]] = {}
    phandles: dict[int, str] = {}

    def walk(off: int, path: str) -> None:
        props: dict[str, bytes] = {}
        poff = fdt.first_property_offset(off, libfdt.QUIET_NOTFOUND)
        while poff >= 0:
            prop = fdt.get_property_by_offset(poff)
            props[prop.name] = bytes(prop)
            poff = fdt.next_property_offset(poff, libfdt.QUIET_NOTFOUND)
        if "phandle" in props:
            phandles[int.from_bytes(props["phandle"], "big")] = path
        out[path] = props
        child = fdt.first_subnode(off, libfdt.QUIET_NOTFOUND)
        while child >= 0:
            name = fdt.get_name(child)
            walk(child, f"{path.rstrip('/')}/{name}")
            child = fdt.next_subnode(child, libfdt.QUIET_NOTFOUND)

    walk(0, "/")
    for props in out.values():
        props.pop("phandle", None)
    out["__phandles__"] = {str(k): v.encode() for k, v in phandles.items()}
    return out


def _cells(v: bytes) -> list[int]:
    return [int.from_bytes(v[i:i + 4], "big") for i in range(0, len(v), 4)]


# Properties the description produces beyond the reference tree, and why.
OURS_ONLY = {
    # The DT spec requires a root 'model'; the reference has none, so dtmsi's
    # default (the platform's compatible string) is an extra.
    ("/", "model"),
    # 1275 binding: a generic class entry after the vendor/device one.
    ("/pcie@30000000/pci@1/ethernet@0", "vendor-id"), ("/pcie@30000000/pci@1/ethernet@0", "device-id"),
    ("/pcie@30000000/pci@1/ethernet@0", "revision-id"), ("/pcie@30000000/pci@1/ethernet@0", "class-code"),
    ("/pcie@30000000/pci@1/nvme@1", "vendor-id"), ("/pcie@30000000/pci@1/nvme@1", "device-id"),
    ("/pcie@30000000/pci@1/nvme@1", "revision-id"), ("/pcie@30000000/pci@1/nvme@1", "class-code"),
    ("/pcie@30000000/pci@1", "vendor-id"), ("/pcie@30000000/pci@1", "device-id"),
    ("/pcie@30000000/pci@1", "revision-id"), ("/pcie@30000000/pci@1", "class-code"),
    # dtmsi places every BAR, so the Ethernet BAR gets an assigned address too
    # (the reference shows one for the NVMe BAR only).
    ("/pcie@30000000/pci@1/ethernet@0", "assigned-addresses"),
}
# Properties whose value differs on purpose.
DIFFERENT = {
    # The reference lists "pci8086,10d3" (endpoints) or "pci1b36,1", "pciclass,0604"
    # (bridge); dtmsi emits the 1275 list vendor/device, class with prog-if, class.
    ("/pcie@30000000/pci@1", "compatible"),
    ("/pcie@30000000/pci@1/ethernet@0", "compatible"),
    ("/pcie@30000000/pci@1/nvme@1", "compatible"),
}


def test_native_worked_tree_matches_domain_reference(tmp_path: Path) -> None:
    out = tmp_path / "out"
    subprocess.run([sys.executable, "-m", "dtmsi", "compile",
                    str(ROOT / "examples/worked-native/worked-native.msi"), "-o", str(out)],
                   check=True, cwd=ROOT)
    ours = _props(libfdt.Fdt((out / "system.dtb").read_bytes()))
    ref = _props(libfdt.Fdt(_dtb_from_dts(ROOT / "tests/data/domain-4.5-native.dts")))
    ours_ph, ref_ph = ours.pop("__phandles__"), ref.pop("__phandles__")

    assert sorted(ours) == sorted(ref), "node sets differ"
    seen_only: set[tuple[str, str]] = set()
    seen_diff: set[tuple[str, str]] = set()
    for path, ref_props in ref.items():
        our_props = ours[path]
        for name in our_props.keys() - ref_props.keys():
            assert (path, name) in OURS_ONLY, f"unexpected extra property {path}:{name}"
            seen_only.add((path, name))
        assert not ref_props.keys() - our_props.keys(), f"{path} lacks {ref_props.keys() - our_props.keys()}"
        for name, want in ref_props.items():
            got = our_props[name]
            if name in ("interrupt-parent", "interrupt-map", "msi-map"):
                # Compare phandle cells by the node they point at.
                want_c, got_c = _cells(want), _cells(got)
                assert len(want_c) == len(got_c), f"{path}:{name} length"
                for w, g in zip(want_c, got_c, strict=True):
                    if str(w) in ref_ph and str(g) in ours_ph:
                        assert ref_ph[str(w)] == ours_ph[str(g)], f"{path}:{name} points elsewhere"
                    else:
                        assert w == g, f"{path}:{name}: {want_c} != {got_c}"
                continue
            if (path, name) in DIFFERENT:
                seen_diff.add((path, name))
                continue
            assert got == want, f"{path}:{name}: ours {got!r} != reference {want!r}"
    assert seen_only == OURS_ONLY
    assert seen_diff == DIFFERENT
    # The compatible lists still start with the reference's own entries.
    for path in ("/pcie@30000000/pci@1/ethernet@0", "/pcie@30000000/pci@1/nvme@1"):
        assert ours[path]["compatible"].startswith(ref[path]["compatible"])
    assert ours["/pcie@30000000/pci@1"]["compatible"].split(b"\0")[0] == b"pci1b36,1"
    assert b"pciclass,0604\0" in ours["/pcie@30000000/pci@1"]["compatible"]
