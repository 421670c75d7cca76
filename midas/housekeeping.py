"""Periodic clean-up of state that only matters for a while.

Idempotency records, rate-limit windows, expired refresh tokens and the revocation list
of expired access tokens; payment webhooks' dedupe rows once providers no longer retry
them (``webhook_keep``). Every statement is an idempotent DELETE, so several processes
running it at once is harmless. Besides, ``also``: further clean-ups (the email archive,
midas/notifications/retention.py), each answering how many rows it removed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
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


_WEBHOOK_PURGE = "DELETE FROM pay_webhook_events WHERE received_at < now() - $1::interval"


async def purge_expired(db: Database, keep: timedelta,
                        webhook_keep: timedelta | None = None) -> int:
    """Delete what expired more than ``keep`` ago, and the webhook dedupe rows older than
    ``webhook_keep`` (None: kept); return how many rows went."""
    purges = [(statement, keep) for statement in _PURGES]
    if webhook_keep is not None:
        purges.append((_WEBHOOK_PURGE, webhook_keep))
    removed = 0
    async with db.acquire() as conn:
        for statement, age in purges:
            status = await conn.execute(statement, age)
            removed += int(status.split()[-1])
    return removed


class Housekeeper(Background):
    task_name = "midas-housekeeping"

    def __init__(self, db: Database, *, every_s: float, keep: timedelta,
                 webhook_keep: timedelta | None = None,
                 also: Sequence[Callable[[], Awaitable[int]]] = ()) -> None:
        self._db = db
        self._every_s = every_s
        self._keep = keep
        self._webhook_keep = webhook_keep
        self._also = list(also)
        self._task: asyncio.Task[None] | None = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._every_s)
            try:
                removed = await purge_expired(self._db, self._keep, self._webhook_keep)
                for clean_up in self._also:
                    removed += await clean_up()
                log.info("housekeeping", extra={"rows_removed": removed})
            except Exception as exc:
                if not is_unavailable(exc):
                    log.exception("housekeeping failed")
