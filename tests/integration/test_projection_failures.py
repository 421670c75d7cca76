"""A log holding a poisonous event (as written before the store refused such values): the
projection that fails on it backs off, alerts once and shows where and why; the others go
on; an operator's skip repairs it without editing the log. A NUL sealed in a personal
field before is read as U+FFFD: it stops nothing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest

from commands.accounts import change_account, create_account
from midas.config import Settings
from midas.domain.accounts import Account
from midas.domain.catalogue import DEFAULT_CATALOGUE, Category
from midas.domain.inventory import Item
from midas.domain.registry import AGGREGATES
from midas.error_reports import alert_projection_failure
from midas.eventstore import (
    Database,
    EventStore,
    EventTypes,
    Repository,
    codec,
)
from midas.eventstore.chain import verify_chain
from midas.eventstore.notifier import Notifier
from midas.eventstore.store import EVENTS_CHANNEL
from midas.projection import ProjectionRunner, projection_status
from midas.projection_failures import ProjectionFailure, SkipRefused, skip_event
from midas.replay import verify
from midas.security import pii
from projections.accounts import AccountsProjector
from projections.inventory import InventoryProjector
from projections.profiles import ProfilesProjector
from tests.support.fake_stripe import wait_until
from tests.support.unchecked import append_unchecked

MD = {"actor": "test", "actor_role": "system"}
RETRY_S, MAX_RETRY_S = 0.1, 0.8


async def _register(repo: Repository, email: str, name: str) -> tuple[UUID, int]:
    account_id, result = await create_account(
        repo, email=email, name=name, password=None, rounds=4, metadata=MD,
        consent_version="v1", consent_at=datetime.now(UTC))
    return account_id, result.last_position


async def _poisoned_log(
    db: Database, store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """Ada, a yacht, then a jet registered at a rate beyond a bigint (the checks
    switched off, as in a log written before them), then Bob."""
    repo = Repository(store, EventTypes(AGGREGATES), field_codec=pii.PiiCodec(db))
    ada, _ = await _register(repo, "ada@example.com", "Ada")
    yacht = Item.register(DEFAULT_CATALOGUE, name="Riva", category=Category.YACHT,
                          location="AE-DU", rate=150_000)
    await repo.save(yacht, metadata=MD)
    registered = (await store.read_stream(yacht.id))[0]
    jet = uuid4()
    at = await append_unchecked(store, monkeypatch, jet, registered.type,
                                {**registered.data, "name": "Jet", "rate": 2**63})
    bob, _ = await _register(repo, "bob@example.com", "Bob")
    return {"ada": ada, "bob": bob, "yacht": yacht.id, "jet": jet, "at": at}


@pytest.fixture
def settings(pg_dsn: str, schema: str) -> Settings:
    return Settings(database_url=pg_dsn, database_schema=schema, environment="test",
                    log_json=False)


def _alerting(db: Database, settings: Settings) -> Any:
    async def alert(failure: ProjectionFailure) -> None:
        await alert_projection_failure(db, settings, failure.name, failure.position,
                                       failure.error, datetime.now(UTC))

    return alert


@pytest.fixture
async def runner(db: Database, settings: Settings) -> AsyncIterator[ProjectionRunner]:
    notifier = Notifier(db, [EVENTS_CHANNEL])
    running = ProjectionRunner(
        db, [AccountsProjector(), ProfilesProjector(), InventoryProjector()], notifier,
        batch_size=50, poll_interval_s=0.05, retry_s=RETRY_S, max_retry_s=MAX_RETRY_S,
        on_failure=_alerting(db, settings))
    yield running
    await running.stop()
    await notifier.stop()


async def _statuses(db: Database, runner: ProjectionRunner) -> dict[str, Any]:
    return {s.name: s for s in await projection_status(db, runner.projectors)}


async def test_a_poisonous_event_is_set_apart_with_back_off_one_alert_and_its_position(
    db: Database, store: EventStore, runner: ProjectionRunner, settings: Settings,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    log = await _poisoned_log(db, store, monkeypatch)
    head = await store.head()
    caplog.set_level(logging.INFO, logger="midas.projection")
    runner.start()

    async def failing_and_others_done() -> bool:
        statuses = await _statuses(db, runner)
        return (statuses["inventory"].failure is not None
                and statuses["accounts"].lag == statuses["profiles"].lag == 0)

    await wait_until(failing_and_others_done)
    await asyncio.sleep(2.0)
    inventory = (await _statuses(db, runner))["inventory"]
    failure = inventory.failure
    assert failure is not None and failure.position == log["at"]
    assert inventory.position == log["at"] - 1  # the yacht is in, the rest waits
    assert failure.error == ("DataError [22000]: invalid input for query argument $5:"
                             " [redacted] (value out of int64 range)")  # digits scrubbed
    # Every 0.1 s for 2 s would be 20 attempts; doubling up to 0.8 s makes about 5.
    assert 3 <= failure.attempts <= 8, failure.attempts
    assert failure.since < failure.next_retry_at
    tracebacks = [r for r in caplog.records if r.getMessage() == "projection failed"]
    assert [(r.projection, bool(r.exc_info)) for r in tracebacks] == [("inventory", True)]
    assert any(r.getMessage() == "projection still failing" and not r.exc_info
               for r in caplog.records)
    await runner.stop()

    # Another process leading it next fails on it too: it keeps the back-off, and raises
    # no second alert.
    again = ProjectionRunner(db, runner.projectors, store.notifier, poll_interval_s=0.05,
                             retry_s=RETRY_S, max_retry_s=MAX_RETRY_S,
                             on_failure=_alerting(db, settings))
    again.start()
    try:
        async def retried() -> bool:
            later = (await _statuses(db, runner))["inventory"].failure
            return later is not None and later.attempts > failure.attempts

        await wait_until(retried)
        async with db.acquire() as conn:
            alerts = await conn.fetch("SELECT key, category, detail FROM err_alerts")
            reports = await conn.fetch("SELECT category, severity FROM err_reports")
        assert [(a["key"], a["category"]) for a in alerts] == [
            (f"projection:inventory:{log['at']}", "system")]
        assert '"severity": "high"' in alerts[0]["detail"]
        assert [(r["category"], r["severity"]) for r in reports] == [("system", "high")]

        # The operator has it pass over the event: it catches up at once, the log is as
        # it was and its chain verifies.
        async with db.acquire() as conn:
            await skip_event(conn, "inventory", InventoryProjector.handles, log["at"],
                             reason="rate beyond a bigint", actor="ops@midas")

        async def repaired() -> bool:
            statuses = await _statuses(db, runner)
            return all(s.lag == 0 and s.failure is None for s in statuses.values())

        await wait_until(repaired, timeout=3.0)
    finally:
        await again.stop()
    async with db.acquire() as conn:
        items = {r["name"] for r in await conn.fetch("SELECT name FROM inv_items")}
        assert items == {"Riva"}
        assert (await verify_chain(conn)).ok
        assert await store.head() == head
        skips = await conn.fetch("SELECT name, position, reason, skipped_by"
                                 " FROM projection_skips")
        assert [tuple(s) for s in skips] == [
            ("inventory", log["at"], "rate beyond a bigint", "ops@midas")]
    assert any(r.getMessage() == "projection recovered" for r in caplog.records)
    # A replay honours the skip: the read model equals its rebuild.
    assert (await verify(db, InventoryProjector())).ok


async def test_a_nul_sealed_before_the_checks_is_read_as_a_replacement_character(
    db: Database, store: EventStore, runner: ProjectionRunner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A registration and a staff note sealed with a NUL (as the service once accepted)
    stop neither the accounts nor the profiles projection."""
    repo = Repository(store, EventTypes(AGGREGATES), field_codec=pii.PiiCodec(db))
    with monkeypatch.context() as unchecked:
        unchecked.setattr(codec, "check_plain", lambda *args, **kwargs: None)
        unchecked.setattr(pii, "check_plain", lambda *args, **kwargs: None)
        ada, _ = await _register(repo, "ada@example.com", "Ada\x00")
        await change_account(
            repo, ada, lambda a: a.add_note(str(uuid4()), "cham\x00pagne", None) or [], MD)
    await _register(repo, "bob@example.com", "Bob")
    runner.start()

    async def caught_up() -> bool:
        return all(s.lag == 0 for s in (await _statuses(db, runner)).values())

    await wait_until(caught_up)
    async with db.acquire() as conn:
        names = {r["name"] for r in await conn.fetch("SELECT name FROM acc_accounts")}
        notes = [r["text"] for r in await conn.fetch("SELECT text FROM cust_notes")]
        assert await conn.fetchval("SELECT count(*) FROM projection_failures") == 0
    assert names == {"Ada\ufffd", "Bob"}
    assert notes == ["cham\ufffdpagne"]
    fresh = Repository(store, EventTypes(AGGREGATES), field_codec=pii.PiiCodec(db))
    assert (await fresh.get(ada, cls=Account)).name == "Ada\ufffd"


async def test_a_transient_failure_leaves_nothing_behind(
    db: Database, store: EventStore, runner: ProjectionRunner,
) -> None:
    """A batch that fails once and then applies (a lost connection, a deadlock) clears
    its record: no failure shown once it is past."""
    repo = Repository(store, EventTypes(AGGREGATES), field_codec=pii.PiiCodec(db))
    accounts = runner.projectors[0]
    original, failed = accounts.apply, []

    async def flaky(conn: Any, events: Any) -> None:
        if not failed:
            failed.append(True)
            raise RuntimeError("injected once")
        await original(conn, events)

    accounts.apply = flaky  # type: ignore[method-assign]
    for n in range(5):
        await _register(repo, f"guest{n}@example.com", f"Guest {n}")
    runner.start()

    async def caught_up() -> bool:
        return all(s.lag == 0 for s in (await _statuses(db, runner)).values())

    await wait_until(caught_up)
    assert failed == [True]
    assert all(s.failure is None for s in (await _statuses(db, runner)).values())


async def test_skips_are_refused_unless_the_event_is_ahead_and_handled(
    db: Database, store: EventStore, monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = await _poisoned_log(db, store, monkeypatch)
    handles, position = InventoryProjector.handles, log["at"]
    async with db.acquire() as conn:
        await conn.execute("INSERT INTO projection_checkpoints (name, position)"
                           " VALUES ('inventory', 2)")
        for at, reason, why in [
            (position, "", "reason"),
            (position, "two\nlines", "reason"),
            (await store.head(), "Bob", "no event"),  # an account's: not an item event
            (await store.head() + 1, "beyond the head", "no event"),
            (2, "already applied", "past"),
        ]:
            with pytest.raises(SkipRefused, match=why):
                await skip_event(conn, "inventory", handles, at, reason=reason, actor="ops")
        await skip_event(conn, "inventory", handles, position, reason="bigint", actor="ops")
        with pytest.raises(SkipRefused, match="already"):
            await skip_event(conn, "inventory", handles, position, reason="x", actor="ops")
        assert await conn.fetchval("SELECT count(*) FROM projection_skips") == 1
