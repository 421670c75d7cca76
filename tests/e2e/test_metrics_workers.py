"""/metrics under `midas serve --workers 2` reports the whole service, not one worker."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REQUESTS = 40
HEALTH_COUNT = re.compile(
    r'^midas_http_requests_total\{method="GET",route="/health",status="200"\} (\S+)$',
    re.MULTILINE,
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fetch(url: str, headers: dict[str, str] | None = None) -> str:
    # A fresh connection every time (urllib does not keep connections alive), so the
    # kernel spreads the requests over both workers.
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.read().decode()


@pytest.fixture
def service(pg_dsn: str, schema: str, tmp_path: Path) -> Iterator[str]:
    """`midas serve --workers 2` on a free port; its base URL once /health answers."""
    port = free_port()
    env = {**os.environ, "MIDAS_DATABASE_URL": pg_dsn, "MIDAS_DATABASE_SCHEMA": schema,
           "MIDAS_ENVIRONMENT": "test", "MIDAS_LOG_JSON": "false",
           "MIDAS_LOG_LEVEL": "WARNING", "MIDAS_DATA_DIR": str(tmp_path)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "midas.cli", "serve", "--workers", "2", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(process, base)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_until_serving(process: subprocess.Popen[bytes], base: str) -> None:
    deadline = time.monotonic() + 30
    while not _healthy(base):
        assert process.poll() is None, "midas serve exited"
        assert time.monotonic() < deadline, "service did not start"
        time.sleep(0.2)
    time.sleep(1.0)  # let the other worker start listening too, so both serve requests


def _healthy(base: str) -> bool:
    try:
        fetch(f"{base}/health")
        return True
    except OSError:
        return False


def health_total(text: str) -> float:
    match = HEALTH_COUNT.search(text)
    return float(match.group(1)) if match else 0.0


@pytest.mark.slow
def test_every_scrape_reports_the_requests_of_every_worker(
    service: str, auth: Callable[..., dict[str, str]]
) -> None:
    staff = auth("admin")
    before = [health_total(fetch(f"{service}/metrics", staff)) for _ in range(6)]
    for _ in range(REQUESTS):
        fetch(f"{service}/health")
    scrapes = [health_total(fetch(f"{service}/metrics", staff)) for _ in range(10)]
    # Each scrape counts every /health call so far (start-up probes included), whichever
    # worker answers it.
    assert len(set(before)) == 1, (before, scrapes)
    assert scrapes == [before[0] + REQUESTS] * len(scrapes), (before, scrapes)
