"""Customer profiles: per customer, bookings, spend, favourites, points, tier, notes.

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

from midas.domain.account_events import (
    ACCOUNT_DEACTIVATED,
    ACCOUNT_ERASED,
    ACCOUNT_LOYALTY_POINTS_AWARDED,
    ACCOUNT_LOYALTY_POINTS_REVOKED,
    ACCOUNT_NOTE_ADDED,
    ACCOUNT_POINTS_RELEASED,
    ACCOUNT_POINTS_RESERVED,
    ACCOUNT_POINTS_RETURNED,
    ACCOUNT_POINTS_SPENT,
    ACCOUNT_REGISTERED,
    ACCOUNT_TIER_RAISED,
    ACCOUNT_TIER_SET,
    points_move,
    tier_change,
)
from midas.domain.accounts import ERASED, Account
from midas.domain.booking_events import (
    BOOKING_CANCELLED,
    BOOKING_CHECKED_IN,
    BOOKING_CONFIRMED,
    BOOKING_EXPIRED,
    BOOKING_HELD,
    STATUS_AFTER,
)
from midas.domain.payment_events import PAYMENT_REFUNDED, PAYMENT_SUCCEEDED, payment_facts
from midas.eventstore import RecordedEvent
from midas.security.pii import open_events, personal_paths
from projections.batch import as_columns, begun, insert_rows, update_rows, uuid_of

PROFILES_TABLE = "cust_profiles"
BOOKINGS_TABLE = "cust_bookings"
SPEND_TABLE = "cust_spend"
FAVOURITES_TABLE = "cust_favourites"
POINTS_TABLE = "cust_points"
NOTES_TABLE = "cust_notes"
_PERSONAL = personal_paths([Account])
DIMS_CACHE = 50_000  # bookings whose fixed facts are kept in memory

_COUNTERS = ("bookings", "confirmed", "completed", "cancelled", "expired")
_PROFILE_COLUMNS = ("customer_id", "ensure", "registered_at", "first_seen", *_COUNTERS,
                    "first_booking_at", "last_booking_at", "status", "tier", "tier_reason",
                    "points", "updated_at")
_PROFILE_TYPES = ("uuid", "boolean", "timestamptz", "timestamptz", *["integer"] * 5,
                  "timestamptz", "timestamptz", "text", "text", "text", "bigint", "timestamptz")
# One statement for a batch's profiles: a customer the batch registered, booked or paid
# for is created if need be ("ensure"); Deactivated and Erased only change an existing
# row (staff accounts have none). New rows take the table's defaults where the batch
# set nothing.
_MERGE_PROFILES = (
    f"MERGE INTO {PROFILES_TABLE} t USING (SELECT * FROM unnest("
    + ", ".join(f"${n}::{t}[]" for n, t in enumerate(_PROFILE_TYPES, start=1))
    + f") AS u({', '.join(_PROFILE_COLUMNS)})) u ON t.customer_id = u.customer_id"
    " WHEN MATCHED THEN UPDATE SET registered_at = coalesce(u.registered_at, t.registered_at), "
    + ", ".join(f"{c} = t.{c} + u.{c}" for c in _COUNTERS)
    + ", first_booking_at = LEAST(t.first_booking_at, u.first_booking_at),"
    " last_booking_at = GREATEST(t.last_booking_at, u.last_booking_at), "
    + ", ".join(f"{c} = coalesce(u.{c}, t.{c})"
                for c in ("status", "tier", "tier_reason", "points", "updated_at"))
    + " WHEN NOT MATCHED AND u.ensure THEN INSERT (customer_id, registered_at, "
    + ", ".join(_COUNTERS) + ", first_booking_at, last_booking_at, status, tier, tier_reason,"
    " points, updated_at) VALUES (u.customer_id, u.registered_at, "
    + ", ".join(f"u.{c}" for c in _COUNTERS) + ", u.first_booking_at, u.last_booking_at,"
    " coalesce(u.status, 'active'), coalesce(u.tier, 'standard'), u.tier_reason,"
    " coalesce(u.points, 0), coalesce(u.updated_at, u.first_seen))"
)
_BOOKING_COLUMNS = ("booking_id", "customer_id", "item_id", "category", "location",
                    "currency", "total_due", "held_at", "starts_at", "ends_at", "status",
                    "paid", "refunded")
_UPDATE_BOOKING = ("status = coalesce(u.status, t.status), paid = t.paid + u.paid,"
                   " refunded = t.refunded + u.refunded")
_UPSERT_SPEND = (
    "(customer_id, currency) DO UPDATE SET"
    f" paid = {SPEND_TABLE}.paid + EXCLUDED.paid,"
    f" refunded = {SPEND_TABLE}.refunded + EXCLUDED.refunded,"
    f" bookings = {SPEND_TABLE}.bookings + EXCLUDED.bookings"
)
_UPSERT_FAVOURITE = (f"(customer_id, kind, value) DO UPDATE SET"
                     f" n = {FAVOURITES_TABLE}.n + EXCLUDED.n")
# Points as payment, and how each changes the balance (spent ones were taken when reserved).
_POINTS: dict[str, tuple[str, int]] = {
    ACCOUNT_POINTS_RESERVED: ("reserved", -1), ACCOUNT_POINTS_SPENT: ("spent", 0),
    ACCOUNT_POINTS_RELEASED: ("released", 1), ACCOUNT_POINTS_RETURNED: ("returned", 1)}
_POINTS_COLUMNS = ("position", "customer_id", "booking_id", "kind", "points", "balance",
                   "multiplier", "recorded_at")
_NOTE_COLUMNS = ("note_id", "customer_id", "author_id", "text", "recorded_at")
_COUNT: dict[str, str] = {  # booking event -> profile counter
    BOOKING_HELD: "bookings", BOOKING_CONFIRMED: "confirmed", BOOKING_CHECKED_IN: "completed",
    BOOKING_CANCELLED: "cancelled", BOOKING_EXPIRED: "expired",
}
_BOOKING_EVENTS = frozenset({BOOKING_HELD, *STATUS_AFTER})
_PAYMENT_EVENTS = frozenset({PAYMENT_SUCCEEDED, PAYMENT_REFUNDED})


# A profile's changes in a batch: counters..., first, last, status, tier, reason, points.
_UNCHANGED = (0,) * len(_COUNTERS) + (None,) * 6


class _Batch:
    """A batch's changes, gathered in memory, written with one statement per table."""

    def __init__(self) -> None:
        self.customers: dict[UUID, datetime | None] = {}  # ensure rows (registered at)
        self.profiles: dict[UUID, list[Any]] = {}
        # held in the batch: the booking's facts, and its changes since (status, +paid,
        # +refunded), written with it; ``booking_updates`` for those held before
        self.bookings: dict[UUID, tuple[tuple[Any, ...], list[Any]]] = {}
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
        if row is None:
            row = self.profiles[customer] = list(_UNCHANGED)
        return row

    def hold(self, booking: UUID, facts: tuple[Any, ...]) -> None:
        if booking not in self.bookings:  # ON CONFLICT DO NOTHING
            self.bookings[booking] = (facts, ["held", 0, 0])

    def booking(self, booking: UUID) -> list[Any]:
        held = self.bookings.get(booking)
        if held is not None:
            return held[1]
        return self.booking_updates.setdefault(booking, [None, 0, 0])

    def spent(self, customer: UUID, currency: str) -> list[int]:
        return self.spend.setdefault((customer, currency), [0, 0, 0])

    async def write(self, conn: Any) -> None:
        """One statement per table and kind of change (unnest: one row per key)."""
        if self.customers or self.profiles:
            await conn.execute(_MERGE_PROFILES, *as_columns([
                (c, c in self.customers, at := self.customers.get(c),
                 self.first_seen.get(c) or at or self.at, *self.profiles.get(c, _UNCHANGED),
                 self.touched.get(c))
                for c in {**self.customers, **self.profiles}]))
        await insert_rows(conn, BOOKINGS_TABLE, _BOOKING_COLUMNS, [
            (booking, *facts, *change) for booking, (facts, change) in self.bookings.items()])
        await update_rows(conn, BOOKINGS_TABLE, ("booking_id", "status", "paid", "refunded"),
                          [(b, *v) for b, v in self.booking_updates.items()], _UPDATE_BOOKING)
        await insert_rows(conn, SPEND_TABLE,
                          ("customer_id", "currency", "paid", "refunded", "bookings"),
                          [(*k, *v) for k, v in self.spend.items()], _UPSERT_SPEND)
        await insert_rows(conn, FAVOURITES_TABLE, ("customer_id", "kind", "value", "n"),
                          [(*k, n) for k, n in self.favourites.items()], _UPSERT_FAVOURITE)
        await insert_rows(conn, POINTS_TABLE, _POINTS_COLUMNS, self.points)
        await insert_rows(conn, NOTES_TABLE, _NOTE_COLUMNS, self.notes)
        if self.erased:
            await conn.executemany(f"UPDATE {NOTES_TABLE} SET text = $2 WHERE customer_id = $1",
                                   [(c, ERASED) for c in self.erased])


class ProfilesProjector:
    name = "profiles"
    tables = (PROFILES_TABLE, BOOKINGS_TABLE, SPEND_TABLE, FAVOURITES_TABLE, POINTS_TABLE,
              NOTES_TABLE)
    indexes_read = frozenset({"cust_notes_customer"})  # an erased customer's notes
    handles = frozenset({
        ACCOUNT_REGISTERED, ACCOUNT_DEACTIVATED, ACCOUNT_ERASED, ACCOUNT_TIER_RAISED,
        ACCOUNT_TIER_SET, ACCOUNT_LOYALTY_POINTS_AWARDED, ACCOUNT_LOYALTY_POINTS_REVOKED,
        ACCOUNT_NOTE_ADDED, *_POINTS, *_BOOKING_EVENTS, *_PAYMENT_EVENTS,
    })

    def __init__(self) -> None:
        # Booking facts that never change (customer, category, location, currency, held at).
        self._dims: dict[UUID, tuple[UUID, str, str, str, datetime]] = {}

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        await self._load_dims(conn, events)
        batch = _Batch()
        for event in await open_events(conn, events, _PERSONAL):
            batch.at = event.recorded_at
            if event.type in _BOOKING_EVENTS:
                self._booking(batch, event)
            elif event.type in _PAYMENT_EVENTS:
                self._payment(batch, event)
            else:
                self._account(batch, event)
        await batch.write(conn)

    async def _load_dims(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]
                         ) -> None:
        if len(self._dims) > DIMS_CACHE:
            self._dims.clear()  # bounded memory; misses are read back, one query a batch
        bookings = [e for e in events if e.type in _BOOKING_EVENTS]
        new = begun(bookings)
        missing = {e.stream_id for e in bookings if e.type != BOOKING_HELD
                   and e.stream_id not in self._dims and e.stream_id not in new}
        if missing:
            for r in await conn.fetch(
                f"SELECT booking_id, customer_id, category, location, currency, held_at"
                f" FROM {BOOKINGS_TABLE} WHERE booking_id = ANY($1::uuid[])", list(missing)):
                self._dims[r["booking_id"]] = (r["customer_id"], r["category"], r["location"],
                                               r["currency"], r["held_at"])

    def _account(self, batch: _Batch, event: RecordedEvent) -> None:
        customer, t = event.stream_id, event.type
        if t == ACCOUNT_REGISTERED:
            if ACCOUNT_REGISTERED.of(event)["role"] == "customer":
                batch.customers[customer] = event.recorded_at
            return
        if t == ACCOUNT_NOTE_ADDED:
            note = ACCOUNT_NOTE_ADDED.of(event)
            author = note.get("author_id")
            batch.notes.append((uuid_of(note["note_id"]), customer,
                                uuid_of(author) if author else None, note["text"],
                                event.recorded_at))
            return
        row = batch.profile(customer, ensure=t not in (ACCOUNT_DEACTIVATED, ACCOUNT_ERASED))
        if t == ACCOUNT_DEACTIVATED:
            row[7] = "deactivated"
        elif t == ACCOUNT_ERASED:
            row[7] = "erased"
            batch.erased.append(customer)
        elif t in (ACCOUNT_TIER_RAISED, ACCOUNT_TIER_SET):
            tier = tier_change(event)
            row[8], row[9] = tier["tier"], tier["reason"]
        elif t in _POINTS:  # points as payment: reserved, spent, released, returned
            move, (kind, sign) = points_move(event), _POINTS[t]
            row[10] = move["balance"]
            batch.points.append((
                event.position, customer, uuid_of(move["booking_id"].split(":")[0]), kind,
                sign * move["points"], move["balance"], None, event.recorded_at))
        elif t == ACCOUNT_LOYALTY_POINTS_AWARDED:
            award = ACCOUNT_LOYALTY_POINTS_AWARDED.of(event)
            row[10] = award["balance"]
            batch.points.append((
                event.position, customer, uuid_of(award["booking_id"]), "awarded",
                award["points"], award["balance"], award.get("multiplier"), event.recorded_at))
        elif t == ACCOUNT_LOYALTY_POINTS_REVOKED:
            revoked = ACCOUNT_LOYALTY_POINTS_REVOKED.of(event)
            row[10] = revoked["balance"]
            batch.points.append((
                event.position, customer, uuid_of(revoked["booking_id"]), "revoked",
                -revoked["points"], revoked["balance"], None, event.recorded_at))

    def _booking(self, batch: _Batch, event: RecordedEvent) -> None:
        booking, t = event.stream_id, event.type
        if t == BOOKING_HELD:
            d = BOOKING_HELD.of(event)
            q = d["quote"]
            customer = uuid_of(d["customer_id"])
            held_at = datetime.fromisoformat(d["held_at"])
            self._dims[booking] = (customer, q["category"], q["location_code"], q["currency"],
                                   held_at)
            batch.hold(booking, (
                customer, uuid_of(d["item_id"]), q["category"], q["location_code"],
                q["currency"], q["total_due"], held_at, datetime.fromisoformat(d["start"]),
                datetime.fromisoformat(d["end"])))
            batch.profile(customer)[0] += 1
            return
        dims = self._dims.get(booking)
        if dims is None:
            return  # a booking this projection never saw held (cannot happen in one log)
        customer, category, location, currency, held_at = dims
        batch.booking(booking)[0] = STATUS_AFTER[t]
        row = batch.profile(customer)
        if t in _COUNT:
            row[_COUNTERS.index(_COUNT[t])] += 1
        if t == BOOKING_CONFIRMED:
            row[5] = held_at if row[5] is None else min(row[5], held_at)
            row[6] = held_at if row[6] is None else max(row[6], held_at)
            batch.spent(customer, currency)[2] += 1
            for key in ((customer, "category", category), (customer, "location", location)):
                batch.favourites[key] = batch.favourites.get(key, 0) + 1

    def _payment(self, batch: _Batch, event: RecordedEvent) -> None:
        d = payment_facts(event)
        customer, amount = uuid_of(d["customer_id"]), int(d["amount"])
        n = 0 if event.type == PAYMENT_SUCCEEDED else 1
        batch.customers.setdefault(customer, None)
        batch.first_seen.setdefault(customer, event.recorded_at)
        batch.spent(customer, d["currency"])[n] += amount
        batch.booking(uuid_of(d["booking_id"]))[1 + n] += amount
