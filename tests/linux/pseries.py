"""Let the real pseries kernel judge dtmsi's PAPR quota properties (kexec).

QEMU's ``pseries`` machine builds its own device tree and takes no ``-dtb``,
so the guest boots twice in one QEMU run:

1. Debian's ppc64el kernel boots on QEMU's tree (``-M pseries,x-vof=on``).
   Its ``/init`` (``pseries_init.sh`` beside this file) copies
   ``/proc/device-tree`` to a tmpfs, rewrites the PAPR properties there from
   the plan the test put in the initramfs (``ibm,pe-total-#msi`` per PHB,
   matched by the BUID in ``reg``; ``ibm,req#msi`` and ``ibm,req#msi-x`` per
   function, matched by bus/devfn in ``reg``'s phys.hi; a property dtmsi's
   tree lacks is deleted), bind-mounts the copy over
   ``/sys/firmware/devicetree/base`` and ``kexec``\\ s the same kernel, which
   kexec-tools hands the flattened copy.
2. The second kernel boots on that tree, loads virtio_net, e1000e and nvme,
   brings the NICs up, waits until the vector set is stable and every NVMe
   controller is live, and prints the report of ``init.sh`` (parsed by
   :func:`guest.parse_report`) plus the PAPR properties it booted with.

Nothing of QEMU's tree is replaced but those three properties: the hardware
description must stay QEMU's.  QEMU's ``spapr_pci_*`` trace tells what RTAS
``ibm,change-msi`` really allocated per function (cut at a marker the guest
writes just before its report, so that the power-off's releases do not
count), and with dynamic debug on for ``arch/powerpc/platforms/pseries/msi.c``
the kernel's quota arithmetic prints its own lines
(``rtas_msi: calc quota for 0000:00:03.0, request 9``).

Public API::

    guest = ensure_pseries_guest(cache_dir)       # download + build once, cached
    plan = plan_from_dtb(Path("out/system.dtb"))   # dtmsi's PAPR properties
    run = boot_kexec(guest, plan, ["virtio-net-pci,addr=01.0,romfile=", ...], maxcpus=8)
    run.report.function("00:01.0").msi_mode, .vectors   # what the drivers got
    run.live_plan          # the PAPR properties the second kernel booted with
    run.rtas               # config_addr -> vectors RTAS holds at the report (QEMU's trace)
    run.quota_lines        # the kernel's "rtas_msi:" debug lines

The downloads (``linux-image-*-powerpc64le``, ``busybox-static``,
``kexec-tools`` and ``libc6``, all ppc64el from bookworm) go through a
private apt state under ``<cache>/ppc64el/`` (the arm64 guest's cache
directory, see ``conftest.guest_cache_dir``), keyed by their versions.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import re
import shutil
import struct
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .guest import (
    BootReport,
    GuestBootError,
    HarnessError,
    _Apt,
    _Cpio,
    _locked,
    _module_closure,
    _normalise_module,
    _prune,
    _run,
    parse_report,
)
from .papr_baremetal import config_addr_of

__all__ = [
    "KERNEL_METAPACKAGE",
    "MODULES",
    "PAPR_PROPERTIES",
    "QEMU",
    "TRACE_EVENTS",
    "FunctionPlan",
    "KexecRun",
    "PaprPlan",
    "PhbPlan",
    "PseriesGuest",
    "Transplant",
    "boot_kexec",
    "ensure_pseries_guest",
    "plan_archive",
    "plan_from_dtb",
    "qemu_command",
    "summary",
]

DEB_ARCH = "ppc64el"
KERNEL_METAPACKAGE = "linux-image-powerpc64le"
#: Userland of the guest: static busybox, kexec and the two libc pieces
#: kexec needs (``readelf -d``: libc.so.6; interpreter /lib64/ld64.so.2).
USERLAND: tuple[str, ...] = ("busybox-static", "kexec-tools", "libc6")
#: Drivers put into the initramfs (with their dependencies).
MODULES: tuple[str, ...] = ("virtio_pci", "virtio_net", "e1000e", "nvme")
LIBC_FILES: tuple[str, ...] = (
    "lib/powerpc64le-linux-gnu/libc.so.6",
    "lib/powerpc64le-linux-gnu/ld64.so.2",
)
INTERPRETER = ("lib64/ld64.so.2", "/lib/powerpc64le-linux-gnu/ld64.so.2")

QEMU = "qemu-system-ppc64"
QEMU_PACKAGE = "qemu-system-ppc"
MACHINE = "pseries,x-vof=on"
MEMORY = "512M"

#: Bumped when the initramfs layout changes; part of the cache key together
#: with pseries_init.sh's contents.
LAYOUT = 1
INIT_SCRIPT = Path(__file__).with_name("pseries_init.sh")

#: The first boot's command line; the second gets the same with dtmsi.stage=2.
KERNEL_ARGS: tuple[str, ...] = (
    "console=hvc0",
    "panic=-1",
    # The console is a hypercall per 16 bytes under TCG: keep boot chatter
    # off it; the report carries the whole kernel log.
    "loglevel=4",
    "module.async_probe=1",
    "dtmsi.stage=1",
)

#: QEMU trace events: what RTAS ibm,change-msi allocated and released.
TRACE_EVENTS: tuple[str, ...] = (
    "spapr_pci_rtas_ibm_change_msi",
    "spapr_pci_msi_retry",
    "spapr_pci_msi",
    "pci_cfg_write",
)

#: pseries_init.sh writes this to Interrupt Line (0x3c) of the first PCI
#: function just before its report: the trace up to it is what the drivers
#: hold; the power-off's releases follow it.
MARKER = (0x3C, 0xA5)

PAPR_PROPERTIES: tuple[str, ...] = ("ibm,pe-total-#msi", "ibm,req#msi", "ibm,req#msi-x")

APT_LISTS_MAX_AGE_S = 24 * 3600.0

TOOLS: Mapping[str, str] = {
    QEMU: QEMU_PACKAGE,
    "apt-get": "apt",
    "apt-cache": "apt",
    "dpkg-deb": "dpkg",
    "depmod": "kmod",
}


def _require(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        packages = sorted({TOOLS.get(t, t) for t in missing})
        raise HarnessError(
            f"missing tools for the pseries kexec tests: {', '.join(missing)}; "
            f"install the Debian packages: apt-get install {' '.join(packages)} "
            "(scripts/apt-packages.txt lists them all)"
        )


# --------------------------------------------------------------------------
# the Debian packages (ppc64el, private apt state)
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Versions:
    kernel_package: str
    kernel_version: str
    userland: tuple[tuple[str, str], ...]  # (package, version)


def _resolve_versions(apt: _Apt) -> _Versions:
    meta = apt.show(KERNEL_METAPACKAGE)
    match = re.search(r"\b(linux-image-[0-9][^\s,()]*-powerpc64le)\b", meta.get("Depends", ""))
    if match is None:
        raise HarnessError(f"cannot find the kernel package in {KERNEL_METAPACKAGE}'s Depends")
    kernel_package = match.group(1)
    kernel = apt.show(kernel_package)
    userland = tuple((p, apt.show(p)["Version"]) for p in USERLAND)
    return _Versions(kernel_package, kernel["Version"], userland)


# --------------------------------------------------------------------------
# the guest
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class PseriesGuest:
    """The ppc64el kernel and the two initramfs parts, with their provenance."""

    kernel: Path  # vmlinux (ELF), what QEMU and kexec load
    initrd: Path  # gzip'd cpio: busybox, kexec + libc, modules, /init
    kernel_cpio: Path  # uncompressed cpio holding /boot/vmlinux (for kexec)
    kernel_release: str  # "6.1.0-50-powerpc64le"
    kernel_package: str
    kernel_version: str
    userland: tuple[tuple[str, str], ...]
    modules: tuple[str, ...]

    @property
    def key(self) -> str:
        return self.kernel.parent.name


def _guest_key(versions: _Versions) -> str:
    """The kernel's package and version, then a hash of everything else
    (userland versions, modules, pseries_init.sh, the layout)."""
    digest = hashlib.sha256()
    digest.update(INIT_SCRIPT.read_bytes())
    digest.update(repr((LAYOUT, sorted(MODULES), LIBC_FILES, versions.userland)).encode())
    safe = re.compile(r"[^A-Za-z0-9.+_-]")
    return f"{versions.kernel_package}_{safe.sub('_', versions.kernel_version)}_{digest.hexdigest()[:12]}"


def _load_guest(directory: Path) -> PseriesGuest | None:
    manifest = directory / "guest.json"
    if not manifest.exists():
        return None
    data = json.loads(manifest.read_text())
    guest = PseriesGuest(
        kernel=directory / "vmlinux",
        initrd=directory / "initrd.img",
        kernel_cpio=directory / "kernel.cpio",
        kernel_release=str(data["kernel_release"]),
        kernel_package=str(data["kernel_package"]),
        kernel_version=str(data["kernel_version"]),
        userland=tuple((str(p), str(v)) for p, v in data["userland"]),
        modules=tuple(str(m) for m in data["modules"]),
    )
    if not all(p.exists() for p in (guest.kernel, guest.initrd, guest.kernel_cpio)):
        return None
    return guest


def _newest_guest(guests: Path) -> PseriesGuest | None:
    found = [g for d in guests.glob("*") if (g := _load_guest(d)) is not None]
    return max(found, key=lambda g: g.kernel.stat().st_mtime) if found else None


def ensure_pseries_guest(cache_dir: Path) -> PseriesGuest:
    """Debian bookworm's newest ppc64el kernel with the kexec initramfs, built once.

    ``cache_dir`` is the arm64 guest's cache directory; everything lives in
    its ``ppc64el/`` subdirectory (``apt/``, ``debs/``, ``guests/<key>/``,
    the key naming every package version and hashing pseries_init.sh).  The
    apt lists are refreshed when older than a day; if the archive cannot be
    reached, the newest guest already built is used (with a warning).
    """
    _require("apt-get", "apt-cache", "dpkg-deb", "depmod")
    root = cache_dir.expanduser().resolve() / DEB_ARCH
    with _locked(root / ".lock"):
        apt = _Apt(root / "apt", arch=DEB_ARCH)
        debs = root / "debs"
        try:
            age = apt.lists_age()
            if age is None or age > APT_LISTS_MAX_AGE_S:
                apt.update()
            versions = _resolve_versions(apt)
            directory = root / "guests" / _guest_key(versions)
            existing = _load_guest(directory)
            if existing is not None:
                return existing
            kernel_deb = apt.download(versions.kernel_package, versions.kernel_version, debs)
            userland_debs = [apt.download(p, v, debs) for p, v in versions.userland]
        except HarnessError as exc:
            fallback = _newest_guest(root / "guests")
            if fallback is None:
                raise
            warnings.warn(f"using the cached pseries guest {fallback.key}: {exc}", stacklevel=2)
            return fallback
        _build_guest(directory, versions, kernel_deb, userland_debs)
        _prune(root, keep_debs={kernel_deb, *userland_debs}, keep_guests=2)
        built = _load_guest(directory)
        assert built is not None
        return built


def _build_guest(directory: Path, versions: _Versions, kernel_deb: Path, userland_debs: Sequence[Path]) -> None:
    directory.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory.parent, prefix=".build-") as tmp:
        work = Path(tmp)
        kroot, uroot = work / "kernel", work / "userland"
        _run(["dpkg-deb", "-x", str(kernel_deb), str(kroot)], timeout=600)
        for deb in userland_debs:
            _run(["dpkg-deb", "-x", str(deb), str(uroot)], timeout=120)
        images = sorted((kroot / "boot").glob("vmlinux-*"))
        if len(images) != 1:
            raise HarnessError(f"{kernel_deb.name} holds kernels {images}, expected one")
        release = images[0].name.removeprefix("vmlinux-")
        initrd, names = _build_initramfs(kroot, uroot, release, work)

        out = work / "out"
        out.mkdir()
        shutil.copyfile(images[0], out / "vmlinux")
        (out / "initrd.img").write_bytes(initrd)
        kernel_cpio = _Cpio()
        kernel_cpio.directory("boot")
        kernel_cpio.file("boot/vmlinux", images[0].read_bytes(), 0o644)
        (out / "kernel.cpio").write_bytes(kernel_cpio.finish())
        manifest = {
            "kernel_release": release,
            "kernel_package": versions.kernel_package,
            "kernel_version": versions.kernel_version,
            "userland": [list(pv) for pv in versions.userland],
            "modules": list(names),
            "layout": LAYOUT,
        }
        (out / "guest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if directory.exists():
            shutil.rmtree(directory)
        out.rename(directory)


def _build_initramfs(kroot: Path, uroot: Path, release: str, work: Path) -> tuple[bytes, tuple[str, ...]]:
    moddir = kroot / "lib" / "modules" / release
    _run(["depmod", "-b", str(kroot), release], timeout=300)
    wanted = _module_closure(moddir, MODULES)
    stage = work / "stage"
    stage_mod = stage / "lib" / "modules" / release
    for rel in wanted:
        (stage_mod / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(moddir / rel, stage_mod / rel)
    for name in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        if (moddir / name).exists():
            shutil.copy2(moddir / name, stage_mod / name)
    _run(["depmod", "-b", str(stage), release], timeout=300)

    busybox = uroot / "bin" / "busybox"
    kexec = uroot / "sbin" / "kexec"
    for need in (busybox, kexec, *(uroot / f for f in LIBC_FILES)):
        if not need.exists():
            raise HarnessError(f"the ppc64el userland lacks {need.relative_to(uroot)}")

    cpio = _Cpio()
    for d in ("bin", "boot", "dev", "dtmsi", "etc", "lib", "lib/powerpc64le-linux-gnu", "lib64", "proc",
              "root", "run", "sbin", "sys", "tmp", "usr", "usr/bin", "usr/sbin", "var"):  # fmt: skip
        cpio.directory(d)
    cpio.chardev("dev/console", 5, 1)
    cpio.chardev("dev/null", 1, 3, 0o666)
    cpio.file("bin/busybox", busybox.read_bytes(), 0o755)
    cpio.symlink("bin/sh", "busybox")
    cpio.file("sbin/kexec", kexec.read_bytes(), 0o755)
    for lib in LIBC_FILES:
        cpio.file(lib, (uroot / lib).read_bytes(), 0o755)
    cpio.symlink(*INTERPRETER)
    cpio.file("init", INIT_SCRIPT.read_bytes(), 0o755)
    cpio.directory("lib/modules")
    cpio.tree(stage / "lib" / "modules", "lib/modules")
    names = tuple(sorted(_normalise_module(p) for p in wanted))
    return gzip.compress(cpio.finish(), compresslevel=6, mtime=0), names


# --------------------------------------------------------------------------
# the plan: dtmsi's PAPR properties
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class FunctionPlan:
    bus: int
    devfn: int
    node: str  # the node's path in the tree the plan came from
    req_msi: int | None
    req_msix: int | None

    @property
    def bdf(self) -> str:
        return f"{self.bus:02x}:{self.devfn >> 3:02x}.{self.devfn & 7}"


@dataclass(frozen=True)
class PhbPlan:
    buid: int
    node: str
    pe_total: int | None
    functions: tuple[FunctionPlan, ...]

    def function(self, bus: int, devfn: int) -> FunctionPlan | None:
        return next((f for f in self.functions if (f.bus, f.devfn) == (bus, devfn)), None)


@dataclass(frozen=True)
class PaprPlan:
    """The three PAPR properties per PHB and per function (None: no property)."""

    phbs: tuple[PhbPlan, ...]

    def phb(self, buid: int) -> PhbPlan | None:
        return next((p for p in self.phbs if p.buid == buid), None)

    def values(self) -> dict[tuple[int, int | None, str], int | None]:
        """(BUID, bus << 8 | devfn or None for the PHB, property) -> value."""
        out: dict[tuple[int, int | None, str], int | None] = {}
        for phb in self.phbs:
            out[(phb.buid, None, "ibm,pe-total-#msi")] = phb.pe_total
            for f in phb.functions:
                out[(phb.buid, f.bus << 8 | f.devfn, "ibm,req#msi")] = f.req_msi
                out[(phb.buid, f.bus << 8 | f.devfn, "ibm,req#msi-x")] = f.req_msix
        return out


def _fdt_props(fdt: Any, node: int) -> dict[str, bytes]:
    import libfdt

    out: dict[str, bytes] = {}
    poff = fdt.first_property_offset(node, libfdt.QUIET_NOTFOUND)
    while poff >= 0:
        prop = fdt.get_property_by_offset(poff)
        out[prop.name] = bytes(prop)
        poff = fdt.next_property_offset(poff, libfdt.QUIET_NOTFOUND)
    return out


def _fdt_children(fdt: Any, node: int) -> list[int]:
    import libfdt

    out: list[int] = []
    child = fdt.first_subnode(node, libfdt.QUIET_NOTFOUND)
    while child >= 0:
        out.append(child)
        child = fdt.next_subnode(child, libfdt.QUIET_NOTFOUND)
    return out


def _cell(props: Mapping[str, bytes], name: str) -> int | None:
    raw = props.get(name)
    if raw is None:
        return None
    if len(raw) != 4:
        raise HarnessError(f"{name} is {len(raw)} bytes, not one cell")
    return int(struct.unpack(">I", raw)[0])


def _walk_functions(fdt: Any, parent: int, out: list[FunctionPlan]) -> None:
    for child in _fdt_children(fdt, parent):
        props = _fdt_props(fdt, child)
        reg = props.get("reg", b"")
        if len(reg) >= 4:
            phys_hi = int(struct.unpack(">I", reg[:4])[0])
            out.append(
                FunctionPlan(
                    bus=(phys_hi >> 16) & 0xFF,
                    devfn=(phys_hi >> 8) & 0xFF,
                    node=fdt.get_path(child),
                    req_msi=_cell(props, "ibm,req#msi"),
                    req_msix=_cell(props, "ibm,req#msi-x"),
                )
            )
        _walk_functions(fdt, child, out)


def plan_from_dtb(dtb: Path | bytes) -> PaprPlan:
    """The PAPR properties of a tree (dtmsi's system.dtb): every PHB
    (``device_type = "pci"`` at the root, BUID = ``reg``'s first two cells)
    and every PCI function below it (bus/devfn from ``reg``'s phys.hi)."""
    import libfdt

    blob = dtb if isinstance(dtb, bytes) else Path(dtb).read_bytes()
    fdt = libfdt.Fdt(blob)
    phbs: list[PhbPlan] = []
    for node in _fdt_children(fdt, 0):
        props = _fdt_props(fdt, node)
        if props.get("device_type", b"").rstrip(b"\0") != b"pci" or len(props.get("reg", b"")) < 8:
            continue
        hi, lo = struct.unpack(">II", props["reg"][:8])
        functions: list[FunctionPlan] = []
        _walk_functions(fdt, node, functions)
        phbs.append(
            PhbPlan(
                buid=(hi << 32) | lo,
                node=fdt.get_path(node),
                pe_total=_cell(props, "ibm,pe-total-#msi"),
                functions=tuple(sorted(functions, key=lambda f: (f.bus, f.devfn))),
            )
        )
    if not phbs:
        raise HarnessError('the tree has no PCI host bridge (device_type "pci" with a reg) at its root')
    return PaprPlan(tuple(phbs))


def plan_archive(plan: PaprPlan) -> bytes:
    """The cpio archive pseries_init.sh reads: /dtmsi/papr/phb-<BUID as 16 hex
    digits>/[fn-<bus><devfn>/]<property> holding 4 big-endian bytes; a
    property the plan lacks has no file (the init deletes it)."""
    cpio = _Cpio()
    cpio.directory("dtmsi/papr")
    for phb in plan.phbs:
        base = f"dtmsi/papr/phb-{phb.buid:016x}"
        cpio.directory(base)
        if phb.pe_total is not None:
            cpio.file(f"{base}/ibm,pe-total-#msi", struct.pack(">I", phb.pe_total))
        for f in phb.functions:
            fdir = f"{base}/fn-{f.bus:02x}{f.devfn:02x}"
            cpio.directory(fdir)
            for name, value in (("ibm,req#msi", f.req_msi), ("ibm,req#msi-x", f.req_msix)):
                if value is not None:
                    cpio.file(f"{fdir}/{name}", struct.pack(">I", value))
    return cpio.finish()


# --------------------------------------------------------------------------
# booting
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Transplant:
    """One line the first boot printed about the tree it rewrote."""

    action: str  # "set", "delete", "absent", "unplanned-phb", "unplanned-function", "missing", "error"
    node: str
    prop: str = ""
    value: int | None = None


@dataclass(frozen=True)
class KexecRun:
    """Everything one two-boot run told us."""

    report: BootReport  # the second kernel's report (guest.parse_report)
    transplant: tuple[Transplant, ...]  # what the first boot changed
    #: The PAPR properties the second kernel booted with (its /proc/device-tree).
    live_plan: PaprPlan
    #: RTAS config_addr -> vectors QEMU holds for it when the report is taken (QEMU's trace).
    rtas: dict[int, int]
    #: Every ibm,change-msi QEMU answered with a count before the marker:
    #: (config_addr, function, count, first irq; 0 = nothing allocated).
    rtas_changes: tuple[tuple[int, int, int, int], ...]
    quota_lines: tuple[str, ...]  # the kernel's own "rtas_msi:" lines
    first_boot_s: float  # uptime of the first kernel when it called kexec
    seconds: float  # the whole QEMU run
    qemu_command: tuple[str, ...]
    log: str
    trace: str
    problems: tuple[str, ...] = ()  # transplant errors: unplanned or missing nodes

    def rtas_vectors(self, bdf: str) -> int:
        return self.rtas.get(config_addr_of(bdf if bdf.count(":") == 2 else f"0000:{bdf}"), 0)


def qemu_command(
    guest: PseriesGuest,
    initrd: Path,
    devices: Sequence[str],
    serial_log: Path,
    trace_log: Path,
    *,
    smp: int = 1,
    maxcpus: int | None = None,
    memory: str = MEMORY,
    kernel_args: Sequence[str] = (),
) -> list[str]:
    if "," in str(serial_log):
        raise HarnessError(f"QEMU cannot take a serial log path with a comma: {serial_log}")
    cpus = f"{smp},maxcpus={maxcpus}" if maxcpus else str(smp)
    cmd = [QEMU, "-M", MACHINE, "-m", memory, "-smp", cpus, "-nodefaults", "-display", "none",
           "-no-reboot", "-serial", f"file:{serial_log}", "-kernel", str(guest.kernel),
           "-initrd", str(initrd), "-append", " ".join([*KERNEL_ARGS, *kernel_args])]  # fmt: skip
    for event in TRACE_EVENTS:
        cmd += ["-trace", f"enable={event}"]
    cmd += ["-D", str(trace_log)]
    for dev in devices:
        cmd += ["-device", dev]
    return cmd


def _concat(*parts: bytes) -> bytes:
    """Concatenated initramfs archives, each starting 512-byte aligned."""
    out = b""
    for part in parts:
        out += b"\0" * (-len(out) % 512) + part
    return out


@contextlib.contextmanager
def _workdir(keep_dir: Path | None) -> Iterator[Path]:
    if keep_dir is not None:
        keep_dir.mkdir(parents=True, exist_ok=True)
        yield keep_dir
        return
    with tempfile.TemporaryDirectory(prefix="dtmsi-pseries-") as tmp:
        yield Path(tmp)


def boot_kexec(
    guest: PseriesGuest,
    plan: PaprPlan,
    devices: Sequence[str],
    *,
    smp: int = 1,
    maxcpus: int | None = None,
    memory: str = MEMORY,
    timeout_s: float = 150.0,
    keep_dir: Path | None = None,
    kernel_args: Sequence[str] = (),
) -> KexecRun:
    """Boot QEMU's pseries, transplant ``plan`` into its tree, kexec, report.

    ``devices`` are ``-device`` values (``"nvme,serial=x,addr=03.0"``).
    Raises :class:`GuestBootError` when the second kernel prints no complete
    report (the first boot's ``@@PAPR`` lines are in the error's log).
    """
    _require(QEMU)
    with _workdir(keep_dir) as work:
        serial_log, trace_log = work / "serial.log", work / "trace.log"
        for stale in (serial_log, trace_log):
            stale.unlink(missing_ok=True)
        second = _concat(guest.initrd.read_bytes(), plan_archive(plan))
        inner = _Cpio()
        inner.file("boot/second.img", second)
        first = work / "initrd-first.img"
        first.write_bytes(_concat(second, guest.kernel_cpio.read_bytes(), inner.finish()))
        cmd = qemu_command(
            guest, first, devices, serial_log, trace_log, smp=smp, maxcpus=maxcpus, memory=memory,
            kernel_args=kernel_args,
        )  # fmt: skip
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
        first.unlink(missing_ok=True)  # 50 MB, the guest's files again: keep only the logs
        log = serial_log.read_text(errors="replace") if serial_log.exists() else ""
        trace = trace_log.read_text(errors="replace") if trace_log.exists() else ""

    if timed_out:
        raise GuestBootError(f"the guest did not power off within {timeout_s:.0f} s", log, cmd)
    assert proc is not None
    if proc.returncode != 0:
        raise GuestBootError(f"QEMU exited with code {proc.returncode}: {stderr.strip()}", log, cmd)
    transplant = _parse_transplant(log)
    errors = [t for t in transplant if t.action == "error"]
    if errors:
        raise GuestBootError(f"the first boot failed: {errors}", log, cmd)
    if "@@DTMSI-REPORT-BEGIN" not in log or "@@DTMSI-REPORT-END" not in log:
        raise GuestBootError("the second kernel printed no complete report", log, cmd)
    if "Kernel panic" in log.split("@@DTMSI-REPORT-END", 1)[0]:
        raise GuestBootError("a guest kernel panicked", log, cmd)
    try:
        report = parse_report(log, trace, elapsed, cmd)
        live = _parse_live_plan(report.sections.get("papr", ""))
    except (ValueError, KeyError, IndexError) as exc:
        raise GuestBootError(f"the guest's report does not parse: {exc!r}", log, cmd) from exc
    changes, holdings, marked = _parse_rtas(trace)
    problems = [
        f"{t.action} {t.node} {t.prop}".strip()
        for t in transplant
        if t.action in ("unplanned-phb", "unplanned-function", "missing")
    ]
    if not marked:
        problems.append("QEMU's trace has no marker write: RTAS holdings are those after the power-off")
    first_s = 0.0
    if m := re.search(r"@@PAPR kexec uptime=([0-9.]+)", log):
        first_s = float(m.group(1))
    return KexecRun(
        report=report,
        transplant=transplant,
        live_plan=live,
        rtas=holdings,
        rtas_changes=changes,
        quota_lines=tuple(line for line in report.dmesg.splitlines() if "rtas_msi:" in line),
        first_boot_s=first_s,
        seconds=elapsed,
        qemu_command=tuple(cmd),
        log=log,
        trace=trace,
        problems=tuple(problems),
    )


# --------------------------------------------------------------------------
# parsing
# --------------------------------------------------------------------------

#: QEMU 7.2's trace lines (hw/ppc/trace-events, hw/pci/trace-events).
_CHANGE_RE = re.compile(
    r"\bspapr_pci_rtas_ibm_change_msi cfgaddr 0x([0-9a-f]+) func (\d+), requested (\d+), first irq (\d+)"
)
_MSI_RE = re.compile(r"\bspapr_pci_msi (.*) \(cfg=0x([0-9a-f]+)\)")
_CFG_WRITE_RE = re.compile(
    r"\bpci_cfg_write\s+\S+\s+([0-9a-f]+):([0-9a-f]+)\.([0-7])\s+@0x([0-9a-f]+)\s+<-\s+0x([0-9a-f]+)"
)
_PAPR_LINE_RE = re.compile(r"@@PAPR (\S+)(?: (\S+))?(?: (\S+))?(?: ([0-9a-f]+))?\s*$")


def _parse_transplant(log: str) -> tuple[Transplant, ...]:
    out: list[Transplant] = []
    first_boot = log.split("@@DTMSI stage=", 1)[0]
    for raw in first_boot.splitlines():
        line = raw.rstrip("\r")
        if "@@PAPR " not in line or "stage=" in line or " kexec uptime=" in line:
            continue
        m = _PAPR_LINE_RE.search(line)
        if m is None:
            continue
        action, node, prop, value = m.groups()
        out.append(Transplant(action, node or "", prop or "", int(value, 16) if value else None))
    return tuple(out)


def _parse_live_plan(section: str) -> PaprPlan:
    """The "papr" section: ``phb <path> <BUID>``, ``fn <path> <phys.hi>``,
    ``prop <path> <name> <hex value>`` (a value of another size than one
    cell reads as -1)."""
    phbs: dict[str, int] = {}
    fns: dict[str, int] = {}
    props: dict[str, dict[str, int]] = {}
    for line in section.splitlines():
        parts = line.split()
        if parts[:1] == ["phb"] and len(parts) == 3:
            phbs[parts[1]] = int(parts[2], 16)
        elif parts[:1] == ["fn"] and len(parts) == 3:
            fns[parts[1]] = int(parts[2], 16)
        elif parts[:1] == ["prop"] and len(parts) == 4:
            props.setdefault(parts[1], {})[parts[2]] = int(parts[3], 16) if len(parts[3]) == 8 else -1
    out: list[PhbPlan] = []
    for node, buid in sorted(phbs.items()):
        functions = [
            FunctionPlan(
                bus=(hi >> 16) & 0xFF,
                devfn=(hi >> 8) & 0xFF,
                node=path,
                req_msi=props.get(path, {}).get("ibm,req#msi"),
                req_msix=props.get(path, {}).get("ibm,req#msi-x"),
            )
            for path, hi in fns.items()
            if path.startswith(node + "/")
        ]
        total = props.get(node, {}).get("ibm,pe-total-#msi")
        out.append(PhbPlan(buid, node, total, tuple(sorted(functions, key=lambda f: (f.bus, f.devfn)))))
    return PaprPlan(tuple(out))


def _parse_rtas(trace: str) -> tuple[tuple[tuple[int, int, int, int], ...], dict[int, int], bool]:
    """QEMU's ibm,change-msi grants in order up to the guest's marker, what
    each config address holds at the marker (a grant with first irq 0
    allocated nothing; a release drops everything), and whether the marker
    was seen."""
    changes: list[tuple[int, int, int, int]] = []
    holdings: dict[int, int] = {}
    for line in trace.splitlines():
        if m := _CHANGE_RE.search(line):
            ca, func, count, first = (int(m.group(1), 16), int(m.group(2)), int(m.group(3)), int(m.group(4)))
            changes.append((ca, func, count, first))
            if first:
                holdings[ca] = count
        elif m := _MSI_RE.search(line):
            if m.group(1) == "Released MSIs":
                holdings[int(m.group(2), 16)] = 0
        elif (m := _CFG_WRITE_RE.search(line)) and (int(m.group(4), 16), int(m.group(5), 16)) == MARKER:
            return tuple(changes), holdings, True
    return tuple(changes), holdings, False


def summary(run: KexecRun) -> str:
    """Per function: driver, mechanism, vectors, RTAS holding; then the quota lines."""
    lines = [f"boots: {run.seconds:.1f} s (first kernel kexec'd at {run.first_boot_s:.1f} s uptime)"]
    for bdf, fn in sorted(run.report.functions.items()):
        lines.append(
            f"{bdf} {fn.vendor:04x}:{fn.device:04x} driver={fn.driver} mode={fn.msi_mode} "
            f"vectors={fn.vectors} rtas={run.rtas_vectors(bdf)}"
        )
    lines.append(f"settled={run.report.settled} stuck={list(run.report.stuck_modules)}")
    lines.extend(run.quota_lines)
    lines.extend(
        line
        for line in run.report.dmesg.splitlines()
        if re.search(r"(?i)legacy interrupt|msi interrupt test|falling back", line)
    )
    return "\n".join(lines)
