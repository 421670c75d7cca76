"""Projector writes are pipelined but keep their order and their transaction."""

from __future__ import annotations

import pytest

from midas.eventstore import Database
from midas.projection import DeferredWrites


async def test_writes_keep_their_order_and_reads_see_them(db: Database) -> None:
    async with db.acquire() as conn:
        await conn.execute("CREATE TABLE log (n int PRIMARY KEY, label text)")
        writes = DeferredWrites(conn)
        for n in range(5):
            await writes.execute("INSERT INTO log VALUES ($1, 'a')", n)
        await writes.execute("UPDATE log SET label = 'b' WHERE n = $1", 3)
        await writes.execute("DELETE FROM log WHERE n = $1", 0)
        assert await writes.fetchval("SELECT count(*) FROM log") == 4  # read flushes first
        await writes.execute("INSERT INTO log VALUES ($1, 'c')", 0)
        await writes.flush()
        rows = await conn.fetch("SELECT n, label FROM log ORDER BY n")
    assert [(r["n"], r["label"]) for r in rows] == [
        (0, "c"), (1, "a"), (2, "a"), (3, "b"), (4, "a")]


async def test_a_failing_write_fails_the_flush_inside_the_transaction(db: Database) -> None:
    async with db.acquire() as conn:
        await conn.execute("CREATE TABLE once (n int PRIMARY KEY)")
        with pytest.raises(Exception, match="duplicate key"):
            async with conn.transaction():
                writes = DeferredWrites(conn)
                await writes.execute("INSERT INTO once VALUES ($1)", 1)
                await writes.execute("INSERT INTO once VALUES ($1)", 1)
                await writes.flush()
        assert await conn.fetchval("SELECT count(*) FROM once") == 0
