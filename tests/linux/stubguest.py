"""A generated native MSI stub, judged by QEMU inside a real arm64 guest.

The generated C (``system_msi.c``) is cross-compiled with Debian's
``aarch64-linux-gnu-gcc`` together with ``stub_hooks_linux.c`` (config space
through sysfs, MMIO through /dev/mem) into one static program, appended to the
guest's initramfs as ``/dtmsi-stub`` and run by the guest's ``/init`` before
its report (``init.sh``).  The program writes a marker into config space,
runs ``setup_all``, prints what it set up and makes every vector it set up
fire once (edu: its "raise" register; e1000e: one interrupt cause per MSI-X
vector).  QEMU traces every write that reaches the ITS's GITS_TRANSLATER
(``gicv3_its_translation_write``: the requester ID is the DeviceID, the data
the EventID), every write to the ITS control frame (``gicv3_its_badwrite``)
and every config write (``pci_cfg_write``, for the marker).

:func:`judge_its_writes` is the oracle: after the marker, QEMU must have seen
each planned (DeviceID, EventID) of ``allocation.json`` exactly once and
nothing else.  ``x86stub.py`` runs the same program, built natively
(``build_stub(..., cc="gcc")``), in the amd64 guest on q35 and judges QEMU's
local APICs instead (:func:`boot_stub` is the boot both share).

Public API::

    build = build_stub(msi, out)                      # dtmsi compile + cross-compile
    run = run_stub_in_guest(guest, build, devices)    # one boot
    run.problems                                      # [] when QEMU saw exactly the plan
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .guest import BootReport, Guest, GuestOptions, HarnessError, boot, initramfs_overlay

__all__ = [
    "CROSS_CC",
    "HOOKS_C",
    "STUB_MSI",
    "TRACE_EVENTS",
    "ItsWrite",
    "PlannedMessage",
    "StubBuild",
    "StubFunction",
    "StubGuestRun",
    "StubOutput",
    "TraceCut",
    "boot_stub",
    "build_stub",
    "cross_compile",
    "cut_trace",
    "judge_its_writes",
    "marker_lines",
    "move_doorbell",
    "parse_stub_output",
    "planned_messages",
    "run_stub_in_guest",
    "shift_event_ids",
]

HERE = Path(__file__).resolve().parent
HOOKS_C = HERE / "stub_hooks_linux.c"
STUB_MSI = HERE / "stub_guest.msi"

CROSS_CC = "aarch64-linux-gnu-gcc"
CROSS_PACKAGES = "gcc-aarch64-linux-gnu libc6-dev-arm64-cross"
#: Compiler -> the Debian packages that give it a static C library.
CC_PACKAGES: dict[str, str] = {CROSS_CC: CROSS_PACKAGES, "gcc": "gcc libc6-dev"}
CFLAGS: tuple[str, ...] = ("-static", "-O2", "-Wall", "-Wextra", "-Werror")

#: QEMU trace events the oracle reads (besides the harness's own ITS events).
TRACE_EVENTS: tuple[str, ...] = (
    "gicv3_its_translation_write",
    "gicv3_its_badwrite",
    "pci_cfg_write",
)

#: What stub_hooks_linux.c writes before setup_all: 0xa5 to Interrupt Line;
#: after the last shot it writes 0x5a there.
MARKER_OFFSET = 0x3C
MARKER_VALUE = 0xA5
END_MARKER_VALUE = 0x5A

#: The ITS of QEMU's virt board: control frame at 0x0808_0000, translation
#: frame 64 KiB above; GITS_TRANSLATER is at 0x40 in the translation frame.
ITS_DOORBELL = 0x0809_0040
ITS_CONTROL_FRAME_DOORBELL = 0x0808_0040

#: Generated files hold no absolute path, so build directories move freely.
STUB_DIR = "dtmsi-stub"  # in the guest: /dtmsi-stub/run.sh, /dtmsi-stub/stub
RUN_SH = (
    b"#!/bin/sh\n# run by /init (tests/linux/init.sh) before the report\n"
    # Kernel messages while the stub runs (x86: "No irq handler for vector")
    # stay in dmesg, off the serial console, whose interrupts would share
    # QEMU's trace with the shots; init.sh sets the level again for its report.
    b"echo 0 >/proc/sys/kernel/printk\n"
    b"exec /dtmsi-stub/stub\n"
)


# --------------------------------------------------------------------------
# the plan
# --------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class PlannedMessage:
    """One MSI/MSI-X vector of the plan: the pair the ITS must receive."""

    device_id: int
    event_id: int
    bdf: str  # "0000:00:02.0"
    name: str  # the function's name in the .msi
    vector: int  # MSI vector / MSI-X entry
    address: int  # the doorbell


def planned_messages(allocation: Mapping[str, Any]) -> tuple[PlannedMessage, ...]:
    """Every vector of every MSI/MSI-X function of ``allocation.json``."""
    out: list[PlannedMessage] = []
    for fn in allocation["functions"]:
        if fn.get("mechanism") not in ("msi", "msix"):
            continue
        for run in fn.get("messages", ()):
            for i in range(int(run["count"])):
                out.append(
                    PlannedMessage(
                        device_id=int(fn["device_id"]),
                        event_id=int(run["event_id"]) + i,
                        bdf=str(fn["bdf"]),
                        name=str(fn["name"]),
                        vector=int(run["vector"]) + i,
                        address=int(run["address"]),
                    )
                )
    return tuple(sorted(out))


# --------------------------------------------------------------------------
# building
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class StubBuild:
    """A compiled .msi and the guest program built from its stub."""

    out: Path  # dtmsi's output directory
    dtb: Path
    allocation: dict[str, Any]
    source: Path  # the generated C that was compiled (possibly mutated)
    binary: Path  # static executable for the guest (aarch64 or x86-64)
    prefix: str  # the stub's C prefix ("dtmsi_system")

    @property
    def planned(self) -> tuple[PlannedMessage, ...]:
        return planned_messages(self.allocation)


def _run(cmd: Sequence[str], *, cwd: Path | None = None, timeout: float = 120) -> None:
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


def _stub_prefix(header: str) -> str:
    """The C prefix of a generated header: ``struct P_hooks {``."""
    found = {m.group(1) for m in re.finditer(r"\bstruct\s+([A-Za-z_]\w*)_hooks\s*\{", header)}
    if len(found) != 1:
        raise HarnessError(f"cannot tell the stub's prefix from its header (struct *_hooks: {sorted(found)})")
    return found.pop()


def cross_compile(
    stub_c: Path, header: Path, output: Path, *, hooks_c: Path = HOOKS_C, cc: str = CROSS_CC
) -> str:
    """Build the static guest program with ``cc`` (aarch64 by default; "gcc"
    for the x86-64 guest); returns the stub's prefix."""
    if shutil.which(cc) is None:
        raise HarnessError(
            f"{cc} is missing: apt-get install {CC_PACKAGES.get(cc, cc)} (scripts/apt-packages.txt)"
        )
    prefix = _stub_prefix(header.read_text())
    _run(
        [
            cc,
            *CFLAGS,
            "-I",
            str(header.parent),
            f"-DSTUB(x)={prefix}_##x",
            f'-DSTUB_HEADER="{header.name}"',
            f"-DSTUB_NFUNCTIONS={prefix.upper()}_NFUNCTIONS",
            str(stub_c),
            str(hooks_c),
            "-o",
            str(output),
        ]
    )
    return prefix


def build_stub(
    msi: Path,
    out: Path,
    *,
    mutate: Callable[[str], str] | None = None,
    stem: str = "system_msi",
    cc: str = CROSS_CC,
) -> StubBuild:
    """``dtmsi compile msi -o out``, then the guest program from ``<stem>.c``.

    ``mutate`` rewrites the generated C before it is compiled (negative
    controls: a stub built from a wrong plan); the DTB and allocation.json
    stay the compiler's.
    """
    out.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "dtmsi", "compile", str(msi), "-o", str(out)])
    header, source = out / f"{stem}.h", out / f"{stem}.c"
    if not header.exists() or not source.exists():
        raise HarnessError(f"dtmsi compile wrote no {header.name}/{source.name} in {out}: {sorted(_listdir(out))}")
    if mutate is not None:
        text = source.read_text()
        mutated = mutate(text)
        if mutated == text:
            raise HarnessError(f"the mutation changed nothing in {source.name}: the negative control would be void")
        source = out / f"{stem}.mutated.c"
        source.write_text(mutated)
    binary = out / "stub"
    prefix = cross_compile(source, header, binary, cc=cc)
    return StubBuild(
        out=out,
        dtb=out / "system.dtb",
        allocation=json.loads((out / "allocation.json").read_text()),
        source=source,
        binary=binary,
        prefix=prefix,
    )


def _listdir(path: Path) -> list[str]:
    return [p.name for p in path.iterdir()] if path.is_dir() else []


# --------------------------------------------------------------------------
# mutations for negative controls (on the generated C text)
# --------------------------------------------------------------------------

_INT_LITERAL = r"(0[xX][0-9a-fA-F]+|\d+)[uUlL]*"


def _runs_table(text: str) -> re.Match[str]:
    m = re.search(r"(\w+_runs\s*\[[^\]]*\]\s*=\s*\{)(.*?)(\n\s*\};)", text, re.DOTALL)
    if m is None:
        raise HarnessError("no P_runs[] table in the generated C")
    return m


def shift_event_ids(text: str, delta: int = 1) -> str:
    """Every message run's data (= ITS EventID) + ``delta``: the stub then
    sends EventIDs nobody planned."""
    m = _runs_table(text)

    def bump(d: re.Match[str]) -> str:
        value = int(d.group(2), 0) + delta
        return f"{d.group(1)}{value:#x}U"

    body, n = re.subn(r"(\.data\s*=\s*)" + _INT_LITERAL, bump, m.group(2))
    if n == 0:  # positional records {vector, count, address, data, irq}
        body, n = re.subn(
            r"(\{\s*" + r"\s*,\s*".join([_INT_LITERAL] * 3) + r"\s*,\s*)" + _INT_LITERAL,
            lambda d: f"{d.group(1)}{int(d.group(5), 0) + delta:#x}U",
            m.group(2),
        )
    if n == 0:
        raise HarnessError("found no message data in the generated P_runs[] table")
    return text[: m.start(2)] + body + text[m.end(2) :]


def move_doorbell(text: str, old: int = ITS_DOORBELL, new: int = ITS_CONTROL_FRAME_DOORBELL) -> str:
    """Every literal of the doorbell address replaced by ``new`` (default: the
    ITS control frame + 0x40, the translation frame forgotten)."""
    pattern = rf"\b(?:0[xX]0*{old:x}|{old})(?:[uU]?[lL]{{0,2}}|[lL]{{0,2}}[uU]?)\b"
    result, n = re.subn(pattern, f"{new:#x}ULL", text, flags=re.IGNORECASE)
    if n == 0:
        raise HarnessError(f"no doorbell literal {old:#x} in the generated C")
    return result


# --------------------------------------------------------------------------
# what the guest program printed
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class StubVector:
    index: int
    address: int
    data: int
    irq: int


@dataclass(frozen=True)
class StubFunction:
    bdf: str
    name: str
    status: int
    strerror: str
    mechanism: str
    vectors: int
    vec: tuple[StubVector, ...]


@dataclass(frozen=True)
class StubOutput:
    text: str
    functions: dict[str, StubFunction]
    shots: tuple[tuple[str, int], ...]  # (bdf, vector) in firing order
    marker: str | None  # bdf of the marker write
    failed: int | None  # setup_all's return value
    done: bool
    exit_code: int | None
    errors: tuple[str, ...]
    end_marker: bool = False  # the program wrote its end marker after the shots


_KV = re.compile(r"(\w+)=(\S*)")


def parse_stub_output(text: str) -> StubOutput:
    """Parse the ``@@stub`` lines of stub_hooks_linux.c (and init.sh's "exit N")."""
    functions: dict[str, StubFunction] = {}
    vecs: dict[str, list[StubVector]] = {}
    shots: list[tuple[str, int]] = []
    errors: list[str] = []
    marker: str | None = None
    failed: int | None = None
    exit_code: int | None = None
    done = end_marker = False
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        if line.startswith("exit "):
            exit_code = int(line.split()[1])
            continue
        if not line.startswith("@@stub "):
            continue
        words = line.split()
        tag = words[1]
        kv = dict(_KV.findall(line))
        if tag == "fn":
            bdf = words[2]
            functions[bdf] = StubFunction(
                bdf=bdf,
                name=kv["name"],
                status=int(kv["status"]),
                strerror=kv.get("strerror", ""),
                mechanism=kv["mechanism"],
                vectors=int(kv["vectors"]),
                vec=(),
            )
        elif tag == "vec":
            vecs.setdefault(words[2], []).append(
                StubVector(int(kv["index"]), int(kv["address"], 16), int(kv["data"], 16), int(kv["irq"], 16))
            )
        elif tag == "fire":
            shots.append((words[2], int(kv["vector"])))
        elif tag == "marker":
            marker = words[2]
        elif tag == "endmarker":
            end_marker = True
        elif tag == "setup_all":
            failed = int(kv["failed"])
        elif tag == "done":
            done = True
        elif tag == "error":
            errors.append(line)
    for bdf, fn in list(functions.items()):
        functions[bdf] = StubFunction(
            fn.bdf, fn.name, fn.status, fn.strerror, fn.mechanism, fn.vectors, tuple(vecs.get(bdf, ()))
        )
    return StubOutput(text, functions, tuple(shots), marker, failed, done, exit_code, tuple(errors), end_marker)


# --------------------------------------------------------------------------
# QEMU's trace: the oracle
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ItsWrite:
    """One write QEMU's ITS received at GITS_TRANSLATER."""

    device_id: int  # the requester ID
    event_id: int  # the data
    offset: int
    size: int
    line: str


@dataclass(frozen=True)
class TraceCut:
    """QEMU's trace after the stub's marker write."""

    marker_found: bool
    writes: tuple[ItsWrite, ...]
    bad_writes: tuple[str, ...]  # gicv3_its_badwrite lines (control frame, bad offsets)
    lines: tuple[str, ...]  # every trace line after the marker


_CFG_WRITE_RE = re.compile(
    r"\bpci_cfg_write\s+\S+\s+([0-9a-f]+):([0-9a-f]+)\.([0-7])\s+@0x([0-9a-f]+)\s+<-\s+0x([0-9a-f]+)"
)
_TRANSLATION_RE = re.compile(
    r"\bgicv3_its_translation_write\b.*?offset 0x([0-9a-f]+) data 0x([0-9a-f]+) size (\d+) requester_id 0x([0-9a-f]+)"
)
_BADWRITE_RE = re.compile(r"\bgicv3_its_badwrite\b")


def marker_lines(
    lines: Sequence[str], marker_bdf: str, value: int, offset: int = MARKER_OFFSET
) -> list[int]:
    """Indices of QEMU's ``pci_cfg_write`` lines that write ``value`` at
    ``offset`` of ``marker_bdf`` ("0000:00:02.0"; QEMU's trace has no segment)."""
    _, bus_s, devfn_s = marker_bdf.split(":")
    dev_s, fn_s = devfn_s.split(".")
    want = (int(bus_s, 16), int(dev_s, 16), int(fn_s, 16), offset, value)
    found: list[int] = []
    for i, line in enumerate(lines):
        m = _CFG_WRITE_RE.search(line)
        if m is not None and tuple(int(g, 16) for g in m.groups()) == want:
            found.append(i)
    return found


def cut_trace(trace: str, marker_bdf: str, offset: int = MARKER_OFFSET, value: int = MARKER_VALUE) -> TraceCut:
    """The ITS writes after the last config write of ``value`` at ``offset``
    of ``marker_bdf`` ("0000:00:02.0"; QEMU's trace has no segment)."""
    lines = trace.splitlines()
    starts = marker_lines(lines, marker_bdf, value, offset)
    if not starts:
        return TraceCut(False, (), (), ())
    after = lines[starts[-1] + 1 :]
    writes: list[ItsWrite] = []
    bad: list[str] = []
    for line in after:
        if m := _TRANSLATION_RE.search(line):
            off, data, size, rid = m.groups()
            writes.append(ItsWrite(int(rid, 16), int(data, 16), int(off, 16), int(size), line))
        elif _BADWRITE_RE.search(line):
            bad.append(line)
    return TraceCut(True, tuple(writes), tuple(bad), tuple(after))


def judge_its_writes(
    planned: Sequence[PlannedMessage], cut: TraceCut, shots: Sequence[tuple[str, int]] | None = None
) -> list[str]:
    """What is wrong with QEMU's view of the stub's shots; [] when QEMU saw
    every planned (DeviceID, EventID) exactly once at GITS_TRANSLATER and no
    other write reached the ITS.

    With ``shots`` (the (bdf, vector) the guest fired, in order) each write
    must also be the one planned for the vector of its shot: QEMU sends a
    device's message while the register write that raised it is handled, so
    the trace keeps the shots' order (a stub that swapped two entries' data
    sends the planned set, but not in that order).
    """
    if not cut.marker_found:
        return ["QEMU's trace has no marker write: the stub never ran (or pci_cfg_write was not traced)"]
    problems: list[str] = []
    want = Counter((p.device_id, p.event_id) for p in planned)
    names = {(p.device_id, p.event_id): f"{p.bdf} {p.name} vector {p.vector}" for p in planned}
    seen = Counter((w.device_id, w.event_id) for w in cut.writes)
    for pair in sorted(want):
        got = seen.get(pair, 0)
        if got == 0:
            problems.append(
                f"DeviceID {pair[0]:#x} EventID {pair[1]:#x} ({names[pair]}): planned, never reached the ITS"
            )
        elif got != want[pair]:
            problems.append(
                f"DeviceID {pair[0]:#x} EventID {pair[1]:#x} ({names[pair]}): planned {want[pair]}x, the ITS saw {got}x"
            )
    for pair in sorted(set(seen) - set(want)):
        problems.append(f"DeviceID {pair[0]:#x} EventID {pair[1]:#x}: the ITS saw {seen[pair]} write(s), none planned")
    for w in cut.writes:
        if (w.offset, w.size) != (0x40, 4):
            problems.append(f"a translation-frame write that is no 32-bit GITS_TRANSLATER write: {w.line}")
    problems.extend(f"a write to the ITS that is no translation: {line}" for line in cut.bad_writes)
    if shots is not None and not problems:
        by_vector = {(p.bdf, p.vector): p for p in planned}
        expected = [by_vector.get(shot) for shot in shots]
        if None in expected:
            problems.append(f"the guest fired vectors the plan does not have: {list(shots)}")
        else:
            for i, (shot, w) in enumerate(zip(shots, cut.writes, strict=False)):
                p = by_vector[shot]
                if (w.device_id, w.event_id) != (p.device_id, p.event_id):
                    problems.append(
                        f"shot {i} ({p.bdf} {p.name} vector {p.vector}) should send DeviceID {p.device_id:#x} "
                        f"EventID {p.event_id:#x}; the ITS saw DeviceID {w.device_id:#x} EventID {w.event_id:#x}"
                    )
            if len(shots) != len(cut.writes):
                problems.append(f"the guest fired {len(shots)} shots, the ITS saw {len(cut.writes)} writes")
    return problems


# --------------------------------------------------------------------------
# one boot
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class StubGuestRun:
    build: StubBuild
    report: BootReport
    output: StubOutput
    cut: TraceCut
    problems: tuple[str, ...]  # judge_its_writes' verdict

    def summary(self) -> str:
        """For assertion messages: the verdict, the stub's output, the ITS writes."""
        return "\n".join(
            [
                *(f"problem: {p}" for p in self.problems),
                "--- stub output ---",
                self.output.text.rstrip(),
                "--- ITS writes after the marker ---",
                *(w.line for w in self.cut.writes),
                *self.cut.bad_writes,
            ]
        )


#: The guest's /init: no network (no NIC has a driver), a short settle.
GUEST_OPTIONS = GuestOptions(settle_s=3, stable_s=1, probe_s=3, network=False)


def boot_stub(
    guest: Guest,
    build: StubBuild,
    devices: Sequence[str],
    *,
    trace_events: Sequence[str],
    no_drivers: Sequence[str] = ("e1000e",),
    keep_dir: Path | None = None,
    timeout_s: float = 120.0,
    smp: int = 1,
) -> tuple[BootReport, StubOutput]:
    """Boot ``guest`` with ``devices`` (on the build's DTB where the guest's
    architecture takes one), run the stub, return the report and its output.

    ``no_drivers`` are kernel modules the guest may not load
    (``module_blacklist=``): no driver may own a function the stub sets up.
    """
    extra = initramfs_overlay(
        {f"{STUB_DIR}/run.sh": RUN_SH, f"{STUB_DIR}/stub": build.binary.read_bytes()},
        executables=[f"{STUB_DIR}/run.sh", f"{STUB_DIR}/stub"],
    )
    kernel_args = [f"module_blacklist={','.join(no_drivers)}"] if no_drivers else []
    report = boot(
        guest,
        build.dtb if guest.arch.takes_dtb else None,
        devices,
        timeout_s=timeout_s,
        smp=smp,
        options=GUEST_OPTIONS,
        kernel_args=kernel_args,
        keep_dir=keep_dir,
        extra_initrd=extra,
        trace_events=trace_events,
    )
    return report, parse_stub_output(report.sections.get("stub", ""))


def run_stub_in_guest(
    guest: Guest,
    build: StubBuild,
    devices: Sequence[str],
    *,
    no_drivers: Sequence[str] = ("e1000e",),
    keep_dir: Path | None = None,
    timeout_s: float = 120.0,
) -> StubGuestRun:
    """Boot on the build's DTB with ``devices``, run the stub, judge QEMU's ITS trace
    (see :func:`boot_stub`)."""
    report, output = boot_stub(
        guest, build, devices, trace_events=TRACE_EVENTS, no_drivers=no_drivers, keep_dir=keep_dir, timeout_s=timeout_s
    )
    cut = cut_trace(report.trace, output.marker or "0000:00:00.0")
    problems = judge_its_writes(build.planned, cut, output.shots)
    return StubGuestRun(build, report, output, cut, tuple(problems))
