"""Error reporting and alerts over HTTP: thresholds raise one alert per window to a local
webhook (an aiohttp test server) and the ops email; reports are scrubbed of secrets."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web

from midas.config import Settings
from midas.http.keys import CLOCK, DATABASE, NOTIFICATIONS
from midas.scheduler import ManualClock


@pytest.fixture
async def webhook(aiohttp_server: Any) -> Any:
    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = await aiohttp_server(app)
    server.received = received
    return server


@pytest.fixture
def settings(settings: Settings, webhook: Any) -> Settings:
    return settings.model_copy(update={
        "alert_webhook_url": str(webhook.make_url("/hook")), "email_delivery_enabled": False,
        "client_error_rate_limit": 3,
    })


def _report(category: str = "booking", severity: str = "medium", **extra: Any) -> dict:
    return {"category": category, "severity": severity, "message": "Checkout failed",
            **extra}


async def _alerts(client: Any) -> list[Any]:
    async with client.server.app[DATABASE].acquire() as conn:
        return await conn.fetch("SELECT * FROM err_alerts ORDER BY id")


async def _ops_emails(client: Any) -> list[Any]:
    async with client.server.app[DATABASE].acquire() as conn:
        return await conn.fetch(
            "SELECT * FROM notif_outbox WHERE template = 'alert' AND recipient = '@ops'")


async def test_crossing_a_threshold_raises_one_alert_per_window(
    booking_client: Any, auth: Any, webhook: Any, booking_clock: ManualClock
) -> None:
    client = booking_client
    headers = auth("customer")
    for n in range(8):  # booking: 3 per 5 minutes
        response = await client.post("/api/v1/errors", json=_report(amount_at_risk=50_000,
                                                                     currency="USD"),
                                     headers=headers)
        assert response.status == 201, await response.text()
        assert len(await _alerts(client)) == (1 if n >= 2 else 0)
    worker = client.server.app[NOTIFICATIONS]
    assert (await worker.run_until_idle()).alerts == 1
    assert (await worker.run_until_idle()).alerts == 0
    [payload] = webhook.received
    assert "booking" in payload["text"] and payload["attachments"][0]["fields"]
    assert "USD" in str(payload)  # the amount at risk
    assert len(await _ops_emails(client)) == 1
    # A later window: a new alert once the threshold is reached again.
    booking_clock.advance(timedelta(minutes=5, seconds=1))
    for _ in range(3):
        await client.post("/api/v1/errors", json=_report(), headers=headers)
    assert len(await _alerts(client)) == 2
    await worker.run_until_idle()
    assert len(webhook.received) == 2 and len(await _ops_emails(client)) == 2


async def test_concurrent_payment_errors_raise_exactly_one_alert(
    booking_client: Any, auth: Any, webhook: Any
) -> None:
    client = booking_client
    headers = auth("customer")
    responses = await asyncio.gather(*(
        client.post("/api/v1/errors", json=_report("payment", "high"), headers=headers)
        for _ in range(12)))
    assert {r.status for r in responses} == {201}
    assert len(await _alerts(client)) == 1
    await client.server.app[NOTIFICATIONS].run_until_idle()
    assert len(webhook.received) == 1


async def test_system_alerts_count_high_severity_only(booking_client: Any, auth: Any) -> None:
    client = booking_client
    for _ in range(5):
        await client.post("/api/v1/errors", json=_report("system", "medium"),
                          headers=auth("customer"))
    assert await _alerts(client) == []
    await client.post("/api/v1/errors", json=_report("system", "high"), headers=auth("admin"))
    assert len(await _alerts(client)) == 1


def _contains(text: str, secret: str) -> bool:
    """``secret`` as a value of its own, not as digits inside a random id or a timestamp
    (a uuid4 holds "987" in about one case in 150)."""
    return re.search(rf"(?<![0-9A-Za-z]){re.escape(secret)}(?![0-9A-Za-z])", text) is not None


async def test_reported_client_errors_are_scrubbed_of_secrets(
    booking_client: Any, auth: Any
) -> None:
    client = booking_client
    secrets = ["hunter2-pass", "4242424242424242", "987", "tok_live_abc", "eyJhbGc.eyJzdWI.sig"]
    body = _report("payment", "high", message="card 4242424242424242 declined, Bearer "
                   "eyJhbGc.eyJzdWI.sig", amount_at_risk=935_550, currency="USD",
                   request_id="req-123", app="ios/4.2", context={
                       "screen": "checkout", "password": "hunter2-pass",
                       "card": {"number": "4242424242424242", "cvc": "987"},
                       "payment": {"token": "tok_live_abc", "method": "card", "last_step": 3},
                       "headers": {"Authorization": "Bearer eyJhbGc.eyJzdWI.sig"},
                   })
    response = await client.post("/api/v1/errors", json=body)  # anonymous: rate-limited
    assert response.status == 201, await response.text()
    listing = await client.get("/api/v1/admin/errors?category=payment",
                               headers=auth("concierge"))
    assert listing.status == 200, await listing.text()
    text = await listing.text()
    for secret in secrets:
        assert not _contains(text, secret)
    page = await listing.json()
    [error] = page["errors"]
    assert error["context"] == {"screen": "checkout", "payment": {"method": "card",
                                "last_step": 3}, "headers": {}, "app": "ios/4.2"}
    assert (error["request_id"], error["amount_at_risk"], error["source"]) == (
        "req-123", 935_550, "client")
    assert page["counts"] == {"payment": 1} and page["window_counts"] == {"payment": 1}
    assert len(page["alerts"]) == 1
    async with client.server.app[DATABASE].acquire() as conn:
        stored = str([dict(r) for r in await conn.fetch("SELECT * FROM err_reports")])
        stored += str([dict(r) for r in await conn.fetch("SELECT * FROM err_alerts")])
        stored += str([dict(r) for r in await conn.fetch("SELECT * FROM notif_outbox")])
    for secret in secrets:
        assert not _contains(stored, secret)
    assert (await client.get("/api/v1/admin/errors", headers=auth("customer"))).status == 403


async def test_anonymous_reports_are_rate_limited_per_ip(booking_client: Any, auth: Any
                                                         ) -> None:
    client = booking_client
    statuses = [(await client.post("/api/v1/errors", json=_report("user_experience"))).status
                for _ in range(4)]
    assert statuses == [201, 201, 201, 429]
    signed_in = await client.post("/api/v1/errors", json=_report("user_experience"),
                                  headers=auth("customer"))
    assert signed_in.status == 201
    invalid = await client.post("/api/v1/errors", json={"category": "nope", "message": "x"},
                                headers=auth("customer"))
    assert invalid.status == 422


async def test_server_errors_are_recorded_and_alert(
    aiohttp_client: Any, settings: Settings, webhook: Any, auth: Any
) -> None:
    from midas.app import create_app

    app = create_app(settings)

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("password=hunter2 leaked into an exception")

    app.router.add_get("/api/v1/boom", boom)
    client = await aiohttp_client(app)
    response = await client.get("/api/v1/boom", headers={"X-Request-Id": "req-boom"})
    assert response.status == 500
    async with app[DATABASE].acquire() as conn:
        [row] = await conn.fetch("SELECT * FROM err_reports")
    assert (row["category"], row["severity"], row["source"], row["request_id"]) == (
        "system", "high", "server", "req-boom")
    assert "hunter2" not in str(dict(row))
    assert len(await _alerts(client)) == 1  # system: 1 high error
    await app[NOTIFICATIONS].run_until_idle(app[CLOCK]())
    assert len(webhook.received) == 1
