"""A customer's journey produces exactly the expected emails, once each, received by a real
SMTP server (aiosmtpd); reminders, VVIP concierge, disputes to legal; staff outbox queries."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from midas.config import Settings
from midas.eventstore import NewEvent, StreamAppend
from midas.http.keys import DATABASE, GATE, NOTIFICATIONS, STORE
from midas.projection import catch_up, reset
from midas.scheduler import ManualClock
from projections.notifications import NotificationsProjector
from tests.e2e.auth_support import bearer, signed_in
from tests.support.smtp import Inbox, closed_provider, parts, smtp_server

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
CAR = {"name": "Huracan <EVO>", "category": "car", "location": "US-CA", "rate": 150_000}
EMAIL = "ada@example.com"
PASSWORD = "correct-horse-battery-9"


@pytest.fixture
def inbox_and_provider() -> Any:
    with smtp_server() as pair:
        yield pair


@pytest.fixture
def inbox(inbox_and_provider: Any) -> Inbox:
    return inbox_and_provider[0]


@pytest.fixture
def settings(settings: Settings, inbox_and_provider: Any) -> Settings:
    """The service's settings with the test SMTP server; tests run the delivery worker."""
    return settings.model_copy(update={
        "smtp_providers": [inbox_and_provider[1]], "email_delivery_enabled": False,
        "legal_email": "legal@midas.test", "public_base_url": "https://midas.test",
    })


async def _register(client: Any, email: str = EMAIL, name: str = "Ada Lovelace") -> UUID:
    response = await client.post("/api/v1/auth/register", json={
        "email": email, "name": name, "password": PASSWORD,
        "consent": {"version": "2026-01", "accepted": True}})
    assert response.status == 201, await response.text()
    return UUID((await response.json())["id"])


async def _customer(client: Any, inbox: Inbox) -> UUID:
    """A registered customer who confirmed the emailed link (a booking is held only then)."""
    customer = await _register(client)
    await _settle(client)
    [message] = inbox.by_template("verify_email")
    found = re.search(r"#token=([A-Za-z0-9_-]+)", parts(message)["text/plain"])
    assert found is not None
    response = await client.post("/api/v1/auth/verify-email", json={"token": found.group(1)},
                                 headers=bearer(await signed_in(client, EMAIL, PASSWORD)))
    assert response.status == 200, await response.text()
    return customer


async def _item(client: Any, auth: Any) -> str:
    response = await client.post("/api/v1/items", json=CAR, headers=auth("admin"))
    assert response.status == 201, await response.text()
    return (await response.json())["id"]


async def _hold(client: Any, headers: dict[str, str], item: str, start: datetime,
                level: str = "standard") -> str:
    response = await client.post("/api/v1/bookings", headers=headers, json={
        "item_id": item, "start": start.isoformat(),
        "end": (start + timedelta(days=2)).isoformat(), "service_level": level})
    assert response.status == 201, await response.text()
    return (await response.json())["id"]


async def _payment_event(client: Any, type_: str, booking: str, customer: UUID,
                         **data: Any) -> int:
    event = {"booking_id": booking, "customer_id": str(customer), "amount": 935_550,
             "currency": "USD", "provider": "stripe", "reference": f"ref-{uuid4().hex[:6]}",
             "at": NOW.isoformat(), **data}
    result = await client.server.app[STORE].append(
        [StreamAppend(uuid4(), 0, [NewEvent(type_, event)])])
    return result.last_position


async def _settle(client: Any) -> Any:
    """Let the notifications projection reach the head, then deliver what is due."""
    app = client.server.app
    async with app[DATABASE].acquire() as conn:
        head = await conn.fetchval("SELECT coalesce(max(position), 0) FROM events")
    await app[GATE].wait(("notifications",), head)
    return await app[NOTIFICATIONS].run_until_idle()


async def _outbox(client: Any) -> list[Any]:
    async with client.server.app[DATABASE].acquire() as conn:
        return await conn.fetch("SELECT * FROM notif_outbox ORDER BY id")


async def test_a_booking_journey_sends_exactly_the_expected_emails_once_each(
    booking_client: Any, auth: Any, inbox: Inbox
) -> None:
    client = booking_client
    customer = await _customer(client, inbox)
    headers = auth("customer", customer)
    car = await _item(client, auth)
    booking = await _hold(client, headers, car, NOW + timedelta(days=10))
    confirmed = await client.post(f"/api/v1/bookings/{booking}/confirm",
                                  headers=auth("concierge"))
    assert confirmed.status == 200, await confirmed.text()
    cancelled = await client.post(f"/api/v1/bookings/{booking}/cancel", json={},
                                  headers=headers)
    assert cancelled.status == 200, await cancelled.text()
    await _payment_event(client, "Payment.Failed", booking, customer, reason="card_declined")
    await _payment_event(client, "Payment.Refunded", booking, customer, key=None)

    await _settle(client)
    expected = ["booking_cancelled", "booking_confirmed", "booking_held", "payment_failed",
                "refund_processed", "verify_email", "welcome"]
    await inbox.wait_for(len(expected))
    assert inbox.templates() == expected
    for message in inbox.messages:
        assert message["To"] == EMAIL
        body = parts(message)
        assert set(body) == {"text/plain", "text/html"}
        assert "Ada Lovelace" in body["text/plain"] and "Ada Lovelace" in body["text/html"]
        assert "https://midas.test/api/v1/notifications/opened/" in body["text/html"]
    held = parts(inbox.by_template("booking_held")[0])
    assert "Huracan &lt;EVO&gt;" in held["text/html"] and "Huracan <EVO>" in held["text/plain"]
    assert "How to pay" in held["text/plain"] and "(PST)" in held["text/plain"]  # LA time
    failed = parts(inbox.by_template("payment_failed")[0])["text/plain"]
    assert "USD 9,355.50" in failed and "concierge@midas.example" in failed
    # A second pass, and a rebuild of the process manager, send nothing more.
    assert (await _settle(client)).sent == 0
    app = client.server.app
    await app[GATE].wait(("notifications",), 1)
    projector = NotificationsProjector()
    async with app[DATABASE].acquire() as conn:
        await reset(conn, projector)
    await catch_up(app[DATABASE], projector)
    assert len(await _outbox(client)) == len(expected)
    assert (await _settle(client)).sent == 0
    assert len(inbox.messages) == len(expected)
    assert {row["status"] for row in await _outbox(client)} == {"sent"}
    # Sent emails purged from the outbox are not queued again by a later rebuild.
    async with app[DATABASE].acquire() as conn:
        await conn.execute("DELETE FROM notif_outbox")
        await reset(conn, projector)
    await catch_up(app[DATABASE], projector)
    assert await _outbox(client) == []
    # ...while an event after the rebuild still gets its email.
    await _payment_event(client, "Payment.Refunded", booking, customer, key="late")
    await _settle(client)
    await inbox.wait_for(len(expected) + 1)
    assert inbox.templates().count("refund_processed") == 2


async def test_a_reminder_24_hours_before_the_start_and_none_once_cancelled(
    booking_client: Any, auth: Any, inbox: Inbox, booking_clock: ManualClock
) -> None:
    client = booking_client
    customer = await _customer(client, inbox)
    headers = auth("customer", customer)
    car = await _item(client, auth)
    start = NOW + timedelta(days=3)
    kept = await _hold(client, headers, car, start)
    dropped = await _hold(client, headers, car, start + timedelta(days=5))
    for booking in (kept, dropped):
        response = await client.post(f"/api/v1/bookings/{booking}/confirm",
                                     headers=auth("concierge"))
        assert response.status == 200
    response = await client.post(f"/api/v1/bookings/{dropped}/cancel", json={},
                                 headers=headers)
    assert response.status == 200
    await _settle(client)
    booking_clock.set(start - timedelta(hours=24, seconds=1))
    assert (await _settle(client)).reminders == 0
    booking_clock.set(start - timedelta(hours=24))
    assert (await _settle(client)).reminders == 1
    booking_clock.set(start + timedelta(days=10))
    await _settle(client)
    reminders = [m for m in inbox.messages if m["X-Midas-Template"] == "booking_reminder"]
    assert len(reminders) == 1 and kept in parts(reminders[0])["text/plain"]


async def test_vvip_concierge_assignment_and_disputes_to_legal(
    booking_client: Any, auth: Any, inbox: Inbox
) -> None:
    client = booking_client
    customer = await _customer(client, inbox)
    concierge = await _register(client, "ana@midas.test", "Ana Concierge")
    car = await _item(client, auth)
    vvip = await _hold(client, auth("customer", customer), car, NOW + timedelta(days=4), "vvip")
    standard = await _hold(client, auth("customer", customer), car, NOW + timedelta(days=9))
    for booking in (vvip, standard):
        response = await client.put(f"/api/v1/bookings/{booking}/concierge",
                                    json={"concierge_id": str(concierge)},
                                    headers=auth("concierge"))
        assert response.status == 200, await response.text()
    await _payment_event(client, "Payment.DisputeOpened", vvip, customer, reason="fraudulent")
    await _settle(client)
    [assigned] = inbox.by_template("concierge_assigned")  # VVIP only
    assert "Ana Concierge" in parts(assigned)["text/plain"]
    [dispute] = inbox.by_template("dispute_opened")
    assert dispute["To"] == "legal@midas.test"
    assert vvip in parts(dispute)["text/plain"] and "fraudulent" in parts(dispute)["text/plain"]


async def test_staff_see_the_outbox_and_retry_dead_letters(
    booking_client: Any, auth: Any, inbox: Inbox, inbox_and_provider: Any,
    booking_clock: ManualClock,
) -> None:
    client = booking_client
    app = client.server.app
    working = app[NOTIFICATIONS].settings.smtp_providers
    app[NOTIFICATIONS].settings = app[NOTIFICATIONS].settings.model_copy(
        update={"smtp_providers": [closed_provider()]})
    await _register(client)
    await _settle(client)
    for minutes in (1, 5, 15):
        booking_clock.advance(timedelta(minutes=minutes))
        await _settle(client)
    response = await client.get("/api/v1/admin/notifications/outbox?status=dead",
                                headers=auth("concierge"))
    assert response.status == 200, await response.text()
    page = await response.json()
    [link, entry] = page["entries"]  # newest first: the registration's link, the welcome
    assert (entry["template"], entry["recipient"], entry["attempts"]) == ("welcome",
                                                                         "@account", 4)
    assert (link["template"], link["recipient"]) == ("verify_email", "@verification")
    assert page["counts"] == {"dead": 2}
    assert EMAIL not in await response.text()
    assert (await client.get("/api/v1/admin/notifications/outbox",
                             headers=auth("customer"))).status == 403
    retry = f"/api/v1/admin/notifications/outbox/{entry['id']}/retry"
    assert (await client.post(retry, headers=auth("concierge"))).status == 403
    app[NOTIFICATIONS].settings = app[NOTIFICATIONS].settings.model_copy(
        update={"smtp_providers": working})
    response = await client.post(retry, headers=auth("admin"))
    assert response.status == 200, await response.text()
    assert (await response.json())["status"] == "pending"
    assert (await client.post(retry, headers=auth("admin"))).status == 409
    assert (await _settle(client)).sent == 1
    await inbox.wait_for(1)
    stats = await (await client.get("/api/v1/admin/notifications/stats",
                                    headers=auth("admin"))).json()
    assert {(s["provider"], s["sent"], s["failed"]) for s in stats["stats"]} == {
        ("down", 0, 4), ("primary", 1, 0)}


async def test_the_tracking_pixel_counts_the_first_open_and_can_be_turned_off(
    booking_client: Any, auth: Any, inbox: Inbox
) -> None:
    client = booking_client
    await _register(client)
    await _settle(client)
    await inbox.wait_for(2)
    html = parts(inbox.by_template("welcome")[0])["text/html"]
    path = html.split("https://midas.test", 1)[1].split('"', 1)[0]
    for _ in range(2):
        response = await client.get(path)
        assert response.status == 200 and response.content_type == "image/gif"
    stats = await (await client.get("/api/v1/admin/notifications/stats",
                                    headers=auth("admin"))).json()
    assert [(s["template"], s["opened"]) for s in stats["stats"]] == [("verify_email", 0),
                                                                       ("welcome", 1)]
    app = client.server.app
    app[NOTIFICATIONS].settings = app[NOTIFICATIONS].settings.model_copy(
        update={"email_tracking": False})
    await _register(client, "bob@example.com", "Bob")
    await _settle(client)
    await inbox.wait_for(4)
    assert "<img" not in parts(inbox.messages[2])["text/html"]
    assert "<img" not in parts(inbox.messages[3])["text/html"]
