"""INTx rules (domain.md 5.2)."""

from __future__ import annotations

from dtmsi import codes as C
from dtmsi.checks.base import Report
from dtmsi.model import Machine


def intx_routes(machine: Machine, report: Report) -> None:
    """A function with an Interrupt Pin must reach an interrupt controller
    through its host bridge's interrupt-map.

    IEEE 1275 PCI binding / Open Firmware recommended practice: interrupt mapping;
    Linux of_irq_parse_pci().
    """
    for hb in machine.host_bridges:
        if hb.kind == "papr" or hb.intx is not None:
            continue
        users = [f for f in hb.functions() if f.intx_pin]
        if users:
            f = users[0]
            report(
                C.INTX_NO_ROUTE,
                f.intx_span or f.span,
                f"'{f.name}' uses INTx pin {'ABCD'[f.intx_pin - 1]}, but host bridge '{hb.name}' has no INTx route",
                hint=f"add 'intx -> CONTROLLER spi A..B level;' to '{hb.name}', or 'intx none;' here",
                function=f,
            )
