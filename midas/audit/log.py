"""Reading the log with filters, in keyset pages by position (never the whole log)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from midas.eventstore.database import Database

COLUMNS = "position, stream_id, version, type, data, metadata, recorded_at, hash"


@dataclass(frozen=True)
class LogFilter:
    after: int = 0  # positions greater than this
    to: int | None = None  # up to and including this position
    stream_id: UUID | None = None
    types: Sequence[str] = ()
    actor: str | None = None
    since: datetime | None = None  # recorded_at >= since
    until: datetime | None = None  # recorded_at < until

    def where(self, after: int) -> tuple[str, list[Any]]:
        """A WHERE clause naming only the filters in use (so indexes are used)."""
        args: list[Any] = [after]
        clauses = ["position > $1"]

        def add(sql: str, value: Any) -> None:
            args.append(value)
            clauses.append(sql.replace("?", f"${len(args)}"))

        if self.to is not None:
            add("position <= ?", self.to)
        if self.stream_id is not None:
            add("stream_id = ?", self.stream_id)
        if self.types:
            add("type = ANY(?::text[])", list(self.types))
        if self.actor is not None:
            add("metadata->>'actor' = ?", self.actor)
        if self.since is not None:
            add("recorded_at >= ?", self.since)
        if self.until is not None:
            add("recorded_at < ?", self.until)
        return " AND ".join(clauses), args


async def page(
    conn: asyncpg.Connection, flt: LogFilter, after: int, limit: int
) -> list[asyncpg.Record]:
    where, args = flt.where(after)
    return await conn.fetch(
        f"SELECT {COLUMNS} FROM events WHERE {where} ORDER BY position LIMIT {int(limit)}",
        *args,
    )


async def pages(
    db: Database, flt: LogFilter, *, size: int = 1000
) -> AsyncIterator[list[asyncpg.Record]]:
    """Every matching event, a page at a time; a connection is held only per page."""
    after = flt.after
    if flt.to is None:  # a fixed end: the export is a consistent range of the log
        async with db.acquire() as conn:
            head = await conn.fetchval("SELECT coalesce(max(position), 0) FROM events")
        flt = LogFilter(flt.after, head, flt.stream_id, flt.types, flt.actor, flt.since,
                        flt.until)
    while True:
        async with db.acquire() as conn:
            rows = await page(conn, flt, after, size)
        if not rows:
            return
        yield rows
        if len(rows) < size:
            return
        after = rows[-1]["position"]


def event_json(row: asyncpg.Record) -> dict[str, Any]:
    """One event as plain JSON (hash in hex)."""
    return {
        "position": row["position"],
        "stream_id": str(row["stream_id"]),
        "version": row["version"],
        "type": row["type"],
        "data": orjson.loads(row["data"]),
        "metadata": orjson.loads(row["metadata"]),
        "recorded_at": row["recorded_at"].isoformat(),
        "hash": bytes(row["hash"]).hex(),
    }


def ndjson_line(row: asyncpg.Record) -> bytes:
    """One export line; data and metadata are passed through without decoding."""
    head = orjson.dumps({
        "position": row["position"],
        "stream_id": str(row["stream_id"]),
        "version": row["version"],
        "type": row["type"],
        "recorded_at": row["recorded_at"].isoformat(),
        "hash": bytes(row["hash"]).hex(),
    })
    return b"".join((head[:-1], b',"data":', row["data"].encode(), b',"metadata":',
                     row["metadata"].encode(), b"}\n"))
