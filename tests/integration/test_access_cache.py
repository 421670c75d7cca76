"""The auth middleware's cached access checks against a real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from uuid import uuid4

from midas.eventstore import Database
from midas.eventstore.notifier import Notifier
from midas.security.access import ACCESS_CHANNEL, AccessCache


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "never happened"
        await asyncio.sleep(0.01)


async def test_answers_are_kept_until_a_change_is_announced(db: Database) -> None:
    account = uuid4()
    async with db.acquire() as conn:
        await conn.execute("INSERT INTO auth_accounts (account_id, email, role)"
                           " VALUES ($1, 'a@example.com', 'customer')", account)
    notifier = Notifier(db, [ACCESS_CHANNEL])
    notifier.start()
    try:
        await notifier.connected.wait()
        cache = AccessCache(db, notifier)
        assert await cache.access(account, "jti-1") == ("customer", True, False, False)
        async with db.acquire() as conn:  # a change nobody announces (triggers off)...
            await conn.execute("SET session_replication_role = replica")
            await conn.execute(
                "UPDATE auth_accounts SET role = 'admin' WHERE account_id = $1", account)
            await conn.execute("SET session_replication_role = DEFAULT")
        assert await cache.access(account, "jti-1") == ("customer", True, False, False)  # cached
        async with db.acquire() as conn:  # ...then one made as any process makes it
            await conn.execute(
                "UPDATE auth_accounts SET active = false WHERE account_id = $1", account)

        async def deactivated() -> bool:
            return await cache.access(account, "jti-1") == ("admin", False, False, False)

        await until(deactivated)
        async with db.acquire() as conn:
            await conn.execute("INSERT INTO revoked_access_tokens (jti, expires_at)"
                               " VALUES ('jti-1', now() + interval '1 hour')")

        async def revoked() -> bool:
            return (await cache.access(account, "jti-1") or ("", True, False, False)).revoked

        await until(revoked)
    finally:
        await notifier.stop()


async def test_without_announcements_every_check_asks_the_database(db: Database) -> None:
    account = uuid4()
    async with db.acquire() as conn:
        await conn.execute("INSERT INTO auth_accounts (account_id, email, role)"
                           " VALUES ($1, 'b@example.com', 'customer')", account)
    notifier = Notifier(db, [ACCESS_CHANNEL])  # never started: not listening
    cache = AccessCache(db, notifier)
    assert await cache.access(account, None) == ("customer", True, False, False)
    async with db.acquire() as conn:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute("UPDATE auth_accounts SET active = false WHERE account_id = $1",
                           account)
        await conn.execute("SET session_replication_role = DEFAULT")
    assert await cache.access(account, None) == ("customer", False, False, False)
