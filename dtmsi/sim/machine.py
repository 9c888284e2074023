"""The simulated machine: host bridges, functions, the hypervisor or OPAL, and
the hooks a generated stub calls.

``Simulator`` implements the Python hooks of dtmsi/stubs/CONTRACT.md itself,
so a generated Python stub runs as ``Stub(sim)``; a generated C stub runs
through ``dtmsi.sim.remote``, whose harness forwards each hook call to the
same methods. Every call appends a ``TraceRecord`` (text as CONTRACT.md
"Trace" shows) and goes past the invariant checker, which appends to
``sim.violations``.

Standard library only.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from dtmsi.sim.device import Bdf, Device, FunctionState, SimFunction, format_bdf
from dtmsi.sim.invariants import Checker, Mode
from dtmsi.sim.opal import PHB4_DEFAULT_NUM_PES, OpalFirmware, OpalPhb
from dtmsi.sim.papr import (
    RTAS_OUT_PARAM_ERROR,
    SPAPR_IRQ_MSI,
    SPAPR_NR_MSIS,
    SPAPR_PCI_MSI_WINDOW,
    PaprHypervisor,
    cell,
)

HOOK_NAMES = (
    "cfg_read",
    "cfg_write",
    "mmio_read32",
    "mmio_write32",
    "delay_us",
    "log",
    "rtas_call",
    "opal_set_xive_pe",
    "opal_get_msi",
)
# Hooks that can fail (C: a nonzero return); the others return nothing, and
# OPAL's report failures by status (``sim.opal.inject_error``), so a C and a
# Python stub see the same failure.
INJECTABLE_HOOKS = frozenset({"cfg_read", "cfg_write", "mmio_read32", "mmio_write32", "rtas_call"})


class HookError(OSError):
    """A hook could not do what was asked (the stub reports E_HOOK).

    An ``OSError`` so that a stub catching ``OSError`` catches it too."""


@dataclass(frozen=True, slots=True)
class SimWindow:
    """A host bridge memory window: PCI bus addresses [pci, pci+size) at CPU ``cpu``."""

    pci: int
    cpu: int
    size: int


@dataclass(frozen=True, slots=True)
class SimHostBridge:
    name: str
    segment: int = 0
    kind: Mode = "native"
    buid: int = 0  # PAPR: the PHB's BUID
    opal_phb_id: int = 0  # OPAL: the PHB id
    windows: tuple[SimWindow, ...] = ()  # none: PCI addresses are CPU addresses
    msi_base: int = 0  # OPAL: ibm,opal-msi-ranges (first hwirq, count)
    msi_count: int = 0
    bus_first: int = 0
    bus_last: int = 255
    num_pes: int = PHB4_DEFAULT_NUM_PES  # OPAL

    def owns(self, fn: SimFunction) -> bool:
        return fn.seg == self.segment and self.bus_first <= fn.bus <= self.bus_last

    def cpu_address(self, pci: int, size: int) -> int | None:
        if not self.windows:
            return pci
        for w in self.windows:
            if w.pci <= pci and pci + size <= w.pci + w.size:
                return w.cpu + (pci - w.pci)
        return None


@dataclass(frozen=True, slots=True)
class SimOptions:
    """Behaviour switches, fixed for a simulator's life."""

    vf_real_ids: bool = False  # VFs read their real IDs (QEMU) instead of 0xffff:0xffff (spec)
    initial_command: int = 0  # Command register after reset, for every function
    powervm: bool = False  # PAPR: PowerVM's stricter rules (papr.py)
    powervm_non_pow2: Literal["refuse", "clamp", "allow"] = "refuse"
    source_base: int = SPAPR_IRQ_MSI  # PAPR interrupt source pool
    source_count: int = SPAPR_NR_MSIS
    msi_window: int = SPAPR_PCI_MSI_WINDOW  # PAPR: the address the hypervisor writes
    msi_window32: int = 0xFFFF0000  # PowerVM functions 5/6
    rtas_change_msi: int = 0x2019  # RTAS tokens (QEMU's)
    rtas_query_irq: int = 0x2018


@dataclass(frozen=True, slots=True)
class TraceRecord:
    """One hook call: its text line, and the function it named (if any)."""

    hook: str
    line: str
    bdf: Bdf | None = None
    failed: bool = False


@dataclass(slots=True)
class _Failure:
    hook: str
    skip: int
    count: int | None
    match: Callable[[tuple[int, ...]], bool] | None


@dataclass(frozen=True, slots=True)
class _Mapping:
    cpu: int
    end: int
    device: Device
    bar: int


def quote(msg: str) -> str:
    """A log message as the trace shows it: double quotes, Python string escapes."""
    return '"' + msg.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'


def _width_ones(width: int) -> int:
    return (1 << (8 * width)) - 1 if width in (1, 2, 4) else 0xFFFFFFFF


class Simulator:
    """A machine a stub can set up: see the module docstring."""

    def __init__(
        self,
        host_bridges: Iterable[SimHostBridge],
        functions: Iterable[SimFunction],
        *,
        partition: Collection[Bdf] | None = None,
        options: SimOptions | None = None,
        missing_hooks: Collection[str] = (),
    ) -> None:
        self.options = options or SimOptions()
        self.host_bridges = tuple(host_bridges)
        self.devices: dict[Bdf, Device] = {}
        self._host: dict[Bdf, SimHostBridge] = {}
        for fn in functions:
            hb = next((h for h in self.host_bridges if h.owns(fn)), None)
            if hb is None:
                raise ValueError(f"{fn.bdf_text} {fn.name}: no host bridge has segment {fn.seg:#x} bus {fn.bus:#x}")
            if fn.bdf in self.devices:
                raise ValueError(f"two functions at {fn.bdf_text}")
            o = self.options
            self.devices[fn.bdf] = Device(fn, vf_real_ids=o.vf_real_ids, command=o.initial_command)
            self._host[fn.bdf] = hb
        self.partition: frozenset[Bdf] | None = frozenset(partition) if partition is not None else None
        self.trace: list[TraceRecord] = []
        self.violations: list[str] = []
        self.logs: list[tuple[int, str]] = []
        self.delayed_us = 0
        self._failures: list[_Failure] = []
        self._mmio: list[_Mapping] = []
        self._mmio_starts: list[int] = []
        self._map_bars()
        o = self.options
        self.papr = PaprHypervisor(
            self._papr_device,
            powervm=o.powervm,
            non_pow2=o.powervm_non_pow2,
            source_base=o.source_base,
            source_count=o.source_count,
            msi_window=o.msi_window,
            msi_window32=o.msi_window32,
        )
        self.opal = OpalFirmware(
            {
                hb.opal_phb_id: OpalPhb(hb.opal_phb_id, hb.msi_base, hb.msi_count, hb.num_pes)
                for hb in self.host_bridges
                if hb.kind == "opal"
            },
            report=self.violations.append,
        )
        self.checker = Checker(self.violations.append, self.mode_of, self.papr.grant_of)
        for name in missing_hooks:
            if name not in HOOK_NAMES:
                raise ValueError(f"no hook named {name!r}")
            setattr(self, name, None)

    # ------------------------------------------------------------ the machine

    def _map_bars(self) -> None:
        maps: list[_Mapping] = []
        for dev in self.devices.values():
            hb = self._host[dev.bdf]
            for b in dev.fn.bars:
                if b.kind == "io" or b.address is None:
                    continue
                cpu = hb.cpu_address(b.address, b.size)
                if cpu is not None:
                    maps.append(_Mapping(cpu, cpu + b.size, dev, b.index))
        maps.sort(key=lambda m: m.cpu)
        for lo, hi in itertools.pairwise(maps):
            if hi.cpu < lo.end:
                raise ValueError(
                    f"BAR {lo.bar} of {lo.device.label} and BAR {hi.bar} of {hi.device.label} overlap at {hi.cpu:#x}"
                )
        self._mmio = maps
        self._mmio_starts = [m.cpu for m in maps]

    def host_of(self, dev: Device) -> SimHostBridge:
        return self._host[dev.bdf]

    def mode_of(self, dev: Device) -> Mode:
        return self._host[dev.bdf].kind

    def device(self, bdf: Bdf) -> Device:
        return self.devices[bdf]

    def state(self, bdf: Bdf) -> FunctionState:
        """The function's live Command, MSI and MSI-X state (MSI-X entries read from BAR memory)."""
        return self.devices[bdf].state()

    def fire(self, bdf: Bdf, vector: int) -> tuple[int, int] | None:
        """(address, data) the function would send for ``vector`` now, or None."""
        return self.devices[bdf].fire(vector)

    def reset_function(self, bdf: Bdf) -> None:
        """A function-level reset (for ``restore_*``): registers and table to power-on values."""
        dev = self.devices[bdf]
        dev.reset()
        self.checker.reset(dev)

    def bar_cpu_address(self, bdf: Bdf, bar: int) -> int | None:
        """Where the CPU reaches a BAR of the function (None: not mapped)."""
        return next((m.cpu for m in self._mmio if m.device.bdf == bdf and m.bar == bar), None)

    def in_partition(self, bdf: Bdf) -> bool:
        return self.partition is None or bdf in self.partition

    def trace_lines(self) -> list[str]:
        """The trace in CONTRACT.md's text form, one line per hook call."""
        return [r.line for r in self.trace]

    def clear_trace(self) -> None:
        self.trace.clear()

    def fail_hook(
        self,
        hook: str,
        *,
        skip: int = 0,
        count: int | None = 1,
        match: Callable[[tuple[int, ...]], bool] | None = None,
    ) -> None:
        """Make calls of ``hook`` raise ``HookError`` (traced as ``-> !``): the
        ``count`` matching calls (None: every one) after ``skip`` matching
        ones. ``match`` sees the call's integer arguments."""
        if hook not in INJECTABLE_HOOKS:
            raise ValueError(f"{hook!r} cannot fail (one of {sorted(INJECTABLE_HOOKS)})")
        self._failures.append(_Failure(hook, skip, count, match))

    def _fails(self, hook: str, args: tuple[int, ...]) -> bool:
        for f in self._failures:
            if f.hook != hook or (f.match is not None and not f.match(args)):
                continue
            if f.skip > 0:
                f.skip -= 1
                continue
            if f.count is not None:
                f.count -= 1
                if f.count <= 0:
                    self._failures.remove(f)
            return True
        return False

    def _record(self, hook: str, line: str, bdf: Bdf | None = None, failed: bool = False) -> None:
        self.trace.append(TraceRecord(hook, line, bdf, failed))

    def _fail(self, hook: str, head: str, bdf: Bdf | None = None) -> HookError:
        self._record(hook, f"{head} -> !", bdf, True)
        return HookError(f"{hook} failed (injected)")

    # ------------------------------------------------------------ config space

    def _cfg_target(self, hook: str, bdf: Bdf, off: int, width: int) -> Device | None:
        if width not in (1, 2, 4) or off < 0 or off % width:
            self.checker.bad_access(format_bdf(bdf), f"{hook} at {off:#x} width {width}")
            return None
        if not self.in_partition(bdf):
            self.checker.outside(hook, bdf)
            return None
        return self.devices.get(bdf)

    def cfg_read(self, seg: int, bus: int, devfn: int, off: int, width: int) -> int:
        bdf = (seg, bus, devfn)
        head = f"cfg_read {format_bdf(bdf)} 0x{off:03x} {width}"
        if self._fails("cfg_read", (seg, bus, devfn, off, width)):
            raise self._fail("cfg_read", head, bdf)
        dev = self._cfg_target("cfg_read", bdf, off, width)
        value = dev.cfg_read(off, width) if dev is not None else _width_ones(width)
        self._record("cfg_read", f"{head} -> {value:#x}", bdf)
        return value

    def cfg_write(self, seg: int, bus: int, devfn: int, off: int, width: int, val: int) -> None:
        bdf = (seg, bus, devfn)
        head = f"cfg_write {format_bdf(bdf)} 0x{off:03x} {width} {val & 0xFFFFFFFF:#x}"
        if self._fails("cfg_write", (seg, bus, devfn, off, width, val)):
            raise self._fail("cfg_write", head, bdf)
        self._record("cfg_write", head, bdf)
        if not 0 <= val <= 0xFFFFFFFF:
            self.checker.bad_access(format_bdf(bdf), f"cfg_write value {val:#x} is not a uint32")
        dev = self._cfg_target("cfg_write", bdf, off, width)
        if dev is not None:
            self.checker.cfg_write(dev, off, width, val, lambda: dev.cfg_write(off, width, val))

    # ------------------------------------------------------------ MMIO

    def _mmio_target(self, hook: str, pa: int) -> tuple[Device, int, int] | None:
        if pa % 4:
            self.checker.bad_access(f"{pa:#x}", f"{hook} not 32-bit aligned")
            return None
        i = bisect.bisect_right(self._mmio_starts, pa) - 1
        m = self._mmio[i] if i >= 0 else None
        if m is None or pa + 4 > m.end:
            self.checker.unmapped(hook, pa, "no BAR there")
            return None
        if not self.in_partition(m.device.bdf):
            self.checker.outside(hook, m.device.bdf)
            return None
        if not m.device.memory_decode:
            self.checker.unmapped(hook, pa, f"BAR {m.bar} of {m.device.label} with Memory Space disabled")
            return None
        return m.device, m.bar, pa - m.cpu

    def _owner(self, pa: int) -> Bdf | None:
        i = bisect.bisect_right(self._mmio_starts, pa) - 1
        if i >= 0 and pa < self._mmio[i].end:
            return self._mmio[i].device.bdf
        return None

    def mmio_read32(self, pa: int) -> int:
        head = f"mmio_read32 {pa:#x}"
        if self._fails("mmio_read32", (pa,)):
            raise self._fail("mmio_read32", head, self._owner(pa))
        t = self._mmio_target("mmio_read32", pa)
        value = t[0].mmio_read(t[1], t[2]) if t is not None else 0xFFFFFFFF
        self._record("mmio_read32", f"{head} -> {value:#x}", self._owner(pa))
        return value

    def mmio_write32(self, pa: int, val: int) -> None:
        head = f"mmio_write32 {pa:#x} {val & 0xFFFFFFFF:#x}"
        if self._fails("mmio_write32", (pa, val)):
            raise self._fail("mmio_write32", head, self._owner(pa))
        self._record("mmio_write32", head, self._owner(pa))
        if not 0 <= val <= 0xFFFFFFFF:
            self.checker.bad_access(f"{pa:#x}", f"mmio_write32 value {val:#x} is not a uint32")
        t = self._mmio_target("mmio_write32", pa)
        if t is not None:
            dev, bar, off = t
            self.checker.mmio_write(dev, bar, off, val, lambda: dev.mmio_write(bar, off, val))

    # ------------------------------------------------------------ misc hooks

    def delay_us(self, us: int) -> None:
        self._record("delay_us", f"delay_us {us}")
        self.delayed_us += us

    def log(self, level: int, msg: str) -> None:
        self._record("log", f"log {level} {quote(msg)}")
        self.logs.append((level, msg))

    # ------------------------------------------------------------ PAPR

    def _papr_any(self, buid: int, config_addr: int) -> Device | None:
        for hb in self.host_bridges:
            if hb.kind == "papr" and hb.buid == buid:
                dev = self.devices.get((hb.segment, (config_addr >> 16) & 0xFF, (config_addr >> 8) & 0xFF))
                if dev is not None and self._host[dev.bdf] is hb:
                    return dev
        return None

    def _papr_device(self, buid: int, config_addr: int) -> Device | None:
        """The hypervisor's view: functions outside the partition are not there."""
        dev = self._papr_any(buid, config_addr)
        return dev if dev is not None and self.in_partition(dev.bdf) else None

    def rtas_call(self, token: int, nargs: int, nret: int, args: Sequence[int]) -> list[int]:
        cells = [cell(a) for a in args]
        head = f"rtas {token:#x} {nargs} {nret} [{' '.join(f'{a:#x}' for a in cells)}]"
        target = self._papr_any((cells[1] << 32) | cells[2], cells[0]) if len(cells) >= 3 else None
        bdf = target.bdf if target is not None else None
        if self._fails("rtas_call", (token, nargs, nret, *cells)):
            raise self._fail("rtas_call", head, bdf)
        if len(cells) != nargs:
            self.checker.bad_access(f"rtas {token:#x}", f"nargs {nargs} but {len(cells)} arguments")
        o = self.options
        if token == o.rtas_change_msi:
            if len(cells) != 6 or nret not in (3, 4):
                self.checker.bad_access(f"rtas {token:#x}", f"ibm,change-msi with {len(cells)} args, nret {nret}")
            if target is not None and not self.in_partition(target.bdf):
                self.checker.outside("ibm,change-msi", target.bdf)
            rets = self.papr.change_msi(cells, nret)
            if target is not None and self.in_partition(target.bdf):
                self.checker.change_msi(target, (cells + [0] * 6)[:6], rets)
        elif token == o.rtas_query_irq:
            if len(cells) != 4 or nret != 3:
                self.checker.bad_access(
                    f"rtas {token:#x}", f"query-interrupt-source-number with {len(cells)} args, nret {nret}"
                )
            if target is not None and not self.in_partition(target.bdf):
                self.checker.outside("ibm,query-interrupt-source-number", target.bdf)
            rets = self.papr.query(cells, nret)
            if target is not None and self.in_partition(target.bdf):
                self.checker.query(target, (cells + [0] * 4)[:4], rets)
        else:
            self.checker.bad_access(f"rtas {token:#x}", "unknown RTAS token")
            rets = ([cell(RTAS_OUT_PARAM_ERROR)] + [0] * nret)[:nret]
        self._record("rtas_call", f"{head} -> [{' '.join(f'{r:#x}' for r in rets)}]", bdf)
        return rets

    # ------------------------------------------------------------ OPAL

    def opal_set_xive_pe(self, phb_id: int, pe: int, xive: int) -> int:
        head = f"opal_set_xive_pe {phb_id:#x} {pe:#x} {xive:#x}"
        status = self.opal.set_xive_pe(phb_id, pe, xive)
        self._record("opal_set_xive_pe", f"{head} -> {status:#x}")
        return status

    def opal_get_msi(self, phb_id: int, mve: int, xive: int, is64: int) -> tuple[int, int, int]:
        head = f"opal_get_msi {phb_id:#x} {mve:#x} {xive:#x} {int(is64)}"
        status, address, data = self.opal.get_msi(phb_id, mve, xive, bool(is64))
        self._record("opal_get_msi", f"{head} -> {status:#x} {address:#x} {data:#x}")
        return status, address, data
