"""Small simulated machines the simulator tests share."""

from __future__ import annotations

from dtmsi.sim import (
    SimBar,
    SimFunction,
    SimHostBridge,
    SimMsi,
    SimMsix,
    SimOptions,
    Simulator,
    SimWindow,
)

BUID = 0x0800_0000_2000_0000
NVME = (0, 1, 0x00)  # 0000:01:00.0
NIC = (0, 1, 0x01)  # 0000:01:00.1
OLD = (0, 1, 0x10)  # 0000:01:02.0, conventional PCI, 32-bit MSI
VF = (0, 1, 0x03)  # 0000:01:00.3, an SR-IOV VF
PNVME = (1, 0, 0x10)  # 0001:00:02.0 under the PAPR PHB (config_addr 0x1000)
PNIC = (1, 0, 0x18)  # 0001:00:03.0, MSI only
ONVME = (2, 1, 0x00)  # 0002:01:00.0 under the OPAL PHB

NATIVE_HB = SimHostBridge(
    "pcie0", 0, "native", windows=(SimWindow(0x8000_0000, 0x1_0000_0000, 0x8000_0000),), bus_first=0, bus_last=15
)
PAPR_HB = SimHostBridge(
    "phb0", 1, "papr", buid=BUID, windows=(SimWindow(0x8000_0000, 0x200_8000_0000, 0x8000_0000),)
)
OPAL_HB = SimHostBridge(
    "phb1", 2, "opal", opal_phb_id=1, msi_base=0xFF0, msi_count=16,
    windows=(SimWindow(0x8000_0000, 0x3FE1_8000_0000, 0x8000_0000),),
)


def native_functions() -> list[SimFunction]:
    return [
        SimFunction(
            *NVME, 0x144D, 0xA808, class_code=0x010802, name="nvme0", intx_pin=1,
            bars=(SimBar(0, "mem64", 0x4000, 0x8002_0000),),
            msix=SimMsix(4, 0, 0x0, 0, 0x2000),
        ),
        SimFunction(
            *NIC, 0x8086, 0x10D3, class_code=0x020000, name="nic0", intx_pin=2,
            bars=(SimBar(0, "mem32", 0x2_0000, 0x8004_0000),),
            msi=SimMsi(8, is64=True, maskable=True),
        ),
        SimFunction(
            *OLD, 0x1274, 0x5000, class_code=0x040100, name="sound0", intx_pin=1, pcie=False,
            bars=(SimBar(0, "io", 0x40, 0x2000), SimBar(1, "mem32", 0x1000, 0x8006_0000)),
            msi=SimMsi(1),
        ),
        SimFunction(
            *VF, 0x15B3, 0x101C, class_code=0x020000, name="nic0_vf0", is_vf=True,
            bars=(SimBar(0, "mem64", 0x10_0000, 0x8010_0000, prefetchable=True),),
            msix=SimMsix(2, 0, 0x2000, 0, 0x3000),
        ),
    ]


def papr_functions() -> list[SimFunction]:
    return [
        SimFunction(
            *PNVME, 0x144D, 0xA808, class_code=0x010802, name="pnvme", intx_pin=1,
            bars=(SimBar(0, "mem32", 0x4000, 0x8000_0000),),
            msix=SimMsix(8, 0, 0x2000, 0, 0x3000),
            msi=SimMsi(4, is64=True),
        ),
        SimFunction(
            *PNIC, 0x8086, 0x10D3, class_code=0x020000, name="pnic", intx_pin=1,
            bars=(SimBar(0, "mem32", 0x2_0000, 0x8002_0000),),
            msi=SimMsi(4, is64=False, maskable=True),
        ),
    ]


def opal_functions() -> list[SimFunction]:
    return [
        SimFunction(
            *ONVME, 0x15B3, 0x1015, class_code=0x020000, name="eth0", intx_pin=1,
            bars=(SimBar(0, "mem64", 0x200_0000, 0x8000_0000, prefetchable=True),),
            msix=SimMsix(8, 0, 0x2000, 0, 0x3000),
            msi=SimMsi(8, is64=True),
        ),
    ]


def machine(
    options: SimOptions | None = None,
    partition: set[tuple[int, int, int]] | None = None,
    missing_hooks: tuple[str, ...] = (),
) -> Simulator:
    return Simulator(
        [NATIVE_HB, PAPR_HB, OPAL_HB],
        native_functions() + papr_functions() + opal_functions(),
        partition=partition,
        options=options,
        missing_hooks=missing_hooks,
    )
