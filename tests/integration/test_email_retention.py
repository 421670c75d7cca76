"""Finished emails leave the outbox after their retention, and the log says which."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from midas.domain.email_archive import ARCHIVE_ID, EmailArchive
from midas.domain.registry import AGGREGATES
from midas.eventstore import Database, EventStore, EventTypes, Repository
from midas.notifications.outbox import enqueue
from midas.notifications.retention import LOCK_KEY, archive_finished_emails

KEEP = timedelta(days=90)


async def an_email(db: Database, key: str, status: str, finished_days_ago: int | None,
                   queued_days_ago: int = 100) -> None:
    async with db.acquire() as conn:
        await enqueue(conn, key, "booking_held", "@account", None, {"booking": key},
                      await conn.fetchval("SELECT now()"))
        await conn.execute(
            "UPDATE notif_outbox SET status = $2, created_at = now() - $3::interval,"
            " sent_at = now() - $4::interval WHERE dedupe_key = $1", key, status,
            timedelta(days=queued_days_ago),
            None if finished_days_ago is None else timedelta(days=finished_days_ago))


async def outbox(db: Database) -> list[str]:
    async with db.acquire() as conn:
        rows = await conn.fetch("SELECT dedupe_key FROM notif_outbox ORDER BY dedupe_key")
    return [row["dedupe_key"] for row in rows]


async def archived(store: EventStore) -> list[dict]:
    return [event.data for event in await store.read_stream(ARCHIVE_ID)
            if event.type == "EmailArchive.Archived"]


def repository(store: EventStore) -> Repository:
    return Repository(store, EventTypes(AGGREGATES))


async def test_finished_emails_past_retention_leave_and_the_log_names_them(
    db: Database, store: EventStore,
) -> None:
    await an_email(db, "sent-old", "sent", 91)
    await an_email(db, "bounced-old", "bounced", 120)
    await an_email(db, "dead-old", "dead", None, queued_days_ago=95)  # never sent
    await an_email(db, "sent-recent", "sent", 89)
    await an_email(db, "pending-old", "pending", None, queued_days_ago=200)
    repo = repository(store)

    assert await archive_finished_emails(db, repo, KEEP) == 3
    assert await outbox(db) == ["pending-old", "sent-recent"]
    (event,) = await archived(store)
    assert event["dedupe_keys"] == ["bounced-old", "dead-old", "sent-old"]
    assert event["by_status"] == {"sent": 1, "bounced": 1, "dead": 1}
    archive = await repository(store).get(ARCHIVE_ID, cls=EmailArchive)
    assert archive.archived == 3

    assert await archive_finished_emails(db, repo, KEEP) == 0  # nothing left: no event
    assert len(await archived(store)) == 1


async def test_archiving_goes_in_batches_one_event_each(db: Database, store: EventStore) -> None:
    for n in range(5):
        await an_email(db, f"e{n}", "sent", 100)
    assert await archive_finished_emails(db, repository(store), KEEP, batch=2) == 5
    assert await outbox(db) == []
    events = await archived(store)
    assert [len(e["dedupe_keys"]) for e in events] == [2, 2, 1]
    assert sorted(k for e in events for k in e["dedupe_keys"]) == [f"e{n}" for n in range(5)]


async def test_one_process_archives_at_a_time(db: Database, store: EventStore) -> None:
    await an_email(db, "old", "sent", 100)
    async with db.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
        try:
            assert await archive_finished_emails(db, repository(store), KEEP) == 0
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    assert await outbox(db) == ["old"]
    results = await asyncio.gather(*(archive_finished_emails(db, repository(store), KEEP)
                                     for _ in range(3)))
    assert sum(results) == 1
    assert len(await archived(store)) == 1
