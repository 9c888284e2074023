"""Reading base trees: parse_dts / read_dtb agree with dtc on every byte."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from dtmsi.devicetree.basetree import BaseTreeError, parse_dts, parse_dts_file, read_dtb
from dtmsi.devicetree.dtb import render_dtb
from dtmsi.devicetree.dts import render_dts
from dtmsi.devicetree.tree import Bytes, Cells, Str, find_node_by_label, find_node_by_path

DtcRun = Callable[..., bytes]
REPO = Path(__file__).resolve().parents[2]

VIRT = """\
// A board in the style of QEMU's arm64 "virt" machine.
/dts-v1/;

/memreserve/ 0x48000000 0x100000;

/ {
	interrupt-parent = <&gic>;	/* forward reference */
	model = "linux,dummy-virt";
	compatible = "linux,dummy-virt";
	#address-cells = <0x02>;
	#size-cells = <0x02>;

	psci {
		compatible = "arm,psci-1.0", "arm,psci-0.2", "arm,psci";
		method = "hvc";
		cpu_suspend = <0xc4000001>;
		cpu_off = <0x84000002>;
		cpu_on = <0xc4000003>;
	};

	memory@40000000 {
		device_type = "memory";
		reg = <0x00 0x40000000 0x00 (1024 * 1024 * 1024)>;
	};

	cpus {
		#address-cells = <1>;
		#size-cells = <0>;

		cpu0: cpu@0 {
			device_type = "cpu";
			compatible = "arm,cortex-a57";
			reg = <0>;
			enable-method = "psci";
		};

		cpu1: cpu@1 {
			device_type = "cpu";
			compatible = "arm,cortex-a57";
			reg = <1>;
			enable-method = "psci";
		};
	};

	gic: intc@8000000 {
		compatible = "arm,gic-v3";
		reg = <0x0 0x08000000 0x0 0x10000>,	// distributor
			<0x0 0x080a0000 0x0 0xf60000>;	// redistributors
		#interrupt-cells = <3>;
		#address-cells = <2>;
		#size-cells = <2>;
		interrupt-controller;
		ranges;

		its: msi-controller@8080000 {
			compatible = "arm,gic-v3-its";
			reg = <0x0 0x08080000 0x0 0x20000>;
			msi-controller;
			#msi-cells = <1>;
		};
	};

	apb_pclk: apb-pclk {
		compatible = "fixed-clock";
		#clock-cells = <0>;
		clock-frequency = <24000000>;
		clock-output-names = "clk24mhz";
	};

	uart0: pl011@9000000 {
		compatible = "arm,pl011", "arm,primecell";
		reg = <0x0 0x09000000 0x0 0x1000>;
		interrupts = <0 1 4>;
		clocks = <&apb_pclk &apb_pclk>;
		clock-names = "uartclk", "apb_pclk";
	};

	timer {
		compatible = "arm,armv8-timer", "arm,armv7-timer";
		interrupts = <1 13 0xf04>, <1 14 0xf04>, <1 11 0xf04>, <1 10 0xf04>;
		always-on;
	};

	chosen {
		stdout-path = &uart0;
		linux,initrd-start = /bits/ 64 <0x48000000>;
	};
};

&uart0 {
	status = "okay";
};
"""


def _same_as_dtc(text: str, dtc: DtcRun, path: Path | None = None) -> None:
    """Our tree, written either way, gives dtc's blob of the original text."""
    tree = parse_dts_file(path) if path else parse_dts(text, "board.dts")
    expected = dtc(path.read_text() if path else text, *(["-i", str(path.parent)] if path else []))
    assert render_dtb(tree) == expected
    assert dtc(render_dts(tree)) == expected


def test_virt_board(dtc: DtcRun) -> None:
    _same_as_dtc(VIRT, dtc)


def test_virt_board_values() -> None:
    tree = parse_dts(VIRT, "board.dts")
    assert tree.reservations[0].address == 0x48000000
    gic = find_node_by_label(tree, "gic")
    assert gic is not None and gic.name == "intc@8000000"
    its = find_node_by_path(tree, "/intc@8000000/msi-controller@8080000")
    assert its is not None and find_node_by_label(tree, "its") is its
    mem = find_node_by_path(tree, "/memory@40000000")
    assert mem is not None and mem.prop("reg") is not None
    assert mem.prop("reg").chunks == (Cells((0, 0x40000000, 0, 0x40000000)),)  # type: ignore[union-attr]
    uart = find_node_by_label(tree, "uart0")
    assert uart is not None and [p.name for p in uart.properties][-1] == "status"


PROJECT_FILES = [
    "examples/qemu-virt/qemu-virt-base.dts",
    "tests/data/domain-4.5-native.dts",
    "tests/data/domain-4.6-papr.dts",
]


@pytest.mark.parametrize("path", PROJECT_FILES)
def test_project_files(path: str, dtc: DtcRun) -> None:
    file = REPO / path
    if not file.exists():
        pytest.skip(f"{path} is not in this checkout")
    _same_as_dtc("", dtc, file)


def test_overrides_and_deletes(dtc: DtcRun) -> None:
    text = """\
/dts-v1/;
/ {
	a: node-a {
		p1 = <1>;
		p2 = <2>;
		p3 = <3>;
		child-1 { x = <1>; };
		child-2 { y = <2>; };
	};
	b: node-b { q = "b"; };
	gone: node-c { r; };
};
&a {
	/delete-property/ p2;
	p4 = <4>;
	/delete-node/ child-1;
	child-2 { z = <3>; };
};
extra: &{/node-b} { q = "b2"; };
/ {
	uses = <&extra &a>, &b;
	node-a {
		p2 = <22>;	/* revived in its old place */
		child-1 { back; };
	};
};
/delete-node/ &gone;
"""
    _same_as_dtc(text, dtc)
    tree = parse_dts(text, "t.dts")
    a = find_node_by_label(tree, "a")
    assert a is not None
    assert [p.name for p in a.properties] == ["p1", "p2", "p3", "p4"]
    assert [c.name for c in a.children] == ["child-1", "child-2"]
    assert find_node_by_label(tree, "gone") is None
    b = find_node_by_path(tree, "/node-b")
    assert b is not None and b.labels == ["b", "extra"]


def test_expressions(dtc: DtcRun) -> None:
    text = """\
/dts-v1/;
/ {
	e = <(1 + 2 * 3) ((1 + 2) * 3) (7 / 2) (7 % 4) (1 << 4) (0x100 >> 4) (5 - 7)
		(~0) (-1) (!0) (!5) (6 & 3) (6 | 3) (6 ^ 3) (1 && 0) (1 || 0)
		(3 < 4) (3 > 4) (3 <= 3) (3 >= 4) (2 == 2) (2 != 2) (1 ? 10 : 20) (0 ? 10 : 0 ? 1 : 2)
		'a' '\\n' '\\x41' '\\101' 010 0x1fU 7UL 8ULL 9LL 10L>;
	b8 = /bits/ 8 <(-1) 0xff 'z'>;
	b16 = /bits/ 16 <(0x10000 - 1) (-2)>;
	b64 = /bits/ 64 <(1 << 63) (-1) 0xffffffffffffffff>;
	big = <(0xffffffff + 1 - 1) (0x100000000 >> 1)>;
	s = "tab\\t, quote \\", octal \\101, hex \\x42, bell \\a";
	bytes = [00 0A0b 0C];
};
"""
    _same_as_dtc(text, dtc)


def test_include_relative_to_including_file(tmp_path: Path, dtc: DtcRun) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "common.dtsi").write_text('/ { common = "yes"; };\n')
    (tmp_path / "sub" / "board.dtsi").write_text(
        '/include/ "../common.dtsi"\n/ { soc: soc { compatible = "simple-bus"; }; };\n'
    )
    (tmp_path / "sub" / "props.dtsi").write_text("from-include = <7>;\n")
    main = tmp_path / "main.dts"
    main.write_text(
        '/dts-v1/;\n/include/ "sub/board.dtsi"\n'
        '&soc { /include/ "sub/props.dtsi"\n};\n/ { model = "m"; };\n'
    )
    _same_as_dtc("", dtc, main)
    tree = parse_dts_file(main)
    soc = find_node_by_label(tree, "soc")
    assert soc is not None and soc.prop("from-include") is not None
    # parse_dts with a base directory instead of a file
    tree2 = parse_dts(main.read_text(), "main.dts", base_dir=tmp_path)
    assert render_dtb(tree2) == render_dtb(tree)


def test_read_dtb_round_trip(dtc: DtcRun) -> None:
    blob = dtc(VIRT)
    tree = read_dtb(blob)
    assert render_dtb(tree) == blob
    # References are numbers now; dtc's clocks check wants "<&label>" there.
    assert dtc(render_dts(tree), "-W", "no-clocks_property") == blob
    root = tree.root
    assert root.prop("model").chunks == (Str("linux,dummy-virt"),)  # type: ignore[union-attr]
    gic = find_node_by_path(tree, "/intc@8000000")
    assert gic is not None and gic.prop("phandle").chunks == (Cells((1,)),)  # type: ignore[union-attr]
    assert gic.prop("interrupt-controller").chunks == ()  # type: ignore[union-attr]
    chosen = find_node_by_path(tree, "/chosen")
    assert chosen is not None
    assert chosen.prop("stdout-path").chunks == (Str("/pl011@9000000"),)  # type: ignore[union-attr]
    assert chosen.prop("linux,initrd-start").chunks == (Cells((0, 0x48000000)),)  # type: ignore[union-attr]
    psci = find_node_by_path(tree, "/psci")
    assert psci is not None
    assert psci.prop("compatible").chunks == (  # type: ignore[union-attr]
        Str("arm,psci-1.0"), Str("arm,psci-0.2"), Str("arm,psci"),
    )  # fmt: skip
    assert tree.reservations[0].size == 0x100000
    assert tree.boot_cpuid_phys == 0


def test_read_dtb_value_guess(dtc: DtcRun) -> None:
    blob = dtc('/dts-v1/;\n/ { odd = [01 02 03]; nul = [00 00 00 00]; one = "";\n'
               '      str = "ab", ""; cell = [61 62 63 64]; };\n')  # fmt: skip
    root = read_dtb(blob).root
    chunks = {p.name: p.chunks for p in root.properties}
    assert chunks["odd"] == (Bytes(b"\x01\x02\x03"),)
    assert chunks["nul"] == (Cells((0,)),)  # too many NULs for a string
    assert chunks["one"] == (Bytes(b"\0"),)
    assert chunks["str"] == (Str("ab"), Str(""))
    assert chunks["cell"] == (Cells((0x61626364,)),)  # no NUL at the end: not a string


def test_read_dtb_labels_from_symbols(dtc: DtcRun) -> None:
    tree = read_dtb(dtc(VIRT, "-@"))
    its = find_node_by_label(tree, "its")
    assert its is not None and its.name == "msi-controller@8080000"


def test_read_dtb_errors() -> None:
    with pytest.raises(BaseTreeError, match="bad magic"):
        read_dtb(b"\0" * 64, "x.dtb")
    with pytest.raises(BaseTreeError, match="too short"):
        read_dtb(b"\xd0\x0d\xfe\xed")
    blob = render_dtb(parse_dts(VIRT, "board.dts"))
    with pytest.raises(BaseTreeError, match="truncated"):
        read_dtb(blob[:-10])


# ---- errors, with where they are -----------------------------------------------


def _error(text: str, filename: str = "bad.dts", **kw: object) -> BaseTreeError:
    with pytest.raises(BaseTreeError) as info:
        parse_dts(text, filename, **kw)  # type: ignore[arg-type]
    return info.value


def test_syntax_error_position() -> None:
    e = _error("/dts-v1/;\n/ {\n\ta = <1>\n\tb = <2>;\n};\n")
    assert (e.filename, e.line, e.column) == ("bad.dts", 4, 2)
    assert "syntax error" in e.message and "';'" in e.message
    assert str(e).startswith("bad.dts:4:2: syntax error")


def test_bad_character_position() -> None:
    e = _error("/dts-v1/;\n/ {\n  a = $;\n};\n")
    assert (e.line, e.column) == (3, 7)


def test_unterminated() -> None:
    e = _error("/dts-v1/;\n/ {\n  a = <1>;\n")
    assert "end of the file" in e.message and e.line == 3


def test_cpp_directive_is_refused() -> None:
    e = _error("/dts-v1/;\n#include <dt-bindings/gpio/gpio.h>\n/ { };\n")
    assert (e.line, e.column) == (2, 2)
    assert "#include" in e.message and "preprocessor" in e.message and "cpp" in e.message
    e = _error("/dts-v1/;\n  #define X 1\n/ { };\n")
    assert e.line == 2 and "#define" in e.message


def test_property_names_starting_with_hash_are_not_directives(dtc: DtcRun) -> None:
    _same_as_dtc("/dts-v1/;\n/ {\n#address-cells = <1>;\n#size-cells = <0>;\n};\n", dtc)


def test_cpp_line_markers_map_errors_back() -> None:
    text = '# 1 "board.dts"\n# 1 "<built-in>"\n# 1 "board.dts"\n/dts-v1/;\n\n/ {\n\ta = <1>\n};\n'
    e = _error(text, "board.pp.dts")
    assert (e.filename, e.line) == ("board.dts", 5)


def test_cpp_output_parses(dtc: DtcRun) -> None:
    text = '# 1 "board.dts"\n/dts-v1/;\n# 3 "board.dts"\n/ { a = <1>; };\n'
    assert render_dtb(parse_dts(text, "x")) == dtc(text)


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ("/dts-v1/;\n/plugin/;\n&a { };\n", 2, 1, "/plugin/"),
        ("/dts-v1/;\n/ { };\n&nowhere { x; };\n", 3, 1, "'nowhere' not found"),
        ("/dts-v1/;\n/ { };\n/delete-node/ &{/x};\n", 3, 15, "'/x' not found"),
        ("/dts-v1/;\n/ {\n\tn { };\n\tp = <1>;\n};\n", 4, 2, "properties must precede subnodes"),
        ("/dts-v1/;\n/ { p = <(1 / 0)>; };\n", 2, 11, "division by zero"),
        ("/dts-v1/;\n/ { p = /bits/ 8 <256>; };\n", 2, 9, "out of range for 8-bit"),
        ("/dts-v1/;\n/ { p = /bits/ 12 <1>; };\n", 2, 16, "8, 16, 32 or 64"),
        ("/dts-v1/;\n/ { p = /bits/ 16 <&a>; };\n", 2, 9, "32-bit elements"),
        ("/dts-v1/;\n/ { p = <08>; };\n", 2, 10, "octal"),
        ("/dts-v1/;\n/ { p = <0x10000000000000000>; };\n", 2, 10, "out of range"),
        ("/dts-v1/;\n/ { p = <'ab'>; };\n", 2, 10, "2 characters"),
        ("/dts-v1/;\n/ { p = [0]; };\n", 2, 9, "odd number"),
        ('/dts-v1/;\n/ { p = /incbin/("x"); };\n', 2, 9, "/incbin/"),
        ("/dts-v1/;\n/ { /omit-if-no-ref/ n { }; };\n", 2, 5, "/omit-if-no-ref/"),
        ("/ { };\n", 1, 1, "/dts-v1/"),
        ("/dts-v1/;\n", 2, 1, "no root node"),
        ("/dts-v1/;\n/ {\n\tp = <1>;\n\tp = <2>;\n};\n", 4, 2, "duplicate property name 'p'"),
        ("/dts-v1/;\n/ {\n\tn { };\n\tn { };\n};\n", 4, 2, "duplicate node name 'n'"),
        ('/dts-v1/;\n/include/ "missing.dtsi"\n', 2, 1, "cannot read"),
    ],
)
def test_errors(text: str, line: int, column: int, message: str, tmp_path: Path) -> None:
    e = _error(text, base_dir=tmp_path)
    assert message in e.message
    assert (e.line, e.column) == (line, column), str(e)


def test_include_cycle(tmp_path: Path) -> None:
    (tmp_path / "a.dtsi").write_text('/include/ "b.dtsi"\n')
    (tmp_path / "b.dtsi").write_text('/ { };\n/include/ "a.dtsi"\n')
    main = tmp_path / "main.dts"
    main.write_text('/dts-v1/;\n/include/ "a.dtsi"\n')
    with pytest.raises(BaseTreeError) as info:
        parse_dts_file(main)
    assert "includes itself" in info.value.message
    assert info.value.filename.endswith("b.dtsi") and info.value.line == 2


def test_error_inside_include_names_that_file(tmp_path: Path) -> None:
    (tmp_path / "inc.dtsi").write_text("/ {\n\tbroken = <1>\n};\n")
    e = _error('/dts-v1/;\n/include/ "inc.dtsi"\n', "main.dts", base_dir=tmp_path)
    assert e.filename.endswith("inc.dtsi") and e.line == 3
