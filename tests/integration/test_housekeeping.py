"""Housekeeping removes only what expired long enough ago."""

from __future__ import annotations

from datetime import timedelta

from midas.eventstore import Database
from midas.housekeeping import purge_expired


async def test_old_idempotency_records_go_recent_ones_stay(db: Database) -> None:
    async with db.acquire() as conn:
        await conn.execute(
            "INSERT INTO idempotency_keys (scope, key, fingerprint, state, created_at) VALUES"
            " ('s', 'old', 'f', 'done', now() - interval '3 days'),"
            " ('s', 'new', 'f', 'done', now() - interval '1 hour')"
        )
    assert await purge_expired(db, timedelta(days=1)) == 1
    async with db.acquire() as conn:
        assert [r["key"] for r in await conn.fetch("SELECT key FROM idempotency_keys")] == [
            "new"]


async def test_webhook_dedupe_rows_go_after_their_window_only_when_asked(db: Database) -> None:
    async with db.acquire() as conn:
        await conn.execute(
            "INSERT INTO pay_webhook_events (provider, event_id, received_at) VALUES"
            " ('stripe', 'old', now() - interval '31 days'),"
            " ('stripe', 'edge', now() - interval '29 days'),"
            " ('paypal', 'new', now() - interval '1 hour')")
    assert await purge_expired(db, timedelta(days=1)) == 0  # no webhook window: kept
    assert await purge_expired(db, timedelta(days=1), timedelta(days=30)) == 1
    async with db.acquire() as conn:
        rows = await conn.fetch("SELECT event_id FROM pay_webhook_events ORDER BY event_id")
    assert [r["event_id"] for r in rows] == ["edge", "new"]
