"""A real q35 guest judges the x86 message format of the generated native stub.

``x86_stub_guest.msi`` (QEMU q35, an ``x86-apic`` controller over CPUs 0..1;
e1000e at 00:02.0 on MSI-X x5, edu at 00:04.0 on MSI x1) is compiled by
dtmsi; its ``system_msi.c`` is built with ``gcc -static`` together with
``stub_hooks_linux.c`` and run inside Debian's amd64 kernel on
``qemu-system-x86_64 -M q35 -smp 2`` (TCG), on functions no driver owns.  The
program sets both functions up and fires every vector once; QEMU's
``apic_deliver_irq`` trace between the program's two marker writes must show,
for every message of ``allocation.json``, the destination APIC ID and vector
its address and data encode (0xFEE00000 | dest << 12, data = vector: fixed,
edge, physical), once, in firing order, and nothing else.  The plan spreads
e1000e's vectors over both CPUs, so a wrong destination shows.  The guest's
kernel confirms each arrival ("No irq handler for vector" names the CPU and
the vector).  Two stubs from deliberately wrong plans (vectors + 1; CPU 1's
messages sent to CPU 0) must fail the same check.  Three boots.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import guest_cache_dir
from .guest import AMD64, Guest, HarnessError, ensure_guest, unpack_bzimage
from .stubguest import StubBuild
from .x86stub import (
    X86_STUB_MSI,
    ApicCut,
    ApicFields,
    PlannedApicMessage,
    X86StubRun,
    build_x86_stub,
    cut_apic_trace,
    decode_x86_message,
    judge_apic_deliveries,
    move_destination,
    planned_apic_messages,
    run_x86_stub_in_guest,
    shift_vectors,
)

#: QEMU devices at the addresses x86_stub_guest.msi declares.
DEVICES = ("e1000e,addr=02.0", "edu,addr=04.0")
NIC, EDU = "0000:00:02.0", "0000:00:04.0"
CPUS = 2  # -smp, and the platform's "cpus 2"
#: The x86-apic controller's "vectors 0xd0..0xdf": no Linux irq owns them in this guest.
STUB_VECTORS = range(0xD0, 0xE0)


@pytest.fixture(scope="module")
def x86_guest() -> Guest:
    """Debian's current bookworm amd64 kernel with the tests/linux initramfs,
    for QEMU's q35 (under ``<cache>/amd64``); built once, cached."""
    return ensure_guest(guest_cache_dir(), arch=AMD64)


@pytest.fixture(scope="module")
def good_build(tmp_path_factory: pytest.TempPathFactory) -> StubBuild:
    return build_x86_stub(X86_STUB_MSI, tmp_path_factory.mktemp("x86-stub-good"))


@pytest.fixture(scope="module")
def good_run(x86_guest: Guest, good_build: StubBuild) -> X86StubRun:
    return run_x86_stub_in_guest(x86_guest, good_build, DEVICES, smp=CPUS)


def _fields(dest: int, vector: int) -> ApicFields:
    return ApicFields(dest=dest, dest_mode=0, delivery_mode=0, vector=vector, trigger_mode=0)


# --------------------------------------------------------------------------
# the plan the guest checks against
# --------------------------------------------------------------------------


def test_the_plan_spreads_the_vectors_over_both_cpus(good_build: StubBuild) -> None:
    planned = planned_apic_messages(good_build.allocation)
    got = [(p.bdf, p.vector, p.fields.dest, p.fields.vector) for p in planned]
    assert got == [
        (NIC, 0, 0, 0xD0),
        (NIC, 1, 1, 0xD0),
        (NIC, 2, 0, 0xD1),
        (NIC, 3, 1, 0xD1),
        (NIC, 4, 0, 0xD2),
        (EDU, 0, 1, 0xD2),
    ]
    for p in planned:  # fixed, edge, physical destination, no redirection hint
        assert (p.address, p.data) == (0xFEE0_0000 | p.fields.dest << 12, p.fields.vector)
        assert p.fields.vector in STUB_VECTORS
    mechanisms = {f["bdf"]: f["mechanism"] for f in good_build.allocation["functions"]}
    assert mechanisms == {NIC: "msix", EDU: "msi"}


# --------------------------------------------------------------------------
# the real stub in the real guest
# --------------------------------------------------------------------------


@pytest.mark.linux
def test_no_driver_owns_the_functions_the_stub_sets_up(good_run: X86StubRun) -> None:
    for bdf in (NIC, EDU):
        assert good_run.report.function(bdf).driver is None, good_run.report.summary()


@pytest.mark.linux
def test_the_stub_sets_up_every_function_as_planned(good_run: X86StubRun) -> None:
    out = good_run.output
    assert out.done and out.exit_code == 0 and not out.errors, good_run.summary()
    assert out.failed == 0, good_run.summary()
    assert {bdf: (f.status, f.mechanism, f.vectors) for bdf, f in out.functions.items()} == {
        NIC: (0, "msix", 5),
        EDU: (0, "msi", 1),
    }, good_run.summary()
    written = sorted((bdf, v.index, v.address, v.data) for bdf, f in out.functions.items() for v in f.vec)
    planned = sorted((p.bdf, p.vector, p.address, p.data) for p in good_run.planned)
    assert written == planned


@pytest.mark.linux
def test_the_guest_fired_each_planned_vector_once(good_run: X86StubRun) -> None:
    assert sorted(good_run.output.shots) == sorted((p.bdf, p.vector) for p in good_run.planned)
    assert good_run.output.end_marker, good_run.summary()


@pytest.mark.linux
def test_qemus_apics_see_every_planned_destination_and_vector_once_and_nothing_else(
    good_run: X86StubRun,
) -> None:
    assert good_run.cut.marker_found and good_run.cut.end_found, good_run.summary()
    assert good_run.problems == (), good_run.summary()
    assert [d.fields for d in good_run.cut.deliveries] == [
        _fields(0, 0xD0),
        _fields(1, 0xD0),
        _fields(0, 0xD1),
        _fields(1, 0xD1),
        _fields(0, 0xD2),
        _fields(1, 0xD2),
    ], good_run.summary()


@pytest.mark.linux
def test_the_guest_runs_on_both_cpus(good_run: X86StubRun) -> None:
    assert good_run.cpus_online == CPUS, good_run.summary()


@pytest.mark.linux
def test_each_message_reached_its_cpu_with_its_vector(good_run: X86StubRun) -> None:
    """Delivered, not just sent: the guest's kernel took each shot on the
    planned CPU (q35 numbers APIC IDs like CPUs) and vector, which no Linux
    irq owns there, and said so.  Only the stub's vector range counts: Linux
    logs the same line for a vector of its own that arrives after the irq
    moved to another vector, which is none of the stub's doing."""
    planned = sorted((p.fields.dest, p.fields.vector) for p in good_run.planned)
    ours = sorted((cpu, vector) for cpu, vector in good_run.arrivals if vector in STUB_VECTORS)
    assert ours == planned, good_run.summary()


@pytest.mark.linux
def test_the_stub_left_both_functions_enabled_with_bus_master(good_run: X86StubRun) -> None:
    """Config space as the guest's report read it after the stub ran."""
    nic = good_run.report.function(NIC).config
    edu = good_run.report.function(EDU).config
    assert int.from_bytes(nic[0x04:0x06], "little") & 0x6 == 0x6  # Memory Space, Bus Master
    assert int.from_bytes(nic[0xA2:0xA4], "little") & 0xC000 == 0x8000  # MSI-X on, not masked
    assert int.from_bytes(edu[0x04:0x06], "little") & 0x4 == 0x4
    assert int.from_bytes(edu[0x42:0x44], "little") & 0x71 == 0x01  # MSI on, one vector
    # edu's 64-bit MSI address and data registers hold the planned message.
    (edu_msg,) = (p for p in good_run.planned if p.bdf == EDU)
    assert int.from_bytes(edu[0x44:0x4C], "little") == edu_msg.address
    assert int.from_bytes(edu[0x4C:0x4E], "little") == edu_msg.data


# --------------------------------------------------------------------------
# negative controls: a stub built from a wrong plan fails the same check
# --------------------------------------------------------------------------


@pytest.mark.linux
@pytest.mark.parametrize(
    ("mutation", "expect"),
    [
        pytest.param(shift_vectors, "none planned", id="vectors-plus-one"),
        pytest.param(move_destination, "the APICs saw 2x", id="cpu1-messages-to-cpu0"),
    ],
)
def test_a_stub_from_a_wrong_plan_fails_the_check(
    x86_guest: Guest, tmp_path: Path, mutation: Callable[[str], str], expect: str
) -> None:
    bad = build_x86_stub(X86_STUB_MSI, tmp_path / "stub", mutate=mutation)
    run = run_x86_stub_in_guest(x86_guest, bad, DEVICES, smp=CPUS)
    # The stub cannot tell: it did what its table says, and QEMU saw both markers.
    assert run.output.failed == 0 and run.output.done, run.summary()
    assert run.cut.marker_found and run.cut.end_found, run.summary()
    assert len(run.cut.deliveries) == len(run.planned), run.summary()
    assert run.problems, run.summary()
    assert any(expect in p for p in run.problems), run.summary()
    assert any("never delivered" in p for p in run.problems), run.summary()
    # The guest's kernel, too, took other CPU/vector pairs than the plan's.
    ours = sorted((cpu, vector) for cpu, vector in run.arrivals if vector in STUB_VECTORS)
    assert ours and ours != sorted((p.fields.dest, p.fields.vector) for p in run.planned), run.summary()


# --------------------------------------------------------------------------
# the oracle itself, on hand-written traces (no boot)
# --------------------------------------------------------------------------

_PLAN = (
    PlannedApicMessage(_fields(0, 0xD0), NIC, "nic0", 0, 0xFEE0_0000, 0xD0),
    PlannedApicMessage(_fields(1, 0xD0), NIC, "nic0", 1, 0xFEE0_1000, 0xD0),
    PlannedApicMessage(_fields(1, 0xD1), EDU, "edu0", 0, 0xFEE0_1000, 0xD1),
)
_SHOTS = [(NIC, 0), (NIC, 1), (EDU, 0)]
_MARKER = "pci_cfg_write e1000e 00:02.0 @0x3c <- 0xa5"
_END = "pci_cfg_write e1000e 00:02.0 @0x3c <- 0x5a"


def _d(dest: int, vector: int, dest_mode: int = 0, delivery_mode: int = 0, trigger_mode: int = 0) -> str:
    return (
        f"apic_deliver_irq dest {dest} dest_mode {dest_mode} delivery_mode {delivery_mode} "
        f"vector {vector} trigger_mode {trigger_mode}"
    )


def _judge(*lines: str, shots: list[tuple[str, int]] | None = _SHOTS, cpus: int = CPUS) -> list[str]:
    cut: ApicCut = cut_apic_trace("\n".join(lines), NIC)
    return judge_apic_deliveries(_PLAN, cut, cpus=cpus, shots=shots)


def test_decode_follows_the_xapic_msi_format() -> None:
    assert decode_x86_message(0xFEE0_1000, 0xD2) == _fields(1, 0xD2)
    # redirection hint (bit 3) ignored, logical mode (bit 2); lowest priority, level
    assert decode_x86_message(0xFEEF_F00C, 0x81D2) == ApicFields(0xFF, 1, 1, 0xD2, 1)
    for address in (0xFED0_1000, 0x1_FEE0_1000, 0x0809_0040):
        with pytest.raises(ValueError, match="no xAPIC MSI address"):
            decode_x86_message(address, 0x30)


def test_oracle_passes_exactly_the_plan_between_the_markers() -> None:
    before = _d(1, 0x23, dest_mode=1)  # the kernel's own (IOAPIC) before the marker
    after = _d(2, 0x23, dest_mode=1)  # and after the end marker: the report's serial output
    other = "pci_cfg_write edu 00:04.0 @0x4 <- 0x507"
    assert _judge(before, _MARKER, _d(0, 0xD0), other, _d(1, 0xD0), _d(1, 0xD1), _END, after) == []


def test_oracle_fails_without_either_marker() -> None:
    assert "no marker" in _judge(_d(0, 0xD0), _d(1, 0xD0), _d(1, 0xD1), _END)[0]
    assert "no end-marker" in _judge(_MARKER, _d(0, 0xD0), _d(1, 0xD0), _d(1, 0xD1))[0]
    # an end marker before the marker does not close the window
    assert "no end-marker" in _judge(_END, _MARKER, _d(0, 0xD0), _d(1, 0xD0), _d(1, 0xD1))[0]


def test_oracle_fails_on_a_missing_an_extra_and_a_repeated_delivery() -> None:
    problems = _judge(_MARKER, _d(0, 0xD0), _d(0, 0xD0), _d(1, 0xD1), _d(1, 0x23, dest_mode=1), _END)
    assert problems == [
        "dest 0 dest_mode 0 delivery_mode 0 vector 0xd0 trigger_mode 0 (0000:00:02.0 nic0 vector 0): "
        "planned 1x, the APICs saw 2x",
        "dest 1 dest_mode 0 delivery_mode 0 vector 0xd0 trigger_mode 0 (0000:00:02.0 nic0 vector 1): "
        "planned, never delivered",
        "dest 1 dest_mode 1 delivery_mode 0 vector 0x23 trigger_mode 0: the APICs saw 1 deliveries, none planned",
    ]


@pytest.mark.parametrize(
    "wrong",
    [
        pytest.param({"dest_mode": 1}, id="logical-destination"),
        pytest.param({"delivery_mode": 1}, id="lowest-priority"),
        pytest.param({"trigger_mode": 1}, id="level-triggered"),
    ],
)
def test_oracle_fails_on_any_other_field(wrong: dict[str, int]) -> None:
    problems = _judge(_MARKER, _d(0, 0xD0), _d(1, 0xD0, **wrong), _d(1, 0xD1), _END)
    assert len(problems) == 2 and "never delivered" in problems[0] and "none planned" in problems[1], problems


def test_oracle_fails_on_a_destination_the_machine_lacks() -> None:
    plan = (*_PLAN[:2], PlannedApicMessage(_fields(3, 0xD1), EDU, "edu0", 0, 0xFEE0_3000, 0xD1))
    cut = cut_apic_trace("\n".join([_MARKER, _d(0, 0xD0), _d(1, 0xD0), _d(3, 0xD1), _END]), NIC)
    problems = judge_apic_deliveries(plan, cut, cpus=CPUS, shots=_SHOTS)
    assert problems == [
        "dest 3 dest_mode 0 delivery_mode 0 vector 0xd1 trigger_mode 0: APIC ID 3 is no CPU of this machine (2 CPUs)"
    ]
    assert judge_apic_deliveries(plan, cut, cpus=4, shots=_SHOTS) == []


def test_oracle_with_shots_fails_when_a_vector_sends_another_vectors_message() -> None:
    swapped = (_MARKER, _d(1, 0xD0), _d(0, 0xD0), _d(1, 0xD1), _END)
    assert _judge(*swapped, shots=None) == []  # the same set of messages
    problems = _judge(*swapped)
    assert len(problems) == 2 and problems[0].startswith(
        "shot 0 (0000:00:02.0 nic0 vector 0) should deliver dest 0 dest_mode 0"
    ), problems


def test_mutations_change_the_generated_tables() -> None:
    text = (
        "const struct p_run p_runs[] = {\n"
        "    {.vector = 0U, .n = 1U, .address = 0xfee00000ULL, .data = 0xd0U, .irq = 0xd0U}, /* nic0 */\n"
        "    {.vector = 1U, .n = 1U, .address = 0xfee01000ULL, .data = 0xd0U, .irq = 0xd0U}, /* nic0 */\n"
        "};\n"
    )
    shifted = shift_vectors(text)
    assert shifted.count(".data = 0xd1U") == 2 and shifted.count(".irq = 0xd0U") == 2
    moved = move_destination(text)
    assert "0xfee01000" not in moved and moved.count("0xfee00000ULL") == 2


# --------------------------------------------------------------------------
# the amd64 guest boots the kernel's unpacked ELF image (no boot here)
# --------------------------------------------------------------------------


def _bzimage(payload: bytes, setup_sects: int = 3, protocol: int = 0x20F) -> bytes:
    """A bzImage with the setup-header fields unpack_bzimage reads."""
    image = bytearray((setup_sects + 1) * 512 + 0x40)
    image[0x1F1] = setup_sects
    image[0x202:0x206] = b"HdrS"
    image[0x206:0x208] = protocol.to_bytes(2, "little")
    image[0x248:0x24C] = (0x40).to_bytes(4, "little")  # after 0x40 bytes of decompressor
    image[0x24C:0x250] = len(payload).to_bytes(4, "little")
    return bytes(image) + payload + b"\xaa" * 16  # trailing bytes are not payload


def test_unpack_bzimage_finds_the_payload_and_undoes_xz_with_bcj_or_gzip() -> None:
    import gzip
    import lzma

    elf = b"\x7fELF" + bytes(range(256)) * 64
    xz = lzma.compress(elf, format=lzma.FORMAT_XZ, filters=[{"id": lzma.FILTER_X86}, {"id": lzma.FILTER_LZMA2}])
    assert unpack_bzimage(_bzimage(xz)) == elf
    assert unpack_bzimage(_bzimage(gzip.compress(elf, mtime=0), setup_sects=30)) == elf
    with pytest.raises(HarnessError, match="unknown method"):
        unpack_bzimage(_bzimage(b"\x28\xb5\x2f\xfd" + bytes(40)))  # zstd
    with pytest.raises(HarnessError, match="no ELF"):
        unpack_bzimage(_bzimage(gzip.compress(b"MZ" + bytes(100))))
    with pytest.raises(HarnessError, match=r"2\.08"):
        unpack_bzimage(_bzimage(xz, protocol=0x207))
    with pytest.raises(HarnessError, match="HdrS"):
        unpack_bzimage(xz)
