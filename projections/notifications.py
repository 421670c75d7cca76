"""The notifications process manager: events -> outbox rows, committed with its checkpoint.

A projector like any other, so the runner applies each batch and moves the checkpoint in one
transaction: an email decided here is never lost and, with its deterministic dedupe key
(``type:stream:version``; ``reminder:booking``), never queued twice. The outbox is not among
its tables, and neither is the position up to which emails were decided (``notif_enqueued``):
a rebuild decides no email for an event at or below it, so it neither resends an email
purged from the outbox since nor spends work on emails already queued. A customer's email
names the account only (``@account``): the address and name are read at delivery.

A batch reads what its events refer to (remembered bookings, item and concierge names,
reminder timers) with one query each, decides every email in memory, in event order, and
writes the outbox rows, remembered bookings and timers with one statement each.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from midas.eventstore import RecordedEvent
from midas.notifications.outbox import (
    ACCOUNT,
    BOOKINGS_TABLE,
    ENQUEUE_COLUMNS,
    ENQUEUED_TABLE,
    LEGAL,
    OUTBOX_TABLE,
    TIMERS_TABLE,
    BookingContext,
    booking_contexts,
    booking_email,
    enqueue_args,
    reminder_key,
    unknown_booking,
)
from projections.batch import RowChanges, insert_new_rows, insert_rows, uuid_of

log = logging.getLogger(__name__)
NAME = "notifications"
REMINDER_BEFORE = timedelta(hours=24)
IMMEDIATELY = datetime(2000, 1, 1, tzinfo=UTC)  # new rows are due at once, whatever the clock

_TIMER_ENDERS = frozenset({"Booking.Cancelled", "Booking.Expired", "Booking.CheckedOut",
                           "Booking.CheckedIn"})


class NotificationsProjector:
    name = NAME
    # The outbox is deliberately not here: a rebuild must never empty it (or resend).
    tables = (BOOKINGS_TABLE, TIMERS_TABLE)
    handles = frozenset({
        "Account.Registered",
        "Booking.Held", "Booking.Confirmed", "Booking.Cancelled", "Booking.Expired",
        "Booking.CheckedOut", "Booking.CheckedIn", "Booking.ConciergeAssigned",
        "Payment.Failed", "Payment.Refunded", "Payment.DisputeOpened",
    })

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        decided = await conn.fetchval(f"SELECT through FROM {ENQUEUED_TABLE}")
        batch = await _Batch.load(conn, events)
        for event in events:
            batch.deciding = event.position > decided
            try:
                self._apply(batch, event)
            except (KeyError, TypeError, ValueError):
                # A malformed event must not stall every later email: skip it, loudly.
                log.exception("notification skipped: unexpected event data",
                              extra={"position": event.position, "type": event.type})
        await batch.write(conn)
        if events[-1].position > decided:
            await conn.execute(f"UPDATE {ENQUEUED_TABLE} SET through = $1", events[-1].position)

    def _apply(self, batch: _Batch, event: RecordedEvent) -> None:
        d, key = event.data, cause_key(event)
        if event.type == "Account.Registered":
            batch.enqueue(key, "welcome", ACCOUNT, event.stream_id, {}, IMMEDIATELY)
            return
        if event.type == "Booking.Held":
            batch.remember(event)
            self._to_customer(batch, key, "booking_held", event.stream_id)
        elif event.type == "Booking.Confirmed":
            self._to_customer(batch, key, "booking_confirmed", event.stream_id,
                              amount_paid=d["amount_paid"])
            due = datetime.fromisoformat(d["start"]) - REMINDER_BEFORE
            if due > datetime.fromisoformat(d["at"]):
                batch.timers.insert(reminder_key(event.stream_id),
                                    {"booking_id": event.stream_id, "due_at": due})
        elif event.type == "Booking.ConciergeAssigned":
            booking = batch.bookings.get(event.stream_id)
            if booking and booking[1].get("delivered_level") == "vvip":
                name = batch.concierges.get(uuid_of(d["concierge_id"]))
                self._to_customer(batch, key, "concierge_assigned", event.stream_id,
                                  concierge_name=name or "Your concierge")
        elif event.type == "Payment.Failed":
            self._to_customer(batch, key, "payment_failed", uuid_of(d["booking_id"]),
                              customer_id=d.get("customer_id"), amount=d.get("amount"),
                              currency=d.get("currency"), reason=d.get("reason"))
        elif event.type == "Payment.Refunded":
            self._to_customer(batch, key, "refund_processed", uuid_of(d["booking_id"]),
                              customer_id=d.get("customer_id"), amount=d.get("amount"),
                              currency=d.get("currency"))
        elif event.type == "Payment.DisputeOpened":
            booking = batch.bookings.get(uuid_of(d["booking_id"]))
            context = {**(booking[1] if booking else unknown_booking(d["booking_id"])),
                       "customer_id": d.get("customer_id"), "amount": d.get("amount"),
                       "reason": d.get("reason")}
            if d.get("currency"):
                context["currency"] = d["currency"]
            batch.enqueue(key, "dispute_opened", LEGAL, None, context, IMMEDIATELY)
        if event.type == "Booking.Cancelled":
            self._to_customer(batch, key, "booking_cancelled", event.stream_id,
                              refund_amount=d["refund_amount"],
                              refund_percentage=d["refund_percentage"])
        if event.type in _TIMER_ENDERS or event.type == "Booking.Cancelled":
            batch.timers.delete(reminder_key(event.stream_id))

    def _to_customer(
        self, batch: _Batch, key: str, template: str, booking_id: UUID,
        customer_id: str | None = None, **extra: Any,
    ) -> None:
        if not batch.deciding:
            return
        email = booking_email(key, template, booking_id, batch.bookings.get(booking_id),
                              customer_id, extra, IMMEDIATELY)
        if email is not None:
            batch.emails.append(email)


def cause_key(event: RecordedEvent) -> str:
    return f"{event.type}:{event.stream_id}:{event.version}"


class _Batch:
    """What a batch's events refer to, read once, and the rows they add."""

    def __init__(self, bookings: dict[UUID, BookingContext], items: dict[UUID, str],
                 concierges: dict[UUID, str], timers: RowChanges) -> None:
        self.bookings = bookings  # remembered, including those held earlier in the batch
        self.items, self.concierges, self.timers = items, concierges, timers
        self.remembered: list[tuple[Any, ...]] = []  # new notif_bookings rows
        self.emails: list[tuple[Any, ...]] = []  # outbox rows, in event order
        self.deciding = True  # False: the event's emails were decided before (a rebuild)

    @classmethod
    async def load(cls, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> _Batch:
        refs = _References.of(events)
        return cls(
            await booking_contexts(conn, list(refs.bookings)),
            await _names(conn, "inv_items", refs.items),
            await _names(conn, "acc_accounts", refs.concierges),
            await RowChanges.load(conn, TIMERS_TABLE, "id", map(reminder_key, refs.timers)),
        )

    def enqueue(self, *args: Any) -> None:
        if self.deciding:
            self.emails.append(enqueue_args(*args))

    def remember(self, event: RecordedEvent) -> None:
        """What the emails of a held booking need (ON CONFLICT DO NOTHING)."""
        d, quote = event.data, event.data["quote"]
        item_id = uuid_of(d["item_id"])
        context = {
            "booking_id": str(event.stream_id), "item_id": str(item_id),
            "item_name": self.items.get(item_id) or quote.get("category", "your booking"),
            "category": quote.get("category"), "location": quote.get("location_code"),
            "time_zone": quote.get("time_zone", "UTC"),
            "currency": quote.get("currency", "USD"),
            "start": d["start"], "end": d["end"], "hold_expires_at": d["hold_expires_at"],
            "total_due": quote.get("total_due"),
            "security_deposit": quote.get("security_deposit"),
            "delivered_level": d.get("delivered_level"),
        }
        customer, text = uuid_of(d["customer_id"]), orjson.dumps(context).decode()
        if event.stream_id not in self.bookings:
            self.bookings[event.stream_id] = (customer, context)
            self.remembered.append((event.stream_id, customer, text))

    async def write(self, conn: asyncpg.Connection) -> None:
        await insert_new_rows(conn, BOOKINGS_TABLE, ("booking_id", "customer_id", "context"),
                              self.remembered)  # those not remembered yet
        await self.timers.write(conn)
        await insert_rows(conn, OUTBOX_TABLE, ENQUEUE_COLUMNS, self.emails,
                          "(dedupe_key) DO NOTHING")


@dataclass
class _References:
    """What a batch's events name: bookings, items, concierges, bookings with a timer."""

    bookings: set[UUID] = field(default_factory=set)
    items: set[UUID] = field(default_factory=set)
    concierges: set[UUID] = field(default_factory=set)
    timers: set[UUID] = field(default_factory=set)

    @classmethod
    def of(cls, events: Iterable[RecordedEvent]) -> _References:
        refs = cls()
        for e in events:
            with contextlib.suppress(KeyError, TypeError, ValueError):  # _apply logs them
                refs.add(e)
        return refs

    def add(self, e: RecordedEvent) -> None:
        if e.type.startswith("Payment."):
            self.bookings.add(uuid_of(e.data["booking_id"]))
        elif e.type.startswith("Booking."):
            self.bookings.add(e.stream_id)
        if e.type == "Booking.Held":
            self.items.add(uuid_of(e.data["item_id"]))
        elif e.type == "Booking.ConciergeAssigned":
            self.concierges.add(uuid_of(e.data["concierge_id"]))
        elif e.type == "Booking.Confirmed" or e.type in _TIMER_ENDERS:
            self.timers.add(e.stream_id)


async def _names(conn: asyncpg.Connection, table: str, ids: set[UUID]) -> dict[UUID, str]:
    if not ids:
        return {}
    rows = await conn.fetch(f"SELECT id, name FROM {table} WHERE id = ANY($1::uuid[])",
                            list(ids))
    return {r["id"]: r["name"] for r in rows}
