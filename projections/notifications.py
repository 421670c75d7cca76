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

from midas.domain.account_events import (
    ACCOUNT_EMAIL_CHANGE_REQUESTED,
    ACCOUNT_EMAIL_VERIFICATION_REQUESTED,
    ACCOUNT_EMAIL_VERIFIED,
    ACCOUNT_REGISTERED,
)
from midas.domain.booking_events import (
    BOOKING_CANCELLED,
    BOOKING_CHANGED,
    BOOKING_CHECKED_IN,
    BOOKING_CHECKED_OUT,
    BOOKING_CONCIERGE_ASSIGNED,
    BOOKING_CONFIRMED,
    BOOKING_EXPIRED,
    BOOKING_HELD,
)
from midas.domain.payment_events import (
    PAYMENT_DEPOSIT_LAPSED,
    PAYMENT_DISPUTE_OPENED,
    PAYMENT_FAILED,
    PAYMENT_REFUNDED,
    payment_facts,
)
from midas.domain.schedule_events import (
    PAYMENT_SCHEDULE_BALANCE_OVERDUE,
    PAYMENT_SCHEDULE_INSTALMENT_REMINDED,
    instalment_facts,
)
from midas.eventstore import RecordedEvent
from midas.notifications.outbox import (
    ACCOUNT,
    BOOKINGS_TABLE,
    CONCIERGE,
    ENQUEUE_COLUMNS,
    ENQUEUED_TABLE,
    LEGAL,
    OUTBOX_TABLE,
    PREVIOUS,
    TIMERS_TABLE,
    VERIFICATION,
    BookingContext,
    booking_contexts,
    booking_email,
    enqueue_args,
    reminder_key,
    unknown_booking,
)
from midas.tracing import trace_context_of
from projections.batch import RowChanges, insert_new_rows, insert_rows, uuid_of

log = logging.getLogger(__name__)
NAME = "notifications"
REMINDER_BEFORE = timedelta(hours=24)
IMMEDIATELY = datetime(2000, 1, 1, tzinfo=UTC)  # new rows are due at once, whatever the clock

_TIMER_ENDERS = frozenset({BOOKING_CANCELLED, BOOKING_EXPIRED, BOOKING_CHECKED_OUT,
                           BOOKING_CHECKED_IN})
_BOOKING_EVENTS = frozenset({BOOKING_HELD, BOOKING_CONFIRMED, BOOKING_CHANGED,
                             BOOKING_CONCIERGE_ASSIGNED, *_TIMER_ENDERS})
_PAYMENT_EVENTS = frozenset({PAYMENT_FAILED, PAYMENT_REFUNDED, PAYMENT_DISPUTE_OPENED,
                             PAYMENT_DEPOSIT_LAPSED})
_SCHEDULE_EVENTS = frozenset({PAYMENT_SCHEDULE_INSTALMENT_REMINDED,
                              PAYMENT_SCHEDULE_BALANCE_OVERDUE})
_VERIFICATION_EVENTS = frozenset({ACCOUNT_EMAIL_VERIFICATION_REQUESTED,
                                  ACCOUNT_EMAIL_CHANGE_REQUESTED, ACCOUNT_EMAIL_VERIFIED})


class NotificationsProjector:
    name = NAME
    # The outbox is deliberately not here: a rebuild must never empty it (or resend).
    tables = (BOOKINGS_TABLE, TIMERS_TABLE)
    handles = frozenset({ACCOUNT_REGISTERED, *_VERIFICATION_EVENTS, *_BOOKING_EVENTS,
                         *_PAYMENT_EVENTS, *_SCHEDULE_EVENTS})

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        decided = await conn.fetchval(f"SELECT through FROM {ENQUEUED_TABLE}")
        batch = await _Batch.load(conn, events)
        for event in events:
            batch.deciding = event.position > decided
            batch.trace = trace_context_of(event.metadata)  # {} unless the process traces
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
        t, key = event.type, cause_key(event)
        if t == ACCOUNT_REGISTERED:
            batch.enqueue(key, "welcome", ACCOUNT, event.stream_id, {}, IMMEDIATELY)
        elif t in _VERIFICATION_EVENTS:
            self._verification(batch, key, event)
        elif t in _BOOKING_EVENTS:
            self._booking(batch, key, event)
        elif t in _SCHEDULE_EVENTS:
            self._schedule(batch, key, event)
        else:
            self._payment(batch, key, event)

    def _booking(self, batch: _Batch, key: str, event: RecordedEvent) -> None:
        t = event.type
        if t == BOOKING_HELD:
            batch.remember(event)
            self._to_customer(batch, key, "booking_held", event.stream_id)
        elif t == BOOKING_CONFIRMED:
            c = BOOKING_CONFIRMED.of(event)
            self._to_customer(batch, key, "booking_confirmed", event.stream_id,
                              amount_paid=c["amount_paid"])
            due = datetime.fromisoformat(c["start"]) - REMINDER_BEFORE
            if due > datetime.fromisoformat(c["at"]):
                batch.timers.insert(reminder_key(event.stream_id),
                                    {"booking_id": event.stream_id, "due_at": due})
        elif t == BOOKING_CHANGED:
            d = BOOKING_CHANGED.of(event)
            terms = d["terms"]
            self._to_customer(batch, key, "booking_changed", event.stream_id,
                              start=terms["start"], end=terms["end"],
                              service_level=terms["service_level"],
                              total_due=terms["quote"]["total_due"], paid=d["paid"],
                              refund_amount=d["refund_amount"])
            due = datetime.fromisoformat(terms["start"]) - REMINDER_BEFORE
            if d["state"] == "confirmed" and due > datetime.fromisoformat(d["at"]):
                batch.timers.delete(reminder_key(event.stream_id))
                batch.timers.insert(reminder_key(event.stream_id),
                                    {"booking_id": event.stream_id, "due_at": due})
        elif t == BOOKING_CONCIERGE_ASSIGNED:
            booking = batch.bookings.get(event.stream_id)
            if booking and booking[1].get("delivered_level") == "vvip":
                concierge = BOOKING_CONCIERGE_ASSIGNED.of(event)["concierge_id"]
                name = batch.concierges.get(uuid_of(concierge))
                self._to_customer(batch, key, "concierge_assigned", event.stream_id,
                                  concierge_name=name or "Your concierge")
        if t == BOOKING_CANCELLED:
            cancelled = BOOKING_CANCELLED.of(event)
            self._to_customer(batch, key, "booking_cancelled", event.stream_id,
                              refund_amount=cancelled["refund_amount"],
                              refund_percentage=cancelled["refund_percentage"])
        if t in _TIMER_ENDERS:
            batch.timers.delete(reminder_key(event.stream_id))

    def _schedule(self, batch: _Batch, key: str, event: RecordedEvent) -> None:
        if event.type == PAYMENT_SCHEDULE_INSTALMENT_REMINDED:
            r = PAYMENT_SCHEDULE_INSTALMENT_REMINDED.of(event)
            self._to_customer(batch, key, "instalment_reminder", uuid_of(r["booking_id"]),
                              customer_id=r.get("customer_id"), number=r["number"],
                              kind=r["kind"], amount=r["amount"], currency=r["currency"],
                              due_at=r["due_at"])
            return
        o = PAYMENT_SCHEDULE_BALANCE_OVERDUE.of(event)
        self._to_concierge(batch, key, uuid_of(o["booking_id"]), "Balance overdue", (
            f"Instalment {o['number']} was due {o['due_at']} and is still unpaid. Unless"
            " it is paid, moved or waived, the booking is cancelled for client default at"
            " the end of the grace period."), amount=o["amount"])

    def _payment(self, batch: _Batch, key: str, event: RecordedEvent) -> None:
        t, d = event.type, payment_facts(event)
        if t == PAYMENT_FAILED:
            self._to_customer(batch, key, "payment_failed", uuid_of(d["booking_id"]),
                              customer_id=d.get("customer_id"), amount=d.get("amount"),
                              currency=d.get("currency"),
                              reason=PAYMENT_FAILED.of(event).get("reason"))
        elif t == PAYMENT_REFUNDED:
            self._to_customer(batch, key, "refund_processed", uuid_of(d["booking_id"]),
                              customer_id=d.get("customer_id"), amount=d.get("amount"),
                              currency=d.get("currency"))
        elif t == PAYMENT_DISPUTE_OPENED:
            booking = batch.bookings.get(uuid_of(d["booking_id"]))
            context = {**(booking[1] if booking else unknown_booking(d["booking_id"])),
                       "customer_id": d.get("customer_id"), "amount": d.get("amount"),
                       "reason": PAYMENT_DISPUTE_OPENED.of(event).get("reason")}
            if d.get("currency"):
                context["currency"] = d["currency"]
            batch.enqueue(key, "dispute_opened", LEGAL, None, context, IMMEDIATELY)
        elif t == PAYMENT_DEPOSIT_LAPSED:
            self._to_concierge(batch, key, uuid_of(d["booking_id"]), "Deposit hold lapsed", (
                "The security deposit authorisation lapsed and was not renewed: nothing can"
                " be captured from it. Ask the client for a new hold."),
                amount=d.get("amount"))

    def _to_concierge(self, batch: _Batch, key: str, booking_id: UUID, title: str,
                      message: str, **extra: Any) -> None:
        """An alert to the concierge desk about a booking (`concierge_alert`)."""
        booking = batch.bookings.get(booking_id)
        context = {**(booking[1] if booking else unknown_booking(str(booking_id))),
                   "title": title, "message": message, **extra}
        batch.enqueue(key, "concierge_alert", CONCIERGE, None, context, IMMEDIATELY)

    def _verification(self, batch: _Batch, key: str, event: RecordedEvent) -> None:
        """A link to the address to prove; for a change, the current address is told when
        it is requested and when it takes effect. Addresses are read at delivery."""
        if event.type == ACCOUNT_EMAIL_VERIFIED:
            verified = ACCOUNT_EMAIL_VERIFIED.of(event)
            if verified["changed"]:
                batch.enqueue(key, "email_changed", PREVIOUS, event.stream_id,
                              {"verification_id": verified["verification_id"]}, IMMEDIATELY)
            return
        requested = (ACCOUNT_EMAIL_CHANGE_REQUESTED.of(event)
                     if event.type == ACCOUNT_EMAIL_CHANGE_REQUESTED
                     else ACCOUNT_EMAIL_VERIFICATION_REQUESTED.of(event))
        link = {"verification_id": requested["verification_id"]}
        batch.enqueue(key, "verify_email", VERIFICATION, event.stream_id,
                      {**link, "expires_at": requested["expires_at"]}, IMMEDIATELY)
        if event.type == ACCOUNT_EMAIL_CHANGE_REQUESTED:
            batch.enqueue(f"{key}:previous", "email_change_requested", PREVIOUS,
                          event.stream_id, link, IMMEDIATELY)

    def _to_customer(
        self, batch: _Batch, key: str, template: str, booking_id: UUID,
        customer_id: str | None = None, **extra: Any,
    ) -> None:
        if not batch.deciding:
            return
        email = booking_email(key, template, booking_id, batch.bookings.get(booking_id),
                              customer_id, extra, IMMEDIATELY, batch.trace)
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
        self.trace: str | None = None  # the traceparent of the event being decided

    @classmethod
    async def load(cls, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> _Batch:
        refs = _References.of(events)
        return cls(
            await booking_contexts(conn, list(refs.bookings)),
            await _names(conn, "inv_items", refs.items),
            await _names(conn, "acc_accounts", refs.concierges),
            await RowChanges.load(conn, TIMERS_TABLE, "id", map(reminder_key, refs.timers)),
        )

    def enqueue(self, dedupe_key: str, template: str, recipient: str, account_id: Any,
                context: dict[str, Any], due: datetime) -> None:
        if self.deciding:
            self.emails.append(enqueue_args(dedupe_key, template, recipient, account_id,
                                            context, due, trace_context=self.trace))

    def remember(self, event: RecordedEvent) -> None:
        """What the emails of a held booking need (ON CONFLICT DO NOTHING)."""
        d = BOOKING_HELD.of(event)
        quote = d["quote"]
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
        if e.type in _PAYMENT_EVENTS:
            self.bookings.add(uuid_of(payment_facts(e)["booking_id"]))
        elif e.type in _SCHEDULE_EVENTS:
            self.bookings.add(uuid_of(instalment_facts(e)["booking_id"]))
        elif e.type in _BOOKING_EVENTS:
            self.bookings.add(e.stream_id)
        if e.type == BOOKING_HELD:
            self.items.add(uuid_of(BOOKING_HELD.of(e)["item_id"]))
        elif e.type == BOOKING_CONCIERGE_ASSIGNED:
            self.concierges.add(uuid_of(BOOKING_CONCIERGE_ASSIGNED.of(e)["concierge_id"]))
        elif e.type in (BOOKING_CONFIRMED, BOOKING_CHANGED) or e.type in _TIMER_ENDERS:
            self.timers.add(e.stream_id)


async def _names(conn: asyncpg.Connection, table: str, ids: set[UUID]) -> dict[UUID, str]:
    if not ids:
        return {}
    rows = await conn.fetch(f"SELECT id, name FROM {table} WHERE id = ANY($1::uuid[])",
                            list(ids))
    return {r["id"]: r["name"] for r in rows}
