"""A log holding an event type's old version: every read sees the current version, and
the log keeps what was recorded.

``Booking.Confirmed`` is at version 2 (``reinstated`` on every confirmation). The log
below holds two version 1 confirmations, appended raw as an older release wrote them (one
on time, without ``late``; one after the hold expired, ``late``: true), and one recorded
by today's aggregate. Aggregates, time travel, projections rebuilt from zero, the
timeline, the hash chain and export/import must all agree.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import orjson
import pytest

from midas.audit.log import LogFilter
from midas.audit.timeline import booking_timeline
from midas.audit.timetravel import aggregate_as_of
from midas.audit.transfer import export, import_log
from midas.domain.booking_events import BOOKING_CONFIRMED
from midas.domain.bookings import Booking
from midas.domain.events import VERSION_KEY
from midas.domain.registry import AGGREGATES
from midas.eventstore import Database, EventStore, EventTypes, NewEvent, StreamAppend
from midas.eventstore.chain import verify_chain
from midas.eventstore.migrate import migrate
from midas.projection import catch_up
from midas.replay import verify
from projections.bookings import BookingsProjector
from projections.calendar import CalendarProjector
from projections.due_tasks import DueTasksProjector
from projections.kpis import KpisProjector
from tests.conftest import MIGRATIONS, drop_schema
from tests.integration.audit_support import repository

START = datetime(2027, 6, 1, 10, tzinfo=UTC)
HELD = START - timedelta(days=10)


def _held(customer: UUID, total: int) -> NewEvent:
    quote = {"category": "car", "location_code": "NYC", "time_zone": "America/New_York",
             "currency": "USD", "start": START.isoformat(),
             "end": (START + timedelta(days=1)).isoformat(), "rental": total, "insurance": 0,
             "tax": 0, "total_due": total, "security_deposit": 0}
    return NewEvent("Booking.Held", {
        "item_id": str(uuid4()), "customer_id": str(customer), "start": quote["start"],
        "end": quote["end"], "service_level": "standard", "delivered_level": "standard",
        "quote": quote, "policy_version": 1, "held_at": HELD.isoformat(),
        "hold_expires_at": (HELD + timedelta(minutes=30)).isoformat()})


def _confirmed_v1(**late: bool) -> NewEvent:
    return NewEvent("Booking.Confirmed", {"at": (HELD + timedelta(hours=1)).isoformat(),
                                          "amount_paid": 500, "start": START.isoformat(),
                                          **late})


async def _old_and_new_log(store: EventStore) -> tuple[UUID, UUID, UUID]:
    """On time (v1), reinstated after expiry (v1), confirmed by today's aggregate (v2)."""
    on_time, reinstated, today = uuid4(), uuid4(), uuid4()
    customer = uuid4()
    await store.append([StreamAppend(on_time, 0, [_held(customer, 500), _confirmed_v1()])])
    await store.append([StreamAppend(reinstated, 0, [
        _held(customer, 500),
        NewEvent("Booking.Expired", {"at": (HELD + timedelta(minutes=30)).isoformat()}),
        _confirmed_v1(late=True)])])
    await store.append([StreamAppend(today, 0, [_held(customer, 500)])])
    repo = repository(store)
    booking = await repo.get(today, cls=Booking, exclusive=True)
    booking.confirm_payment(HELD + timedelta(hours=1), 500)
    await repo.save(booking)
    return on_time, reinstated, today


async def _stored(db: Database, booking: UUID) -> dict[str, object]:
    async with db.acquire() as conn:
        data = await conn.fetchval(
            "SELECT data FROM events WHERE stream_id = $1 AND type = $2", booking,
            BOOKING_CONFIRMED)
    return orjson.loads(data)


@pytest.fixture
async def fresh(pg_dsn: str) -> AsyncIterator[Database]:
    database = Database(pg_dsn, f"t_{uuid4().hex[:16]}")
    await migrate(database, MIGRATIONS)
    await database.open()
    yield database
    await database.close()
    await drop_schema(pg_dsn, database.schema)


async def test_the_log_keeps_each_version_as_recorded_and_reads_the_current_one(
    db: Database, store: EventStore
) -> None:
    on_time, reinstated, today = await _old_and_new_log(store)
    first = {"at": (HELD + timedelta(hours=1)).isoformat(), "amount_paid": 500,
             "start": START.isoformat()}
    assert await _stored(db, on_time) == first
    assert await _stored(db, reinstated) == {**first, "late": True}
    assert await _stored(db, today) == {**first, "reinstated": False, VERSION_KEY: 2}

    for booking, was_reinstated in ((on_time, False), (reinstated, True), (today, False)):
        confirmed = [e for e in await store.read_stream(booking) if e.type == BOOKING_CONFIRMED]
        assert BOOKING_CONFIRMED.of(confirmed[0]) == {
            **first, "reinstated": was_reinstated, VERSION_KEY: 2}
    async with db.acquire() as conn:
        report = await verify_chain(conn)
    assert report.ok and report.checked == await store.head() == 7


async def test_aggregates_and_time_travel_read_old_confirmations(
    db: Database, store: EventStore
) -> None:
    on_time, reinstated, today = await _old_and_new_log(store)
    repo = repository(store)  # nothing cached: every stream is read from the log
    for booking in (on_time, reinstated, today):
        loaded = await repo.get(booking, cls=Booking)
        assert (loaded.state, loaded.amount_paid) == ("confirmed", 500)
    types = EventTypes(AGGREGATES)
    async with db.acquire() as conn:
        then = await aggregate_as_of(conn, types, reinstated, version=3)
        before = await aggregate_as_of(conn, types, reinstated, version=2)
    assert (then["state"]["state"], then["state"]["amount_paid"]) == ("confirmed", 500)
    assert before["state"]["state"] == "expired"


async def test_read_models_rebuilt_from_zero_agree_and_the_timeline_tells_it(
    db: Database, store: EventStore
) -> None:
    on_time, reinstated, today = await _old_and_new_log(store)
    projectors = (BookingsProjector(), KpisProjector(), CalendarProjector(),
                  DueTasksProjector())
    await catch_up(db, *projectors)
    async with db.acquire() as conn:
        rows = {r["id"]: (r["status"], r["amount_paid"]) for r in await conn.fetch(
            "SELECT id, status, amount_paid FROM bk_bookings")}
        confirmed = await conn.fetchval("SELECT sum(confirmed) FROM kpi_daily")
        check_outs = await conn.fetchval(
            "SELECT count(*) FROM due_tasks WHERE kind = 'check_out'")
        story = await booking_timeline(conn, reinstated)
    assert rows == {b: ("confirmed", 500) for b in (on_time, reinstated, today)}
    assert (confirmed, check_outs) == (3, 3)
    for projector in projectors:  # a rebuild from zero in a shadow schema: the same rows
        assert (await verify(db, projector)).ok, projector.name
    summaries = [entry["summary"] for entry in story]
    assert any("confirmed after its hold had expired (reinstated)" in s for s in summaries)
    assert story[-1]["data"]["reinstated"] is True


async def test_export_and_import_carry_the_old_version_byte_for_byte(
    db: Database, store: EventStore, fresh: Database
) -> None:
    on_time, _, _ = await _old_and_new_log(store)
    chunks: list[bytes] = []

    async def write(chunk: bytes) -> None:
        chunks.append(chunk)

    await export(db, LogFilter(), write)
    lines = b"".join(chunks).splitlines(keepends=True)
    exported = [orjson.loads(line) for line in lines]
    assert next(e["data"] for e in exported if e["type"] == BOOKING_CONFIRMED) == {
        "at": (HELD + timedelta(hours=1)).isoformat(), "amount_paid": 500,
        "start": START.isoformat()}

    report = await import_log(fresh, lines)
    assert report.ok and report.checked == len(lines)
    assert await _stored(fresh, on_time) == await _stored(db, on_time)
    async with db.acquire() as a, fresh.acquire() as b:
        assert (await verify_chain(a)).head_hash == (await verify_chain(b)).head_hash
