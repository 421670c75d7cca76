"""Keep N worker processes serving (``midas serve --workers N``).

A worker that dies (killed, crashed, or exited on its own) is started again after a
back-off that doubles with each recent crash, so capacity comes back without hammering a
failing dependency. When workers crash ``limit`` times within ``window_s`` seconds they
are crash-looping: the parent stops the others and exits non-zero, so the process
supervisor above it (systemd, Kubernetes, ...) notices and acts. SIGTERM or SIGINT to the
parent stops every worker gracefully (each drains its requests) and exits 0 when they
all stop cleanly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess

log = logging.getLogger(__name__)
CRASH_LOOP_EXIT_CODE = 1
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass
class CrashPolicy:
    """How long to wait before a restart, and when crashes become a crash loop."""

    limit: int  # crashes within window_s that make a crash loop
    window_s: float
    backoff_s: float  # before the first restart; doubled for each recent crash
    max_backoff_s: float
    _crashes: deque[float] = field(default_factory=deque)

    def crashed(self, now: float) -> float | None:
        """Record a crash at ``now``: the delay before the restart, or None (crash loop)."""
        self._crashes.append(now)
        while now - self._crashes[0] > self.window_s:
            self._crashes.popleft()
        recent = len(self._crashes)
        if recent >= self.limit:
            return None
        return min(self.max_backoff_s, self.backoff_s * 2 ** (recent - 1))


class Supervisor:
    """Runs ``workers`` processes made by ``spawn(slot)``; ``run`` returns the exit code."""

    def __init__(
        self,
        spawn: Callable[[int], BaseProcess],
        workers: int,
        policy: CrashPolicy,
        *,
        on_exit: Callable[[BaseProcess], None] = lambda _p: None,
        stop_timeout_s: float = 30.0,
    ) -> None:
        self._spawn = spawn
        self._workers = workers
        self._policy = policy
        self._on_exit = on_exit
        self._stop_timeout_s = stop_timeout_s
        self._running: dict[int, BaseProcess] = {}  # slot -> process
        self._restart_at: dict[int, float] = {}  # slot -> monotonic time
        self._stop_deadline: float | None = None
        self._signalled: int | None = None  # set by the signal handler, acted on in run
        self._exit_code = 0
        self._wake_read, self._wake_write = os.pipe()

    def run(self) -> int:
        previous = {signum: signal.signal(signum, self._on_signal) for signum in STOP_SIGNALS}
        try:
            for slot in range(self._workers):
                self._start(slot)
            while self._running or (self._restart_at and self._stop_deadline is None):
                self._wait_once()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            os.close(self._wake_read)
            os.close(self._wake_write)
        return self._exit_code

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Stop every worker (no more restarts); they get ``signum``."""
        if self._stop_deadline is None:
            self._stop_deadline = time.monotonic() + self._stop_timeout_s
        self._restart_at.clear()
        self._signal_all(signum)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._signalled = signum
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b"!")  # wake the wait in run at once

    def _wait_once(self) -> None:
        sentinels = {p.sentinel: slot for slot, p in self._running.items()}
        ready = wait([*sentinels, self._wake_read], timeout=self._timeout())
        if self._wake_read in ready:
            os.read(self._wake_read, 64)
        if self._signalled is not None:
            signum, self._signalled = self._signalled, None
            log.info("stopping the workers", extra={"signal": signal.Signals(signum).name})
            self.stop(signum)
        for sentinel in ready:
            if sentinel in sentinels:
                self._reap(sentinels[sentinel])
        now = time.monotonic()
        if self._stop_deadline is not None and now >= self._stop_deadline:
            self._signal_all(signal.SIGKILL)  # did not stop gracefully in time
            self._stop_deadline = now + self._stop_timeout_s
        for slot, at in list(self._restart_at.items()):
            if at <= now:
                del self._restart_at[slot]
                self._start(slot)

    def _timeout(self) -> float | None:
        deadlines = [*self._restart_at.values()]
        if self._stop_deadline is not None:
            deadlines.append(self._stop_deadline)
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    def _start(self, slot: int) -> None:
        process = self._spawn(slot)
        process.start()
        self._running[slot] = process
        log.info("worker started", extra={"slot": slot, "pid": process.pid})

    def _reap(self, slot: int) -> None:
        process = self._running.pop(slot)
        process.join()
        self._on_exit(process)
        if self._stop_deadline is not None:  # stopping: an exit is expected
            if process.exitcode != 0 and self._exit_code == 0:
                self._exit_code = 1
            return
        delay = self._policy.crashed(time.monotonic())
        if delay is None:
            log.error("workers are crash-looping; stopping", extra={
                "pid": process.pid, "exitcode": process.exitcode,
                "crashes": self._policy.limit, "window_s": self._policy.window_s})
            self._exit_code = CRASH_LOOP_EXIT_CODE
            self.stop()
            return
        log.warning("worker died; restarting it", extra={
            "slot": slot, "pid": process.pid, "exitcode": process.exitcode, "delay_s": delay})
        self._restart_at[slot] = time.monotonic() + delay

    def _signal_all(self, signum: int) -> None:
        for process in self._running.values():
            if process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signum)
