"""The generated OPAL stub, judged by QEMU's real skiboot (powernv9).

``opal/powernv9.msi`` (the machine of ``test_opal_linux.py``) is compiled by
dtmsi; its ``system_msi.c`` is cross-compiled with ``powerpc64-linux-gnu-gcc``
together with ``papr_baremetal/start.S`` (the shared entry) and
``opal_baremetal/hooks.c`` into a freestanding big-endian ppc64 program
(``opal_baremetal/link.ld``: one segment at 0x20000000, where QEMU loads
``-kernel`` and skiboot runs it in place).  QEMU powernv9 boots skiboot,
which hands the program its device tree; the program finds OPAL there
(``/ibm,opal``), makes the stub's hooks out of OPAL calls
(``OPAL_PCI_CONFIG_*``, ``OPAL_PCI_SET_XIVE_PE``, ``OPAL_GET_MSI_64/32``;
MSI-X tables through cache-inhibited loads and stores), writes the BARs and
root-port windows dtmsi planned (nobody assigns them before the OS on
powernv), runs ``setup_all``, prints every OPAL call with skiboot's answer,
every function's result and its MSI-X table read back, and powers off
through ``OPAL_CEC_POWER_DOWN``.

skiboot is the oracle (:func:`judge`): for every vector allocation.json
plans, the stub asked ``set_xive_pe`` then ``get_msi`` for XIVE number
``hwirq - msi base``, inside skiboot's ``ibm,opal-msi-ranges``, skiboot
answered success, and the address/data it returned are allocation.json's;
the device's MSI-X table holds them, unmasked, MSI-X on.

Public API::

    build = build_program(POWERNV9_MSI, out)           # dtmsi + cross-compile
    run = run_program(build, DEVICES)                  # one boot (a few seconds)
    problems = judge(build.allocation, run.output)
"""

from __future__ import annotations

import json
import re
import struct
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libfdt

from .guest import HarnessError
from .papr_baremetal import (
    CFLAGS,
    CROSS_CC,
    CROSS_PACKAGE,
    LDFLAGS,
    _children,
    _props,
    _run,
    _stub_prefix,
    _tool,
    run_to_power_off,
)
from .papr_baremetal import PROGRAM_DIR as PAPR_PROGRAM_DIR
from .powernv import MACHINE
from .pseries import QEMU, QEMU_PACKAGE

__all__ = [
    "POWERNV9_MSI",
    "POWERNV9_MSI_SCENARIO",
    "BarWrite",
    "BridgeWindow",
    "OpalBuild",
    "OpalCall",
    "OpalOutput",
    "OpalRun",
    "build_program",
    "judge",
    "mutate_msi_base",
    "parse_output",
    "planned_bars",
    "run_program",
]

HERE = Path(__file__).resolve().parent
PROGRAM_DIR = HERE / "opal_baremetal"
POWERNV9_MSI = HERE / "opal" / "powernv9.msi"
POWERNV9_MSI_SCENARIO = HERE / "opal" / "powernv9-msi.msi"
SOURCES = (PAPR_PROGRAM_DIR / "start.S", PROGRAM_DIR / "hooks.c")
LINK_LD = PROGRAM_DIR / "link.ld"

PCI_CLASS_BRIDGE = 0x0604


# --------------------------------------------------------------------------
# what the OS would have programmed: BARs and root-port windows
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class BarWrite:
    phb_id: int
    bus: int
    devfn: int
    reg: int
    value: int


@dataclass(frozen=True)
class BridgeWindow:
    """A bridge's 32-bit memory window (inclusive limit) over its devices' BARs."""

    phb_id: int
    bus: int
    devfn: int
    base: int
    limit: int


def planned_bars(dtb: Path) -> tuple[tuple[BarWrite, ...], tuple[BridgeWindow, ...]]:
    """Every BAR of dtmsi's tree under each OPAL PHB (``assigned-addresses``;
    a 64-bit BAR is two 32-bit writes), and per bridge the 32-bit memory
    window that covers the 32-bit memory BARs below it."""
    fdt = libfdt.Fdt(dtb.read_bytes())
    bars: list[BarWrite] = []
    windows: list[BridgeWindow] = []

    def walk(node: int, phb_id: int) -> list[tuple[int, int]]:
        """The node's and its subtree's 32-bit memory ranges (start, end)."""
        props = _props(fdt, node)
        raw = props.get("assigned-addresses", b"")
        ranges: list[tuple[int, int]] = []
        for i in range(0, len(raw) - 19, 20):
            hi, mid, lo, size_hi, size_lo = struct.unpack(">5I", raw[i : i + 20])
            bus, devfn, reg, space = (hi >> 16) & 0xFF, (hi >> 8) & 0xFF, hi & 0xFF, (hi >> 24) & 3
            bars.append(BarWrite(phb_id, bus, devfn, reg, lo))
            if space == 3:
                bars.append(BarWrite(phb_id, bus, devfn, reg + 4, mid))
            if space in (2, 3) and mid == 0:
                ranges.append((lo, lo + ((size_hi << 32) | size_lo)))
        below: list[tuple[int, int]] = []
        for _, child in _children(fdt, node):
            below.extend(walk(child, phb_id))
        class_code = props.get("class-code")
        reg_prop = props.get("reg")
        is_bridge = class_code is not None and struct.unpack(">I", class_code[:4])[0] >> 8 == PCI_CLASS_BRIDGE
        if below and is_bridge and reg_prop is not None:
            hi = struct.unpack(">I", reg_prop[:4])[0]
            lo_mb = min(s for s, _ in below) & ~0xFFFFF
            hi_mb = (max(e for _, e in below) + 0xFFFFF) & ~0xFFFFF
            windows.append(BridgeWindow(phb_id, (hi >> 16) & 0xFF, (hi >> 8) & 0xFF, lo_mb, hi_mb - 1))
        return ranges + below

    for _, node in _children(fdt, 0):
        phbid = _props(fdt, node).get("ibm,opal-phbid")
        if phbid is not None:
            phb_id = int.from_bytes(phbid, "big")
            for _, child in _children(fdt, node):
                walk(child, phb_id)
    return tuple(bars), tuple(windows)


def platform_header(bars: Sequence[BarWrite], windows: Sequence[BridgeWindow]) -> str:
    """``opal_platform.h`` for hooks.c: dtmsi's BARs and the bridge windows over them."""
    return "\n".join(
        [
            "/* Generated by tests/linux/opal_baremetal.py from dtmsi's system.dtb",
            " * (assigned-addresses): the BARs, and each bridge's 32-bit memory window. */",
            "#ifndef OPAL_PLATFORM_H",
            "#define OPAL_PLATFORM_H",
            "#define OPAL_BARS \\",
            *(f"    OPAL_BAR({b.phb_id:#x}u, {b.bus:#x}u, {b.devfn:#x}u, {b.reg:#x}u, {b.value:#x}u) \\" for b in bars),
            "    /* end */",
            "#define OPAL_BRIDGES \\",
            *(
                f"    OPAL_BRIDGE({w.phb_id:#x}u, {w.bus:#x}u, {w.devfn:#x}u, {w.base:#x}u, {w.limit:#x}u) \\"
                for w in windows
            ),
            "    /* end */",
            "#endif",
            "",
        ]
    )


# --------------------------------------------------------------------------
# building
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class OpalBuild:
    out: Path
    allocation: dict[str, Any]
    source: Path  # the generated C that was compiled (possibly mutated)
    program: Path
    prefix: str
    bars: tuple[BarWrite, ...]
    windows: tuple[BridgeWindow, ...]
    build_s: float


def build_program(msi: Path, out: Path, *, mutate: Callable[[str], str] | None = None) -> OpalBuild:
    """``dtmsi compile msi -o out``, then prog.elf from ``system_msi.c``.

    ``mutate`` rewrites the generated C before it is compiled (negative
    controls); allocation.json stays the compiler's.
    """
    cc = _tool(CROSS_CC, CROSS_PACKAGE)
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "dtmsi", "compile", str(msi), "-o", str(out)])
    header, source = out / "system_msi.h", out / "system_msi.c"
    if not header.exists() or not source.exists():
        raise HarnessError(f"dtmsi compile wrote no {header.name}/{source.name} in {out}")
    if mutate is not None:
        text = source.read_text()
        mutated = mutate(text)
        if mutated == text:
            raise HarnessError(f"the mutation changed nothing in {source.name}: the negative control would be void")
        source = out / "system_msi.mutated.c"
        source.write_text(mutated)
    bars, windows = planned_bars(out / "system.dtb")
    gen = out / "gen"
    gen.mkdir(exist_ok=True)
    (gen / "opal_platform.h").write_text(platform_header(bars, windows))
    prefix = _stub_prefix(header.read_text())
    program = out / "prog.elf"
    cmd = [cc, *CFLAGS, "-I", str(out), "-I", str(gen), f"-DSTUB(x)={prefix}_##x", f"-DSTUBU(x)={prefix.upper()}_##x",
           f'-DSTUB_HEADER="{header.name}"', f"-DSTUB_NFUNCTIONS={prefix.upper()}_NFUNCTIONS", "-T", str(LINK_LD),
           *LDFLAGS, *map(str, SOURCES), str(source), "-o", str(program)]  # fmt: skip
    _run(cmd)
    return OpalBuild(
        out=out,
        allocation=json.loads((out / "allocation.json").read_text()),
        source=source,
        program=program,
        prefix=prefix,
        bars=bars,
        windows=windows,
        build_s=time.monotonic() - started,
    )


# --------------------------------------------------------------------------
# what the program printed
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class OpalCall:
    """One OPAL MSI call the stub made, with skiboot's answer."""

    name: str  # "set_xive_pe" / "get_msi"
    phb_id: int
    pe: int  # the PE (set_xive_pe) or MVE (get_msi)
    xive: int
    rc: int
    is64: bool = False
    address: int = 0
    data: int = 0


@dataclass(frozen=True)
class FunctionResult:
    bdf: str
    name: str
    status: int
    fw_status: int
    mechanism: str
    vectors: int
    set_up: bool
    vec: tuple[tuple[int, int, int], ...]  # (address, data, irq) the stub recorded per vector
    msix: tuple[tuple[int, int, int, int], ...]  # (address, data, vector control, message control) read back
    msi: tuple[int, int, int] | None  # the MSI capability read back: (message control, address, data)


@dataclass(frozen=True)
class OpalOutput:
    text: str
    phbs: dict[int, tuple[int, int]]  # PHB id -> (msi base, count) in the tree skiboot handed over
    calls: tuple[OpalCall, ...]
    functions: dict[str, FunctionResult]
    bars: tuple[str, ...]
    bridges: tuple[str, ...]
    logs: tuple[str, ...]
    errors: tuple[str, ...]
    begun: bool
    done: bool


_KV = re.compile(r"([\w-]+)=(\S*)")


def parse_output(text: str) -> OpalOutput:
    """Parse hooks.c's ``@@opal`` lines."""
    phbs: dict[int, tuple[int, int]] = {}
    calls: list[OpalCall] = []
    fns: dict[str, dict[str, str]] = {}
    vecs: dict[str, list[tuple[int, tuple[int, int, int]]]] = {}
    msix: dict[str, list[tuple[int, tuple[int, int, int, int]]]] = {}
    msi: dict[str, tuple[int, int, int]] = {}
    bars: list[str] = []
    bridges: list[str] = []
    logs: list[str] = []
    errors: list[str] = []
    begun = done = False
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        at = line.find("@@opal ")
        if at < 0:
            continue
        line = line[at:]
        words = line.split()
        tag = words[1] if len(words) > 1 else ""
        kv = dict(_KV.findall(line))
        h = {k: int(v, 0) for k, v in kv.items() if re.fullmatch(r"-?(0x[0-9a-f]+|\d+)", v)}
        if tag == "begin":
            begun = True
        elif tag == "done":
            done = True
        elif tag == "error":
            errors.append(line)
        elif tag == "log":
            logs.append(line.split(" ", 2)[2] if len(words) > 2 else "")
        elif tag == "phb":
            phbs[h["phbid"]] = (h["msi-base"], h["msi-count"])
        elif tag == "bar":
            bars.append(line)
        elif tag == "bridge":
            bridges.append(line)
        elif tag == "call" and words[2] == "set_xive_pe":
            calls.append(OpalCall("set_xive_pe", h["phb"], h["pe"], h["xive"], h["rc"]))
        elif tag == "call" and words[2] == "get_msi":
            calls.append(
                OpalCall("get_msi", h["phb"], h["mve"], h["xive"], h["rc"], h["is64"] == 1, h["addr"], h["data"])
            )
        elif tag == "fn":
            fns[words[2]] = kv
        elif tag == "vec":
            vecs.setdefault(words[2], []).append((h["index"], (h["addr"], h["data"], h["irq"])))
        elif tag == "msix":
            msix.setdefault(words[2], []).append((h["entry"], (h["addr"], h["data"], h["ctrl"], h["msgctl"])))
        elif tag == "msi":
            msi[words[2]] = (h["ctrl"], h["addr"], h["data"])
    functions = {
        bdf: FunctionResult(
            bdf=bdf,
            name=kv["name"],
            status=int(kv["status"]),
            fw_status=int(kv["fw"]),
            mechanism=kv["mechanism"],
            vectors=int(kv["vectors"]),
            set_up=kv["set_up"] == "1",
            vec=tuple(v for _, v in sorted(vecs.get(bdf, []))),
            msix=tuple(v for _, v in sorted(msix.get(bdf, []))),
            msi=msi.get(bdf),
        )
        for bdf, kv in fns.items()
    }
    return OpalOutput(
        text, phbs, tuple(calls), functions, tuple(bars), tuple(bridges), tuple(logs), tuple(errors), begun, done
    )


# --------------------------------------------------------------------------
# skiboot's answers: the oracle
# --------------------------------------------------------------------------


def _predicted(fn: Mapping[str, Any]) -> list[tuple[int, int, int]]:
    """allocation.json's (hwirq, address, data) per vector."""
    out: list[tuple[int, int, int]] = []
    for m in fn.get("messages", []):
        for i in range(int(m["count"])):
            if "address" not in m or "data" not in m:
                out.append((int(m["hwirq"]) + i, -1, -1))
            else:
                out.append((int(m["hwirq"]) + i, int(m["address"]), int(m["data"]) + i))
    return out


def judge(allocation: Mapping[str, Any], out: OpalOutput, msi_bases: Mapping[int, int]) -> list[str]:
    """Problems, empty when skiboot agrees with the plan.  ``msi_bases``: the
    stub's host bridges, PHB id -> the msi base dtmsi planned from.

    Per planned MSI/MSI-X function (allocation.json), for each vector k with
    hwirq h (XIVE x = h - msi base):

    * x lies inside the ibm,opal-msi-ranges skiboot published for the PHB
      (the tree it handed the program);
    * the stub asked skiboot ``set_xive_pe(phb, pe, x)``, then
      ``get_msi(phb, pe, x)``, and skiboot answered success to both;
    * skiboot's (address, data) for x is allocation.json's prediction, and
      is what the stub recorded for vector k (MSI: the block's first
      message, data + k);
    * MSI-X: the device's table entry k holds it, unmasked, MSI-X on;
      MSI: the capability holds vector 0's message, enabled, with MME =
      log2(hardware_vectors).

    And every function ends with the planned mechanism and vector count,
    status 0.
    """
    if not out.begun or not out.done:
        return [f"the program did not run to its end (begun={out.begun}, done={out.done}); errors: {out.errors}"]
    problems = [f"the program reported: {e}" for e in out.errors]
    for fn in allocation["functions"]:
        bdf = str(fn["bdf"])
        who = f"{bdf} {fn['name']}"
        r = out.functions.get(bdf)
        if r is None:
            problems.append(f"{who}: the program printed no result")
            continue
        mech = str(fn["mechanism"])
        if r.status != 0 or r.mechanism != mech:
            problems.append(f"{who}: the stub ends with {r.mechanism}, status {r.status} (fw {r.fw_status}); "
                            f"the plan says {mech}")  # fmt: skip
            continue
        if mech not in ("msi", "msix"):
            continue
        if r.vectors != int(fn["vectors_granted"]):
            problems.append(f"{who}: {r.vectors} vectors; the plan grants {fn['vectors_granted']}")
        # the .msi numbers its PCI domains by PHB id, as Linux does
        phb_id = int(bdf.split(":")[0], 16)
        base = msi_bases.get(phb_id)
        published = out.phbs.get(phb_id)
        if base is None or published is None:
            problems.append(f"{who}: no PHB {phb_id} in the stub ({base}) or in skiboot's tree ({published})")
            continue
        calls = [c for c in out.calls if c.phb_id == phb_id]
        for k, (hwirq, address, data) in enumerate(_predicted(fn)):
            xive = hwirq - base
            if not published[0] <= hwirq < published[0] + published[1]:
                problems.append(
                    f"{who}: vector {k}: hwirq {hwirq:#x} outside skiboot's ibm,opal-msi-ranges "
                    f"<{published[0]:#x} {published[1]:#x}>"
                )
            sets = [i for i, c in enumerate(calls) if c.name == "set_xive_pe" and c.xive == xive and c.rc == 0]
            if mech == "msi":
                gets = [c for c in calls if c.name == "get_msi" and c.xive == xive - k and c.rc == 0]
                answer = (gets[-1].address, gets[-1].data + k) if gets else None
            else:
                got = [(i, c) for i, c in enumerate(calls) if c.name == "get_msi" and c.xive == xive and c.rc == 0]
                answer = (got[-1][1].address, got[-1][1].data) if got else None
                if got and not any(s < got[-1][0] for s in sets):
                    problems.append(f"{who}: vector {k}: get_msi for XIVE {xive:#x} before set_xive_pe")
            if not sets:
                failed = [c for c in calls if c.name == "set_xive_pe" and c.xive == xive]
                problems.append(f"{who}: vector {k}: skiboot did not accept set_xive_pe for XIVE {xive:#x} {failed}")
            if answer is None:
                failed = [c for c in calls if c.name == "get_msi" and c.xive == xive]
                problems.append(f"{who}: vector {k}: skiboot gave no message for XIVE {xive:#x} {failed}")
                continue
            if answer != (address, data):
                problems.append(
                    f"{who}: vector {k}: skiboot composes {answer[0]:#x}/{answer[1]:#x} for XIVE {xive:#x}; "
                    f"allocation.json predicts {address:#x}/{data:#x}"
                )
            if k >= len(r.vec) or r.vec[k][:2] != answer or r.vec[k][2] != hwirq:
                problems.append(f"{who}: vector {k}: the stub recorded {r.vec[k] if k < len(r.vec) else None}, "
                                f"skiboot answered {answer} for hwirq {hwirq:#x}")  # fmt: skip
            if mech == "msi" and k == 0:
                mme = (r.msi[0] >> 4) & 7 if r.msi else -1
                want_mme = (int(fn["hardware_vectors"]) - 1).bit_length()
                if r.msi is None or not r.msi[0] & 1 or mme != want_mme or r.msi[1:] != answer:
                    problems.append(
                        f"{who}: the MSI capability holds {r.msi} (control, address, data); want skiboot's "
                        f"{answer[0]:#x}/{answer[1]:#x}, enabled, MME {want_mme}"
                    )
            if mech == "msix":
                if k >= len(r.msix):
                    problems.append(f"{who}: MSI-X entry {k} was not read back")
                    continue
                e_addr, e_data, ctrl, msgctl = r.msix[k]
                if (e_addr, e_data) != answer or ctrl & 1 or (msgctl & 0xC000) != 0x8000:
                    problems.append(
                        f"{who}: MSI-X entry {k} holds {e_addr:#x}/{e_data:#x} ctrl {ctrl:#x} msgctl {msgctl:#x}; "
                        f"want skiboot's {answer[0]:#x}/{answer[1]:#x}, unmasked, MSI-X on"
                    )
    return problems


# --------------------------------------------------------------------------
# one boot
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class OpalRun:
    build: OpalBuild
    console: str
    output: OpalOutput
    problems: tuple[str, ...]
    boot_s: float
    command: tuple[str, ...]

    def summary(self) -> str:
        return "\n".join(
            [
                *(f"problem: {p}" for p in self.problems),
                "--- program output ---",
                *(line[line.find("@@opal") :] for line in self.console.splitlines() if "@@opal" in line),
                "--- console tail ---",
                *self.console.splitlines()[-15:],
            ]
        )


def stub_msi_bases(source: Path) -> dict[int, int]:
    """PHB id -> msi_base from the (possibly mutated) generated C's host-bridge table."""
    found = re.findall(r"\.opal_phb_id = (\d+)ULL,\s*\.msi_base = (0x[0-9a-f]+|\d+)U", source.read_text())
    return {int(p): int(b, 0) for p, b in found}


def run_program(build: OpalBuild, devices: Sequence[str], *, timeout_s: float = 60.0) -> OpalRun:
    """Boot prog.elf under skiboot on powernv9 with ``devices``; judge skiboot's answers."""
    qemu = _tool(QEMU, QEMU_PACKAGE)
    where = build.out / "run"
    where.mkdir(parents=True, exist_ok=True)
    console = where / "console.txt"
    console.unlink(missing_ok=True)
    cmd = [qemu, *MACHINE, "-display", "none", "-no-reboot", "-monitor", "none", "-serial", f"file:{console}",
           "-kernel", str(build.program)]  # fmt: skip
    for dev in devices:
        cmd += ["-device", dev]
    text, elapsed = run_to_power_off(cmd, console, timeout_s)
    output = parse_output(text)
    problems = judge(build.allocation, output, stub_msi_bases(build.source))
    return OpalRun(build, text, output, tuple(problems), elapsed, tuple(cmd))


# --------------------------------------------------------------------------
# a mutation for a negative control (on the generated C text)
# --------------------------------------------------------------------------


def mutate_msi_base(phb_id: int, delta: int) -> Callable[[str], str]:
    """The stub's host bridge ``phb_id`` has its msi_base moved by ``delta``:
    its XIVE numbers (hwirq - msi_base) move the other way."""

    def edit(text: str) -> str:
        pattern = re.compile(r"(\.opal_phb_id = " + str(phb_id) + r"ULL,\s*\.msi_base = )(0x[0-9a-f]+|\d+)U")
        return pattern.sub(lambda m: f"{m.group(1)}{int(m.group(2), 0) + delta:#x}U", text, count=1)

    return edit
