"""The check registry: small named rules over the resolved model.

Each check is a plain function ``(machine, report) -> None`` with a docstring
that states the rule and cites where it comes from. ``ALL`` lists them
explicitly (grep finds every one); order only affects diagnostic order,
which is sorted by position anyway.
"""

from __future__ import annotations

from collections.abc import Callable

from dtmsi.checks import bars, intx, msi, partitions, topology
from dtmsi.checks.base import Report
from dtmsi.diagnostics import DiagnosticSink
from dtmsi.model import Machine

Check = Callable[[Machine, Report], None]

# Where each function is: checked first, and the other checks run only if it
# holds. A duplicate BDF would otherwise surface as errors it causes (a shared
# DeviceID, a partition clash) ahead of, or instead of, the mistake itself.
IDENTITY: tuple[Check, ...] = (
    topology.device_function_numbers,
    topology.unique_bdf,
)

ALL: tuple[Check, ...] = (
    topology.device_zero_below_pcie_ports,
    topology.function_zero_present,
    topology.ecam_covers_buses,
    topology.windows_disjoint,
    topology.mem32_below_4g,
    bars.bar_slots,
    bars.bar_sizes,
    bars.fixed_bars,
    intx.intx_routes,
    msi.msi_capability,
    msi.msix_capability,
    msi.capability_offsets,
    msi.x86_vectors,
    msi.msi_map_shape,
    msi.msi_map_coverage,
    msi.device_id_collisions,
    msi.fsl_available_ranges,
    msi.x86_apic_destinations,
    msi.fsl_msi_cascade,
    msi.policy_mechanism_counts,
    partitions.function_ownership,
    partitions.pe_membership,
    partitions.papr_platform,
    partitions.requested_msi_properties,
    partitions.sideband_ids,
)


def run_checks(machine: Machine, sink: DiagnosticSink) -> None:
    report = Report(sink)
    for check in IDENTITY:
        check(machine, report)
    if sink.has_errors:
        return
    for check in ALL:
        check(machine, report)
