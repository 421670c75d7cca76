"""KPIs (issue 7): a daily fact table by currency, category, location and item, and one
row per booking for what is computed at query time (utilisation, forecast, pace).

Days are the local date of the event's business instant (its ``at``; ``held_at`` for a
hold) in the booking location's time zone (the quote's ``time_zone``). Revenue: gross is
``Payment.Succeeded`` on the day it succeeded, refunds ``Payment.Refunded`` on their day,
net = gross - refunds. Money is always per currency, never converted.
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

DAILY_TABLE = "kpi_daily"
TOTALS_TABLE = "kpi_daily_totals"  # per day and currency only (the dashboard)
BOOKINGS_TABLE = "kpi_bookings"
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


_INSERT_BOOKING = (
    f"INSERT INTO {BOOKINGS_TABLE} (booking_id, customer_id, item_id, category, location,"
    " time_zone, currency, total_due, status, held_at, starts_at, ends_at)"
    " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,'held',$9,$10,$11) ON CONFLICT DO NOTHING"
)
_UPDATE_BOOKING = (
    f"UPDATE {BOOKINGS_TABLE} SET status = coalesce($2, status),"
    " confirmed_at = coalesce($3, confirmed_at), cancelled_at = coalesce($4, cancelled_at),"
    " amount_paid = coalesce($5, amount_paid), paid = paid + $6, refunded = refunded + $7"
    " WHERE booking_id = $1"
)
_UPSERT_DAILY = (
    f"INSERT INTO {DAILY_TABLE} (day, currency, category, location, item_id, "
    + ", ".join(COUNTERS) + ") VALUES ($1, $2, $3, $4, $5, "
    + ", ".join(f"${n}" for n in range(6, 6 + len(COUNTERS)))
    + ") ON CONFLICT (day, currency, category, location, item_id) DO UPDATE SET "
    + ", ".join(f"{c} = {DAILY_TABLE}.{c} + EXCLUDED.{c}" for c in COUNTERS)
)

_UPSERT_TOTALS = (
    f"INSERT INTO {TOTALS_TABLE} (day, currency, " + ", ".join(COUNTERS) + ") VALUES ($1, $2, "
    + ", ".join(f"${n}" for n in range(3, 3 + len(COUNTERS)))
    + ") ON CONFLICT (day, currency) DO UPDATE SET "
    + ", ".join(f"{c} = {TOTALS_TABLE}.{c} + EXCLUDED.{c}" for c in COUNTERS)
)


class _Batch:
    """A batch's changes, gathered in memory and written with three statements."""

    def __init__(self) -> None:
        self.inserts: list[tuple[Any, ...]] = []
        self.updates: dict[UUID, list[Any]] = {}  # status, confirmed, cancelled, paid, +, +
        self.daily: dict[tuple[Any, ...], list[int]] = {}

    def update(self, booking: UUID) -> list[Any]:
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
            await conn.executemany(_INSERT_BOOKING, self.inserts)
        if self.updates:
            await conn.executemany(_UPDATE_BOOKING, [(b, *v) for b, v in self.updates.items()])
        if self.daily:
            await conn.executemany(_UPSERT_DAILY, [(*k, *v) for k, v in self.daily.items()])
            totals: dict[tuple[Any, ...], list[int]] = {}
            for (day, currency, *_), values in self.daily.items():
                row = totals.setdefault((day, currency), [0] * len(COUNTERS))
                for n, value in enumerate(values):
                    row[n] += value
            await conn.executemany(_UPSERT_TOTALS, [(*k, *v) for k, v in totals.items()])


_INDEX = {col: n for n, col in enumerate(COUNTERS)}


class KpisProjector:
    name = "kpis"
    tables = (DAILY_TABLE, TOTALS_TABLE, BOOKINGS_TABLE)
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
        missing = set()
        for e in events:
            if e.type == "Booking.Held":
                continue
            booking = e.stream_id if e.type.startswith("Booking.") else UUID(
                e.data["booking_id"])
            if booking not in self._dims:
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
            dims = (q["category"], q["location_code"], UUID(d["item_id"]),
                    q.get("time_zone") or "UTC", q["currency"])
            self._dims[booking] = dims
            batch.inserts.append((
                booking, UUID(d["customer_id"]), dims[2], dims[0], dims[1], dims[3],
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
        booking = UUID(d["booking_id"])
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
