"""A progress line on stderr for compiles that take a while, on a terminal only.

Nothing appears for a compile shorter than :data:`DELAY` seconds (nearly all
of them), nor when stderr is a file or a pipe (build logs, CI, IDEs parse it):
the line is redrawn in place with a carriage return and erased before any
diagnostic is printed, so a log would only get noise.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

DELAY = 1.0  # seconds before the first line: a compile shorter than this says nothing
INTERVAL = 0.5  # seconds between redraws


class Progress:
    """Shows ``dtmsi: FILE: <phase> (N.N s)`` while a compile runs, from a
    timer thread; :meth:`phase` is what the driver calls as it moves on."""

    def __init__(self, stream: TextIO | None, name: str) -> None:
        self._stream = stream
        self._name = name
        self._phase = "reading"
        self._start = time.monotonic()
        self._shown = False
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        if stream is not None:
            self._thread = threading.Thread(target=self._run, name="dtmsi-progress", daemon=True)
            self._thread.start()

    @classmethod
    def on_stderr(cls, name: str) -> Progress:
        """A progress line on stderr if it is a terminal, else one that shows nothing."""
        stream = sys.stderr
        try:
            tty = stream.isatty()
        except (AttributeError, ValueError):
            tty = False
        return cls(stream if tty else None, name)

    def phase(self, name: str) -> None:
        self._phase = name

    def _run(self) -> None:
        if self._done.wait(DELAY):
            return
        while True:
            with self._lock:
                if self._done.is_set():
                    return
                self._draw()
            if self._done.wait(INTERVAL):
                return

    def _draw(self) -> None:
        assert self._stream is not None
        elapsed = time.monotonic() - self._start
        self._stream.write(f"\r\033[Kdtmsi: {self._name}: {self._phase} ({elapsed:.1f} s)")
        self._stream.flush()
        self._shown = True

    def stop(self) -> None:
        """Stop drawing and erase the line, so diagnostics start on a clean one."""
        with self._lock:
            if self._done.is_set():
                return
            self._done.set()
            if self._shown and self._stream is not None:
                self._stream.write("\r\033[K")
                self._stream.flush()
