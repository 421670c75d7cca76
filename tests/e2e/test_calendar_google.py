"""Google Calendar push against a local stand-in for Google's token endpoint and
Calendar API: bookings pushed, updated and deleted; events made there block the item;
a 410 on the sync token triggers a full resync."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from midas.http.keys import GATE
from tests.support.fake_google import FakeGoogle

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
CAR = {"name": "Huracan", "category": "car", "location": "US-CA", "rate": 150_000}
EMAIL = "midas-sync@project.iam.gserviceaccount.com"
CAL = "owner@group.calendar.google.com"


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
async def google(aiohttp_server: Any, key: rsa.RSAPrivateKey) -> AsyncIterator[Any]:
    fake = FakeGoogle(key.public_key(), EMAIL)
    server = await aiohttp_server(fake.app)
    fake.token_url = str(server.make_url("/token"))
    fake.base = str(server.make_url("/calendar/v3"))
    yield fake


@pytest.fixture
async def client(booking_services: Any, google: Any, key: rsa.RSAPrivateKey) -> Any:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return await booking_services(
        calendar_poller_enabled=False, google_calendar_api_base=google.base,
        google_oauth_token_url=google.token_url, google_service_account_email=EMAIL,
        google_service_account_key=SecretStr(pem))


async def _call(client: Any, method: str, path: str, body: Any, headers: dict[str, str],
                status: int = 200) -> dict[str, Any]:
    response = await client.request(method, path, json=body, headers=headers)
    assert response.status == status, await response.text()
    return await response.json()


async def _sync(client: Any, admin: dict[str, str], car: str, position: int) -> dict[str, Any]:
    await client.server.app[GATE].wait(("calendar",), position)
    return await _call(client, "POST", f"/api/v1/calendar/items/{car}/google/sync", None, admin)


def _at(day: int, hour: int) -> str:
    return datetime(2026, 11, day, hour, tzinfo=UTC).isoformat()


async def test_bookings_are_pushed_and_google_events_block(
    client: Any, google: FakeGoogle, auth: Any,
) -> None:
    admin, customer = auth("admin"), auth("customer", uuid4())
    car = (await _call(client, "POST", "/api/v1/items", CAR, admin, 201))["id"]
    await _call(client, "PUT", f"/api/v1/calendar/items/{car}/google", {"calendar_id": CAL},
                admin)
    held = await _call(client, "POST", "/api/v1/bookings", {
        "item_id": car, "start": _at(5, 10), "end": _at(6, 10)}, customer, 201)
    event_id = f"midas{UUID(held['id']).hex}"
    first = await _sync(client, admin, car, held["position"])
    assert (first["status"], first["pushed"]) == ("synced", 1), first
    pushed = google.events(CAL)[event_id]
    assert (pushed["status"], pushed["start"]["dateTime"]) == (
        "tentative", "2026-11-05T10:00:00+00:00")
    first_sequence = pushed["sequence"]
    # Nothing changed: nothing pushed again.
    assert (await _sync(client, admin, car, held["position"]))["pushed"] == 0

    confirmed = await _call(client, "POST", f"/api/v1/bookings/{held['id']}/confirm", None,
                            admin)
    second = await _sync(client, admin, car, confirmed["position"])
    assert second["pushed"] == 1
    assert google.events(CAL)[event_id]["status"] == "confirmed"
    assert google.events(CAL)[event_id]["sequence"] > first_sequence

    # The owner adds an event in Google: it blocks the item after the next sync.
    google.owner_writes(CAL, {"id": "ownertrip1", "summary": "Owner trip",
                              "start": {"dateTime": _at(20, 10)},
                              "end": {"dateTime": _at(20, 14)}})
    google.owner_writes(CAL, {"id": "ownerfree1", "transparency": "transparent",
                              "start": {"dateTime": _at(21, 10)},
                              "end": {"dateTime": _at(21, 14)}})
    pulled = await _sync(client, admin, car, confirmed["position"])
    assert (pulled["added"], pulled["pushed"]) == (1, 0), pulled
    refused = await client.post("/api/v1/bookings", json={
        "item_id": car, "start": _at(20, 11), "end": _at(20, 12)}, headers=customer)
    assert refused.status == 409
    assert (await client.post("/api/v1/bookings", json={
        "item_id": car, "start": _at(21, 11), "end": _at(21, 12)},
        headers=customer)).status == 201

    google.owner_deletes(CAL, "ownertrip1")
    freed = await _sync(client, admin, car, confirmed["position"])
    assert freed["removed"] == 1
    assert (await client.post("/api/v1/bookings", json={
        "item_id": car, "start": _at(20, 11), "end": _at(20, 12)},
        headers=customer)).status == 201

    cancelled = await _call(client, "POST", f"/api/v1/bookings/{held['id']}/cancel", {},
                            customer)
    gone = await _sync(client, admin, car, cancelled["position"])
    assert gone["deleted"] == 1
    assert google.events(CAL)[event_id]["status"] == "cancelled"
    assert google.token_requests == 1  # the access token is cached


async def test_an_expired_sync_token_triggers_a_full_resync(
    client: Any, google: FakeGoogle, auth: Any,
) -> None:
    admin, customer = auth("admin"), auth("customer", uuid4())
    car = (await _call(client, "POST", "/api/v1/items", CAR, admin, 201))["id"]
    await _call(client, "PUT", f"/api/v1/calendar/items/{car}/google", {"calendar_id": CAL},
                admin)
    held = await _call(client, "POST", "/api/v1/bookings", {
        "item_id": car, "start": _at(5, 10), "end": _at(6, 10)}, customer, 201)
    google.owner_writes(CAL, {"id": "ownertrip2", "start": {"date": "2026-11-25"},
                              "end": {"date": "2026-11-26"}})
    first = await _sync(client, admin, car, held["position"])
    assert (first["pushed"], first["added"]) == (1, 1)
    # Someone wiped our event in Google; the sync token has expired too.
    del google.events(CAL)[f"midas{UUID(held['id']).hex}"]
    google.expire_sync_tokens = True
    resync = await _sync(client, admin, car, held["position"])
    assert resync["full_resync"] is True and resync["pushed"] == 1
    assert (resync["added"], resync["removed"]) == (0, 0)  # the owner's block is kept
    assert f"midas{UUID(held['id']).hex}" in google.events(CAL)


async def test_google_failures_are_recorded(
    client: Any, google: FakeGoogle, auth: Any,
) -> None:
    admin = auth("admin")
    car = (await _call(client, "POST", "/api/v1/items", CAR, admin, 201))["id"]
    await _call(client, "PUT", f"/api/v1/calendar/items/{car}/google", {"calendar_id": CAL},
                admin)
    google.email = "someone-else@example.com"  # the token exchange is refused
    failed = await _sync(client, admin, car, 0)
    assert (failed["status"], failed["error"]) == ("error", "google")
    errors = await _call(client, "GET", f"/api/v1/calendar/integration-errors?item_id={car}",
                         None, admin)
    assert [e["kind"] for e in errors["errors"]] == ["google"]
    missing = await client.post(f"/api/v1/calendar/items/{uuid4()}/google/sync", headers=admin)
    assert missing.status == 404
