"""One PCI function as it answers its own registers.

``SimFunction`` describes a function (IDs, BARs, capabilities); ``Device`` is
the live function: a config space whose read-only bits really are read-only
(per-byte write masks, as QEMU's ``wmask``), the MSI and MSI-X capabilities
with the register layout of domain.md 1.2/1.3, and the memory of its BARs with
the MSI-X table and PBA in it. The hypervisor's side channel (QEMU's
``msi_set_message``/``msix_set_message``) and the device's view of what it
would send (``fire``) live here too.

Standard library only: integrators use the simulator without the compiler.

Choices where hardware differs (each documented where it is made):

* MME: a write with MME > MMC is stored clamped to MMC, as QEMU's
  ``msi_write_config`` does; the checker records the write as a violation.
* SR-IOV VFs (PCIe SR-IOV 3.0 section 9.3.4): Vendor and Device ID read
  0xffff unless ``vf_real_ids`` (QEMU shows the real IDs); BAR registers read
  0; Command I/O, Memory and INTx Disable are read-only 0 (only Bus Master is
  writable); the VF's BAR memory always decodes (the PF's VF Memory Space
  Enable is taken as set, as QEMU's ``pci_bar_address`` reads it from the PF).
* MSI-X Vector Control: only bit 0 (mask) is writable, reset value 1.
* Quirks: ``no-intx-disable`` - the function sends no MSI while Command
  INTx Disable is set (Linux's PCI_DEV_FLAGS_MSI_INTX_DISABLE_BUG);
  ``no-64bit-msi`` - it cannot send to an address at or above 4 GiB.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Bdf = tuple[int, int, int]  # (segment, bus, devfn)

PCI_VENDOR_ID = 0x00
PCI_COMMAND = 0x04
PCI_STATUS = 0x06
PCI_CLASS_REVISION = 0x08
PCI_HEADER_TYPE = 0x0E
PCI_BAR0 = 0x10
PCI_CAPABILITY_LIST = 0x34
PCI_INTERRUPT_LINE = 0x3C
PCI_INTERRUPT_PIN = 0x3D

CMD_IO = 0x1
CMD_MEMORY = 0x2
CMD_MASTER = 0x4
CMD_INTX_DISABLE = 0x400
STATUS_CAP_LIST = 0x10

CAP_ID_MSI = 0x05
CAP_ID_PCIE = 0x10
CAP_ID_MSIX = 0x11

MSI_FLAGS_ENABLE = 0x0001
MSI_FLAGS_QMASK = 0x000E  # MMC
MSI_FLAGS_QSIZE = 0x0070  # MME
MSI_FLAGS_64BIT = 0x0080
MSI_FLAGS_MASKBIT = 0x0100

MSIX_FLAGS_QSIZE = 0x07FF
MSIX_FLAGS_MASKALL = 0x4000
MSIX_FLAGS_ENABLE = 0x8000
MSIX_ENTRY_SIZE = 16
MSIX_ENTRY_VECTOR_CTRL = 0xC
MSIX_ENTRY_CTRL_MASKBIT = 0x1

PCIE_CAP_SIZE = 0x3C  # a version 2 PCI Express capability
MSIX_CAP_SIZE = 12
FIRST_CAP_OFFSET = 0x40

QUIRK_NO_INTX_DISABLE = "no-intx-disable"
QUIRK_NO_64BIT_MSI = "no-64bit-msi"

BarKind = Literal["io", "mem32", "mem64"]


def format_bdf(bdf: Bdf) -> str:
    """``0000:01:00.0`` (segment, bus, device, function; ARI devfn as dd.f)."""
    seg, bus, devfn = bdf
    return f"{seg:04x}:{bus:02x}:{devfn >> 3:02x}.{devfn & 7:x}"


def parse_bdf(text: str) -> Bdf:
    """The inverse of ``format_bdf``; ``01:00.0`` means segment 0."""
    parts = text.split(":")
    if len(parts) == 2:
        parts = ["0", *parts]
    if len(parts) != 3 or "." not in parts[2]:
        raise ValueError(f"not a BDF: {text!r}")
    dev, fn = parts[2].split(".")
    return int(parts[0], 16), int(parts[1], 16), (int(dev, 16) << 3) | int(fn, 16)


def msi_cap_size(is64: bool, maskable: bool) -> int:
    """0x0a, 0x0e, 0x14 or 0x18 bytes (domain.md 1.2)."""
    return {(False, False): 0x0A, (True, False): 0x0E, (False, True): 0x14, (True, True): 0x18}[(is64, maskable)]


@dataclass(frozen=True, slots=True)
class SimBar:
    index: int  # 0..5; a 64-bit BAR also takes index + 1
    kind: BarKind
    size: int  # bytes, a power of two
    address: int | None  # PCI bus address; None = unassigned (the register reads 0)
    prefetchable: bool = False

    @property
    def register(self) -> int:
        return PCI_BAR0 + 4 * self.index

    @property
    def type_bits(self) -> int:
        if self.kind == "io":
            return 0x1
        return (0x4 if self.kind == "mem64" else 0x0) | (0x8 if self.prefetchable else 0x0)


@dataclass(frozen=True, slots=True)
class SimMsi:
    vectors: int  # 1..32, the capability's Multiple Message Capable count
    is64: bool = False
    maskable: bool = False
    offset: int | None = None  # config-space offset; None = the default layout

    @property
    def mmc(self) -> int:
        return max(0, self.vectors - 1).bit_length()

    @property
    def size(self) -> int:
        return msi_cap_size(self.is64, self.maskable)


@dataclass(frozen=True, slots=True)
class SimMsix:
    table_size: int  # entries, 1..2048
    table_bir: int
    table_offset: int
    pba_bir: int
    pba_offset: int
    offset: int | None = None  # config-space offset; None = the default layout

    @property
    def table_bytes(self) -> int:
        return MSIX_ENTRY_SIZE * self.table_size

    @property
    def pba_bytes(self) -> int:
        return 8 * ((self.table_size + 63) // 64)


@dataclass(frozen=True, slots=True)
class SimFunction:
    """What a function is: the simulator builds its registers from this."""

    seg: int
    bus: int
    devfn: int
    vendor: int
    device: int
    class_code: int = 0
    revision: int = 0
    header_type: int = 0  # 0 endpoint, 1 PCI-PCI bridge
    is_vf: bool = False
    pcie: bool = True  # a PCI Express capability and 4 KiB of config space
    pcie_port_type: int = 0  # 0 endpoint, 4 root port, 5 upstream, 6 downstream, 7 PCIe-to-PCI bridge
    bars: tuple[SimBar, ...] = ()
    msi: SimMsi | None = None
    msix: SimMsix | None = None
    intx_pin: int = 0  # 0 none, 1..4 INTA..INTD
    name: str = ""
    quirks: tuple[str, ...] = ()
    secondary: int = 0  # bridges: bus numbers
    subordinate: int = 0

    @property
    def bdf(self) -> Bdf:
        return (self.seg, self.bus, self.devfn)

    @property
    def bdf_text(self) -> str:
        return format_bdf(self.bdf)

    def bar(self, index: int) -> SimBar | None:
        return next((b for b in self.bars if b.index == index), None)


@dataclass(frozen=True, slots=True)
class Vector:
    """One message as the function holds it: what vector ``i`` would send."""

    address: int
    data: int
    masked: bool


@dataclass(frozen=True, slots=True)
class MsiState:
    offset: int
    enabled: bool
    mmc: int
    mme: int
    is64: bool
    maskable: bool
    address: int
    data: int  # the 16-bit register
    mask: int
    vectors: tuple[Vector, ...]  # the 2^MME messages, data with the vector in its low MME bits


@dataclass(frozen=True, slots=True)
class MsixState:
    offset: int
    enabled: bool
    function_mask: bool
    table_size: int
    table_bir: int
    table_offset: int
    entries: tuple[Vector, ...]


@dataclass(frozen=True, slots=True)
class FunctionState:
    bdf: Bdf
    command: int
    memory: bool
    bus_master: bool
    intx_disabled: bool
    msi: MsiState | None
    msix: MsixState | None


class ConfigSpace:
    """Bytes plus a per-byte write mask: a write changes only the masked bits."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.data = bytearray(size)
        self.wmask = bytearray(size)

    def get(self, off: int, width: int) -> int:
        return int.from_bytes(self.data[off : off + width], "little")

    def put(self, off: int, width: int, value: int) -> None:
        """Set bytes directly (device initialisation, side channels): no mask."""
        self.data[off : off + width] = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "little")

    def set_wmask(self, off: int, width: int, mask: int) -> None:
        self.wmask[off : off + width] = (mask & ((1 << (8 * width)) - 1)).to_bytes(width, "little")

    def write(self, off: int, width: int, value: int) -> None:
        for i in range(width):
            m = self.wmask[off + i]
            b = (value >> (8 * i)) & 0xFF
            self.data[off + i] = (self.data[off + i] & ~m & 0xFF) | (b & m)


def _cap_layout(fn: SimFunction) -> dict[int, int]:
    """Capability ID -> offset: declared offsets kept, the rest placed at the
    first dword-aligned gap from 0x40 (PCIe, then MSI, then MSI-X)."""
    wanted: list[tuple[int, int | None, int]] = []
    if fn.pcie:
        wanted.append((CAP_ID_PCIE, None, PCIE_CAP_SIZE))
    if fn.msi is not None:
        wanted.append((CAP_ID_MSI, fn.msi.offset, fn.msi.size))
    if fn.msix is not None:
        wanted.append((CAP_ID_MSIX, fn.msix.offset, MSIX_CAP_SIZE))
    placed: list[tuple[int, int, int]] = []  # (offset, size, id)

    def free(off: int, size: int) -> bool:
        return off + size <= 0x100 and all(off + size <= o or o + s <= off for o, s, _ in placed)

    for cap_id, off, size in wanted:
        if off is None:
            continue
        if off % 4 or off < FIRST_CAP_OFFSET or not free(off, size):
            raise ValueError(
                f"{fn.bdf_text}: capability {cap_id:#04x} at {off:#x} is not dword aligned, "
                "below 0x40, past 0xff or overlapping another"
            )
        placed.append((off, size, cap_id))
    for cap_id, off, size in wanted:
        if off is not None:
            continue
        at = FIRST_CAP_OFFSET
        while not free(at, size):
            at += 4
            if at + size > 0x100:
                raise ValueError(f"{fn.bdf_text}: no room for capability {cap_id:#04x}")
        placed.append((at, size, cap_id))
    return {cap_id: off for off, _, cap_id in sorted(placed)}


class Device:
    """A live function: config space, BAR memory, MSI/MSI-X state."""

    def __init__(self, fn: SimFunction, *, vf_real_ids: bool = False, command: int = 0) -> None:
        self.fn = fn
        self.vf_real_ids = vf_real_ids
        self.initial_command = command
        caps = _cap_layout(fn)
        self.pcie_cap = caps.get(CAP_ID_PCIE)
        self.msi_cap = caps.get(CAP_ID_MSI)
        self.msix_cap = caps.get(CAP_ID_MSIX)
        self._cap_order = sorted(caps.items(), key=lambda kv: kv[1])
        for b in fn.bars:
            if b.size <= 0 or b.size & (b.size - 1):
                raise ValueError(f"{fn.bdf_text}: BAR {b.index} size {b.size:#x} is not a power of two")
        # 4 KiB of config space for PCIe, 256 bytes otherwise; only the first
        # 256 are stored: the extended space holds no capability here, reads 0
        # and has no writable bit.
        self.config_size = 4096 if fn.pcie else 256
        self.config = ConfigSpace(256)
        self.table = bytearray()
        self.pba = bytearray()
        self.bar_ram: dict[tuple[int, int], int] = {}  # (BAR, dword offset) -> value, outside table/PBA
        self.reset()

    # ------------------------------------------------------------ identity

    @property
    def bdf(self) -> Bdf:
        return self.fn.bdf

    @property
    def bdf_text(self) -> str:
        return self.fn.bdf_text

    @property
    def label(self) -> str:
        return f"{self.bdf_text} {self.fn.name}".rstrip()

    def has_quirk(self, quirk: str) -> bool:
        return quirk in self.fn.quirks

    # ------------------------------------------------------------ reset

    def reset(self) -> None:
        """Function-level reset: registers to their power-on values; BARs keep their addresses."""
        fn, cs = self.fn, self.config
        cs.data[:] = bytes(cs.size)
        cs.wmask[:] = bytes(cs.size)
        cs.put(PCI_VENDOR_ID, 2, fn.vendor)
        cs.put(PCI_VENDOR_ID + 2, 2, fn.device)
        cmd_mask = CMD_MASTER if fn.is_vf else CMD_IO | CMD_MEMORY | CMD_MASTER | CMD_INTX_DISABLE
        cs.set_wmask(PCI_COMMAND, 2, cmd_mask)
        cs.put(PCI_COMMAND, 2, self.initial_command & cmd_mask)
        cs.put(PCI_STATUS, 2, STATUS_CAP_LIST if self._cap_order else 0)
        cs.put(PCI_CLASS_REVISION, 4, (fn.class_code << 8) | (fn.revision & 0xFF))
        cs.put(PCI_HEADER_TYPE, 1, fn.header_type & 0x7F)
        cs.put(PCI_INTERRUPT_PIN, 1, 0 if fn.is_vf else fn.intx_pin)
        cs.set_wmask(PCI_INTERRUPT_LINE, 1, 0xFF)
        if fn.header_type == 1:
            self._bridge_registers()
        if not fn.is_vf:
            self._bars()
        if self._cap_order:
            cs.put(PCI_CAPABILITY_LIST, 1, self._cap_order[0][1])
        for i, (cap_id, off) in enumerate(self._cap_order):
            nxt = self._cap_order[i + 1][1] if i + 1 < len(self._cap_order) else 0
            cs.put(off, 1, cap_id)
            cs.put(off + 1, 1, nxt)
            if cap_id == CAP_ID_PCIE:
                cs.put(off + 2, 2, 0x2 | ((fn.pcie_port_type & 0xF) << 4))
            elif cap_id == CAP_ID_MSI:
                self._msi_registers(off)
            else:
                self._msix_registers(off)
        msix = fn.msix
        self.table = bytearray(msix.table_bytes if msix else 0)
        for i in range(msix.table_size if msix else 0):
            self.table[i * MSIX_ENTRY_SIZE + MSIX_ENTRY_VECTOR_CTRL] = MSIX_ENTRY_CTRL_MASKBIT
        self.pba = bytearray(msix.pba_bytes if msix else 0)
        self.bar_ram.clear()

    def _bars(self) -> None:
        cs = self.config
        limit = 2 if self.fn.header_type == 1 else 6
        for b in self.fn.bars:
            if b.index >= limit or (b.kind == "mem64" and b.index + 1 >= limit):
                raise ValueError(f"{self.bdf_text}: BAR {b.index} does not fit the header")
            addr = b.address or 0
            if b.kind == "io":
                cs.put(b.register, 4, (addr & ~0x3) | b.type_bits)
                cs.set_wmask(b.register, 4, ~(b.size - 1) & 0xFFFFFFFC)
            else:
                cs.put(b.register, 4, (addr & 0xFFFFFFF0) | b.type_bits)
                cs.set_wmask(b.register, 4, ~(b.size - 1) & 0xFFFFFFF0)
                if b.kind == "mem64":
                    cs.put(b.register + 4, 4, addr >> 32)
                    cs.set_wmask(b.register + 4, 4, ~((b.size - 1) >> 32) & 0xFFFFFFFF)

    def _bridge_registers(self) -> None:
        cs, fn = self.config, self.fn
        cs.put(0x18, 1, fn.bus)
        cs.put(0x19, 1, fn.secondary)
        cs.put(0x1A, 1, fn.subordinate)
        cs.set_wmask(0x18, 4, 0x00FFFFFF)  # bus numbers; secondary latency timer RO
        cs.set_wmask(0x1C, 2, 0xF0F0)  # I/O base/limit
        cs.set_wmask(0x20, 4, 0xFFF0FFF0)  # memory base/limit
        cs.set_wmask(0x24, 4, 0xFFF0FFF0)  # prefetchable base/limit
        cs.put(0x24, 4, 0x00010001)  # 64-bit prefetchable window
        cs.set_wmask(0x28, 4, 0xFFFFFFFF)
        cs.set_wmask(0x2C, 4, 0xFFFFFFFF)
        cs.set_wmask(0x3E, 2, 0x0FFF)  # bridge control

    def _msi_registers(self, off: int) -> None:
        msi = self.fn.msi
        assert msi is not None
        cs = self.config
        ctrl = (msi.mmc << 1) | (MSI_FLAGS_64BIT if msi.is64 else 0) | (MSI_FLAGS_MASKBIT if msi.maskable else 0)
        cs.put(off + 2, 2, ctrl)
        cs.set_wmask(off + 2, 2, MSI_FLAGS_ENABLE | MSI_FLAGS_QSIZE)
        cs.set_wmask(off + 4, 4, 0xFFFFFFFC)  # address bits 1:0 read 0
        if msi.is64:
            cs.set_wmask(off + 8, 4, 0xFFFFFFFF)
        cs.set_wmask(self.msi_data_offset, 2, 0xFFFF)  # 16-bit data; the next 2 bytes reserved
        if msi.maskable:
            nvec = 1 << msi.mmc
            cs.set_wmask(self.msi_data_offset + 4, 4, (1 << nvec) - 1 if nvec < 32 else 0xFFFFFFFF)

    def _msix_registers(self, off: int) -> None:
        msix = self.fn.msix
        assert msix is not None
        cs = self.config
        cs.put(off + 2, 2, (msix.table_size - 1) & MSIX_FLAGS_QSIZE)
        cs.set_wmask(off + 2, 2, MSIX_FLAGS_MASKALL | MSIX_FLAGS_ENABLE)
        cs.put(off + 4, 4, (msix.table_offset & ~0x7) | (msix.table_bir & 0x7))
        cs.put(off + 8, 4, (msix.pba_offset & ~0x7) | (msix.pba_bir & 0x7))

    # ------------------------------------------------------------ config space

    def cfg_read(self, off: int, width: int) -> int:
        if off < 0 or off + width > self.config_size:
            return (1 << (8 * width)) - 1
        if off >= self.config.size:
            return 0  # extended config space: no extended capability
        value = self.config.get(off, width)
        if self.fn.is_vf and not self.vf_real_ids and off < 4:
            for i in range(width):
                if off + i < 4:
                    value |= 0xFF << (8 * i)
        return value

    def cfg_write(self, off: int, width: int, value: int) -> None:
        if off < 0 or off + width > self.config.size:
            return  # outside the function's config space, or read-only extended space
        self.config.write(off, width, value)
        msi = self.fn.msi
        if msi is not None and self.msi_cap is not None and off <= self.msi_cap + 2 < off + width:
            ctrl = self.config.get(self.msi_cap + 2, 2)
            if (ctrl & MSI_FLAGS_QSIZE) >> 4 > msi.mmc:  # QEMU msi_write_config: clamp MME to MMC
                self.config.put(self.msi_cap + 2, 2, (ctrl & ~MSI_FLAGS_QSIZE) | (msi.mmc << 4))

    # ------------------------------------------------------------ register views

    @property
    def command(self) -> int:
        return self.config.get(PCI_COMMAND, 2)

    @property
    def memory_decode(self) -> bool:
        """Does the function answer accesses to its BAR memory?"""
        return self.fn.is_vf or bool(self.command & CMD_MEMORY)

    @property
    def msi_ctrl(self) -> int:
        return self.config.get(self.msi_cap + 2, 2) if self.msi_cap is not None else 0

    @property
    def msix_ctrl(self) -> int:
        return self.config.get(self.msix_cap + 2, 2) if self.msix_cap is not None else 0

    @property
    def msi_enabled(self) -> bool:
        return bool(self.msi_ctrl & MSI_FLAGS_ENABLE)

    @property
    def msi_mme(self) -> int:
        return (self.msi_ctrl & MSI_FLAGS_QSIZE) >> 4

    @property
    def msix_enabled(self) -> bool:
        return bool(self.msix_ctrl & MSIX_FLAGS_ENABLE)

    @property
    def msix_function_mask(self) -> bool:
        return bool(self.msix_ctrl & MSIX_FLAGS_MASKALL)

    @property
    def msi_data_offset(self) -> int:
        assert self.msi_cap is not None and self.fn.msi is not None
        return self.msi_cap + (0x0C if self.fn.msi.is64 else 0x08)

    def msi_registers(self) -> dict[str, tuple[int, int]]:
        """Name -> (offset, width) of the MSI message registers."""
        if self.msi_cap is None or self.fn.msi is None:
            return {}
        regs = {"address": (self.msi_cap + 4, 4), "data": (self.msi_data_offset, 2)}
        if self.fn.msi.is64:
            regs["address_hi"] = (self.msi_cap + 8, 4)
        if self.fn.msi.maskable:
            regs["mask"] = (self.msi_data_offset + 4, 4)
            regs["pending"] = (self.msi_data_offset + 8, 4)
        return regs

    def msi_address(self) -> int:
        if self.msi_cap is None or self.fn.msi is None:
            return 0
        lo = self.config.get(self.msi_cap + 4, 4)
        hi = self.config.get(self.msi_cap + 8, 4) if self.fn.msi.is64 else 0
        return (hi << 32) | lo

    def msi_data(self) -> int:
        return self.config.get(self.msi_data_offset, 2) if self.msi_cap is not None else 0

    def msi_mask(self) -> int:
        if self.fn.msi is None or not self.fn.msi.maskable:
            return 0
        return self.config.get(self.msi_data_offset + 4, 4)

    # ------------------------------------------------------------ BAR memory

    def in_table(self, bar: int, offset: int) -> int | None:
        """The table byte offset for a BAR offset, or None."""
        msix = self.fn.msix
        if msix is not None and bar == msix.table_bir and 0 <= offset - msix.table_offset < len(self.table):
            return offset - msix.table_offset
        return None

    def in_pba(self, bar: int, offset: int) -> int | None:
        msix = self.fn.msix
        if msix is not None and bar == msix.pba_bir and 0 <= offset - msix.pba_offset < len(self.pba):
            return offset - msix.pba_offset
        return None

    def mmio_read(self, bar: int, offset: int) -> int:
        t = self.in_table(bar, offset)
        if t is not None:
            return int.from_bytes(self.table[t : t + 4], "little")
        p = self.in_pba(bar, offset)
        if p is not None:
            return int.from_bytes(self.pba[p : p + 4].ljust(4, b"\0"), "little")
        return self.bar_ram.get((bar, offset), 0)

    def mmio_write(self, bar: int, offset: int, value: int) -> None:
        t = self.in_table(bar, offset)
        if t is not None:
            if t % MSIX_ENTRY_SIZE == MSIX_ENTRY_VECTOR_CTRL:
                value &= MSIX_ENTRY_CTRL_MASKBIT  # the other Vector Control bits read 0
            self.table[t : t + 4] = (value & 0xFFFFFFFF).to_bytes(4, "little")
            return
        if self.in_pba(bar, offset) is not None:
            return  # the PBA is read-only
        self.bar_ram[(bar, offset)] = value & 0xFFFFFFFF

    def msix_entry(self, i: int) -> Vector:
        base = i * MSIX_ENTRY_SIZE
        lo = int.from_bytes(self.table[base : base + 4], "little")
        hi = int.from_bytes(self.table[base + 4 : base + 8], "little")
        data = int.from_bytes(self.table[base + 8 : base + 12], "little")
        ctrl = self.table[base + MSIX_ENTRY_VECTOR_CTRL]
        return Vector((hi << 32) | lo, data, bool(ctrl & MSIX_ENTRY_CTRL_MASKBIT))

    # ------------------------------------------------------------ hypervisor side channel

    def set_msi_message(self, address: int, data: int) -> None:
        """QEMU ``msi_set_message``: a 64-bit capability takes the whole
        address, a 32-bit one its low 32 bits; data is a 16-bit store."""
        msi = self.fn.msi
        if self.msi_cap is None or msi is None:
            return
        if msi.is64:
            self.config.put(self.msi_cap + 4, 8, address)
        else:
            self.config.put(self.msi_cap + 4, 4, address)
        self.config.put(self.msi_data_offset, 2, data)

    def set_msi_mme(self, mme: int) -> None:
        """Firmware sets Multiple Message Enable (the PowerVM model does)."""
        if self.msi_cap is not None:
            ctrl = self.msi_ctrl
            self.config.put(self.msi_cap + 2, 2, (ctrl & ~MSI_FLAGS_QSIZE) | ((mme & 7) << 4))

    def set_msix_message(self, entry: int, address: int, data: int) -> None:
        """QEMU ``msix_set_message``: address and data, and the entry's mask bit cleared."""
        base = entry * MSIX_ENTRY_SIZE
        if base + MSIX_ENTRY_SIZE > len(self.table):
            return
        self.table[base : base + 8] = (address & ((1 << 64) - 1)).to_bytes(8, "little")
        self.table[base + 8 : base + 12] = (data & 0xFFFFFFFF).to_bytes(4, "little")
        self.table[base + MSIX_ENTRY_VECTOR_CTRL] &= ~MSIX_ENTRY_CTRL_MASKBIT & 0xFF

    # ------------------------------------------------------------ what the device would do

    def state(self) -> FunctionState:
        cmd = self.command
        msi_state = None
        msi = self.fn.msi
        if msi is not None and self.msi_cap is not None:
            mme = self.msi_mme
            n = 1 << mme
            data, mask, address = self.msi_data(), self.msi_mask(), self.msi_address()
            vectors = tuple(Vector(address, (data & ~(n - 1)) | i, bool(mask >> i & 1)) for i in range(n))
            msi_state = MsiState(
                self.msi_cap, self.msi_enabled, msi.mmc, mme, msi.is64, msi.maskable, address, data, mask, vectors
            )
        msix_state = None
        msix = self.fn.msix
        if msix is not None and self.msix_cap is not None:
            msix_state = MsixState(
                self.msix_cap,
                self.msix_enabled,
                self.msix_function_mask,
                msix.table_size,
                msix.table_bir,
                msix.table_offset,
                tuple(self.msix_entry(i) for i in range(msix.table_size)),
            )
        return FunctionState(
            self.bdf,
            cmd,
            self.memory_decode,
            bool(cmd & CMD_MASTER),
            bool(cmd & CMD_INTX_DISABLE),
            msi_state,
            msix_state,
        )

    def msi_can_deliver(self) -> bool:
        return self.msi_enabled and not self.msix_enabled

    def msix_can_deliver(self) -> bool:
        return self.msix_enabled and not self.msix_function_mask and not self.msi_enabled

    def fire(self, vector: int) -> tuple[int, int] | None:
        """The (address, data) the function would write for ``vector`` now,
        or None when it cannot: not enabled, masked, out of range, Bus Master
        off (QEMU drops it), or a quirk forbids it."""
        cmd = self.command
        if not cmd & CMD_MASTER:
            return None
        if self.has_quirk(QUIRK_NO_INTX_DISABLE) and cmd & CMD_INTX_DISABLE:
            return None
        msg: tuple[int, int] | None = None
        if self.msix_can_deliver():
            msix = self.fn.msix
            assert msix is not None
            if 0 <= vector < msix.table_size:
                e = self.msix_entry(vector)
                if not e.masked:
                    msg = (e.address, e.data)
        elif self.msi_can_deliver():
            n = 1 << self.msi_mme
            if 0 <= vector < n and not self.msi_mask() >> vector & 1:
                msg = (self.msi_address(), (self.msi_data() & ~(n - 1)) | vector)
        if msg is not None and self.has_quirk(QUIRK_NO_64BIT_MSI) and msg[0] >> 32:
            return None
        return msg
