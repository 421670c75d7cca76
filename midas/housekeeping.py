"""Periodic clean-up of state that only matters for a while.

Idempotency records, rate-limit windows, expired refresh tokens and the revocation list
of expired access tokens. Every statement is an idempotent DELETE, so several processes
running it at once is harmless.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from midas.background import Background
from midas.eventstore import Database, is_unavailable

log = logging.getLogger(__name__)

_PURGES = (
    "DELETE FROM idempotency_keys WHERE created_at < now() - $1::interval",
    "DELETE FROM rate_limits WHERE window_start < now() - $1::interval",
    "DELETE FROM refresh_tokens WHERE expires_at < now() - $1::interval",
    "DELETE FROM revoked_access_tokens WHERE expires_at < now() - $1::interval",
)


async def purge_expired(db: Database, keep: timedelta) -> int:
    """Delete what expired more than ``keep`` ago; return how many rows went."""
    removed = 0
    async with db.acquire() as conn:
        for statement in _PURGES:
            status = await conn.execute(statement, keep)
            removed += int(status.split()[-1])
    return removed


class Housekeeper(Background):
    task_name = "midas-housekeeping"

    def __init__(self, db: Database, *, every_s: float, keep: timedelta) -> None:
        self._db = db
        self._every_s = every_s
        self._keep = keep
        self._task: asyncio.Task[None] | None = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._every_s)
            try:
                removed = await purge_expired(self._db, self._keep)
                log.info("housekeeping", extra={"rows_removed": removed})
            except Exception as exc:
                if not is_unavailable(exc):
                    log.exception("housekeeping failed")
