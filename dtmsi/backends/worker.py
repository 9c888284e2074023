"""One backend in a forked worker process, beside the parent's.

The device trees are the longest output to write and need nothing the other
outputs make, so on a machine with a second CPU a mid-sized compile renders
them in a forked child while the parent writes ``allocation.json`` and the
stubs (a 10k-function compile: about 0.45 s of tree beside 0.3 s of the
rest). The child writes into the parent's staging place through the same
:class:`~dtmsi.artifacts.Outputs` and hands back, through a pipe, what it
staged and what it reported; the parent adopts both in the order a serial run
would have made them, so outputs and diagnostics are the same either way.

Only between :data:`MIN_FUNCTIONS` and :data:`MAX_FUNCTIONS`: below, a fork
costs more than it saves; above, the child's copy-on-write pages would add to
the parent's memory, which the 100k-function budget does not allow (that
size renders serially). ``DTMSI_JOBS=1`` turns the worker off and
``DTMSI_JOBS=2`` on whatever the size (the tests compare the two).

The child dies with the parent (``PR_SET_PDEATHSIG``): a compile killed at
any moment leaves no process writing behind it. A child that dies without an
answer (killed, out of memory) is not an error: the parent renders the trees
itself, into the same staged names (so nothing of the child's is left over).
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any

from dtmsi import artifacts
from dtmsi.artifacts import Outputs
from dtmsi.diagnostics import DiagnosticSink

MIN_FUNCTIONS = 2_000
MAX_FUNCTIONS = 20_000


def wanted(functions: int, outputs: Outputs) -> bool:
    """Whether to render in a worker: a mid-sized compile to a directory, on
    Linux, with a second CPU this process may run on."""
    jobs = os.environ.get("DTMSI_JOBS", "").strip()
    if jobs == "1" or sys.platform != "linux" or outputs.directory is None:
        return False
    if jobs == "2":
        return True
    if not MIN_FUNCTIONS <= functions <= MAX_FUNCTIONS:
        return False
    return len(os.sched_getaffinity(0)) >= 2


def _die_with_parent(parent: int) -> None:
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


class Worker:
    """``job`` running in a forked child; :meth:`join` takes its results over."""

    def __init__(self, job: Callable[[], None], sink: DiagnosticSink, outputs: Outputs) -> None:
        self.job = job
        self.sink = sink
        self.outputs = outputs
        outputs.prepare()
        parent = os.getpid()
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(read_end)
            self._child(parent, write_end)
        os.close(write_end)
        self.pid: int | None = pid
        self.read_end: int | None = read_end

    def _child(self, parent: int, write_end: int) -> None:
        try:
            self._answer(parent, write_end)
        finally:
            os._exit(0)  # never back into the caller's code, whatever happened (even MemoryError)

    def _answer(self, parent: int, write_end: int) -> None:
        answer: tuple[Any, ...]
        try:
            _die_with_parent(parent)
            # The commit's kill-at-every-step seam is the parent's: a step
            # here is a file staged by the worker, covered by tests/test_worker.py.
            artifacts.STEP_HOOK = None
            said, staged = len(self.sink.items), self.outputs.mark()
            self.job()
            if os.environ.get("DTMSI_TEST_WORKER") == "vanish":
                os._exit(1)  # tests: a child that dies without an answer
            answer = ("ok", self.sink.items[said:], self.outputs.since(staged))
        except OSError as e:
            answer = ("oserror", e)
        except BaseException:
            answer = ("crash", traceback.format_exc())
        data = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(data)

    def join(self) -> None:
        """Wait for the child and take over its diagnostics and outputs (or,
        if it died without an answer, run the job here)."""
        assert self.pid is not None and self.read_end is not None
        with os.fdopen(self.read_end, "rb") as pipe:
            self.read_end = None
            data = pipe.read()  # before waitpid: the child blocks until it is read
        os.waitpid(self.pid, 0)
        self.pid = None
        if not data:
            self.job()  # killed or out of memory: do it here
            return
        answer = pickle.loads(data)
        if answer[0] == "oserror":
            raise answer[1]
        if answer[0] == "crash":
            raise RuntimeError("the device-tree worker failed:\n" + answer[1])
        _, diagnostics, staged = answer
        for d in diagnostics:
            self.sink.report(d.code, d.span, d.message, notes=d.notes, hint=d.hint)
        self.outputs.adopt(staged)

    def cancel(self) -> None:
        """Stop the child (the parent failed: its work is not wanted)."""
        if self.pid is not None:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.pid = None
        if self.read_end is not None:
            os.close(self.read_end)
            self.read_end = None
