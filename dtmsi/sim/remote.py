"""Run a generated C stub against the simulator.

``build_c_harness`` compiles ``harness.c`` (beside this file) with a
generated ``<name>_msi.c``; ``run_c_stub`` starts it (optionally under a
runner such as ``qemu-ppc64`` for a cross-built big-endian binary), sends it
commands, and answers each hook request by calling the same ``Simulator``
method a Python stub calls, so both languages leave the same trace.
harness.c's header comment describes the line protocol.

Standard library only.
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from dtmsi.sim.machine import HOOK_NAMES, Simulator

HARNESS_C = Path(__file__).with_name("harness.c")
DEFAULT_CFLAGS = ("-std=c99", "-O1", "-Wall", "-Wextra", "-Werror", "-pedantic")
MECHANISMS = ("none", "intx", "msi", "msix")


class HarnessError(RuntimeError):
    """The harness could not be built, or broke the protocol."""


@dataclass(frozen=True, slots=True)
class CVector:
    address: int
    data: int
    irq: int


@dataclass(frozen=True, slots=True)
class CResult:
    """One ``struct P_result`` and the function's vector slots."""

    index: int
    name: str
    status: int
    fw_status: int
    vectors: int
    requested: int
    mechanism: int
    set_up: int
    vec: tuple[CVector, ...]

    @property
    def mechanism_name(self) -> str:
        return MECHANISMS[self.mechanism] if self.mechanism < len(MECHANISMS) else str(self.mechanism)


@dataclass(slots=True)
class HarnessRun:
    outputs: list[tuple[str, str]] = field(default_factory=list)  # (command, its "= VALUE" text, unescaped)
    results: list[CResult] = field(default_factory=list)  # from the last "results" command
    stderr: str = ""
    returncode: int | None = None

    def value(self, i: int) -> int:
        """The ``i``-th command's value as an integer."""
        return int(self.outputs[i][1])

    def values(self) -> list[str]:
        return [v for _, v in self.outputs]


def unescape(text: str) -> str:
    """The harness's escaping undone (bytes as UTF-8, invalid bytes kept as surrogates)."""
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and text[i + 1 : i + 2] == "\\":
            out.append(0x5C)
            i += 2
        elif c == "\\" and text[i + 1 : i + 2] == "x":
            out.append(int(text[i + 2 : i + 4], 16))
            i += 4
        else:
            out.extend(c.encode("latin-1"))
            i += 1
    return out.decode("utf-8", "surrogateescape")


def build_c_harness(
    c_file: Path | str,
    header: Path | str,
    prefix: str,
    out_dir: Path | str,
    cc: str = "gcc",
    cflags: Sequence[str] = DEFAULT_CFLAGS,
    ldflags: Sequence[str] = (),
) -> Path:
    """Compile harness.c with the stub; the executable's path.

    ``header`` is the stub's header file (or just its name, found beside
    ``c_file``); ``prefix`` its symbol prefix (``dtmsi_system``); the macro
    prefix is its upper case."""
    c_file = Path(c_file).resolve()
    header = Path(header)
    include = header.resolve().parent if header.exists() else c_file.parent
    out = Path(out_dir) / f"{prefix}_harness"
    cmd = [
        cc,
        *cflags,
        f"-I{include}",
        f'-DSTUB_HEADER="{header.name}"',
        f"-DSTUB(x)={prefix}_##x",
        f"-DSTUB_UPPER(x)={prefix.upper()}_##x",
        str(HARNESS_C),
        str(c_file),
        "-o",
        str(out),
        *ldflags,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300)
    if done.returncode != 0:
        raise HarnessError(f"{' '.join(cmd)}\nexit {done.returncode}\n{done.stdout}{done.stderr}")
    return out


def _answer(sim: Simulator, line: str) -> str:
    """Make the hook call a request line asks for; the answer line."""
    parts = line.split(" ")
    hook = parts[1]
    name = "rtas_call" if hook == "rtas" else hook
    method = getattr(sim, name, None) if name in HOOK_NAMES else None
    if method is None:
        raise HarnessError(f"the stub called {name}, which the simulator does not have: {line!r}")
    try:
        if hook == "log":
            rest = line.split(" ", 3)
            sim.log(int(rest[2]), unescape(rest[3] if len(rest) > 3 else ""))
            return "ok"
        nums = [int(x) for x in parts[2:]]
        if hook == "cfg_read":
            return f"ok {sim.cfg_read(*nums)}"
        if hook == "cfg_write":
            sim.cfg_write(*nums)
            return "ok"
        if hook == "mmio_read32":
            return f"ok {sim.mmio_read32(*nums)}"
        if hook == "mmio_write32":
            sim.mmio_write32(*nums)
            return "ok"
        if hook == "delay_us":
            sim.delay_us(*nums)
            return "ok"
        if hook == "rtas":
            token, nargs, nret, args = nums[0], nums[1], nums[2], nums[3:]
            rets = list(sim.rtas_call(token, nargs, nret, args))
            rets = (rets + [0] * nret)[:nret]
            return " ".join(["ok", *(str(r & 0xFFFFFFFF) for r in rets)])
        if hook == "opal_set_xive_pe":
            return f"ok {sim.opal_set_xive_pe(*nums)}"
        if hook == "opal_get_msi":
            status, address, data = sim.opal_get_msi(*nums)
            return f"ok {status} {address & ((1 << 64) - 1)} {data & 0xFFFFFFFF}"
    except OSError:
        return "err"
    raise HarnessError(f"unknown hook request {line!r}")


def _parse_result(line: str) -> CResult:
    f = line.split(" ", 8)
    return CResult(
        int(f[1]), unescape(f[8] if len(f) > 8 else ""), int(f[2]), int(f[3]), int(f[4]), int(f[5]), int(f[6]),
        int(f[7]), (),
    )


class _Watchdog:
    def __init__(self, proc: subprocess.Popen[str], timeout: float) -> None:
        self.fired = False
        self.timer = threading.Timer(timeout, self._kill, (proc,))
        self.timer.daemon = True

    def _kill(self, proc: subprocess.Popen[str]) -> None:
        self.fired = True
        proc.kill()


def run_c_stub(
    exe: Path | str,
    sim: Simulator,
    commands: Sequence[str | Callable[[Simulator], object]],
    runner: Sequence[str] = (),
    *,
    timeout: float = 120.0,
    mirror_missing_hooks: bool = True,
) -> HarnessRun:
    """Run ``commands`` in the harness, answering its hook calls from ``sim``.
    A callable among them is called with ``sim`` between the commands around
    it (to reset a function, say).

    With ``mirror_missing_hooks`` every hook the simulator lacks
    (``missing_hooks``) is first removed in the harness too (``nohook``),
    so the C stub sees the same hooks as a Python stub would."""
    run = HarnessRun()
    pre = [f"nohook {h}" for h in HOOK_NAMES if mirror_missing_hooks and getattr(sim, h, None) is None]
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            [*runner, str(exe)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            encoding="ascii",
            errors="replace",
            bufsize=1,
        )
        dog = _Watchdog(proc, timeout)
        dog.timer.start()
        try:
            assert proc.stdin is not None and proc.stdout is not None
            for i, cmd in enumerate([*pre, *commands]):
                if callable(cmd):  # something that happens to the machine between commands (a reset)
                    cmd(sim)
                    continue
                value = _command(proc.stdin, proc.stdout, sim, cmd, run)
                if i >= len(pre):
                    run.outputs.append((cmd, value))
                elif value != "0":
                    raise HarnessError(f"{cmd!r} answered {value!r}")
                if cmd.split()[:1] == ["quit"]:
                    break
            else:
                _command(proc.stdin, proc.stdout, sim, "quit", run)
            proc.stdin.close()
            run.returncode = proc.wait(timeout=timeout)
        except (BrokenPipeError, HarnessError) as e:
            proc.kill()
            proc.wait()
            err.seek(0)
            raise HarnessError(f"{e}\n{'timed out' if dog.fired else ''}\nstderr: {err.read()}") from e
        finally:
            dog.timer.cancel()
        err.seek(0)
        run.stderr = err.read()
    return run


def _command(stdin: IO[str], stdout: IO[str], sim: Simulator, cmd: str, run: HarnessRun) -> str:
    stdin.write(cmd + "\n")
    stdin.flush()
    results: list[CResult] = []
    vectors: dict[int, list[CVector]] = {}
    while True:
        line = stdout.readline()
        if not line:
            raise HarnessError(f"the harness ended during {cmd!r}")
        line = line.rstrip("\r\n")
        if line.startswith("H "):
            stdin.write(_answer(sim, line) + "\n")
            stdin.flush()
        elif line.startswith("F "):
            results.append(_parse_result(line))
        elif line.startswith("V "):
            _, i, _k, address, data, irq = line.split(" ")
            vectors.setdefault(int(i), []).append(CVector(int(address), int(data), int(irq)))
        elif line.startswith("= ") or line == "=":
            value = line[2:]
            if value == "?":
                raise HarnessError(f"the harness does not know {cmd!r}")
            if cmd.split()[:1] in (["strerror"], ["digest"]):
                value = unescape(value)
            if cmd.split()[:1] == ["results"]:
                run.results = [
                    CResult(r.index, r.name, r.status, r.fw_status, r.vectors, r.requested, r.mechanism, r.set_up,
                            tuple(vectors.get(r.index, ())))
                    for r in results
                ]
            return value
        else:
            raise HarnessError(f"unexpected harness output {line!r} during {cmd!r}")
