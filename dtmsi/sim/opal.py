"""OPAL's MSI calls, as skiboot composes them on a PHB4.

Transcribed from ``open-power/skiboot`` ``core/pci-opal.c``
(``opal_pci_set_xive_pe``, ``opal_get_msi_32/64``) and ``hw/phb4.c``
(``phb4_set_ive_pe``, ``phb4_get_msi_32/64``):

* an unknown PHB id -> ``OPAL_PARAMETER`` (-1);
* PE >= num_pes or IVE >= num_irqs - 8 -> -1 (num_irqs - 8 is the count the
  PHB publishes in ``ibm,opal-msi-ranges``, so the simulator takes the host
  bridge's msi-ranges count as that limit);
* ``set_xive_pe`` records IVE -> PE;
* ``get_msi`` (msi_range is always 1 here: the hook has no range argument,
  and PHB4 refuses any other) composes, without looking at the IVE -> PE
  table: 64-bit address ``(1 << 60) | ((ive << 4) & ~0x1F0)``, 32-bit
  ``0xFFFF0000 | ((ive << 4) & 0xFFFFFE0F)``, data ``ive & 0x1F``.

num_pes: skiboot reads ``max_num_pes`` from the PHB's EEH capability register
and sizes its tables for 512 or 256; the simulator's default is 512 (a PHB4
with the full table; per-PHB override). Stricter than skiboot (recorded as a
violation, the call still answers as skiboot does): ``get_msi`` for an IVE
that was not given to that PE (the MVE: Linux's pnv_ioda uses the PE number as
MVE number) by ``set_xive_pe`` first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

OPAL_SUCCESS = 0
OPAL_PARAMETER = -1
OPAL_BUSY = -2
OPAL_UNSUPPORTED = -7

PHB4_DEFAULT_NUM_PES = 512

OpalCall = Literal["set_xive_pe", "get_msi"]


def compose_msi(ive: int, is64: bool) -> tuple[int, int]:
    """(address, data) phb4_get_msi_64 / _32 return for an IVE."""
    if is64:
        return (1 << 60) | ((ive << 4) & 0xFFFFFFFFFFFFFE0F), ive & 0x1F
    return 0xFFFF0000 | ((ive << 4) & 0xFFFFFE0F), ive & 0x1F


@dataclass(frozen=True, slots=True)
class OpalPhb:
    phb_id: int
    msi_base: int  # first hwirq of ibm,opal-msi-ranges
    msi_count: int  # its count: num_irqs - 8
    num_pes: int = PHB4_DEFAULT_NUM_PES


@dataclass(slots=True)
class _Error:
    call: OpalCall
    status: int
    phb_id: int | None
    xive: int | None
    count: int | None


@dataclass(slots=True)
class OpalFirmware:
    phbs: dict[int, OpalPhb]
    report: Callable[[str], None] = field(default=lambda message: None)
    ive_pe: dict[tuple[int, int], int] = field(init=False, default_factory=dict)
    _errors: list[_Error] = field(init=False, default_factory=list)

    def inject_error(
        self,
        call: OpalCall,
        status: int = OPAL_PARAMETER,
        *,
        phb_id: int | None = None,
        xive: int | None = None,
        count: int | None = None,
    ) -> None:
        """Answer ``status`` to matching calls (``count`` times, or always)."""
        self._errors.append(_Error(call, status, phb_id, xive, count))

    def _take_error(self, call: OpalCall, phb_id: int, xive: int) -> int | None:
        for e in self._errors:
            if e.call == call and e.phb_id in (None, phb_id) and e.xive in (None, xive):
                if e.count is not None:
                    e.count -= 1
                    if e.count <= 0:
                        self._errors.remove(e)
                return e.status
        return None

    def _check(self, phb_id: int, pe: int, xive: int) -> OpalPhb | None:
        phb = self.phbs.get(phb_id)
        if phb is None or pe >= phb.num_pes or xive >= phb.msi_count:
            return None
        return phb

    def set_xive_pe(self, phb_id: int, pe: int, xive: int) -> int:
        error = self._take_error("set_xive_pe", phb_id, xive)
        if error is not None:
            return error
        if self._check(phb_id, pe, xive) is None:
            return OPAL_PARAMETER
        self.ive_pe[(phb_id, xive)] = pe
        return OPAL_SUCCESS

    def get_msi(self, phb_id: int, mve: int, xive: int, is64: bool) -> tuple[int, int, int]:
        error = self._take_error("get_msi", phb_id, xive)
        if error is not None:
            return error, 0, 0
        if self._check(phb_id, mve, xive) is None:
            return OPAL_PARAMETER, 0, 0
        owner = self.ive_pe.get((phb_id, xive))
        if owner != mve:
            given = "was given to no PE" if owner is None else f"was given to PE {owner:#x}"
            self.report(
                f"opal-xive-pe: phb {phb_id:#x} xive {xive:#x}: opal_get_msi for mve {mve:#x}, but the xive "
                f"{given} (opal_pci_set_xive_pe first)"
            )
        address, data = compose_msi(xive, is64)
        return OPAL_SUCCESS, address, data
