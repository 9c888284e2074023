"""The C harness: a C stub runs against the simulator and leaves the same
trace as the same program in Python (gcc, clang, and big-endian powerpc64
under qemu-user). The stub here is a hand-made fixture (tests/sim/fake/),
mirrored below in Python: it tests the harness protocol, not the generator."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dtmsi.sim import HookError, SimBar, SimFunction, SimHostBridge, SimMsix, Simulator, build_c_harness, run_c_stub
from dtmsi.sim.papr import int32

FAKE = Path(__file__).with_name("fake")
BUID = 0x0800_0000_2000_0000
STRICT = ("-std=c99", "-O1", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wconversion")

# (name, seg, bus, devfn, vendor, device, kind, bar_cpu, buid/phb, config_addr, slot, slots): fake_msi.c's table
TABLE = [
    ("nic0", 0, 0, 0x08, 0x8086, 0x10D3, 0, 0x210_0000_0000, BUID, 0x0800, 0, 2),
    ("ssd-é", 1, 0, 0x10, 0x144D, 0xA808, 1, 0x3C00_0000_0000, 7, 0, 2, 1),
    ("ghost", 0, 0, 0x18, 0x1234, 0x5678, 2, 0, 0, 0, 3, 0),
]


def fake_machine(missing: tuple[str, ...] = ()) -> Simulator:
    return Simulator(
        [
            SimHostBridge("phb0", 0, "papr", buid=BUID),
            SimHostBridge("phb7", 1, "opal", opal_phb_id=7, msi_base=0x7F0, msi_count=16),
        ],
        [
            SimFunction(0, 0, 0x08, 0x8086, 0x10D3, name="nic0",
                        bars=(SimBar(0, "mem64", 0x4000, 0x210_0000_0000),), msix=SimMsix(4, 0, 0x2000, 0, 0x3000)),
            SimFunction(1, 0, 0x10, 0x144D, 0xA808, name="ssd",
                        bars=(SimBar(0, "mem64", 0x4000, 0x3C00_0000_0000),), msix=SimMsix(4, 0, 0x2000, 0, 0x3000)),
        ],
        missing_hooks=missing,
    )


class PyFake:
    """fake_msi.c, line for line, as a Python program over the same hooks."""

    def __init__(self, h: Simulator) -> None:
        self.h = h
        self.set_up = [False] * len(TABLE)

    def say(self, level: int, msg: str) -> None:
        if getattr(self.h, "log", None) is not None:
            self.h.log(level, msg)

    def setup_one(self, i: int) -> int:
        if i >= len(TABLE):
            return -13
        _name, seg, bus, devfn, vendor, device, kind, bar, buid, ca, _slot, slots = TABLE[i]
        h = self.h
        try:
            ident = h.cfg_read(seg, bus, devfn, 0, 4)
            if ident & 0xFFFF == 0xFFFF:
                status = -1
            elif ident != vendor | device << 16:
                status = -2
            else:
                cmd = h.cfg_read(seg, bus, devfn, 4, 2)
                h.cfg_write(seg, bus, devfn, 4, 2, cmd | 6)
                status = self.papr(bar, buid, ca, slots) if kind == 0 else self.opal(buid)
        except HookError:
            status = -8
        self.set_up[i] = status == 0
        self.say(2 if status == 0 else 0, 'fake: "ok" \\ \t done' if status == 0 else "fake: error")
        return status

    def papr(self, bar: int, buid: int, ca: int, slots: int) -> int:
        h = self.h
        h.mmio_write32(bar + 0x2000 + 12, 1)
        h.mmio_read32(bar + 0x2000 + 12)
        args = [ca, buid >> 32, buid & 0xFFFFFFFF, 4, 2, 1]
        while True:
            rets = h.rtas_call(0x2019, 6, 4, args)
            status = int32(rets[0])
            if status == -2 or 9900 <= status <= 9905:
                if status >= 9900:
                    h.delay_us(1000)
                args[5] = rets[2]
                continue
            break
        if status:
            return -9
        for k in range(min(rets[1], slots)):
            h.rtas_call(0x2018, 4, 3, [ca, buid >> 32, buid & 0xFFFFFFFF, k])
        return 0

    def opal(self, phb: int) -> int:
        h = self.h
        rc = h.opal_set_xive_pe(phb, 1, 3)
        if rc == 0:
            rc = h.opal_get_msi(phb, 1, 3, 1)[0]
        if rc == 0:
            h.opal_get_msi(phb, 1, 9999, 0)
            rc = h.opal_get_msi(phb, 1, 3, 1)[0]
        return 0 if rc == 0 else -9

    def setup_all(self) -> int:
        return sum(self.setup_one(i) != 0 for i in range(len(TABLE)))

    def teardown_all(self) -> int:
        for i in reversed(range(len(TABLE))):
            if self.set_up[i]:
                self.set_up[i] = False
                self.say(2, "torn down")
        return 0


COMMANDS = ["setup_all", "results", "teardown_all", "restore_one 0", "setup_one 7", "find 1 0 16", "find 0 0 0",
            "strerror -13", "strerror 99", "digest", "abi", "mode"]
EXPECTED = ["1", "3", "0", "-14", "-13", "1", "-1", "bad index", "unknown status", 'sha256:fixture "quoted" \\ done',
            "1", "2"]


def python_trace(sim: Simulator) -> list[str]:
    fake = PyFake(sim)
    fake.setup_all()
    fake.teardown_all()
    return sim.trace_lines()


def need(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        pytest.fail(f"{tool} is not installed (scripts/apt-packages.txt lists it; scripts/bootstrap.sh installs it)",
                    pytrace=False)
    return found


@pytest.fixture(scope="module", params=["gcc", "clang"])
def harness(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = need(request.param)
    return build_c_harness(FAKE / "fake_msi.c", FAKE / "fake_msi.h", "fakestub", tmp_path_factory.mktemp(request.param),
                           cc=cc, cflags=STRICT)


def test_round_trip(harness: Path) -> None:
    sim = fake_machine()
    sim.papr.inject_busy([9901, -2])
    run = run_c_stub(harness, sim, COMMANDS)
    assert run.values() == EXPECTED
    assert run.returncode == 0 and run.stderr == ""
    nic, ssd, ghost = run.results
    assert (nic.name, nic.status, nic.vectors, nic.mechanism_name, nic.set_up) == ("nic0", 0, 2, "msix", 1)
    assert [v.irq for v in nic.vec] == [0x1300, 0x1301]
    assert (ssd.name, ssd.status, [(v.address, v.data, v.irq) for v in ssd.vec]) == ("ssd-é", 0, [(1 << 60, 3, 3)])
    assert (ghost.status, ghost.vec) == (-1, ())
    py = fake_machine()
    py.papr.inject_busy([9901, -2])
    assert sim.trace_lines() == python_trace(py)
    assert 'log 2 "fake: \\"ok\\" \\\\ \\t done"' in sim.trace_lines()
    assert "opal_get_msi 0x7 0x1 0x270f 0 -> -0x1 0x0 0x0" in sim.trace_lines()
    assert sim.delayed_us == 1000
    assert sim.violations == []


def test_hook_failures_and_missing_hooks(harness: Path) -> None:
    sim = fake_machine(missing=("log",))
    sim.fail_hook("rtas_call")
    run = run_c_stub(harness, sim, ["setup_one 0", "setup_one 1", "nohook opal_get_msi", "setup_one 1",
                                    "allhooks", "nohook log", "setup_one 1", "nohook bogus"])
    assert run.values() == ["-8", "0", "0", "-8", "0", "0", "0", "-1"]
    lines = sim.trace_lines()
    assert not any(line.startswith("log") for line in lines)  # the simulator has no log: nor has the harness
    assert sum(line.endswith("-> !") for line in lines) == 1


def test_big_endian_powerpc64(tmp_path: Path) -> None:
    cc = need("powerpc64-linux-gnu-gcc")
    qemu = need("qemu-ppc64")
    exe = build_c_harness(FAKE / "fake_msi.c", FAKE / "fake_msi.h", "fakestub", tmp_path, cc=cc, cflags=STRICT,
                          ldflags=("-static",))
    sim = fake_machine()
    sim.papr.inject_busy([9901, -2])
    run = run_c_stub(exe, sim, COMMANDS, runner=[qemu])
    assert run.values() == EXPECTED
    py = fake_machine()
    py.papr.inject_busy([9901, -2])
    assert sim.trace_lines() == python_trace(py)
    assert [v.irq for v in run.results[0].vec] == [0x1300, 0x1301]
    assert run.results[1].vec[0].address == 1 << 60
