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
from midas.error_reports import Category, ErrorReport, Severity, record_error
from midas.http.keys import CLOCK, DATABASE, NOTIFICATIONS, SETTINGS
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


async def _server_error(client: Any, category: str = "booking", severity: str = "high",
                        **extra: Any) -> Any:
    """A server-side report, as the service's own code records one (trusted)."""
    app = client.server.app
    return await record_error(app[DATABASE], app[SETTINGS], ErrorReport(
        category=Category(category), severity=Severity(severity), message="Checkout failed",
        source="server", **extra), app[CLOCK]())


async def test_crossing_a_threshold_raises_one_alert_per_window(
    booking_client: Any, webhook: Any, booking_clock: ManualClock
) -> None:
    client = booking_client
    for n in range(8):  # booking: 3 per 5 minutes
        await _server_error(client, "booking", "medium", amount_at_risk=50_000,
                            currency="USD")
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
        await _server_error(client, "booking", "medium")
    assert len(await _alerts(client)) == 2
    await worker.run_until_idle()
    assert len(webhook.received) == 2 and len(await _ops_emails(client)) == 2


async def test_concurrent_payment_errors_raise_exactly_one_alert(
    booking_client: Any, webhook: Any
) -> None:
    client = booking_client
    await asyncio.gather(*(_server_error(client, "payment", "high") for _ in range(12)))
    assert len(await _alerts(client)) == 1
    await client.server.app[NOTIFICATIONS].run_until_idle()
    assert len(webhook.received) == 1


async def test_system_alerts_count_high_severity_only(booking_client: Any) -> None:
    client = booking_client
    for _ in range(5):
        await _server_error(client, "system", "medium")
    assert await _alerts(client) == []
    await _server_error(client, "system", "high")
    assert len(await _alerts(client)) == 1


def _contains(text: str, secret: str) -> bool:
    """``secret`` as a value of its own, not as digits inside a random id or a timestamp
    (a uuid4 holds "987" in about one case in 150)."""
    return re.search(rf"(?<![0-9A-Za-z]){re.escape(secret)}(?![0-9A-Za-z])", text) is not None


async def test_reported_client_errors_are_scrubbed_of_secrets(
    booking_services: Any, auth: Any
) -> None:
    client = await booking_services(client_error_threshold=1)  # this report alerts
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
    assert [a["category"] for a in page["alerts"]] == ["client"]
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
    customer = auth("customer")  # signed in: a limit of its own, per account
    signed_in = [(await client.post("/api/v1/errors", json=_report("user_experience"),
                                    headers=customer)).status for _ in range(4)]
    assert signed_in == [201, 201, 201, 429]
    assert (await client.post("/api/v1/errors", json=_report("user_experience"),
                              headers=auth("customer"))).status == 201
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


# -- client reports: recorded, never trusted -------------------------------------------------

HUGE = 1_250_000_000_000  # 12.5 billion USD in cents


async def test_an_anonymous_high_system_report_with_a_huge_amount_alerts_nobody(
    booking_client: Any, webhook: Any
) -> None:
    client = booking_client
    response = await client.post("/api/v1/errors", json=_report(
        "system", "high", amount_at_risk=HUGE, currency="USD"))
    assert response.status == 201, await response.text()
    assert await _alerts(client) == [] and await _ops_emails(client) == []
    async with client.server.app[DATABASE].acquire() as conn:
        [row] = await conn.fetch("SELECT * FROM err_reports")
    # Recorded as the client said, marked as the client's word.
    assert (row["source"], row["category"], row["severity"], row["amount_at_risk"]) == (
        "client", "system", "high", HUGE)
    await client.server.app[NOTIFICATIONS].run_until_idle()
    assert webhook.received == []


async def test_client_reports_alert_at_their_own_threshold_once_per_window(
    booking_services: Any, auth: Any, booking_clock: ManualClock
) -> None:
    client = await booking_services(client_error_threshold=5, client_error_rate_limit=100)
    categories = ["payment", "system", "booking", "authentication"]
    for n in range(4):  # any category and severity: they all count as client reports
        await client.post("/api/v1/errors", json=_report(categories[n], "high",
                                                         amount_at_risk=HUGE))
    assert await _alerts(client) == []
    await client.post("/api/v1/errors", json=_report("payment", "high"),
                      headers=auth("customer"))
    [alert] = await _alerts(client)
    assert alert["category"] == "client"
    assert "client" in alert["title"] and str(HUGE) not in str(dict(alert))
    for _ in range(10):
        await client.post("/api/v1/errors", json=_report("system", "high"))
    assert len(await _alerts(client)) == 1
    booking_clock.advance(timedelta(minutes=5, seconds=1))
    for _ in range(4):
        await client.post("/api/v1/errors", json=_report())
    assert len(await _alerts(client)) == 1
    await client.post("/api/v1/errors", json=_report())
    assert len(await _alerts(client)) == 2


async def test_a_thousand_anonymous_reports_raise_at_most_one_alert(
    booking_services: Any, webhook: Any
) -> None:
    """From one address (mostly refused by the per-IP limit) and from 500 addresses (each
    within its limit), in every category, high severity, huge amounts."""
    client = await booking_services(trust_forwarded_for=True)
    categories = [c.value for c in Category]

    async def send(n: int, address: str) -> int:
        response = await client.post("/api/v1/errors", headers={"X-Forwarded-For": address},
                                     json=_report(categories[n % len(categories)], "high",
                                                  amount_at_risk=HUGE, currency="USD"))
        await response.read()
        return response.status

    statuses = []
    for batch in range(0, 1000, 50):
        statuses += await asyncio.gather(*(
            send(n, "198.51.100.7" if n % 2 else f"198.18.{n // 256}.{n % 256}")
            for n in range(batch, batch + 50)))
    assert statuses.count(201) >= 500 and set(statuses) <= {201, 429}
    assert len(await _alerts(client)) <= 1
    await client.server.app[NOTIFICATIONS].run_until_idle()
    assert len(webhook.received) <= 1 and len(await _ops_emails(client)) <= 1
