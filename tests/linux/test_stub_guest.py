"""A real guest judges the generated native stub.

``stub_guest.msi`` (QEMU virt, GICv3 + ITS; e1000e at 00:02.0 on MSI-X x5,
edu at 00:04.0 on MSI x1) is compiled by dtmsi; its ``system_msi.c`` is
cross-compiled for arm64 with ``stub_hooks_linux.c`` and run inside Debian's
arm64 kernel under QEMU, on functions no driver owns (edu has none, e1000e's
is blacklisted).  The program sets both functions up and fires every vector
once; QEMU's ``gicv3_its_translation_write`` trace must then show every
planned (DeviceID, EventID) exactly once and nothing else.  Two stubs built
from deliberately wrong plans (EventIDs + 1; the doorbell on the ITS control
frame) must fail the same check.  Three boots of about 5 s each.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .guest import Guest
from .stubguest import (
    STUB_MSI,
    PlannedMessage,
    StubBuild,
    StubGuestRun,
    TraceCut,
    build_stub,
    cut_trace,
    judge_its_writes,
    move_doorbell,
    parse_stub_output,
    planned_messages,
    run_stub_in_guest,
    shift_event_ids,
)

#: QEMU devices at the addresses stub_guest.msi declares.
DEVICES = ("e1000e,addr=02.0", "edu,addr=04.0")
NIC, EDU = "0000:00:02.0", "0000:00:04.0"
DOORBELL = 0x0809_0040  # GITS_TRANSLATER of the ITS at 0x0808_0000


@pytest.fixture(scope="module")
def good_build(tmp_path_factory: pytest.TempPathFactory) -> StubBuild:
    return build_stub(STUB_MSI, tmp_path_factory.mktemp("stub-good"))


@pytest.fixture(scope="module")
def good_run(guest: Guest, good_build: StubBuild) -> StubGuestRun:
    return run_stub_in_guest(guest, good_build, DEVICES)


# --------------------------------------------------------------------------
# the plan the guest checks against
# --------------------------------------------------------------------------


def test_the_plan_gives_e1000e_five_msix_vectors_and_edu_one_msi(good_build: StubBuild) -> None:
    pairs = [(p.bdf, p.device_id, p.event_id, p.address) for p in good_build.planned]
    assert pairs == [(NIC, 0x10, e, DOORBELL) for e in range(5)] + [(EDU, 0x20, 0, DOORBELL)]
    mechanisms = {f["bdf"]: f["mechanism"] for f in good_build.allocation["functions"]}
    assert mechanisms == {NIC: "msix", EDU: "msi"}


# --------------------------------------------------------------------------
# the real stub in the real guest
# --------------------------------------------------------------------------


@pytest.mark.linux
def test_no_driver_owns_the_functions_the_stub_sets_up(good_run: StubGuestRun) -> None:
    for bdf in (NIC, EDU):
        assert good_run.report.function(bdf).driver is None, good_run.report.summary()


@pytest.mark.linux
def test_the_stub_sets_up_every_function_as_planned(good_run: StubGuestRun) -> None:
    out = good_run.output
    assert out.done and out.exit_code == 0 and not out.errors, good_run.summary()
    assert out.failed == 0, good_run.summary()
    assert {bdf: (f.status, f.mechanism, f.vectors) for bdf, f in out.functions.items()} == {
        NIC: (0, "msix", 5),
        EDU: (0, "msi", 1),
    }, good_run.summary()
    written = sorted((bdf, v.index, v.address, v.data) for bdf, f in out.functions.items() for v in f.vec)
    planned = sorted((p.bdf, p.vector, p.address, p.event_id) for p in good_run.build.planned)
    assert written == planned


@pytest.mark.linux
def test_the_guest_fired_each_planned_vector_once(good_run: StubGuestRun) -> None:
    assert sorted(good_run.output.shots) == sorted((p.bdf, p.vector) for p in good_run.build.planned)


@pytest.mark.linux
def test_qemu_sees_every_planned_message_once_and_nothing_else(good_run: StubGuestRun) -> None:
    assert good_run.cut.marker_found, good_run.summary()
    assert good_run.problems == (), good_run.summary()
    assert len(good_run.cut.writes) == len(good_run.build.planned)


@pytest.mark.linux
def test_the_stub_left_both_functions_enabled_with_bus_master(good_run: StubGuestRun) -> None:
    """Config space as the guest's report read it after the stub ran."""
    nic = good_run.report.function(NIC).config
    edu = good_run.report.function(EDU).config
    assert int.from_bytes(nic[0x04:0x06], "little") & 0x6 == 0x6  # Memory Space, Bus Master
    assert int.from_bytes(nic[0xA2:0xA4], "little") & 0xC000 == 0x8000  # MSI-X on, not masked
    assert int.from_bytes(nic[0xD2:0xD4], "little") & 0x1 == 0  # MSI off
    assert int.from_bytes(edu[0x04:0x06], "little") & 0x4 == 0x4
    assert int.from_bytes(edu[0x42:0x44], "little") & 0x71 == 0x01  # MSI on, one vector


# --------------------------------------------------------------------------
# negative controls: a stub built from a wrong plan fails the same check
# --------------------------------------------------------------------------


@pytest.mark.linux
@pytest.mark.parametrize(
    ("mutation", "expect"),
    [
        pytest.param(shift_event_ids, "none planned", id="event-ids-plus-one"),
        pytest.param(move_doorbell, "no translation", id="doorbell-on-control-frame"),
    ],
)
def test_a_stub_from_a_wrong_plan_fails_the_check(
    guest: Guest, tmp_path: Path, mutation: Callable[[str], str], expect: str
) -> None:
    bad = build_stub(STUB_MSI, tmp_path / "stub", mutate=mutation)
    run = run_stub_in_guest(guest, bad, DEVICES)
    # The stub cannot tell: it did what its table says, and QEMU saw the marker.
    assert run.output.failed == 0 and run.output.done, run.summary()
    assert run.cut.marker_found, run.summary()
    assert run.problems, run.summary()
    assert any(expect in p for p in run.problems), run.summary()
    assert any("never reached the ITS" in p for p in run.problems), run.summary()


# --------------------------------------------------------------------------
# the oracle itself, on hand-written traces (no boot)
# --------------------------------------------------------------------------

_PLAN = (
    PlannedMessage(0x10, 0, NIC, "nic0", 0, DOORBELL),
    PlannedMessage(0x10, 1, NIC, "nic0", 1, DOORBELL),
    PlannedMessage(0x20, 0, EDU, "edu0", 0, DOORBELL),
)
_MARKER = "pci_cfg_write e1000e 00:02.0 @0x3c <- 0xa5"


def _tw(rid: int, data: int) -> str:
    return (
        f"gicv3_its_translation_write GICv3 ITS TRANSLATER write: offset 0x40 data {data:#x} size 4 "
        f"requester_id {rid:#x}"
    )


def _judge(*lines: str) -> list[str]:
    cut: TraceCut = cut_trace("\n".join(lines), NIC)
    return judge_its_writes(_PLAN, cut)


def test_oracle_passes_exactly_the_plan_after_the_marker() -> None:
    before = _tw(0x10, 7)  # the kernel's own traffic before the marker does not count
    assert (
        _judge(before, _MARKER, _tw(0x10, 0), "pci_cfg_write edu 00:04.0 @0x4 <- 0x406", _tw(0x10, 1), _tw(0x20, 0))
        == []
    )


def test_oracle_fails_without_the_marker() -> None:
    assert "no marker" in _judge(_tw(0x10, 0), _tw(0x10, 1), _tw(0x20, 0))[0]


def test_oracle_fails_on_a_missing_an_extra_and_a_repeated_message() -> None:
    problems = _judge(_MARKER, _tw(0x10, 0), _tw(0x10, 0), _tw(0x20, 0), _tw(0x20, 1))
    assert len(problems) == 3, problems
    assert "EventID 0x1 (0000:00:02.0 nic0 vector 1): planned, never reached" in problems[1]
    assert "planned 1x, the ITS saw 2x" in problems[0]
    assert "DeviceID 0x20 EventID 0x1: the ITS saw 1 write(s), none planned" in problems[2]


def test_oracle_fails_on_a_control_frame_write() -> None:
    bad = "gicv3_its_badwrite GICv3 ITS write: offset 0x40 data 0x0 size 4: error"
    problems = _judge(_MARKER, _tw(0x10, 0), _tw(0x10, 1), _tw(0x20, 0), bad)
    assert problems == [f"a write to the ITS that is no translation: {bad}"]


def test_oracle_with_shots_fails_when_a_vector_sends_another_vectors_message() -> None:
    shots = [(NIC, 0), (NIC, 1), (EDU, 0)]
    cut = cut_trace("\n".join([_MARKER, _tw(0x10, 0), _tw(0x10, 1), _tw(0x20, 0)]), NIC)
    assert judge_its_writes(_PLAN, cut, shots) == []
    swapped = cut_trace("\n".join([_MARKER, _tw(0x10, 1), _tw(0x10, 0), _tw(0x20, 0)]), NIC)
    assert judge_its_writes(_PLAN, swapped) == []  # the same set of pairs
    problems = judge_its_writes(_PLAN, swapped, shots)
    assert (
        len(problems) == 2
        and "shot 0 (0000:00:02.0 nic0 vector 0) should send DeviceID 0x10 EventID 0x0" in problems[0]
    )


def test_plan_and_output_parsers() -> None:
    allocation = {
        "functions": [
            {"bdf": NIC, "name": "nic0", "device_id": 16, "mechanism": "msix",
             "messages": [{"vector": 0, "count": 2, "address": DOORBELL, "data": 0, "event_id": 0}]},
            {"bdf": "0000:00:05.0", "name": "x", "device_id": 40, "mechanism": "intx", "messages": []},
            {"bdf": EDU, "name": "edu0", "device_id": 32, "mechanism": "msi",
             "messages": [{"vector": 0, "count": 1, "address": DOORBELL, "data": 0, "event_id": 0}]},
        ]
    }  # fmt: skip
    assert planned_messages(allocation) == _PLAN
    out = parse_stub_output(
        "@@stub marker 0000:00:02.0 offset=0x3c value=0xa5\n@@stub setup_all failed=0\n"
        "@@stub fn 0000:00:02.0 name=nic0 status=0 strerror=ok mechanism=msix vectors=1 requested=1 set_up=1\n"
        "@@stub vec 0000:00:02.0 index=0 address=0x8090040 data=0x0 irq=0x0\n"
        "@@stub fire 0000:00:02.0 vector=0 how=e1000e-RXQ0\n@@stub done failed=0 problems=0\nexit 0\n"
    )
    assert (out.marker, out.failed, out.done, out.exit_code, out.shots) == (NIC, 0, True, 0, ((NIC, 0),))
    assert out.functions[NIC].vec[0].address == DOORBELL


def test_mutations_change_the_generated_tables() -> None:
    text = (
        "const struct p_run p_runs[2] = {\n"
        "    {.vector = 0U, .count = 5U, .address = 0x8090040ULL, .data = 0U, .irq = 0U},\n"
        "    {.vector = 0U, .count = 1U, .address = 0x8090040ULL, .data = 0x10U, .irq = 0U},\n"
        "};\n"
        "static int f(struct v *v) { v->data = 3; return 0x8090040 > 1; }\n"
    )
    shifted = shift_event_ids(text)
    assert ".data = 0x1U" in shifted and ".data = 0x11U" in shifted and "v->data = 3" in shifted
    moved = move_doorbell(text)
    assert "0x8090040" not in moved and moved.count("0x8080040ULL") == 3
