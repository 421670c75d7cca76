"""Customer profiles (issue 7): per customer, bookings, spend, favourites, points, tier, notes.

Facts only: segments are derived at query time (``midas.domain.segments``). Names and
emails are not copied (queries join the accounts read model); note texts are decrypted
through the accounts codec, and ``Account.Erased`` blanks them ("[erased]").
Money is per currency (``cust_spend``); "lifetime net spend" = paid - refunded.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from midas.domain.accounts import ERASED, Account
from midas.eventstore import RecordedEvent
from midas.security.pii import open_events, personal_paths

PROFILES_TABLE = "cust_profiles"
BOOKINGS_TABLE = "cust_bookings"
SPEND_TABLE = "cust_spend"
FAVOURITES_TABLE = "cust_favourites"
POINTS_TABLE = "cust_points"
NOTES_TABLE = "cust_notes"
_PERSONAL = personal_paths([Account])
DIMS_CACHE = 50_000  # bookings whose fixed facts are kept in memory

_ENSURE = (
    f"INSERT INTO {PROFILES_TABLE} (customer_id, registered_at, updated_at)"
    " VALUES ($1, $2, $3)"
    f" ON CONFLICT (customer_id) DO UPDATE SET registered_at ="
    f" coalesce(EXCLUDED.registered_at, {PROFILES_TABLE}.registered_at)"
)
_COUNTERS = ("bookings", "confirmed", "completed", "cancelled", "expired")
_UPDATE_PROFILE = (
    f"UPDATE {PROFILES_TABLE} SET "
    + ", ".join(f"{c} = {c} + ${n}" for n, c in enumerate(_COUNTERS, start=2))
    + ", first_booking_at = LEAST(first_booking_at, $7),"
    " last_booking_at = GREATEST(last_booking_at, $8), status = coalesce($9, status),"
    " tier = coalesce($10, tier), tier_reason = coalesce($11, tier_reason),"
    " points = coalesce($12, points), updated_at = coalesce($13, updated_at)"
    " WHERE customer_id = $1"
)
_INSERT_BOOKING = (
    f"INSERT INTO {BOOKINGS_TABLE} (booking_id, customer_id, item_id, category, location,"
    " currency, total_due, status, held_at, starts_at, ends_at)"
    " VALUES ($1,$2,$3,$4,$5,$6,$7,'held',$8,$9,$10) ON CONFLICT DO NOTHING"
)
_UPDATE_BOOKING = (
    f"UPDATE {BOOKINGS_TABLE} SET status = coalesce($2, status), paid = paid + $3,"
    " refunded = refunded + $4 WHERE booking_id = $1"
)
_UPSERT_SPEND = (
    f"INSERT INTO {SPEND_TABLE} (customer_id, currency, paid, refunded, bookings)"
    " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (customer_id, currency) DO UPDATE SET"
    f" paid = {SPEND_TABLE}.paid + EXCLUDED.paid,"
    f" refunded = {SPEND_TABLE}.refunded + EXCLUDED.refunded,"
    f" bookings = {SPEND_TABLE}.bookings + EXCLUDED.bookings"
)
_UPSERT_FAVOURITE = (
    f"INSERT INTO {FAVOURITES_TABLE} (customer_id, kind, value, n) VALUES ($1, $2, $3, $4)"
    f" ON CONFLICT (customer_id, kind, value) DO UPDATE SET n = {FAVOURITES_TABLE}.n + $4"
)
_INSERT_POINTS = (
    f"INSERT INTO {POINTS_TABLE} (position, customer_id, booking_id, kind, points, balance,"
    " multiplier, recorded_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT DO NOTHING"
)
_INSERT_NOTE = (
    f"INSERT INTO {NOTES_TABLE} (note_id, customer_id, author_id, text, recorded_at)"
    " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING"
)
_COUNT = {  # booking event -> profile counter
    "Booking.Held": "bookings", "Booking.Confirmed": "confirmed",
    "Booking.CheckedIn": "completed", "Booking.Cancelled": "cancelled",
    "Booking.Expired": "expired",
}
_STATUS = {"Booking.Confirmed": "confirmed", "Booking.CheckedOut": "active",
           "Booking.CheckedIn": "completed", "Booking.Cancelled": "cancelled",
           "Booking.Expired": "expired"}


class _Batch:
    """A batch's changes, gathered in memory, written with one statement per table."""

    def __init__(self) -> None:
        self.customers: dict[UUID, datetime | None] = {}  # ensure rows (registered at)
        self.profiles: dict[UUID, list[Any]] = {}
        self.bookings: list[tuple[Any, ...]] = []
        self.booking_updates: dict[UUID, list[Any]] = {}
        self.spend: dict[tuple[UUID, str], list[int]] = {}
        self.favourites: dict[tuple[UUID, str, str], int] = {}
        self.points: list[tuple[Any, ...]] = []
        self.notes: list[tuple[Any, ...]] = []
        self.erased: list[UUID] = []
        # The time of the event being applied: rows record it, never the clock, so a
        # rebuild gives exactly the live read model.
        self.at: datetime | None = None
        self.first_seen: dict[UUID, datetime] = {}  # a new row's updated_at
        self.touched: dict[UUID, datetime] = {}  # the last event that changed the profile

    def profile(self, customer: UUID, ensure: bool = True) -> list[Any]:
        if ensure:  # create the row if need be (not for staff accounts' status changes)
            self.customers.setdefault(customer, None)
        if self.at is not None:
            self.first_seen.setdefault(customer, self.at)
            self.touched[customer] = self.at
        row = self.profiles.get(customer)
        if row is None:  # counters..., first, last, status, tier, reason, points
            row = self.profiles[customer] = [0] * len(_COUNTERS) + [None] * 6
        return row

    def booking(self, booking: UUID) -> list[Any]:
        return self.booking_updates.setdefault(booking, [None, 0, 0])

    def spent(self, customer: UUID, currency: str) -> list[int]:
        return self.spend.setdefault((customer, currency), [0, 0, 0])

    async def write(self, conn: Any) -> None:
        if self.customers:
            await conn.executemany(_ENSURE, [
                (c, at, self.first_seen.get(c) or at or self.at)
                for c, at in self.customers.items()])
        if self.profiles:
            await conn.executemany(_UPDATE_PROFILE, [
                (c, *v, self.touched.get(c)) for c, v in self.profiles.items()])
        if self.bookings:
            await conn.executemany(_INSERT_BOOKING, self.bookings)
        if self.booking_updates:
            await conn.executemany(_UPDATE_BOOKING,
                                   [(b, *v) for b, v in self.booking_updates.items()])
        if self.spend:
            await conn.executemany(_UPSERT_SPEND, [(*k, *v) for k, v in self.spend.items()])
        if self.favourites:
            await conn.executemany(_UPSERT_FAVOURITE,
                                   [(*k, n) for k, n in self.favourites.items()])
        if self.points:
            await conn.executemany(_INSERT_POINTS, self.points)
        if self.notes:
            await conn.executemany(_INSERT_NOTE, self.notes)
        if self.erased:
            await conn.executemany(f"UPDATE {NOTES_TABLE} SET text = $2 WHERE customer_id = $1",
                                   [(c, ERASED) for c in self.erased])


class ProfilesProjector:
    name = "profiles"
    tables = (PROFILES_TABLE, BOOKINGS_TABLE, SPEND_TABLE, FAVOURITES_TABLE, POINTS_TABLE,
              NOTES_TABLE)
    handles = frozenset({
        "Account.Registered", "Account.Deactivated",
        "Account.Erased", "Account.TierRaised", "Account.TierSet",
        "Account.LoyaltyPointsAwarded", "Account.LoyaltyPointsRevoked", "Account.NoteAdded",
        *_COUNT, *_STATUS, "Payment.Succeeded", "Payment.Refunded",
    })

    def __init__(self) -> None:
        # Booking facts that never change (customer, category, location, currency, held at).
        self._dims: dict[UUID, tuple[UUID, str, str, str, datetime]] = {}

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        await self._load_dims(conn, events)
        batch = _Batch()
        for event in await open_events(conn, events, _PERSONAL):
            batch.at = event.recorded_at
            kind = event.type.split(".", 1)[0]
            if kind == "Account":
                self._account(batch, event)
            elif kind == "Booking":
                self._booking(batch, event)
            else:
                self._payment(batch, event)
        await batch.write(conn)

    async def _load_dims(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]
                         ) -> None:
        if len(self._dims) > DIMS_CACHE:
            self._dims.clear()  # bounded memory; misses are read back, one query a batch
        missing = {e.stream_id for e in events
                   if e.type.startswith("Booking.") and e.type != "Booking.Held"
                   and e.stream_id not in self._dims}
        if missing:
            for r in await conn.fetch(
                f"SELECT booking_id, customer_id, category, location, currency, held_at"
                f" FROM {BOOKINGS_TABLE} WHERE booking_id = ANY($1::uuid[])", list(missing)):
                self._dims[r["booking_id"]] = (r["customer_id"], r["category"], r["location"],
                                               r["currency"], r["held_at"])

    def _account(self, batch: _Batch, event: RecordedEvent) -> None:
        d, customer, t = event.data, event.stream_id, event.type
        if t == "Account.Registered":
            if d["role"] == "customer":
                batch.customers[customer] = event.recorded_at
            return
        if t == "Account.NoteAdded":
            batch.notes.append((UUID(d["note_id"]), customer,
                                UUID(d["author_id"]) if d.get("author_id") else None,
                                d["text"], event.recorded_at))
            return
        row = batch.profile(customer, ensure=t not in ("Account.Deactivated", "Account.Erased"))
        if t == "Account.Deactivated":
            row[7] = "deactivated"
        elif t == "Account.Erased":
            row[7] = "erased"
            batch.erased.append(customer)
        elif t in ("Account.TierRaised", "Account.TierSet"):
            row[8], row[9] = d["tier"], d["reason"]
        elif t in ("Account.LoyaltyPointsAwarded", "Account.LoyaltyPointsRevoked"):
            awarded = t == "Account.LoyaltyPointsAwarded"
            row[10] = d["balance"]
            batch.points.append((
                event.position, customer, UUID(d["booking_id"]),
                "awarded" if awarded else "revoked", d["points"] if awarded else -d["points"],
                d["balance"], d.get("multiplier"), event.recorded_at))

    def _booking(self, batch: _Batch, event: RecordedEvent) -> None:
        d, booking, t = event.data, event.stream_id, event.type
        if t == "Booking.Held":
            q = d["quote"]
            customer = UUID(d["customer_id"])
            held_at = datetime.fromisoformat(d["held_at"])
            self._dims[booking] = (customer, q["category"], q["location_code"], q["currency"],
                                   held_at)
            batch.bookings.append((
                booking, customer, UUID(d["item_id"]), q["category"], q["location_code"],
                q["currency"], q["total_due"], held_at, datetime.fromisoformat(d["start"]),
                datetime.fromisoformat(d["end"])))
            batch.profile(customer)[0] += 1
            return
        dims = self._dims.get(booking)
        if dims is None:
            return  # a booking this projection never saw held (cannot happen in one log)
        customer, category, location, currency, held_at = dims
        batch.booking(booking)[0] = _STATUS[t]
        row = batch.profile(customer)
        if t in _COUNT:
            row[_COUNTERS.index(_COUNT[t])] += 1
        if t == "Booking.Confirmed":
            row[5] = held_at if row[5] is None else min(row[5], held_at)
            row[6] = held_at if row[6] is None else max(row[6], held_at)
            batch.spent(customer, currency)[2] += 1
            for key in ((customer, "category", category), (customer, "location", location)):
                batch.favourites[key] = batch.favourites.get(key, 0) + 1

    def _payment(self, batch: _Batch, event: RecordedEvent) -> None:
        d = event.data
        customer, amount = UUID(d["customer_id"]), int(d["amount"])
        n = 0 if event.type == "Payment.Succeeded" else 1
        batch.customers.setdefault(customer, None)
        batch.first_seen.setdefault(customer, event.recorded_at)
        batch.spent(customer, d["currency"])[n] += amount
        batch.booking(UUID(d["booking_id"]))[1 + n] += amount
