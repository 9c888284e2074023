"""simulator_from_model on every example: every function there with its IDs,
BARs and capabilities; Linux's order over allocation.json leaves no violation
and the state allocation.json describes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dtmsi.sim import SimOptions, check_final_state
from dtmsi.sim.device import format_bdf
from dtmsi.sim.from_model import simulator_from_model
from tests.sim.conftest import ROOT, Compiled, compiled
from tests.sim.reference import Reference


def test_every_function_is_there(example: Compiled) -> None:
    m = example.machine
    sim = simulator_from_model(m)
    assert len(sim.devices) == len(m.functions())
    for f in m.functions():
        bdf = (f.host.domain_or_zero, f.bus, f.devfn)
        dev = sim.device(bdf)
        assert dev.fn.name == f.name and sim.host_of(dev).name == f.host.name
        ids = sim.cfg_read(*bdf, 0x00, 4)
        assert ids == (0xFFFFFFFF if f.kind == "vf" else f.vendor | f.device_id << 16), f.name
        assert (dev.fn.vendor, dev.fn.device) == (f.vendor, f.device_id)
        assert sim.cfg_read(*bdf, 0x08, 4) >> 8 == f.class_code
        assert sim.cfg_read(*bdf, 0x0E, 1) == (1 if f.is_bridge else 0)
        for b in f.bars:
            reg = sim.cfg_read(*bdf, b.register, 4)
            if f.kind == "vf":
                assert reg == 0
            else:
                assert reg & ~0xF == (b.address or 0) & 0xFFFFFFF0 & ~0xF or b.kind == "io"
                if b.kind == "mem64":
                    assert sim.cfg_read(*bdf, b.register + 4, 4) == (b.address or 0) >> 32
            if b.kind != "io" and b.address is not None:
                cpu = sim.bar_cpu_address(bdf, b.index)
                w = next(w for w in f.host.windows if w.pci <= b.address < w.pci + w.size and w.kind != "io")
                assert cpu == w.cpu + b.address - w.pci, (f.name, b.index)
        found = {}
        pos = sim.cfg_read(*bdf, 0x34, 1)
        while pos:
            found[sim.cfg_read(*bdf, pos, 1)] = pos
            pos = sim.cfg_read(*bdf, pos + 1, 1)
        assert (0x10 in found) == f.pcie
        assert (0x05 in found) == (f.msi is not None)
        assert (0x11 in found) == (f.msix is not None)
        if f.msi is not None:
            if f.msi.offset is not None:
                assert found[0x05] == f.msi.offset
            ctrl = sim.cfg_read(*bdf, found[0x05] + 2, 2)
            assert (ctrl >> 1) & 7 == f.msi.mmc and bool(ctrl & 0x80) == f.msi.is64
            assert bool(ctrl & 0x100) == f.msi.maskable
        if f.msix is not None:
            if f.msix.offset is not None:
                assert found[0x11] == f.msix.offset
            assert (sim.cfg_read(*bdf, found[0x11] + 2, 2) & 0x7FF) + 1 == f.msix.table_size
            assert sim.cfg_read(*bdf, found[0x11] + 4, 4) == f.msix.table_offset | f.msix.table_bir
        assert dev.fn.quirks == tuple(f.quirks)
    assert sim.violations == []
    assert sim.partition is None
    kinds = {hb.name: hb.kind for hb in sim.host_bridges}
    assert kinds == {hb.name: {"ecam": "native"}.get(hb.kind, hb.kind) for hb in m.host_bridges}


def test_partitions_and_tokens() -> None:
    c = compiled(ROOT / "examples/partitions/partitions.msi")
    for p in c.machine.partitions:
        sim = simulator_from_model(c.machine, p.name)
        assert sim.partition == frozenset((f.host.domain_or_zero, f.bus, f.devfn) for f in p.functions)
        assert (sim.options.rtas_change_msi, sim.options.rtas_query_irq) == (0x2019, 0x2018)
        assert {hb.buid for hb in sim.host_bridges} == {0x800000020000000, 0x800000020000001}
    with pytest.raises(ValueError, match="no partition"):
        simulator_from_model(c.machine, "lpar9")
    opal = simulator_from_model(compiled(ROOT / "examples/powernv-opal/powernv-opal.msi").machine)
    assert [(hb.kind, hb.opal_phb_id, hb.msi_base, hb.msi_count) for hb in opal.host_bridges] == [
        ("opal", 0, 0x7F0, 16), ("opal", 1, 0xFF0, 16),
    ]


def _runs(c: Compiled) -> list[str | None]:
    return [p.name for p in c.machine.partitions] or [None]


def test_linux_order_leaves_the_planned_state(example: Compiled) -> None:
    powervm = example.machine.platform.msi_mode.kind == "hypervisor"  # multi-vector MSI needs PowerVM's rules
    for part in _runs(example):
        sim = simulator_from_model(example.machine, part, options=SimOptions(powervm=powervm))
        Reference(sim).setup_all(example.allocation, part)
        assert sim.violations == [], part
        assert check_final_state(sim, example.allocation, part) == [], part
        planned = [f for f in example.allocation["functions"] if part is None or f["partition"] == part]
        touched = {r.bdf for r in sim.trace if r.bdf is not None}
        assert all(sim.in_partition(b) for b in touched)
        assert all(format_bdf(b) in {f["bdf"] for f in planned} for b in touched)


def test_qemu_gives_papr_msi_one_vector() -> None:
    c = compiled(ROOT / "examples/worked-papr/worked-papr.msi")
    sim = simulator_from_model(c.machine)
    eth0 = next(f for f in c.allocation["functions"] if f["name"] == "eth0")
    assert eth0["mechanism"] == "msi" and eth0["hardware_vectors"] == 4
    bdf = (0, 1, 0)
    ca = 1 << 16
    rets = sim.rtas_call(0x2019, 6, 4, [ca, 0x800_0000, 0x2000_0000, 3, 4, 1])
    assert rets == [0, 1, 2, 1]  # MME is 0 under PAPR: QEMU's maximum is 1
    assert sim.papr.grant_of(bdf) is None


def test_core_does_not_import_the_compiler() -> None:
    code = (
        "import sys, dtmsi.sim\n"
        "bad = [m for m in sys.modules if m in ('lark', 'jinja2', 'click') or "
        "(m.startswith('dtmsi.') and not m.startswith('dtmsi.sim'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
