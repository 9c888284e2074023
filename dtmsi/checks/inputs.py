"""Rules about the input as a whole, rather than about one thing it declares.

Not in ``checks.ALL``: they need the span of the input itself, which the
model does not keep, so the driver calls them with it after the checks.
"""

from __future__ import annotations

from dtmsi import codes as C
from dtmsi.checks.base import Report
from dtmsi.model import Machine
from dtmsi.source import Span


def declares_something(machine: Machine, top: Span, report: Report) -> None:
    """A file with no host bridge has nothing for dtmsi to compile: its trees
    would hold no PCI topology and its stubs no function. Most often the file
    is empty, truncated, or the wrong one (a file meant to be included).

    Not a rule of any specification; dtmsi's own (gcc warns the same way about
    an empty translation unit under -Wpedantic).
    """
    if machine.host_bridges:
        return
    report(
        C.NOTHING_TO_COMPILE,
        top,
        f"'{top.file.name}' declares no host bridge: nothing to compile",
        hint="declare a 'host-bridge' (or compile the file that includes this one)",
    )
