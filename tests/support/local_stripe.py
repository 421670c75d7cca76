"""Tests against localstripe (an implementation of Stripe's API nobody here wrote), started
the way `midas serve` starts it: `midas.payment_providers.local_stripe.embedded_payments`."""

from __future__ import annotations

import json
import socket
import urllib.request
from typing import Any

from midas.payment_providers.local_stripe import LOCAL_KEY


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stripe_get(api_base: str, path: str) -> dict[str, Any]:
    """What localstripe itself holds (read with its API, as one would read Stripe's)."""
    request = urllib.request.Request(f"{api_base}{path}",
                                     headers={"Authorization": f"Bearer {LOCAL_KEY}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.loads(response.read()))
