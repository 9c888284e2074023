"""Let Linux on QEMU powernv, with the real skiboot (OPAL), judge dtmsi's OPAL plan.

QEMU's ``powernv9`` machine boots its bundled skiboot (``skiboot.lid``),
which builds the device tree (the PHBs' ``ibm,opal-phbid`` and
``ibm,opal-msi-ranges`` among it) and hands it to the kernel; there is no
``-dtb``.  So the guest boots once on skiboot's tree: the pseries guest's
kernel, busybox and modules (:func:`pseries.ensure_pseries_guest`, the same
Debian ppc64el packages) with ``powernv_init.sh`` as ``/init``, which runs
``pseries_init.sh``'s stage 2 (drivers, settle, the report of ``init.sh``)
and adds two report sections: ``opal`` (every PHB node as skiboot published
it) and ``xive`` (``/sys/kernel/debug/powerpc/xive/interrupts``: the XIVE
number behind each Linux interrupt).

Under TCG a boot takes about 15-20 s.  Nothing in QEMU traces OPAL (it runs
inside the guest), so the XIVE numbers come from the guest's debugfs.

Public API::

    guest = ensure_pseries_guest(cache_dir)
    run = boot_powernv(guest, ["e1000e,bus=pcie.0,addr=0x0", ...])
    run.report.function("0000:01:00.0").msi_mode, .vectors   # what the drivers got
    run.xives("0000:01:00.0")     # the XIVE numbers of its MSI vectors
    run.phbs[0].msi_base          # skiboot's ibm,opal-msi-ranges of PHB 0
    compare(allocation, run)      # [] when dtmsi's plan is what Linux got
    compare_phbs(dtb_phbs(dtb), run.phbs)   # [] when the .msi's PHBs are skiboot's
"""

from __future__ import annotations

import contextlib
import re
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libfdt

from .guest import BootReport, GuestBootError, HarnessError, initramfs_overlay, parse_report
from .pseries import INIT_SCRIPT as PSERIES_INIT_SCRIPT
from .pseries import QEMU, QEMU_PACKAGE, PseriesGuest, _concat, _require

__all__ = [
    "KERNEL_ARGS",
    "MACHINE",
    "OpalPhb",
    "PowernvRun",
    "boot_powernv",
    "compare",
    "compare_phbs",
    "dtb_lsis",
    "dtb_phbs",
    "parse_opal",
    "parse_xive",
    "qemu_command",
    "summary",
]

INIT_SCRIPT = Path(__file__).with_name("powernv_init.sh")

#: No -nodefaults: powernv9 then makes no PHBs.  -net none drops the default NIC.
MACHINE: tuple[str, ...] = ("-M", "powernv9", "-cpu", "power9", "-m", "2G", "-smp", "1", "-net", "none")
KERNEL_ARGS: tuple[str, ...] = (
    "console=hvc0",
    "panic=-1",
    # the OPAL console is slow under TCG: the report carries the whole log
    "loglevel=4",
    "module.async_probe=1",
    "dtmsi.stage=2",
)


@dataclass(frozen=True)
class OpalPhb:
    """One PHB as a device tree describes it (skiboot's, or dtmsi's)."""

    phb_id: int  # ibm,opal-phbid (Linux takes it as the PCI domain)
    node: str
    msi_base: int  # ibm,opal-msi-ranges <first count>
    msi_count: int
    reg: tuple[int, int]  # the first (address, size) of reg

    def holds(self, xive: int) -> bool:
        return self.msi_base <= xive < self.msi_base + self.msi_count


@dataclass(frozen=True)
class PowernvRun:
    report: BootReport
    phbs: dict[int, OpalPhb]  # skiboot's tree, by PHB id
    xive: dict[int, int]  # Linux irq -> XIVE number (global hwirq)
    seconds: float
    qemu_command: tuple[str, ...]
    log: str

    def xives(self, bdf: str) -> tuple[int, ...]:
        """The XIVE numbers of the function's MSI/MSI-X vectors, in Linux irq order."""
        fn = self.report.function(bdf)
        return tuple(self.xive.get(r.irq, -1) for r in fn.irqs)


# --------------------------------------------------------------------------
# booting
# --------------------------------------------------------------------------


def qemu_command(guest: PseriesGuest, initrd: Path, devices: Sequence[str], serial_log: Path) -> list[str]:
    if "," in str(serial_log):
        raise HarnessError(f"QEMU cannot take a serial log path with a comma: {serial_log}")
    cmd = [QEMU, *MACHINE, "-display", "none", "-no-reboot", "-monitor", "none",
           "-serial", f"file:{serial_log}", "-kernel", str(guest.kernel), "-initrd", str(initrd),
           "-append", " ".join(KERNEL_ARGS)]  # fmt: skip
    for dev in devices:
        cmd += ["-device", dev]
    return cmd


def _overlay() -> bytes:
    """/init (powernv_init.sh) and the current pseries_init.sh it sources, over
    the pseries guest's initramfs (whose own /init is the cached pseries_init.sh)."""
    return initramfs_overlay(
        {"init": INIT_SCRIPT.read_bytes(), "dtmsi/pseries_init.sh": PSERIES_INIT_SCRIPT.read_bytes()},
        executables=["init"],
    )


@contextlib.contextmanager
def _workdir(keep_dir: Path | None) -> Iterator[Path]:
    if keep_dir is not None:
        keep_dir.mkdir(parents=True, exist_ok=True)
        yield keep_dir
        return
    with tempfile.TemporaryDirectory(prefix="dtmsi-powernv-") as tmp:
        yield Path(tmp)


def boot_powernv(
    guest: PseriesGuest,
    devices: Sequence[str],
    *,
    timeout_s: float = 120.0,
    keep_dir: Path | None = None,
) -> PowernvRun:
    """Boot QEMU powernv9 (skiboot) with ``devices``, load the drivers, report.

    Raises :class:`GuestBootError` when the kernel prints no complete report.
    """
    _require(QEMU)
    if not _skiboot_present():
        raise HarnessError(f"QEMU's skiboot.lid is missing: apt-get install {QEMU_PACKAGE}")
    with _workdir(keep_dir) as work:
        serial_log = work / "serial.log"
        serial_log.unlink(missing_ok=True)
        initrd = work / "initrd-powernv.img"
        initrd.write_bytes(_concat(guest.initrd.read_bytes(), _overlay()))
        cmd = qemu_command(guest, initrd, devices, serial_log)
        start = time.monotonic()
        try:
            proc = subprocess.run(
                cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout_s, check=False
            )
            stderr, timed_out = proc.stderr, False
        except subprocess.TimeoutExpired as exc:
            err = exc.stderr
            stderr = err.decode(errors="replace") if isinstance(err, bytes) else (err or "")
            proc, timed_out = None, True
        elapsed = time.monotonic() - start
        log = serial_log.read_text(errors="replace") if serial_log.exists() else ""
    if timed_out:
        raise GuestBootError(f"the guest did not power off within {timeout_s:.0f} s", log, cmd)
    assert proc is not None
    if proc.returncode != 0:
        raise GuestBootError(f"QEMU exited with code {proc.returncode}: {stderr.strip()}", log, cmd)
    if "@@DTMSI-REPORT-BEGIN" not in log or "@@DTMSI-REPORT-END" not in log:
        raise GuestBootError("the kernel printed no complete report", log, cmd)
    try:
        report = parse_report(log, "", elapsed, cmd)
        phbs = parse_opal(report.sections.get("opal", ""))
        xive = parse_xive(report.sections.get("xive", ""))
    except (ValueError, KeyError, IndexError) as exc:
        raise GuestBootError(f"the guest's report does not parse: {exc!r}", log, cmd) from exc
    return PowernvRun(report, phbs, xive, elapsed, tuple(cmd), log)


def _skiboot_present() -> bool:
    """QEMU loads skiboot.lid from its data directory (Debian: /usr/share/qemu)."""
    return any(Path(d, "skiboot.lid").exists() for d in ("/usr/share/qemu", "/usr/local/share/qemu"))


# --------------------------------------------------------------------------
# parsing
# --------------------------------------------------------------------------

_KV = re.compile(r"(\S+?)=(\S*)")
_XIVE_RE = re.compile(r"^IRQ 0x([0-9a-f]+) :.*\blirq=0x([0-9a-f]+)")


def _phb(phb_id: int, node: str, ranges: bytes, reg: bytes) -> OpalPhb:
    if len(ranges) != 8:
        raise ValueError(f"{node}: ibm,opal-msi-ranges has {len(ranges)} bytes, not <first count>")
    if len(reg) < 16:
        raise ValueError(f"{node}: reg has {len(reg)} bytes")
    base, count = struct.unpack(">II", ranges)
    address, size = struct.unpack(">QQ", reg[:16])
    return OpalPhb(phb_id, node, base, count, (address, size))


def parse_opal(section: str) -> dict[int, OpalPhb]:
    """The ``opal`` section: ``phb <node> phbid=HEX msi-ranges=HEX reg=HEX compatible=...``."""
    out: dict[int, OpalPhb] = {}
    for line in section.splitlines():
        parts = line.split()
        if parts[:1] != ["phb"] or len(parts) < 3:
            continue
        kv = dict(_KV.findall(" ".join(parts[2:])))
        phb_id = int(kv["phbid"], 16)
        out[phb_id] = _phb(phb_id, parts[1], bytes.fromhex(kv["msi-ranges"]), bytes.fromhex(kv["reg"]))
    return out


def parse_xive(section: str) -> dict[int, int]:
    """Linux irq -> XIVE number, from the xive debugfs file."""
    out: dict[int, int] = {}
    for line in section.splitlines():
        if m := _XIVE_RE.match(line.strip()):
            out[int(m.group(2), 16)] = int(m.group(1), 16)
    return out


def dtb_phbs(dtb: Path | bytes) -> dict[int, OpalPhb]:
    """dtmsi's tree: every node with ``ibm,opal-phbid``, by PHB id."""
    fdt = libfdt.Fdt(dtb if isinstance(dtb, bytes) else dtb.read_bytes())
    out: dict[int, OpalPhb] = {}
    node = fdt.first_subnode(0, libfdt.QUIET_NOTFOUND)
    while node >= 0:
        phbid = fdt.getprop(node, "ibm,opal-phbid", libfdt.QUIET_NOTFOUND)
        if not isinstance(phbid, int):
            raw = bytes(phbid)
            phb_id = int.from_bytes(raw, "big")
            ranges = bytes(fdt.getprop(node, "ibm,opal-msi-ranges"))
            reg = bytes(fdt.getprop(node, "reg"))
            out[phb_id] = _phb(phb_id, "/" + fdt.get_name(node), ranges, reg)
        node = fdt.next_subnode(node, libfdt.QUIET_NOTFOUND)
    return out


def dtb_lsis(dtb: Path | bytes) -> dict[int, dict[int, int]]:
    """dtmsi's tree: PHB id -> {INTx pin (1..4) of slot 0 -> the hwirq its
    interrupt-map sends it to}.  Each entry is the child's unit address (3
    cells) and pin, the parent's phandle and its #interrupt-cells."""
    fdt = libfdt.Fdt(dtb if isinstance(dtb, bytes) else dtb.read_bytes())
    out: dict[int, dict[int, int]] = {}
    node = fdt.first_subnode(0, libfdt.QUIET_NOTFOUND)
    while node >= 0:
        phbid = fdt.getprop(node, "ibm,opal-phbid", libfdt.QUIET_NOTFOUND)
        imap = fdt.getprop(node, "interrupt-map", libfdt.QUIET_NOTFOUND)
        if not isinstance(phbid, int) and not isinstance(imap, int):
            cells = [int.from_bytes(bytes(imap)[i : i + 4], "big") for i in range(0, len(imap), 4)]
            pins: dict[int, int] = {}
            at = 0
            while at + 5 < len(cells):
                hi, pin, phandle = cells[at], cells[at + 3], cells[at + 4]
                parent = fdt.node_offset_by_phandle(phandle)
                ncells = int.from_bytes(bytes(fdt.getprop(parent, "#interrupt-cells")), "big")
                if (hi >> 11) & 0x1F == 0:  # slot 0: the root port
                    pins[pin] = cells[at + 5]
                at += 5 + ncells
            out[int.from_bytes(bytes(phbid), "big")] = pins
        node = fdt.next_subnode(node, libfdt.QUIET_NOTFOUND)
    return out


# --------------------------------------------------------------------------
# the verdict
# --------------------------------------------------------------------------


def compare_phbs(planned: Mapping[int, OpalPhb], live: Mapping[int, OpalPhb]) -> list[str]:
    """The .msi's PHBs are skiboot's: the same PHB ids, and per PHB the same
    ibm,opal-msi-ranges and first reg entry."""
    problems: list[str] = []
    for phb_id in sorted(set(planned) | set(live)):
        p, q = planned.get(phb_id), live.get(phb_id)
        if p is None:
            problems.append(f"skiboot's tree has PHB {phb_id} ({q.node if q else '?'}); the .msi does not")
            continue
        if q is None:
            problems.append(f"the .msi has PHB {phb_id} ({p.node}); skiboot's tree does not")
            continue
        if (p.msi_base, p.msi_count) != (q.msi_base, q.msi_count):
            problems.append(
                f"PHB {phb_id}: the .msi says ibm,opal-msi-ranges <{p.msi_base:#x} {p.msi_count:#x}>, "
                f"skiboot <{q.msi_base:#x} {q.msi_count:#x}> ({q.node})"
            )
        if p.reg != q.reg:
            problems.append(
                f"PHB {phb_id}: the .msi's reg is <{p.reg[0]:#x} {p.reg[1]:#x}>, skiboot's <{q.reg[0]:#x} "
                f"{q.reg[1]:#x}> ({q.node})"
            )
    return problems


def _planned_hwirqs(fn: Mapping[str, Any]) -> list[int]:
    out: list[int] = []
    for run in fn.get("messages", []):
        out.extend(int(run["hwirq"]) + k for k in range(int(run["count"])))
    return out


def compare(allocation: Mapping[str, Any], run: PowernvRun) -> list[str]:
    """Per planned function: Linux's mechanism and MSI/MSI-X vector count are
    allocation.json's ``mechanism`` and ``vectors_granted``; each vector's XIVE
    number lies inside its PHB's ibm,opal-msi-ranges (skiboot's) and the set
    of them is the planned ``hwirq`` run.  A function Linux sees with a driver
    that the plan lacks is a problem too (bridges aside)."""
    problems: list[str] = []
    planned_bdfs = set()
    for fn in allocation["functions"]:
        bdf = str(fn["bdf"])
        planned_bdfs.add(bdf)
        who = f"{bdf} {fn['name']}"
        got = run.report.functions.get(bdf)
        if got is None:
            problems.append(f"{who}: Linux sees no such function ({sorted(run.report.functions)})")
            continue
        mech = str(fn["mechanism"])
        if got.driver is None and mech != "none":
            problems.append(f"{who}: no driver bound; the plan says {mech}")
        if got.msi_mode != mech:
            problems.append(f"{who}: Linux ends with {got.msi_mode} x{got.vectors}; the plan says {mech}")
            continue
        if mech not in ("msi", "msix"):
            continue
        if got.vectors != int(fn["vectors_granted"]):
            problems.append(f"{who}: Linux has {got.vectors} {mech} vector(s); the plan grants {fn['vectors_granted']}")
        segment = int(bdf.split(":")[0], 16)
        phb = run.phbs.get(segment)
        xives = run.xives(bdf)
        if phb is None:
            problems.append(f"{who}: skiboot's tree has no PHB {segment} (Linux domain {segment})")
        else:
            outside = [x for x in xives if not phb.holds(x)]
            if outside:
                problems.append(
                    f"{who}: XIVE numbers {[hex(x) for x in outside]} outside {phb.node}'s ibm,opal-msi-ranges "
                    f"<{phb.msi_base:#x} {phb.msi_count:#x}>"
                )
        planned = _planned_hwirqs(fn)
        if sorted(xives) != sorted(planned):
            problems.append(
                f"{who}: Linux's vectors have XIVE numbers {[hex(x) for x in sorted(xives)]}; the plan's hwirqs "
                f"are {[hex(x) for x in sorted(planned)]}"
            )
    for bdf, got in sorted(run.report.functions.items()):
        if bdf not in planned_bdfs and got.class_code >> 8 != 0x0604 and got.driver is not None:
            problems.append(f"{bdf}: Linux bound {got.driver} ({got.msi_mode} x{got.vectors}); the plan lacks it")
    return problems


def summary(run: PowernvRun) -> str:
    """Per function: driver, mechanism, vectors, XIVE numbers; then the PHBs."""
    lines = [f"boot: {run.seconds:.1f} s"]
    for bdf, fn in sorted(run.report.functions.items()):
        lines.append(
            f"{bdf} {fn.vendor:04x}:{fn.device:04x} driver={fn.driver} mode={fn.msi_mode} "
            f"vectors={fn.vectors} xive={[hex(x) for x in run.xives(bdf)]}"
        )
    for phb in sorted(run.phbs.values(), key=lambda p: p.phb_id):
        lines.append(f"PHB {phb.phb_id} {phb.node} msi-ranges <{phb.msi_base:#x} {phb.msi_count:#x}>")
    lines.append(f"settled={run.report.settled} stuck={list(run.report.stuck_modules)}")
    return "\n".join(lines)
