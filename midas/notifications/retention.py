"""Finished emails leave the outbox after MIDAS_EMAIL_RETENTION_DAYS, recorded in the log.

One process at a time (a PostgreSQL advisory lock) takes up to ``batch`` finished emails
(sent, bounced, dead or skipped) finished before the cut-off, and appends
``EmailArchive.Archived`` naming them with, in the same transaction, the DELETE of their
rows: either both happen or neither. A rebuild of the notifications projection never
decides them again (``notif_enqueued``), so they are not sent twice.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from midas.domain.email_archive import ARCHIVE_ID, EmailArchive
from midas.eventstore import (
    AggregateNotFound,
    Database,
    Repository,
    Statement,
    retry_on_conflict,
)
from midas.notifications.outbox import OUTBOX_TABLE

FINISHED = ("sent", "bounced", "dead", "skipped")
LOCK_KEY = 0x6D69_6461_7365_6D61  # "midasema": one archiver at a time
METADATA = {"actor": "housekeeping", "actor_role": "system"}


async def archive_finished_emails(
    db: Database, repo: Repository, keep: timedelta, *, batch: int = 1000
) -> int:
    """Archive finished emails older than ``keep`` (by when they finished, else were
    queued), ``batch`` per append, until none is left; answers how many."""
    total = 0
    async with db.acquire() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY):
            return 0  # another process archives
        try:
            cutoff = await conn.fetchval("SELECT now() - $1::interval", keep)
            while True:
                rows = await conn.fetch(
                    f"SELECT id, dedupe_key, status FROM {OUTBOX_TABLE}"
                    " WHERE status = ANY($1::text[]) AND coalesce(sent_at, created_at) < $2"
                    " ORDER BY id LIMIT $3", list(FINISHED), cutoff, batch)
                if not rows:
                    return total
                ids = [row["id"] for row in rows]
                keys = [row["dedupe_key"] for row in rows]
                by_status = dict(Counter(row["status"] for row in rows))

                async def attempt(ids: list[int] = ids, keys: list[str] = keys,
                                  by_status: dict[str, int] = by_status) -> None:
                    try:
                        archive = await repo.get(ARCHIVE_ID, cls=EmailArchive, exclusive=True)
                    except AggregateNotFound:
                        archive = EmailArchive.start()
                    archive.archive(keys, by_status, cutoff)
                    await repo.save(archive, metadata=METADATA, statements=[Statement(
                        f"DELETE FROM {OUTBOX_TABLE} WHERE id = ANY($1::bigint[])",
                        (ids,))])

                await retry_on_conflict(attempt)
                total += len(rows)
                if len(rows) < batch:
                    return total
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
