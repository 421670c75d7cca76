"""The outbox: emails recorded with the decision to send them, each once per cause.

``enqueue`` runs inside the caller's transaction (the notifications projection's batch, or
an alert's). The dedupe key is deterministic (the cause: an event's stream and version, a
booking's reminder, an alert's window), so a replay inserts nothing new.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson

log = logging.getLogger(__name__)

OUTBOX_TABLE = "notif_outbox"
BOOKINGS_TABLE = "notif_bookings"
TIMERS_TABLE = "notif_timers"
STATS_TABLE = "notif_stats"
ENQUEUED_TABLE = "notif_enqueued"  # the last position whose emails were decided
# Symbolic recipients, resolved at delivery: ops and legal from settings; an account's
# address (and name) from auth_accounts / acc_accounts, so the outbox holds no address of a
# customer and an erased account's pending emails are never sent.
OPS, LEGAL, ACCOUNT = "@ops", "@legal", "@account"
CONCIERGE = "@concierge"  # the concierge desk (settings.concierge_email)
# A verification link's address, and the address told about an email change: read at
# delivery from the verification named in the context (``verification_id``), so neither
# is in the outbox; a link no longer valid by then is skipped.
VERIFICATION, PREVIOUS = "@verification", "@previous"
BookingContext = tuple[UUID, dict[str, Any]]  # the customer, the booking's email context

ENQUEUE_COLUMNS = ("dedupe_key", "template", "recipient", "account_id", "context",
                   "next_attempt_at", "tracking_id", "trace_context")
ENQUEUE_SQL = (
    f"INSERT INTO {OUTBOX_TABLE} ({', '.join(ENQUEUE_COLUMNS)})"
    " VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8) ON CONFLICT (dedupe_key) DO NOTHING"
)


def enqueue_args(
    dedupe_key: str, template: str, recipient: str, account_id: Any,
    context: dict[str, Any], due: datetime, trace_context: str | None = None,
) -> tuple[Any, ...]:
    """``trace_context``: the traceparent of the cause (``midas.tracing``), if traced."""
    return (dedupe_key, template, recipient, account_id, orjson.dumps(context).decode(), due,
            tracking_id(dedupe_key), trace_context)


async def enqueue(conn: Any, *args: Any, **kwargs: Any) -> None:
    await conn.execute(ENQUEUE_SQL, *enqueue_args(*args, **kwargs))


def tracking_id(dedupe_key: str) -> uuid.UUID:
    return uuid.uuid4()  # unguessable; a replay inserts nothing, so it never changes


def message_id(dedupe_key: str, domain: str) -> str:
    """Stable per cause: a resend after a crash carries the same Message-ID."""
    digest = hashlib.sha256(dedupe_key.encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"


def mask(address: str) -> str:
    """For staff listings and logs at DEBUG: "j***@example.com"."""
    if address.startswith("@"):
        return address
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


async def enqueue_for_booking(
    conn: asyncpg.Connection, key: str, template: str, booking_id: UUID,
    customer_id: str | None, extra: dict[str, Any], due: datetime,
) -> bool:
    """Queue a customer's email about a booking; False when the booking is unknown."""
    args = booking_email(key, template, booking_id, await booking_context(conn, booking_id),
                         customer_id, extra, due)
    if args is not None:
        await conn.execute(ENQUEUE_SQL, *args)
    return args is not None


def booking_email(
    key: str, template: str, booking_id: UUID, booking: BookingContext | None,
    customer_id: str | None, extra: dict[str, Any], due: datetime,
    trace_context: str | None = None,
) -> tuple[Any, ...] | None:
    """The outbox row (``ENQUEUE_SQL``'s arguments) of a customer's email about a booking
    whose context is ``booking``; None, logged, when the booking is unknown."""
    customer = UUID(customer_id) if customer_id else (booking[0] if booking else None)
    if customer is None:
        log.warning("notification skipped: unknown booking",
                    extra={"booking": str(booking_id), "template": template})
        return None
    context = {**(booking[1] if booking else unknown_booking(str(booking_id))),
               **{k: v for k, v in extra.items() if v is not None}}
    return enqueue_args(key, template, ACCOUNT, customer, context, due, trace_context)


def reminder_key(booking_id: UUID | str) -> str:
    return f"reminder:{booking_id}"


async def booking_context(conn: asyncpg.Connection, booking_id: UUID) -> BookingContext | None:
    return (await booking_contexts(conn, [booking_id])).get(booking_id)


async def booking_contexts(
    conn: asyncpg.Connection, booking_ids: list[UUID]
) -> dict[UUID, BookingContext]:
    """The remembered bookings among ``booking_ids``, with one query."""
    if not booking_ids:
        return {}
    rows = await conn.fetch(
        f"SELECT booking_id, customer_id, context FROM {BOOKINGS_TABLE}"
        " WHERE booking_id = ANY($1::uuid[])", booking_ids)
    return {r["booking_id"]: (r["customer_id"], _json(r["context"])) for r in rows}


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str) else value


def unknown_booking(booking_id: str) -> dict[str, Any]:
    return {"booking_id": booking_id, "item_name": "your booking"}
