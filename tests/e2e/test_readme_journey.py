"""The README's journey, run as it is written: `midas serve` on its defaults (so with the
local Stripe it starts itself), then the README's shell block, then what it shows: the
booking confirmed by Stripe's signed webhook, the emails kept by the local mail drop,
the revenue on the dashboard. Also how the local Stripe lives and dies with `midas serve`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from midas.config import ROOT
from tests.e2e.test_cli import free_port, get

pytestmark = pytest.mark.slow
MARKER = "<!-- tests/e2e/test_readme_journey.py runs the next block as it is -->"
CHILD = "midas.payment_providers.localstripe_child"


@pytest.fixture
def env(pg_dsn: str, schema: str, tmp_path: Path) -> dict[str, str]:
    """A new user's `make run`, on the test's database (no Stripe key anywhere)."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("MIDAS_STRIPE")}
    return {**inherited, "MIDAS_DATABASE_URL": pg_dsn, "MIDAS_DATABASE_SCHEMA": schema,
            "MIDAS_ENVIRONMENT": "development", "MIDAS_LOG_JSON": "false",
            "MIDAS_DATA_DIR": str(tmp_path),
            "TMPDIR": str(tmp_path)}  # what a killed service cannot remove goes with the test


def wait_healthy(process: subprocess.Popen[bytes], port: int, within_s: float = 120) -> None:
    """Until `midas serve` answers /health (its output in the failure if it exits)."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            assert get(f"http://127.0.0.1:{port}/health") == 200
            return
        except OSError:
            assert process.poll() is None, process.stdout.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "service did not start"
            time.sleep(0.2)


def readme_journey() -> str:
    """The README's marked shell blocks, in order, as one script."""
    marked = (ROOT / "README.md").read_text().split(MARKER)[1:]
    return "".join(after.split("```sh\n", 1)[1].split("```", 1)[0] for after in marked)


def json_documents(output: str) -> list[Any]:
    """The JSON answers among a script's output (curl prints them back to back)."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while (at := output.find("{", at)) >= 0:
        document, end = decoder.raw_decode(output, at)
        found.append(document)
        at = end
    return found


def local_stripes(serve: subprocess.Popen[bytes]) -> list[psutil.Process]:
    children = psutil.Process(serve.pid).children(recursive=True)
    return [c for c in children if CHILD in " ".join(c.cmdline())]


def gone(process: psutil.Process, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def mail_kept(folder: Path, template: str, to: str, within_s: float = 30) -> bool:
    """Whether the local mail drop kept an email of `template` to `to` (waiting a while)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        for path in folder.glob(f"*-{template}-*.eml"):
            if f"To: {to}" in path.read_text():
                return True
        time.sleep(0.2)
    return False


def serve(env: dict[str, str], port: int, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "midas.cli", "serve", "--port", str(port), *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_the_readme_journey_reaches_a_paid_booking_seen_on_the_dashboard(
    env: dict[str, str]
) -> None:
    port = free_port()
    service = serve(env, port)
    try:
        wait_healthy(service, port)
        [stripe] = local_stripes(service)
        run = subprocess.run(["bash", "-eu", "-c", readme_journey()], cwd=ROOT,
                             env={**env, "API": f"http://127.0.0.1:{port}"},
                             capture_output=True, text=True, timeout=180)
        assert run.returncode == 0, run.stdout + run.stderr
        registered, verified, paid, outbox, dashboard, yachts = json_documents(run.stdout)
        assert "id" in registered
        assert (verified["id"], verified["email"]) == (registered["id"], "ada@example.com")
        assert (paid["status"], paid["provider"]) == ("succeeded", "stripe")
        assert paid["payment_intent"].startswith("pi_")
        [confirmed] = outbox["entries"]
        assert confirmed["template"] == "booking_confirmed"
        assert confirmed["status"] in ("pending", "sent")  # the mail drop takes it soon
        assert mail_kept(Path(env["MIDAS_DATA_DIR"]) / "mail", "booking_confirmed",
                         "ada@example.com")
        assert dashboard["live"]["revenue_today"] == [{
            "currency": "USD", "gross": paid["amount"], "refunds": 0, "net": paid["amount"]}]
        assert paid["amount"] > 0
        assert [i["name"] for i in yachts["items"]] == ["Blue Pearl"]  # read its own write
    finally:
        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=30) == 0
    assert gone(stripe, within_s=5)  # stopped with the service


def test_one_local_stripe_for_every_worker_and_none_left_behind_a_killed_service(
    env: dict[str, str]
) -> None:
    port = free_port()
    service = serve(env, port, "--workers", "2")
    workers: list[psutil.Process] = []
    try:
        wait_healthy(service, port)
        stripes = local_stripes(service)
        assert len(stripes) == 1
        assert stripes[0].ppid() == service.pid  # the serve process's, not a worker's
        workers = [c for c in psutil.Process(service.pid).children() if c not in stripes]
        assert len(workers) >= 2
    finally:
        service.kill()  # no clean shutdown: the child notices its parent is gone
        service.wait(timeout=30)
        for worker in workers:
            worker.kill()
    assert gone(stripes[0], within_s=10)


def test_a_configured_stripe_key_starts_no_local_stripe(env: dict[str, str]) -> None:
    port = free_port()
    service = serve({**env, "MIDAS_STRIPE_SECRET_KEY": "sk_test_configured"}, port)
    try:
        wait_healthy(service, port)
        assert local_stripes(service) == []
    finally:
        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=30) == 0


def test_production_refuses_to_start_without_a_stripe_key(env: dict[str, str]) -> None:
    production = {**env, "MIDAS_ENVIRONMENT": "production", "MIDAS_JWT_SECRET": "j" * 40,
                  "MIDAS_PUBLIC_BASE_URL": "https://midas.example"}
    refused = subprocess.run([sys.executable, "-m", "midas.cli", "serve", "--port",
                              str(free_port())], env=production, capture_output=True,
                             text=True, timeout=60)
    assert refused.returncode == 1
    assert "set MIDAS_STRIPE_SECRET_KEY to run in production" in refused.stderr
    keyed = {**production, "MIDAS_STRIPE_SECRET_KEY": "sk_live_configured"}
    refused = subprocess.run([sys.executable, "-m", "midas.cli", "serve", "--port",
                              str(free_port())], env=keyed, capture_output=True, text=True,
                             timeout=60)
    assert refused.returncode == 1
    assert "set MIDAS_STRIPE_WEBHOOK_SECRET to run in production" in refused.stderr
