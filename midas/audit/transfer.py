"""NDJSON export of the log and its import into an empty database.

An export line holds an event exactly as stored (position, hash and recorded_at
included). The import inserts the lines with their original positions and hashes, in
one transaction under the writer's lock, refuses a non-empty log, and commits only if
the chain recomputed over what it inserted is intact.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from midas.audit.log import LogFilter, ndjson_line, pages
from midas.eventstore import codec
from midas.eventstore.chain import ChainReport, verify_chain
from midas.eventstore.database import Database
from midas.eventstore.store import EVENTS_CHANNEL

BATCH = 1000


class ImportRefused(Exception):
    """The import was not done: nothing was written."""


async def export(
    db: Database, flt: LogFilter, write: Callable[[bytes], Awaitable[Any]], *, size: int = 1000
) -> int:
    """Write matching events as NDJSON, a page at a time; return how many."""
    count = 0
    async for rows in pages(db, flt, size=size):
        await write(b"".join(ndjson_line(r) for r in rows))
        count += len(rows)
    return count


def parse_line(line: bytes, number: int) -> tuple[Any, ...]:
    try:
        e = orjson.loads(line)
        codec.check_plain(e["data"])
        codec.check_plain(e["metadata"])
        return (
            int(e["position"]), UUID(e["stream_id"]), int(e["version"]), str(e["type"]),
            codec.canonical(e["data"]).decode(), codec.canonical(e["metadata"]).decode(),
            datetime.fromisoformat(e["recorded_at"]), bytes.fromhex(e["hash"]),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ImportRefused(f"line {number}: not an exported event ({exc})") from None


async def _batches(lines: Iterable[bytes] | AsyncIterator[bytes]) -> AsyncIterator[list[tuple]]:
    batch: list[tuple[Any, ...]] = []
    number = 0

    async def items() -> AsyncIterator[bytes]:
        if hasattr(lines, "__aiter__"):
            async for line in lines:
                yield line
        else:
            for line in lines:
                yield line

    async for line in items():
        number += 1
        if line.strip():
            batch.append(parse_line(line, number))
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


_INSERT = (
    "INSERT INTO events (position, stream_id, version, type, data, metadata, recorded_at, hash)"
    " SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::int[], $4::text[], $5::jsonb[],"
    " $6::jsonb[], $7::timestamptz[], $8::bytea[])"
)


async def import_log(db: Database, lines: Iterable[bytes] | AsyncIterator[bytes]) -> ChainReport:
    """Insert an export into an empty log; verify the chain before committing."""
    conn = await db.connect()
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)",
                               db.lock_key("event-store-writer"))
            if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM events)"):
                raise ImportRefused("the event log is not empty")
            expected = 1
            async for batch in _batches(lines):
                positions = [row[0] for row in batch]
                if positions != list(range(expected, expected + len(batch))):
                    raise ImportRefused(
                        f"positions must run 1, 2, 3... without gaps (expected {expected})")
                expected += len(batch)
                await _insert(conn, batch)
            report = await verify_chain(conn)
            if not report.ok:
                raise ImportRefused(
                    f"the imported chain breaks at position {report.first_broken_position}:"
                    f" {report.reason}")
            # Announced like any commit: running services re-read what they cached.
            await conn.execute("SELECT pg_notify($1, $2)", db.channel(EVENTS_CHANNEL),
                               str(expected - 1))
        return report
    finally:
        await conn.close()


async def _insert(conn: asyncpg.Connection, batch: list[tuple[Any, ...]]) -> None:
    try:
        await conn.execute(_INSERT, *(list(column) for column in zip(*batch, strict=True)))
    except asyncpg.UniqueViolationError as exc:
        raise ImportRefused(f"duplicate event: {exc.detail or exc}") from None
