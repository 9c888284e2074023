"""Hostile and huge inputs end in a diagnostic, bounded in time and memory.

Every case of issue 10's list runs the real command line in a child process
(``python -m dtmsi compile``) under an address-space cap, and the test checks
the exit code, the ``file:line:col: error[CODE]`` line at the place computed
from the input text, that no traceback or internal error was printed, that
nothing was written, and the child's peak RSS (``os.wait4``) and wall time
against stated bounds. Inputs that are valid (deep sums, ``repeat i in -1..0``,
a 50 MB comment) must compile, and their outputs are checked.

Cost: about a minute on the 2-core reference machine, most of it the 50 MB
inputs and the expansion limits.
"""

from __future__ import annotations

import json
import os
import resource
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from dtmsi.limits import (
    MAX_BASE_TREE_BYTES,
    MAX_BLOCK_DEPTH,
    MAX_CPU_LIST,
    MAX_DIAGNOSTICS,
    MAX_EXPR_DEPTH,
    MAX_INCLUDE_DEPTH,
    MAX_INPUT_BYTES,
    MAX_INTERPOLATION_WIDTH,
    MAX_NUMBER_DIGITS,
    MAX_REPEAT,
    MAX_SNIPPET_COLUMNS,
    MAX_STATEMENT_TOKENS,
    MAX_TREE_DEPTH,
)

ROOT = Path(__file__).resolve().parent.parent
MB = 1 << 20
# No child may map more than this: a regression shows as a MemoryError (exit
# 3, which fails the test) rather than as a machine brought to its knees.
AS_CAP = 3 << 30

BOARD = """\
platform "example,board" { msi native; }
gic = interrupt-controller gicv3 @ 0x0800_0000 size 64K { redistributor @ 0x080a_0000 size 0xf6_0000; }
its = msi-controller gicv3-its @ 0x0808_0000 size 128K { parent gic; }
host-bridge pcie0 ecam @ 0x3000_0000 size 16M {
    buses 0..15;
    window mem32 cpu 0x4000_0000 size 256M;
    msi map rid 0x0000..0xffff -> its;
    endpoint nic0 @ 01.0 {
        id 8086:10d3 class 0x020000; bar 0 mem32 128K; msix 8 table bar 0 + 0x2000 pba bar 0 + 0x3000;
    }
}
"""


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str
    seconds: float
    peak_bytes: int


def run_child(cmd: list[str], cwd: Path, timeout: float = 120) -> Run:
    """Run ``cmd`` with its address space capped; its own peak RSS.

    The peak comes from GNU time (``%M``), which forks the command from its
    own small image: ``wait4`` on a child of this (large) pytest process
    would count the parent's RSS at fork time in the child's peak.
    """

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (AS_CAP, AS_CAP))

    start = time.monotonic()
    peak_file = cwd / ".peak"
    p = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", str(peak_file), *cmd], cwd=cwd,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=cap)
    try:
        stdout, stderr = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        pytest.fail(f"{cmd[3:]} still running after {timeout} s")
    seconds = time.monotonic() - start
    # "Command exited with non-zero status N" may come first; the figure is last.
    peak_kb = int(peak_file.read_text().split()[-1])
    peak_file.unlink()
    return Run(p.returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace"), seconds,
               peak_kb * 1024)


def dtmsi(cwd: Path, *args: str, timeout: float = 120) -> Run:
    return run_child([sys.executable, "-m", "dtmsi", *args], cwd, timeout)


def at(text: str, piece: str, nth: int = 0) -> str:
    """``line:col`` of the ``nth`` occurrence of ``piece`` in ``text``."""
    i = -1
    for _ in range(nth + 1):
        i = text.index(piece, i + 1)
    return f"{text.count(chr(10), 0, i) + 1}:{i - (text.rfind(chr(10), 0, i) + 1) + 1}"


def write(d: Path, files: dict[str, str | bytes | Callable[[Path], None]]) -> None:
    for name, content in files.items():
        p = d / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            p.write_text(content, encoding="utf-8")
        elif isinstance(content, bytes):
            p.write_bytes(content)
        else:
            content(p)


def fifo(p: Path) -> None:
    os.mkfifo(p)


def refused(
    tmp_path: Path,
    text: str,
    code: str,
    where: str,
    message: str = "",
    files: dict[str, str | bytes | Callable[[Path], None]] | None = None,
    file: str = "in.msi",
    seconds: float = 20,
    peak_mb: int = 200,
    stderr_bytes: int = 8000,
) -> Run:
    """Compile ``text`` as in.msi: it must fail with ``code`` at ``file:where``,
    bounded, with nothing written and no traceback."""
    write(tmp_path, {"in.msi": text, **(files or {})})
    r = dtmsi(tmp_path, "compile", "in.msi", "-o", "out")
    assert r.rc == 1, (r.rc, r.stderr[-3000:])
    header = f"{file}:{where}: error[{code}]: "
    lines = r.stderr.splitlines()
    assert any(line.startswith(header) and message in line for line in lines), (header, message, r.stderr[:3000])
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    assert not (tmp_path / "out").exists(), "a failed compile wrote outputs"
    assert len(r.stderr) < stderr_bytes, f"{len(r.stderr)} bytes of diagnostics"
    assert r.seconds < seconds, f"{r.seconds:.1f} s"
    assert r.peak_bytes < peak_mb * MB, f"peak RSS {r.peak_bytes / MB:.0f} MB"
    return r


def compiles(tmp_path: Path, text: str, files: dict[str, str | bytes | Callable[[Path], None]] | None = None,
             seconds: float = 20, peak_mb: int = 200, name: str = "in.msi") -> Run:
    write(tmp_path, {name: text, **(files or {})})
    r = dtmsi(tmp_path, "compile", name, "-o", "out")
    assert r.rc == 0, r.stderr[-3000:]
    assert r.stderr == ""
    assert r.seconds < seconds, f"{r.seconds:.1f} s"
    assert r.peak_bytes < peak_mb * MB, f"peak RSS {r.peak_bytes / MB:.0f} MB"
    return r


def dts_of(tmp_path: Path) -> str:
    return (tmp_path / "out" / "system.dts").read_text(encoding="utf-8")


def with_chosen(prop: str) -> str:
    return f'node "/chosen" {{ {prop} }}\n' + BOARD


# ---------------------------------------------------------------- the measurement itself


def test_peak_memory_measurement_sees_an_allocation(tmp_path: Path) -> None:
    """Negative control for every bound below: 300 MB allocated by the child
    shows; 300 MB held by this process does not."""
    r = run_child([sys.executable, "-c", "x = bytearray(300 << 20); x[::4096] = b'1' * len(x[::4096])"], tmp_path)
    assert r.rc == 0
    assert r.peak_bytes > 300 * MB
    ballast = bytearray(300 << 20)
    ballast[::4096] = b"1" * len(ballast[::4096])
    small = run_child([sys.executable, "-c", "pass"], tmp_path)
    del ballast
    assert small.peak_bytes < 30 * MB


# ---------------------------------------------------------------- crashes (issue 10, "Why" bullet 1)


def test_decimal_of_4301_digits(tmp_path: Path) -> None:
    text = "const X = " + "9" * 4301 + ";\n" + BOARD
    refused(tmp_path, text, "E114", at(text, "9999"), f"4301 digits (at most {MAX_NUMBER_DIGITS})")


def test_longest_number_literal_is_taken(tmp_path: Path) -> None:
    """128 binary digits is within both limits: it compiles."""
    text = with_chosen('property "wide" = bits 64 (0b' + "1" * 128 + " >> 64);")
    compiles(tmp_path, text)
    assert "wide = /bits/ 64 <0xffffffffffffffff>;" in dts_of(tmp_path)


@pytest.mark.parametrize("literal", ['"\\x"', '"ab\\x4"', '"\\xg0"'])
def test_backslash_x_without_two_hex_digits(tmp_path: Path, literal: str) -> None:
    text = with_chosen(f'property "s" = {literal};')
    refused(tmp_path, text, "E101", at(text, literal), "'\\x' needs two hex digits")


@pytest.mark.parametrize("value", ["-1", "0x110000"])
def test_interpolation_c_of_no_character(tmp_path: Path, value: str) -> None:
    text = f"const V = {value};\n" + BOARD.replace("endpoint nic0", 'endpoint "n{V:c}"')
    refused(tmp_path, text, "E111", at(text, '"n{V:c}"'), f"format 'c' cannot show {int(value, 0)}")


def test_include_symlink_loop(tmp_path: Path) -> None:
    (tmp_path / "loop.msi").symlink_to("loop.msi")
    text = 'include "loop.msi";\n' + BOARD
    refused(tmp_path, text, "E103", at(text, '"loop.msi"'), "Too many levels of symbolic links")


def test_include_name_holding_a_nul(tmp_path: Path) -> None:
    text = 'include "a\\0b.msi";\n' + BOARD
    refused(tmp_path, text, "E111", at(text, '"a\\0b.msi"'), "cannot hold a NUL")


def test_included_file_holding_a_nul(tmp_path: Path) -> None:
    inc = "const A = 1;\n\0\n"
    refused(tmp_path, 'include "nul.msi";\n' + BOARD, "E101", at(inc, "\0"), "unexpected character",
            files={"nul.msi": inc}, file="nul.msi")


def test_input_file_name_not_utf8(tmp_path: Path) -> None:
    """A name that is not UTF-8 compiles; generated text shows it escaped, and
    dtc reads the DTS back to the same DTB."""
    name = os.fsdecode(b"board\xff.msi")
    compiles(tmp_path, BOARD, name=name)
    dts = dts_of(tmp_path)
    assert "board\\xff.msi" in dts
    dtb = subprocess.run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", "-", str(tmp_path / "out" / "system.dts")],
                         capture_output=True, check=True).stdout
    assert dtb == (tmp_path / "out" / "system.dtb").read_bytes()
    deps = dtmsi(tmp_path, "compile", name, "-o", "out", "-M", "out/deps.d")
    assert deps.rc == 0
    assert b"board\xff.msi" in (tmp_path / "out" / "deps.d").read_bytes()


def test_sum_of_5000_terms(tmp_path: Path) -> None:
    text = "const S = " + " + ".join(["1"] * 5000) + ";\n" + with_chosen('property "sum" = S;')
    compiles(tmp_path, text)
    assert "sum = <0x1388>;" in dts_of(tmp_path)


def test_3000_shifts(tmp_path: Path) -> None:
    text = "const S = 1" + " << 0" * 2999 + " << 1;\n" + with_chosen('property "shifted" = S;')
    compiles(tmp_path, text)
    assert "shifted = <2>;" in dts_of(tmp_path)


def test_vectors_of_1500_terms(tmp_path: Path) -> None:
    vectors = " + ".join(["0"] * 1499 + ["cpus"]) + " + 4"
    text = BOARD.replace("msi native;", "msi native; cpus 2;") + (
        f"policy wide {{ prefer msix; vectors {vectors}; }}\napply wide to class 0x020000;\n"
    )
    compiles(tmp_path, text)
    nic = json.loads((tmp_path / "out" / "allocation.json").read_text())["functions"][0]
    assert (nic["name"], nic["vectors_requested"]) == ("nic0", 6)


def test_chain_of_1000_includes(tmp_path: Path) -> None:
    files: dict[str, str | bytes | Callable[[Path], None]] = {
        f"i{k}.msi": f'include "i{k + 1}.msi";\n' for k in range(1000)
    }
    files["i1000.msi"] = "const END = 1;\n"
    # in.msi and i0 .. i14 are open when i14 includes i15: 16 deep.
    last = MAX_INCLUDE_DEPTH - 2
    refused(tmp_path, 'include "i0.msi";\n' + BOARD, "E117", "1:9", f"nested more than {MAX_INCLUDE_DEPTH} deep",
            files=files, file=f"i{last}.msi")


def _base(name: str) -> str:
    return BOARD.replace("msi native;", f'msi native; base "{name}";')


def test_base_dts_nested_900_deep(tmp_path: Path) -> None:
    dts = "/dts-v1/;\n/ {\n" + "".join(f"n{k} {{\n" for k in range(899)) + "};\n" * 900
    text = _base("deep.dts")
    # The 65th node body: the root's and 64 more.
    refused(tmp_path, text, "E915", at(text, '"deep.dts"'),
            f"deep.dts:{at(dts, 'n63 {')[:-2]}:5: nodes nested more than {MAX_TREE_DEPTH} deep",
            files={"deep.dts": dts})


@pytest.mark.parametrize("value", ["<3 3>", '"3"', "/bits/ 64 <3>", "<>"])
def test_base_tree_cells_property_not_one_cell(tmp_path: Path, value: str) -> None:
    """Found by tests/fuzz: a '#interrupt-cells' of two cells was merged into
    output on which dtc then dies (livetree.c propval_cell assertion)."""
    dts = ("/dts-v1/;\n/ {\n\t#address-cells = <2>;\n\t#size-cells = <2>;\n"
           f"\tintc: interrupt-controller@8000000 {{\n\t\t#interrupt-cells = {value};\n\t}};\n}};\n")
    text = _base("board.dts")
    refused(tmp_path, text, "E901", at(text, '"board.dts"'),
            "/interrupt-controller@8000000: '#interrupt-cells' is not a single 32-bit cell", files={"board.dts": dts})
    # Control: the same tree with one cell is taken.
    (tmp_path / "board.dts").write_text(dts.replace(value, "<3>"))
    assert dtmsi(tmp_path, "compile", "in.msi", "-o", "out").rc == 0


def test_base_tree_interrupt_parent_not_one_cell(tmp_path: Path) -> None:
    """Found by tests/fuzz: 'interrupt-parent = <>' made dtc die on the output."""
    dts = "/dts-v1/;\n/ {\n\t#address-cells = <2>;\n\t#size-cells = <2>;\n\tinterrupt-parent = <>;\n};\n"
    text = _base("board.dts")
    refused(tmp_path, text, "E901", at(text, '"board.dts"'), "/: 'interrupt-parent' is not a single 32-bit cell",
            files={"board.dts": dts})


def test_bridge_with_a_non_bridge_class_is_named_pci(tmp_path: Path) -> None:
    """Found by tests/fuzz: a pci-bridge whose class code is not a bridge's
    was named by its class ('accelerator@2') with device_type "pci", and dtc
    warned (pci_bridge). Now its node is 'pci@2', and dtc is silent."""
    bridge = "    pci-bridge br0 @ 02.0 { id 8086:10d3 class 0x120000; }\n"
    text = BOARD.replace("    endpoint nic0", bridge + "    endpoint nic0")
    compiles(tmp_path, text)
    assert "br0: pci@2 {" in dts_of(tmp_path)
    r = subprocess.run(["dtc", "-I", "dts", "-O", "dtb", "-o", "/dev/null", str(tmp_path / "out" / "system.dts")],
                       capture_output=True, text=True, check=True)
    assert r.stderr == ""


def _dtb(depth: int) -> bytes:
    """A blob whose nodes nest ``depth`` below the root (names 'a')."""
    be = struct.Struct(">I").pack
    body = be(1) + b"\0\0\0\0" + (be(1) + b"a\0\0\0") * depth + be(2) * (depth + 1) + be(9)
    off_struct = 40 + 16
    header = struct.pack(">10I", 0xD00DFEED, off_struct + len(body), off_struct, off_struct + len(body), 40,
                         17, 16, 0, 0, len(body))
    return header + b"\0" * 16 + body


def test_base_dtb_nested_5000_deep(tmp_path: Path) -> None:
    text = _base("deep.dtb")
    refused(tmp_path, text, "E915", at(text, '"deep.dtb"'), f"nodes nested more than {MAX_TREE_DEPTH} deep",
            files={"deep.dtb": _dtb(5000)})


def test_base_dtb_63_below_the_root_is_read(tmp_path: Path) -> None:
    """Control: 64 levels with the root is Linux's limit and is accepted."""
    compiles(tmp_path, _base("deep.dtb"), files={"deep.dtb": _dtb(MAX_TREE_DEPTH - 1)})
    assert dts_of(tmp_path).count("a {") == MAX_TREE_DEPTH - 1


def test_800_parentheses(tmp_path: Path) -> None:
    text = "const X = " + "(" * 800 + "1" + ")" * 800 + ";\n" + BOARD
    col = len("const X = ") + MAX_EXPR_DEPTH + 1  # the first '(' past the limit
    refused(tmp_path, text, "E116", f"1:{col}", f"nested more than {MAX_EXPR_DEPTH} deep")


def test_parentheses_up_to_the_limit_compile(tmp_path: Path) -> None:
    depth = MAX_EXPR_DEPTH - 1  # one level is left for the unary minus inside
    text = "const X = " + "(" * depth + "-1 + 3" + ")" * depth + ";\n" + with_chosen('property "x" = X;')
    compiles(tmp_path, text)
    assert "x = <2>;" in dts_of(tmp_path)


def test_2000_nested_blocks(tmp_path: Path) -> None:
    text = 'node "/chosen" ' + '{ node "a" ' * 1999 + "{ }" + " }" * 1999 + "\n" + BOARD
    refused(tmp_path, text, "E116", at(text, "{", MAX_BLOCK_DEPTH), f"blocks nested more than {MAX_BLOCK_DEPTH} deep")


def test_bridges_nested_60_deep_compile(tmp_path: Path) -> None:
    """Deep but valid nesting compiles: 60 PCI-to-PCI bridges in a chain."""
    depth = 60
    chain = "".join(
        f"{'    ' * k}pci-bridge br{k} @ 00.0 {{ id 1b36:0001 class 0x060400;\n" for k in range(depth)
    )
    chain += "    " * depth + "endpoint deep @ 00.0 { id 8086:10d3 class 0x020000; bar 0 mem32 4K; msi 1; }\n"
    chain += "".join(f"{'    ' * k}}}\n" for k in reversed(range(depth)))
    text = BOARD.replace("size 16M", "size 256M").replace("buses 0..15;", "buses 0..255;")
    text = text.replace("    endpoint nic0", chain + "    endpoint nic0")
    compiles(tmp_path, text, seconds=30)
    dts = dts_of(tmp_path)
    assert dts.count(": pci@0 {") == depth  # root, host bridge, 60 bridges, endpoint: 63 levels
    subprocess.run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", "/dev/null", str(tmp_path / "out" / "system.dts")],
                   check=True)


# ---------------------------------------------------------------- hangs and memory (bullet 2)


def test_include_of_dev_zero(tmp_path: Path) -> None:
    text = 'include "/dev/zero";\n' + BOARD
    refused(tmp_path, text, "E120", at(text, '"/dev/zero"'), "a character device, not a regular file")


def test_include_of_a_fifo(tmp_path: Path) -> None:
    text = 'include "pipe";\n' + BOARD
    refused(tmp_path, text, "E120", at(text, '"pipe"'), "a FIFO, not a regular file", files={"pipe": fifo})


def test_base_of_dev_zero(tmp_path: Path) -> None:
    text = _base("/dev/zero")
    refused(tmp_path, text, "E901", at(text, '"/dev/zero"'), "a character device, not a regular file")


def test_base_of_a_fifo(tmp_path: Path) -> None:
    text = _base("pipe")
    refused(tmp_path, text, "E901", at(text, '"pipe"'), "a FIFO, not a regular file", files={"pipe": fifo})


@pytest.mark.parametrize("target", ["/dev/zero", "pipe"])
def test_base_tree_include_of_a_special_file(tmp_path: Path, target: str) -> None:
    dts = f'/dts-v1/;\n/include/ "{target}"\n/ {{ }};\n'
    text = _base("board.dts")
    refused(tmp_path, text, "E901", at(text, '"board.dts"'), f'board.dts:2:1: cannot read /include/ "{target}"',
            files={"board.dts": dts, "pipe": fifo})


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_top_level_input_not_a_regular_file(tmp_path: Path, kind: str) -> None:
    if kind == "fifo":
        os.mkfifo(tmp_path / "board.msi")
        name, what = "board.msi", "a FIFO"
    else:
        name, what = "/dev/zero", "a character device"
    r = dtmsi(tmp_path, "compile", name, "-o", "out", timeout=30)
    assert r.rc == 1, r.stderr
    assert r.stderr.startswith(f"{name}:1:1: error[E120]: cannot read '{name}': it is {what}"), r.stderr
    assert not (tmp_path / "out").exists()


def test_input_larger_than_the_limit(tmp_path: Path) -> None:
    """A (sparse) file past MAX_INPUT_BYTES is refused from its size, unread."""
    with open(tmp_path / "huge.msi", "wb") as f:
        f.truncate(MAX_INPUT_BYTES + 1)
    text = 'include "huge.msi";\n' + BOARD
    refused(tmp_path, text, "E120", at(text, '"huge.msi"'), f"larger than the limit of {MAX_INPUT_BYTES} bytes",
            seconds=10, peak_mb=100)


def test_base_tree_larger_than_the_limit(tmp_path: Path) -> None:
    with open(tmp_path / "huge.dts", "wb") as f:
        f.truncate(MAX_BASE_TREE_BYTES + 1)
    text = _base("huge.dts")
    refused(tmp_path, text, "E901", at(text, '"huge.dts"'), f"larger than the limit of {MAX_BASE_TREE_BYTES} bytes",
            seconds=10, peak_mb=100)


def test_repeat_over_a_billion(tmp_path: Path) -> None:
    text = "repeat i in 0..1000000000 { const Q = 1; }\n" + BOARD
    refused(tmp_path, text, "E118", at(text, "0..1000000000"), f"(at most {MAX_REPEAT})")


def test_nested_repeat_1048576(tmp_path: Path) -> None:
    text = "repeat 1048576 { repeat 1048576 { const Q = 1; } }\n" + BOARD
    refused(tmp_path, text, "E119", "1:1", "statements after expanding", seconds=60)


def test_30_templates_each_using_the_previous_twice(tmp_path: Path) -> None:
    templates = "template t0 { const Q = 1; }\n" + "".join(
        f"template t{k} {{ use t{k - 1}; use t{k - 1}; }}\n" for k in range(1, 31)
    )
    text = templates + BOARD.replace("msix 8", "use t30; msix 8")
    refused(tmp_path, text, "E119", at(text, "use t30;"), "statements after expanding", seconds=60)


def test_squaring_constants(tmp_path: Path) -> None:
    text = "const C0 = 3;\n" + "".join(f"const C{k} = C{k - 1} * C{k - 1};\n" for k in range(1, 40)) + BOARD
    # 3 ** 64 fits in 128 bits, 3 ** 128 does not.
    refused(tmp_path, text, "E115", at(text, "C6 * C6"), "wider than 128 bits")


def test_partition_cpus_of_huge_ranges(tmp_path: Path) -> None:
    text = BOARD + "partition p { cpus 0..0xffff, 0..0xffff, 0..0xffff; owns nic0; }\n"
    refused(tmp_path, text, "E118", at(text, "0..0xffff, 0..0xffff;"),  # the second range
            f"more than {MAX_CPU_LIST} CPU numbers")


def test_interpolation_width_300000000(tmp_path: Path) -> None:
    text = "const V = 1;\n" + BOARD.replace("endpoint nic0", 'endpoint "n{V:300000000}"')
    refused(tmp_path, text, "E122", at(text, '"n{V:300000000}"'), f"is above {MAX_INTERPOLATION_WIDTH}")


@pytest.mark.parametrize("size_mb", [5, 50])
def test_block_comment_of_5_and_50_mb(tmp_path: Path, size_mb: int) -> None:
    """Once ~160 bytes of memory per byte of comment; now the text itself."""
    text = "/* " + "x" * (size_mb * MB) + " */\n" + BOARD
    r = compiles(tmp_path, text, peak_mb=50 + 2 * size_mb)
    assert r.rc == 0


def test_one_line_50_mb_file_diagnostics_bounded(tmp_path: Path) -> None:
    r = refused(tmp_path, "@" * (50 * MB), "E123", "1:1", f"longer than {MAX_STATEMENT_TOKENS} words", peak_mb=400)
    assert max(len(line) for line in r.stderr.splitlines()) <= MAX_SNIPPET_COLUMNS + 10


def test_one_50_mb_word_diagnostics_bounded(tmp_path: Path) -> None:
    r = refused(tmp_path, "a" * (50 * MB) + ";\n" + BOARD, "E108", "1:1", "unknown statement", peak_mb=600)
    assert max(len(line) for line in r.stderr.splitlines()) <= 500


def test_100k_bad_statements_give_bounded_diagnostics(tmp_path: Path) -> None:
    text = BOARD + "oops;\n" * 100_000
    r = refused(tmp_path, text, "E108", at(text, "oops"), "unknown statement 'oops'", peak_mb=400, seconds=60,
                stderr_bytes=200 * MAX_DIAGNOSTICS)
    assert f"dtmsi: {100_000 - MAX_DIAGNOSTICS} more diagnostic(s) not shown" in r.stderr
    assert r.stderr.count("error[E108]") == MAX_DIAGNOSTICS


# ---------------------------------------------------------------- wrong output, no error (bullet 3)


def test_repeat_from_minus_one(tmp_path: Path) -> None:
    """'in -1..0' is 'in' and the range -1..0, not the range (in - 1)..0;
    and the minus binds as a unary one: -7 / 2 is (-7) / 2 = -4."""
    body = 'repeat i in -7 / 2 .. -3 { endpoint "port{i}" @ (i + 6, 0) { id 8086:10d3 class 0x020000; msi 1; } }\n'
    compiles(tmp_path, BOARD.replace("    endpoint nic0", "    " + body + "    endpoint nic0"))
    names = {f["name"]: f["bdf"] for f in json.loads((tmp_path / "out" / "allocation.json").read_text())["functions"]}
    assert names == {"port-4": "0000:00:02.0", "port-3": "0000:00:03.0", "nic0": "0000:00:01.0"}


def test_repeat_from_minus_one_to_zero(tmp_path: Path) -> None:
    body = 'repeat i in -1..0 { endpoint "port{i}" @ (i + 3, 0) { id 8086:10d3 class 0x020000; msi 1; } }\n'
    compiles(tmp_path, BOARD.replace("    endpoint nic0", "    " + body + "    endpoint nic0"))
    names = {f["name"] for f in json.loads((tmp_path / "out" / "allocation.json").read_text())["functions"]}
    assert names == {"port-1", "port0", "nic0"}


def test_bad_label_on_a_raw_node(tmp_path: Path) -> None:
    text = 'node bad-label "/chosen" { property "x" = 1; }\n' + BOARD
    refused(tmp_path, text, "E111", at(text, "bad-label"), "'bad-label' is not a valid device-tree label")


@pytest.mark.parametrize("setting", ['model "board\\0rev2";', 'compatible "a,b\\0c";'])
def test_string_with_a_nul(tmp_path: Path, setting: str) -> None:
    text = BOARD.replace("msi native;", f"msi native; {setting}")
    literal = setting.split(" ", 1)[1].rstrip(";")
    refused(tmp_path, text, "E111", at(text, literal), "cannot hold a NUL")


def test_model_without_nul_is_dtc_clean(tmp_path: Path) -> None:
    """Control: the same model without the NUL compiles and dtc is silent."""
    compiles(tmp_path, BOARD.replace("msi native;", 'msi native; model "board rev2";'))
    r = subprocess.run(["dtc", "-I", "dtb", "-O", "dts", "-o", "/dev/null", str(tmp_path / "out" / "system.dtb")],
                       capture_output=True, text=True, check=True)
    assert r.stderr == ""
