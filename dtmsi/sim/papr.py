"""The PAPR hypervisor's MSI services, as QEMU's pseries machine answers them.

Transcribed from ``qemu/qemu hw/ppc/spapr_pci.c`` (``rtas_ibm_change_msi``,
``rtas_ibm_query_interrupt_source_number``, ``spapr_msi_setmsg``) and
``hw/ppc/spapr_irq.c`` (``spapr_irq_msi_alloc``); stubs.md 2.2 lists the
rules. ``ibm,change-msi`` (args: config_addr, BUID hi, BUID lo, function,
count, sequence number):

1. unknown PHB (BUID) or device (bus/devfn of config_addr) -> -3;
2. function 1 picks MSI if the device has it, else MSI-X, else -3; 3 needs
   MSI, 4 needs MSI-X (else -3); 0, 2, 5, 6 -> -3 ("not implemented");
3. count 0 releases: nothing granted -> -1; else the sources are freed and
   the MSI message zeroed (QEMU's loop over MSI-X entries runs 0 times on a
   release, so MSI-X entries keep their messages) -> 0, ret[1] = 0;
4. the maximum is ``1 << MME`` for MSI - MME as it is in config space now,
   which nobody writes under PAPR, so effectively 1 (QEMU's quirk) - and the
   table size for MSI-X; count > maximum -> status 0, ret[1] = maximum,
   nothing allocated, the previous grant kept;
5. the sources come from a bitmap of ``source_count`` numbers from
   ``source_base`` (0x1300, 0xd00 of them): first fit, and QEMU's
   ``align -= 1`` on a bool makes MSI blocks unaligned and MSI-X blocks
   2-aligned; no room -> -1;
6. a previous grant of the function is freed (a re-request needs no release);
7. the hypervisor writes the messages itself: address 0x40000000000 (the
   whole quad on a 64-bit MSI capability, its low 32 bits, i.e. 0, on a
   32-bit one), data = the first source (MSI) or first + i in MSI-X entry i,
   which ``msix_set_message`` also unmasks;
8. -> 0, count, seq + 1, and the type (1 MSI, 2 MSI-X) when nret > 3.

``ibm,query-interrupt-source-number`` (config_addr, BUID hi, BUID lo, index):
unknown -> -3; no grant or index >= count -> -1; else 0, first + index, 1.

Cells are uint32: statuses are int32 values stored in uint32 cells, and the
answers here are lists of uint32 cells, ``nret`` long (cells QEMU leaves
unwritten read 0).

``powervm=True`` applies PowerVM's stricter rules instead: counts must be
powers of two (``non_pow2="refuse"``: status -3, what Linux's comment in
rtas_prepare_msi_irqs expects; ``"clamp"``: a QEMU-style answer, status 0
with ret[1] = the largest power of two below the count, nothing allocated;
``"allow"``: any count, the hypervisor dtmsi's PAPR prediction assumes);
functions 5 and 6 (32-bit MSI / MSI-X) are implemented
and write ``msi_window32``; the MSI maximum is ``1 << MMC``, and the
hypervisor also sets MME for the grant and aligns MSI blocks to their size.

Injection (tests): ``inject_busy`` (the next calls answer -2 or 9900..9905
before the real answer, ret[2] = seq + 1), ``inject_short`` (cap a
function's grant at k: status 0, ret[1] = k, nothing allocated),
``inject_error`` (a status for a function and/or function code).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from dtmsi.sim.device import Bdf, Device

RTAS_OUT_SUCCESS = 0
RTAS_OUT_HW_ERROR = -1
RTAS_OUT_BUSY = -2
RTAS_OUT_PARAM_ERROR = -3

RTAS_QUERY_FN = 0
RTAS_CHANGE_FN = 1
RTAS_RESET_FN = 2
RTAS_CHANGE_MSI_FN = 3
RTAS_CHANGE_MSIX_FN = 4
RTAS_CHANGE_32MSI_FN = 5
RTAS_CHANGE_32MSIX_FN = 6

RTAS_TYPE_MSI = 1
RTAS_TYPE_MSIX = 2

SPAPR_PCI_MSI_WINDOW = 0x40000000000
SPAPR_IRQ_MSI = 0x1300  # first source of the MSI bitmap (SPAPR_XIRQ_BASE + 0x300)
SPAPR_NR_MSIS = 0xD00  # SPAPR_XIRQ_BASE + SPAPR_NR_XIRQS - SPAPR_IRQ_MSI

BUSY_STATUSES = (-2, 9900, 9901, 9902, 9903, 9904, 9905)

Service = Literal["change-msi", "query"]


def cell(value: int) -> int:
    """An int32 (or any int) as the uint32 cell RTAS carries."""
    return value & 0xFFFFFFFF


def int32(value: int) -> int:
    """A uint32 cell read as the int32 status it holds."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def is_busy(status: int) -> bool:
    return status == RTAS_OUT_BUSY or 9900 <= status <= 9905


@dataclass(slots=True)
class Grant:
    """Sources the hypervisor gave a function, and the message it wrote."""

    first: int
    num: int
    kind: Literal["msi", "msix"]
    address: int  # the address the hypervisor wrote
    function: int  # the ibm,change-msi function code that asked


@dataclass(slots=True)
class _Busy:
    statuses: list[int]
    bdf: Bdf | None
    service: Service | None


@dataclass(slots=True)
class _Error:
    status: int
    bdf: Bdf | None
    function: int | None
    count: int | None  # remaining answers; None = every matching call


@dataclass(slots=True)
class Request:
    """One ibm,change-msi or query as the hypervisor saw it (for tests and checks)."""

    service: Service
    bdf: Bdf | None
    args: tuple[int, ...]
    rets: tuple[int, ...]


@dataclass(slots=True)
class PaprHypervisor:
    """QEMU's (or, with ``powervm``, PowerVM's) ibm,change-msi and
    ibm,query-interrupt-source-number over the simulator's devices."""

    find: Callable[[int, int], Device | None]  # (BUID, config_addr) -> device on that PHB
    powervm: bool = False
    non_pow2: Literal["refuse", "clamp", "allow"] = "refuse"
    source_base: int = SPAPR_IRQ_MSI
    source_count: int = SPAPR_NR_MSIS
    msi_window: int = SPAPR_PCI_MSI_WINDOW
    msi_window32: int = 0xFFFF0000
    grants: dict[Bdf, Grant] = field(init=False, default_factory=dict)
    requests: list[Request] = field(init=False, default_factory=list)
    _bitmap: bytearray = field(init=False, default_factory=bytearray)
    _busy: list[_Busy] = field(init=False, default_factory=list)
    _short: dict[tuple[Bdf, str | None], int] = field(init=False, default_factory=dict)
    _errors: list[_Error] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self._bitmap = bytearray(self.source_count)

    # ------------------------------------------------------------ injection

    def inject_busy(self, statuses: Sequence[int], *, bdf: Bdf | None = None, service: Service | None = None) -> None:
        """The next matching calls answer these statuses (-2, 9900..9905), one
        each, before the call is really made."""
        bad = [s for s in statuses if not is_busy(s)]
        if bad:
            raise ValueError(f"not busy statuses: {bad}")
        self._busy.append(_Busy(list(statuses), bdf, service))

    def inject_short(self, bdf: Bdf, k: int, kind: Literal["msi", "msix"] | None = None) -> None:
        """Cap the function's grant at ``k`` (of MSI or MSI-X only, with
        ``kind``): a request for more is answered as QEMU answers one above
        the maximum (status 0, ret[1] = k)."""
        self._short[(bdf, kind)] = k

    def inject_error(
        self,
        status: int = RTAS_OUT_HW_ERROR,
        *,
        bdf: Bdf | None = None,
        function: int | None = None,
        count: int | None = None,
    ) -> None:
        """Answer ``status`` to matching ibm,change-msi calls (``count`` times, or always)."""
        self._errors.append(_Error(status, bdf, function, count))

    # ------------------------------------------------------------ sources

    def _alloc(self, num: int, align_mask: int) -> int | None:
        """bitmap_find_next_zero_area: first ``num`` free bits at an index with ``index & align_mask == 0``."""
        size = len(self._bitmap)
        start = 0
        while True:
            index = self._bitmap.find(0, start)
            if index < 0:
                return None
            index = (index + align_mask) & ~align_mask
            end = index + num
            if end > size:
                return None
            busy = self._bitmap.find(1, index, end)
            if busy < 0:
                self._bitmap[index:end] = b"\1" * num
                return index + self.source_base
            start = busy + 1

    def _free(self, first: int, num: int) -> None:
        i = first - self.source_base
        self._bitmap[i : i + num] = bytes(num)

    def grant_of(self, bdf: Bdf) -> Grant | None:
        return self.grants.get(bdf)

    # ------------------------------------------------------------ the services

    def _take_busy(self, service: Service, bdf: Bdf | None) -> int | None:
        for b in self._busy:
            if b.statuses and (b.service is None or b.service == service) and (b.bdf is None or b.bdf == bdf):
                status = b.statuses.pop(0)
                if not b.statuses:
                    self._busy.remove(b)
                return status
        return None

    def _take_error(self, bdf: Bdf | None, function: int) -> int | None:
        for e in self._errors:
            if (e.bdf is None or e.bdf == bdf) and (e.function is None or e.function == function):
                if e.count is not None:
                    e.count -= 1
                    if e.count <= 0:
                        self._errors.remove(e)
                return e.status
        return None

    def change_msi(self, args: Sequence[int], nret: int) -> list[int]:
        a = [cell(x) for x in args] + [0] * max(0, 6 - len(args))
        config_addr, buid, func, req_num, seq_num = a[0], (a[1] << 32) | a[2], a[3], a[4], a[5]
        dev = self.find(buid, config_addr)
        bdf = dev.bdf if dev is not None else None
        rets = self._change_msi(dev, func, req_num, seq_num)
        out = [cell(x) for x in rets][:nret] + [0] * max(0, nret - len(rets))
        self.requests.append(Request("change-msi", bdf, tuple(a[:6]), tuple(out)))
        return out

    def _change_msi(self, dev: Device | None, func: int, req_num: int, seq_num: int) -> list[int]:
        busy = self._take_busy("change-msi", dev.bdf if dev is not None else None)
        if busy is not None:
            return [busy, 0, seq_num + 1, 0]
        if dev is None:
            return [RTAS_OUT_PARAM_ERROR]
        error = self._take_error(dev.bdf, func)
        if error is not None:
            return [error]
        has_msi, has_msix = dev.fn.msi is not None, dev.fn.msix is not None
        kind: Literal["msi", "msix"]
        if func == RTAS_CHANGE_FN and (has_msi or has_msix):
            kind = "msi" if has_msi else "msix"
        elif func == RTAS_CHANGE_MSI_FN and has_msi:
            kind = "msi"
        elif func == RTAS_CHANGE_MSIX_FN and has_msix:
            kind = "msix"
        elif self.powervm and func == RTAS_CHANGE_32MSI_FN and has_msi:
            kind = "msi"
        elif self.powervm and func == RTAS_CHANGE_32MSIX_FN and has_msix:
            kind = "msix"
        else:
            return [RTAS_OUT_PARAM_ERROR]
        rtype = RTAS_TYPE_MSI if kind == "msi" else RTAS_TYPE_MSIX
        old = self.grants.get(dev.bdf)
        if req_num == 0:
            if old is None:
                return [RTAS_OUT_HW_ERROR]
            self._free(old.first, old.num)
            if has_msi:
                dev.set_msi_message(0, 0)
                if self.powervm:
                    dev.set_msi_mme(0)
            del self.grants[dev.bdf]
            return [RTAS_OUT_SUCCESS, 0]
        if kind == "msi":
            assert dev.fn.msi is not None
            max_irqs = 1 << (dev.fn.msi.mmc if self.powervm else dev.msi_mme)
        else:
            assert dev.fn.msix is not None
            max_irqs = dev.fn.msix.table_size
        if self.powervm and req_num & (req_num - 1) and self.non_pow2 != "allow":
            if self.non_pow2 == "refuse":
                return [RTAS_OUT_PARAM_ERROR]
            max_irqs = min(max_irqs, 1 << (req_num.bit_length() - 1))
        for key in ((dev.bdf, None), (dev.bdf, kind)):
            cap = self._short.get(key)
            if cap is not None:
                max_irqs = min(max_irqs, cap)
        if req_num > max_irqs:
            return [RTAS_OUT_SUCCESS, max_irqs, seq_num + 1, rtype]
        # QEMU: `align -= 1` on a bool: MSI unaligned, MSI-X 2-aligned; PowerVM: an
        # MSI block aligned to its size (the device ORs the vector into the data)
        align_mask = 1 if kind == "msix" else req_num - 1 if self.powervm else 0
        first = self._alloc(req_num, align_mask)
        if first is None:
            return [RTAS_OUT_HW_ERROR]
        if old is not None:
            self._free(old.first, old.num)
        narrow = func in (RTAS_CHANGE_32MSI_FN, RTAS_CHANGE_32MSIX_FN)
        address = self.msi_window32 if narrow else self.msi_window
        if kind == "msi":
            dev.set_msi_message(address, first)
            if self.powervm:
                dev.set_msi_mme((req_num - 1).bit_length())
        else:
            for i in range(req_num):
                dev.set_msix_message(i, address, first + i)
        self.grants[dev.bdf] = Grant(first, req_num, kind, address, func)
        return [RTAS_OUT_SUCCESS, req_num, seq_num + 1, rtype]

    def query(self, args: Sequence[int], nret: int) -> list[int]:
        a = [cell(x) for x in args] + [0] * max(0, 4 - len(args))
        config_addr, buid, index = a[0], (a[1] << 32) | a[2], a[3]
        dev = self.find(buid, config_addr)
        bdf = dev.bdf if dev is not None else None
        rets = self._query(dev, index)
        out = [cell(x) for x in rets][:nret] + [0] * max(0, nret - len(rets))
        self.requests.append(Request("query", bdf, tuple(a[:4]), tuple(out)))
        return out

    def _query(self, dev: Device | None, index: int) -> list[int]:
        busy = self._take_busy("query", dev.bdf if dev is not None else None)
        if busy is not None:
            return [busy, 0, 0]
        if dev is None:
            return [RTAS_OUT_PARAM_ERROR]
        g = self.grants.get(dev.bdf)
        if g is None or not g.first or not g.num or index >= g.num:
            return [RTAS_OUT_HW_ERROR]
        return [RTAS_OUT_SUCCESS, g.first + index, 1]
