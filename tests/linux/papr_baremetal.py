"""The generated PAPR stub, judged by QEMU's real RTAS (pseries, VOF).

``papr_baremetal/pseries.msi`` describes QEMU's ``pseries`` machine (its
default PHB, RTAS tokens and windows, as QEMU's own tree has them) with five
functions.  dtmsi compiles it; its ``system_msi.c`` is cross-compiled with
``powerpc64-linux-gnu-gcc`` together with ``papr_baremetal/start.S`` and
``hooks.c`` into a freestanding big-endian ppc64 program (``link.ld``: linked
at 0x400000, where QEMU's loader puts it).  QEMU boots it with VOF
(``-M pseries,x-vof=on -kernel prog.elf``) in about 0.1 s.  The program
makes its hooks out of hypercalls (``H_RTAS`` for RTAS, config space through
RTAS ``ibm,read/write-pci-config``, the MSI-X tables through
``H_LOGICAL_CI_LOAD/STORE``, output through ``H_PUT_TERM_CHAR``), writes the
BARs dtmsi planned (nobody assigns BARs under VOF), runs ``setup_all``,
prints every function's result and the device registers, runs
``teardown_all``, prints again and powers off through RTAS.

QEMU's trace is the oracle (:func:`judge`): ``spapr_pci_rtas_ibm_change_msi``
(what ``ibm,change-msi`` granted: config address, function code, count, first
interrupt source), ``spapr_pci_msi_retry`` (a request above what the device
holds: QEMU answers success with fewer and allocates nothing),
``spapr_pci_rtas_ibm_query_interrupt_source_number``, ``spapr_pci_msi``
(releases), ``pci_cfg_write`` (every config write; the program's marker
writes split setup from teardown) and ``memory_region_ops_write`` (every
MMIO write that reaches an MSI-X table).

Public API::

    build = build_program(PSERIES_MSI, out)                # dtmsi + cross-compile
    run = run_program(build, PSERIES_DEVICES)              # one boot
    problems = judge(build.allocation, run.output, run.trace)
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libfdt

from .guest import HarnessError

__all__ = [
    "CROSS_CC",
    "E_SHORT_GRANT",
    "PSERIES_DEVICES",
    "PSERIES_MSI",
    "QEMU",
    "SPAPR_PCI_MSI_WINDOW",
    "TRACE_EVENTS",
    "Change",
    "FunctionResult",
    "HvTrace",
    "PaprBuild",
    "PaprRun",
    "ProgramOutput",
    "QemuPseries",
    "build_program",
    "config_addr_of",
    "judge",
    "mutate_config_addr",
    "mutate_first_request",
    "parse_output",
    "parse_trace",
    "qemu_pseries",
    "run_program",
    "system_dtb_phb",
]

HERE = Path(__file__).resolve().parent
PROGRAM_DIR = HERE / "papr_baremetal"
PSERIES_MSI = PROGRAM_DIR / "pseries.msi"
SOURCES = (PROGRAM_DIR / "start.S", PROGRAM_DIR / "hooks.c")
LINK_LD = PROGRAM_DIR / "link.ld"

CROSS_CC = "powerpc64-linux-gnu-gcc"
CROSS_PACKAGE = "gcc-powerpc64-linux-gnu"
QEMU = "qemu-system-ppc64"
QEMU_PACKAGE = "qemu-system-ppc"
CFLAGS: tuple[str, ...] = (
    "-ffreestanding",
    "-nostdlib",
    "-static",
    "-mbig-endian",
    "-O2",
    "-Wall",
    "-Wextra",
    "-Werror",
    # real mode with MSR[FP/VEC/VSX] off: no floating point or vector code
    "-mno-altivec",
    "-mno-vsx",
    "-msoft-float",
    "-fno-stack-protector",
    "-fno-pie",
    "-no-pie",
)
LDFLAGS: tuple[str, ...] = ("-Wl,--build-id=none", "-Wl,--no-warn-rwx-segments")

#: The functions of pseries.msi, at the addresses it declares.  No option
#: ROMs (pseries under VOF runs none; ipxe-qemu need not be installed).
PSERIES_DEVICES: tuple[str, ...] = (
    "e1000e,addr=02.0,romfile=",
    "virtio-net-pci,addr=03.0,romfile=",
    "nec-usb-xhci,addr=04.0",
    "nec-usb-xhci,addr=05.0",
    "nec-usb-xhci,addr=06.0",
)
MACHINE: tuple[str, ...] = ("-M", "pseries,x-vof=on", "-m", "512M", "-smp", "1")

#: QEMU 7.2 trace events the oracle reads (``qemu-system-ppc64 -trace help``).
TRACE_EVENTS: tuple[str, ...] = (
    "spapr_pci_rtas_ibm_change_msi",
    "spapr_pci_rtas_ibm_query_interrupt_source_number",
    "spapr_pci_msi_retry",
    "spapr_pci_msi_setup",
    "spapr_pci_msi",
    "pci_cfg_write",
    "memory_region_ops_write",
)

#: The program's markers: this value to Interrupt Line (0x3c) of the table's
#: first function starts each phase (hooks.c, marker()).
MARKERS = {"setup": 0xA5, "teardown": 0x5A}
MARKER_OFFSET = 0x3C

#: QEMU's RTAS function codes (hw/ppc/spapr_pci.c) and where it sends MSIs.
RTAS_CHANGE_MSI_FN = 3
RTAS_CHANGE_MSIX_FN = 4
SPAPR_PCI_MSI_WINDOW = 0x400_0000_0000
E_SHORT_GRANT = -11  # CONTRACT.md, "Statuses"


def _tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise HarnessError(f"{name} is missing: apt-get install {package} (scripts/apt-packages.txt)")
    return found


def _run(cmd: Sequence[str], *, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(
            list(cmd), cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise HarnessError(f"{cmd[0]} did not finish in {timeout:.0f} s: {' '.join(cmd)}") from exc
    if proc.returncode != 0:
        raise HarnessError(
            f"{' '.join(cmd)} failed with exit code {proc.returncode}:\n{proc.stderr.strip() or proc.stdout.strip()}"
        )
    return proc


def config_addr_of(bdf: str) -> int:
    """RTAS config_addr of "SSSS:BB:DD.F" (register 0): bus << 16 | devfn << 8."""
    _, bus, devfn = bdf.split(":")
    dev, fn = devfn.split(".")
    return (int(bus, 16) << 16) | (((int(dev, 16) << 3) | int(fn, 16)) << 8)


# --------------------------------------------------------------------------
# QEMU's own tree
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class QemuPseries:
    """What the program and the .msi take from QEMU's ``-M pseries,dumpdtb=``."""

    dtb: bytes
    rtas: dict[str, int]  # /rtas tokens by service name
    timebase_hz: int
    phb_props: dict[str, bytes]  # the default PHB's reg, ranges, ibm,pe-total-#msi


def _props(fdt: Any, node: int) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    poff = fdt.first_property_offset(node, libfdt.QUIET_NOTFOUND)
    while poff >= 0:
        prop = fdt.get_property_by_offset(poff)
        out[prop.name] = bytes(prop)
        poff = fdt.next_property_offset(poff, libfdt.QUIET_NOTFOUND)
    return out


def _children(fdt: Any, node: int) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    child = fdt.first_subnode(node, libfdt.QUIET_NOTFOUND)
    while child >= 0:
        out.append((fdt.get_name(child), child))
        child = fdt.next_subnode(child, libfdt.QUIET_NOTFOUND)
    return out


def _cell(value: bytes) -> int:
    return int(struct.unpack(">I", value[:4])[0])


def qemu_pseries(devices: Sequence[str], work: Path) -> QemuPseries:
    """QEMU's tree for ``devices`` (``-M pseries,x-vof=on,dumpdtb=``)."""
    qemu = _tool(QEMU, QEMU_PACKAGE)
    work.mkdir(parents=True, exist_ok=True)
    path = work / "qemu-pseries.dtb"
    machine = list(MACHINE)
    machine[1] += f",dumpdtb={path}"
    cmd = [qemu, *machine, "-display", "none", "-nodefaults"]
    for dev in devices:
        cmd += ["-device", dev]
    _run(cmd, timeout=60)
    blob = path.read_bytes()
    fdt = libfdt.Fdt(blob)
    rtas = {name: _cell(value) for name, value in _props(fdt, fdt.path_offset("/rtas")).items() if len(value) == 4}
    cpus = [off for name, off in _children(fdt, fdt.path_offset("/cpus")) if name.startswith("PowerPC,")]
    if not cpus:
        raise HarnessError("QEMU's pseries tree has no /cpus/PowerPC,* node")
    timebase = _cell(_props(fdt, cpus[0])["timebase-frequency"])
    phb = _props(fdt, fdt.path_offset("/pci@800000020000000"))
    return QemuPseries(
        dtb=blob,
        rtas=rtas,
        timebase_hz=timebase,
        phb_props={k: phb[k] for k in ("reg", "ranges", "ibm,pe-total-#msi") if k in phb},
    )


def system_dtb_phb(dtb: Path) -> tuple[dict[str, bytes], dict[str, int]]:
    """dtmsi's own tree: the PHB's (reg, ranges, ibm,pe-total-#msi) and its /rtas tokens."""
    fdt = libfdt.Fdt(dtb.read_bytes())
    phb = _props(fdt, fdt.path_offset("/pci@800000020000000"))
    rtas = {name: _cell(v) for name, v in _props(fdt, fdt.path_offset("/rtas")).items() if len(v) == 4}
    return {k: phb[k] for k in ("reg", "ranges", "ibm,pe-total-#msi") if k in phb}, rtas


@dataclass(frozen=True)
class BarWrite:
    bus: int
    devfn: int
    reg: int
    value: int


def planned_bars(dtb: Path) -> tuple[BarWrite, ...]:
    """Every BAR of dtmsi's tree (``assigned-addresses`` of each PCI node),
    as the 32-bit config writes firmware would make (a 64-bit BAR: two)."""
    fdt = libfdt.Fdt(dtb.read_bytes())
    out: list[BarWrite] = []

    def walk(node: int) -> None:
        raw = _props(fdt, node).get("assigned-addresses", b"")
        for i in range(0, len(raw) - 19, 20):
            hi, mid, lo, _, _ = struct.unpack(">5I", raw[i : i + 20])
            bus, devfn, reg, space = (hi >> 16) & 0xFF, (hi >> 8) & 0xFF, hi & 0xFF, (hi >> 24) & 3
            out.append(BarWrite(bus, devfn, reg, lo))
            if space == 3:  # 64-bit memory: the upper half in the next register
                out.append(BarWrite(bus, devfn, reg + 4, mid))
        for _, child in _children(fdt, node):
            walk(child)

    walk(fdt.path_offset("/"))
    return tuple(out)


def platform_header(qemu: QemuPseries, bars: Sequence[BarWrite], segment: int = 0) -> str:
    """``papr_platform.h`` for hooks.c: QEMU's tokens and timebase, dtmsi's BARs."""
    need = ("ibm,read-pci-config", "ibm,write-pci-config", "power-off")
    missing = [n for n in need if n not in qemu.rtas]
    if missing:
        raise HarnessError(f"QEMU's /rtas has no {', '.join(missing)}")
    lines = [
        "/* Generated by tests/linux/papr_baremetal.py: QEMU's /rtas tokens and",
        " * timebase (dumpdtb), dtmsi's BARs (system.dtb assigned-addresses). */",
        "#ifndef PAPR_PLATFORM_H",
        "#define PAPR_PLATFORM_H",
        f"#define PAPR_TOKEN_IBM_READ_PCI_CONFIG {qemu.rtas['ibm,read-pci-config']:#x}u",
        f"#define PAPR_TOKEN_IBM_WRITE_PCI_CONFIG {qemu.rtas['ibm,write-pci-config']:#x}u",
        f"#define PAPR_TOKEN_POWER_OFF {qemu.rtas['power-off']:#x}u",
        f"#define PAPR_TB_HZ {qemu.timebase_hz}u",
        f"#define PAPR_SEGMENT {segment}u",
        "#define PAPR_BARS \\",
        *(f"    PAPR_BAR({b.bus:#x}u, {b.devfn:#x}u, {b.reg:#x}u, {b.value:#x}u) \\" for b in bars),
        "    /* end */",
        "#endif",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# building
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class PaprBuild:
    out: Path  # dtmsi's output directory
    allocation: dict[str, Any]
    source: Path  # the generated C that was compiled (possibly mutated)
    program: Path  # prog.elf
    prefix: str
    qemu: QemuPseries
    bars: tuple[BarWrite, ...]
    devices: tuple[str, ...]
    build_s: float


def _stub_prefix(header: str) -> str:
    found = {m.group(1) for m in re.finditer(r"\bstruct\s+([A-Za-z_]\w*)_hooks\s*\{", header)}
    if len(found) != 1:
        raise HarnessError(f"cannot tell the stub's prefix from its header (struct *_hooks: {sorted(found)})")
    return found.pop()


def build_program(
    msi: Path,
    out: Path,
    *,
    devices: Sequence[str] = PSERIES_DEVICES,
    mutate: Callable[[str], str] | None = None,
    stem: str = "system_msi",
) -> PaprBuild:
    """``dtmsi compile msi -o out``, then prog.elf from ``<stem>.c``.

    ``mutate`` rewrites the generated C before it is compiled (negative
    controls); allocation.json stays the compiler's.
    """
    cc = _tool(CROSS_CC, CROSS_PACKAGE)
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "dtmsi", "compile", str(msi), "-o", str(out)])
    header, source = out / f"{stem}.h", out / f"{stem}.c"
    if not header.exists() or not source.exists():
        raise HarnessError(f"dtmsi compile wrote no {header.name}/{source.name} in {out}")
    if mutate is not None:
        text = source.read_text()
        mutated = mutate(text)
        if mutated == text:
            raise HarnessError(f"the mutation changed nothing in {source.name}: the negative control would be void")
        source = out / f"{stem}.mutated.c"
        source.write_text(mutated)
    qemu = qemu_pseries(devices, out)
    bars = planned_bars(out / "system.dtb")
    gen = out / "gen"
    gen.mkdir(exist_ok=True)
    (gen / "papr_platform.h").write_text(platform_header(qemu, bars))
    prefix = _stub_prefix(header.read_text())
    program = out / "prog.elf"
    _run(
        [
            cc,
            *CFLAGS,
            "-I",
            str(out),
            "-I",
            str(gen),
            f"-DSTUB(x)={prefix}_##x",
            f"-DSTUBU(x)={prefix.upper()}_##x",
            f'-DSTUB_HEADER="{header.name}"',
            f"-DSTUB_NFUNCTIONS={prefix.upper()}_NFUNCTIONS",
            "-T",
            str(LINK_LD),
            *LDFLAGS,
            *map(str, SOURCES),
            str(source),
            "-o",
            str(program),
        ]
    )
    return PaprBuild(
        out=out,
        allocation=json.loads((out / "allocation.json").read_text()),
        source=source,
        program=program,
        prefix=prefix,
        qemu=qemu,
        bars=bars,
        devices=tuple(devices),
        build_s=time.monotonic() - started,
    )


# --------------------------------------------------------------------------
# what the program printed
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class MsixEntry:
    entry: int
    address: int
    data: int
    ctrl: int
    msgctl: int


@dataclass(frozen=True)
class FunctionResult:
    """One ``@@papr fn`` line with its ``vec``, ``msix`` and ``msi`` lines."""

    bdf: str
    name: str
    status: int
    strerror: str
    fw_status: int
    mechanism: str
    vectors: int
    requested: int
    set_up: bool
    config_addr: int
    command: int | None
    irqs: tuple[int, ...]
    msix: tuple[MsixEntry, ...]
    msi: dict[str, int] | None  # ctrl, addr, data of the MSI capability


@dataclass(frozen=True)
class ProgramOutput:
    text: str
    phases: dict[str, dict[str, FunctionResult]]  # "setup"/"teardown" -> bdf -> result
    failed: dict[str, int]  # "setup"/"teardown" -> the entry point's return value
    caps: dict[str, dict[int, int]]  # bdf -> capability ID -> offset (first found)
    markers: dict[str, tuple[str, int]]  # phase -> (bdf, value)
    bars: tuple[tuple[str, int, int, int], ...]  # (bdf, reg, value, status)
    logs: tuple[str, ...]
    errors: tuple[str, ...]
    begun: bool
    done: bool


_KV = re.compile(r"(\w+)=(\S*)")


def run_to_power_off(cmd: list[str], console: Path, timeout_s: float) -> tuple[str, float]:
    """Run a bare-metal QEMU command until the program powers the machine off;
    what it printed on the console, and how long it took."""
    started = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        log = console.read_text(errors="replace") if console.exists() else ""
        raise HarnessError(f"QEMU did not power off in {timeout_s:.0f} s: {' '.join(cmd)}\n{log[-3000:]}") from exc
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise HarnessError(f"QEMU failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return (console.read_text(errors="replace") if console.exists() else ""), elapsed


def parse_output(text: str) -> ProgramOutput:
    """Parse hooks.c's ``@@papr`` lines."""
    fns: dict[str, dict[str, dict[str, str]]] = {}
    vecs: dict[tuple[str, str], list[tuple[int, int]]] = {}
    msix: dict[tuple[str, str], list[MsixEntry]] = {}
    msi: dict[tuple[str, str], dict[str, int]] = {}
    failed: dict[str, int] = {}
    caps: dict[str, dict[int, int]] = {}
    markers: dict[str, tuple[str, int]] = {}
    bars: list[tuple[str, int, int, int]] = []
    logs: list[str] = []
    errors: list[str] = []
    begun = done = False
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        if not line.startswith("@@papr "):
            continue
        words = line.split()
        tag = words[1]
        kv = dict(_KV.findall(line))
        if tag == "begin":
            begun = True
        elif tag == "done":
            done = True
        elif tag == "error":
            errors.append(line)
        elif tag == "log":
            logs.append(line.split(" ", 2)[2])
        elif tag == "bar":
            bars.append((words[2], int(kv["reg"], 16), int(kv["value"], 16), int(kv["status"])))
        elif tag == "caps":
            found: dict[int, int] = {}
            for item in filter(None, kv.get("list", "").split(",")):
                cap_id, off = item.split("@")
                found.setdefault(int(cap_id, 16), int(off, 16))
            caps[words[2]] = found
        elif tag == "marker":
            markers[words[2]] = (words[3], int(kv["value"], 16))
        elif tag in ("setup_all", "teardown_all"):
            failed[tag.removesuffix("_all")] = int(kv["failed"])
        elif tag == "fn":
            fns.setdefault(words[2], {})[words[3]] = kv
        elif tag == "vec":
            vecs.setdefault((words[2], words[3]), []).append((int(kv["index"]), int(kv["irq"], 16)))
        elif tag == "msix":
            msix.setdefault((words[2], words[3]), []).append(
                MsixEntry(
                    int(kv["entry"]), int(kv["addr"], 16), int(kv["data"], 16), int(kv["ctrl"], 16),
                    int(kv["msgctl"], 16),
                )
            )  # fmt: skip
        elif tag == "msi":
            msi[(words[2], words[3])] = {k: int(kv[k], 16) for k in ("ctrl", "addr", "data")}
    phases: dict[str, dict[str, FunctionResult]] = {}
    for phase, by_bdf in fns.items():
        phases[phase] = {}
        for bdf, kv in by_bdf.items():
            phases[phase][bdf] = FunctionResult(
                bdf=bdf,
                name=kv["name"],
                status=int(kv["status"]),
                strerror=kv.get("strerror", "").replace("_", " "),
                fw_status=int(kv["fw"]),
                mechanism=kv["mechanism"],
                vectors=int(kv["vectors"]),
                requested=int(kv["requested"]),
                set_up=kv["set_up"] == "1",
                config_addr=int(kv["config_addr"], 16),
                command=int(kv["command"], 16) if "command" in kv else None,
                irqs=tuple(irq for _, irq in sorted(vecs.get((phase, bdf), []))),
                msix=tuple(msix.get((phase, bdf), [])),
                msi=msi.get((phase, bdf)),
            )
    return ProgramOutput(text, phases, failed, caps, markers, tuple(bars), tuple(logs), tuple(errors), begun, done)


# --------------------------------------------------------------------------
# QEMU's trace: the oracle
# --------------------------------------------------------------------------


@dataclass
class Change:
    """One ``ibm,change-msi`` that QEMU answered with success and a count.

    ``first == 0``: nothing was allocated (QEMU's answer to a request above
    what the device holds; ``retry`` then says (asked, have))."""

    config_addr: int
    function: int
    count: int
    first: int
    retry: tuple[int, int] | None
    queries: list[tuple[int, int]] = field(default_factory=list)  # (index, source) that followed


@dataclass(frozen=True)
class HvEvent:
    kind: str  # "change", "release", "release-wrong", "query-failed", "cfg-write", "msix-write"
    config_addr: int
    change: Change | None = None
    offset: int = 0  # cfg-write: register; msix-write: PCI address
    value: int = 0
    size: int = 0
    line: str = ""


@dataclass(frozen=True)
class HvTrace:
    """QEMU's trace, cut into the program's phases by its marker writes."""

    text: str
    phases: dict[str, tuple[HvEvent, ...]]  # "boot" (before the setup marker), "setup", "teardown"
    markers_found: tuple[str, ...]
    unattributed_queries: tuple[str, ...]  # queries before any change-msi

    def events(self, phase: str, kind: str | None = None, config_addr: int | None = None) -> list[HvEvent]:
        return [
            e
            for e in self.phases.get(phase, ())
            if (kind is None or e.kind == kind) and (config_addr is None or e.config_addr == config_addr)
        ]

    def changes(self, phase: str, config_addr: int | None = None) -> list[Change]:
        return [e.change for e in self.events(phase, "change", config_addr) if e.change is not None]


_CHANGE_RE = re.compile(
    r"\bspapr_pci_rtas_ibm_change_msi cfgaddr 0x([0-9a-f]+) func (\d+), requested (\d+), first irq (\d+)"
)
_RETRY_RE = re.compile(r"\bspapr_pci_msi_retry Guest device at 0x([0-9a-f]+) asked (\d+), have only (\d+)")
_QUERY_RE = re.compile(r"\bspapr_pci_rtas_ibm_query_interrupt_source_number queries for #(\d+), IRQ(\d+)")
_MSI_RE = re.compile(r"\bspapr_pci_msi (.*) \(cfg=0x([0-9a-f]+)\)")
_CFG_WRITE_RE = re.compile(
    r"\bpci_cfg_write\s+\S+\s+([0-9a-f]+):([0-9a-f]+)\.([0-7])\s+@0x([0-9a-f]+)\s+<-\s+0x([0-9a-f]+)"
)
_MMIO_WRITE_RE = re.compile(
    r"\bmemory_region_ops_write cpu \d+ mr \S+ addr 0x([0-9a-f]+) value 0x([0-9a-f]+) size (\d+) name 'msix-table'"
)


def parse_trace(text: str, marker_bdf: str) -> HvTrace:
    """QEMU's trace as events per phase; queries belong to the change-msi before them
    (QEMU's query line names no device: RTAS answers one call at a time)."""
    marker_ca = config_addr_of(marker_bdf)
    by_value = {v: k for k, v in MARKERS.items()}
    phase = "boot"
    phases: dict[str, list[HvEvent]] = {"boot": []}
    found: list[str] = []
    pending_retry: dict[int, tuple[int, int]] = {}
    last_change: Change | None = None
    orphans: list[str] = []
    for line in text.splitlines():
        if m := _CFG_WRITE_RE.search(line):
            bus, dev, fn, off, val = (int(g, 16) for g in m.groups())
            ca = (bus << 16) | (((dev << 3) | fn) << 8)
            if ca == marker_ca and off == MARKER_OFFSET and val in by_value:
                phase = by_value[val]
                found.append(phase)
                phases.setdefault(phase, [])
                continue
            phases[phase].append(HvEvent("cfg-write", ca, offset=off, value=val, line=line))
        elif m := _RETRY_RE.search(line):
            pending_retry[int(m.group(1), 16)] = (int(m.group(2)), int(m.group(3)))
        elif m := _CHANGE_RE.search(line):
            ca = int(m.group(1), 16)
            change = Change(ca, int(m.group(2)), int(m.group(3)), int(m.group(4)), pending_retry.pop(ca, None))
            last_change = change
            phases[phase].append(HvEvent("change", ca, change=change, line=line))
        elif m := _QUERY_RE.search(line):
            if last_change is None:
                orphans.append(line)
            else:
                last_change.queries.append((int(m.group(1)), int(m.group(2))))
        elif m := _MSI_RE.search(line):
            what, ca = m.group(1), int(m.group(2), 16)
            kind = {
                "Released MSIs": "release",
                "Releasing wrong config": "release-wrong",
                "Failed to return vector": "query-failed",
            }.get(what, "msi-other")
            phases[phase].append(HvEvent(kind, ca, line=line))
        elif m := _MMIO_WRITE_RE.search(line):
            phases[phase].append(
                HvEvent("msix-write", -1, offset=int(m.group(1), 16), value=int(m.group(2), 16),
                        size=int(m.group(3)), line=line)
            )  # fmt: skip
    return HvTrace(text, {k: tuple(v) for k, v in phases.items()}, tuple(found), tuple(orphans))


def judge(allocation: Mapping[str, Any], out: ProgramOutput, trace: HvTrace) -> list[str]:
    """What is wrong between the plan, the stub's results and what the hypervisor did; [] when:

    * every function the stub set up with MSI/MSI-X holds exactly one grant
      QEMU made for its config address (function code 4 for MSI-X, 3 for
      MSI; count = the vectors the stub reports), and the stub's source
      numbers are that grant's first + k, each learnt by one query, in
      order, after the one change-msi that allocated them (no per-vector
      requests), and the grant was not released during setup;
    * the first request for each planned MSI/MSI-X function asked the
      planned count (allocation.json hardware_vectors; seen as the
      change-msi count, or as the msi_retry "asked" count when QEMU holds
      fewer);
    * a function QEMU granted in full got the plan (vectors_granted); one it
      short-granted (msi_retry: success with the offer, nothing allocated)
      reports the offer as its policy says: degraded (a second request for
      exactly the offer), E_SHORT_GRANT (vectors = the offer, requested =
      what it asked), or another mechanism holding no grant;
    * no function ends setup holding a grant it does not report, and every
      MSI-X entry the stub reports holds QEMU's message (the MSI window,
      data = its source number), unmasked, MSI-X on;
    * teardown releases each function set up with MSI/MSI-X exactly once
      (QEMU's "Released MSIs"), in reverse table order, asks for nothing,
      and leaves the entries masked and MSI-X off;
    * the stub wrote no MSI address, data or MME, and no MSI-X table word
      other than Vector Control (PAPR: the hypervisor owns the messages).
    """
    if not out.begun or not out.done:
        return [f"the program did not run to its end (begun={out.begun}, done={out.done}); errors: {out.errors}"]
    problems = [f"the program reported: {e}" for e in out.errors]
    if trace.markers_found != ("setup", "teardown"):
        return [*problems, f"QEMU's trace has markers {trace.markers_found}, not setup then teardown"]
    problems.extend(f"a query before any change-msi: {q}" for q in trace.unattributed_queries)
    set_up: list[int] = []
    for fn in allocation["functions"]:
        bdf = str(fn["bdf"])
        who = f"{bdf} {fn['name']}"
        r = out.phases.get("setup", {}).get(bdf)
        if r is None:
            problems.append(f"{who}: the program printed no setup result")
            continue
        problems.extend(_judge_setup(who, fn, r, trace))
        problems.extend(_judge_teardown(who, r, out.phases.get("teardown", {}).get(bdf), trace))
        if r.mechanism in ("msi", "msix") and r.set_up:
            set_up.append(config_addr_of(bdf))
    releases = [e.config_addr for e in trace.events("teardown", "release")]
    if releases != list(reversed(set_up)):
        problems.append(
            f"teardown released {[hex(c) for c in releases]}; want {[hex(c) for c in reversed(set_up)]} "
            "(every function set up with MSI/MSI-X, in reverse table order)"
        )
    problems.extend(_judge_writes(out, trace))
    return problems


def _judge_setup(who: str, fn: Mapping[str, Any], r: FunctionResult, trace: HvTrace) -> list[str]:
    problems: list[str] = []
    ca = config_addr_of(str(fn["bdf"]))
    events = trace.events("setup", config_addr=ca)
    changes = trace.changes("setup", ca)
    allocating = [c for c in changes if c.first != 0]
    if fn["mechanism"] in ("msi", "msix"):
        if not changes:
            problems.append(f"{who}: QEMU saw no ibm,change-msi for config_addr {ca:#x}")
        else:
            first = changes[0]
            asked = first.retry[0] if first.retry else first.count
            if asked != int(fn["hardware_vectors"]):
                problems.append(
                    f"{who}: the first ibm,change-msi asked {asked} vectors; the plan's first request is "
                    f"{fn['hardware_vectors']} (allocation.json hardware_vectors)"
                )
    if r.mechanism in ("msi", "msix"):
        codes = (RTAS_CHANGE_MSIX_FN,) if r.mechanism == "msix" else (RTAS_CHANGE_MSI_FN, 1)
        if not r.set_up or r.status != 0:
            problems.append(f"{who}: mechanism {r.mechanism} but status {r.status}, set_up {r.set_up}")
        if len(allocating) != 1:
            problems.append(
                f"{who}: the stub reports {r.mechanism} x{r.vectors}; QEMU allocated {len(allocating)} time(s) "
                f"for config_addr {ca:#x} (want one change-msi for the whole count)"
            )
        if not allocating:
            return problems
        grant = allocating[-1]
        if grant.function not in codes:
            problems.append(f"{who}: {r.mechanism} granted through ibm,change-msi function {grant.function}")
        if grant.count != r.vectors:
            problems.append(f"{who}: the stub reports {r.vectors} vectors; QEMU allocated {grant.count}")
        sources = tuple(grant.first + k for k in range(grant.count))
        if r.irqs != sources:
            problems.append(
                f"{who}: the stub reports sources {[hex(i) for i in r.irqs]}; QEMU allocated "
                f"{[hex(i) for i in sources]}"
            )
        if grant.queries != [(k, grant.first + k) for k in range(r.vectors)]:
            problems.append(
                f"{who}: QEMU answered the queries {grant.queries} after the change-msi; want one per "
                f"vector 0..{r.vectors - 1}, in order"
            )
        at = next(i for i, e in enumerate(events) if e.change is grant)
        after = events[at + 1 :]
        if any(e.kind in ("release", "release-wrong") for e in after):
            problems.append(f"{who}: its grant was released during setup, yet the stub reports it")
        if r.mechanism == "msix":
            problems.extend(_judge_table(who, r, grant.first))
        elif r.msi is None or (r.msi["ctrl"] & 1) == 0 or r.msi["data"] != grant.first:
            problems.append(f"{who}: the MSI capability {r.msi} is not enabled with QEMU's message")
    else:
        released = [e for e in events if e.kind == "release"]
        if len(allocating) > len(released):
            problems.append(
                f"{who}: the stub reports {r.mechanism} (status {r.status}) but QEMU still holds "
                f"{len(allocating) - len(released)} grant(s) for it"
            )
        if r.irqs:
            problems.append(f"{who}: {r.mechanism} but sources {r.irqs}")
    retried = [c for c in changes if c.retry is not None]
    if retried:
        short = retried[0]
        asked, offer = short.retry or (0, 0)
        if (short.count, short.first) != (offer, 0):
            problems.append(f"{who}: QEMU's short answer {short} is not (the offer, nothing allocated)")
        if r.mechanism in ("msi", "msix"):
            if r.vectors != offer or r.requested != offer:
                problems.append(f"{who}: degraded to {r.vectors} (requested {r.requested}); QEMU offered {offer}")
        elif r.status == E_SHORT_GRANT and (r.vectors, r.requested) != (offer, asked):
            problems.append(
                f"{who}: E_SHORT_GRANT reports vectors {r.vectors} / requested {r.requested}; "
                f"QEMU offered {offer} of {asked}"
            )
    elif fn["mechanism"] in ("msi", "msix") and r.mechanism == fn["mechanism"]:
        granted = allocating[-1].count if allocating else 0
        if (r.vectors, granted) != (int(fn["vectors_granted"]), int(fn["hardware_vectors"])):
            problems.append(
                f"{who}: a full grant: the stub has {r.vectors}, QEMU allocated {granted}; the plan grants "
                f"{fn['vectors_granted']} with hardware_vectors {fn['hardware_vectors']}"
            )
    return problems


def _judge_teardown(who: str, r: FunctionResult, t: FunctionResult | None, trace: HvTrace) -> list[str]:
    problems: list[str] = []
    ca = config_addr_of(r.bdf)
    if trace.changes("teardown", ca):
        problems.append(f"{who}: ibm,change-msi granted during teardown: {trace.changes('teardown', ca)}")
    released = trace.events("teardown", "release", ca)
    refused = trace.events("teardown", "release-wrong", ca)
    if r.mechanism in ("msi", "msix") and r.set_up:
        if len(released) != 1 or refused:
            problems.append(
                f"{who}: teardown released it {len(released)} time(s), {len(refused)} refused; want exactly once"
            )
        if t is None or t.status != 0 or t.set_up or t.mechanism != "none":
            problems.append(f"{who}: teardown result {t}")
        elif r.mechanism == "msix":
            left = [e for e in t.msix[: r.vectors] if (e.ctrl & 1) == 0 or (e.msgctl & 0x8000)]
            if left:
                problems.append(f"{who}: after teardown, entries left unmasked or MSI-X on: {left}")
        elif t.msi is not None and t.msi["ctrl"] & 1:
            problems.append(f"{who}: after teardown MSI is still on: {t.msi}")
    elif released or refused:
        lines = [e.line for e in released + refused]
        problems.append(f"{who}: teardown released a function that holds no grant: {lines}")
    return problems


def _judge_table(who: str, r: FunctionResult, first: int) -> list[str]:
    problems: list[str] = []
    entries = {e.entry: e for e in r.msix}
    for k in range(r.vectors):
        e = entries.get(k)
        if e is None:
            problems.append(f"{who}: the program read no MSI-X entry {k}")
            continue
        if (e.address, e.data) != (SPAPR_PCI_MSI_WINDOW, first + k):
            problems.append(
                f"{who}: MSI-X entry {k} holds address {e.address:#x} data {e.data:#x}; QEMU's message is "
                f"{SPAPR_PCI_MSI_WINDOW:#x} / {first + k:#x}"
            )
        if e.ctrl & 1 or (e.msgctl & 0xC000) != 0x8000:
            problems.append(f"{who}: MSI-X entry {k} masked, or MSI-X off or masked, after setup: {e}")
    return problems


def _judge_writes(out: ProgramOutput, trace: HvTrace) -> list[str]:
    """No MSI address/data/MME write in config space and no MSI-X table write
    but Vector Control (32-bit, at +0xc of an entry)."""
    problems: list[str] = []
    msi_at = {config_addr_of(bdf): caps[0x05] for bdf, caps in out.caps.items() if 0x05 in caps}
    for phase in ("setup", "teardown"):
        for e in trace.events(phase, "cfg-write"):
            cap = msi_at.get(e.config_addr)
            if cap is None:
                continue
            if cap + 4 <= e.offset < cap + 0x10:
                problems.append(f"an MSI address/data write under PAPR: {e.line}")
            elif e.offset == cap + 2 and (e.value >> 4) & 7:
                problems.append(f"an MSI Multiple Message Enable write under PAPR: {e.line}")
        for e in trace.events(phase, "msix-write"):
            if e.offset & 0xF != 0xC or e.size != 4:
                problems.append(f"an MSI-X table write other than Vector Control under PAPR: {e.line}")
    return problems


# --------------------------------------------------------------------------
# one boot
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class PaprRun:
    build: PaprBuild
    console: str
    trace_text: str
    output: ProgramOutput
    trace: HvTrace
    problems: tuple[str, ...]
    boot_s: float
    command: tuple[str, ...]

    def summary(self) -> str:
        """For assertion messages: the verdict, the program's output, QEMU's RTAS lines."""
        rtas = [
            line
            for line in self.trace_text.splitlines()
            if "spapr_pci" in line or ("pci_cfg_write" in line and "@0x3c" in line)
        ]
        return "\n".join(
            [
                *(f"problem: {p}" for p in self.problems),
                "--- program output ---",
                *(line for line in self.console.splitlines() if line.startswith("@@papr")),
                "--- QEMU's RTAS trace ---",
                *rtas,
            ]
        )


def run_program(
    build: PaprBuild,
    *,
    work: Path | None = None,
    timeout_s: float = 30.0,
) -> PaprRun:
    """Boot prog.elf on pseries (VOF) with the build's devices; judge QEMU's trace."""
    qemu = _tool(QEMU, QEMU_PACKAGE)
    where = work or build.out / "run"
    where.mkdir(parents=True, exist_ok=True)
    console, trace = where / "console.txt", where / "trace.txt"
    for f in (console, trace):
        f.unlink(missing_ok=True)
    cmd = [
        qemu,
        *MACHINE,
        "-display",
        "none",
        "-nodefaults",
        "-no-reboot",
        "-serial",
        f"file:{console}",
        "-kernel",
        str(build.program),
        "-D",
        str(trace),
    ]
    for ev in TRACE_EVENTS:
        cmd += ["-trace", f"enable={ev}"]
    for dev in build.devices:
        cmd += ["-device", dev]
    text, elapsed = run_to_power_off(cmd, console, timeout_s)
    trace_text = trace.read_text(errors="replace") if trace.exists() else ""
    output = parse_output(text)
    marker_bdf = output.markers.get("setup", ("0000:00:00.0", 0))[0]
    hv = parse_trace(trace_text, marker_bdf)
    problems = judge(build.allocation, output, hv)
    return PaprRun(build, text, trace_text, output, hv, tuple(problems), elapsed, tuple(cmd))


# --------------------------------------------------------------------------
# mutations for negative controls (on the generated C text)
# --------------------------------------------------------------------------


def _record(text: str, name: str) -> re.Match[str]:
    m = re.search(r"\{\s*\n?\s*\.name = \"" + re.escape(name) + r"\",.*?\n\s*\}", text, re.DOTALL)
    if m is None:
        raise HarnessError(f"no table record for '{name}' in the generated C")
    return m


def _edit_field(text: str, name: str, fld: str, edit: Callable[[int], int]) -> str:
    m = _record(text, name)
    rec = m.group(0)
    f = re.search(r"(\." + fld + r" = )(0[xX][0-9a-fA-F]+|\d+)U", rec)
    if f is None:
        raise HarnessError(f"no .{fld} in the record of '{name}'")
    value = edit(int(f.group(2), 0))
    new_rec = rec[: f.start()] + f"{f.group(1)}{value:#x}U" + rec[f.end() :]
    return text[: m.start()] + new_rec + text[m.end() :]


def mutate_first_request(name: str, delta: int = -1) -> Callable[[str], str]:
    """The function's first ibm,change-msi asks ``hw_vectors + delta``."""
    return lambda text: _edit_field(text, name, "hw_vectors", lambda v: v + delta)


def mutate_config_addr(name: str, to_bdf: str) -> Callable[[str], str]:
    """The function's RTAS config_addr names another function (``to_bdf``)."""
    return lambda text: _edit_field(text, name, "config_addr", lambda _v: config_addr_of(to_bdf))
