"""External calendars in: a local aiohttp server plays the owner's calendar."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from aiohttp import web

from midas.http.keys import CALENDAR_POLLER, CLOCK

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
CAR = {"name": "Huracan", "category": "car", "location": "US-CA", "rate": 150_000}

WEEKLY = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Owner//Calendar//EN
BEGIN:VEVENT
UID:weekly-1@owner.test
DTSTAMP:20261101T000000Z
DTSTART:{start}
DTEND:{end}
RRULE:FREQ=WEEKLY;COUNT=4
SUMMARY:Owner drives
END:VEVENT
BEGIN:VEVENT
UID:free-1@owner.test
DTSTAMP:20261101T000000Z
DTSTART:20261105T100000Z
DTEND:20261105T140000Z
TRANSP:TRANSPARENT
SUMMARY:Not busy
END:VEVENT
END:VCALENDAR
"""
EMPTY = "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//Owner//Calendar//EN\nEND:VCALENDAR\n"


def weekly(start: str, end: str) -> bytes:
    return WEEKLY.format(start=start, end=end).replace("\n", "\r\n").encode()


class Source:
    """The external calendar: content, ETag, and misbehaviour the test switches on."""

    def __init__(self) -> None:
        self.body = weekly("20261103T100000Z", "20261103T140000Z")
        self.delay_s = 0.0
        self.status = 200
        self.requests: list[dict[str, str]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(dict(request.headers))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.status != 200:
            return web.Response(status=self.status)
        etag = '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=self.body, content_type="text/calendar", headers={"ETag": etag})


@pytest.fixture
async def source(aiohttp_server: Any) -> AsyncIterator[tuple[Source, str]]:
    src = Source()
    app = web.Application()
    app.router.add_get("/owner.ics", src.handle)
    server = await aiohttp_server(app)
    yield src, str(server.make_url("/owner.ics"))


@pytest.fixture
def start_client(booking_services: Callable[..., Any]) -> Callable[..., Any]:
    async def start(**overrides: Any) -> Any:  # the source serves on 127.0.0.1
        return await booking_services(calendar_poller_enabled=False,
                                      outbound_allowed_hosts=["127.0.0.1"], **overrides)

    return start


async def _post(client: Any, path: str, body: Any, headers: dict[str, str],
                status: int = 201) -> dict[str, Any]:
    response = await client.post(path, json=body, headers=headers)
    assert response.status == status, await response.text()
    return await response.json()


async def _book(client: Any, headers: dict[str, str], item: str, start: datetime,
                end: datetime) -> Any:
    return await client.post("/api/v1/bookings", json={
        "item_id": item, "start": start.isoformat(), "end": end.isoformat()}, headers=headers)


async def _setup(client: Any, auth: Any, url: str) -> tuple[str, str]:
    car = (await _post(client, "/api/v1/items", CAR, auth("admin")))["id"]
    sub = await _post(client, f"/api/v1/calendar/items/{car}/subscriptions",
                      {"name": "owner", "url": url}, auth("admin"))
    return car, sub["id"]


async def _poll(client: Any, auth: Any, sub: str) -> dict[str, Any]:
    return await _post(client, f"/api/v1/calendar/subscriptions/{sub}/poll", None,
                       auth("admin"), 200)


async def _blocks(client: Any, auth: Any, car: str, position: int) -> list[tuple[str, str]]:
    response = await client.get(f"/api/v1/items/{car}/calendar", params={
        "from": NOW.isoformat(), "to": (NOW + timedelta(days=60)).isoformat(),
        "min_position": str(position)}, headers=auth("admin"))
    assert response.status == 200, await response.text()
    return [(b["start"], b["end"]) for b in (await response.json())["busy"]
            if b["kind"] == "external_block"]


def _at(day: int, hour: int) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


async def test_weekly_block_is_imported_moved_and_removed(
    start_client: Any, auth: Any, source: tuple[Source, str],
) -> None:
    src, url = source
    client = await start_client()
    customer = auth("customer", uuid4())
    car, sub = await _setup(client, auth, url)
    first = await _poll(client, auth, sub)
    assert (first["status"], first["added"], first["refused"]) == ("synced", 4, 0)
    # Each Tuesday occurrence blocks booking; the transparent event does not.
    for day in (3, 10, 17, 24):
        refused = await _book(client, customer, car, _at(day, 11), _at(day, 12))
        assert refused.status == 409, (day, await refused.text())
    # Polling the same document again changes nothing (deterministic block ids).
    again = await _poll(client, auth, sub)
    assert (again["added"], again["removed"], again["unchanged"], again["position"]) == (
        0, 0, 4, 0)
    # The conditional GET of the background poller gets 304.
    poller = client.server.app[CALENDAR_POLLER]
    client.server.app[CLOCK].advance(timedelta(hours=1))
    assert await poller.poll_due() == 1
    assert src.requests[-1].get("If-None-Match")
    async with _db(client) as conn:
        assert await conn.fetchval(
            "SELECT last_error FROM cal_subscriptions WHERE id = $1::uuid", sub) is None

    # Moved to Wednesdays in the source: Tuesdays are free after the next poll.
    src.body = weekly("20261104T100000Z", "20261104T140000Z")
    moved = await _poll(client, auth, sub)
    assert (moved["added"], moved["removed"]) == (4, 4)
    assert (await _book(client, customer, car, _at(10, 11), _at(10, 12))).status == 201
    assert (await _book(client, customer, car, _at(11, 11), _at(11, 12))).status == 409

    # Deleted in the source: the Wednesdays are free too.
    src.body = EMPTY.encode()
    deleted = await _poll(client, auth, sub)
    assert (deleted["added"], deleted["removed"]) == (0, 4)
    assert (await _book(client, customer, car, _at(18, 11), _at(18, 12))).status == 201
    assert await _blocks(client, auth, car, deleted["position"]) == []


def _db(client: Any) -> Any:
    from midas.http.keys import DATABASE

    return client.server.app[DATABASE].acquire()


async def test_bad_feeds_are_rejected_and_leave_blocks_untouched(
    start_client: Any, auth: Any, source: tuple[Source, str],
) -> None:
    src, url = source
    client = await start_client(calendar_fetch_timeout_s=0.5, calendar_max_bytes=20_000)
    car, sub = await _setup(client, auth, url)
    good = await _poll(client, auth, sub)
    assert good["added"] == 4
    before = await _blocks(client, auth, car, good["position"])
    assert len(before) == 4

    async def failing_poll() -> str:
        response = await client.post(f"/api/v1/calendar/subscriptions/{sub}/poll",
                                     headers=auth("admin"))
        assert response.status == 422, await response.text()
        assert response.content_type == "application/problem+json"
        return (await response.json())["error"]

    src.body = b"this is not a calendar at all"
    assert await failing_poll() == "malformed"
    src.body = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nDTSTART:garbage\r\n"
    assert await failing_poll() == "malformed"
    src.body = b"BEGIN:VCALENDAR\r\n" + b"X-FILLER:" + b"x" * 50_000 + b"\r\nEND:VCALENDAR\r\n"
    assert await failing_poll() == "too_large"
    src.body = weekly("20261104T100000Z", "20261104T140000Z")
    src.delay_s = 2.0
    assert await failing_poll() == "unreachable"
    src.delay_s, src.status = 0.0, 500
    assert await failing_poll() == "http"

    assert await _blocks(client, auth, car, 0) == before
    errors = await client.get(f"/api/v1/calendar/integration-errors?subscription_id={sub}",
                              headers=auth("concierge"))
    assert errors.status == 200
    kinds = [e["kind"] for e in (await errors.json())["errors"]]
    assert sorted(kinds) == sorted(["malformed", "malformed", "too_large", "unreachable",
                                    "http"])
    listed = await client.get(f"/api/v1/calendar/items/{car}/subscriptions",
                              headers=auth("concierge"))
    view = (await listed.json())["subscriptions"][0]
    assert view["last_error"].startswith("http") and view["active_blocks"] == 4


async def test_a_block_over_a_booking_is_refused_and_recorded(
    start_client: Any, auth: Any, source: tuple[Source, str],
) -> None:
    _src, url = source
    client = await start_client()
    customer = auth("customer", uuid4())
    car, sub = await _setup(client, auth, url)
    held = await _book(client, customer, car, _at(10, 9), _at(10, 12))
    assert held.status == 201
    booking = (await held.json())["id"]
    outcome = await _poll(client, auth, sub)
    assert (outcome["added"], outcome["refused"]) == (3, 1)
    conflicts = await client.get(f"/api/v1/calendar/conflicts?item_id={car}",
                                 headers=auth("concierge"))
    found = (await conflicts.json())["conflicts"]
    assert len(found) == 1 and found[0]["conflicts"][0]["id"] == booking
    assert found[0]["start"].startswith("2026-11-10T10:00")
    state = await client.get(f"/api/v1/bookings/{booking}", headers=auth("admin"),
                             params={"min_position": held.headers["Midas-Position"]})
    assert (await state.json())["status"] == "held"
    # Polling again does not record it twice; once the booking is gone the block fits.
    await _poll(client, auth, sub)
    cancel = await _post(client, f"/api/v1/bookings/{booking}/cancel", {}, customer, 200)
    assert cancel["position"] > 0
    after = await _poll(client, auth, sub)
    assert (after["added"], after["refused"]) == (1, 0)
    open_ = await client.get(f"/api/v1/calendar/conflicts?item_id={car}",
                             headers=auth("admin"))
    assert (await open_.json())["conflicts"] == []
    every = await client.get(f"/api/v1/calendar/conflicts?item_id={car}&include_resolved=true",
                             headers=auth("admin"))
    resolved = (await every.json())["conflicts"]
    assert len(resolved) == 1 and resolved[0]["resolved_at"] is not None


async def test_ics_upload_and_unsubscribe(
    start_client: Any, auth: Any, source: tuple[Source, str],
) -> None:
    src, _url = source
    client = await start_client()
    admin = auth("admin")
    car = (await _post(client, "/api/v1/items", CAR, admin))["id"]
    upload = await client.post(f"/api/v1/calendar/items/{car}/import", data=src.body,
                               headers={**admin, "Content-Type": "text/calendar"})
    assert upload.status == 200, await upload.text()
    assert (await upload.json())["added"] == 4
    bad = await client.post(f"/api/v1/calendar/items/{car}/import", data=b"nope",
                            headers={**admin, "Content-Type": "text/calendar"})
    assert bad.status == 422
    # A second upload replaces the first one's blocks.
    replaced = await client.post(f"/api/v1/calendar/items/{car}/import",
                                 data=weekly("20261104T100000Z", "20261104T140000Z"),
                                 headers={**admin, "Content-Type": "text/calendar"})
    body = await replaced.json()
    assert (body["added"], body["removed"]) == (4, 4)
    sub = (await client.get(f"/api/v1/calendar/items/{car}/subscriptions", headers=admin))
    upload_sub = (await sub.json())["subscriptions"][0]["id"]
    gone = await client.delete(f"/api/v1/calendar/subscriptions/{upload_sub}", headers=admin)
    assert gone.status == 200 and (await gone.json())["removed"] == 4
    assert await _blocks(client, auth, car, (await gone.json())["position"]) == []


async def test_two_processes_never_poll_one_subscription_at_once(
    start_client: Any, auth: Any, source: tuple[Source, str],
) -> None:
    src, url = source
    first, second = await start_client(), await start_client()
    car, _ = await _setup(first, auth, url)
    src.delay_s = 0.3  # both passes overlap while the first one fetches
    polled = await asyncio.gather(first.server.app[CALENDAR_POLLER].poll_due(),
                                  second.server.app[CALENDAR_POLLER].poll_due())
    assert sorted(polled) == [0, 1] and len(src.requests) == 1
    assert len(await _blocks(first, auth, car, 0)) in (0, 4)  # projection may lag
    async with _db(first) as conn:
        assert await conn.fetchval("SELECT count(*) FROM events WHERE type = 'Item.Blocked'") == 4
