"""Embedded payments: outside production, with no Stripe key set, `midas serve` runs a
local Stripe and points the service at it.

The local Stripe is `localstripe` (a stateful implementation of Stripe's API on PyPI) in a
child process (`midas.payment_providers.localstripe_child`) on a free 127.0.0.1 port, with its
state in the data folder next to the embedded database. Its webhooks are registered
(localstripe's ``/_config/webhooks/<id>``) to the service's own Stripe webhook route with a
fresh random signing secret, so payments are confirmed exactly as with Stripe: intent,
payment, signed webhook. One child serves every worker of a `midas serve --workers N`, and
it stops with the service (and by itself if the service dies).
"""

from __future__ import annotations

import logging
import secrets
import selectors
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from midas.config import Settings

log = logging.getLogger(__name__)

LOCAL_KEY = "sk_test_midas_localstripe"  # localstripe accepts any `sk_` key
WEBHOOK_ID = "midas"
WEBHOOK_PATH = "/api/v1/webhooks/stripe"
STATE_FILE = "localstripe.pickle"


class LocalStripeError(RuntimeError):
    pass


@dataclass
class LocalStripe:
    """A running localstripe child process and its base URL."""

    url: str
    process: subprocess.Popen[bytes]

    def register_webhook(self, url: str, secret: str) -> None:
        """Have localstripe sign its events with `secret` and post them to `url`."""
        body = urllib.parse.urlencode({"url": url, "secret": secret}).encode()
        request = urllib.request.Request(f"{self.url}/_config/webhooks/{WEBHOOK_ID}",
                                         data=body, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status != 200:
                raise LocalStripeError(f"localstripe refused the webhook ({response.status})")

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_local_stripe(state: Path | None, timeout_s: float = 30.0) -> LocalStripe:
    """Start the child and wait until it listens (its first line names its port)."""
    command = [sys.executable, "-m", "midas.payment_providers.localstripe_child"]
    if state is not None:
        state.parent.mkdir(parents=True, exist_ok=True)
        command += ["--state", str(state)]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    try:
        port = _announced_port(process, timeout_s)
    except BaseException:
        process.kill()
        process.wait()
        raise
    finally:
        if process.stdout is not None:
            process.stdout.close()  # one line is all it writes there
    return LocalStripe(f"http://127.0.0.1:{port}", process)


def _announced_port(process: subprocess.Popen[bytes], timeout_s: float) -> int:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout_s
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while not selector.select(timeout=max(0.0, deadline - time.monotonic())):
            if time.monotonic() >= deadline:
                raise LocalStripeError(f"localstripe did not start within {timeout_s:g} s")
    line = process.stdout.readline().decode(errors="replace").split()
    if len(line) != 2 or line[0] != "port" or not line[1].isdigit():
        code = process.wait()
        raise LocalStripeError(f"localstripe did not start (exit code {code})")
    return int(line[1])


def service_url(settings: Settings) -> str:
    """Where this service can be reached from the same machine."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(settings.host,
                                                                      settings.host)
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.port}"


def wants_local_stripe(settings: Settings) -> bool:
    return (settings.environment != "production" and settings.local_stripe
            and not settings.stripe_configured)


@contextmanager
def embedded_payments(settings: Settings) -> Iterator[Settings]:
    """`settings` as they are when a Stripe key is set (or in production, or with
    MIDAS_LOCAL_STRIPE=false); otherwise pointed at a local Stripe running meanwhile."""
    if not wants_local_stripe(settings):
        yield settings
        return
    stripe = start_local_stripe(settings.data_dir / STATE_FILE,
                                settings.local_stripe_start_timeout_s)
    try:
        secret = f"whsec_{secrets.token_urlsafe(32)}"
        stripe.register_webhook(service_url(settings) + WEBHOOK_PATH, secret)
        log.info("payments: a local Stripe (localstripe) stands in for Stripe",
                 extra={"stripe_api_base": stripe.url})
        yield settings.model_copy(update={
            "stripe_api_base": stripe.url, "stripe_secret_key": SecretStr(LOCAL_KEY),
            "stripe_webhook_secret": SecretStr(secret)})
    finally:
        stripe.stop()
