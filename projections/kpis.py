"""KPIs (issue 7): a daily fact table by currency, category, location and item, and one
row per booking for what is computed at query time (utilisation, forecast, pace).

Days are the local date of the event's business instant (its ``at``; ``held_at`` for a
hold) in the booking location's time zone (the quote's ``time_zone``). Revenue: gross is
``Payment.Succeeded`` on the day it succeeded, refunds ``Payment.Refunded`` on their day,
net = gross - refunds. Money is always per currency, never converted. The dashboard's
live counts (bookings now in each status) are kept with the booking rows they count.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from functools import lru_cache
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg

from midas.eventstore import RecordedEvent
from projections.batch import as_columns, begun, unnest_rows, uuid_of

DAILY_TABLE = "kpi_daily"
TOTALS_TABLE = "kpi_daily_totals"  # per day and currency only (the dashboard)
BOOKINGS_TABLE = "kpi_bookings"
LIVE_TABLE = "kpi_live_counts"  # bookings now in each status (the dashboard)
UNKNOWN = UUID(int=0)
COUNTERS = ("gross", "refunds", "held", "confirmed", "confirmed_value", "cancelled",
            "expired", "completed", "disputes", "disputed_amount", "disputes_lost")
_STATUS = {"Booking.Confirmed": "confirmed", "Booking.CheckedOut": "active",
           "Booking.CheckedIn": "completed", "Booking.Cancelled": "cancelled",
           "Booking.Expired": "expired"}
_DAILY = {"Booking.Confirmed": "confirmed", "Booking.CheckedIn": "completed",
          "Booking.Cancelled": "cancelled", "Booking.Expired": "expired"}
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
        self.daily: dict[tuple[Any, ...], list[int]] = {}

    def hold(self, booking: UUID, facts: tuple[Any, ...]) -> None:
        if booking not in self.inserts:  # ON CONFLICT DO NOTHING
            self.inserts[booking] = (facts, ["held", None, None, None, 0, 0])

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
        if self.daily:
            source, arrays = await unnest_rows(conn, DAILY_TABLE, (*_DAILY_KEY, *COUNTERS),
                                               [(*k, *v) for k, v in self.daily.items()])
            await conn.execute(_UPSERT_DAILY_AND_TOTALS.format(source=source), *arrays)


_INDEX = {col: n for n, col in enumerate(COUNTERS)}


class KpisProjector:
    name = "kpis"
    tables = (DAILY_TABLE, TOTALS_TABLE, BOOKINGS_TABLE, LIVE_TABLE)
    handles = frozenset({
        "Booking.Held", *_STATUS, "Payment.Succeeded", "Payment.Refunded",
        "Payment.DisputeOpened", "Payment.DisputeClosed",
    })

    def __init__(self) -> None:
        self._dims: dict[UUID, Dims] = {}  # never change once held

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        await self._load_dims(conn, events)
        batch = _Batch()
        for event in events:
            if event.type.startswith("Booking."):
                self._booking(batch, event)
            else:
                self._payment(batch, event)
        await batch.write(conn)

    async def _load_dims(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]
                         ) -> None:
        if len(self._dims) > DIMS_CACHE:
            self._dims.clear()  # bounded memory; misses are read back, one query a batch
        missing, new = set(), begun(e for e in events if e.type.startswith("Booking."))
        for e in events:
            if e.type == "Booking.Held":
                continue
            booking = e.stream_id if e.type.startswith("Booking.") else uuid_of(
                e.data["booking_id"])
            if booking not in self._dims and booking not in new:
                missing.add(booking)
        if missing:
            for r in await conn.fetch(
                f"SELECT booking_id, category, location, item_id, time_zone, currency FROM"
                f" {BOOKINGS_TABLE} WHERE booking_id = ANY($1::uuid[])", list(missing)):
                self._dims[r["booking_id"]] = (r["category"], r["location"], r["item_id"],
                                               r["time_zone"], r["currency"])

    def _booking(self, batch: _Batch, event: RecordedEvent) -> None:
        d, booking, t = event.data, event.stream_id, event.type
        if t == "Booking.Held":
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
        dims = self._dims.get(booking)
        if dims is None:
            return
        at, change = d["at"], batch.update(booking)
        change[0] = _STATUS[t]
        if t == "Booking.Confirmed":
            change[1], change[3] = datetime.fromisoformat(at), int(d["amount_paid"])
            batch.add(dims, dims[4], at, confirmed=1, confirmed_value=int(d["amount_paid"]))
            return
        if t == "Booking.Cancelled":
            change[2] = datetime.fromisoformat(at)
        if t in _DAILY:
            batch.add(dims, dims[4], at, **{_DAILY[t]: 1})

    def _payment(self, batch: _Batch, event: RecordedEvent) -> None:
        d, t = event.data, event.type
        booking = uuid_of(d["booking_id"])
        dims = self._dims.get(booking) or ("unknown", "unknown", UNKNOWN, "UTC", "")
        amount, currency = int(d["amount"]), d["currency"]
        if t == "Payment.Succeeded":
            batch.update(booking)[4] += amount
            batch.add(dims, currency, d["at"], gross=amount)
        elif t == "Payment.Refunded":
            batch.update(booking)[5] += amount
            batch.add(dims, currency, d["at"], refunds=amount)
        elif t == "Payment.DisputeOpened":
            batch.add(dims, currency, d["at"], disputes=1, disputed_amount=amount)
        elif t == "Payment.DisputeClosed" and d.get("outcome") == "lost":
            batch.add(dims, currency, d["at"], disputes_lost=1)
