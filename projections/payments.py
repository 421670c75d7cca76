"""The payments read model: one balance row per booking and every money step as an entry.

Balances: paid, refunded (net revenue = paid - refunded), the deposit's state, disputes,
the last failure. Entries feed the customer's payment history and the staff lists of
disputes and failed payments.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import asyncpg
import orjson

from midas.eventstore import RecordedEvent

BALANCES_TABLE, ENTRIES_TABLE = "pay_balances", "pay_entries"
_MONEY_KEYS = ("booking_id", "customer_id", "amount", "currency", "provider", "reference")


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
        for event in events:
            d = event.data
            booking = UUID(d["booking_id"])
            kind = event.type.split(".", 1)[1]
            if kind == "Requested":
                await conn.execute(
                    f"INSERT INTO {BALANCES_TABLE} (booking_id, payment_id, customer_id,"
                    " currency, amount_due, status, provider, updated_at)"
                    " VALUES ($1, $2, $3, $4, $5, 'requested', $6, $7)"
                    " ON CONFLICT (booking_id) DO NOTHING",
                    booking, event.stream_id, UUID(d["customer_id"]), d["currency"],
                    d["amount"], d["provider"], event.recorded_at)
            else:
                sql, args = _balance_update(kind, d)
                if sql:
                    await conn.execute(
                        f"UPDATE {BALANCES_TABLE} SET {sql}, updated_at = $2"
                        " WHERE booking_id = $1", booking, event.recorded_at, *args)
            detail = {k: v for k, v in d.items() if k not in _MONEY_KEYS}
            await conn.execute(
                f"INSERT INTO {ENTRIES_TABLE} (position, booking_id, customer_id, type, amount,"
                " currency, provider, reference, detail, recorded_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
                event.position, booking, UUID(d["customer_id"]), event.type, d.get("amount"),
                d.get("currency"), d.get("provider"), d.get("reference"),
                orjson.dumps(detail).decode(), event.recorded_at)


def _balance_update(kind: str, d: dict) -> tuple[str, tuple]:  # type: ignore[type-arg]
    if kind == "Succeeded":
        return "paid = paid + $3, status = 'succeeded', provider = $4, last_failure = NULL", (
            d["amount"], d["provider"])
    if kind == "Failed":
        return ("last_failure = $3, status = CASE WHEN paid = 0 THEN 'failed' ELSE status END",
                (d["reason"],))
    if kind == "Refunded":
        return ("refunded = refunded + $3, status = CASE WHEN refunded + $3 >= paid"
                " THEN 'refunded' ELSE 'partially_refunded' END", (d["amount"],))
    if kind == "DisputeOpened":
        return "disputed = true, dispute_status = 'open'", ()
    if kind == "DisputeClosed":
        return "dispute_status = $3", (d["outcome"],)
    if kind in ("DepositAuthorised", "DepositReauthorised"):
        return ("deposit_state = 'authorised', deposit_amount = $3, deposit_expires_at = $4",
                (d["amount"], datetime.fromisoformat(d["expires_at"])))
    if kind == "DepositCaptured":
        return "deposit_state = 'captured', deposit_captured = $3", (d["amount"],)
    if kind == "DepositReleased":
        return "deposit_state = 'released'", ()
    if kind == "DepositLapsed":
        return "deposit_state = 'lapsed'", ()
    return "", ()
