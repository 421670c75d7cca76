"""Projectors give the same rows whether a batch holds one event or a whole history.

The due tasks, notifications, payments, bookings, calendar and availability projectors
merge a batch's changes in memory before writing them; here a generated log (every
lifecycle of a booking, deposits, refunds, disputes, concierges, maintenance and external
blocks, events for rows that do not exist, and a replay of part of the log) is applied one
event per batch and then in large batches, and every table (the outbox and the timers
included) must be equal.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from midas.eventstore import Database, RecordedEvent
from midas.projection import DeferredWrites, Projector
from projections import batch as row_batches
from projections.availability import AvailabilityProjector
from projections.bookings import BookingsProjector
from projections.calendar import CalendarProjector
from projections.due_tasks import DueTasksProjector
from projections.kpis import KpisProjector
from projections.notifications import NotificationsProjector
from projections.payment_ledger import PaymentsProjector
from projections.profiles import ProfilesProjector

T0 = datetime(2026, 3, 1, 9, tzinfo=UTC)
Step = tuple[UUID, str, dict[str, Any]]  # stream, type, data


def _iso(at: datetime) -> str:
    return at.isoformat()


class History:
    """Random but plausible steps, each booking's in causal order, bookings interleaved."""

    def __init__(self, seed: int, items: list[UUID], concierges: list[UUID]) -> None:
        self.rnd = random.Random(seed)
        self.items, self.concierges = items, concierges

    def uuid(self) -> UUID:
        return UUID(int=self.rnd.getrandbits(128), version=4)

    def booking(self) -> list[Step]:
        rnd, b, p, customer = self.rnd, self.uuid(), self.uuid(), self.uuid()
        item = rnd.choice(self.items)
        held = T0 + timedelta(hours=rnd.randint(0, 2000))
        start = held + timedelta(hours=rnd.choice((2, 20, 30, 200)))
        end = start + timedelta(hours=rnd.randint(4, 90))
        total, deposit = rnd.randint(1_000, 90_000) * 100, rnd.choice((0, 500_00))
        money = {"booking_id": str(b), "customer_id": str(customer), "currency": "EUR",
                 "provider": "stripe"}
        quote = {"category": "yacht", "location_code": "NCE", "time_zone": "Europe/Paris",
                 "currency": "EUR", "total_due": total, "security_deposit": deposit}
        steps: list[Step] = [
            (b, "Booking.Held", {
                "item_id": str(item), "customer_id": str(customer), "start": _iso(start),
                "end": _iso(end), "service_level": "standard",
                "delivered_level": rnd.choice(("standard", "vvip")), "quote": quote,
                "held_at": _iso(held), "hold_expires_at": _iso(held + timedelta(minutes=30))}),
            (p, "Payment.Requested", {**money, "amount": total, "reference": None,
                                      "at": _iso(held), "deposit_amount": deposit,
                                      "start": _iso(start)}),
            (item, "Item.Reserved", {"booking_id": str(b), "start": _iso(start),
                                     "end": _iso(end), "at": _iso(held), "until": _iso(
                                         end + timedelta(hours=rnd.choice((0, 2))))}),
        ]
        if rnd.random() < 0.3:
            steps.append((p, "Payment.IntentRecorded", {**money, "amount": total,
                                                        "reference": "pi_2", "at": _iso(held)}))
        if rnd.random() < 0.25:
            steps.append((p, "Payment.Failed", {**money, "amount": total, "reference": "pi",
                                                "reason": "card_declined", "at": _iso(held)}))
        if rnd.random() < 0.12:
            return [*steps,
                    (b, "Booking.Expired", {"at": _iso(held + timedelta(minutes=30))}),
                    (item, "Item.Released", {"booking_id": str(b), "reason": "expired",
                                             "at": _iso(held), "rental_minutes": 0})]
        paid = held + timedelta(minutes=5)
        steps += [
            (p, "Payment.Succeeded", {**money, "amount": total, "reference": "pi",
                                      "at": _iso(paid), "start": _iso(start),
                                      "deposit_amount": deposit}),
            (b, "Booking.Confirmed", {"at": _iso(paid), "amount_paid": total,
                                      "start": _iso(start), "late": False}),
        ]
        if rnd.random() < 0.3:
            steps.append((b, "Booking.ConciergeAssigned",
                          {"concierge_id": str(rnd.choice(self.concierges))}))
        if deposit and rnd.random() < 0.7:
            steps += self.deposit(p, money, deposit, paid)
        roll = rnd.random()
        if roll < 0.3:
            steps += self.cancel(b, p, item, money, total, paid)
        elif roll < 0.85:
            steps += [(b, "Booking.CheckedOut", {"at": _iso(start), "end": _iso(end)}),
                      (b, "Booking.CheckedIn", {"at": _iso(end)})]
            if deposit and rnd.random() < 0.5:
                kind = rnd.choice(("Captured", "Released", "Lapsed"))
                steps.append((p, f"Payment.Deposit{kind}", {
                    **money, "amount": deposit, "reference": "dep", "reason": "damage",
                    "released": 0, "at": _iso(end)}))
        steps += self.afterwards(p, money, total, end)
        return steps

    def deposit(self, p: UUID, money: dict[str, Any], deposit: int, at: datetime
                ) -> list[Step]:
        steps: list[Step] = []
        for n in range(1, self.rnd.choice((2, 3)) + 1):
            kind = "Payment.DepositAuthorised" if n == 1 else "Payment.DepositReauthorised"
            steps.append((p, kind, {
                **money, "amount": deposit, "reference": f"dep{n}", "sequence": n,
                "previous_reference": None, "at": _iso(at),
                "expires_at": _iso(at + timedelta(days=7 * n))}))
        return steps

    def cancel(self, b: UUID, p: UUID, item: UUID, money: dict[str, Any], total: int,
               at: datetime) -> list[Step]:
        refund = total // self.rnd.choice((1, 2))
        steps: list[Step] = [
            (b, "Booking.Cancelled", {"at": _iso(at), "reason": "customer",
                                      "notice_minutes": 90, "refund_percentage": "50",
                                      "refund_amount": refund, "deposit_released": True}),
            (item, "Item.Released", {"booking_id": str(b), "reason": "cancelled",
                                     "at": _iso(at), "rental_minutes": 0}),
            (p, "Payment.RefundRequested", {**money, "amount": refund, "reference": "r1",
                                            "cause": "cancellation", "at": _iso(at)}),
        ]
        if self.rnd.random() < 0.3:
            steps.append((p, "Payment.RefundFailed", {**money, "amount": refund,
                                                      "reference": "r1", "reason": "x",
                                                      "at": _iso(at)}))
        else:
            steps.append((p, "Payment.Refunded", {**money, "amount": refund, "reference": "re",
                                                  "key": "r1", "at": _iso(at)}))
        return steps

    def afterwards(self, p: UUID, money: dict[str, Any], total: int, at: datetime
                   ) -> list[Step]:
        steps: list[Step] = []
        if self.rnd.random() < 0.2:
            steps.append((p, "Payment.Refunded", {**money, "amount": total // 4,
                                                  "reference": "re2", "key": None,
                                                  "at": _iso(at)}))
        if self.rnd.random() < 0.15:
            steps.append((p, "Payment.DisputeOpened", {**money, "amount": total,
                                                       "reference": "dp", "reason": "fraud",
                                                       "at": _iso(at)}))
            if self.rnd.random() < 0.6:
                steps.append((p, "Payment.DisputeClosed", {
                    **money, "amount": total, "reference": "dp",
                    "outcome": self.rnd.choice(("won", "lost")), "at": _iso(at)}))
        return steps

    def item_windows(self, item: UUID) -> list[Step]:
        window, block, at = str(self.uuid()), str(self.uuid()), T0
        span = {"start": _iso(at), "end": _iso(at + timedelta(hours=5))}
        steps: list[Step] = [
            (item, "Item.MaintenanceScheduled", {"window_id": window, **span, "note": "oil",
                                                 "planned": False}),
            (item, "Item.MaintenanceScheduled", {"window_id": window, **span, "note": "tyres",
                                                 "planned": False}),
            (item, "Item.Blocked", {"block_id": block, **span, "source": "airbnb"}),
            (item, "Item.MaintenanceRemoved", {"window_id": window}),
            (item, "Item.Unblocked", {"block_id": block}),
            (item, "Item.Unblocked", {"block_id": block}),
            (item, "Item.Blocked", {"block_id": block, **span, "source": "ical"}),
        ]
        return steps[: self.rnd.randint(1, len(steps))]

    def orphans(self) -> list[Step]:
        """Events about rows that were never created."""
        b, p = self.uuid(), self.uuid()
        money = {"booking_id": str(b), "customer_id": str(self.uuid()), "currency": "EUR",
                 "provider": "stripe"}
        return [
            (b, "Booking.Confirmed", {"at": _iso(T0), "amount_paid": 1, "start": _iso(T0)}),
            (b, "Booking.ConciergeAssigned", {"concierge_id": str(self.concierges[0])}),
            (b, "Booking.CheckedIn", {"at": _iso(T0)}),
            (p, "Payment.Succeeded", {**money, "amount": 5, "reference": "pi", "at": _iso(T0)}),
            (p, "Payment.DisputeOpened", {**money, "amount": 5, "reference": "dp",
                                          "reason": "fraud", "at": _iso(T0)}),
            (p, "Payment.DepositLapsed", {**money, "amount": 5, "reference": "dep",
                                          "at": _iso(T0)}),
            (self.rnd.choice(self.items), "Item.Released", {
                "booking_id": str(b), "reason": "x", "at": _iso(T0), "rental_minutes": 0}),
        ]

    def malformed(self) -> list[Step]:
        """Events the notifications projector skips, some after queueing an email."""
        b = self.uuid()
        held = self.booking()[0][2]
        return [
            (b, "Booking.Held", {**held, "end": None, "hold_expires_at": None, "start": None,
                                 "item_id": "not-a-uuid"}),
            (b, "Booking.Held", held),
            (b, "Booking.Confirmed", {"at": _iso(T0), "amount_paid": 1}),  # no start
            (b, "Booking.Cancelled", {"at": _iso(T0), "refund_amount": 1}),
            (b, "Booking.ConciergeAssigned", {"concierge_id": "nobody"}),
            (self.uuid(), "Payment.Failed", {"booking_id": "nope"}),
            (self.uuid(), "Payment.DisputeOpened", {"currency": "EUR"}),
        ]

    def log(self, bookings: int, malformed: bool = False) -> list[RecordedEvent]:
        runs = [self.booking() for _ in range(bookings)]
        runs += [self.item_windows(item) for item in self.items] + [self.orphans()]
        runs += [self.malformed() for _ in range(3)] if malformed else []
        steps = list(_interleave(self.rnd, runs))
        replayed = steps[len(steps) // 3: len(steps) // 3 + 40]  # delivered twice
        return _recorded(steps) + _replayed(_recorded(steps), replayed)


def _interleave(rnd: random.Random, runs: list[list[Step]]) -> Iterator[Step]:
    cursors = [0] * len(runs)
    live = [n for n, run in enumerate(runs) if run]
    while live:
        n = rnd.choice(live)
        yield runs[n][cursors[n]]
        cursors[n] += 1
        if cursors[n] == len(runs[n]):
            live.remove(n)


def _recorded(steps: Sequence[Step]) -> list[RecordedEvent]:
    versions: dict[UUID, int] = {}
    events = []
    for position, (stream, type_, data) in enumerate(steps, start=1):
        versions[stream] = version = versions.get(stream, 0) + 1
        events.append(RecordedEvent(position, stream, version, type_, data, {},
                                    T0 + timedelta(seconds=position), b""))
    return events


def _replayed(events: list[RecordedEvent], steps: Sequence[Step]) -> list[RecordedEvent]:
    """``steps`` (already in ``events``) read again, after the end of the log."""
    by_data = {id(e.data): e for e in events}
    return [by_data[id(data)]._replace(position=len(events) + n)
            for n, (_, _, data) in enumerate(steps, start=1)]


async def _seed(db: Database, items: list[UUID], concierges: list[UUID]) -> None:
    async with db.acquire() as conn:
        await conn.executemany(
            "INSERT INTO inv_items (id, name, category, location, rate, rate_unit, currency,"
            " buffer_minutes, minimum_minutes, status, version, registered_at, updated_at)"
            " VALUES ($1, $2, 'yacht', 'NCE', 1, 'day', 'EUR', 0, 60, 'active', 1, now(),"
            " now())", [(item, f"Yacht {n}") for n, item in enumerate(items[1:])])
        await conn.executemany(
            "INSERT INTO acc_accounts (id, email, name, role, status, version, registered_at,"
            " updated_at) VALUES ($1, $2, $3, 'staff', 'active', 1, now(), now())",
            [(c, f"c{n}@example.com", f"Concierge {n}") for n, c in enumerate(concierges[1:])])


async def _apply(db: Database, projector: Projector, events: list[RecordedEvent], size: int
                 ) -> None:
    events = [e for e in events if e.type in projector.handles]  # what the runner reads
    async with db.acquire() as conn:
        for n in range(0, len(events), size):
            async with conn.transaction():
                writes = DeferredWrites(conn)
                await projector.apply(writes, events[n: n + size])  # type: ignore[arg-type]
                await writes.flush()


_IGNORED = {  # set by the database, or random
    "notif_outbox": {"id", "tracking_id", "created_at", "updated_at"},
    "due_tasks": {"created_at"},
}


async def _rows(db: Database, tables: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    rows = {}
    async with db.acquire() as conn:
        for table in tables:
            ignored = _IGNORED.get(table, set())
            found = await conn.fetch(f"SELECT * FROM {table}")
            rows[table] = sorted(
                ({k: v for k, v in r.items() if k not in ignored} for r in found), key=repr)
    return rows


async def _outbox_order(db: Database) -> list[str]:
    async with db.acquire() as conn:
        return [r["dedupe_key"] for r in await conn.fetch(
            "SELECT dedupe_key FROM notif_outbox ORDER BY id")]


async def _reset(db: Database, tables: Sequence[str]) -> None:
    async with db.acquire() as conn:
        await conn.execute(f"TRUNCATE {', '.join(tables)}")
        if "notif_outbox" in tables:  # an empty outbox: emails are decided afresh
            await conn.execute("UPDATE notif_enqueued SET through = 0")


PROJECTORS = [DueTasksProjector, NotificationsProjector, PaymentsProjector, BookingsProjector,
              CalendarProjector, AvailabilityProjector, KpisProjector, ProfilesProjector]


@pytest.mark.parametrize("projector_type", PROJECTORS, ids=lambda p: p.__name__)
async def test_one_big_batch_writes_what_one_event_per_batch_writes(
    db: Database, projector_type: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    history = History(11, [UUID(int=n + 1) for n in range(4)],
                      [UUID(int=n + 100) for n in range(3)])
    await _seed(db, history.items, history.concierges)
    projector = projector_type()
    events = history.log(120, malformed=projector.name == "notifications")
    tables = [*projector.tables, *(["notif_outbox"] if projector.name == "notifications"
                                   else [])]
    await _apply(db, projector, events, 1)
    expected, expected_order = await _rows(db, tables), await _outbox_order(db)
    assert any(expected.values())
    copied = row_batches.COPIED_ROWS
    for size, copied_rows in ((7, copied), (500, copied), (500, 2)):
        monkeypatch.setattr(row_batches, "COPIED_ROWS", copied_rows)  # 2: new rows by COPY
        await _reset(db, tables)
        await _apply(db, projector, events, size)
        assert await _rows(db, tables) == expected, f"batches of {size}, {copied_rows}"
        assert await _outbox_order(db) == expected_order


def _deposit_lifecycle(released_first: bool) -> list[RecordedEvent]:
    b, p, at = uuid4(), uuid4(), T0 + timedelta(days=3)
    money = {"booking_id": str(b), "customer_id": str(uuid4()), "currency": "EUR",
             "provider": "stripe", "amount": 500_00, "reference": "dep", "at": _iso(T0)}
    steps: list[Step] = [
        (b, "Booking.Held", {"hold_expires_at": _iso(T0)}),
        (b, "Booking.Confirmed", {"start": _iso(at)}),
        (p, "Payment.Succeeded", {**money, "start": _iso(at), "deposit_amount": 500_00}),
        (p, "Payment.DepositAuthorised", {**money, "sequence": 1, "expires_at": _iso(at)}),
        (b, "Booking.CheckedOut", {"end": _iso(at)}),
        (b, "Booking.CheckedIn", {"at": _iso(at)}),
    ]
    if released_first:
        steps.insert(-1, (p, "Payment.DepositReleased", {**money, "reason": "early"}))
    return _recorded(steps)


@pytest.mark.parametrize("released_first", [False, True])
async def test_a_check_in_sees_the_deposit_timer_of_an_earlier_event_in_any_batch(
    db: Database, released_first: bool
) -> None:
    events = _deposit_lifecycle(released_first)
    expected = {"deposit_authorise"} | (
        set() if released_first else {"deposit_reauthorise", "deposit_lapse", "deposit_release"})
    for split in range(len(events)):  # one batch, then two split at each event in turn
        await _reset(db, ["due_tasks"])
        for batch in [events[:split], events[split:]] if split else [events]:
            await _apply(db, DueTasksProjector(), batch, len(batch))
        async with db.acquire() as conn:
            kinds = {r["kind"] for r in await conn.fetch("SELECT kind FROM due_tasks")}
        assert kinds == expected, f"split at event {split}"
