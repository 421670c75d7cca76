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


class DueTasksProjector:
    name = "due_tasks"
    tables = (DUE_TASKS_TABLE,)
    handles = frozenset({
        "Booking.Held", "Booking.Confirmed", "Booking.Expired", "Booking.CheckedOut",
        "Booking.CheckedIn", "Booking.Cancelled",
    })

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        for event in events:
            booking, d = event.stream_id, event.data
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


async def _remove(conn: asyncpg.Connection, booking: UUID, *kinds: str) -> None:
    await conn.execute(
        f"DELETE FROM {DUE_TASKS_TABLE} WHERE id = ANY($1::text[])",
        [task_id(kind, booking) for kind in kinds],
    )
