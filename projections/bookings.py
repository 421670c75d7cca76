"""The bookings read model: one row per booking, for customers' and staff's lists.

A batch reads which of its bookings exist, merges each booking's events in memory (held,
confirmed and checked out in one batch: one INSERT with the final status) and writes them
with a few statements.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from midas.domain.booking_events import (
    BOOKING_APA_RECONCILED,
    BOOKING_APA_TOP_UP_PAID,
    BOOKING_CANCELLED,
    BOOKING_CHANGED,
    BOOKING_CONCIERGE_ASSIGNED,
    BOOKING_CONFIRMED,
    BOOKING_HELD,
    STATUS_AFTER,
)
from midas.eventstore import RecordedEvent
from projections.batch import RowChanges

BOOKINGS_TABLE = "bk_bookings"


class BookingsProjector:
    name = "bookings"
    tables = (BOOKINGS_TABLE,)
    handles = frozenset({BOOKING_HELD, BOOKING_CONCIERGE_ASSIGNED, BOOKING_CHANGED,
                         BOOKING_APA_RECONCILED, BOOKING_APA_TOP_UP_PAID, *STATUS_AFTER})

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        bookings = await RowChanges.load(conn, BOOKINGS_TABLE, "id",
                                         (e.stream_id for e in events))
        for event in events:
            if event.type == BOOKING_HELD:
                bookings.insert(event.stream_id, _held(event))
            elif event.type == BOOKING_CHANGED:
                row = bookings.get(event.stream_id) or {}
                bookings.update(event.stream_id, {
                    **_changed(event, int(row.get("amount_paid") or 0)),
                    "version": event.version, "updated_at": event.recorded_at})
            else:
                bookings.update(event.stream_id, {
                    **_changes(event), "version": event.version,
                    "updated_at": event.recorded_at})
        await bookings.write(conn)


def _held(event: RecordedEvent) -> dict[str, Any]:
    d = BOOKING_HELD.of(event)
    q = d["quote"]
    return {
        "item_id": d["item_id"], "customer_id": d["customer_id"],  # uuid text
        "status": "held", "starts_at": _at(d["start"]), "ends_at": _at(d["end"]),
        "service_level": d["service_level"], "delivered_level": d["delivered_level"],
        "category": q["category"], "location": q["location_code"], "currency": q["currency"],
        "total_due": q["total_due"], "security_deposit": q["security_deposit"],
        "quote": orjson.dumps(q).decode(), "held_at": _at(d["held_at"]),
        "hold_expires_at": _at(d["hold_expires_at"]), "version": event.version,
        "updated_at": event.recorded_at,
    }


def _changed(event: RecordedEvent, amount_paid: int) -> dict[str, Any]:
    """A change took effect: the new terms (the old ones stay in the log)."""
    d = BOOKING_CHANGED.of(event)
    t = d["terms"]
    q = t["quote"]
    return {"item_id": t["item_id"], "starts_at": _at(t["start"]), "ends_at": _at(t["end"]),
            "service_level": t["service_level"], "delivered_level": t["delivered_level"],
            "total_due": q["total_due"], "security_deposit": q["security_deposit"],
            "quote": orjson.dumps(q).decode(), "amount_paid": amount_paid + int(d["paid"])}


def _changes(event: RecordedEvent) -> dict[str, Any]:
    if event.type == BOOKING_CONCIERGE_ASSIGNED:
        return {"concierge_id": BOOKING_CONCIERGE_ASSIGNED.of(event)["concierge_id"]}
    if event.type == BOOKING_APA_RECONCILED:
        apa = BOOKING_APA_RECONCILED.of(event)
        return {"apa": orjson.dumps({"collected": apa["collected"], "spent": apa["spent"],
                                     "refund": apa["refund"], "top_up": apa["top_up"],
                                     "top_up_paid": 0}).decode()}
    if event.type == BOOKING_APA_TOP_UP_PAID:
        statement = {k: v for k, v in BOOKING_APA_TOP_UP_PAID.of(event)["statement"].items()
                     if k != "top_up_payments"}
        return {"apa": orjson.dumps(statement).decode()}
    if event.type == BOOKING_CONFIRMED:
        return {"status": STATUS_AFTER[event.type],
                "amount_paid": BOOKING_CONFIRMED.of(event)["amount_paid"]}
    if event.type == BOOKING_CANCELLED:
        c = BOOKING_CANCELLED.of(event)
        return {"status": STATUS_AFTER[event.type], "cancel_reason": c["reason"],
                "refund_percentage": c["refund_percentage"],
                "refund_amount": c["refund_amount"]}
    return {"status": STATUS_AFTER[event.type]}


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)
