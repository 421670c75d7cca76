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

from midas.eventstore import RecordedEvent
from projections.batch import Row, RowChanges, insert_new_rows, uuid_of

BALANCES_TABLE, ENTRIES_TABLE = "pay_balances", "pay_entries"
_MONEY_KEYS = ("booking_id", "customer_id", "amount", "currency", "provider", "reference")
_READ = ("paid", "refunded", "status")  # what later events of a batch work from
_NO_BALANCE = {"paid": 0, "refunded": 0, "status": None}
_ENTRY_COLUMNS = ("position", "booking_id", "customer_id", "type", "amount", "currency",
                  "provider", "reference", "detail", "recorded_at")


class PaymentsProjector:
    name = "payments"
    tables = (BALANCES_TABLE, ENTRIES_TABLE)
    handles = frozenset({
        "Payment.Requested", "Payment.IntentRecorded", "Payment.Succeeded", "Payment.Failed",
        "Payment.RefundRequested", "Payment.Refunded", "Payment.RefundFailed",
        "Payment.DisputeOpened", "Payment.DisputeClosed", "Payment.DepositAuthorised",
        "Payment.DepositReauthorised", "Payment.DepositCaptured", "Payment.DepositReleased",
        "Payment.DepositLapsed",
    })

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        balances = await RowChanges.load(
            conn, BALANCES_TABLE, "booking_id", (uuid_of(e.data["booking_id"]) for e in events),
            _READ)
        entries = []
        for event in events:
            d = event.data
            booking = uuid_of(d["booking_id"])
            kind = event.type.split(".", 1)[1]
            if kind == "Requested":
                balances.insert(booking, {
                    "payment_id": event.stream_id, "customer_id": uuid_of(d["customer_id"]),
                    "currency": d["currency"], "amount_due": d["amount"],
                    "paid": 0, "refunded": 0,  # the defaults, for later events to add to
                    "status": "requested", "provider": d["provider"],
                    "updated_at": event.recorded_at})
            else:
                # Worked out even for an unknown booking: malformed data fails the batch.
                changes = _balance_update(kind, d, balances.get(booking) or _NO_BALANCE)
                if changes:
                    balances.update(booking, {**changes, "updated_at": event.recorded_at})
            detail = {k: v for k, v in d.items() if k not in _MONEY_KEYS}
            entries.append((
                event.position, booking, uuid_of(d["customer_id"]), event.type, d.get("amount"),
                d.get("currency"), d.get("provider"), d.get("reference"),
                orjson.dumps(detail).decode(), event.recorded_at))
        await balances.write(conn)
        await insert_new_rows(conn, ENTRIES_TABLE, _ENTRY_COLUMNS, entries)  # one per event


def _balance_update(kind: str, d: dict[str, Any], balance: Row) -> dict[str, Any]:
    """The columns an event changes on a booking's balance (``balance`` as it stands)."""
    if kind == "Succeeded":
        return {"paid": balance["paid"] + d["amount"], "status": "succeeded",
                "provider": d["provider"], "last_failure": None}
    if kind == "Failed":
        return {"last_failure": d["reason"],
                "status": "failed" if balance["paid"] == 0 else balance["status"]}
    if kind == "Refunded":
        refunded = balance["refunded"] + d["amount"]
        return {"refunded": refunded, "status": "refunded" if refunded >= balance["paid"]
                else "partially_refunded"}
    if kind == "DisputeOpened":
        return {"disputed": True, "dispute_status": "open"}
    if kind == "DisputeClosed":
        return {"dispute_status": d["outcome"]}
    if kind in ("DepositAuthorised", "DepositReauthorised"):
        return {"deposit_state": "authorised", "deposit_amount": d["amount"],
                "deposit_expires_at": datetime.fromisoformat(d["expires_at"])}
    if kind == "DepositCaptured":
        return {"deposit_state": "captured", "deposit_captured": d["amount"]}
    if kind == "DepositReleased":
        return {"deposit_state": "released"}
    if kind == "DepositLapsed":
        return {"deposit_state": "lapsed"}
    return {}
