"""``dtmsi explain CODE``: the long form of a diagnostic.

For every code of :mod:`dtmsi.codes`: the rule in a few sentences, where the
rule comes from (a specification section, a Linux source file, a binding), and
a small input that triggers it. The examples are the error fixtures of the test
suite (``tests/errors/<CODE>-*.msi``, shipped in the wheel as
``dtmsi/diagnostic-examples``), so every example shown is one a test compiles.
"""

from __future__ import annotations

import os
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

from dtmsi.codes import CATALOGUE, Code

_HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Explanation:
    rule: str
    source: str | None  # the specification or consumer the rule comes from; None: dtmsi's own


def _e(rule: str, source: str | None = None) -> Explanation:
    return Explanation(rule, source)


_PCI = "PCI Local Bus Specification 3.0"
_PCI_MSI = "PCI Local Bus Specification 3.0 sec. 6.8"
_DT = "Devicetree Specification v0.4"
_MSI_MAP = "Linux Documentation/devicetree/bindings/pci/pci-msi.txt; drivers/of/base.c of_map_id()"
_PSERIES = "Linux arch/powerpc/platforms/pseries/msi.c"
_LIMIT = "dtmsi's own limit (dtmsi/limits.py; the README's 'Limits' table), far above what a real machine needs"

EXPLANATIONS: dict[str, Explanation] = {
    # 1xx: source, syntax, includes, expressions
    "E101": _e("The text does not follow the .msi grammar: a missing ';', an unclosed '{', or a word where "
               "another was expected. dtmsi names what it expected and points at the first token it could "
               "not use."),
    "E102": _e("A block comment '/* ...' or a string '\"...' is not closed before the end of the file."),
    "E103": _e("An 'include \"file\";' (or the top-level input) cannot be read. Included files are searched "
               "in the including file's directory first, then in each -I directory in the order given."),
    "E104": _e("A file includes itself, directly or through other files; the message shows the cycle. A file "
               "included twice without a cycle (a diamond) is read once and is not an error."),
    "E105": _e("An integer expression divides (or takes a remainder) by zero."),
    "E106": _e("A number does not fit where it is used: a bus number above 0xff, a device above 0x1f, a "
               "value wider than its cells.", "PCI bus numbers are 8 bits: " + _PCI + " sec. 3.2.2.3.1"),
    "E107": _e("A range 'A..B' is empty or written backwards (B below A)."),
    "E108": _e("A statement is not one this block takes (a misspelt word, or a setting given in the wrong "
               "block, such as 'include' inside a block)."),
    "E109": _e("A setting that may appear once in a block is given twice; the note points at the first."),
    "E110": _e("A block lacks a setting it needs: an endpoint its 'id VENDOR:DEVICE', an 'sriov' block its "
               "'total-vfs', a host bridge its 'buses'."),
    "E111": _e("A value is of the wrong kind for its setting, or not one of the words the setting accepts "
               "(a prefetchable I/O window, a size where a name belongs)."),
    "E112": _e("A 'use TEMPLATE(...)' gives a different number of arguments than the template declares "
               "parameters."),
    "E113": _e("A template uses itself, directly or through other templates: it would expand forever."),
    "E114": _e("A number literal has more than 128 digits (the prefix and '_' not counted). No value dtmsi "
               "takes is that wide, and converting a very long decimal costs time that grows with its square.",
               _LIMIT),
    "E115": _e("A value, written or computed, lies outside -2**128..2**128: nothing in PCI or a device tree "
               "is wider, and unbounded arithmetic (squaring a constant again and again) would grow without end.",
               _LIMIT),
    "E116": _e("Blocks, template uses or an expression's parentheses and unary operators nest deeper than "
               "64 (blocks, uses) or 100 (expressions).", _LIMIT),
    "E117": _e("Includes nest more than 16 deep; the note names the outermost file.", _LIMIT),
    "E118": _e("One 'repeat' runs through more than 1,048,576 values, or one 'cpus' list names more than "
               "65,536 CPUs (a PCI domain has at most 65,536 functions).", _LIMIT),
    "E119": _e("'repeat' and 'use' expand to more statements than the limit (1,000,000 plus one per 8 bytes "
               "of source): nested loops or templates that use one another multiply quickly. It is reported "
               "at the outermost repeat or use being expanded.", _LIMIT),
    "E120": _e("An input (the .msi file or an include) is not a regular file (a directory, a FIFO, a device "
               "such as /dev/zero) or is larger than 256 MiB; it is refused without being read.", _LIMIT),
    "E121": _e("A string literal is longer than 4,096 characters.", _LIMIT),
    "E122": _e("An interpolation's width or precision ('{v:08x}') is above 64: it would only pad.", _LIMIT),
    "E123": _e("One statement has more than 16,384 words and symbols of its own, or one top-level statement "
               "more than 2,000,000 with everything inside it: end it with ';' or split it.", _LIMIT),
    # 2xx: names and references
    "E201": _e("A name (controller, template, policy, PE, partition, constant) is used but never declared; "
               "the hint suggests a close spelling when there is one."),
    "E202": _e("Two declarations of one kind share a name. Names become device-tree labels and stub "
               "identifiers, which must be unique.", "dtc refuses a label defined twice in one tree"),
    "E203": _e("A name refers to a thing of another kind than the place needs: INTx routed to an MSI "
               "controller, an msi-map naming an interrupt controller, a policy where a PE belongs."),
    "E204": _e("Function, partition and prefix names become C and Python identifiers of the generated stubs "
               "(upper-cased, '-' and '.' turned into '_'). Two names that become the same identifier, or a "
               "stub prefix that is not a C identifier, cannot be emitted.", "ISO C11 sec. 6.4.2 (identifiers)"),
    # 3xx: PCI topology and numbering
    "E301": _e("Device numbers are 0..31 and function numbers 0..7; with ARI the device is 0 and the function "
               "0..255.", _PCI + " sec. 3.2.2.3.1; PCIe Base Specification sec. 6.13 (ARI)"),
    "E302": _e("No two functions (SR-IOV VFs included) share a bus/device/function in one PCI domain: the "
               "configuration space would answer twice, and Linux sees only one of them.",
               "dtc check unique_unit_address; " + _PCI + " sec. 3.2.2.3.1"),
    "E303": _e("Functions 1..7 of a device need function 0: enumeration probes function 0 first and skips the "
               "device when it is absent.", _PCI + " sec. 3.2.2.3.1 (multi-function devices implement "
               "function 0)"),
    "E304": _e("Every bridge needs a secondary bus from its host bridge's 'buses' range; enumeration ran out "
               "of numbers.", "PCI-to-PCI Bridge Architecture Specification 1.2 (Secondary and Subordinate Bus Number "
               "registers)"),
    "E305": _e("A bridge's pinned 'bus N' collides with a number depth-first enumeration has already given "
               "another bridge (or lies outside the host bridge's range).",
               "PCI-to-PCI Bridge Architecture Specification 1.2 (bus number registers); Linux "
               "drivers/pci/probe.c pci_scan_bridge()"),
    "E306": _e("Either every host bridge names its PCI domain ('domain N', linux,pci-domain) or none does: "
               "Linux numbers domains itself only when no host bridge has the property.",
               "Linux drivers/pci/pci.c of_pci_bus_find_domain_nr() (\"Inconsistent linux,pci-domain "
               "property in DT\")"),
    "E307": _e("Two host bridges claim the same PCI domain number.",
               "Linux drivers/pci/pci.c (linux,pci-domain must be unique)"),
    "E308": _e("With ARI the 8 bits of devfn are all function number, so an ARI function sits at device 0.",
               "PCIe Base Specification sec. 6.13 (ARI)"),
    "E309": _e("An ECAM region holds 1 MiB of configuration space per bus: it must cover every bus of the "
               "host bridge's range.", "PCIe Base Specification sec. 7.2.2; Linux binding "
               "pci/host-generic-pci.yaml"),
    "W310": _e("SR-IOV VFs whose routing IDs pass the end of the PF's bus land on the next bus; the device "
               "tree describes only the VFs on the PF's bus.", "PCIe Base Specification, SR-IOV chapter "
               "(First VF Offset, VF Stride)"),
    "E311": _e("A VF's routing ID (PF RID + First VF Offset + n * VF Stride) falls beyond the host bridge's "
               "last bus.", "PCIe Base Specification, SR-IOV chapter (First VF Offset, VF Stride)"),
    "E312": _e("Host bridges without PCI domains share one bus-number space: their bus ranges and ECAM "
               "regions must not overlap.", "Linux drivers/pci/probe.c (one bus number per domain)"),
    "W313": _e("Below a root port or switch downstream port only device 0 exists, unless ARI forwarding "
               "makes all 8 bits function number; Linux scans device 0 alone there.",
               "PCIe Base Specification sec. 7.3.1 and 6.13; Linux drivers/pci/probe.c only_one_child()"),
    # 4xx: BARs and windows
    "E401": _e("Endpoints have BARs 0..5, bridges 0..1; a 64-bit BAR takes two slots and cannot start at the "
               "last one.", _PCI + " sec. 6.2.5.1; PCI-to-PCI Bridge Specification 1.2 sec. 3.2"),
    "E402": _e("BAR sizes are powers of two; memory BARs at least 16 bytes, I/O BARs 4..256 bytes.",
               _PCI + " sec. 6.2.5.1"),
    "E403": _e("A 64-bit BAR occupies its slot and the next one; no other BAR may be declared in that upper "
               "half.", _PCI + " sec. 6.2.5.1"),
    "E404": _e("The windows of one host bridge must not overlap in PCI space, and no two regions (windows, "
               "ECAM, controllers) in CPU space.", _DT + " sec. 2.3.8 (ranges)"),
    "E405": _e("The BARs below a host bridge, each naturally aligned and with bridge windows rounded to "
               "their granules, must fit in its window of their type.",
               _PCI + " sec. 6.2.5.1; PCI-to-PCI Bridge Specification 1.2 sec. 3.2.5"),
    "E406": _e("A BAR given a fixed address must be aligned to its size.", _PCI + " sec. 6.2.5.1"),
    "E407": _e("A BAR given a fixed address must lie in a host-bridge window of its type (io, mem32, mem64, "
               "prefetchable).", "IEEE 1275 PCI Bus Binding (ranges)"),
    "E408": _e("Two BARs given fixed addresses overlap.", _PCI + " sec. 6.2.5.1"),
    "E409": _e("A 32-bit memory window lies below 4 GiB on the PCI side: 32-bit BARs cannot reach above.",
               "IEEE 1275 PCI Bus Binding (ss = 10 is 32-bit memory space)"),
    "E410": _e("A BAR of a type (I/O, 32-bit, 64-bit memory) whose host bridge has no window of that type "
               "cannot be assigned.", "IEEE 1275 PCI Bus Binding (ranges)"),
    "E411": _e("I/O BARs are at most 256 bytes.", _PCI + " sec. 6.2.5.1"),
    # 5xx: INTx
    "E501": _e("The INTx pin is one of A, B, C, D (Interrupt Pin register values 1..4).",
               _PCI + " sec. 6.2.4 (Interrupt Pin)"),
    "E502": _e("A function with an INTx pin must reach an interrupt controller through its host bridge's "
               "interrupt-map, else Linux cannot route the interrupt.",
               "IEEE 1275 PCI Bus Binding / Open Firmware interrupt mapping; Linux of_irq_parse_pci()"),
    "E503": _e("SR-IOV virtual functions have no INTx (their Interrupt Pin is 0): a VF's policy cannot end "
               "in INTx.", "PCIe Base Specification, SR-IOV chapter (a VF's Interrupt Pin register is 0)"),
    "E504": _e("An INTx route must fit its interrupt controller: a GIC takes SPI numbers ('spi A..B'), other "
               "controllers 'irq' numbers and their #interrupt-cells.",
               "Linux Documentation/devicetree/bindings/interrupt-controller/arm,gic-v3.yaml"),
    # 6xx: MSI / MSI-X capabilities and policies
    "E601": _e("An MSI capability offers 1..32 vectors, a power of two (Multiple Message Capable is a log2).",
               _PCI_MSI + ".1.3; Linux drivers/pci/msi/msi.c"),
    "E602": _e("An MSI-X table has 1..2048 entries (Table Size is N-1 in 11 bits).", _PCI_MSI + ".2"),
    "E603": _e("The MSI-X table and PBA live in an implemented memory BAR (BIR 0..5, not I/O, not the upper "
               "half of a 64-bit BAR).", _PCI_MSI + ".2; Linux msix_map_region()"),
    "E604": _e("The MSI-X table and PBA offsets are 8-byte aligned (the low 3 bits hold the BIR).",
               _PCI_MSI + ".2"),
    "E605": _e("The MSI-X table (16 bytes an entry) and PBA (a bit an entry, in 64-bit words) lie inside "
               "their BAR.", _PCI_MSI + ".2; Linux msix_map_region()"),
    "E606": _e("The MSI-X table and PBA must not overlap.", _PCI_MSI + ".2"),
    "E607": _e("A policy attached to one function names a mechanism (msi, msix, intx) that function does "
               "not have."),
    "E608": _e("None of the mechanisms a policy allows is available on the function it applies to."),
    "E609": _e("A policy's 'min' vectors cannot be granted: the capability (or the quota, or the "
               "controller) offers fewer.", "Linux pci_alloc_irq_vectors() min_vecs"),
    "W610": _e("A policy got fewer vectors than it asked for but at least its minimum, as Linux's "
               "pci_alloc_irq_vectors() would; the report says why.",
               "Linux drivers/pci/msi/api.c pci_alloc_irq_vectors_affinity()"),
    "W611": _e("A policy's first mechanism could not be used and a later one was, as Linux falls back from "
               "MSI-X to MSI to INTx.", "Linux drivers/pci/msi/api.c pci_alloc_irq_vectors_affinity()"),
    "W612": _e("A function with neither MSI, MSI-X nor an INTx pin can never interrupt."),
    "W614": _e("A policy's 'vectors msix ...;' or 'vectors msi ...;' line is the count it asks of that one "
               "mechanism (Linux's e1000e asks MSI-X for exactly 3, then MSI for 1); a mechanism its 'prefer' "
               "does not name is never asked, so the line does nothing.",
               "Linux drivers/net/ethernet/intel/e1000e/netdev.c e1000e_set_interrupt_capability()"),
    "E613": _e("A declared capability offset lies in 0x40..0xff, is dword-aligned, and the MSI and MSI-X "
               "structures of one function do not overlap.", "PCI Local Bus Specification 3.0 sec. 6.7; "
               "Linux __pci_find_next_cap_ttl()"),
    # 7xx: MSI controllers and msi-map
    "E701": _e("An msi-map target is an MSI controller with #msi-cells = <1> (it takes a DeviceID).", _MSI_MAP),
    "E702": _e("An msi-map entry covers requester IDs 0..0xffff only (16-bit bus/device/function).",
               _MSI_MAP),
    "E703": _e("An msi-map rid-base has no bits outside msi-map-mask: Linux masks the requester ID before "
               "matching, so such an entry never matches.", _MSI_MAP),
    "E704": _e("Every MSI-capable function's requester ID (after DMA aliasing) is translated by msi-map; "
               "otherwise Linux logs no msi-map translation and falls back to INTx.",
               "Linux drivers/pci/msi/irqdomain.c pci_msi_domain_get_msi_rid(); drivers/of/irq.c "
               "of_msi_xlate()"),
    "W705": _e("msi-map entries overlap: Linux uses the first that matches and silently ignores the rest.",
               _MSI_MAP),
    "W706": _e("An msi-map gives a DeviceID other than the requester ID; that only works if the root complex "
               "really rewrites IDs.", _MSI_MAP),
    "E707": _e("Two functions that are not DMA aliases must not reach one controller with the same DeviceID: "
               "the ITS would merge their interrupts.",
               "Linux drivers/irqchip/irq-gic-v3-its.c (one ITT per DeviceID)"),
    "E708": _e("A DeviceID or EventID is wider than the controller supports (its 'device-id-bits' / "
               "'event-id-bits').", "Arm GICv3/v4 Architecture Specification (GITS_TYPER.Devbits, IDbits)"),
    "E709": _e("An MSI controller has too few interrupt numbers (SPIs, LPIs, MSI bank bits) for the vectors "
               "granted to its functions."),
    "E710": _e("Multi-vector MSI needs a controller that can place 2^n consecutive, aligned vectors; this one "
               "cannot.", "Linux include/linux/msi.h MSI_FLAG_MULTI_PCI_MSI"),
    "E711": _e("A host bridge with MSI-capable functions has no MSI controller (no msi-map, no msi-parent) "
               "on a native platform.", "Linux Documentation/devicetree/bindings/pci/pci-msi.txt"),
    "E712": _e("msi-map-mask means nothing without msi-map.", _MSI_MAP),
    "E713": _e("A function with a 32-bit-only MSI capability cannot reach a doorbell above 4 GiB.",
               _PCI_MSI + ".1 (64 bit address capable)"),
    "E714": _e("FSL MPIC MSI banks hold 32 interrupts each: msi-available-ranges start and end on multiples "
               "of 32.", "Linux Documentation/devicetree/bindings/powerpc/fsl/msi-pic.txt; "
               "arch/powerpc/sysdev/fsl_msi.c"),
    "E715": _e("An x86 APIC MSI controller's 'cpus' names a CPU the platform does not have. The platform's "
               "'cpus N' is a count (CPUs 0..N-1); the controller's 'cpus' is a list of those CPUs "
               "('cpus 0..3', 'cpus 5, 1..2'), and CPU n is APIC ID n."),
    "E716": _e("An xAPIC MSI address has 8 destination ID bits and ID 255 is the broadcast: a message can "
               "only be aimed at CPUs 0..254.", "Intel SDM vol. 3, 11.11.1 Message Address Register Format"),
    "E717": _e("An fsl-msi block must be cascaded into an MPIC ('parent'): Linux's fsl_msi driver reads the "
               "cascade 'interrupts' of the MSI node and refuses a node without them.",
               "Linux arch/powerpc/sysdev/fsl_msi.c; bindings/powerpc/fsl/msi-pic.txt"),
    "E718": _e("The fsl-msi block's register address is not reachable from the bus its node sits on (the "
               "MPIC's parent, usually the SoC node): it lies outside that bus's 'ranges'.",
               _DT + " sec. 2.3.8 (ranges)"),
    # 8xx: PEs, partitions, PAPR
    "E801": _e("A function belongs to one partition only: an OS must never touch a function outside its "
               "partition.", "PAPR; the 2007 linuxppc-dev MSI portability discussion"),
    "W802": _e("A function owned by no partition is reachable by none; declare it 'unassigned' if meant."),
    "E803": _e("All functions of a PE (the EEH isolation unit) go to the same partition.",
               "PAPR (EEH); Linux arch/powerpc/kernel/eeh_pe.c"),
    "E804": _e("ibm,pe-total-#msi of a PHB is at least its number of devices, else Linux's quota per device "
               "rounds down to 0.", _PSERIES + " msi_quota_for_device()"),
    "E805": _e("Every bridge carries a bridge class code (0x0604xx or 0x0607xx), or Linux's quota walk cannot "
               "see the devices behind it.", "Linux arch/powerpc/kernel/pci_dn.c pci_traverse_device_nodes()"),
    "E806": _e("An explicit ibm,req#msi is a power of two in 1..32 within the MSI capability; ibm,req#msi-x "
               "is within the MSI-X table.", _PSERIES + " check_req()"),
    "E807": _e("Under PAPR every PHB carries ibm,pe-total-#msi.", _PSERIES + " msi_quota_for_device()"),
    "E808": _e("Under PAPR /rtas carries the tokens ibm,change-msi and ibm,query-interrupt-source-number.",
               _PSERIES + " rtas_msi_init()"),
    "E809": _e("Functions of different partitions never reach a shared MSI controller with the same "
               "DeviceID: the ITS tells tenants apart by it."),
    "E810": _e("A partition's MSI budget covers the vectors its functions are granted."),
    "E811": _e("A function is in at most one PE.", "PAPR (EEH); Linux arch/powerpc/kernel/eeh_pe.c"),
    "W812": _e("Linux's pseries quota (ibm,pe-total-#msi shared among the PE's devices) gives a function fewer "
               "vectors than it asks for.", _PSERIES + " msi_quota_for_device()"),
    "W813": _e("The MSI vectors planned under a PHB add up to more than its ibm,pe-total-#msi: the firmware "
               "will refuse some ibm,change-msi calls.", _PSERIES + " rtas_change_msi()"),
    "E814": _e("A PE's 'total-msi' becomes ibm,pe-total-#msi on the bridge above exactly its functions; a PE "
               "without such a bridge cannot carry one.", _PSERIES + " msi_quota_for_device() (pe_dn walk)"),
    # 9xx: base trees and output
    "E901": _e("The platform's base tree (.dts or .dtb, found beside the input or in an -I directory) cannot "
               "be read or parsed; the message gives the base tree's own file:line:col.",
               "Devicetree Specification v0.4 ch. 5 (DTB) and ch. 6 (DTS)"),
    "E902": _e("A controller declared 'from base \"label\"' names a node the base tree does not have, or "
               "one dtmsi cannot name as an interrupt parent: without 'interrupt-controller', or with an "
               "#interrupt-cells other than the specifiers dtmsi writes for its kind (fsl,mpic: 2 or 4; "
               "arm,gic-v3: 3; IBM,ppc-xicp: 2).", "dtc checks.c check_interrupts_property; Linux "
               "Documentation/devicetree/bindings/interrupt-controller/fsl,mpic.txt"),
    "W903": _e("A base-tree node named by 'from base' disagrees with the declaration (an MSI controller "
               "without 'msi-controller', a different compatible).",
               "Linux Documentation/devicetree/bindings/interrupt-controller/msi.txt"),
    "E904": _e("A raw node or property cannot be placed: its parent path does not exist in the tree, or it "
               "would replace a node dtmsi generates."),
    "E906": _e("A node dtmsi makes (a host bridge, a controller) sits beside a node of the base tree with "
               "the same unit address: two devices claim one address on one bus, and dtc warns "
               "(unique_unit_address). Typically an ECAM or register window placed over the board's RAM or "
               "one of its devices.", "dtc checks.c check_unique_unit_address; Devicetree Specification "
               "2.2.1 (node names, unit address)"),
    "E905": _e("An output cannot be written (a directory in the way, no permission, a full disk). Nothing is "
               "replaced: every output is staged and renamed into place only when all are written."),
    "E915": _e("The base tree nests nodes more than 64 deep; Linux reads device trees at most that deep "
               "(FDT_MAX_DEPTH), so such a tree could not be a real board's.", "Linux scripts/dtc/libfdt, "
               "drivers/of/fdt.c (FDT_MAX_DEPTH 64)"),
    "W930": _e("dtc itself warns about (or rejects) the base tree: dtmsi runs the platform's 'base' file "
               "through dtc and reports each of its complaints at the line of the base file it names, since "
               "whatever is wrong there is copied into every output tree.",
               "dtc's checks (dtc/checks.c)"),
    "W931": _e("The base tree could not be checked, because dtc could not be run (not installed, or "
               "DTMSI_DTC names a program that does not start). The compile goes on; the base tree's own "
               "problems go unreported."),
    "W950": _e("The input declares no host bridge: there is nothing to compile, and the outputs would hold no "
               "PCI topology. Most often the file is empty, or it is a file meant to be included."),
    "W970": _e("A policy that applies to many functions (the default policy, a class rule, or a policy a VF "
               "inherits from its PF) names no mechanism this function has, so it gets no interrupt. "
               "Mechanisms a function lacks are skipped with a reason in the report; only when nothing is "
               "left is it worth a warning. Give the function a policy of its own, or add 'intx' to the chain."),
    "W980": _e("'--emit dtbo' asks for an overlay, but the platform names no base tree: an overlay is what "
               "dtmsi adds to a board's tree, so without one there is nothing to write it against. Give the "
               "platform a 'base \"board.dtb\";' or leave dtbo out of --emit."),
    "E981": _e("The overlay must point at a node of the base tree (a target or a reference), but that node "
               "has neither a label nor a phandle, so fdtoverlay could not find it after the board is "
               "rebuilt. Build the board's DTB with 'dtc -@', or give the node a label.",
               "Linux Documentation/devicetree/overlay-notes.rst; dtc's fdtoverlay"),
}


_DIRECTIVE = re.compile(r"// (?:expect|hint|xfail|compile-blocker|compile-args|env):")
_HELPER = re.compile(r'"(files/[^"\s]+)"')


def examples_dir() -> Path | None:
    """The fixtures directory: inside the package in a wheel, under tests/ in a checkout."""
    for candidate in (_HERE / "diagnostic-examples", _HERE.parent / "tests" / "errors"):
        if candidate.is_dir():
            return candidate
    return None


def example_for(code: str) -> Path | None:
    directory = examples_dir()
    if directory is None:
        return None
    return next(iter(sorted(directory.glob(f"{code}-*.msi"))), None)


def _wrapped(text: str, indent: str = "    ") -> list[str]:
    return textwrap.wrap(text, width=88, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False)


def _indented(text: str) -> list[str]:
    return [f"    {line}" if line else "" for line in text.rstrip("\n").splitlines()]


def explain(code: Code) -> str:
    """The long form of ``code``: title, rule, source and an example (with its helper files)."""
    x = EXPLANATIONS[code.id]
    kind = "error" if code.is_error else "warning"
    out = [f"{code.id}: {code.title} ({kind})", "", "Rule:", *_wrapped(x.rule), ""]
    out += ["Source:", *_wrapped(x.source or "dtmsi's own rule (no specification states it)"), ""]
    if not code.is_error:
        out += [f"Silence it with -Wno-{code.id}; make it an error with -Werror.", ""]
    path = example_for(code.id)
    if path is None:
        out += _wrapped("No example: this version of dtmsi never reports it (the language, or an earlier "
                        "check, already rules the case out).", indent="")
        return "\n".join(out) + "\n"
    text = path.read_text(encoding="utf-8")
    body = "".join(line for line in text.splitlines(keepends=True) if not _DIRECTIVE.match(line))
    out += [f"Example ({path.name}):", "", *_indented(body), ""]
    for helper in _helpers(path, text):
        out += [f"Beside it, {helper}:", "", *_indented((path.parent / helper).read_text(encoding="utf-8")), ""]
    return "\n".join(out)


_INCLUDE = re.compile(r'^\s*include\s+"([^"\s]+)"', re.M)


def _helpers(example: Path, text: str) -> list[str]:
    """The files beside ``example`` that it needs: those it names under files/,
    and what those include in turn (a chain of includes), relative to it."""
    top = example.parent
    found: list[str] = []
    todo = [(top, text)]
    while todo and len(found) < 64:
        here, body = todo.pop()
        names = _HELPER.findall(body) if here == top else []
        names += [str((here / n).relative_to(top)) for n in _INCLUDE.findall(body) if here != top]
        for name in sorted({os.path.normpath(n) for n in names}):
            helper = top / name
            if name not in found and name != example.name and not name.startswith("..") and helper.is_file():
                found.append(name)
                todo.append((helper.parent, helper.read_text(encoding="utf-8")))
    return sorted(found)


def lookup(word: str) -> Code | None:
    return CATALOGUE.get(word.strip().upper())
