"""A booking's timeline in plain words, across every stream its commands touched.

Events belong to the timeline when they are in the booking's stream or share a
correlation id with one of its events (the item's reservation, payments, reactions).
Each event is described by a small registry of per-type describers; any other type gets
the default "<Type> by <actor> at <time>", so new event types appear without changes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from midas.domain.booking_events import (
    BOOKING_CANCELLED,
    BOOKING_CHECKED_IN,
    BOOKING_CHECKED_OUT,
    BOOKING_CONFIRMED,
    BOOKING_EXPIRED,
    BOOKING_HELD,
)
from midas.domain.item_events import ITEM_RELEASED, ITEM_RESERVED
from midas.eventstore.store import RecordedEvent

_COLUMNS = "position, stream_id, version, type, data, metadata, recorded_at, hash"
MAX_ENTRIES = 1000

Describer = Callable[[RecordedEvent], str]
DESCRIBERS: dict[str, Describer] = {}


def describes(*types: str) -> Callable[[Describer], Describer]:
    def register(describer: Describer) -> Describer:
        for type_ in types:
            DESCRIBERS[type_] = describer
        return describer

    return register


def actor(event: RecordedEvent) -> str:
    who = event.metadata.get("actor") or "unknown"
    role = event.metadata.get("actor_role")
    return f"{who} ({role})" if role else str(who)


def when(event: RecordedEvent) -> str:
    """Business time (the aggregate's ``occurred_at``), else when the store recorded it."""
    occurred = event.metadata.get("occurred_at")
    if isinstance(occurred, str):
        try:
            return datetime.fromisoformat(occurred).isoformat(timespec="seconds")
        except ValueError:
            pass
    return event.recorded_at.isoformat(timespec="seconds")


def money(cents: Any, currency: str | None) -> str:
    if not isinstance(cents, int):
        return "an unknown amount"
    return f"{cents // 100}.{cents % 100:02d} {currency or ''}".rstrip()


def default_describer(event: RecordedEvent) -> str:
    return f"{event.type} by {actor(event)} at {when(event)}"


def describe(event: RecordedEvent) -> str:
    describer = DESCRIBERS.get(event.type, default_describer)
    try:
        return describer(event)
    except (KeyError, TypeError, ValueError):  # a payload older or newer than its describer
        return default_describer(event)


@describes(BOOKING_HELD)
def _held(e: RecordedEvent) -> str:
    d = BOOKING_HELD.of(e)
    quote = d.get("quote") or {}
    return (f"Booking held by {actor(e)} at {when(e)} for item {d['item_id']},"
            f" {d['start']} to {d['end']}, total due"
            f" {money(quote.get('total_due'), quote.get('currency'))},"
            f" hold expires {d['hold_expires_at']}")


@describes(BOOKING_CONFIRMED)
def _confirmed(e: RecordedEvent) -> str:
    d = BOOKING_CONFIRMED.of(e)
    again = " after its hold had expired (reinstated)" if d["reinstated"] else ""
    return (f"Booking confirmed{again} by {actor(e)} at {when(e)}, amount paid"
            f" {money(d['amount_paid'], None)}")


@describes(BOOKING_CANCELLED)
def _cancelled(e: RecordedEvent) -> str:
    d = BOOKING_CANCELLED.of(e)
    return (f"Booking cancelled by {actor(e)} at {when(e)} ({d['reason']}),"
            f" refund {d['refund_percentage']}% = {money(d['refund_amount'], None)}")


@describes(BOOKING_EXPIRED)
def _expired(e: RecordedEvent) -> str:
    return f"Hold expired at {when(e)} (recorded by {actor(e)})"


@describes(BOOKING_CHECKED_OUT, BOOKING_CHECKED_IN)
def _checked(e: RecordedEvent) -> str:
    verb = ("handed over (checked out)" if e.type == BOOKING_CHECKED_OUT
            else "returned (checked in)")
    return f"Item {verb} by {actor(e)} at {when(e)}"


@describes(ITEM_RESERVED)
def _reserved(e: RecordedEvent) -> str:
    d = ITEM_RESERVED.of(e)
    return (f"Item {e.stream_id} reserved by {actor(e)} at {when(e)} from {d['start']}"
            f" until {d['until']} (buffer included)")


@describes(ITEM_RELEASED)
def _released(e: RecordedEvent) -> str:
    return f"Item {e.stream_id} released by {actor(e)} at {when(e)}"


async def booking_timeline(conn: asyncpg.Connection, booking_id: UUID) -> list[dict[str, Any]]:
    """Every event of the booking's story in log order; empty if the booking is unknown."""
    correlations = await conn.fetchval(
        "SELECT coalesce(array_agg(DISTINCT metadata->>'correlation_id')"
        " FILTER (WHERE metadata ? 'correlation_id'), '{}') FROM events WHERE stream_id = $1",
        booking_id,
    )
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM events WHERE stream_id = $1 UNION"
        f" SELECT {_COLUMNS} FROM events WHERE metadata->>'correlation_id' = ANY($2::text[])"
        f" ORDER BY position LIMIT {MAX_ENTRIES}",
        booking_id, correlations,
    )
    return [entry(RecordedEvent.from_row(r)) for r in rows]


def entry(event: RecordedEvent) -> dict[str, Any]:
    return {
        "position": event.position,
        "at": event.recorded_at.isoformat(),
        "occurred_at": event.metadata.get("occurred_at"),
        "stream_id": str(event.stream_id),
        "version": event.version,
        "type": event.type,
        "actor": event.metadata.get("actor"),
        "actor_role": event.metadata.get("actor_role"),
        "correlation_id": event.metadata.get("correlation_id"),
        "summary": describe(event),
        "data": event.data,
    }
