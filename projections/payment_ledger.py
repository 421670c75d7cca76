"""The payments read model: one balance row per booking and every money step as an entry.

Balances: paid, refunded (net revenue = paid - refunded), the deposit's state, disputes,
the last failure. Entries feed the customer's payment history and the staff lists of
disputes and failed payments.

A batch reads the balances of its bookings once, applies its events to them in memory and
writes each changed balance once, and every entry with one statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from midas.domain.payment_events import (
    PAYMENT_ASKED,
    PAYMENT_DEPOSIT_AUTHORISED,
    PAYMENT_DEPOSIT_CAPTURED,
    PAYMENT_DEPOSIT_LAPSED,
    PAYMENT_DEPOSIT_REAUTHORISED,
    PAYMENT_DEPOSIT_RELEASED,
    PAYMENT_DISPUTE_CLOSED,
    PAYMENT_DISPUTE_OPENED,
    PAYMENT_FAILED,
    PAYMENT_INTENT_RECORDED,
    PAYMENT_REFUND_FAILED,
    PAYMENT_REFUND_REQUESTED,
    PAYMENT_REFUNDED,
    PAYMENT_REQUESTED,
    PAYMENT_SUCCEEDED,
    payment_facts,
)
from midas.eventstore import RecordedEvent
from projections.batch import Row, RowChanges, insert_new_rows, uuid_of

BALANCES_TABLE, ENTRIES_TABLE = "pay_balances", "pay_entries"
_MONEY_KEYS = ("booking_id", "customer_id", "amount", "currency", "provider", "reference")
_READ = ("paid", "refunded", "status", "amount_due")  # what later events of a batch work from
_NO_BALANCE = {"paid": 0, "refunded": 0, "status": None, "amount_due": 0}
_ENTRY_COLUMNS = ("position", "booking_id", "customer_id", "type", "amount", "currency",
                  "provider", "reference", "detail", "recorded_at")


class PaymentsProjector:
    name = "payments"
    tables = (BALANCES_TABLE, ENTRIES_TABLE)
    handles = frozenset({
        PAYMENT_REQUESTED, PAYMENT_INTENT_RECORDED, PAYMENT_SUCCEEDED, PAYMENT_FAILED,
        PAYMENT_REFUND_REQUESTED, PAYMENT_REFUNDED, PAYMENT_REFUND_FAILED,
        PAYMENT_DISPUTE_OPENED, PAYMENT_DISPUTE_CLOSED, PAYMENT_DEPOSIT_AUTHORISED,
        PAYMENT_DEPOSIT_REAUTHORISED, PAYMENT_DEPOSIT_CAPTURED, PAYMENT_DEPOSIT_RELEASED,
        PAYMENT_DEPOSIT_LAPSED, PAYMENT_ASKED,
    })

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        balances = await RowChanges.load(
            conn, BALANCES_TABLE, "booking_id",
            (uuid_of(payment_facts(e)["booking_id"]) for e in events), _READ)
        entries = []
        for event in events:
            d = payment_facts(event)
            booking = uuid_of(d["booking_id"])
            if event.type == PAYMENT_REQUESTED:
                balances.insert(booking, {
                    "payment_id": event.stream_id, "customer_id": uuid_of(d["customer_id"]),
                    "currency": d["currency"], "amount_due": d["amount"],
                    "paid": 0, "refunded": 0,  # the defaults, for later events to add to
                    "status": "requested", "provider": d["provider"],
                    "updated_at": event.recorded_at})
            else:
                # Worked out even for an unknown booking: malformed data fails the batch.
                changes = _balance_update(event, balances.get(booking) or _NO_BALANCE)
                if changes:
                    balances.update(booking, {**changes, "updated_at": event.recorded_at})
            # The entry keeps every field the event recorded, whatever its type.
            detail = {k: v for k, v in event.data.items() if k not in _MONEY_KEYS}
            entries.append((
                event.position, booking, uuid_of(d["customer_id"]), event.type, d.get("amount"),
                d.get("currency"), d.get("provider"), event.data.get("reference"),
                orjson.dumps(detail).decode(), event.recorded_at))
        await balances.write(conn)
        await insert_new_rows(conn, ENTRIES_TABLE, _ENTRY_COLUMNS, entries)  # one per event


def _balance_update(event: RecordedEvent, balance: Row) -> dict[str, Any]:
    """The columns an event changes on a booking's balance (``balance`` as it stands)."""
    t = event.type
    if t == PAYMENT_ASKED:  # a further payment (an APA top-up): owed, it adds to the amount due
        asked = PAYMENT_ASKED.of(event)
        return {"amount_due": balance["amount_due"] + asked["amount"]} if asked.get(
            "owed") else {}
    if t == PAYMENT_SUCCEEDED:
        paid = PAYMENT_SUCCEEDED.of(event)
        return {"paid": balance["paid"] + paid["amount"], "status": "succeeded",
                "provider": paid["provider"], "last_failure": None}
    if t == PAYMENT_FAILED:
        return {"last_failure": PAYMENT_FAILED.of(event)["reason"],
                "status": "failed" if balance["paid"] == 0 else balance["status"]}
    if t == PAYMENT_REFUNDED:
        refunded = balance["refunded"] + PAYMENT_REFUNDED.of(event)["amount"]
        return {"refunded": refunded, "status": "refunded" if refunded >= balance["paid"]
                else "partially_refunded"}
    if t == PAYMENT_DISPUTE_OPENED:
        return {"disputed": True, "dispute_status": "open"}
    if t == PAYMENT_DISPUTE_CLOSED:
        return {"dispute_status": PAYMENT_DISPUTE_CLOSED.of(event)["outcome"]}
    if t in (PAYMENT_DEPOSIT_AUTHORISED, PAYMENT_DEPOSIT_REAUTHORISED):
        hold = (PAYMENT_DEPOSIT_AUTHORISED.of(event) if t == PAYMENT_DEPOSIT_AUTHORISED
                else PAYMENT_DEPOSIT_REAUTHORISED.of(event))
        return {"deposit_state": "authorised", "deposit_amount": hold["amount"],
                "deposit_expires_at": datetime.fromisoformat(hold["expires_at"])}
    if t == PAYMENT_DEPOSIT_CAPTURED:
        return {"deposit_state": "captured",
                "deposit_captured": PAYMENT_DEPOSIT_CAPTURED.of(event)["amount"]}
    if t == PAYMENT_DEPOSIT_RELEASED:
        return {"deposit_state": "released"}
    if t == PAYMENT_DEPOSIT_LAPSED:
        return {"deposit_state": "lapsed"}
    return {}
