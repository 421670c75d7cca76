"""`midas serve --workers 2` as real processes: a worker killed with SIGKILL is replaced
and the new one serves; workers that crash at start make the parent exit non-zero;
SIGTERM still stops everything cleanly."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import psutil
import pytest

Serve = Callable[..., subprocess.Popen[bytes]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def serve(pg_dsn: str, schema: str) -> Iterator[Serve]:
    """Start `midas serve --workers 2` on ``port``; stopped (SIGKILL) if still running."""
    started: list[subprocess.Popen[bytes]] = []

    def start(port: int, **settings: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, "MIDAS_DATABASE_URL": pg_dsn, "MIDAS_DATABASE_SCHEMA": schema,
               "MIDAS_ENVIRONMENT": "test", "MIDAS_LOG_JSON": "false", **settings}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        process = subprocess.Popen(
            [sys.executable, "-m", "midas.cli", "serve", "--workers", "2", "--port", str(port)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            for child in psutil.Process(process.pid).children(recursive=True):
                child.kill()
            process.kill()
            process.wait(timeout=10)


def workers(parent: int) -> set[int]:
    """The pids of the parent's live serving children (not multiprocessing's resource
    tracker, not a killed one the parent has yet to reap)."""
    found = set()
    for child in psutil.Process(parent).children():
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                found.add(child.pid)
        except psutil.Error:  # gone, or a zombie
            continue
    return found


def serving_pids(port: int, workers: set[int], connections: int = 40) -> set[int]:
    """Which workers answered: each request on a fresh connection, kept open while the
    server side of it is looked up among the workers' sockets."""
    served = set()
    for _ in range(connections):
        client = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            client.request("GET", "/ready")
            response = client.getresponse()
            assert response.status == 200
            response.read()
            ours = client.sock.getsockname()[1]
            for pid in workers:
                if any(c.raddr and c.raddr.port == ours and c.laddr.port == port
                       for c in psutil.Process(pid).net_connections("tcp")):
                    served.add(pid)
        finally:
            client.close()
    return served


def all_serve(port: int, expected: set[int]) -> bool:
    """Every expected worker answers (none refused while one is still starting)."""
    try:
        return serving_pids(port, expected) == expected
    except (OSError, http.client.HTTPException, AssertionError):
        return False


def until(check: Callable[[], object], process: subprocess.Popen[bytes],
          timeout: float = 60.0) -> object:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if process.poll() is not None:
            pytest.fail(f"midas serve exited {process.returncode}:\n"
                        + process.stdout.read().decode())  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.2)
    return result


@pytest.mark.slow
def test_a_killed_worker_is_replaced_and_the_new_one_serves(serve: Serve) -> None:
    port = free_port()
    parent = serve(port, MIDAS_WORKER_RESTART_BACKOFF_S="0.2")
    first = until(lambda: len(workers(parent.pid)) == 2 and workers(parent.pid), parent)
    until(lambda: all_serve(port, first), parent)

    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    replaced = until(lambda: (w := workers(parent.pid)) and len(w) == 2 and victim not in w
                     and w, parent)
    (newcomer,) = replaced - first
    # Capacity is back: the new process takes its share of fresh connections.
    until(lambda: all_serve(port, replaced), parent)
    assert newcomer in serving_pids(port, replaced)
    assert parent.poll() is None

    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=40) == 0
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
                   for pid in replaced)


@pytest.mark.slow
def test_workers_crashing_at_start_make_the_parent_exit_non_zero(serve: Serve) -> None:
    """The port is held by a socket without SO_REUSEPORT: every worker fails to bind."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        parent = serve(port, MIDAS_WORKER_RESTART_BACKOFF_S="0.1",
                       MIDAS_WORKER_CRASH_LIMIT="3", MIDAS_WORKER_CRASH_WINDOW_S="60")
        code = parent.wait(timeout=120)
        output = parent.stdout.read().decode()  # type: ignore[union-attr]
    assert code != 0, output
    assert output.count("worker died; restarting it") == 2, output
    assert "workers are crash-looping; stopping" in output


@pytest.mark.slow
def test_a_worker_that_keeps_dying_makes_the_parent_stop_the_rest_and_exit_non_zero(
    serve: Serve
) -> None:
    port = free_port()
    parent = serve(port, MIDAS_WORKER_RESTART_BACKOFF_S="0.1", MIDAS_WORKER_CRASH_LIMIT="3",
                   MIDAS_WORKER_CRASH_WINDOW_S="120")
    current = until(lambda: len(workers(parent.pid)) == 2 and workers(parent.pid), parent)
    until(lambda: all_serve(port, current), parent)
    survivor, victim = sorted(current)
    seen = set(current)
    for crash in range(1, 4):
        os.kill(victim, signal.SIGKILL)
        if crash == 3:
            break
        (victim,) = until(lambda: workers(parent.pid) - seen, parent)  # its replacement
        seen.add(victim)
    assert parent.wait(timeout=60) != 0  # gave up: the supervisor above sees it
    assert not psutil.pid_exists(survivor) or psutil.Process(survivor).status() == "zombie"
