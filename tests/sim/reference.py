"""Linux's MSI/MSI-X register order (dtmsi/stubs/CONTRACT.md "Sequences"),
written against the simulator's hooks.

A test fixture, not the generated stub: it shows that a correct sequence
leaves no violation and the state allocation.json describes, and gives the
invariant tests a known-good baseline to break one step of.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dtmsi.sim import Bdf, Simulator, parse_bdf
from dtmsi.sim.papr import int32, is_busy

CMD_MEMORY, CMD_MASTER, CMD_INTX_DISABLE = 0x2, 0x4, 0x400


class Reference:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    # ------------------------------------------------------------ config helpers

    def rd(self, bdf: Bdf, off: int, width: int) -> int:
        return self.sim.cfg_read(*bdf, off, width)

    def wr(self, bdf: Bdf, off: int, width: int, val: int) -> None:
        self.sim.cfg_write(*bdf, off, width, val)

    def rmw(self, bdf: Bdf, off: int, set_bits: int = 0, clear_bits: int = 0) -> None:
        v = self.rd(bdf, off, 2)
        self.wr(bdf, off, 2, (v & ~clear_bits | set_bits) & 0xFFFF)

    def command_set(self, bdf: Bdf, bit: int) -> None:
        v = self.rd(bdf, 0x04, 2)
        if not v & bit:
            self.wr(bdf, 0x04, 2, v | bit)

    def find_cap(self, bdf: Bdf, cap_id: int) -> int | None:
        if not self.rd(bdf, 0x06, 2) & 0x10:
            return None
        pos = self.rd(bdf, 0x34, 1) & 0xFC
        for _ in range(48):
            if pos == 0:
                return None
            cid = self.rd(bdf, pos, 1)
            if cid == 0xFF:
                return None
            if cid == cap_id:
                return pos
            pos = self.rd(bdf, pos + 1, 1) & 0xFC
        return None

    def table_address(self, bdf: Bdf, cap: int) -> int:
        tbl = self.rd(bdf, cap + 4, 4)
        bir, offset = tbl & 7, tbl & ~7
        dev = self.sim.device(bdf)
        if dev.fn.is_vf:
            bar = dev.fn.bar(bir)
            assert bar is not None and bar.address is not None
            pci = bar.address
        else:
            lo = self.rd(bdf, 0x10 + 4 * bir, 4)
            pci = lo & ~0xF
            if lo & 0x6 == 0x4:
                pci |= self.rd(bdf, 0x14 + 4 * bir, 4) << 32
        cpu = self.sim.host_of(dev).cpu_address(pci, 16)
        assert cpu is not None
        return cpu + offset

    def intx_disable(self, bdf: Bdf) -> None:
        if "no-intx-disable" not in self.sim.device(bdf).fn.quirks:
            self.command_set(bdf, CMD_INTX_DISABLE)

    # ------------------------------------------------------------ native / OPAL

    def check(self, bdf: Bdf) -> None:
        self.rd(bdf, 0x00, 4)
        self.find_cap(bdf, 0x05)
        self.find_cap(bdf, 0x11)

    def msix_native(self, bdf: Bdf, msgs: list[tuple[int, int]]) -> None:
        cap = self.find_cap(bdf, 0x11)
        assert cap is not None
        tsize = (self.rd(bdf, cap + 2, 2) & 0x7FF) + 1
        table = self.table_address(bdf, cap)
        self.command_set(bdf, CMD_MEMORY)
        self.rmw(bdf, cap + 2, set_bits=0xC000)
        for i, (addr, data) in enumerate(msgs):
            base = table + 16 * i
            vc = self.sim.mmio_read32(base + 12)
            if not vc & 1:
                self.sim.mmio_write32(base + 12, vc | 1)
            self.sim.mmio_write32(base, addr & 0xFFFFFFFF)
            self.sim.mmio_write32(base + 4, addr >> 32)
            self.sim.mmio_write32(base + 8, data)
            if not vc & 1:
                self.sim.mmio_write32(base + 12, vc)
            self.sim.mmio_read32(base + 8)
        self.intx_disable(bdf)
        for i in range(tsize):
            self.sim.mmio_write32(table + 16 * i + 12, 1)
        self.command_set(bdf, CMD_MASTER)
        self.rmw(bdf, cap + 2, clear_bits=0x4000)
        for i in range(len(msgs)):
            self.sim.mmio_write32(table + 16 * i + 12, 0)

    def msi_native(self, bdf: Bdf, hw_vectors: int, granted: int, addr: int, data: int) -> None:
        cap = self.find_cap(bdf, 0x05)
        assert cap is not None
        ctrl = self.rd(bdf, cap + 2, 2)
        mmc, is64, maskable = (ctrl >> 1) & 7, bool(ctrl & 0x80), bool(ctrl & 0x100)
        self.rmw(bdf, cap + 2, clear_bits=0x1)
        mask_off = cap + (0x10 if is64 else 0x0C)
        if maskable:
            self.wr(bdf, mask_off, 4, (1 << (1 << mmc)) - 1 if mmc < 5 else 0xFFFFFFFF)
        self.rmw(bdf, cap + 2, set_bits=(hw_vectors - 1).bit_length() << 4, clear_bits=0x70)
        self.wr(bdf, cap + 4, 4, addr & 0xFFFFFFFF)
        if is64:
            self.wr(bdf, cap + 8, 4, addr >> 32)
            self.wr(bdf, cap + 0x0C, 2, data)
        else:
            self.wr(bdf, cap + 0x08, 2, data)
        self.rd(bdf, cap + 2, 2)
        self.intx_disable(bdf)
        self.command_set(bdf, CMD_MASTER)
        self.rmw(bdf, cap + 2, set_bits=0x1)
        if maskable:
            mask = self.rd(bdf, mask_off, 4)
            self.wr(bdf, mask_off, 4, mask & ~((1 << granted) - 1))

    def intx(self, bdf: Bdf) -> None:
        for cap_id in (0x05, 0x11):
            cap = self.find_cap(bdf, cap_id)
            if cap is not None:
                ctrl = self.rd(bdf, cap + 2, 2)
                enable = 0x1 if cap_id == 0x05 else 0x8000
                if ctrl & enable:
                    self.wr(bdf, cap + 2, 2, ctrl & ~enable)
        cmd = self.rd(bdf, 0x04, 2)
        if cmd & CMD_INTX_DISABLE:
            self.wr(bdf, 0x04, 2, cmd & ~CMD_INTX_DISABLE)

    def opal_messages(self, bdf: Bdf, xives: list[int], is64: bool, msi: bool) -> list[tuple[int, int]]:
        hb = self.sim.host_of(self.sim.device(bdf))
        pe = bdf[1]
        out: list[tuple[int, int]] = []
        if msi:
            for x in xives:
                assert self.sim.opal_set_xive_pe(hb.opal_phb_id, pe, x) == 0
            status, addr, data = self.sim.opal_get_msi(hb.opal_phb_id, pe, xives[0], int(is64))
            assert status == 0
            return [(addr, data)]
        for x in xives:
            assert self.sim.opal_set_xive_pe(hb.opal_phb_id, pe, x) == 0
            status, addr, data = self.sim.opal_get_msi(hb.opal_phb_id, pe, x, int(is64))
            assert status == 0
            out.append((addr, data))
        return out

    # ------------------------------------------------------------ PAPR

    def rtas(self, token: int, args: list[int], nret: int) -> list[int]:
        seq_at = 5 if len(args) == 6 else None
        for _ in range(64):
            rets = list(self.sim.rtas_call(token, len(args), nret, args))
            status = int32(rets[0])
            if not is_busy(status):
                return rets
            if status >= 9900:
                self.sim.delay_us(1000 * min(1000, max(1, 10 ** (status - 9900))))
            if seq_at is not None:
                args[seq_at] = rets[2]
        raise AssertionError("busy for ever")

    def papr(self, bdf: Bdf, mech: str, count: int, used: int | None = None) -> list[int]:
        """ask ``count`` (the whole grant, up front), use ``used`` of them (Linux:
        the driver's vectors; a rounded-up MSI-X grant leaves the rest masked)."""
        used = count if used is None else used
        dev = self.sim.device(bdf)
        hb = self.sim.host_of(dev)
        o = self.sim.options
        ca = (bdf[1] << 16) | (bdf[2] << 8)
        buid = [hb.buid >> 32, hb.buid & 0xFFFFFFFF]
        table = 0
        if mech == "msix":
            cap = self.find_cap(bdf, 0x11)
            assert cap is not None
            table = self.table_address(bdf, cap)
            self.command_set(bdf, CMD_MEMORY)
            self.rmw(bdf, cap + 2, set_bits=0xC000)
            for i in range(used):
                self.sim.mmio_read32(table + 16 * i + 12)
        else:
            cap = self.find_cap(bdf, 0x05)
            assert cap is not None
            ctrl = self.rd(bdf, cap + 2, 2)
            self.rmw(bdf, cap + 2, clear_bits=0x1)
            if ctrl & 0x100:
                mmc = (ctrl >> 1) & 7
                self.wr(bdf, cap + (0x10 if ctrl & 0x80 else 0x0C), 4, (1 << (1 << mmc)) - 1 if mmc < 5 else 0xFFFFFFFF)
        rets = self.rtas(o.rtas_change_msi, [ca, *buid, 4 if mech == "msix" else 3, count, 1], 4)
        assert int32(rets[0]) == 0 and rets[1] == count, rets
        irqs = []
        for i in range(used):
            q = self.rtas(o.rtas_query_irq, [ca, *buid, i], 3)
            assert int32(q[0]) == 0
            irqs.append(q[1])
        self.intx_disable(bdf)
        if mech == "msix":
            tsize = (self.rd(bdf, cap + 2, 2) & 0x7FF) + 1
            for i in range(tsize):
                self.sim.mmio_write32(table + 16 * i + 12, 1)
            self.command_set(bdf, CMD_MASTER)
            self.rmw(bdf, cap + 2, clear_bits=0x4000)
            for i in range(used):
                self.sim.mmio_write32(table + 16 * i + 12, 0)
        else:
            self.command_set(bdf, CMD_MASTER)
            self.rmw(bdf, cap + 2, set_bits=0x1)
            ctrl = self.rd(bdf, cap + 2, 2)
            if ctrl & 0x100:
                off = cap + (0x10 if ctrl & 0x80 else 0x0C)
                self.wr(bdf, off, 4, self.rd(bdf, off, 4) & ~((1 << used) - 1))
        return irqs

    # ------------------------------------------------------------ one allocation.json entry

    def setup(self, entry: Mapping[str, Any]) -> None:
        bdf = parse_bdf(entry["bdf"])
        mech = entry["mechanism"]
        if mech == "none":
            return
        dev = self.sim.device(bdf)
        mode = self.sim.mode_of(dev)
        self.check(bdf)
        if mech == "intx":
            self.intx(bdf)
            return
        hw, granted = int(entry["hardware_vectors"]), int(entry["vectors_granted"])
        if mode == "papr":
            self.papr(bdf, mech, hw, granted)
            return
        vectors: list[tuple[int, int, int]] = []  # (address, data, hwirq)
        for m in entry["messages"]:
            for i in range(m.get("count", 1)):
                vectors.append((m.get("address", 0), m.get("data", 0) + i, m.get("hwirq", 0) + i))
        no64 = "no-64bit-msi" in dev.fn.quirks
        if mech == "msix":
            if mode == "opal":
                base = self.sim.host_of(dev).msi_base
                msgs = self.opal_messages(bdf, [v[2] - base for v in vectors], not no64, msi=False)
            else:
                msgs = [(a, d) for a, d, _ in vectors]
            self.msix_native(bdf, msgs)
            return
        assert dev.fn.msi is not None
        if mode == "opal":
            base = self.sim.host_of(dev).msi_base
            first = vectors[0][2] - base
            addr, data = self.opal_messages(
                bdf, list(range(first, first + hw)), dev.fn.msi.is64 and not no64, msi=True
            )[0]
        else:
            addr, data = vectors[0][0], vectors[0][1]
        self.msi_native(bdf, hw, granted, addr, data)

    def setup_all(self, allocation: Mapping[str, Any], partition: str | None = None) -> None:
        for entry in allocation["functions"]:
            if partition is None or entry.get("partition") == partition:
                self.setup(entry)
