"""dtmsi.sim: a simulated machine to run MSI setup stubs against.

Shipped in the package so integrators can test their own hooks and stubs
without the compiler (standard library only; ``dtmsi.sim.from_model`` is the
one module that reads the compiler's model). What it models:

* config space of every function with real capability semantics
  (``device``): read-only bits, Enable and mask behaviour, MME <= MMC, the
  MSI-X table and PBA in BAR memory;
* the PAPR hypervisor's ibm,change-msi / ibm,query-interrupt-source-number
  as QEMU's spapr_pci.c answers them, with switches for PowerVM (``papr``);
* OPAL's opal_pci_set_xive_pe / opal_get_msi as skiboot's PHB4 composes
  (``opal``);
* the hooks of dtmsi/stubs/CONTRACT.md, a trace of every call, and
  invariants checked live (``machine``, ``invariants``); a C stub runs
  through a harness (``remote``).

A Python stub::

    sim = Simulator(host_bridges, functions)        # or from_model.simulator_from_model(machine, "lpar1")
    stub = Stub(sim)                                # the generated <partition>_msi.py
    assert stub.setup_all() == 0
    assert sim.violations == []                     # the live invariants
    assert check_final_state(sim, json.loads(allocation_json), "lpar1") == []
    print("\n".join(sim.trace_lines()))

The same C stub::

    exe = build_c_harness("out/lpar1_msi.c", "out/lpar1_msi.h", "dtmsi_lpar1", "build/")
    run = run_c_stub(exe, sim, ["setup_all", "results"])   # runner=["qemu-ppc64"] for a cross build
    run.values()[0], run.results                    # "0", one CResult per function

Knobs: ``SimOptions`` (VF IDs, PowerVM rules, source pool, RTAS tokens),
``sim.fail_hook`` (a hook raises ``HookError``), ``missing_hooks=``,
``sim.papr.inject_busy/inject_short/inject_error``, ``sim.opal.inject_error``.
"""

from dtmsi.sim.device import (
    Bdf,
    ConfigSpace,
    Device,
    FunctionState,
    MsiState,
    MsixState,
    SimBar,
    SimFunction,
    SimMsi,
    SimMsix,
    Vector,
    format_bdf,
    parse_bdf,
)
from dtmsi.sim.invariants import Checker, check_final_state
from dtmsi.sim.machine import HOOK_NAMES, HookError, SimHostBridge, SimOptions, Simulator, SimWindow, TraceRecord
from dtmsi.sim.opal import OpalFirmware, OpalPhb, compose_msi
from dtmsi.sim.papr import Grant, PaprHypervisor
from dtmsi.sim.remote import CResult, CVector, HarnessError, HarnessRun, build_c_harness, run_c_stub

__all__ = [
    "HOOK_NAMES",
    "Bdf",
    "CResult",
    "CVector",
    "Checker",
    "ConfigSpace",
    "Device",
    "FunctionState",
    "Grant",
    "HarnessError",
    "HarnessRun",
    "HookError",
    "MsiState",
    "MsixState",
    "OpalFirmware",
    "OpalPhb",
    "PaprHypervisor",
    "SimBar",
    "SimFunction",
    "SimHostBridge",
    "SimMsi",
    "SimMsix",
    "SimOptions",
    "SimWindow",
    "Simulator",
    "TraceRecord",
    "Vector",
    "build_c_harness",
    "check_final_state",
    "compose_msi",
    "format_bdf",
    "parse_bdf",
    "run_c_stub",
]
