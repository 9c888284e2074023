"""What a correct stub never does, checked while the hooks run, and the state
it must leave behind.

``Checker`` sees every access before and after it takes effect (the
simulator calls it) and reports each broken rule once per occurrence, as a
line ``"<rule>: <function or address>: <what happened>"``. Rules:

``msix-write-unmasked``
    (a) an MSI-X entry's address or data word written while the entry's
    mask bit is clear (PCIe: "undefined"; Linux masks the entry first).
``enable-before-message``
    (b) a function became able to deliver while a vector it can send has no
    message: MSI Enable set with a zero address (native/OPAL) or with no data
    written since Enable was last cleared (native/OPAL), or with no MSI grant
    (PAPR); MSI-X Enable set with Function Mask clear, or an entry unmasked
    while it is, with an unmasked entry whose address is zero (every mode) or,
    under PAPR, outside the hypervisor's grant.
``outside-partition``
    (c) a config access, MMIO access or RTAS call naming a function that is
    not in the partition (or not there at all, when a partition is given).
``papr-message-write``
    (d) under PAPR, a stub write to the MSI address or data registers, a
    change of MME, or a write to an MSI-X entry's address/data words.
``papr-request``
    (d) under PAPR, an ibm,change-msi for a function that already holds a full
    grant it has not queried yet (a second request before its queries), or a
    call after a busy answer that is not the same request with ret[2] fed
    back as the sequence number.
``papr-query``
    (d) an ibm,query-interrupt-source-number for a function whose last
    request did not return status 0 with ret[1] == the count asked, or an
    index at or beyond that count.
``mme-over-mmc``
    (e) a Message Control write with MME > MMC.
``mmio-unmapped``
    (f) MMIO to an address no BAR decodes (none there, or Memory Space off).
``pba-write``
    a write to the MSI-X Pending Bit Array (read-only; stubs never touch it).
``both-enabled``
    MSI and MSI-X Enable set at once.
``bad-access``
    a config access of width other than 1, 2, 4 or not naturally aligned, a
    misaligned MMIO access, an RTAS call with a wrong argument count or an
    unknown token.
``opal-xive-pe``
    ``opal_get_msi`` for an IVE not given to that PE first (opal.py).

``check_final_state`` compares the functions' live state with allocation.json.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from dtmsi.sim.device import (
    MSIX_ENTRY_SIZE,
    MSIX_ENTRY_VECTOR_CTRL,
    QUIRK_NO_INTX_DISABLE,
    Bdf,
    Device,
    format_bdf,
    parse_bdf,
)
from dtmsi.sim.opal import compose_msi
from dtmsi.sim.papr import Grant, int32, is_busy

if TYPE_CHECKING:
    from dtmsi.sim.machine import Simulator

Mode = Literal["native", "papr", "opal"]


@dataclass(slots=True)
class _Track:
    msi_data_fresh: bool = False  # MSI data written since Enable was last cleared
    busy: tuple[int, int, int] | None = None  # (function, count, seq to feed back) after a busy answer
    full_grant: int | None = None  # count of the last request answered in full
    queried: bool = False  # queries made since that grant


def _overlaps(off: int, width: int, start: int, size: int) -> bool:
    return off < start + size and start < off + width


def _byte_of(value: int, off: int, at: int) -> int:
    return (value >> (8 * (at - off))) & 0xFF


class Checker:
    """The live invariants; ``report`` receives each violation line."""

    def __init__(
        self,
        report: Callable[[str], None],
        mode_of: Callable[[Device], Mode],
        grant_of: Callable[[Bdf], Grant | None],
    ) -> None:
        self.report = report
        self.mode_of = mode_of
        self.grant_of = grant_of
        self.tracks: dict[Bdf, _Track] = {}

    def _track(self, dev: Device) -> _Track:
        return self.tracks.setdefault(dev.bdf, _Track())

    def _say(self, rule: str, where: str, what: str) -> None:
        self.report(f"{rule}: {where}: {what}")

    def reset(self, dev: Device) -> None:
        t = self._track(dev)
        t.msi_data_fresh = False

    # ------------------------------------------------------------ (c), (f), access shape

    def outside(self, hook: str, bdf: Bdf) -> None:
        self._say("outside-partition", format_bdf(bdf), f"{hook} of a function outside the partition")

    def bad_access(self, where: str, what: str) -> None:
        self._say("bad-access", where, what)

    def unmapped(self, hook: str, pa: int, why: str) -> None:
        self._say("mmio-unmapped", f"{pa:#x}", f"{hook}: {why}")

    # ------------------------------------------------------------ config writes

    def cfg_write(self, dev: Device, off: int, width: int, value: int, apply: Callable[[], None]) -> None:
        mode = self.mode_of(dev)
        msi = dev.fn.msi
        if msi is not None and dev.msi_cap is not None:
            ctrl = dev.msi_cap + 2
            if off <= ctrl < off + width:
                mme = (_byte_of(value, off, ctrl) >> 4) & 7
                if mme > msi.mmc:
                    self._say("mme-over-mmc", dev.label, f"MSI Message Control written with MME {mme} > MMC {msi.mmc}")
                if mode == "papr" and mme != dev.msi_mme:
                    self._say("papr-message-write", dev.label, f"MME changed from {dev.msi_mme} to {mme} under PAPR")
            regs = dev.msi_registers()
            if mode == "papr":
                for name in ("address", "address_hi", "data"):
                    if name in regs and _overlaps(off, width, *regs[name]):
                        self._say("papr-message-write", dev.label, f"MSI {name.replace('_', ' ')} written under PAPR")
            if _overlaps(off, width, *regs["data"]):
                self._track(dev).msi_data_fresh = True
        before_msi = dev.msi_enabled
        before_msix = dev.msix_enabled and not dev.msix_function_mask
        before_both = dev.msi_enabled and dev.msix_enabled
        apply()
        after_msi = dev.msi_enabled
        after_msix = dev.msix_enabled and not dev.msix_function_mask
        if before_msi and not after_msi:
            self._track(dev).msi_data_fresh = False
        if after_msi and not before_msi:
            self._msi_enabled(dev, mode)
        if after_msix and not before_msix:
            self._msix_deliverable(dev, mode)
        if dev.msi_enabled and dev.msix_enabled and not before_both:
            self._say("both-enabled", dev.label, "MSI and MSI-X Enable are both set")

    def _msi_enabled(self, dev: Device, mode: Mode) -> None:
        if mode == "papr":
            g = self.grant_of(dev.bdf)
            if g is None or g.kind != "msi":
                self._say("enable-before-message", dev.label, "MSI enabled without an MSI grant from ibm,change-msi")
            return
        if dev.msi_address() == 0:
            self._say("enable-before-message", dev.label, "MSI enabled with a zero message address")
        if not self._track(dev).msi_data_fresh:
            self._say("enable-before-message", dev.label, "MSI enabled before its message data was written")

    def _msix_deliverable(self, dev: Device, mode: Mode) -> None:
        msix = dev.fn.msix
        assert msix is not None
        for i in range(msix.table_size):
            e = dev.msix_entry(i)
            if not e.masked:
                self._msix_entry_live(dev, mode, i, "MSI-X enabled and unmasked")

    def _msix_entry_live(self, dev: Device, mode: Mode, i: int, how: str) -> None:
        e = dev.msix_entry(i)
        if e.address == 0:
            self._say("enable-before-message", dev.label, f"{how} with entry {i} unmasked and no message")
        elif mode == "papr":
            g = self.grant_of(dev.bdf)
            if g is None or g.kind != "msix" or i >= g.num:
                self._say("enable-before-message", dev.label, f"{how} with entry {i} unmasked outside the grant")

    # ------------------------------------------------------------ MMIO writes

    def mmio_write(self, dev: Device, bar: int, offset: int, value: int, apply: Callable[[], None]) -> None:
        mode = self.mode_of(dev)
        t = dev.in_table(bar, offset)
        if dev.in_pba(bar, offset) is not None:
            self._say("pba-write", dev.label, f"write {value:#x} to the PBA at BAR {bar} + {offset:#x}")
        if t is None:
            apply()
            return
        entry, word = divmod(t, MSIX_ENTRY_SIZE)
        before = dev.msix_entry(entry)
        if word != MSIX_ENTRY_VECTOR_CTRL:
            what = ("address lo", "address hi", "data")[word // 4]
            if mode == "papr":
                self._say("papr-message-write", dev.label, f"MSI-X entry {entry} {what} written under PAPR")
            if not before.masked:
                self._say("msix-write-unmasked", dev.label, f"MSI-X entry {entry} {what} written while unmasked")
        apply()
        after = dev.msix_entry(entry)
        if before.masked and not after.masked and dev.msix_enabled and not dev.msix_function_mask:
            self._msix_entry_live(dev, mode, entry, "MSI-X entry unmasked")

    # ------------------------------------------------------------ RTAS

    def change_msi(self, dev: Device, args: Sequence[int], rets: Sequence[int]) -> None:
        t = self._track(dev)
        func, count, seq = args[3], args[4], args[5]
        if t.busy is not None:
            bfunc, bcount, bseq = t.busy
            if (func, count, seq) != (bfunc, bcount, bseq):
                self._say(
                    "papr-request",
                    dev.label,
                    f"ibm,change-msi(function {func}, count {count}, seq {seq}) after a busy answer is not its "
                    f"retry (function {bfunc}, count {bcount}, seq {bseq})",
                )
            t.busy = None
        elif count and t.full_grant is not None and not t.queried:
            self._say(
                "papr-request",
                dev.label,
                f"second ibm,change-msi (count {count}) before querying the {t.full_grant} already granted",
            )
        status = int32(rets[0]) if rets else 0
        if is_busy(status):
            t.busy = (func, count, rets[2] if len(rets) > 2 else seq)
            return
        granted = rets[1] if len(rets) > 1 else 0
        full = count != 0 and status == 0 and granted == count
        t.full_grant, t.queried = (count if full else None), False

    def query(self, dev: Device, args: Sequence[int], rets: Sequence[int]) -> None:
        t = self._track(dev)
        index = args[3]
        if t.busy is not None:
            self._say("papr-request", dev.label, "ibm,query-interrupt-source-number while a busy change-msi is pending")
            t.busy = None
        if t.full_grant is None:
            self._say(
                "papr-query",
                dev.label,
                f"query of source {index} without a change-msi answered in full",
            )
        elif index >= t.full_grant:
            self._say("papr-query", dev.label, f"query of source {index}, beyond the {t.full_grant} granted")
        status = int32(rets[0]) if rets else 0
        if not is_busy(status):
            t.queried = True


# ---------------------------------------------------------------- final state


def _expand(messages: Iterable[Mapping[str, Any]]) -> dict[int, tuple[int | None, int | None, int | None]]:
    """allocation.json message runs -> vector: (address, data, hwirq)."""
    out: dict[int, tuple[int | None, int | None, int | None]] = {}
    for m in messages:
        for i in range(int(m.get("count", 1))):
            addr = m.get("address")
            data = m.get("data")
            hwirq = m.get("hwirq")
            out[int(m["vector"]) + i] = (
                None if addr is None else int(addr),
                None if data is None else int(data) + i,
                None if hwirq is None else int(hwirq) + i,
            )
    return out


def _log2(n: int) -> int:
    """MME for n vectors: log2 of the power of two that holds them (3 -> 2)."""
    return (n - 1).bit_length() if n > 1 else 0


def check_final_state(
    sim: Simulator,
    allocation: Mapping[str, Any],
    partition: str | None = None,
    *,
    unmasked: bool = True,
) -> list[str]:
    """Differences between the simulator's functions and ``allocation.json``.

    ``allocation`` is the parsed JSON; only the functions of ``partition``
    (all, when None) are compared. ``unmasked=False`` for a stub built to
    leave the vectors masked (the OS unmasks them at IRQ start-up).

    msix: MSI-X enabled, not function-masked, MSI off, INTx disabled; entries
    0..n-1 unmasked with the planned messages (native), what OPAL composes for
    the planned hwirq (OPAL), what the hypervisor wrote for its grant of
    ``hardware_vectors`` (PAPR); the other entries masked; each of the n
    vectors deliverable (Bus Master on). msi: MSI enabled, MSI-X off, INTx
    disabled, MME = log2(hardware_vectors) (PAPR: the hypervisor's grant and
    its message untouched), each vector deliverable with its message. intx:
    MSI and MSI-X off, INTx not disabled, no PAPR grant held. none: no hook
    call named the function, MSI and MSI-X off. Under PAPR, the function's
    first ibm,change-msi asked for ``hardware_vectors``.
    """
    problems: list[str] = []
    for entry in allocation.get("functions", []):
        if partition is not None and entry.get("partition") != partition:
            continue
        problems.extend(_check_function(sim, entry, unmasked))
    return problems


def _check_function(sim: Simulator, entry: Mapping[str, Any], unmasked: bool) -> list[str]:
    bdf = parse_bdf(str(entry["bdf"]))
    dev = sim.devices.get(bdf)
    where = f"{format_bdf(bdf)} {entry.get('name', '')}".rstrip()
    out: list[str] = []

    def bad(what: str) -> None:
        out.append(f"final-state: {where}: {what}")

    if dev is None:
        bad("not in the simulator")
        return out
    mech = str(entry["mechanism"])
    mode = sim.mode_of(dev)
    st = dev.state()
    granted = int(entry.get("vectors_granted", 0))
    hw = int(entry.get("hardware_vectors", 0))
    msgs = _expand(entry.get("messages", []))

    def intx(disabled: bool) -> None:
        if dev.fn.is_vf:
            return
        if dev.has_quirk(QUIRK_NO_INTX_DISABLE):
            if st.intx_disabled != bool(dev.initial_command & 0x400):
                bad("INTx Disable changed on a function with the no-intx-disable quirk")
        elif st.intx_disabled != disabled:
            bad(f"INTx Disable is {'set' if st.intx_disabled else 'clear'}, expected {'set' if disabled else 'clear'}")

    if mech == "none":
        touched = [r for r in sim.trace if r.bdf == bdf]
        if touched:
            bad(f"planned 'none' but {len(touched)} hook call(s) named it (first: {touched[0].line})")
        if st.msi is not None and st.msi.enabled:
            bad("MSI enabled")
        if st.msix is not None and st.msix.enabled:
            bad("MSI-X enabled")
        return out
    if mech == "intx":
        if st.msi is not None and st.msi.enabled:
            bad("MSI enabled, expected INTx")
        if st.msix is not None and st.msix.enabled:
            bad("MSI-X enabled, expected INTx")
        intx(False)
        if mode == "papr" and sim.papr.grant_of(bdf) is not None:
            bad("still holds a PAPR grant")
        return out

    if mode == "papr":
        first = next(
            (r for r in sim.papr.requests if r.service == "change-msi" and r.bdf == bdf and r.args[4] != 0), None
        )
        if first is None:
            bad("no ibm,change-msi was made")
        elif first.args[4] != hw:
            bad(f"first ibm,change-msi asked {first.args[4]}, planned {hw}")
    grant = sim.papr.grant_of(bdf) if mode == "papr" else None

    mispredicted: set[int] = set()

    def expected(v: int, is64: bool) -> tuple[int, int] | None:
        if mode == "papr":
            if grant is None:
                return None
            return grant.address, grant.first + v
        m = msgs.get(v)
        if m is None:
            return None
        addr, data, hwirq = m
        if mode == "opal":
            if hwirq is None:
                return None
            composed = compose_msi(hwirq - sim.host_of(dev).msi_base, is64)
            # allocation.json's prediction of what firmware composes (dtmsi.opal)
            if addr is not None and (addr, data) != composed and v not in mispredicted:
                mispredicted.add(v)
                bad(
                    f"vector {v}: allocation.json predicts {addr:#x}/{data:#x}, firmware composes "
                    f"{composed[0]:#x}/{composed[1]:#x}"
                )
            return composed
        if addr is None or data is None:
            return None
        return addr, data

    if mech == "msix":
        if st.msix is None:
            bad("planned MSI-X but has no MSI-X capability")
            return out
        if not st.msix.enabled:
            bad("MSI-X not enabled")
        if st.msix.function_mask:
            bad("MSI-X Function Mask set")
        if st.msi is not None and st.msi.enabled:
            bad("MSI enabled next to MSI-X")
        intx(True)
        # The entries that carry messages (PAPR: the hypervisor's whole grant,
        # which Linux rounds up to a power of two) and the ones in use
        # (vectors_granted: only those are unmasked, as Linux does).
        n = written = granted
        if mode == "papr":
            if grant is None or grant.kind != "msix":
                bad("holds no MSI-X grant from the hypervisor")
                return out
            if grant.num != hw:
                bad(f"hypervisor granted {grant.num} MSI-X vectors, planned {hw}")
            written = grant.num
        is64 = not dev.has_quirk("no-64bit-msi")
        for i, e in enumerate(st.msix.entries):
            want = expected(i, is64) if i < written else None
            if i < written:
                if want is None:
                    bad(f"entry {i}: no planned message")
                elif (e.address, e.data) != want:
                    bad(f"entry {i} holds {e.address:#x}/{e.data:#x}, expected {want[0]:#x}/{want[1]:#x}")
            if i < n:
                if unmasked and e.masked:
                    bad(f"entry {i} masked")
                elif unmasked and want is not None and dev.fire(i) != want:
                    bad(f"vector {i} cannot be delivered (Bus Master, masks or quirks)")
            elif not e.masked:
                bad(f"entry {i} unmasked beyond the {n} in use")
        return out

    if mech == "msi":
        if st.msi is None:
            bad("planned MSI but has no MSI capability")
            return out
        if not st.msi.enabled:
            bad("MSI not enabled")
        if st.msix is not None and st.msix.enabled:
            bad("MSI-X enabled next to MSI")
        intx(True)
        is64 = st.msi.is64 and not dev.has_quirk("no-64bit-msi")
        n = granted
        if mode == "papr":
            if grant is None or grant.kind != "msi":
                bad("holds no MSI grant from the hypervisor")
                return out
            if grant.num != hw:
                bad(f"hypervisor granted {grant.num} MSI vectors, planned {hw}")
            want_addr = grant.address if st.msi.is64 else grant.address & 0xFFFFFFFF
            if st.msi.address != want_addr or st.msi.data != grant.first & 0xFFFF:
                bad(f"MSI message {st.msi.address:#x}/{st.msi.data:#x} is not the one the hypervisor wrote")
            if sim.papr.powervm and st.msi.mme != _log2(grant.num):
                bad(f"MME {st.msi.mme}, the hypervisor set {_log2(grant.num)}")
            return out
        if st.msi.mme != _log2(hw):
            bad(f"MME {st.msi.mme}, expected {_log2(hw)} ({hw} hardware vectors)")
        want0 = expected(0, is64)
        if want0 is None:
            bad("no planned message for vector 0")
            return out
        if (st.msi.address, st.msi.data) != want0:
            bad(f"MSI message {st.msi.address:#x}/{st.msi.data:#x}, expected {want0[0]:#x}/{want0[1]:#x}")
        for i in range(n):
            want = (want0[0], want0[1] + i) if mode == "native" else expected(i, is64)
            if unmasked and st.msi.maskable and st.msi.mask >> i & 1:
                bad(f"MSI vector {i} masked")
            elif unmasked and want is not None and dev.fire(i) != want:
                bad(f"MSI vector {i} cannot be delivered as {want[0]:#x}/{want[1]:#x}: sends {dev.fire(i)}")
        return out
    bad(f"unknown mechanism {mech!r}")
    return out
