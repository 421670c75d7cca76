"""The instalments read model: each booking's payment schedule, instalment by instalment
(amount, due date, state), and the disputes with the payment they concern (an instalment's
provider reference), for `GET /api/v1/bookings/{id}/payments`. A dispute is kept apart
from the instalments and read beside them by that reference, so it finds its instalment
whichever is recorded first."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from midas.domain.payment_events import (
    PAYMENT_DISPUTE_CLOSED,
    PAYMENT_DISPUTE_OPENED,
    PaymentDisputeClosed,
    PaymentDisputeOpened,
)
from midas.domain.schedule_events import (
    PAYMENT_SCHEDULE_BALANCE_OVERDUE,
    PAYMENT_SCHEDULE_DUE_DATE_MOVED,
    PAYMENT_SCHEDULE_INSTALMENT_PAID,
    PAYMENT_SCHEDULE_INSTALMENT_REQUESTED,
    PAYMENT_SCHEDULE_INSTALMENT_SPLIT,
    PAYMENT_SCHEDULE_INSTALMENT_WAIVED,
    PAYMENT_SCHEDULE_PLANNED,
    Instalment,
    InstalmentFacts,
    instalment_facts,
)
from midas.eventstore import RecordedEvent

INSTALMENTS_TABLE = "pay_instalments"
DISPUTES_TABLE = "pay_disputes"
_STATE: dict[str, str] = {  # by declared type
    PAYMENT_SCHEDULE_INSTALMENT_REQUESTED: "requested",
    PAYMENT_SCHEDULE_INSTALMENT_PAID: "paid",
    PAYMENT_SCHEDULE_INSTALMENT_WAIVED: "waived",
    PAYMENT_SCHEDULE_INSTALMENT_SPLIT: "split"}


class InstalmentsProjector:
    name = "instalments"
    tables = (INSTALMENTS_TABLE, DISPUTES_TABLE)
    handles = frozenset({PAYMENT_SCHEDULE_PLANNED, PAYMENT_SCHEDULE_DUE_DATE_MOVED,
                         PAYMENT_SCHEDULE_BALANCE_OVERDUE, *_STATE,
                         PAYMENT_DISPUTE_OPENED, PAYMENT_DISPUTE_CLOSED})

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        for event in events:  # a schedule has a handful of events in its life
            if event.type == PAYMENT_DISPUTE_OPENED:
                await _dispute(conn, PAYMENT_DISPUTE_OPENED.of(event))
            elif event.type == PAYMENT_DISPUTE_CLOSED:
                await _dispute_closed(conn, PAYMENT_DISPUTE_CLOSED.of(event))
            elif event.type == PAYMENT_SCHEDULE_PLANNED:
                planned = PAYMENT_SCHEDULE_PLANNED.of(event)
                await _insert(conn, planned["booking_id"], planned["currency"],
                              planned["instalments"])
            elif event.type == PAYMENT_SCHEDULE_DUE_DATE_MOVED:
                moved = PAYMENT_SCHEDULE_DUE_DATE_MOVED.of(event)
                await _set(conn, moved, "due_at = $3, overdue = false",
                           datetime.fromisoformat(moved["due_at"]))
            elif event.type == PAYMENT_SCHEDULE_BALANCE_OVERDUE:
                await _set(conn, instalment_facts(event), "overdue = $3", True)
            else:
                await _state_changed(conn, event)


async def _state_changed(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    """An instalment requested, paid, waived or split: its state (and the provider's
    reference of a request or payment); a split's parts are instalments of their own."""
    state = _STATE[event.type]
    if event.type == PAYMENT_SCHEDULE_INSTALMENT_REQUESTED:
        requested = PAYMENT_SCHEDULE_INSTALMENT_REQUESTED.of(event)
        await _set(conn, requested, "state = $3, reference = $4", state,
                   requested["reference"])
    elif event.type == PAYMENT_SCHEDULE_INSTALMENT_PAID:
        paid = PAYMENT_SCHEDULE_INSTALMENT_PAID.of(event)
        await _set(conn, paid, "state = $3, reference = $4", state, paid["reference"])
    else:
        await _set(conn, instalment_facts(event), "state = $3", state)
    if event.type == PAYMENT_SCHEDULE_INSTALMENT_SPLIT:
        split = PAYMENT_SCHEDULE_INSTALMENT_SPLIT.of(event)
        currency = await conn.fetchval(
            f"SELECT currency FROM {INSTALMENTS_TABLE} WHERE booking_id = $1"
            " LIMIT 1", _uuid(split["booking_id"]))
        await _insert(conn, split["booking_id"], currency or "", split["parts"])


def _uuid(text: str) -> Any:
    from uuid import UUID

    return UUID(text)


async def _insert(conn: asyncpg.Connection, booking: str, currency: str,
                  instalments: list[Instalment]) -> None:
    await conn.executemany(
        f"INSERT INTO {INSTALMENTS_TABLE} (booking_id, number, amount, currency, due_at, state)"
        " VALUES ($1, $2, $3, $4, $5, 'planned') ON CONFLICT DO NOTHING",
        [(_uuid(booking), i["number"], i["amount"], currency,
          datetime.fromisoformat(i["due_at"])) for i in instalments])


async def _dispute(conn: asyncpg.Connection,
                   d: PaymentDisputeOpened | PaymentDisputeClosed) -> None:
    """A dispute's row (a dispute closed before its opening was seen opens it too)."""
    await conn.execute(
        f"INSERT INTO {DISPUTES_TABLE} (reference, booking_id, charge, amount, currency,"
        " reason, status, opened_at) VALUES ($1, $2, $3, $4, $5, $6, 'open', $7)"
        " ON CONFLICT (reference) DO UPDATE SET charge = coalesce("
        f"{DISPUTES_TABLE}.charge, excluded.charge)",
        d["reference"], _uuid(d["booking_id"]), _charge(d), d["amount"], d["currency"],
        d.get("reason", "unknown"), datetime.fromisoformat(d["at"]))


async def _dispute_closed(conn: asyncpg.Connection, d: PaymentDisputeClosed) -> None:
    """A dispute closed: its row, and its outcome."""
    await _dispute(conn, d)
    await conn.execute(
        f"UPDATE {DISPUTES_TABLE} SET status = $2, closed_at = $3 WHERE reference = $1",
        d["reference"], d["outcome"], datetime.fromisoformat(d["at"]))


def _charge(d: PaymentDisputeOpened | PaymentDisputeClosed) -> str | None:
    """The payment a dispute concerns; a PayPal reversal recorded before disputes named it
    has the payment's id as its own."""
    return d.get("charge") or (d["reference"] if d.get("provider") == "paypal" else None)


async def _set(conn: asyncpg.Connection, d: InstalmentFacts, assignments: str,
               *values: Any) -> None:
    await conn.execute(
        f"UPDATE {INSTALMENTS_TABLE} SET {assignments} WHERE booking_id = $1 AND number = $2",
        _uuid(d["booking_id"]), d["number"], *values)
