"""KPIs: a daily fact table by currency, category, location and item, and one
row per booking for what is computed at query time (utilisation, forecast, pace).

Days are the local date of the event's business instant (its ``at``; ``held_at`` for a
hold) in the booking location's time zone (the quote's ``time_zone``). Revenue: gross is
``Payment.Succeeded`` on the day it succeeded, refunds ``Payment.Refunded`` on their day,
net = gross - refunds; of it, ``extras`` and ``pass_through`` (the APA: collected, not
revenue) are the shares each payment and refund recorded, net of refunds, and the rental
is the rest. Money is always per currency, never converted. The dashboard's
live counts (bookings now in each status) are kept with the booking rows they count.

An applied change (``Booking.Changed``) moves the booking to its new item, category,
location, dates and total: its row (what utilisation and the forecast read) follows it, and
its events from the change on (its refund, later instalments, its completion) count for
the new item, category and location; what came before stays where it was counted. The
payment of a change that costs more comes before the change it applies: while the change
awaits it, the row keeps its PaymentIntent and new dimensions, so that payment counts for
the new item too (a change that lapses forgets them).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from functools import lru_cache
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg
import orjson

from midas.domain.booking_events import (
    BOOKING_CANCELLED,
    BOOKING_CHANGE_LAPSED,
    BOOKING_CHANGE_REQUESTED,
    BOOKING_CHANGED,
    BOOKING_CHECKED_IN,
    BOOKING_CONFIRMED,
    BOOKING_EXPIRED,
    BOOKING_HELD,
    STATUS_AFTER,
    BookingTerms,
    moved,
)
from midas.domain.payment_events import (
    PAYMENT_DISPUTE_CLOSED,
    PAYMENT_DISPUTE_OPENED,
    PAYMENT_REFUNDED,
    PAYMENT_SUCCEEDED,
    payment_facts,
)
from midas.eventstore import RecordedEvent
from projections.batch import as_columns, begun, unnest_rows, uuid_of

DAILY_TABLE = "kpi_daily"
TOTALS_TABLE = "kpi_daily_totals"  # per day and currency only (the dashboard)
BOOKINGS_TABLE = "kpi_bookings"
LIVE_TABLE = "kpi_live_counts"  # bookings now in each status (the dashboard)
UNKNOWN = UUID(int=0)
COUNTERS = ("gross", "refunds", "held", "confirmed", "confirmed_value", "cancelled",
            "expired", "completed", "disputes", "disputed_amount", "disputes_lost",
            "extras", "pass_through")
# The daily counter each status-moving event adds to (a check-out counts nowhere).
_DAILY: dict[str, str] = {BOOKING_CONFIRMED: "confirmed", BOOKING_CHECKED_IN: "completed",
                          BOOKING_CANCELLED: "cancelled", BOOKING_EXPIRED: "expired"}
Dims = tuple[str, str, UUID, str, str]  # category, location, item, time zone, currency


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_day(instant: str | datetime, time_zone: str) -> date:
    at = datetime.fromisoformat(instant) if isinstance(instant, str) else instant
    return at.astimezone(_zone(time_zone)).date()


DIMS_CACHE = 50_000  # bookings whose fixed facts are kept in memory


# Live counts move with kpi_bookings rows in the same statement: a status leaves as many
# rows as it had before the statement (the CTEs all read that snapshot), and enters
# as many as were written, so the counts stay exact on replay and rebuild alike. A count
# that reaches zero is deleted: the table must not depend on how events were batched.
_COUNT_MOVES = (
    f"MERGE INTO {LIVE_TABLE} t USING (SELECT status, sum(n) AS n FROM moves"
    " GROUP BY status HAVING sum(n) <> 0) m ON t.status = m.status"
    " WHEN MATCHED AND t.bookings + m.n = 0 THEN DELETE"
    " WHEN MATCHED THEN UPDATE SET bookings = t.bookings + m.n"
    " WHEN NOT MATCHED THEN INSERT (status, bookings) VALUES (m.status, m.n)"
)
_INSERT_BOOKINGS = (
    f"WITH added AS (INSERT INTO {BOOKINGS_TABLE} (booking_id, customer_id, item_id,"
    " category, location, time_zone, currency, total_due, held_at, starts_at, ends_at,"
    " status, confirmed_at, cancelled_at, amount_paid, paid, refunded) SELECT * FROM unnest("
    "$1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[],"
    " $8::bigint[], $9::timestamptz[], $10::timestamptz[], $11::timestamptz[], $12::text[],"
    " $13::timestamptz[], $14::timestamptz[], $15::bigint[], $16::bigint[], $17::bigint[])"
    " ON CONFLICT DO NOTHING RETURNING status),"
    " moves AS (SELECT status, 1 AS n FROM added) " + _COUNT_MOVES
)
_MOVE_BOOKINGS = (
    f"UPDATE {BOOKINGS_TABLE} b SET item_id = c.item_id, category = c.category,"
    " location = c.location, time_zone = c.time_zone, currency = c.currency,"
    " total_due = c.total_due, starts_at = c.starts_at, ends_at = c.ends_at"
    " FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],"
    " $7::bigint[], $8::timestamptz[], $9::timestamptz[]) AS c(booking_id, item_id, category,"
    " location, time_zone, currency, total_due, starts_at, ends_at)"
    " WHERE b.booking_id = c.booking_id"
)
_PEND_BOOKINGS = (
    f"UPDATE {BOOKINGS_TABLE} b SET change_reference = c.reference,"
    " change_dims = c.dims::jsonb FROM unnest($1::uuid[], $2::text[], $3::text[])"
    " AS c(booking_id, reference, dims) WHERE b.booking_id = c.booking_id"
)
_UPDATE_BOOKINGS = (
    "WITH change AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[],"
    " $4::timestamptz[], $5::bigint[], $6::bigint[], $7::bigint[])"
    " AS c(booking_id, status, confirmed_at, cancelled_at, amount_paid, paid, refunded)),"
    f" was AS (SELECT b.status FROM {BOOKINGS_TABLE} b JOIN change c USING (booking_id)"
    "  WHERE c.status IS NOT NULL),"
    f" now_is AS (UPDATE {BOOKINGS_TABLE} b SET status = coalesce(c.status, b.status),"
    "  confirmed_at = coalesce(c.confirmed_at, b.confirmed_at),"
    "  cancelled_at = coalesce(c.cancelled_at, b.cancelled_at),"
    "  amount_paid = coalesce(c.amount_paid, b.amount_paid), paid = b.paid + c.paid,"
    "  refunded = b.refunded + c.refunded FROM change c WHERE b.booking_id = c.booking_id"
    "  RETURNING c.status),"
    " moves AS (SELECT status, -1 AS n FROM was"
    "  UNION ALL SELECT status, 1 FROM now_is WHERE status IS NOT NULL) " + _COUNT_MOVES
)
_DAILY_KEY = ("day", "currency", "category", "location", "item_id")
_UPSERT_DAILY = (
    "(day, currency, category, location, item_id) DO UPDATE SET "
    + ", ".join(f"{c} = {DAILY_TABLE}.{c} + EXCLUDED.{c}" for c in COUNTERS)
)
_UPSERT_TOTALS = (
    "(day, currency) DO UPDATE SET "
    + ", ".join(f"{c} = {TOTALS_TABLE}.{c} + EXCLUDED.{c}" for c in COUNTERS)
)
# The batch's daily facts, and their sums per day and currency added to the totals.
_UPSERT_DAILY_AND_TOTALS = (
    "WITH d AS (SELECT * FROM {source}),"
    f" daily AS (INSERT INTO {DAILY_TABLE} ({', '.join((*_DAILY_KEY, *COUNTERS))})"
    f" SELECT * FROM d ON CONFLICT {_UPSERT_DAILY})"
    f" INSERT INTO {TOTALS_TABLE} (day, currency, {', '.join(COUNTERS)})"
    f" SELECT day, currency, {', '.join(f'sum({c})' for c in COUNTERS)} FROM d"
    f" GROUP BY day, currency ON CONFLICT {_UPSERT_TOTALS}"
)


class _Batch:
    """A batch's changes, gathered in memory and written with three statements: new
    bookings, moved bookings (each with the live counts), daily facts (with the totals).
    A booking held in the batch is written once, with what later events did to it."""

    def __init__(self) -> None:
        # booking -> its fixed facts, and its changes (as in ``updates``) since the hold
        self.inserts: dict[UUID, tuple[tuple[Any, ...], list[Any]]] = {}
        self.updates: dict[UUID, list[Any]] = {}  # status, confirmed, cancelled, paid, +, +
        # booking -> item, category, location, time zone, currency, total, start, end
        self.moves: dict[UUID, tuple[Any, ...]] = {}
        # booking -> the payment of the change it awaits, and that change's dims (or None)
        self.pending: dict[UUID, tuple[str | None, str | None]] = {}
        self.daily: dict[tuple[Any, ...], list[int]] = {}

    def hold(self, booking: UUID, facts: tuple[Any, ...]) -> None:
        if booking not in self.inserts:  # ON CONFLICT DO NOTHING
            self.inserts[booking] = (facts, ["held", None, None, None, 0, 0])

    def move(self, booking: UUID, dims: Dims, total_due: int, start: datetime,
             end: datetime) -> None:
        """A change moved the booking: a booking held in the batch is written moved."""
        category, location, item, zone, currency = dims
        moved = (item, category, location, zone, currency, total_due, start, end)
        held = self.inserts.get(booking)
        if held is None:
            self.moves[booking] = moved
            return
        facts = held[0]
        self.inserts[booking] = ((facts[0], *moved[:6], facts[7], start, end), held[1])

    def pend(self, booking: UUID, awaited: tuple[str, Dims] | None) -> None:
        if awaited is None:
            self.pending[booking] = (None, None)
            return
        reference, (category, location, item, zone, currency) = awaited
        self.pending[booking] = (reference, orjson.dumps(
            [category, location, str(item), zone, currency]).decode())

    def update(self, booking: UUID) -> list[Any]:
        held = self.inserts.get(booking)
        if held is not None:
            return held[1]
        return self.updates.setdefault(booking, [None, None, None, None, 0, 0])

    def add(self, dims: Dims, currency: str, at: str, **counters: int) -> None:
        category, location, item, zone, _ = dims
        key = (local_day(at, zone), currency, category, location, item)
        row = self.daily.get(key)
        if row is None:
            row = self.daily[key] = [0] * len(COUNTERS)
        for col, value in counters.items():
            row[_INDEX[col]] += value

    async def write(self, conn: asyncpg.Connection) -> None:
        if self.inserts:
            await conn.execute(_INSERT_BOOKINGS, *as_columns([
                (booking, *facts, status, confirmed, cancelled, amount_paid or 0, paid, refunded)
                for booking, (facts, (status, confirmed, cancelled, amount_paid, paid, refunded))
                in self.inserts.items()]))
        if self.updates:
            await conn.execute(_UPDATE_BOOKINGS, *as_columns(
                [(b, *v) for b, v in self.updates.items()]))
        if self.moves:
            await conn.execute(_MOVE_BOOKINGS, *as_columns(
                [(b, *v) for b, v in self.moves.items()]))
        if self.pending:
            await conn.execute(_PEND_BOOKINGS, *as_columns(
                [(b, *v) for b, v in self.pending.items()]))
        if self.daily:
            source, arrays = await unnest_rows(conn, DAILY_TABLE, (*_DAILY_KEY, *COUNTERS),
                                               [(*k, *v) for k, v in self.daily.items()])
            await conn.execute(_UPSERT_DAILY_AND_TOTALS.format(source=source), *arrays)


_INDEX = {col: n for n, col in enumerate(COUNTERS)}
_CHANGES = (BOOKING_CHANGE_REQUESTED, BOOKING_CHANGED, BOOKING_CHANGE_LAPSED)
_BOOKING_EVENTS = frozenset({BOOKING_HELD, *_CHANGES, *STATUS_AFTER})


def _dims_of(terms: BookingTerms) -> Dims:
    """The dimensions of a change's terms."""
    q = terms["quote"]
    return (q["category"], q["location_code"], uuid_of(terms["item_id"]),
            q.get("time_zone") or "UTC", q["currency"])


class KpisProjector:
    name = "kpis"
    tables = (DAILY_TABLE, TOTALS_TABLE, BOOKINGS_TABLE, LIVE_TABLE)
    handles = frozenset({
        *_BOOKING_EVENTS, PAYMENT_SUCCEEDED, PAYMENT_REFUNDED,
        PAYMENT_DISPUTE_OPENED, PAYMENT_DISPUTE_CLOSED,
    })

    def __init__(self) -> None:
        self._dims: dict[UUID, Dims] = {}  # as held, then as each applied change left them
        self._awaited: dict[UUID, tuple[str, Dims]] = {}  # a change's payment, its dims

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        await self._load_dims(conn, events)
        batch = _Batch()
        for event in events:
            if event.type in _BOOKING_EVENTS:
                self._booking(batch, event)
            else:
                self._payment(batch, event)
        await batch.write(conn)

    async def _load_dims(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]
                         ) -> None:
        if len(self._dims) > DIMS_CACHE:
            self._dims.clear()  # bounded memory; misses are read back, one query a batch
            self._awaited.clear()
        missing, new = set(), begun(e for e in events if e.type in _BOOKING_EVENTS)
        for e in events:
            if e.type == BOOKING_HELD:
                continue
            booking = e.stream_id if e.type in _BOOKING_EVENTS else uuid_of(
                payment_facts(e)["booking_id"])
            if booking not in self._dims and booking not in new:
                missing.add(booking)
        if missing:
            for r in await conn.fetch(
                f"SELECT booking_id, category, location, item_id, time_zone, currency,"
                f" change_reference, change_dims FROM {BOOKINGS_TABLE}"
                " WHERE booking_id = ANY($1::uuid[])", list(missing)):
                self._dims[r["booking_id"]] = (r["category"], r["location"], r["item_id"],
                                               r["time_zone"], r["currency"])
                if r["change_reference"] is not None:
                    c, loc, item, zone, ccy = orjson.loads(r["change_dims"])
                    self._awaited[r["booking_id"]] = (r["change_reference"],
                                                      (c, loc, UUID(item), zone, ccy))

    def _booking(self, batch: _Batch, event: RecordedEvent) -> None:
        booking, t = event.stream_id, event.type
        if t == BOOKING_HELD:
            d = BOOKING_HELD.of(event)
            q = d["quote"]
            dims = (q["category"], q["location_code"], uuid_of(d["item_id"]),
                    q.get("time_zone") or "UTC", q["currency"])
            self._dims[booking] = dims
            batch.hold(booking, (
                uuid_of(d["customer_id"]), dims[2], dims[0], dims[1], dims[3],
                q["currency"], q["total_due"], datetime.fromisoformat(d["held_at"]),
                datetime.fromisoformat(d["start"]), datetime.fromisoformat(d["end"])))
            batch.add(dims, q["currency"], d["held_at"], held=1)
            return
        if t in _CHANGES:
            self._change(batch, booking, event)
            return
        known = self._dims.get(booking)
        if known is None:
            return
        at, change = moved(event)["at"], batch.update(booking)
        change[0] = STATUS_AFTER[t]
        if t == BOOKING_CONFIRMED:
            amount_paid = int(BOOKING_CONFIRMED.of(event)["amount_paid"])
            change[1], change[3] = datetime.fromisoformat(at), amount_paid
            batch.add(known, known[4], at, confirmed=1, confirmed_value=amount_paid)
            return
        if t == BOOKING_CANCELLED:
            change[2] = datetime.fromisoformat(at)
        if t in _DAILY:
            batch.add(known, known[4], at, **{_DAILY[t]: 1})

    def _change(self, batch: _Batch, booking: UUID, event: RecordedEvent) -> None:
        if booking not in self._dims:
            return  # a booking this read model never saw held
        if event.type == BOOKING_CHANGE_REQUESTED:
            requested = BOOKING_CHANGE_REQUESTED.of(event)
            awaited = self._awaited[booking] = (requested["payment_reference"],
                                                _dims_of(requested["terms"]))
            batch.pend(booking, awaited)
            return
        if self._awaited.pop(booking, None) is not None:
            batch.pend(booking, None)
        if event.type == BOOKING_CHANGED:
            terms = BOOKING_CHANGED.of(event)["terms"]
            q = terms["quote"]
            dims = self._dims[booking] = _dims_of(terms)
            batch.move(booking, dims, int(q["total_due"]),
                       datetime.fromisoformat(terms["start"]),
                       datetime.fromisoformat(terms["end"]))

    def _payment(self, batch: _Batch, event: RecordedEvent) -> None:
        d, t = payment_facts(event), event.type
        booking = uuid_of(d["booking_id"])
        dims = self._dims.get(booking) or ("unknown", "unknown", UNKNOWN, "UTC", "")
        awaited = self._awaited.get(booking)
        if (t == PAYMENT_SUCCEEDED and awaited is not None
                and awaited[0] == PAYMENT_SUCCEEDED.of(event)["reference"]):
            dims = awaited[1]  # the payment of a change: for what it changes to
        amount, currency = int(d["amount"]), d["currency"]
        if t == PAYMENT_SUCCEEDED:
            parts = PAYMENT_SUCCEEDED.of(event).get("parts") or {}
            batch.update(booking)[4] += amount
            batch.add(dims, currency, d["at"], gross=amount, **parts)
        elif t == PAYMENT_REFUNDED:
            parts = PAYMENT_REFUNDED.of(event).get("parts") or {}
            batch.update(booking)[5] += amount
            batch.add(dims, currency, d["at"], refunds=amount,
                      **{name: -value for name, value in parts.items()})
        elif t == PAYMENT_DISPUTE_OPENED:
            batch.add(dims, currency, d["at"], disputes=1, disputed_amount=amount)
        elif (t == PAYMENT_DISPUTE_CLOSED
              and PAYMENT_DISPUTE_CLOSED.of(event).get("outcome") == "lost"):
            batch.add(dims, currency, d["at"], disputes_lost=1)
