"""NDJSON export, and import into an empty log: same events, same chain head."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import uuid4

import orjson
import pytest

from midas.audit.log import LogFilter
from midas.audit.transfer import ImportRefused, export, import_log
from midas.eventstore import Database, EventStore
from midas.eventstore.chain import verify_chain
from midas.eventstore.migrate import migrate
from tests.conftest import MIGRATIONS, drop_schema
from tests.integration.audit_support import inventory_history


@pytest.fixture
async def fresh(pg_dsn: str) -> AsyncIterator[Database]:
    """A second, empty, migrated schema."""
    database = Database(pg_dsn, f"t_{uuid4().hex[:16]}")
    await migrate(database, MIGRATIONS)
    await database.open()
    yield database
    await database.close()
    await drop_schema(pg_dsn, database.schema)


async def exported(db: Database, flt: LogFilter | None = None, size: int = 1000) -> bytes:
    chunks: list[bytes] = []

    async def write(chunk: bytes) -> None:
        chunks.append(chunk)

    await export(db, flt or LogFilter(), write, size=size)
    return b"".join(chunks)


async def all_events(db: Database) -> list[tuple]:
    async with db.acquire() as conn:
        return [tuple(r) for r in await conn.fetch(
            "SELECT position, stream_id, version, type, data::jsonb, metadata::jsonb,"
            " recorded_at, hash FROM events ORDER BY position")]


async def test_export_then_import_reproduces_the_events_and_the_chain_head(
    db: Database, store: EventStore, fresh: Database
) -> None:
    await inventory_history(store, 5)
    dump = await exported(db, size=4)  # several pages
    lines = dump.splitlines(keepends=True)
    assert len(lines) == await store.head() == 15
    assert [orjson.loads(line)["position"] for line in lines] == list(range(1, 16))

    report = await import_log(fresh, lines)
    assert report.ok and report.checked == 15
    assert await all_events(fresh) == await all_events(db)
    async with db.acquire() as a, fresh.acquire() as b:
        assert (await verify_chain(a)).head_hash == (await verify_chain(b)).head_hash

    with pytest.raises(ImportRefused, match="not empty"):
        await import_log(fresh, lines)


async def test_export_filters(db: Database, store: EventStore) -> None:
    ids = await inventory_history(store, 3)
    by_stream = await exported(db, LogFilter(stream_id=ids[1]))
    assert [orjson.loads(x)["version"] for x in by_stream.splitlines()] == [1, 2, 3]
    typed = await exported(db, LogFilter(types=["Item.Registered"], after=1, to=7))
    assert [orjson.loads(x)["position"] for x in typed.splitlines()] == [4, 7]


async def test_an_import_that_does_not_chain_is_refused_and_writes_nothing(
    db: Database, store: EventStore, fresh: Database
) -> None:
    await inventory_history(store, 2)
    lines = (await exported(db)).splitlines()
    event = orjson.loads(lines[3])
    event["data"]["rate"] = 1
    tampered = [*lines[:3], orjson.dumps(event), *lines[4:]]
    with pytest.raises(ImportRefused, match="breaks at position 4"):
        await import_log(fresh, tampered)
    with pytest.raises(ImportRefused, match="without gaps"):
        await import_log(fresh, [*lines[:2], *lines[3:]])
    with pytest.raises(ImportRefused, match="line 2"):
        await import_log(fresh, [lines[0], b"{not json"])
    assert await all_events(fresh) == []
