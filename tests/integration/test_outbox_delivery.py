"""Outbox delivery against real SMTP servers (aiosmtpd): failover, retries and dead letters,
two workers on one outbox, a crash between send and mark, bounces, connection reuse."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from midas.config import Settings
from midas.eventstore import Database
from midas.notifications.delivery import NotificationWorker
from midas.notifications.outbox import enqueue
from midas.scheduler import ManualClock
from tests.support.smtp import closed_provider, parts, smtp_server

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    clock = ManualClock()
    clock.set(T0)
    return clock


async def _queue(db: Database, n: int, template: str = "welcome", to: str = "guest@example.com"
                 ) -> None:
    async with db.acquire() as conn, conn.transaction():
        for i in range(n):
            await enqueue(conn, f"test:{template}:{i}", template, to, None,
                          {"name": f"Guest {i}"}, T0)


async def _rows(db: Database) -> list[Any]:
    async with db.acquire() as conn:
        return await conn.fetch("SELECT * FROM notif_outbox ORDER BY id")


async def _stats(db: Database) -> dict[tuple[str, str], dict[str, int]]:
    async with db.acquire() as conn:
        rows = await conn.fetch("SELECT * FROM notif_stats")
    return {(r["provider"], r["template"]): {k: r[k] for k in ("sent", "failed", "bounced")}
            for r in rows}


async def test_primary_down_the_secondary_delivers(db: Database, settings: Settings,
                                                   clock: ManualClock) -> None:
    with smtp_server("secondary") as (inbox, secondary):
        config = settings.model_copy(update={"smtp_providers": [closed_provider("primary"),
                                                                secondary]})
        await _queue(db, 1)
        report = await NotificationWorker(db, config, clock).run_once()
        assert (report.sent, report.providers) == (1, ["secondary"])
        await inbox.wait_for(1)
    message = inbox.messages[0]
    assert message["To"] == "guest@example.com"
    assert set(parts(message)) == {"text/plain", "text/html"}
    [row] = await _rows(db)
    assert (row["status"], row["provider"], row["attempts"]) == ("sent", "secondary", 1)
    stats = await _stats(db)
    assert stats[("primary", "welcome")]["failed"] == 1
    assert stats[("secondary", "welcome")]["sent"] == 1


async def test_all_down_retries_after_1_5_15_minutes_then_dead_letter_and_one_alert(
    db: Database, settings: Settings, clock: ManualClock
) -> None:
    config = settings.model_copy(update={
        "smtp_providers": [closed_provider("primary"), closed_provider("secondary"),
                           closed_provider("tertiary")]})
    worker = NotificationWorker(db, config, clock)
    await _queue(db, 1)
    attempts_at = []
    for minutes in (0, 1, 6, 21):  # the first try, then +1, +5, +15 minutes
        clock.set(T0 + timedelta(minutes=minutes) - timedelta(seconds=1))
        if minutes:
            assert (await worker.run_once()).retried == 0  # not yet due
        clock.set(T0 + timedelta(minutes=minutes))
        report = await worker.run_once()
        attempts_at.append(minutes)
        [row] = await _rows(db)
        if minutes < 21:
            assert report.retried == 1 and row["status"] == "pending"
            next_in = {0: 1, 1: 5, 6: 15}[minutes]
            assert row["next_attempt_at"] == clock() + timedelta(minutes=next_in)
        else:
            assert report.dead == 1 and row["status"] == "dead"
            assert "primary" in row["last_error"] and "tertiary" in row["last_error"]
    assert row["attempts"] == 4
    clock.advance(timedelta(hours=2))
    assert (await worker.run_once()).dead == 0  # a dead letter stays dead
    async with db.acquire() as conn:
        alerts = await conn.fetch("SELECT * FROM err_alerts")
    assert len(alerts) == 1
    assert alerts[0]["category"] == "integration" and "dead-lettered" in alerts[0]["title"]
    stats = await _stats(db)
    assert all(stats[(p, "welcome")]["failed"] == 4
               for p in ("primary", "secondary", "tertiary"))


async def test_two_workers_on_one_outbox_deliver_each_email_once(
    db: Database, settings: Settings, clock: ManualClock
) -> None:
    with smtp_server() as (inbox, provider):
        config = settings.model_copy(update={"smtp_providers": [provider],
                                             "email_batch_size": 7})
        await _queue(db, 40)
        one, two = NotificationWorker(db, config, clock), NotificationWorker(db, config, clock)
        reports = await asyncio.gather(one.run_until_idle(), two.run_until_idle(),
                                       one.run_until_idle())
        assert sum(r.sent for r in reports) == 40
        await inbox.wait_for(40)
        await asyncio.sleep(0.2)
    ids = [m["Message-ID"] for m in inbox.messages]
    assert len(ids) == 40 and len(set(ids)) == 40
    assert {r["status"] for r in await _rows(db)} == {"sent"}


async def test_a_crash_between_send_and_mark_resends_once_with_the_same_message_id(
    db: Database, settings: Settings, clock: ManualClock
) -> None:
    class CrashingWorker(NotificationWorker):
        async def _send(self, *args: Any) -> Any:
            outcome = await super()._send(*args)
            raise RuntimeError("process killed after the SMTP server accepted")
            return outcome

    with smtp_server() as (inbox, provider):
        config = settings.model_copy(update={"smtp_providers": [provider]})
        await _queue(db, 1)
        with pytest.raises(RuntimeError):
            await CrashingWorker(db, config, clock).run_once()
        [row] = await _rows(db)
        assert row["status"] == "pending"  # the claim rolled back with the crash
        report = await NotificationWorker(db, config, clock).run_until_idle()
        assert report.sent == 1
        await inbox.wait_for(2)
    first, second = inbox.messages
    assert first["Message-ID"] == second["Message-ID"]  # the resend is visible as such
    assert (await _rows(db))[0]["status"] == "sent"


async def test_a_refused_recipient_is_a_bounce_not_retried(
    db: Database, settings: Settings, clock: ManualClock
) -> None:
    with smtp_server(refuse={"nobody@example.com"}) as (inbox, provider):
        config = settings.model_copy(update={"smtp_providers": [provider]})
        await _queue(db, 1, to="nobody@example.com")
        report = await NotificationWorker(db, config, clock).run_once()
        assert (await NotificationWorker(db, config, clock).run_once()).bounced == 0
    assert report.bounced == 1 and inbox.messages == []
    [row] = await _rows(db)
    assert row["status"] == "bounced"
    assert (await _stats(db))[("primary", "welcome")]["bounced"] == 1


async def test_one_connection_per_provider_carries_a_whole_run(
    db: Database, settings: Settings, clock: ManualClock
) -> None:
    with smtp_server() as (inbox, provider):
        config = settings.model_copy(update={"smtp_providers": [provider]})
        await _queue(db, 5)
        worker = NotificationWorker(db, config, clock)
        assert (await worker.run_once()).sent == 5
        await inbox.wait_for(5)
    assert worker.connections_opened == 1
    assert inbox.connections == 1


async def test_no_provider_configured_leaves_emails_queued(
    db: Database, settings: Settings, clock: ManualClock
) -> None:
    await _queue(db, 2)
    report = await NotificationWorker(db, settings, clock).run_once()
    assert (report.sent, report.retried, report.dead) == (0, 0, 0)
    assert {(r["status"], r["attempts"]) for r in await _rows(db)} == {("pending", 0)}
