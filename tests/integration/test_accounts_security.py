"""The PostgreSQL pieces of access control: rate limiter, refresh families, lockout."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from midas.eventstore import Database
from midas.http.ratelimit import RateLimiter
from midas.security import credentials, sessions


async def test_limiter_counts_per_key_and_window(db: Database, clock: Any) -> None:
    limiter = RateLimiter(db, clock)
    clock.advance(seconds=-clock.now.second)  # at the start of a minute
    results = [await limiter.hit("pay:ip:1", 3, 60) for _ in range(5)]
    assert [r.allowed for r in results] == [True, True, True, False, False]
    assert results[-1].retry_after == 60
    assert (await limiter.hit("pay:ip:2", 3, 60)).allowed  # other keys are separate
    clock.advance(seconds=45)
    assert (await limiter.hit("pay:ip:1", 3, 60)).retry_after == 15
    clock.advance(seconds=15)
    assert (await limiter.hit("pay:ip:1", 3, 60)).allowed
    clock.advance(days=2)
    assert await limiter.purge() == 2


async def test_limiter_is_exact_under_concurrency(db: Database, clock: Any) -> None:
    limiters = [RateLimiter(db, clock) for _ in range(2)]  # as if two processes
    verdicts = await asyncio.gather(
        *(limiters[n % 2].hit("login:ip:9", 10, 60) for n in range(40)))
    assert sum(v.allowed for v in verdicts) == 10


@pytest.fixture
async def account(db: Database) -> uuid.UUID:
    account_id = uuid.uuid4()
    statement = credentials.insert(account_id, "a@example.com", "customer", "x")
    async with db.acquire() as conn:
        await conn.execute(statement.sql, *statement.args)
    return account_id


async def test_concurrent_rotations_have_one_winner(db: Database, account: uuid.UUID) -> None:
    async with db.acquire() as conn:
        token = await sessions.start(conn, account, 3600)

    async def rotate() -> str | None:
        async with db.acquire() as conn:
            try:
                return (await sessions.rotate(conn, token, 3600)).refresh_token
            except sessions.RefreshRefused:
                return None

    results = await asyncio.gather(*(rotate() for _ in range(8)))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    async with db.acquire() as conn:
        live = await conn.fetchval(
            "SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NULL AND used_at IS NULL")
        stored = await conn.fetchval("SELECT count(*) FROM refresh_tokens")
    assert stored == 2  # exactly one successor was ever issued
    assert live == 0  # and the losers' reuse revoked the family


async def test_failures_lock_progressively(db: Database, account: uuid.UUID, clock: Any) -> None:
    async with db.acquire() as conn:

        async def lock_seconds() -> list[float | None]:
            found = []
            for _ in range(3):
                until = await credentials.record_failure(
                    conn, account, clock.now, threshold=3, base_s=60, max_s=200)
                found.append(None if until is None else (until - clock.now).total_seconds())
            return found

        assert await lock_seconds() == [None, None, 60]
        assert await lock_seconds() == [60, 60, 120]  # the lock stays until the next one
        assert await lock_seconds() == [120, 120, 200]  # capped
        await credentials.record_success(conn, account)
        assert await lock_seconds() == [None, None, 60]
