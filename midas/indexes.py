"""Query indexes that a rebuild builds after its rows, not row by row.

A read model's non-unique indexes serve queries; the projector writes by its unique
keys. Rebuilding from empty with them in place costs an insert into each of them for
every row written, at a random place in a large index: about a third of PostgreSQL's
work in a rebuild of every projection (bench/projections). Built once the table is
full, each is one sort.

So a rebuild from empty defers them: it drops them and records their definitions in
``deferred_indexes``, in one transaction, then builds each when its projection has
caught up, in the transaction that deletes its record. A rebuild cut short leaves the
rest on record; the projection's next leader (or the next rebuild) builds them. A
projector whose ``apply`` reads by one of its non-unique indexes names it in
``indexes_read``: a rebuild keeps that one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import asyncpg

from midas.eventstore.database import quote_ident

if TYPE_CHECKING:
    from midas.projection import Projector

log = logging.getLogger(__name__)

_QUERY_INDEXES_SQL = (
    "SELECT ic.relname AS name, pg_get_indexdef(i.indexrelid) AS definition"
    " FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid"
    " JOIN pg_class t ON t.oid = i.indrelid"
    " WHERE t.relnamespace = current_schema()::regnamespace AND t.relname = ANY($1::text[])"
    " AND NOT i.indisunique AND NOT i.indisexclusion AND ic.relname <> ALL($2::text[])"
    " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)"
    " ORDER BY ic.relname"
)


async def query_indexes(conn: asyncpg.Connection, projector: Projector
                        ) -> list[tuple[str, str]]:
    """Name and definition of each index of the projector's tables (in the connection's
    current schema) that only queries read."""
    kept = sorted(getattr(projector, "indexes_read", ()))
    rows = await conn.fetch(_QUERY_INDEXES_SQL, list(projector.tables), kept)
    return [(r["name"], r["definition"]) for r in rows]


async def drop_indexes(conn: asyncpg.Connection, names: Sequence[str]) -> None:
    """Drop these indexes of the connection's current schema."""
    schema = await conn.fetchval("SELECT current_schema()")
    for name in names:
        await conn.execute(f"DROP INDEX {quote_ident(schema)}.{quote_ident(name)}")


async def defer_indexes(conn: asyncpg.Connection, projector: Projector) -> list[str]:
    """Drop the projector's query indexes, recording them to be built later; their names."""
    async with conn.transaction():
        indexes = await query_indexes(conn, projector)
        await conn.executemany(
            "INSERT INTO deferred_indexes (name, projection, definition) VALUES ($1, $2, $3)",
            [(name, projector.name, definition) for name, definition in indexes])
        await drop_indexes(conn, [name for name, _ in indexes])
    return [name for name, _ in indexes]


async def build_deferred_indexes(conn: asyncpg.Connection, projections: Sequence[str]
                                 ) -> list[str]:
    """Build the indexes deferred for these projections, each in the transaction that
    deletes its record (so two builders never build one twice); their names."""
    built = []
    for name in await conn.fetchval(
            "SELECT coalesce(array_agg(name ORDER BY name), '{}') FROM deferred_indexes"
            " WHERE projection = ANY($1::text[])", list(projections)):
        async with conn.transaction():
            definition = await conn.fetchval(
                "DELETE FROM deferred_indexes WHERE name = $1 RETURNING definition", name)
            if definition is None:
                continue
            try:  # a migration since may have built it again, or dropped its table
                async with conn.transaction():
                    await conn.execute(definition.replace(
                        "CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ", 1))
            except asyncpg.UndefinedTableError:
                log.warning("deferred index dropped with its table", extra={"index": name})
                continue
            built.append(name)
    return built
