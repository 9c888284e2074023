"""Errors inside template bodies: said once however often the template is
used, and (for errors found while expanding it) with the use they came through."""

from __future__ import annotations

from pathlib import Path

from dtmsi.driver import compile_file
from dtmsi.options import CompileOptions

HEAD = """\
gic = interrupt-controller gicv3 @ 0x0800_0000 size 64K {
    redistributor @ 0x080a_0000 size 0xf6_0000;
}
"""
BRIDGE = """\
host-bridge pcie0 ecam @ 0x3000_0000 size 16M {{
    buses 0..15;
    window mem32 cpu 0x4000_0000 size 256M;
    intx -> gic spi 3..6 level;
{body}}}
"""


def _diagnostics(tmp_path: Path, text: str) -> list[tuple[str, int, str, list[tuple[str, int]]]]:
    src = tmp_path / "t.msi"
    src.write_text(text)
    result = compile_file(CompileOptions(input=src))
    return [
        (d.code.id, d.span.line, d.message, [(n.message, n.span.line if n.span else 0) for n in d.notes])
        for d in result.sink
    ]


def test_an_expansion_error_names_the_use_and_is_said_once(tmp_path: Path) -> None:
    template = "template uart {\n    id 1415:c158 class 0x070002;\n    bar 0 mem32 4K;\n    intx E;\n}\n"
    body = "    endpoint uart0 @ 01.0 { use uart; }\n    endpoint uart1 @ 02.0 { use uart; }\n"
    diags = _diagnostics(tmp_path, HEAD + template + BRIDGE.format(body=body))
    # Lines: the template body is 5-7, the uses are on 13 and 14.
    message = "expected an INTx pin: A, B, C, D or none, found 'E'"
    assert diags == [("E101", 7, message, [("in template 'uart', used here", 13)])]


def test_nested_uses_are_named_innermost_first(tmp_path: Path) -> None:
    templates = (
        "template pin { intx E; }\n"
        "template uart {\n    id 1415:c158 class 0x070002;\n    bar 0 mem32 4K;\n    use pin;\n}\n"
    )
    body = "    endpoint uart0 @ 01.0 { use uart; }\n"
    [(code, line, _, notes)] = _diagnostics(tmp_path, HEAD + templates + BRIDGE.format(body=body))
    assert (code, line) == ("E101", 4)
    assert notes == [("in template 'pin', used here", 8), ("in template 'uart', used here", 14)]


def test_a_model_error_in_a_template_is_said_once_per_distinct_message(tmp_path: Path) -> None:
    template = (
        "template nic(vectors) {\n    id 8086:10d3 class 0x020000;\n    bar 0 mem32 128K;\n"
        "    bar 1 mem32 3K;\n    msix vectors table bar 0 + 0x0 pba bar 0 + 0x1000;\n}\n"
    )
    body = (
        "    endpoint nic0 @ 01.0 { use nic(4096); }\n"
        "    endpoint nic1 @ 02.0 { use nic(4096); }\n"
        "    endpoint nic2 @ 03.0 { use nic(5000); }\n"
    )
    its = "its = msi-controller gicv3-its @ 0x0808_0000 size 128K { parent gic; }\n"
    bridge = BRIDGE.format(body=body).replace("level;\n", "level;\n    msi map rid 0x0000..0xffff -> its;\n")
    diags = _diagnostics(tmp_path, HEAD + its + template + bridge)
    got = sorted((code, line, message.split(" is ")[0], notes) for code, line, message, notes in diags)
    # Found in the model, not while expanding: the note names the function
    # (the first one, for an error all its users share) and its 'use'.
    assert got == [
        ("E402", 8, "BAR size 0xc00", [("in template 'nic', used by 'nic0' here", 16)]),
        ("E602", 9, "MSI-X table size 4096", [("in template 'nic', used by 'nic0' here", 16)]),
        ("E602", 9, "MSI-X table size 5000", [("in template 'nic', used by 'nic2' here", 18)]),
    ]


def test_no_template_note_for_a_problem_in_the_function_itself(tmp_path: Path) -> None:
    template = "template ids { id 8086:10d3 class 0x020000; }\n"
    body = "    endpoint nic0 @ 01.0 { use ids; bar 0 mem32 3K; }\n"
    [(code, line, _, notes)] = _diagnostics(tmp_path, HEAD + template + BRIDGE.format(body=body))
    assert (code, line, notes) == ("E402", 9, [])
