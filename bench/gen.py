"""Generator of large, flat .msi topologies for the speed benchmark.

``generate(n, seed)`` returns the text of a .msi file that declares exactly
``n`` PCI functions (endpoint functions and the bridge functions above them:
root ports, switch upstream and downstream ports, PCIe-to-PCI bridges), each
written out with its own name and address, as a BSP author would write a big
machine: device types are ``template``s instantiated with ``use``; there is no
``repeat``. The same ``(n, seed)`` always gives the same text.

The machine: a GICv3 and one ITS per host bridge (DeviceID = requester ID, so
no msi-map offsets are needed), and as many ECAM host bridges as the function
count needs, each its own PCI domain with buses 0..255, a 256 MiB ECAM region,
a 32-bit window and a 64 GiB 64-bit prefetchable window at CPU addresses of
its own, and four INTx SPIs. Below each host bridge, root ports on bus 0 lead
to one of:

* a PCIe switch whose downstream ports each lead to one device (function 0..7
  at device 0, as on a PCIe link): 8-function partitioned NICs, 4-port and
  2-port NICs, NVMe drives (all MSI-X) and 8-function MSI-only accelerators;
* a single device directly below the root port;
* a PCIe-to-PCI bridge to a conventional PCI bus holding many devices
  (slots 0..31, 1..4 functions each): MSI-only serial cards, INTx-only NICs
  and USB controllers.

Every device has BARs and an INTx pin; multi-function devices spread their
functions over pins A..D.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

# CPU address map (all regions disjoint):
_GIC_DIST = 0x0800_0000
_GIC_REDIST = 0x080A_0000
_ITS_BASE = 0x1000_0000  # one 128 KiB frame per host bridge
_ITS_STRIDE = 0x2_0000
_ECAM_BASE = 0x40_0000_0000  # 256 MiB per host bridge
_ECAM_STRIDE = 0x1000_0000
_MEM32_CPU = 0x80_0000_0000  # 3 GiB window per host bridge, PCI 0x4000_0000..4 GiB
_MEM32_STRIDE = 0x1_0000_0000
_MEM32_PCI = 0x4000_0000
_MEM32_SIZE = 0xC000_0000
_PREF_CPU = 0x1000_0000_0000  # 64 GiB prefetchable window per host bridge
_PREF_STRIDE = 0x10_0000_0000
_MAX_HOST_BRIDGES = 1024  # keeps every region above disjoint
_SPI_FIRST = 32
_SPI_COUNT = 960  # SPIs 32..991; host bridges past 240 share pins (level-triggered)

_PINS = "ABCD"
# PCIe device kind -> (functions, name prefix)
_FUNCTIONS = {"npar": 8, "nic4": 4, "nic2": 2, "nvme": 1, "accel": 8}
_PREFIX = {"npar": "npar", "nic4": "nic", "nic2": "nic", "nvme": "nvme", "accel": "accel"}

TEMPLATES = """\
// ---- device types (as a BSP author writes them once) ----

// NVMe SSD: one function, MSI-X.
template nvme_ssd {
    id 144d:a80a class 0x010802;
    subsystem 144d:a801;
    bar 0 mem64 16K;
    msix 64 table bar 0 + 0x2000 pba bar 0 + 0x3000;
    intx A;
}

// One port of a 2- or 4-port 10/25 GbE NIC: MSI-X.
template nic_port(vectors) {
    id 8086:1572 class 0x020000;
    subsystem 8086:0007;
    bar 0 mem64 prefetchable 8M;
    bar 3 mem64 prefetchable 32K;
    msix vectors table bar 3 + 0x0 pba bar 3 + 0x1000;
    intx A;
}

// One partition of an 8-function partitioned (NPAR) NIC: MSI-X.
template npar_fn {
    id 14e4:16a1 class 0x020000;
    subsystem 14e4:1917;
    bar 0 mem64 prefetchable 1M;
    bar 4 mem64 prefetchable 64K;
    msix 32 table bar 4 + 0x0 pba bar 4 + 0x8000;
    intx A;
}

// One function of an 8-function crypto/compression accelerator: MSI only.
template accel_fn {
    id 1d0f:efa1 class 0x120000;
    bar 0 mem32 64K;
    msi 8 addr64 maskable;
    intx A;
}

// Conventional PCI: a quad UART card with MSI.
template pci_serial {
    id 1415:9501 class 0x070002;
    bar 0 mem32 4K;
    msi 1;
    intx A;
}

// Conventional PCI: a gigabit NIC without MSI (INTx only).
template pci_nic {
    id 8086:107c class 0x020000;
    bar 0 mem32 128K;
    bar 1 mem32 128K;
    intx A;
}

// Conventional PCI: one function of a USB 2.0 controller (OHCI/EHCI).
template pci_usb(class_code) {
    id 1033:0035 class class_code;
    bar 0 mem32 4K;
    intx A;
}
"""


@dataclass
class _Host:
    index: int
    lines: list[str] = field(default_factory=list)


@dataclass
class _Gen:
    rng: random.Random
    left: int  # functions still to write
    hosts: list[_Host] = field(default_factory=list)

    # ------------------------------------------------------------ helpers

    def _fn_line(self, out: list[str], ind: str, text: str) -> None:
        out.append(ind + text)
        self.left -= 1

    @staticmethod
    def _intx(fn: int) -> str:
        pin = _PINS[fn % 4]
        return "" if pin == "A" else f" intx {pin};"

    def _device(self, out: list[str], ind: str, name: str, dev: int, kind: str) -> None:
        """One PCIe device (functions 0..k-1 at device ``dev``), cut short if
        fewer functions are left to write."""
        k = min(_FUNCTIONS[kind], self.left)
        for fn in range(k):
            full = f"{name}_f{fn}" if _FUNCTIONS[kind] > 1 else name
            if kind == "npar":
                body = "use npar_fn;"
            elif kind in ("nic4", "nic2"):
                body = f"use nic_port({64 if kind == 'nic4' else 129});"
            elif kind == "nvme":
                body = "use nvme_ssd;"
            else:
                body = "use accel_fn;"
            self._fn_line(out, ind,
                          f"endpoint {full} @ {dev:02x}.{fn} {{ {body}{self._intx(fn)} }}")

    def _pcie_kind(self) -> str:
        return self.rng.choices(["npar", "nic4", "nic2", "nvme", "accel"],
                                weights=[35, 20, 10, 15, 20])[0]

    def _conventional(self, out: list[str], ind: str, prefix: str, slot: int) -> None:
        kind = self.rng.choices(["serial", "nic", "usb"], weights=[40, 35, 25])[0]
        if kind == "usb":
            k = min(3, self.left)
            classes = ["0x0c0310", "0x0c0310", "0x0c0320"]  # OHCI, OHCI, EHCI
            for fn in range(k):
                self._fn_line(out, ind, f"endpoint usb{prefix}_s{slot}_f{fn} @ {slot:02x}.{fn} "
                                        f"{{ use pci_usb({classes[fn]});{self._intx(fn)} }}")
        elif kind == "nic":
            k = min(self.rng.choice([1, 2, 4]), self.left)
            for fn in range(k):
                self._fn_line(out, ind, f"endpoint eth{prefix}_s{slot}_f{fn} @ {slot:02x}.{fn} "
                                        f"{{ use pci_nic;{self._intx(fn)} }}")
        else:
            self._fn_line(out, ind,
                          f"endpoint uart{prefix}_s{slot} @ {slot:02x}.0 {{ use pci_serial; }}")

    # ------------------------------------------------------------ structure

    def _root_port(self, out: list[str], tag: str, dev: int, buses_left: int) -> int:
        """Write root port ``dev`` on bus 0 and what is below it; return the buses used."""
        ind = "    "
        choice = self.rng.choices(["switch", "direct", "legacy"], weights=[55, 20, 25])[0]
        if choice == "switch" and buses_left < 4:
            choice = "legacy" if buses_left >= 2 else "direct"
        if choice == "legacy" and buses_left < 2:
            choice = "direct"
        self._fn_line(out, ind, f"root-port rp{tag} @ {dev:02x}.0 {{")
        used = 1
        ind2 = ind * 2
        if choice == "direct":
            if self.left:
                kind = self._pcie_kind()
                self._device(out, ind2, f"{_PREFIX[kind]}{tag}", 0, kind)
        elif choice == "legacy" and self.left:
            self._fn_line(out, ind2, f"pcie-to-pci-bridge p2p{tag} @ 00.0 {{")
            used += 1
            slots = self.rng.randint(12, 32)
            for slot in range(slots):
                if not self.left:
                    break
                self._conventional(out, ind2 + ind, tag, slot)
            out.append(ind2 + "}")
        elif choice == "switch" and self.left:
            ports = min(self.rng.choice([8, 12, 16, 24]), buses_left - 2)
            self._fn_line(out, ind2, f"switch sw{tag} @ 00.0 {{")
            out.append(ind2 + ind + "id 10b5:8796;")
            used += 1
            for p in range(ports):
                if not self.left:
                    break
                ind3 = ind2 + ind
                self._fn_line(out, ind3, f"downstream dp{tag}_{p} @ {p:02x}.0 {{")
                used += 1
                if self.left:
                    kind = self._pcie_kind()
                    self._device(out, ind3 + ind, f"{_PREFIX[kind]}{tag}_{p}", 0, kind)
                out.append(ind3 + "}")
            out.append(ind2 + "}")
        out.append(ind + "}")
        return used

    def _host_bridge(self, index: int) -> _Host:
        h = _Host(index)
        buses_left = 255  # secondary buses 1..255
        dev = 1
        while self.left and dev <= 31 and buses_left >= 1:
            buses_left -= self._root_port(h.lines, f"{index}_{dev}", dev, buses_left)
            dev += 1
        return h

    def run(self) -> None:
        while self.left:
            index = len(self.hosts)
            if index >= _MAX_HOST_BRIDGES:
                raise ValueError("too many functions for the generator's address map")
            self.hosts.append(self._host_bridge(index))


def _hex(v: int) -> str:
    """0x40_1000_0000 style: groups of four hex digits from the right."""
    digits = f"{v:x}"
    groups = []
    while digits:
        groups.append(digits[-4:])
        digits = digits[:-4]
    return "0x" + "_".join(reversed(groups))


def _host_text(h: _Host) -> str:
    i = h.index
    spi = _SPI_FIRST + (4 * i) % _SPI_COUNT
    head = [
        f"its{i} = msi-controller gicv3-its @ {_hex(_ITS_BASE + i * _ITS_STRIDE)} size 128K "
        "{ parent gic; }",
        "",
        f"host-bridge pcie{i} ecam @ {_hex(_ECAM_BASE + i * _ECAM_STRIDE)} size 256M {{",
        f"    domain {i};",
        "    buses 0..255;",
        f"    window mem32 cpu {_hex(_MEM32_CPU + i * _MEM32_STRIDE)} pci {_hex(_MEM32_PCI)} "
        f"size {_hex(_MEM32_SIZE)};",
        f"    window mem64 prefetchable cpu {_hex(_PREF_CPU + i * _PREF_STRIDE)} size 64G;",
        f"    msi map rid 0x0000..0xffff -> its{i};",
        f"    intx -> gic spi {spi}..{spi + 3} level;",
        "",
    ]
    return "\n".join([*head, *h.lines, "}", ""])


def generate(n_functions: int, seed: int = 0) -> str:
    """The text of a flat .msi file declaring exactly ``n_functions`` PCI functions."""
    if n_functions < 1:
        raise ValueError("n_functions must be at least 1")
    g = _Gen(random.Random(seed), n_functions)
    g.run()
    header = f"""\
// Generated by bench/gen.py: {n_functions} PCI functions, seed {seed}.
// Flat on purpose (no 'repeat'): every function is written out, as in a
// hand-written board file. {len(g.hosts)} host bridge(s), one PCI domain and one ITS each.

platform "dtmsi,bench" {{
    model "dtmsi benchmark machine, {n_functions} PCI functions";
    msi native;
}}

gic = interrupt-controller gicv3 @ {_hex(_GIC_DIST)} size 64K {{
    redistributor @ {_hex(_GIC_REDIST)} size 0xf6_0000;
}}

"""
    return header + TEMPLATES + "\n" + "\n".join(_host_text(h) for h in g.hosts)


def count_functions(text: str) -> int:
    """How many PCI functions a generated file declares (one statement each)."""
    words = ("endpoint ", "root-port ", "switch ", "downstream ", "pcie-to-pci-bridge ")
    return sum(1 for line in text.splitlines() if line.lstrip().startswith(words))


def _main(argv: list[str] | None = None, write: Callable[[str], object] | None = None) -> int:
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="python -m bench.gen",
                                 description="Write a generated benchmark .msi.")
    ap.add_argument("n", type=int, help="number of PCI functions")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--output", help="file to write (default: stdout)")
    args = ap.parse_args(argv)
    text = generate(args.n, args.seed)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        (write or sys.stdout.write)(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
