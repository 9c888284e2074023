"""Let the real Linux kernel judge a device tree.

Boots Debian's arm64 kernel under ``qemu-system-aarch64`` (software
emulation, QEMU's ``virt`` machine) on a DTB we provide, with a small
initramfs whose ``/init`` (``init.sh`` beside this file) loads the PCI
drivers, makes every device raise interrupts and prints a report.  Per PCI
function it says: the driver, the MSI/MSI-X vectors Linux allocated, each
vector's irq chip, hwirq and ITS LPI, the interrupts actually delivered, the
INTx line, the MSI-X table as the kernel programmed it and config space.
QEMU's own ITS trace adds the DeviceID the guest mapped for every LPI and the
MSI writes each requester ID made.

The same harness boots Debian's amd64 kernel on QEMU's ``q35`` (``arch=AMD64``:
no DTB, the firmware's ACPI tables describe the machine), for what the x86
APIC makes of an MSI (``x86stub.py``).

Public API::

    guest = ensure_guest(cache_dir)            # download + build once, cached
    report = boot(guest, dtb, ["virtio-net-pci,addr=01.0", "nvme,serial=x,addr=03.0"])
    fn = report.function("00:01.0")
    fn.msi_mode, fn.vectors, fn.delivered, fn.its_device_ids
    qemu_tree = dump_qemu_dtb(devices)         # QEMU's own DTB for the same options
    # a program of the test's own, run by /init before the report:
    extra = initramfs_overlay({"dtmsi-stub/run.sh": script}, executables=["dtmsi-stub/run.sh"])
    report = boot(guest, dtb, devices, extra_initrd=extra, trace_events=["pci_cfg_write"])
    report.sections["stub"], report.trace
    # the amd64 guest on q35, under cache_dir/amd64; no DTB:
    x86 = ensure_guest(cache_dir, arch=AMD64)
    x86_report = boot(x86, None, ["edu,addr=04.0"], smp=2)

Everything runs as subprocesses with explicit time limits; a missing tool is
a :class:`HarnessError` naming the Debian package to install.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
import warnings
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = [
    "AMD64",
    "ARM64",
    "DEFAULT_MACHINE",
    "DEFAULT_MODULES",
    "BootReport",
    "FunctionReport",
    "Guest",
    "GuestArch",
    "GuestBootError",
    "GuestOptions",
    "HarnessError",
    "IrqReport",
    "ItsMapping",
    "MsiMessage",
    "MsixEntry",
    "boot",
    "dump_qemu_dtb",
    "ensure_guest",
    "initramfs_overlay",
    "kernel_command_line",
    "pack_dtb",
    "parse_report",
    "qemu_command",
    "require_tools",
    "unpack_bzimage",
]

MEMORY = "1G"

#: Kernel modules put into the initramfs (with their dependencies): drivers
#: for QEMU's virtio-net-pci, e1000e and nvme, plus virtio-blk and e1000
#: (a conventional PCI NIC without MSI) for topologies that want them.
DEFAULT_MODULES: tuple[str, ...] = (
    "virtio_pci",
    "virtio_net",
    "virtio_blk",
    "e1000e",
    "e1000",
    "nvme",
)

BUSYBOX_PACKAGE = "busybox-static"

#: Bumped whenever the initramfs layout or the report format changes; part
#: of the cache key together with init.sh's contents.
REPORT_FORMAT = 1
INIT_SCRIPT = Path(__file__).with_name("init.sh")

#: QEMU trace events that show what the guest programmed into the ITS.
ITS_TRACE_EVENTS: tuple[str, ...] = (
    "gicv3_its_cmd_mapd",
    "gicv3_its_cmd_mapti",
    "gicv3_its_cmd_mapi",
    "gicv3_its_translation_write",
)


@dataclass(frozen=True)
class GuestArch:
    """What differs between the guests of two architectures: the Debian
    packages, the QEMU binary and board, the kernel command line, whether the
    kernel takes its hardware description from our DTB, and the QEMU trace
    events every boot logs."""

    deb_arch: str  # Debian's name: "arm64", "amd64"
    qemu: str
    qemu_package: str
    machine: str
    cpu: str | None  # None: the board's default CPU
    kernel_args: tuple[str, ...]
    #: The kernel reads the hardware from a ``-dtb`` (arm64); x86 finds it
    #: through ACPI and takes none.
    takes_dtb: bool
    trace_events: tuple[str, ...] = ()
    #: Boot the kernel's ELF image, unpacked once from the compressed one,
    #: through its PVH entry point: QEMU's x86 loader takes such an ELF, and
    #: the bzImage's own xz decompression costs several seconds a boot under
    #: TCG.
    unpack_kernel: bool = False
    #: Under the cache directory: "" keeps the arm64 guest's historic layout
    #: (``<cache>/apt``, ``debs``, ``guests``); others get ``<cache>/<deb_arch>``.
    cache_subdir: str = ""

    @property
    def kernel_metapackage(self) -> str:
        return f"linux-image-{self.deb_arch}"


ARM64 = GuestArch(
    deb_arch="arm64",
    qemu="qemu-system-aarch64",
    qemu_package="qemu-system-arm",
    machine="virt,gic-version=3,its=on",
    cpu="cortex-a57",
    kernel_args=(
        "console=ttyAMA0",
        "earlycon",
        "panic=-1",
        "iomem=relaxed",
        "loglevel=8",
        # Probe drivers asynchronously: otherwise every module load waits for all
        # pending async work (do_init_module), so one probe stuck on a lost
        # interrupt (nvme) would stall every later modprobe.
        "module.async_probe=1",
        'dyndbg="file drivers/irqchip/irq-gic-v3-its.c +p"',
    ),
    takes_dtb=True,
    trace_events=ITS_TRACE_EVENTS,
)

#: Debian's amd64 kernel on QEMU's q35 (ICH9, PCIe host bridge, local APICs
#: and an IOAPIC), under TCG; the kernel finds PCI through ACPI (MCFG).
AMD64 = GuestArch(
    deb_arch="amd64",
    qemu="qemu-system-x86_64",
    qemu_package="qemu-system-x86",
    machine="q35",
    cpu=None,
    kernel_args=(
        "console=ttyS0",
        "panic=-1",
        "iomem=relaxed",
        # The 8250 console is slow under TCG; the report carries the whole log.
        "loglevel=4",
        "module.async_probe=1",
    ),
    takes_dtb=False,
    unpack_kernel=True,
    cache_subdir="amd64",
)

# The arm64 guest's names, as the other modules and tests know them.
DEFAULT_MACHINE = ARM64.machine
QEMU = ARM64.qemu
CPU = ARM64.cpu
KERNEL_METAPACKAGE = ARM64.kernel_metapackage
DEB_ARCH = ARM64.deb_arch
KERNEL_ARGS = ARM64.kernel_args

APT_LISTS_MAX_AGE_S = 24 * 3600.0

#: Tool -> Debian package that provides it.
TOOLS: Mapping[str, str] = {
    ARM64.qemu: ARM64.qemu_package,
    AMD64.qemu: AMD64.qemu_package,
    "apt-get": "apt",
    "apt-cache": "apt",
    "dpkg-deb": "dpkg",
    "depmod": "kmod",
}

#: Kernel log lines worth surfacing about MSI, the ITS and interrupt fallback.
_MSI_LOG_RE = re.compile(
    r"\b(?:MSI|MSI-X|ITS|ITT|LPI|INTx|msi)\b|msi-map|msi-parent|msi-cells|Reusing ITT|"
    r"(?i:legacy interrupt|falling back|no msi)"
)


MsiMode = Literal["msix", "msi", "intx", "none"]


class HarnessError(RuntimeError):
    """The harness itself cannot work: a tool, a package or the network is missing."""


class GuestBootError(RuntimeError):
    """The guest did not produce a report (panic, time-out, QEMU failure)."""

    def __init__(self, reason: str, log: str, command: Sequence[str]) -> None:
        tail = "\n".join(log.splitlines()[-60:])
        super().__init__(
            f"{reason}\nQEMU command: {' '.join(command)}\n"
            f"--- last lines of the serial log ---\n{tail}"
        )
        self.reason = reason
        self.log = log
        self.command = tuple(command)


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Guest:
    """A bootable guest: kernel image and initramfs, with their provenance."""

    kernel: Path
    initrd: Path
    kernel_release: str  # "6.1.0-56-arm64"
    kernel_package: str  # "linux-image-6.1.0-56-arm64"
    kernel_version: str  # Debian version, "6.1.192-2"
    busybox_version: str
    modules: tuple[str, ...]  # module names in the initramfs, dependencies included
    arch: GuestArch = ARM64

    @property
    def key(self) -> str:
        return self.kernel.parent.name


@dataclass(frozen=True)
class IrqReport:
    """One Linux irq as /sys/kernel/irq/N and /proc/interrupts show it."""

    irq: int
    chip: str  # "ITS-MSI", "GICv3", ...
    #: The irq domain's number.  For PCI MSI on the ITS, Linux computes it as
    #: msi_index | pci_dev_id << 11 | domain << 27 (pci_msi_domain_calc_hwirq),
    #: so it encodes the function's own requester ID, not the ITS DeviceID.
    hwirq: int
    count: int  # interrupts delivered, summed over CPUs
    type: str = ""  # "edge" / "level"
    actions: str = ""  # handler names, e.g. "virtio0-input.0"
    lpi: int | None = None  # ITS LPI (pINTID), from the ITS driver's debug lines


@dataclass(frozen=True)
class MsixEntry:
    """One MSI-X table entry as the kernel programmed it."""

    index: int
    address: int
    data: int
    vector_control: int

    @property
    def masked(self) -> bool:
        return bool(self.vector_control & 1)


@dataclass(frozen=True)
class MsiMessage:
    """The MSI capability's message registers (from config space)."""

    enabled: bool
    multiple_message_capable: int  # vectors the function asks for (1, 2, 4, ... 32)
    multiple_message_enable: int  # vectors enabled
    address: int
    data: int
    is_64bit: bool


@dataclass(frozen=True)
class ItsMapping:
    """One MAPTI/MAPI command QEMU's ITS executed (from QEMU's trace):
    the guest told the ITS that (DeviceID, EventID) raises ``lpi``."""

    device_id: int
    event_id: int
    icid: int
    lpi: int


@dataclass(frozen=True)
class FunctionReport:
    """What Linux did with one PCI function."""

    bdf: str  # "0000:00:01.0"
    vendor: int
    device: int
    class_code: int
    driver: str | None
    msi_mode: MsiMode
    vectors: int  # MSI/MSI-X vectors allocated (0 for INTx/none)
    irqs: tuple[IrqReport, ...]  # the MSI/MSI-X irqs, in irq order
    delivered: dict[int, int]  # irq -> interrupts delivered (MSI irqs, else the INTx irq)
    hwirqs: dict[int, int]  # irq -> hwirq (ITS-MSI: msi_index | RID << 11)
    intx_irq: int | None  # the function's legacy irq when it has one
    intx_count: int  # interrupts on that legacy irq (shared lines add up)
    config: bytes  # first 256 bytes of config space
    msix_table: tuple[MsixEntry, ...] = ()
    msi_message: MsiMessage | None = None
    #: ITS DeviceIDs the guest mapped for this function's LPIs (QEMU's view).
    its_device_ids: tuple[int, ...] = ()
    #: MSI writes QEMU's ITS received carrying this function's requester ID.
    its_writes: int = 0

    @property
    def total_delivered(self) -> int:
        return sum(self.delivered.values())

    @property
    def requester_id(self) -> int:
        bus, devfn = self.bdf.split(":")[1:]
        dev, fn = devfn.split(".")
        return (int(bus, 16) << 8) | (int(dev, 16) << 3) | int(fn, 16)


@dataclass(frozen=True)
class BootReport:
    """Everything one boot told us."""

    functions: dict[str, FunctionReport]
    log: str  # the whole serial console log
    dmesg: str  # the kernel log, read at the end of the run
    msi_log: tuple[str, ...]  # kernel log lines about MSI / ITS / INTx fallback
    interrupts: str  # /proc/interrupts at the end
    irqs: dict[int, IrqReport]  # every irq with a chip
    kernel_release: str
    settled: bool  # False: /init gave up waiting for interrupts
    stuck_modules: tuple[str, ...]  # modaliases whose modprobe never returned
    boot_seconds: float
    its_mappings: tuple[ItsMapping, ...]
    #: requester ID -> MSI writes to GITS_TRANSLATER that QEMU saw.
    its_writes: dict[int, int]
    qemu_command: tuple[str, ...]
    warnings: tuple[str, ...] = ()  # kernel WARNING/BUG lines
    #: QEMU's whole trace log (the ITS events plus any ``trace_events`` of boot).
    trace: str = ""
    #: The report's ``@@BEGIN name`` ... ``@@END name`` sections: "interrupts",
    #: "dmesg", and "stub" (output of an appended /dtmsi-stub/run.sh, last line
    #: "exit N").
    sections: dict[str, str] = field(default_factory=dict)

    def function(self, bdf: str) -> FunctionReport:
        """The function at ``bdf`` ("00:01.0" or "0000:00:01.0")."""
        key = bdf if bdf.count(":") == 2 else f"0000:{bdf}"
        try:
            return self.functions[key]
        except KeyError:
            raise KeyError(
                f"no PCI function {key} in the guest; it saw {sorted(self.functions)}"
            ) from None

    def summary(self) -> str:
        """One line per function, for assertion messages."""
        lines = []
        for bdf, fn in sorted(self.functions.items()):
            lines.append(
                f"{bdf} {fn.vendor:04x}:{fn.device:04x} driver={fn.driver} "
                f"mode={fn.msi_mode} vectors={fn.vectors} delivered={fn.delivered} "
                f"devids={[hex(d) for d in fn.its_device_ids]}"
            )
        lines.append(f"settled={self.settled} stuck={list(self.stuck_modules)}")
        lines.extend(self.msi_log)
        return "\n".join(lines)


# --------------------------------------------------------------------------
# tools
# --------------------------------------------------------------------------


def require_tools(*tools: str) -> None:
    """Fail with the Debian packages to install when a tool is missing."""
    wanted = tools or tuple(TOOLS)
    missing = [t for t in wanted if shutil.which(t) is None]
    if missing:
        packages = sorted({TOOLS.get(t, t) for t in missing})
        raise HarnessError(
            f"missing tools for the Linux boot tests: {', '.join(missing)}; "
            f"install the Debian packages: apt-get install {' '.join(packages)} "
            "(scripts/apt-packages.txt lists them all)"
        )


def _run(
    cmd: Sequence[str],
    *,
    timeout: float,
    cwd: Path | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(
            list(cmd),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise HarnessError(f"{cmd[0]} did not finish in {timeout:.0f} s: {' '.join(cmd)}") from exc
    if check and proc.returncode != 0:
        raise HarnessError(
            f"{' '.join(cmd)} failed with exit code {proc.returncode}:\n"
            f"{proc.stderr.strip() or proc.stdout.strip()}"
        )
    return proc


# --------------------------------------------------------------------------
# fetching the Debian packages
# --------------------------------------------------------------------------


class _Apt:
    """apt-get/apt-cache on a private state for one foreign architecture
    (arm64 here; tests/linux/pseries.py uses it for ppc64el); the host's
    dpkg is untouched."""

    def __init__(self, root: Path, arch: str = DEB_ARCH) -> None:
        self.root = root
        self.arch = arch
        self.lists = root / "lists"
        self.cache = root / "cache"

    def options(self) -> list[str]:
        opts = [
            "-o", f"APT::Architecture={self.arch}",
            "-o", f"APT::Architectures={self.arch}",
            "-o", f"Dir::State::Lists={self.lists}",
            "-o", f"Dir::Cache={self.cache}",
            "-o", "Dir::State::status=/dev/null",
            "-o", "Acquire::Retries=3",
        ]  # fmt: skip
        if os.geteuid() == 0:
            # The private directories belong to root; apt's _apt user could
            # not write the downloads there.
            opts += ["-o", "APT::Sandbox::User=root"]
        return opts

    def lists_age(self) -> float | None:
        stamps = list(self.lists.glob("*Packages*"))
        if not stamps:
            return None
        return time.time() - max(p.stat().st_mtime for p in stamps)

    def update(self) -> None:
        (self.lists / "partial").mkdir(parents=True, exist_ok=True)
        (self.cache / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        proc = _run(["apt-get", *self.options(), "-q", "update"], timeout=300, check=False)
        # A third-party source without this architecture may fail; what matters is that
        # Debian's lists arrived, which show() checks.
        if proc.returncode != 0 and self.lists_age() is None:
            raise HarnessError(f"apt-get update ({self.arch}, private state) failed:\n{proc.stderr}")

    def show(self, package: str) -> dict[str, str]:
        proc = _run(
            ["apt-cache", *self.options(), "show", "--no-all-versions", package],
            timeout=120,
            check=False,
        )
        if proc.returncode != 0 or not proc.stdout.strip():
            raise HarnessError(
                f"the Debian archive offers no {package} for {self.arch}: {proc.stderr.strip()}"
            )
        fields: dict[str, str] = {}
        last = ""
        for line in proc.stdout.splitlines():
            if not line.strip():
                break
            if line[0].isspace() and last:
                fields[last] += "\n" + line.strip()
                continue
            name, _, value = line.partition(":")
            last = name
            fields[name] = value.strip()
        return fields

    def download(self, package: str, version: str, dest: Path) -> Path:
        dest.mkdir(parents=True, exist_ok=True)
        quoted = version.replace(":", "%3a")
        target = dest / f"{package}_{quoted}_{self.arch}.deb"
        if target.exists():
            return target
        with tempfile.TemporaryDirectory(dir=dest) as tmp:
            _run(
                ["apt-get", *self.options(), "-q", "download", f"{package}={version}"],
                cwd=Path(tmp),
                timeout=900,
            )
            debs = list(Path(tmp).glob("*.deb"))
            if len(debs) != 1:
                raise HarnessError(f"apt-get download {package}={version} gave {debs}")
            debs[0].replace(target)
        return target


@dataclass(frozen=True)
class _Versions:
    kernel_package: str
    kernel_version: str
    busybox_version: str


def _resolve_versions(apt: _Apt, arch: GuestArch = ARM64) -> _Versions:
    meta = apt.show(arch.kernel_metapackage)
    flavour = re.escape(arch.deb_arch)
    match = re.search(rf"\b(linux-image-[0-9][^\s,()]*-{flavour})\b", meta.get("Depends", ""))
    if match is None:
        raise HarnessError(f"cannot find the kernel package in {arch.kernel_metapackage}'s Depends")
    kernel_package = match.group(1)
    kernel = apt.show(kernel_package)
    busybox = apt.show(BUSYBOX_PACKAGE)
    return _Versions(kernel_package, kernel["Version"], busybox["Version"])


# --------------------------------------------------------------------------
# the initramfs
# --------------------------------------------------------------------------


def _normalise_module(name: str) -> str:
    base = name.rsplit("/", 1)[-1]
    for suffix in (".ko", ".ko.xz", ".ko.zst", ".ko.gz"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("-", "_")


def _read_modules_dep(moddir: Path) -> dict[str, tuple[str, list[str]]]:
    """Module name -> (relative path, relative paths of its dependencies)."""
    result: dict[str, tuple[str, list[str]]] = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        path, _, deps = line.partition(":")
        result[_normalise_module(path)] = (path, deps.split())
    return result


def _module_closure(moddir: Path, wanted: Sequence[str]) -> list[str]:
    """Relative paths of the wanted modules and everything they depend on."""
    dep = _read_modules_dep(moddir)
    builtin = {
        _normalise_module(line)
        for line in (moddir / "modules.builtin").read_text().splitlines()
        if line.strip()
    }
    paths: list[str] = []
    seen: set[str] = set()
    for name in wanted:
        key = _normalise_module(name)
        if key in builtin:
            continue
        if key not in dep:
            raise HarnessError(f"kernel module {name} is not in {moddir}/modules.dep")
        path, deps = dep[key]
        for p in [path, *deps]:
            if p not in seen:
                seen.add(p)
                paths.append(p)
    return sorted(paths)


class _Cpio:
    """A deterministic cpio "newc" archive (what the kernel unpacks as initramfs)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._ino = 1

    def _entry(
        self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)
    ) -> None:
        namez = name.encode() + b"\0"
        fields = (
            self._ino, mode, 0, 0, 2 if stat.S_ISDIR(mode) else 1, 0, len(data),
            0, 0, rdev[0], rdev[1], len(namez), 0,
        )  # fmt: skip
        self._ino += 1
        header = b"070701" + b"".join(f"{v:08x}".encode() for v in fields)
        blob = header + namez
        blob += b"\0" * (-len(blob) % 4)
        blob += data + b"\0" * (-len(data) % 4)
        self._parts.append(blob)

    def directory(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        self._entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def tree(self, root: Path, prefix: str) -> None:
        """Add ``root`` (directories, files, symlinks) under ``prefix``, sorted."""
        for path in sorted(root.rglob("*")):
            name = f"{prefix}/{path.relative_to(root).as_posix()}"
            if path.is_symlink():
                self.symlink(name, os.readlink(path))
            elif path.is_dir():
                self.directory(name)
            else:
                self.file(name, path.read_bytes(), 0o755 if os.access(path, os.X_OK) else 0o644)

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return b"".join(self._parts)


def initramfs_overlay(files: Mapping[str, bytes], executables: Sequence[str] = ()) -> bytes:
    """A cpio archive to append to the guest's initramfs (``boot(extra_initrd=...)``).

    ``files`` maps paths inside the guest ("dtmsi-stub/run.sh") to contents;
    the directories they need are created, ``executables`` get mode 0755.
    The kernel unpacks it over the base archive.
    """
    cpio = _Cpio()
    made: set[str] = set()
    for name in sorted(files):
        path = name.strip("/")
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in made:
                made.add(d)
                cpio.directory(d)
        executable = name in executables or path in executables
        cpio.file(path, files[name], 0o755 if executable else 0o644)
    return cpio.finish()


def _build_initramfs(
    kernel_root: Path, busybox_root: Path, release: str, modules: Sequence[str], work: Path
) -> tuple[bytes, tuple[str, ...]]:
    moddir = kernel_root / "lib" / "modules" / release
    _run(["depmod", "-b", str(kernel_root), release], timeout=300)
    wanted = _module_closure(moddir, modules)

    # The subset, with its own modules.dep / modules.alias for busybox modprobe.
    stage = work / "stage"
    stage_mod = stage / "lib" / "modules" / release
    for rel in wanted:
        (stage_mod / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(moddir / rel, stage_mod / rel)
    for name in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        if (moddir / name).exists():
            shutil.copy2(moddir / name, stage_mod / name)
    _run(["depmod", "-b", str(stage), release], timeout=300)

    busybox = busybox_root / "bin" / "busybox"
    if not busybox.exists():
        raise HarnessError(f"busybox-static has no /bin/busybox (looked in {busybox_root})")

    cpio = _Cpio()
    for d in ("bin", "dev", "etc", "lib", "proc", "root", "run", "sbin", "sys", "tmp",
              "usr", "usr/bin", "usr/sbin", "var"):  # fmt: skip
        cpio.directory(d)
    cpio.chardev("dev/console", 5, 1)
    cpio.chardev("dev/null", 1, 3, 0o666)
    cpio.file("bin/busybox", busybox.read_bytes(), 0o755)
    cpio.symlink("bin/sh", "busybox")
    cpio.file("init", INIT_SCRIPT.read_bytes(), 0o755)
    cpio.directory("lib/modules")
    cpio.tree(stage / "lib" / "modules", "lib/modules")
    archive = cpio.finish()
    names = tuple(sorted(_normalise_module(p) for p in wanted))
    return gzip.compress(archive, compresslevel=6, mtime=0), names


# --------------------------------------------------------------------------
# ensure_guest
# --------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _guest_key(versions: _Versions, modules: Sequence[str]) -> str:
    digest = hashlib.sha256()
    digest.update(INIT_SCRIPT.read_bytes())
    digest.update(repr((REPORT_FORMAT, sorted(modules))).encode())
    safe = re.compile(r"[^A-Za-z0-9.+_-]")
    parts = (
        versions.kernel_package,
        safe.sub("_", versions.kernel_version),
        "busybox",
        safe.sub("_", versions.busybox_version),
        digest.hexdigest()[:12],
    )
    return "_".join(parts)


def _load_guest(directory: Path, arch: GuestArch = ARM64) -> Guest | None:
    manifest = directory / "guest.json"
    if not manifest.exists():
        return None
    data = json.loads(manifest.read_text())
    return Guest(
        kernel=directory / ("vmlinux" if arch.unpack_kernel else "vmlinuz"),
        initrd=directory / "initrd.img",
        kernel_release=str(data["kernel_release"]),
        kernel_package=str(data["kernel_package"]),
        kernel_version=str(data["kernel_version"]),
        busybox_version=str(data["busybox_version"]),
        modules=tuple(str(m) for m in data["modules"]),
        arch=arch,
    )


def ensure_guest(
    cache_dir: Path, modules: Sequence[str] = DEFAULT_MODULES, arch: GuestArch = ARM64
) -> Guest:
    """The guest for the newest bookworm kernel of ``arch``, built once and cached.

    ``cache_dir`` (plus ``arch.cache_subdir``) holds a private apt state
    (``apt/``), the downloaded debs (``debs/``) and one directory per built
    guest (``guests/<key>/``), the key naming the kernel and busybox versions
    and hashing ``init.sh``.  The apt lists are refreshed when older than a
    day; if the archive cannot be reached, the newest guest already built is
    used (with a warning).
    """
    require_tools("apt-get", "apt-cache", "dpkg-deb", "depmod")
    cache_dir = cache_dir.expanduser().resolve() / arch.cache_subdir
    with _locked(cache_dir / ".lock"):
        apt = _Apt(cache_dir / "apt", arch.deb_arch)
        debs = cache_dir / "debs"
        try:
            age = apt.lists_age()
            if age is None or age > APT_LISTS_MAX_AGE_S:
                apt.update()
            versions = _resolve_versions(apt, arch)
            directory = cache_dir / "guests" / _guest_key(versions, modules)
            existing = _load_guest(directory, arch)
            if existing is not None and existing.kernel.exists() and existing.initrd.exists():
                return existing
            kernel_deb = apt.download(versions.kernel_package, versions.kernel_version, debs)
            busybox_deb = apt.download(BUSYBOX_PACKAGE, versions.busybox_version, debs)
        except HarnessError as exc:
            # The archive cannot be reached (or moved on while the lists are
            # old): a guest built before still lets the tests run.
            fallback = _newest_guest(cache_dir / "guests", arch)
            if fallback is None:
                raise
            warnings.warn(f"using the cached guest {fallback.key}: {exc}", stacklevel=2)
            return fallback

        _build_guest(directory, versions, kernel_deb, busybox_deb, modules, arch)
        _prune(cache_dir, keep_debs={kernel_deb, busybox_deb}, keep_guests=3)
        built = _load_guest(directory, arch)
        assert built is not None
        return built


def _prune(cache_dir: Path, keep_debs: set[Path], keep_guests: int) -> None:
    """Drop debs of other versions and all but the newest guests."""
    for deb in (cache_dir / "debs").glob("*.deb"):
        if deb not in keep_debs:
            deb.unlink(missing_ok=True)
    guests = sorted(
        (d for d in (cache_dir / "guests").glob("*") if (d / "guest.json").exists()),
        key=lambda d: (d / "guest.json").stat().st_mtime,
        reverse=True,
    )
    for old in guests[keep_guests:]:
        shutil.rmtree(old, ignore_errors=True)


def _newest_guest(guests: Path, arch: GuestArch = ARM64) -> Guest | None:
    found = [g for d in guests.glob("*") if (g := _load_guest(d, arch)) is not None]
    found = [g for g in found if g.kernel.exists() and g.initrd.exists()]
    if not found:
        return None
    return max(found, key=lambda g: g.kernel.stat().st_mtime)


def _build_guest(
    directory: Path,
    versions: _Versions,
    kernel_deb: Path,
    busybox_deb: Path,
    modules: Sequence[str],
    arch: GuestArch = ARM64,
) -> None:
    directory.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory.parent, prefix=".build-") as tmp:
        work = Path(tmp)
        kroot, broot = work / "kernel", work / "busybox"
        _run(["dpkg-deb", "-x", str(kernel_deb), str(kroot)], timeout=600)
        _run(["dpkg-deb", "-x", str(busybox_deb), str(broot)], timeout=120)
        images = sorted((kroot / "boot").glob("vmlinuz-*"))
        if len(images) != 1:
            raise HarnessError(f"{kernel_deb.name} holds kernels {images}, expected one")
        release = images[0].name.removeprefix("vmlinuz-")
        initrd, names = _build_initramfs(kroot, broot, release, modules, work)

        out = work / "out"
        out.mkdir()
        shutil.copyfile(images[0], out / "vmlinuz")
        if arch.unpack_kernel:
            (out / "vmlinux").write_bytes(unpack_bzimage(images[0].read_bytes()))
        (out / "initrd.img").write_bytes(initrd)
        manifest = {
            "kernel_release": release,
            "kernel_package": versions.kernel_package,
            "kernel_version": versions.kernel_version,
            "busybox_version": versions.busybox_version,
            "modules": list(names),
            "report_format": REPORT_FORMAT,
        }
        (out / "guest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if directory.exists():
            shutil.rmtree(directory)
        out.rename(directory)


def unpack_bzimage(image: bytes) -> bytes:
    """The kernel's ELF image (vmlinux) inside an x86 bzImage.

    The boot protocol's setup header (Documentation/x86/boot.rst, protocol
    2.08 and later) says where the compressed payload lies: ``payload_offset``
    (0x248) and ``payload_length`` (0x24c) from the start of the
    protected-mode code, which follows the ``setup_sects`` (0x1f1) sectors of
    real-mode setup and the boot sector.  Debian compresses it with xz (with
    the x86 BCJ filter, which Python's lzma undoes) or gzip.
    """
    if len(image) < 0x250 or image[0x202:0x206] != b"HdrS":
        raise HarnessError("not an x86 bzImage (no HdrS setup header)")
    protocol = int.from_bytes(image[0x206:0x208], "little")
    if protocol < 0x208:
        raise HarnessError(f"bzImage boot protocol {protocol:#x} has no payload fields (2.08 and later)")
    setup_sects = image[0x1F1] or 4
    start = (setup_sects + 1) * 512 + int.from_bytes(image[0x248:0x24C], "little")
    payload = image[start : start + int.from_bytes(image[0x24C:0x250], "little")]
    if payload.startswith(b"\xfd7zXZ\x00"):
        vmlinux = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(payload)
    elif payload.startswith(b"\x1f\x8b"):
        vmlinux = zlib.decompressobj(wbits=31).decompress(payload)
    else:
        raise HarnessError(f"bzImage payload compressed with an unknown method (magic {payload[:6].hex()})")
    if not vmlinux.startswith(b"\x7fELF"):
        raise HarnessError("the bzImage payload is no ELF image")
    return vmlinux


# --------------------------------------------------------------------------
# QEMU
# --------------------------------------------------------------------------


def _device_args(devices: Sequence[str]) -> list[str]:
    """Accept "virtio-net-pci,addr=01.0" items or a ready "-device ..." argv."""
    if any(d.startswith("-") for d in devices):
        return list(devices)
    args: list[str] = []
    for d in devices:
        args += ["-device", d]
    return args


def _machine_args(machine: str, smp: int, memory: str, arch: GuestArch = ARM64) -> list[str]:
    cpu = ["-cpu", arch.cpu] if arch.cpu is not None else []
    return ["-M", machine, *cpu, "-m", memory, "-smp", str(smp), "-nodefaults",
            "-display", "none"]  # fmt: skip


@dataclass(frozen=True)
class GuestOptions:
    """What the guest's /init does; passed on the kernel command line."""

    #: Give up waiting for every endpoint to deliver an interrupt after this.
    settle_s: int = 8
    #: The set of MSI vectors must stay unchanged this long.
    stable_s: int = 1
    #: Give up waiting for a round of modprobes (a probe that waits for an
    #: interrupt that never comes) after this; the module is reported stuck.
    probe_s: int = 5
    #: Bring network interfaces up and send ARP broadcasts.
    network: bool = True

    def kernel_args(self) -> list[str]:
        return [
            f"dtmsi.settle={self.settle_s}",
            f"dtmsi.stable={self.stable_s}",
            f"dtmsi.probe={self.probe_s}",
            f"dtmsi.net={int(self.network)}",
        ]


def kernel_command_line(
    options: GuestOptions = GuestOptions(), extra: Sequence[str] = (), arch: GuestArch = ARM64
) -> str:
    """The kernel command line :func:`boot` passes with ``-append``."""
    return " ".join([*arch.kernel_args, *options.kernel_args(), *extra])


def qemu_command(
    guest: Guest,
    dtb: Path | None,
    qemu_devices: Sequence[str],
    serial_log: Path,
    *,
    machine: str | None = None,
    smp: int = 1,
    memory: str = MEMORY,
    trace_log: Path | None = None,
    options: GuestOptions = GuestOptions(),
    extra_args: Sequence[str] = (),
    kernel_args: Sequence[str] = (),
    trace_events: Sequence[str] = (),
    initrd: Path | None = None,
) -> list[str]:
    """The exact QEMU argv :func:`boot` runs (``qemu-system-aarch64`` for the
    arm64 guest; the guest's architecture decides).

    ``machine`` defaults to the architecture's board; ``dtb`` is None for a
    guest that takes none (x86).  ``trace_events`` are QEMU trace events
    logged besides the architecture's own (the ITS ones on arm64);
    ``initrd`` replaces the guest's own initramfs (boot's ``extra_initrd``).
    """
    if "," in str(serial_log):
        raise HarnessError(f"QEMU cannot take a serial log path with a comma: {serial_log}")
    arch = guest.arch
    if (dtb is not None) != arch.takes_dtb:
        raise HarnessError(
            f"the {arch.deb_arch} guest {'needs' if arch.takes_dtb else 'takes no'} device tree (dtb={dtb})"
        )
    initrd = guest.initrd if initrd is None else initrd
    dtb_args = ["-dtb", str(dtb)] if dtb is not None else []
    cmd = [arch.qemu, *_machine_args(machine or arch.machine, smp, memory, arch), "-no-reboot",
           "-serial", f"file:{serial_log}",
           "-kernel", str(guest.kernel), "-initrd", str(initrd), *dtb_args,
           "-append", kernel_command_line(options, kernel_args, arch)]  # fmt: skip
    if trace_log is not None:
        for event in dict.fromkeys([*arch.trace_events, *trace_events]):
            cmd += ["-trace", f"enable={event}"]
        cmd += ["-D", str(trace_log)]
    return cmd + _device_args(qemu_devices) + list(extra_args)


def dump_qemu_dtb(
    qemu_devices: Sequence[str] = (),
    machine: str = DEFAULT_MACHINE,
    *,
    smp: int = 1,
    memory: str = MEMORY,
) -> bytes:
    """QEMU's own device tree for these options (``-M ...,dumpdtb=FILE``).

    PCI functions never appear in it (Linux probes them through ECAM); the
    devices only matter when they change the board (e.g. a platform device).
    /chosen carries random rng-seed/kaslr-seed values.
    """
    require_tools(QEMU)
    with tempfile.TemporaryDirectory(prefix="dtmsi-dump-") as tmp:
        out = Path(tmp) / "qemu.dtb"
        cmd = [QEMU, *_machine_args(f"{machine},dumpdtb={out}", smp, memory),
               *_device_args(qemu_devices)]  # fmt: skip
        _run(cmd, timeout=60)
        if not out.exists():
            raise HarnessError(f"QEMU wrote no DTB: {' '.join(cmd)}")
        return pack_dtb(out.read_bytes())


def pack_dtb(blob: bytes) -> bytes:
    """The same tree with no free space at the end (``fdt_pack``).

    QEMU dumps its tree padded to 1 MiB; booted as it is, the guest hangs
    silently (see :data:`MAX_DTB_SIZE`).
    """
    import libfdt

    fdt = libfdt.Fdt(bytearray(blob))
    fdt.pack()
    return bytes(fdt.as_bytearray())


#: QEMU loads a ``-dtb`` file into a buffer of (size + 10000) * 2 bytes and
#: sets the tree's totalsize to that; arm64 Linux refuses a tree larger than
#: 2 MiB (MAX_FDT_SIZE) and hangs before the console is up.  So a DTB file may
#: be at most this big.
MAX_DTB_SIZE = (2 * 1024 * 1024) // 2 - 10000


def _check_dtb(dtb: Path) -> None:
    header = dtb.read_bytes()[:8]
    if len(header) < 8 or header[:4] != bytes.fromhex("d00dfeed"):
        raise HarnessError(f"{dtb} is not a flattened device tree (bad magic)")
    size = dtb.stat().st_size
    if size > MAX_DTB_SIZE:
        raise HarnessError(
            f"{dtb} is {size} bytes; QEMU doubles a -dtb's size and arm64 Linux then "
            f"refuses it (limit {MAX_DTB_SIZE} bytes): pack it (fdt_pack, dtc -I dtb -O dtb)"
        )


def boot(
    guest: Guest,
    dtb: Path | None,
    qemu_devices: Sequence[str],
    machine: str | None = None,
    timeout_s: float = 180.0,
    *,
    smp: int = 1,
    memory: str = MEMORY,
    options: GuestOptions = GuestOptions(),
    extra_args: Sequence[str] = (),
    kernel_args: Sequence[str] = (),
    keep_dir: Path | None = None,
    extra_initrd: bytes | None = None,
    trace_events: Sequence[str] = (),
) -> BootReport:
    """Boot ``guest`` on ``dtb`` with the given PCI devices and read its report.

    ``dtb`` is None for a guest whose architecture takes no tree (x86: the
    firmware's ACPI tables describe q35); ``machine`` defaults to the
    architecture's board.  ``qemu_devices`` are ``-device`` values ("e1000e,addr=02.0") or a full
    argv fragment starting with "-device"; ``extra_args`` go to QEMU as they
    are (e.g. ``-netdev``/``-drive`` backends), ``kernel_args`` to the kernel.
    ``smp`` and ``memory`` must agree with the tree's /cpus (QEMU rewrites
    /memory itself).  ``keep_dir`` keeps the serial log and QEMU's ITS trace.
    ``extra_initrd`` is an archive appended to the guest's initramfs (see
    :func:`initramfs_overlay`; a /dtmsi-stub/run.sh in it runs before the
    report, its output in ``report.sections["stub"]``); ``trace_events`` are
    QEMU trace events logged besides the ITS ones (``report.trace``).
    Raises :class:`GuestBootError` when the guest panics before its report,
    hangs past ``timeout_s`` or prints no complete report.
    """
    require_tools(guest.arch.qemu)
    if dtb is not None:
        dtb = Path(dtb)
        if not dtb.is_file():
            raise HarnessError(f"no DTB at {dtb}")
        _check_dtb(dtb)
    with tempfile.TemporaryDirectory(prefix="dtmsi-boot-") as tmp:
        work = keep_dir if keep_dir is not None else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        serial_log, trace_log = work / "serial.log", work / "its-trace.log"
        for stale in (serial_log, trace_log):
            stale.unlink(missing_ok=True)
        initrd: Path | None = None
        if extra_initrd is not None:
            # Concatenated archives: the kernel skips the zero padding between
            # them and wants each to start 4-byte aligned.
            base = guest.initrd.read_bytes()
            initrd = work / "initrd-extra.img"
            initrd.write_bytes(base + b"\0" * (-len(base) % 512) + extra_initrd)
        cmd = qemu_command(
            guest, dtb, qemu_devices, serial_log, machine=machine, smp=smp, memory=memory,
            trace_log=trace_log, options=options, extra_args=extra_args,
            kernel_args=kernel_args, trace_events=trace_events, initrd=initrd,
        )  # fmt: skip
        start = time.monotonic()
        try:
            proc = subprocess.run(
                cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                timeout=timeout_s, check=False,
            )  # fmt: skip
            qemu_stderr, timed_out = proc.stderr, False
        except subprocess.TimeoutExpired as exc:
            err = exc.stderr
            qemu_stderr = err.decode(errors="replace") if isinstance(err, bytes) else (err or "")
            proc, timed_out = None, True
        elapsed = time.monotonic() - start
        log = serial_log.read_text(errors="replace") if serial_log.exists() else ""
        trace = trace_log.read_text(errors="replace") if trace_log.exists() else ""

    if timed_out:
        raise GuestBootError(f"the guest did not power off within {timeout_s:.0f} s", log, cmd)
    assert proc is not None
    if proc.returncode != 0:
        raise GuestBootError(
            f"QEMU exited with code {proc.returncode}: {qemu_stderr.strip()}", log, cmd
        )
    if "Kernel panic" in log.split(REPORT_END, 1)[0]:
        raise GuestBootError("the guest kernel panicked", log, cmd)
    if REPORT_BEGIN not in log or REPORT_END not in log:
        raise GuestBootError("the guest printed no complete report", log, cmd)
    try:
        return parse_report(log, trace, elapsed, cmd)
    except (ValueError, KeyError, IndexError) as exc:
        raise GuestBootError(f"the guest's report does not parse: {exc!r}", log, cmd) from exc


# --------------------------------------------------------------------------
# parsing the report
# --------------------------------------------------------------------------

REPORT_BEGIN = "@@DTMSI-REPORT-BEGIN"
REPORT_END = "@@DTMSI-REPORT-END"

_KV_RE = re.compile(r"(\w+)=(\S*)")
_MAPTI_RE = re.compile(
    r"command MAPTI DeviceID 0x([0-9a-f]+) EventID 0x([0-9a-f]+) ICID 0x([0-9a-f]+)"
    r" pINTID 0x([0-9a-f]+)"
)
_MAPI_RE = re.compile(
    r"command MAPI DeviceID 0x([0-9a-f]+) EventID 0x([0-9a-f]+) ICID 0x([0-9a-f]+)"
)
_WRITE_RE = re.compile(r"TRANSLATER write: .* requester_id 0x([0-9a-f]+)")
#: irq-gic-v3-its.c's pr_debug in its_irq_domain_alloc (needs the dyndbg option).
_LPI_RE = re.compile(r"\bID:(\d+) pID:(\d+) vID:(\d+)")


@dataclass
class _RawFunction:
    fields: dict[str, str]
    msi: list[tuple[int, str]] = field(default_factory=list)
    config: bytes = b""
    msix: list[MsixEntry] = field(default_factory=list)


def _report_lines(log: str) -> list[str]:
    body = log.split(REPORT_BEGIN, 1)[1].split(REPORT_END, 1)[0]
    return [line.rstrip("\r") for line in body.splitlines()[1:]]


def _sections(lines: list[str]) -> tuple[list[str], dict[str, str]]:
    plain: list[str] = []
    sections: dict[str, str] = {}
    current: str | None = None
    buf: list[str] = []
    for line in lines:
        if current is None and line.startswith("@@BEGIN "):
            current, buf = line.split(None, 1)[1], []
        elif current is not None and line == f"@@END {current}":
            sections[current] = "\n".join(buf) + "\n"
            current = None
        elif current is not None:
            buf.append(line)
        else:
            plain.append(line)
    return plain, sections


def _parse_its_trace(trace: str) -> tuple[tuple[ItsMapping, ...], dict[int, int]]:
    mappings: list[ItsMapping] = []
    writes: dict[int, int] = {}
    for line in trace.splitlines():
        if m := _WRITE_RE.search(line):
            rid = int(m.group(1), 16)
            writes[rid] = writes.get(rid, 0) + 1
        elif m := _MAPTI_RE.search(line):
            devid, event, icid, lpi = (int(g, 16) for g in m.groups())
            mappings.append(ItsMapping(devid, event, icid, lpi))
        elif m := _MAPI_RE.search(line):
            devid, event, icid = (int(g, 16) for g in m.groups())
            mappings.append(ItsMapping(devid, event, icid, event))
    return tuple(mappings), writes


def _parse_lpis(dmesg: str) -> dict[int, int]:
    """Linux irq -> ITS LPI, the last allocation of an irq winning."""
    return {int(m.group(3)): int(m.group(2)) for m in _LPI_RE.finditer(dmesg)}


def _msi_message(config: bytes) -> MsiMessage | None:
    """Decode the MSI capability (ID 0x05) from config space."""
    if len(config) < 64 or not config[0x06] & 0x10:
        return None
    ptr, guard = config[0x34] & 0xFC, 0
    while ptr and ptr + 2 <= len(config) and guard < 48:
        if config[ptr] == 0x05:
            ctrl = int.from_bytes(config[ptr + 2 : ptr + 4], "little")
            is64 = bool(ctrl & 0x80)
            lo = int.from_bytes(config[ptr + 4 : ptr + 8], "little")
            hi = int.from_bytes(config[ptr + 8 : ptr + 12], "little") if is64 else 0
            data_off = ptr + (12 if is64 else 8)
            data = int.from_bytes(config[data_off : data_off + 2], "little")
            return MsiMessage(
                enabled=bool(ctrl & 1),
                multiple_message_capable=1 << ((ctrl >> 1) & 7),
                multiple_message_enable=1 << ((ctrl >> 4) & 7),
                address=(hi << 32) | lo,
                data=data,
                is_64bit=is64,
            )
        ptr, guard = config[ptr + 1] & 0xFC, guard + 1
    return None


def _int(text: str, default: int = 0) -> int:
    try:
        return int(text, 0)
    except ValueError:
        return default


def _interrupt_counts(interrupts: str) -> dict[int, int]:
    counts: dict[int, int] = {}
    lines = interrupts.splitlines()
    if not lines:
        return counts
    ncpu = len(lines[0].split())
    for line in lines[1:]:
        head, sep, rest = line.partition(":")
        if not sep or not head.strip().isdigit():
            continue
        cells = rest.split()
        counts[int(head)] = sum(int(c) for c in cells[:ncpu] if c.isdigit())
    return counts


def parse_report(
    log: str, trace: str = "", boot_seconds: float = 0.0, command: Sequence[str] = ()
) -> BootReport:
    """Turn the serial log (and QEMU's ITS trace) into a :class:`BootReport`."""
    plain, sections = _sections(_report_lines(log))
    dmesg = sections.get("dmesg", "")
    lpis = _parse_lpis(dmesg)
    raw: dict[str, _RawFunction] = {}
    irqs: dict[int, IrqReport] = {}
    release, settled = "", False
    stuck: list[str] = []
    for line in plain:
        tag, _, rest = line.partition(" ")
        if tag == "uname":
            release = rest.strip()
        elif tag == "settled":
            settled = rest.strip() == "yes"
        elif tag == "stuck":
            stuck.append(rest.strip())
        elif tag == "fn":
            bdf = rest.split()[0]
            raw[bdf] = _RawFunction(dict(_KV_RE.findall(rest)))
        elif tag == "msi":
            bdf, irq, irq_mode = rest.split()
            raw[bdf].msi.append((int(irq), irq_mode))
        elif tag == "cfg":
            bdf, _, hexdata = rest.partition(" ")
            raw[bdf].config = bytes.fromhex(hexdata.strip())
        elif tag == "msixent":
            bdf, index, *words = rest.split()
            addr_lo, addr_hi, data, ctrl = (int(w, 16) for w in words)
            raw[bdf].msix.append(MsixEntry(int(index), (addr_hi << 32) | addr_lo, data, ctrl))
        elif line.startswith("irq\t"):
            cells = [*line.split("\t")[1:], "", "", "", "", "", ""]
            number = int(cells[0])
            irqs[number] = IrqReport(
                irq=number,
                chip=cells[1],
                hwirq=_int(cells[2], -1),
                count=_int(cells[4]),
                type=cells[3],
                actions=cells[5],
                lpi=lpis.get(number),
            )

    interrupts = sections.get("interrupts", "")
    counts = _interrupt_counts(interrupts)
    mappings, writes = _parse_its_trace(trace)
    lpi_to_devid: dict[int, int] = {}
    for m in mappings:
        lpi_to_devid[m.lpi] = m.device_id  # the last mapping of an LPI wins

    functions: dict[str, FunctionReport] = {}
    for bdf, rf in sorted(raw.items()):
        f = rf.fields
        driver = None if f.get("driver", "-") == "-" else f["driver"]
        msi_irqs = sorted(rf.msi)
        fn_irqs = tuple(
            irqs.get(
                irq,
                IrqReport(irq=irq, chip="", hwirq=-1, count=counts.get(irq, 0), lpi=lpis.get(irq)),
            )
            for irq, _ in msi_irqs
        )
        legacy = _int(f.get("irq", "0"))
        modes = {m for _, m in msi_irqs}
        intx_count = counts.get(legacy, 0) if legacy else 0
        intx_in_use = bool(legacy) and legacy in counts and legacy not in {i for i, _ in msi_irqs}
        mode: MsiMode
        if "msix" in modes:
            mode = "msix"
        elif "msi" in modes:
            mode = "msi"
        elif intx_in_use and driver is not None:
            mode = "intx"
        else:
            mode = "none"
        if mode in ("msix", "msi"):
            delivered = {r.irq: counts.get(r.irq, r.count) for r in fn_irqs}
        elif mode == "intx":
            delivered = {legacy: intx_count}
        else:
            delivered = {}
        devids = sorted({lpi_to_devid[r.lpi] for r in fn_irqs if r.lpi in lpi_to_devid})
        report = FunctionReport(
            bdf=bdf,
            vendor=_int(f.get("vendor", "0")),
            device=_int(f.get("device", "0")),
            class_code=_int(f.get("class", "0")),
            driver=driver,
            msi_mode=mode,
            vectors=len(msi_irqs),
            irqs=fn_irqs,
            delivered=delivered,
            hwirqs={r.irq: r.hwirq for r in fn_irqs},
            intx_irq=legacy or None,
            intx_count=intx_count,
            config=rf.config,
            msix_table=tuple(rf.msix),
            msi_message=_msi_message(rf.config) if mode == "msi" else None,
            its_device_ids=tuple(devids),
        )
        functions[bdf] = dataclasses.replace(report, its_writes=writes.get(report.requester_id, 0))

    msi_log = tuple(line for line in dmesg.splitlines() if _MSI_LOG_RE.search(line))
    kernel_warnings = tuple(
        line for line in dmesg.splitlines() if re.search(r"WARNING:|BUG:|Oops", line)
    )
    return BootReport(
        functions=functions,
        log=log,
        dmesg=dmesg,
        msi_log=msi_log,
        interrupts=interrupts,
        irqs=irqs,
        kernel_release=release,
        settled=settled,
        stuck_modules=tuple(stuck),
        boot_seconds=boot_seconds,
        its_mappings=mappings,
        its_writes=writes,
        qemu_command=tuple(command),
        warnings=kernel_warnings,
        trace=trace,
        sections=sections,
    )
