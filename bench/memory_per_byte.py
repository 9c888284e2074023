"""Peak memory per input byte, on 1, 10 and 50 MB inputs.

    python -m bench.memory_per_byte [--sizes 1,10,50] [--work DIR]

Three inputs per size, each run as a child process whose peak RSS comes from
GNU time (``/usr/bin/time -f %M``): a file that is one block comment (then a small valid board), a
realistic file (bench/gen.py's flat topology, as many functions as fill the
size) compiled with ``dtmsi check``, and the same realistic file through the
parser alone (``dtmsi.parser.parse_statements``: the tokenizer and parser,
one top-level statement at a time). A full check of the 50 MB realistic
file is refused by design (it expands past MAX_EXPANSION), so that row
shows the error and its cost.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.gen import generate

MB = 1 << 20
BOARD = """\
platform "example,board" { msi native; }
gic = interrupt-controller gicv3 @ 0x0800_0000 size 64K { redistributor @ 0x080a_0000 size 0xf6_0000; }
"""
PARSE_ONLY = (
    "import sys\n"
    "from dtmsi.parser import parse_statements\n"
    "from dtmsi.source import SourceFile, read_input_text\n"
    "n = sum(1 for _ in parse_statements(SourceFile(sys.argv[1], read_input_text(sys.argv[1]))))\n"
    "print(n, 'statements')\n"
)


def realistic(size: int) -> str:
    """bench/gen.py's flat topology with about ``size`` bytes (~68 bytes a function)."""
    n = max(1, size // 68)
    text = generate(n)
    while len(text) < size * 0.98:
        n = int(n * size / len(text)) + 1
        text = generate(n)
    return text


def _run(cmd: list[str], cwd: Path) -> tuple[int, float, int, str]:
    """Run ``cmd``; its own peak RSS, from GNU time: wait4 from this process
    would count this process's RSS at fork time (the generated text)."""
    start = time.monotonic()
    with open(cwd / "stderr", "w+b") as err:
        p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(cwd / "peak"), *cmd], cwd=cwd,
                           stdout=subprocess.DEVNULL, stderr=err)
        err.seek(0)
        first = err.read().decode(errors="replace").splitlines()[:1]
    peak = int((cwd / "peak").read_text().split()[-1]) * 1024
    return p.returncode, time.monotonic() - start, peak, first[0][:90] if first else ""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1,10,50", help="sizes in MB")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--kinds", default="comment,check,parse", help="which rows: comment, check, parse")
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="dtmsi-mem-"))
    work.mkdir(parents=True, exist_ok=True)
    # The interpreter with dtmsi loaded, checking a two-line board: what any
    # run costs before its input does.
    empty = work / "empty.msi"
    empty.write_text(BOARD, encoding="utf-8")
    _, _, base_check, _ = _run([sys.executable, "-m", "dtmsi", "check", empty.name], work)
    _, _, base_parse, _ = _run([sys.executable, "-c", PARSE_ONLY, empty.name], work)
    print(f"baseline: dtmsi check {base_check / MB:.0f} MB, parser only {base_parse / MB:.0f} MB\n")
    print("| input | size | command | exit | peak RSS | per input byte | above baseline, per byte | seconds |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for mb in (int(x) for x in args.sizes.split(",")):
        size = mb * MB
        comment = work / f"comment-{mb}.msi"
        comment.write_text("/* " + "x" * size + " */\n" + BOARD, encoding="utf-8")
        real = work / f"realistic-{mb}.msi"
        real.write_text(realistic(size), encoding="utf-8")
        runs = [
            ("comment", "one comment", comment, [sys.executable, "-m", "dtmsi", "check", comment.name]),
            ("check", "realistic", real, [sys.executable, "-m", "dtmsi", "check", real.name]),
            ("parse", "realistic", real, [sys.executable, "-c", PARSE_ONLY, real.name]),
        ]
        kinds = set(args.kinds.split(","))
        for kind, what, path, cmd in runs:
            if kind not in kinds:
                continue
            rc, seconds, peak, first = _run(cmd, work)
            if peak == 0:  # GNU time once reported 0 here: measure again
                rc, seconds, peak, first = _run(cmd, work)
            nbytes = path.stat().st_size
            how = "dtmsi check" if "-m" in cmd else "parser only"
            base = base_check if "-m" in cmd else base_parse
            note = f" ({first})" if rc else ""
            print(f"| {what} | {nbytes / MB:.1f} MB | {how} | {rc}{note} | {peak / MB:.0f} MB | "
                  f"{peak / nbytes:.1f} | {(peak - base) / nbytes:.1f} | {seconds:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
