"""OPAL (firmware-composed) MSI: the message skiboot will compose per vector.

Under OPAL the OS does not choose MSI messages: for each vector it asks
``opal_get_msi_64`` (or ``_32``) with the PHB id, the MVE and the XIVE
number (the vector's hwirq minus the PHB's ``ibm,opal-msi-ranges`` base),
and writes what firmware answers.  skiboot composes that answer from the
XIVE number alone, the same way on PHB3 and PHB4 (``open-power/skiboot``
``hw/phb3.c`` / ``hw/phb4.c``, ``phb*_get_msi_64`` and ``_32``): the low
five bits of the XIVE number are the data, the rest select the address.
So dtmsi, which plans the XIVE numbers, can say in ``allocation.json``
which address/data each vector will carry.
"""

from __future__ import annotations

#: The PHB's MSI window above 4 GiB (64-bit messages) and below (32-bit).
MSI64_BASE = 1 << 60
MSI32_BASE = 0xFFFF0000


def compose_msi(xive: int, is64: bool) -> tuple[int, int]:
    """(address, data) skiboot's get_msi_64 / get_msi_32 return for ``xive``."""
    if is64:
        return MSI64_BASE | ((xive << 4) & 0xFFFF_FFFF_FFFF_FE0F), xive & 0x1F
    return MSI32_BASE | ((xive << 4) & 0xFFFF_FE0F), xive & 0x1F
