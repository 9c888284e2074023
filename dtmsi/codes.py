"""The one catalogue of diagnostic codes.

Codes are stable: tests, users' ``-W no-CODE`` flags and CI logs depend on them.
E = error, W = warning. Hundreds group the phase or subject:
1xx source and syntax, 2xx names and references, 3xx PCI topology and
numbering, 4xx BARs and windows, 5xx INTx, 6xx MSI/MSI-X capabilities and
policies, 7xx MSI controllers and msi-map, 8xx PEs, partitions and PAPR,
9xx base trees and output.

Every code also has its long form in :mod:`dtmsi.explain` (``dtmsi explain
CODE``: the rule, its source, and the code's fixture in tests/errors/ as the
example); a test fails for a code without one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Code:
    id: str
    title: str

    @property
    def is_error(self) -> bool:
        return self.id.startswith("E")


CATALOGUE: dict[str, Code] = {}


def _code(id_: str, title: str) -> Code:
    assert id_ not in CATALOGUE, id_
    code = Code(id_, title)
    CATALOGUE[id_] = code
    return code


# 1xx: source, syntax, includes, expressions
SYNTAX = _code("E101", "syntax error")
UNTERMINATED = _code("E102", "unterminated comment or string")
INCLUDE_NOT_FOUND = _code("E103", "included file not found")
INCLUDE_CYCLE = _code("E104", "include cycle")
DIVISION_BY_ZERO = _code("E105", "division by zero in an expression")
NUMBER_RANGE = _code("E106", "number out of range")
BAD_RANGE = _code("E107", "empty or reversed range")
UNKNOWN_STATEMENT = _code("E108", "statement not allowed here")
REPEATED_SETTING = _code("E109", "setting given twice")
MISSING_SETTING = _code("E110", "required setting missing")
BAD_VALUE = _code("E111", "value not allowed here")
TEMPLATE_ARGS = _code("E112", "wrong number of template arguments")
TEMPLATE_RECURSION = _code("E113", "template uses itself")
# Limits (dtmsi/limits.py): what keeps every compile bounded in time and memory.
NUMBER_DIGITS = _code("E114", "number literal has too many digits")
VALUE_WIDTH = _code("E115", "value wider than 128 bits")
NESTING_DEPTH = _code("E116", "blocks, expressions or template uses nested too deeply")
INCLUDE_DEPTH = _code("E117", "includes nested too deeply")
REPEAT_SIZE = _code("E118", "repeat or list too long")
EXPANSION_LIMIT = _code("E119", "too many statements after expansion")
INPUT_FILE = _code("E120", "input is not a regular file or is too large")
STRING_LENGTH = _code("E121", "string too long")
INTERPOLATION_WIDTH = _code("E122", "interpolation width or precision too large")
STATEMENT_LENGTH = _code("E123", "statement too long")

# 2xx: names and references
UNKNOWN_NAME = _code("E201", "unknown name")
DUPLICATE_NAME = _code("E202", "name defined twice")
WRONG_KIND = _code("E203", "name refers to the wrong kind of thing")
STUB_IDENTIFIER = _code("E204", "name cannot become an identifier of the generated stubs")

# 3xx: PCI topology and numbering
DEVFN_RANGE = _code("E301", "device or function number out of range")
DUPLICATE_BDF = _code("E302", "two functions at the same bus/device/function")
MISSING_FUNCTION0 = _code("E303", "multi-function device without function 0")
BUS_EXHAUSTED = _code("E304", "bus numbers exhausted")
BUS_PIN_CONFLICT = _code("E305", "pinned bus number conflicts with enumeration")
DOMAIN_MIXED = _code("E306", "PCI domain given on some host bridges only")
DOMAIN_DUPLICATE = _code("E307", "two host bridges in the same PCI domain")
ARI_DEVICE = _code("E308", "ARI function not at device 0")
ECAM_SIZE = _code("E309", "ECAM region too small for the bus range")
VF_BUS = _code("W310", "SR-IOV virtual functions spill onto another bus")
VF_RID_RANGE = _code("E311", "SR-IOV virtual function routing ID beyond the bus range")
HOST_BRIDGE_OVERLAP = _code("E312", "host bridge bus ranges or config regions overlap")
PORT_DEVICE_NONZERO = _code("W313", "function at a device number other than 0 below a PCIe port, without ARI")

# 4xx: BARs and windows
BAR_INDEX = _code("E401", "BAR index invalid")
BAR_SIZE = _code("E402", "BAR size not a power of two or too small")
BAR_OVERLAP_SLOT = _code("E403", "BAR slots overlap (64-bit BAR uses two slots)")
WINDOW_OVERLAP = _code("E404", "address windows overlap")
WINDOW_FULL = _code("E405", "BARs do not fit in the host bridge window")
BAR_FIXED_MISALIGNED = _code("E406", "fixed BAR address not aligned to its size")
BAR_FIXED_OUTSIDE = _code("E407", "fixed BAR address outside every window of its type")
BAR_OVERLAP = _code("E408", "BARs overlap")
MEM32_ABOVE_4G = _code("E409", "32-bit window above 4 GiB")
NO_WINDOW = _code("E410", "no window for this BAR type")
IO_BAR_SIZE = _code("E411", "I/O BAR larger than 256 bytes")

# 5xx: INTx
INTX_PIN = _code("E501", "INTx pin invalid")
INTX_NO_ROUTE = _code("E502", "INTx pin has no route to an interrupt controller")
INTX_ON_VF = _code("E503", "SR-IOV virtual functions have no INTx")
INTX_SPEC = _code("E504", "INTx route does not fit the interrupt controller")

# 6xx: MSI / MSI-X capabilities and policies
MSI_VECTORS = _code("E601", "MSI vector count not a power of two in 1..32")
MSIX_TABLE_SIZE = _code("E602", "MSI-X table size outside 1..2048")
MSIX_BIR = _code("E603", "MSI-X BIR does not name an implemented memory BAR")
MSIX_ALIGN = _code("E604", "MSI-X table or PBA offset not 8-byte aligned")
MSIX_OUTSIDE_BAR = _code("E605", "MSI-X table or PBA outside its BAR")
MSIX_OVERLAP = _code("E606", "MSI-X table and PBA overlap")
POLICY_MECHANISM = _code("E607", "policy names a mechanism the function lacks")
POLICY_NO_MECHANISM = _code("E608", "no mechanism of the policy is available")
POLICY_MIN = _code("E609", "policy minimum cannot be met")
POLICY_DEGRADED = _code("W610", "policy got fewer vectors than it asked for")
POLICY_FELL_BACK = _code("W611", "policy fell back to a later mechanism")
NO_INTERRUPT = _code("W612", "function has neither MSI, MSI-X nor INTx")
CAP_OFFSET = _code("E613", "capability offset outside 0x40..0xff, not dword-aligned, or overlapping")
POLICY_COUNT_UNUSED = _code("W614", "policy gives a vector count for a mechanism it does not prefer")

# 7xx: MSI controllers and msi-map
MSI_MAP_TARGET = _code("E701", "msi-map target is not an MSI controller with #msi-cells = <1>")
MSI_MAP_RANGE = _code("E702", "msi-map entry beyond requester ID 0xffff")
MSI_MAP_MASK = _code("E703", "msi-map rid-base has bits outside msi-map-mask")
MSI_MAP_UNCOVERED = _code("E704", "requester ID not covered by msi-map")
MSI_MAP_OVERLAP = _code("W705", "msi-map entries overlap")
MSI_MAP_OFFSET = _code("W706", "msi-map DeviceID differs from the requester ID hardware sends")
DEVICE_ID_COLLISION = _code("E707", "two functions map to one DeviceID")
DEVICE_ID_WIDTH = _code("E708", "DeviceID or EventID wider than the controller supports")
CONTROLLER_CAPACITY = _code("E709", "MSI controller out of interrupt numbers")
CONTROLLER_MULTI_MSI = _code("E710", "controller cannot do multi-vector MSI")
MSI_NO_CONTROLLER = _code("E711", "host bridge has no MSI controller")
MSI_MAP_MASK_ALONE = _code("E712", "msi-map-mask without msi-map")
ADDRESS_64BIT = _code("E713", "64-bit MSI address on a 32-bit-only function")
AVAILABLE_RANGES = _code("E714", "msi-available-ranges not in multiples of 32")
APIC_CPU_OUTSIDE_PLATFORM = _code("E715", "x86-apic CPU not among the platform's CPUs")
APIC_ID_UNENCODABLE = _code("E716", "x86 APIC ID does not fit the MSI address's 8-bit destination")
FSL_MSI_NO_MPIC = _code("E717", "FSL MSI block without the MPIC its banks cascade to")
CONTROLLER_OUTSIDE_BUS = _code("E718", "controller registers outside the ranges of the bus it sits on")

# 8xx: PEs, partitions, PAPR
FUNCTION_SHARED = _code("E801", "function owned by two partitions")
FUNCTION_UNOWNED = _code("W802", "function owned by no partition")
PE_SPLIT = _code("E803", "PE split across partitions")
PE_TOTAL_BELOW_DEVICES = _code("E804", "ibm,pe-total-#msi below the number of devices")
BRIDGE_CLASS = _code("E805", "bridge without a bridge class code")
REQ_MSI = _code("E806", "ibm,req#msi not a power of two or above the capability")
PE_TOTAL_MISSING = _code("E807", "PHB without ibm,pe-total-#msi")
RTAS_TOKENS = _code("E808", "RTAS tokens missing")
SIDEBAND_COLLISION = _code("E809", "partitions share a DeviceID on one controller")
PARTITION_BUDGET = _code("E810", "partition MSI budget cannot cover its functions")
PE_IN_TWO = _code("E811", "function in two PEs")
QUOTA_SHORT = _code("W812", "Linux quota gives fewer vectors than requested")
PE_OVERCOMMIT = _code("W813", "planned MSI allocations exceed ibm,pe-total-#msi")
PE_ANCHOR = _code("E814", "a PE's MSI total needs a bridge that holds exactly the PE")

# 9xx: base trees and output
BASE_TREE = _code("E901", "base device tree cannot be read")
BASE_NODE_MISSING = _code("E902", "node expected in the base tree is missing")
BASE_NODE_MISMATCH = _code("W903", "base tree node disagrees with the declaration")
RAW_NODE = _code("E904", "raw node or property cannot be placed")
OUTPUT_WRITE = _code("E905", "output cannot be written")
BASE_UNIT_ADDRESS = _code("E906", "a node dtmsi makes has the unit address of a base-tree node beside it")

# 93x: base trees as dtc sees them
BASE_TREE_DTC = _code("W930", "dtc warns about the base tree")
BASE_TREE_UNCHECKED = _code("W931", "base tree not checked: dtc cannot be run")

# 95x: inputs
NOTHING_TO_COMPILE = _code("W950", "the input declares nothing to compile")

# 97x: policies applied to many functions (issue 11)
POLICY_NOTHING_AVAILABLE = _code("W970", "a default, class or inherited policy names nothing the function has")

# 98x: overlays
OVERLAY_NO_BASE = _code("W980", "overlay asked for, but there is no base tree to apply it to")
OVERLAY_BASE_REF = _code("E981", "overlay cannot refer to a node of the base tree")
BASE_TREE_DEPTH = _code("E915", "base device tree nested too deeply")
