"""The dashboard's live figures: the per-status counts the KPI projection keeps (so the
dashboard does not count bookings), and the items occupied now, equal what the log says,
whether a booking's events arrive in one batch or many, on replay into a shadow and after
a rebuild."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from midas.eventstore import Database, EventStore, NewEvent, StreamAppend
from midas.projection import catch_up, reset
from midas.replay import rebuild_blue_green, verify
from projections.kpis import KpisProjector
from queries.dashboard import dashboard, items_occupied, live_counts

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
_STATE = {"Booking.Held": "held", "Booking.Confirmed": "confirmed",
          "Booking.Expired": "expired", "Booking.CheckedOut": "active",
          "Booking.CheckedIn": "completed", "Booking.Cancelled": "cancelled"}


class Booking:
    """One booking's stream, written event by event."""

    def __init__(self, store: EventStore, item: UUID, start: datetime, hours: int) -> None:
        self.store, self.id, self.item = store, uuid4(), item
        self.start, self.end = start, start + timedelta(hours=hours)
        self.version = 0
        self.events: list[str] = []

    async def record(self, kind: str, **data: Any) -> Booking:
        at = (self.start - timedelta(days=2) + timedelta(minutes=len(self.events))).isoformat()
        await self.store.append([StreamAppend(self.id, self.version, [
            NewEvent(kind, {"at": at, **data})])])
        self.version += 1
        self.events.append(kind)
        return self

    async def hold(self) -> Booking:
        at = self.start - timedelta(days=2)
        quote = {"category": "car", "location_code": "NYC", "time_zone": "America/New_York",
                 "currency": "USD", "start": self.start.isoformat(),
                 "end": self.end.isoformat(), "total_due": 1_000_00}
        return await self.record("Booking.Held", **{
            "item_id": str(self.item), "customer_id": str(uuid4()),
            "start": self.start.isoformat(), "end": self.end.isoformat(), "quote": quote,
            "held_at": at.isoformat(),
            "hold_expires_at": (at + timedelta(minutes=30)).isoformat()})

    async def confirm(self, late: bool = False) -> Booking:
        return await self.record("Booking.Confirmed", amount_paid=1_000_00,
                                 start=self.start.isoformat(), late=late)

    async def check_out(self) -> Booking:
        return await self.record("Booking.CheckedOut", end=self.end.isoformat())

    @property
    def state(self) -> str:
        return _STATE[self.events[-1]]


async def _history(store: EventStore) -> list[Booking]:
    """Every status a booking can end in, and every way into it."""
    cars = [uuid4() for _ in range(4)]
    ago, soon = NOW - timedelta(hours=5), NOW + timedelta(days=3)

    async def booking(item: UUID, start: datetime, hours: int = 24) -> Booking:
        return await Booking(store, item, start, hours).hold()

    pending = await booking(cars[0], soon)
    expired = await (await booking(cars[0], soon + timedelta(days=2))).record("Booking.Expired")
    reinstated = await (await (await booking(cars[1], ago)).record("Booking.Expired")).confirm(
        late=True)  # expired, then confirmed by a late payment: occupies cars[1] now
    upcoming = await (await booking(cars[0], soon + timedelta(days=5))).confirm()
    out = await (await (await booking(cars[2], ago)).confirm()).check_out()
    returned = await (await (await (await booking(cars[3], ago)).confirm()).check_out(
        )).record("Booking.CheckedIn")  # returned early: no longer occupies cars[3]
    cancelled = await (await (await booking(cars[3], soon)).confirm()).record(
        "Booking.Cancelled", reason="customer")
    ended = await (await booking(cars[3], ago - timedelta(hours=10), hours=2)).confirm()
    return [pending, expired, reinstated, upcoming, out, returned, cancelled, ended]


async def _assert_live_figures(db: Database, bookings: list[Booking]) -> None:
    truth = Counter(b.state for b in bookings)
    occupied = {b.item for b in bookings
                if b.state in ("confirmed", "active") and b.start <= NOW < b.end}
    async with db.acquire() as conn:
        counted = {r["status"]: r["n"] for r in await conn.fetch(
            "SELECT status, count(*) AS n FROM kpi_bookings GROUP BY status")}
        kept = {s: n for s, n in (await live_counts(conn)).items() if n}
        assert kept == counted == dict(truth)
        assert await items_occupied(conn, NOW) == len(occupied)
        live = (await dashboard(conn, NOW))["live"]
    assert (live["pending_holds"], live["active_rentals"], live["items_occupied"]) == (
        truth["held"], truth["active"], len(occupied))


async def test_live_counts_follow_every_transition_batch_by_batch(
    db: Database, store: EventStore
) -> None:
    bookings = await _history(store)
    await catch_up(db, KpisProjector(), batch_size=1)  # each event its own batch
    await _assert_live_figures(db, bookings)

    pending, upcoming = bookings[0], bookings[3]
    await (await pending.confirm()).check_out()
    await upcoming.record("Booking.Cancelled", reason="customer")
    await catch_up(db, KpisProjector(), batch_size=1)
    await _assert_live_figures(db, bookings)
    assert bookings[0].state == "active"


async def test_live_counts_are_exact_on_rebuild_replay_and_blue_green(
    db: Database, store: EventStore
) -> None:
    bookings = await _history(store)
    projector = KpisProjector()
    await catch_up(db, projector, batch_size=3)
    async with db.acquire() as conn:
        await reset(conn, projector)
    await catch_up(db, KpisProjector(), batch_size=2000)  # a hold and its moves in one batch
    await _assert_live_figures(db, bookings)

    report = await verify(db, KpisProjector())  # replayed into a shadow, row by row
    assert report.ok, [t for t in report.tables if not t.ok]
    assert "kpi_live_counts" in {t.table for t in report.tables}

    await rebuild_blue_green(db, KpisProjector(), batch=4)
    await _assert_live_figures(db, bookings)
