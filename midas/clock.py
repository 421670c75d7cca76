"""The service's clock: real time, plus outside production an offset that admins move
forward (`POST /api/v1/admin/clock`), shared by every process of the service.

Everything that reads time for the business (holds and their expiry, the scheduler's
timers, reminders, deposits, the dashboard's "today") reads `app[CLOCK]`, so moving it
makes every timer fire as it would have in real time. The offset is one row
(`service_clock`, migrations/111), read at start-up and again whenever a change is announced
on the `clock` channel, or after the announcements may have been missed (a reconnection).
It only ever moves forward. Production keeps the system clock: nothing can move it there.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from midas.eventstore.database import Database
from midas.eventstore.notifier import Notifier

log = logging.getLogger(__name__)

CLOCK_CHANNEL = "clock"


def _offset(microseconds: int) -> timedelta:
    return timedelta(microseconds=microseconds)


class MovableClock:
    """Real time plus the shared offset (`() -> datetime`, like any app clock)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)
        self._db: Database | None = None
        self._reloads: set[asyncio.Task[None]] = set()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    async def attach(self, db: Database, notifier: Notifier) -> None:
        """Read the shared offset now, and again on each announcement or reconnection."""
        self._db = db
        notifier.listen(CLOCK_CHANNEL, self._announced)
        await self.reload()

    async def reload(self) -> None:
        if self._db is None:
            return
        async with self._db.acquire() as conn:
            found = await conn.fetchval("SELECT offset_us FROM service_clock")
        self.offset = max(self.offset, _offset(int(found or 0)))  # never backwards

    async def advance(self, by: timedelta) -> datetime:
        """Move every process's clock forward by `by`; answers the new time."""
        if self._db is None:
            raise RuntimeError("the clock is not attached to the database")
        async with self._db.acquire() as conn, conn.transaction():
            found = await conn.fetchval(
                "UPDATE service_clock SET offset_us = offset_us + $1, updated_at = now()"
                " RETURNING offset_us", by // timedelta(microseconds=1))
            await conn.execute("SELECT pg_notify($1, $2)", self._db.channel(CLOCK_CHANNEL),
                               str(found))
        self.offset = max(self.offset, _offset(int(found)))
        log.warning("service clock moved forward",
                    extra={"by_s": by.total_seconds(), "offset_s": self.offset.total_seconds()})
        return self()

    def _announced(self, payload: str | None) -> None:
        if payload is not None and payload.isdigit():
            self.offset = max(self.offset, _offset(int(payload)))
            return
        task = asyncio.get_running_loop().create_task(self._reload_quietly())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def _reload_quietly(self) -> None:
        try:
            await self.reload()
        except Exception:
            log.warning("service clock not re-read; keeping its last offset")


def movable(clock: object, environment: str) -> MovableClock | None:
    """The service's clock if it can be moved here (never in production)."""
    if environment == "production" or not isinstance(clock, MovableClock):
        return None
    return clock
