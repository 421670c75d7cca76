"""The due-tasks process manager: timers of the booking lifecycle, built from events.

Held -> expire the hold at its deadline; Confirmed -> automatic check-out at the start;
CheckedOut -> automatic check-in at the end (the scheduler adds the configured delay,
2 h by default). Any later event of the booking removes the timers it made pointless.
Task ids are deterministic, so a replay or a rebuild never doubles a task.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import asyncpg

from midas.eventstore import RecordedEvent
from midas.scheduler import task_id

DUE_TASKS_TABLE = "due_tasks"
EXPIRE_HOLD, CHECK_OUT, CHECK_IN = "expire_hold", "check_out", "check_in"
# Security deposit timers (payments, issue 5); the scheduler shifts them by settings
# (authorise N days before the start, re-authorise hours before the hold lapses, release
# hours after check-in). Holds are numbered, so each one has its own timers.
DEPOSIT_AUTHORISE, DEPOSIT_REAUTHORISE = "deposit_authorise", "deposit_reauthorise"
DEPOSIT_LAPSE, DEPOSIT_RELEASE = "deposit_lapse", "deposit_release"
REFUND_RETRY = "refund_retry"  # a safety net: the process manager refunds at once
DEPOSIT_EVENTS = (
    "Payment.RefundRequested", "Payment.Refunded", "Payment.RefundFailed",
    "Payment.DepositAuthorised", "Payment.DepositReauthorised", "Payment.DepositCaptured",
    "Payment.DepositReleased", "Payment.DepositLapsed",
)


class DueTasksProjector:
    name = "due_tasks"
    tables = (DUE_TASKS_TABLE,)
    handles = frozenset({
        "Booking.Held", "Booking.Confirmed", "Booking.Expired", "Booking.CheckedOut",
        "Booking.CheckedIn", "Booking.Cancelled",
        "Payment.Succeeded", *DEPOSIT_EVENTS,
    })

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        for event in events:
            booking, d = event.stream_id, event.data
            if event.type.startswith("Payment."):
                await _deposit_timers(conn, event)
                continue
            if event.type == "Booking.CheckedIn":
                # Only when a deposit hold is current (its lapse timer exists).
                await conn.execute(
                    f"INSERT INTO {DUE_TASKS_TABLE} (id, kind, aggregate_id, due_at)"
                    " SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM"
                    f" {DUE_TASKS_TABLE} WHERE aggregate_id = $3 AND kind = $5)"
                    " ON CONFLICT (id) DO NOTHING",
                    task_id(DEPOSIT_RELEASE, booking), DEPOSIT_RELEASE, booking,
                    datetime.fromisoformat(d["at"]), DEPOSIT_LAPSE)
            elif event.type in ("Booking.Cancelled", "Booking.Expired"):
                await _remove(conn, booking, DEPOSIT_AUTHORISE)
            if event.type == "Booking.Held":
                await _add(conn, EXPIRE_HOLD, booking, d["hold_expires_at"])
            elif event.type == "Booking.Confirmed":
                await _remove(conn, booking, EXPIRE_HOLD)
                await _add(conn, CHECK_OUT, booking, d["start"])
            elif event.type == "Booking.CheckedOut":
                await _remove(conn, booking, CHECK_OUT)
                await _add(conn, CHECK_IN, booking, d["end"])
            else:
                await _remove(conn, booking, EXPIRE_HOLD, CHECK_OUT, CHECK_IN)


async def _add(conn: asyncpg.Connection, kind: str, booking: UUID, due: str) -> None:
    await conn.execute(
        f"INSERT INTO {DUE_TASKS_TABLE} (id, kind, aggregate_id, due_at)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
        task_id(kind, booking), kind, booking, datetime.fromisoformat(due),
    )


async def _deposit_timers(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    booking, d = UUID(event.data["booking_id"]), event.data
    if event.type == "Payment.RefundRequested":
        await conn.execute(
            f"INSERT INTO {DUE_TASKS_TABLE} (id, kind, aggregate_id, due_at)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
            task_id(REFUND_RETRY, f"{booking}:{d['reference']}"), REFUND_RETRY, booking,
            datetime.fromisoformat(d["at"]))
    elif event.type in ("Payment.Refunded", "Payment.RefundFailed"):
        key = d.get("key") if event.type == "Payment.Refunded" else d["reference"]
        if key:
            await conn.execute(f"DELETE FROM {DUE_TASKS_TABLE} WHERE id = $1",
                               task_id(REFUND_RETRY, f"{booking}:{key}"))
    elif event.type == "Payment.Succeeded":
        # Paid through a provider: hold the deposit N days before the start (the
        # scheduler's delay); staff-confirmed (manual) payments take their deposit by hand.
        if d.get("start") and d.get("deposit_amount"):
            await _add(conn, DEPOSIT_AUTHORISE, booking, d["start"])
    elif event.type in ("Payment.DepositAuthorised", "Payment.DepositReauthorised"):
        n = int(d["sequence"])
        await conn.execute(
            f"DELETE FROM {DUE_TASKS_TABLE} WHERE id = $1",
            task_id(DEPOSIT_LAPSE, f"{booking}:{n - 1}"))
        for kind in (DEPOSIT_REAUTHORISE, DEPOSIT_LAPSE):
            await conn.execute(
                f"INSERT INTO {DUE_TASKS_TABLE} (id, kind, aggregate_id, due_at)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
                task_id(kind, f"{booking}:{n}"), kind, booking,
                datetime.fromisoformat(d["expires_at"]))
    elif event.type.startswith("Payment.Deposit"):  # captured, released or lapsed
        await conn.execute(
            f"DELETE FROM {DUE_TASKS_TABLE} WHERE aggregate_id = $1 AND kind = ANY($2::text[])",
            booking, [DEPOSIT_REAUTHORISE, DEPOSIT_LAPSE])


async def _remove(conn: asyncpg.Connection, booking: UUID, *kinds: str) -> None:
    await conn.execute(
        f"DELETE FROM {DUE_TASKS_TABLE} WHERE id = ANY($1::text[])",
        [task_id(kind, booking) for kind in kinds],
    )
