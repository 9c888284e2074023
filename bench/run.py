"""Speed benchmark: ``dtmsi compile`` against ``dtc -I dts -O dtb`` on the same tree.

    python -m bench.run [--sizes 1000,10000,100000] [--repeat N] [--out bench/results]
    python -m bench.run --profile 10000

For every size it generates a flat .msi (``bench.gen``), runs
``python -m dtmsi compile`` as a child process N times (default 3, 1 for sizes
of 100k and more; every output: trees, allocation.json and the C and Python
stubs) and then ``dtc -I dts -O dtb`` on the system.dts dtmsi wrote, N times
too. At 10k it also times ``gcc -O2 -c`` of the generated ``system_msi.c``
and importing the generated ``system_msi.py`` (first import, which compiles
the source, and a cached one). Each child is waited for with ``os.wait4``, which gives that
child's own peak RSS. It prints median wall times, peak memory, the ratio
dtmsi/dtc and microseconds per function, then checks the targets of the speed
issue and prints PASS/FAIL for each. It always exits 0 (a measurement, not a
test) unless the benchmark itself could not run. The table also goes to
``OUT/latest.md``.

``--profile SIZE`` compiles one generated file in-process under cProfile and
prints the 25 most expensive functions by cumulative and by own time.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.gen import generate
from dtmsi.backends import worker

ROOT = Path(__file__).resolve().parent.parent

# Targets of the speed issue, on the reference 2-core machine.
TARGET_10K_RATIO = 0.5  # dtmsi (every output) <= 0.5 x dtc's time at 10k functions
TARGET_100K_SPEEDUP = 20.0  # dtmsi >= 20 x faster than dtc at 100k
TARGET_100K_PEAK_MB = 300.0
TARGET_GCC_10K_S = 2.0  # gcc -O2 -c of the 10k-function C stub
TARGET_IMPORT_10K_S = 0.2  # importing the 10k-function Python stub
TARGET_SCALING = 1.1  # us/function at 100k <= 1.1 x us/function at 10k
TARGET_VERSION_MS = 50.0


@dataclass
class Run:
    seconds: float
    peak_mb: float
    returncode: int
    stderr: str
    timed_out: bool = False


@dataclass
class Measure:
    runs: list[Run] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.runs) and all(r.returncode == 0 and not r.timed_out for r in self.runs)

    @property
    def median_s(self) -> float:
        return statistics.median(r.seconds for r in self.runs) if self.runs else float("nan")

    @property
    def peak_mb(self) -> float:
        return max((r.peak_mb for r in self.runs), default=float("nan"))

    @property
    def timed_out(self) -> bool:
        return any(r.timed_out for r in self.runs)


@dataclass
class Row:
    size: int
    dtmsi: Measure
    dtc: Measure
    dts_bytes: int = 0
    dtb_bytes: int = 0
    gcc: Measure = field(default_factory=Measure)  # gcc -O2 -c system_msi.c
    import_first: Measure = field(default_factory=Measure)  # import system_msi, compiling the source
    import_cached: Measure = field(default_factory=Measure)  # import system_msi from its cached bytecode
    # DTMSI_JOBS=1: no device-tree worker (dtmsi/backends/worker.py), measured
    # where the default run uses one; the scaling verdict compares serial runs.
    dtmsi_serial: Measure = field(default_factory=Measure)
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.dtmsi.median_s / self.dtc.median_s if self.dtc.runs else float("nan")

    @property
    def us_per_function(self) -> float:
        return self.dtmsi.median_s / self.size * 1e6

    @property
    def serial(self) -> Measure:
        """The compile on one CPU: the serial runs, or the default ones where
        dtmsi renders serially anyway."""
        return self.dtmsi_serial if self.dtmsi_serial.runs else self.dtmsi

    @property
    def us_per_function_serial(self) -> float:
        return self.serial.median_s / self.size * 1e6


# ---------------------------------------------------------------- running children


# Children run with Python's bytecode cache on, as an installed dtmsi has it:
# PYTHONDONTWRITEBYTECODE (set in some sandboxes) would make every run compile
# dtmsi's sources again, which no user's dtmsi does. bench_size warms the cache.
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_child(cmd: list[str], timeout: float, cwd: Path | None = None,
              env: dict[str, str] | None = None) -> Run:
    """Run one command; its wall time, its own peak RSS (``os.wait4``) and stderr."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err, cwd=cwd, start_new_session=True, env={**_ENV, **(env or {})})
        expired = threading.Event()

        def kill() -> None:
            expired.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait again
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    scale = 1 if sys.platform == "darwin" else 1024
    return Run(seconds, usage.ru_maxrss * scale / 2**20, proc.returncode, text, expired.is_set())


def dtmsi_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "dtmsi", *args]


def version_cmd() -> tuple[list[str], str]:
    """What a user runs as ``dtmsi --version``: the console script when one is
    installed beside this Python, else exactly what that script does."""
    script = Path(sys.executable).parent / "dtmsi"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script), "--version"], str(script)
    code = "import sys; from dtmsi.entry import main; sys.argv[0] = 'dtmsi'; sys.exit(main())"
    return ([sys.executable, "-c", code, "--version"],
            "python -c 'from dtmsi.entry import main' (no console script installed)")


def _tool_version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "?"


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "dtmsi"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() + (" + uncommitted changes in dtmsi/" if dirty.stdout.strip() else "")


# ---------------------------------------------------------------- one size


def _first_lines(text: str, n: int = 5) -> str:
    lines = text.strip().splitlines()
    more = f" ... ({len(lines) - n} more lines)" if len(lines) > n else ""
    return "\n      ".join(lines[:n]) + more


def bench_size(size: int, repeat: int, out: Path, seed: int, timeout: float, dtc: str) -> Row:
    work = out / f"n{size}"
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    src = work / f"bench-{size}.msi"
    src.write_text(generate(size, seed), encoding="utf-8")
    print(f"[{size}] generated {src} ({src.stat().st_size / 1e6:.1f} MB) "
          f"in {time.perf_counter() - t0:.1f} s", flush=True)
    row = Row(size, Measure(), Measure())
    outdir = work / "dtmsi"
    # the bytecode cache warm, as after an install
    run_child([sys.executable, "-m", "compileall", "-q", str(ROOT / "dtmsi")], timeout)
    for i in range(repeat):
        if outdir.exists():
            shutil.rmtree(outdir)  # every run writes its outputs anew
        r = run_child(dtmsi_cmd("compile", str(src), "-o", str(outdir), "--color", "never"),
                      timeout, cwd=ROOT)
        row.dtmsi.runs.append(r)
        print(f"[{size}] dtmsi run {i + 1}/{repeat}: {r.seconds:.2f} s, {r.peak_mb:.0f} MB"
              + (" TIMEOUT" if r.timed_out else "")
              + (f" exit {r.returncode}" if r.returncode else ""), flush=True)
        if r.stderr.strip():
            row.notes.append(f"dtmsi printed diagnostics: {_first_lines(r.stderr)}")
            print(f"[{size}] dtmsi stderr:\n      {_first_lines(r.stderr)}", flush=True)
        if r.returncode or r.timed_out:
            break
    if row.dtmsi.ok and worker.MIN_FUNCTIONS <= size <= worker.MAX_FUNCTIONS:
        serial_dir = work / "dtmsi-serial"
        for i in range(repeat):
            shutil.rmtree(serial_dir, ignore_errors=True)
            r = run_child(dtmsi_cmd("compile", str(src), "-o", str(serial_dir), "--color", "never"),
                          timeout, cwd=ROOT, env={"DTMSI_JOBS": "1"})
            row.dtmsi_serial.runs.append(r)
            print(f"[{size}] dtmsi run {i + 1}/{repeat} on one CPU (DTMSI_JOBS=1): {r.seconds:.2f} s, "
                  f"{r.peak_mb:.0f} MB" + (f" exit {r.returncode}" if r.returncode else ""), flush=True)
            if r.returncode or r.timed_out:
                break
        if row.dtmsi_serial.ok and not _same_tree(serial_dir, outdir):
            row.notes.append("DTMSI_JOBS=1 outputs differ from the default run's")
    dts, dtb = outdir / "system.dts", outdir / "system.dtb"
    if not row.dtmsi.ok or not dts.is_file():
        row.notes.append("dtmsi failed: dtc not run")
        return row
    row.dts_bytes, row.dtb_bytes = dts.stat().st_size, dtb.stat().st_size
    dtc_out = work / "dtc.dtb"
    for i in range(repeat):
        r = run_child([dtc, "-I", "dts", "-O", "dtb", "-o", str(dtc_out), str(dts)], timeout)
        row.dtc.runs.append(r)
        print(f"[{size}] dtc   run {i + 1}/{repeat}: {r.seconds:.2f} s, {r.peak_mb:.0f} MB"
              + (" TIMEOUT" if r.timed_out else "")
              + (f" exit {r.returncode}" if r.returncode else ""), flush=True)
        if r.stderr.strip() and i == 0:
            row.notes.append(f"dtc printed: {_first_lines(r.stderr)}")
            print(f"[{size}] dtc stderr:\n      {_first_lines(r.stderr)}", flush=True)
        if r.returncode or r.timed_out:
            break
    if row.dtc.ok and dtc_out.is_file():
        same = dtc_out.read_bytes() == dtb.read_bytes()
        row.notes.append("dtc's DTB is byte-identical to dtmsi's" if same
                         else "dtc's DTB differs from dtmsi's system.dtb")
    if size == 10_000:
        bench_stubs(row, outdir, work, repeat, timeout)
    return row


_IMPORT = ("import sys, time; sys.path.insert(0, sys.argv[1]); t = time.perf_counter(); import system_msi; "
           "sys.stderr.write(f'{time.perf_counter() - t:.6f}\\n')")


def bench_stubs(row: Row, outdir: Path, work: Path, repeat: int, timeout: float) -> None:
    """gcc -O2 -c of the C stub; the Python stub's first and cached imports
    (timed inside the child, so Python's own start-up is not counted)."""
    c, py = outdir / "system_msi.c", outdir / "system_msi.py"
    if not c.is_file() or not py.is_file():
        row.notes.append("no system_msi.c/.py: stubs not measured")
        return
    cc = shutil.which("gcc")
    for i in range(repeat if cc else 0):
        r = run_child([cc or "gcc", "-O2", "-std=c99", "-I", str(outdir), "-c", str(c), "-o", str(work / "stub.o")],
                      timeout)
        row.gcc.runs.append(r)
        print(f"[{row.size}] gcc -O2 -c system_msi.c {i + 1}/{repeat}: {r.seconds:.2f} s, {r.peak_mb:.0f} MB",
              flush=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for i in range(repeat):
        fresh = work / f"import-{i}"
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir()
        shutil.copy(py, fresh / py.name)
        for m in (row.import_first, row.import_cached):
            proc = subprocess.run([sys.executable, "-c", _IMPORT, str(fresh)], capture_output=True, text=True,
                                  env=env, timeout=timeout, check=False)
            if proc.returncode != 0:
                row.notes.append(f"importing system_msi.py failed: {_first_lines(proc.stderr)}")
                return
            m.runs.append(Run(float(proc.stderr.strip().splitlines()[-1]), 0.0, 0, ""))
        print(f"[{row.size}] import system_msi: first {row.import_first.runs[-1].seconds:.3f} s, "
              f"cached {row.import_cached.runs[-1].seconds:.3f} s", flush=True)


# ---------------------------------------------------------------- report


def _fmt_s(m: Measure) -> str:
    if not m.runs:
        return "-"
    s = f"{m.median_s:.3f}"
    return f">{s} (timeout)" if m.timed_out else (s if m.ok else f"{s} (failed)")


def _fmt_mb(m: Measure) -> str:
    return f"{m.peak_mb:.0f}" if m.runs else "-"


def _same_tree(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.iterdir())
    return names == sorted(p.name for p in b.iterdir()) and all(
        (a / n).read_bytes() == (b / n).read_bytes() for n in names)


def table(rows: list[Row]) -> list[list[str]]:
    head = ["functions", "dtmsi median s", "one CPU s", "dtmsi peak MB", "dtc median s", "dtc peak MB",
            "dtmsi/dtc", "dtmsi us/function", "runs", "DTS MB"]
    body = [head]
    for r in rows:
        body.append([
            f"{r.size}", _fmt_s(r.dtmsi), _fmt_s(r.dtmsi_serial) if r.dtmsi_serial.runs else "=",
            _fmt_mb(r.dtmsi), _fmt_s(r.dtc), _fmt_mb(r.dtc),
            (("<" if r.dtc.timed_out else "") + f"{r.ratio:.3f}") if r.dtc.runs and r.dtmsi.runs
            else "-",
            f"{r.us_per_function:.1f}" if r.dtmsi.runs else "-",
            f"{len(r.dtmsi.runs)}/{len(r.dtc.runs)}",
            f"{r.dts_bytes / 1e6:.1f}" if r.dts_bytes else "-",
        ])
    return body


def render_text(body: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in body) for i in range(len(body[0]))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in body]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_md(body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(body[0]) + " |", "|" + "|".join("---:" for _ in body[0]) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body[1:]]
    return "\n".join(lines)


@dataclass
class Verdict:
    name: str
    status: str  # PASS, FAIL or SKIP
    detail: str


def targets(rows: list[Row], version_ms: float | None) -> list[Verdict]:
    by = {r.size: r for r in rows}
    out: list[Verdict] = []
    r10, r100 = by.get(10_000), by.get(100_000)

    def usable(r: Row | None) -> bool:
        return r is not None and r.dtmsi.ok and r.dtc.ok

    name = f"10k: dtmsi <= {TARGET_10K_RATIO}x dtc's time"
    if r10 is not None and usable(r10):
        out.append(Verdict(name, "PASS" if r10.ratio <= TARGET_10K_RATIO else "FAIL",
                           f"ratio {r10.ratio:.3f} "
                           f"({r10.dtmsi.median_s:.3f} s vs {r10.dtc.median_s:.3f} s)"))
    else:
        out.append(Verdict(name, "SKIP", "10k not measured (or a run failed)"))

    name = f"100k: dtmsi >= {TARGET_100K_SPEEDUP:.0f}x faster than dtc"
    if r100 is not None and r100.dtmsi.ok and r100.dtc.runs:
        speedup = r100.dtc.median_s / r100.dtmsi.median_s
        lower = " (at least: dtc timed out)" if r100.dtc.timed_out else ""
        status = "PASS" if speedup >= TARGET_100K_SPEEDUP else ("SKIP" if lower else "FAIL")
        out.append(Verdict(name, status, f"dtc/dtmsi = {speedup:.1f}{lower}"))
    else:
        out.append(Verdict(name, "SKIP", "100k not measured (or dtmsi failed)"))

    name = f"100k: dtmsi peak RSS <= {TARGET_100K_PEAK_MB:.0f} MB"
    if r100 is not None and r100.dtmsi.runs and not r100.dtmsi.timed_out:
        out.append(Verdict(name, "PASS" if r100.dtmsi.peak_mb <= TARGET_100K_PEAK_MB else "FAIL",
                           f"{r100.dtmsi.peak_mb:.0f} MB"))
    else:
        out.append(Verdict(name, "SKIP", "100k not measured"))

    name = f"time per function at 100k <= {TARGET_SCALING}x that at 10k (both on one CPU)"
    if r10 is not None and r100 is not None and r10.serial.ok and r100.serial.ok:
        q = r100.us_per_function_serial / r10.us_per_function_serial
        out.append(Verdict(name, "PASS" if q <= TARGET_SCALING else "FAIL",
                           f"{r100.us_per_function_serial:.1f} / {r10.us_per_function_serial:.1f} us = {q:.2f}"))
    else:
        out.append(Verdict(name, "SKIP", "needs both 10k and 100k"))

    name = f"10k: gcc -O2 -c of the C stub <= {TARGET_GCC_10K_S:.0f} s"
    if r10 is not None and r10.gcc.ok:
        out.append(Verdict(name, "PASS" if r10.gcc.median_s <= TARGET_GCC_10K_S else "FAIL",
                           f"median {r10.gcc.median_s:.2f} s"))
    else:
        out.append(Verdict(name, "SKIP", "10k stub not measured"))

    name = f"10k: importing the Python stub <= {TARGET_IMPORT_10K_S} s (first import, source compiled)"
    if r10 is not None and r10.import_first.ok:
        out.append(Verdict(name, "PASS" if r10.import_first.median_s <= TARGET_IMPORT_10K_S else "FAIL",
                           f"median {r10.import_first.median_s:.3f} s first, "
                           f"{r10.import_cached.median_s:.3f} s cached"))
    else:
        out.append(Verdict(name, "SKIP", "10k stub not measured"))

    name = f"dtmsi --version <= {TARGET_VERSION_MS:.0f} ms"
    if version_ms is not None:
        out.append(Verdict(name, "PASS" if version_ms <= TARGET_VERSION_MS else "FAIL",
                           f"median {version_ms:.1f} ms"))
    else:
        out.append(Verdict(name, "SKIP", "not measured"))
    return out


def scaling_line(rows: list[Row]) -> str | None:
    by = {r.size: r for r in rows}
    a, b = by.get(10_000), by.get(100_000)
    if a is None or b is None or not (a.serial.ok and b.serial.ok):
        return None
    return (f"per-function time 100k vs 10k, one CPU: {b.us_per_function_serial:.1f} / "
            f"{a.us_per_function_serial:.1f} us = {b.us_per_function_serial / a.us_per_function_serial:.2f}x")


# ---------------------------------------------------------------- profile


def profile(size: int, out: Path, seed: int, top: int = 25) -> None:
    import cProfile
    import pstats

    from dtmsi.driver import compile_file
    from dtmsi.options import CompileOptions

    work = out / f"n{size}"
    work.mkdir(parents=True, exist_ok=True)
    src = work / f"bench-{size}.msi"
    src.write_text(generate(size, seed), encoding="utf-8")
    outdir = work / "profile-out"
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    result = compile_file(CompileOptions(input=src, output_dir=outdir))
    prof.disable()
    wall = time.perf_counter() - t0
    diags = list(result.sink)
    print(f"profiled dtmsi compile of {size} functions: {wall:.2f} s under cProfile, "
          f"{'ok' if result.ok else 'FAILED'}, {len(diags)} diagnostic(s)")
    stats_file = work / f"profile-{size}.prof"
    prof.dump_stats(str(stats_file))
    for key, title in (("cumulative", "cumulative time"), ("tottime", "own (total) time")):
        print(f"\n==== top {top} by {title} ====")
        st = pstats.Stats(prof, stream=sys.stdout)
        st.strip_dirs().sort_stats(key).print_stats(top)
    print(f"(raw profile: {stats_file}; view with 'python -m pstats {stats_file}')")


# ---------------------------------------------------------------- main


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(x.replace("_", "")) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 1000,10000, got {text!r}") from None
    if not sizes or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError("sizes must be positive")
    return sizes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=_sizes, default=[1000, 10_000, 100_000],
                    help="comma-separated function counts (default 1000,10000,100000)")
    ap.add_argument("--repeat", type=int, default=None,
                    help="runs per tool and size (default 3; 1 for sizes >= 100000)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results",
                    help="directory for generated files and latest.md (default bench/results)")
    ap.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    ap.add_argument("--timeout", type=float, default=1800.0,
                    help="seconds before one child run is killed (default 1800)")
    ap.add_argument("--dtc", default=shutil.which("dtc") or "dtc", help="the dtc to compare with")
    ap.add_argument("--profile", type=int, metavar="SIZE",
                    help="profile one in-process compile of SIZE functions instead of benchmarking")
    args = ap.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    if args.profile is not None:
        profile(args.profile, out, args.seed)
        return 0

    if shutil.which(args.dtc) is None and not Path(args.dtc).is_file():
        print(f"bench: dtc not found ({args.dtc}); install the 'device-tree-compiler' package",
              file=sys.stderr)
        return 2

    env_lines = [
        f"host: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {_tool_version([args.dtc, '--version'])}",
        f"dtmsi: {_git_commit()}; seed {args.seed}",
    ]
    for line in env_lines:
        print(line)

    rows: list[Row] = []
    for size in args.sizes:
        repeat = args.repeat if args.repeat is not None else (1 if size >= 100_000 else 3)
        rows.append(bench_size(size, max(1, repeat), out, args.seed, args.timeout, args.dtc))

    vcmd, vwhat = version_cmd()
    vruns = [run_child(vcmd, 60, cwd=ROOT) for _ in range(10)]
    version_ms: float | None = None
    if all(r.returncode == 0 for r in vruns):
        version_ms = statistics.median(r.seconds for r in vruns) * 1000
    version_line = (f"dtmsi --version: median {version_ms:.1f} ms over 10 runs ({vwhat})"
                    if version_ms is not None
                    else f"dtmsi --version failed: {vruns[0].stderr.strip()}")

    body = table(rows)
    verdicts = targets(rows, version_ms)
    scale = scaling_line(rows)
    print()
    print(render_text(body))
    print()
    if scale:
        print(scale)
    print(version_line)
    for r in rows:
        for note in r.notes:
            print(f"note [{r.size}]: {note}")
    print("\ntargets (reference: 2-core machine):")
    for v in verdicts:
        print(f"  {v.status:4}  {v.name}: {v.detail}")

    md = ["# dtmsi speed benchmark", "", *(f"- {line}" for line in env_lines),
          f"- generated on {time.strftime('%Y-%m-%d %H:%M:%S %Z')}", "", render_md(body), ""]
    if scale:
        md.append(f"- {scale}")
    md.append(f"- {version_line}")
    md += [f"- note [{r.size}]: {n}" for r in rows for n in r.notes]
    md += ["", "## Targets", "", "| target | result | measured |", "|---|---|---|"]
    md += [f"| {v.name} | {v.status} | {v.detail} |" for v in verdicts]
    (out / "latest.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    print(f"\nwrote {out / 'latest.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
