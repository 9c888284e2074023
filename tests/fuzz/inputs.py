"""Grammar-aware inputs for the fuzzers: Hypothesis strategies and byte mutators.

Three families, each built on dtmsi's own grammars and examples:

- ``programs()``: .msi text generated statement by statement from the
  language's shape (``WORD arg* ;`` or ``WORD arg* { ... }``) with the real
  vocabulary, plausible and boundary numbers, names, strings, ranges and
  punctuation, so most inputs get past the parser into lowering and checks;
- ``mutated_example()``: a bundled example (with its includes and base tree)
  whose tokens are deleted, duplicated, swapped or replaced;
- ``mutated_base()``: the qemu-virt example with its base tree's DTS tokens
  mutated, or its DTB (made by dtc) with bytes and header fields changed.

``mutate_bytes`` is the same mutation driven by a byte string, for atheris.
"""

from __future__ import annotations

import re
import struct
import subprocess
from functools import cache
from pathlib import Path

from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

WORDS = (
    "platform", "host-bridge", "endpoint", "root-port", "switch", "downstream", "pci-bridge", "pcie-to-pci-bridge",
    "policy", "apply", "pe", "partition", "unassigned", "node", "property", "const", "template", "use", "repeat",
    "include", "msi", "msix", "intx", "bar", "id", "class", "revision", "window", "buses", "bus", "domain", "map",
    "map-mask", "parent", "rid", "ecam", "papr", "opal", "buid", "phbid", "size", "cpu", "pci", "mem32", "mem64",
    "io", "prefetchable", "vectors", "prefer", "up-front", "on-short", "degrade", "fallback", "fail", "owns",
    "cpus", "msi-budget", "stub-prefix", "sriov", "total-vfs", "vfs", "offset", "stride", "vf-id", "table", "pba",
    "base", "model", "compatible", "native", "firmware-composed", "hypervisor", "change-msi",
    "query-interrupt-source-number", "get-msi-64", "redistributor", "spi", "level", "edge", "irq", "no-swizzle",
    "quirk", "no-intx-disable", "no-64bit-msi", "ari", "interrupt-controller", "msi-controller", "gicv3",
    "gicv3-its", "fsl-msi", "x86-apic", "xics", "mpic", "generic", "generic-msi", "from", "to", "in", "min",
    "requested", "addr64", "maskable", "pe-total-msi", "msi-ranges", "A", "B", "C", "D", "none", "its", "gic",
    "nic0", "rp0", "sw0", "i", "cpus", "bits", "bytes"
)
NUMBERS = ("0", "1", "2", "7", "8", "31", "32", "255", "256", "0x7ff", "0xffff", "0x10000", "4K", "16M", "256M",
           "1G", "0x3000_0000", "0x4000_0000", "0xffffffff", "0x1_0000_0000", "0xffff_ffff_ffff_ffff",
           "0x1_0000_0000_0000_0000", "0b1010", "2048", "2049", "1048576")
PUNCT = ("@", "->", ",", "=", ".*", "..", "+", "-", "*", "/", "%", "<<", ">>", "&", "|", "^", "~", "(", ")",
         "[", "]")

# Tokens of each language (comments are dropped): mutations work on these.
_MSI_TOKEN = re.compile(
    r'//[^\n]*|/\*.*?\*/|"(?:[^"\\\n]|\\.)*"|[0-9a-fA-F]{4}:[0-9a-fA-F]{4}|\w[\w-]*(?:\.\w+)*|\.\.|\.\*|->|<<|>>|\S',
    re.S,
)
_DTS_TOKEN = re.compile(
    r'//[^\n]*|/\*.*?\*/|"(?:[^"\\\n]|\\.)*"|/[a-z0-9-]+/|&\w+|[#\w][\w,.@+#-]*:?|<<|>>|\S', re.S
)


def _number() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(NUMBERS), st.integers(0, 1 << 70).map(hex), st.integers(0, 300).map(str))


def _atom() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(WORDS),
        _number(),
        st.sampled_from(('"nic{i}"', '"/chosen"', '"x"', '"a\\x41"', '"{i:02x}"', '""', '"qemu-virt-base.dts"')),
        st.tuples(_number(), st.just(".."), _number()).map(" ".join),
        st.sampled_from(("00.0", "01.0", "1f.7", "8086:10d3", "1b36:0010")),
        st.sampled_from(PUNCT),
    )


@st.composite
def _statement(draw: st.DrawFn, depth: int) -> str:
    word = draw(st.sampled_from(WORDS))
    args = draw(st.lists(_atom(), max_size=6))
    if depth < 4 and draw(st.booleans()):
        body = draw(st.lists(_statement(depth + 1), max_size=4))
        return f"{word} {' '.join(args)} {{\n" + "".join(body) + "}\n"
    return f"{word} {' '.join(args)};\n"


HEAD = """\
platform "example,board" { msi native; }
gic = interrupt-controller gicv3 @ 0x0800_0000 size 64K { redistributor @ 0x080a_0000 size 0xf6_0000; }
its = msi-controller gicv3-its @ 0x0808_0000 size 128K { parent gic; }
"""


@st.composite
def programs(draw: st.DrawFn) -> dict[str, bytes]:
    """A generated .msi: sometimes after a valid head, sometimes inside a host bridge."""
    stmts = "".join(draw(st.lists(_statement(0), min_size=1, max_size=8)))
    where = draw(st.sampled_from(("top", "head", "bridge")))
    if where == "bridge":
        text = HEAD + (
            "host-bridge pcie0 ecam @ 0x3000_0000 size 16M {\n    buses 0..15;\n"
            "    window mem32 cpu 0x4000_0000 size 256M;\n    msi map rid 0x0000..0xffff -> its;\n" + stmts + "}\n"
        )
    else:
        text = (HEAD if where == "head" else "") + stmts
    return {"in.msi": text.encode()}


@cache
def _example_sets() -> tuple[tuple[str, tuple[tuple[str, bytes], ...]], ...]:
    out = []
    for d in sorted(EXAMPLES.iterdir()):
        files = tuple((p.name, p.read_bytes()) for p in sorted(d.iterdir()) if p.is_file())
        out.append((f"{d.name}.msi", files))
    return tuple(out)


def _mutate_tokens(text: str, ops: list[tuple[int, int, int, str]], dts: bool = False) -> str:
    toks = [t for t in (_DTS_TOKEN if dts else _MSI_TOKEN).findall(text) if not t.startswith(("//", "/*"))]
    for op, i, j, new in ops:
        if not toks:
            break
        i %= len(toks)
        j %= len(toks)
        if op == 0:
            del toks[i]
        elif op == 1:
            toks.insert(i, toks[i])
        elif op == 2:
            toks[i], toks[j] = toks[j], toks[i]
        elif op == 3:
            # Like for like most of the time (a number for a number, a word
            # for a word), so that many mutants still get past the parser.
            if toks[i][0].isdigit():
                toks[i] = NUMBERS[j % len(NUMBERS)]
            elif toks[i][0].isalpha() and j % 4:
                toks[i] = WORDS[j % len(WORDS)]
            else:
                toks[i] = new
        elif op == 4:
            toks.insert(i, new)
        elif j % 8 == 0:
            toks[i:] = toks[i : i + 1]  # truncate
        elif toks[i][0].isdigit():
            toks[i] = NUMBERS[j % len(NUMBERS)]
    # One line per statement, so diagnostics point at distinct lines.
    return "".join(t + ("\n" if t in (";", "{", "}") else " ") for t in toks)


def _ops(replacements: st.SearchStrategy[str]) -> st.SearchStrategy[list[tuple[int, int, int, str]]]:
    return st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 1 << 16), st.integers(0, 1 << 16), replacements),
        min_size=1,
        max_size=3,
    )


@st.composite
def mutated_example(draw: st.DrawFn) -> tuple[dict[str, bytes], str]:
    top, files = draw(st.sampled_from(_example_sets()))
    out = dict(files)
    # Mutate the top file or one of the others (an include or the base tree).
    target = draw(st.sampled_from([name for name, _ in files if not name.endswith(".dtb")]))
    dts = target.endswith(".dts")
    atoms = st.sampled_from(DTS_ATOMS) if dts else _atom()
    out[target] = _mutate_tokens(out[target].decode(), draw(_ops(atoms)), dts).encode()
    return out, top


@cache
def _virt() -> dict[str, bytes]:
    d = EXAMPLES / "qemu-virt"
    files = {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}
    dtb = subprocess.run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", "-", str(d / "qemu-virt-base.dts")],
                         capture_output=True, check=True).stdout
    files["qemu-virt-base.dtb"] = dtb
    return files


DTS_ATOMS = ("/", "{", "}", ";", "<", ">", "=", "&gic", "0x0", "0xffffffff", '"x"', "/include/", '"/dev/zero"',
             "/delete-node/", "/delete-property/", "label:", "[00 01]", "(1 << 70)", "n@0")


@st.composite
def mutated_base(draw: st.DrawFn) -> tuple[dict[str, bytes], str]:
    files = dict(_virt())
    if draw(st.booleans()):
        files["qemu-virt-base.dts"] = _mutate_tokens(
            files["qemu-virt-base.dts"].decode(), draw(_ops(st.sampled_from(DTS_ATOMS))), dts=True
        ).encode()
    else:
        files["qemu-virt.msi"] = files["qemu-virt.msi"].replace(b"qemu-virt-base.dts", b"qemu-virt-base.dtb")
        blob = bytearray(files["qemu-virt-base.dtb"])
        for where, value in draw(st.lists(st.tuples(st.integers(0, len(blob) - 1), st.integers(0, 255)),
                                          min_size=1, max_size=8)):
            blob[where] = value
        if draw(st.booleans()):  # a header field: totalsize, offsets, sizes, version
            field = draw(st.integers(1, 9))
            struct.pack_into(">I", blob, 4 * field, draw(st.sampled_from((0, 1, 40, 0x7FFFFFFF, 0xFFFFFFFF))))
        files["qemu-virt-base.dtb"] = bytes(blob)
    return files, "qemu-virt.msi"


def mutate_bytes(data: bytes) -> tuple[dict[str, bytes], str]:
    """atheris's input -> an input set: the first byte picks an example, the
    next ones drive token mutations, the rest is spliced in as raw text."""
    sets = _example_sets()
    if not data:
        return dict(sets[0][1]), sets[0][0]
    top, files = sets[data[0] % len(sets)]
    out = dict(files)
    text = out[top].decode()
    ops: list[tuple[int, int, int, str]] = []
    k = 1
    while k + 3 <= len(data) and len(ops) < 4:
        op, i, j = data[k] % 6, data[k + 1] * 97, data[k + 2] * 89
        k += 3
        ops.append((op, i, j, data[k : k + 8].decode("utf-8", "replace")))
        k += 8
    out[top] = _mutate_tokens(text, ops).encode("utf-8", "surrogateescape")
    return out, top
