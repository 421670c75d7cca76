"""Replays into shadow copies of a read model: time travel, verification, blue/green rebuild.

A shadow is a throw-away schema holding empty copies of a projector's tables
(``CREATE TABLE ... (LIKE live.t INCLUDING ALL)``). A connection whose search_path is
``shadow, live`` runs the unmodified projector: its writes land in the copies while
``events`` (and any table it only reads) still resolve to the live schema.

Time travel and verification replay inside one REPEATABLE READ transaction that is
rolled back, so nothing is left behind and the live tables are read at the very
snapshot the shadow was built from. A rebuild builds its shadow in committed batches
(its query indexes after the bulk, as ``midas.indexes`` explains), then swaps it in under
the checkpoint row lock (blue/green): queries see the old complete read model, then the
new complete one, never a partial one.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson

from midas.eventstore.database import Database, quote_ident
from midas.eventstore.store import head_position, read_all
from midas.indexes import drop_indexes, query_indexes
from midas.projection import Projector, ensure_checkpoint
from midas.projection_failures import skipped_positions

BATCH = 1000
MAX_REPORTED_ROWS = 100
SWAP_ATTEMPTS = 5
SWAP_LOCK_TIMEOUT = "5s"  # how long the swap may make readers of the table wait


class NoReadModel(ValueError):
    """The projector owns no tables: replaying it could only have effects elsewhere."""


async def create_shadow(conn: asyncpg.Connection, live: str, projector: Projector) -> str:
    """A new schema with empty copies of the projector's tables; return its name."""
    if not projector.tables:
        raise NoReadModel(f"projection {projector.name!r} has no read-model tables")
    shadow = f"{live}__shadow_{uuid.uuid4().hex[:8]}"
    await conn.execute(f"CREATE SCHEMA {quote_ident(shadow)}")
    for table in projector.tables:
        await conn.execute(
            f"CREATE TABLE {quote_ident(shadow)}.{quote_ident(table)}"
            f" (LIKE {quote_ident(live)}.{quote_ident(table)} INCLUDING ALL)"
        )
    return shadow


async def use_schemas(conn: asyncpg.Connection, *schemas: str) -> None:
    await conn.execute(f"SET search_path = {', '.join(quote_ident(s) for s in schemas)}")


async def replay(
    conn: asyncpg.Connection, projector: Projector, after: int, upto: int,
    *, batch: int = BATCH,
) -> int:
    """Apply the projector's events in (after, upto] on ``conn``, but those an operator
    had it skip (as the live runner does); return ``upto``."""
    types = sorted(projector.handles)
    skipped = await skipped_positions(conn, projector.name)
    while after < upto:
        events = [e for e in await read_all(conn, after, batch, types) if e.position <= upto]
        mine = [e for e in events if e.position not in skipped] if skipped else events
        if mine:
            await projector.apply(conn, mine)
        if len(events) < batch:
            break
        after = events[-1].position
    return upto


# -- reading and comparing tables ---------------------------------------------------------


async def primary_key(conn: asyncpg.Connection, schema: str, table: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
        " AND a.attnum = ANY(i.indkey) WHERE i.indisprimary AND i.indrelid = $1::regclass"
        " ORDER BY array_position(i.indkey::int2[], a.attnum)",
        f"{quote_ident(schema)}.{quote_ident(table)}",
    )
    return [r["attname"] for r in rows]


async def table_rows(
    conn: asyncpg.Connection, schema: str, table: str, limit: int | None = None
) -> list[dict[str, Any]]:
    """Rows as JSON objects, ordered by primary key (or the whole row)."""
    key = await primary_key(conn, schema, table)
    order = ", ".join(f"t.{quote_ident(c)}" for c in key) or "to_jsonb(t)::text"
    rows = await conn.fetch(
        f"SELECT to_jsonb(t)::text AS row FROM {quote_ident(schema)}.{quote_ident(table)} t"
        f" ORDER BY {order} LIMIT $1",
        limit,
    )
    return [orjson.loads(r["row"]) for r in rows]


@dataclass
class TableDiff:
    table: str
    only_live: list[dict[str, Any]] = field(default_factory=list)
    only_shadow: list[dict[str, Any]] = field(default_factory=list)
    changed: list[dict[str, Any]] = field(default_factory=list)  # {key, live, shadow}

    @property
    def ok(self) -> bool:
        return not (self.only_live or self.only_shadow or self.changed)


async def diff_table(
    conn: asyncpg.Connection, live: str, shadow: str, table: str,
    ignored: Sequence[str] = (),
) -> TableDiff:
    """Rows that differ, matched by primary key (tables without one: whole rows),
    ``ignored`` columns left out.

    At most MAX_REPORTED_ROWS differing rows per side are reported, the first by key on
    each side, so a row that differs shows as changed rather than on one side only.
    """
    key = await primary_key(conn, live, table)
    keys = "".join(f", {{0}}.{quote_ident(c)}" for c in key)
    order = f" ORDER BY {', '.join(str(n) for n in range(3, 3 + len(key)))}" if key else ""

    def side(name: str, this: str, other: str) -> str:
        a, b = ("t", "s") if name == "live" else ("s", "t")
        return (f"(SELECT '{name}' AS side, (to_jsonb({a}) - $1::text[])::text AS row"
                f"{keys.format(a)} FROM {this} {a}"
                f" EXCEPT SELECT '{name}', (to_jsonb({b}) - $1::text[])::text"
                f"{keys.format(b)} FROM {other} {b}{order} LIMIT {MAX_REPORTED_ROWS})")

    live_table, shadow_table = (f"{quote_ident(s)}.{quote_ident(table)}" for s in (live, shadow))
    rows = await conn.fetch(
        side("live", live_table, shadow_table) + " UNION ALL "
        + side("shadow", shadow_table, live_table), list(ignored))
    live_rows: dict[str, dict[str, Any]] = {}
    shadow_rows: dict[str, dict[str, Any]] = {}
    for r in rows:
        value = orjson.loads(r["row"])
        ident = orjson.dumps([value.get(c) for c in key] if key else value).decode()
        (live_rows if r["side"] == "live" else shadow_rows)[ident] = value
    result = TableDiff(table)
    for ident, value in live_rows.items():
        if ident in shadow_rows:
            result.changed.append(
                {"key": orjson.loads(ident), "live": value, "shadow": shadow_rows[ident]}
            )
        else:
            result.only_live.append(value)
    result.only_shadow = [v for i, v in shadow_rows.items() if i not in live_rows]
    return result


# -- time travel and verification: one rolled-back transaction ----------------------------


async def _in_rolled_back_shadow(
    db: Database, projector: Projector, position: int | None, work: Any
) -> Any:
    conn = await db.connect()
    try:
        tr = conn.transaction(isolation="repeatable_read")
        await tr.start()
        try:
            if position is None:
                await ensure_checkpoint(conn, projector.name)
                position = await conn.fetchval(
                    "SELECT position FROM projection_checkpoints WHERE name = $1",
                    projector.name,
                )
            shadow = await create_shadow(conn, db.schema, projector)
            await use_schemas(conn, shadow, db.schema)
            await replay(conn, projector, 0, position)
            return await work(conn, shadow, position)
        finally:
            await tr.rollback()
    finally:
        await conn.close()


async def read_model_as_of(
    db: Database, projector: Projector, position: int, *, limit: int | None = None
) -> dict[str, list[dict[str, Any]]]:
    """The projector's tables as they were when the log ended at ``position``."""

    async def read(conn: asyncpg.Connection, shadow: str, _: int) -> dict[str, Any]:
        return {t: await table_rows(conn, shadow, t, limit) for t in projector.tables}

    return await _in_rolled_back_shadow(db, projector, position, read)


@dataclass
class VerifyReport:
    name: str
    position: int
    tables: list[TableDiff]

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tables)


async def verify(db: Database, projector: Projector) -> VerifyReport:
    """Rebuild into a shadow up to the live checkpoint and compare row by row."""

    async def compare(conn: asyncpg.Connection, shadow: str, position: int) -> VerifyReport:
        ignored = getattr(projector, "unverified_columns", ())
        diffs = [await diff_table(conn, db.schema, shadow, t, ignored)
                 for t in projector.tables]
        return VerifyReport(projector.name, position, diffs)

    return await _in_rolled_back_shadow(db, projector, None, compare)


# -- blue/green rebuild -------------------------------------------------------------------


async def rebuild_blue_green(db: Database, projector: Projector, *, batch: int = BATCH) -> int:
    """Build a shadow to the head, then swap it in atomically; return the new checkpoint."""
    conn = await db.connect(keyed_only=True)  # the shadow grows from empty, as in catch_up
    shadow = None
    try:
        await ensure_checkpoint(conn, projector.name)
        shadow = await create_shadow(conn, db.schema, projector)
        await use_schemas(conn, shadow, db.schema)
        deferred = await query_indexes(conn, projector)  # the shadow's: built after the bulk
        await drop_indexes(conn, [name for name, _ in deferred])
        built = 0
        while True:  # committed batches: no long transaction while the bulk is replayed
            head = await head_position(conn)
            if built >= head:
                break
            async with conn.transaction():
                built = await replay(conn, projector, built, min(head, built + batch * 10),
                                     batch=batch)
        for _, definition in deferred:  # before the swap, which holds the checkpoint lock
            await conn.execute(definition)
        for attempt in range(1, SWAP_ATTEMPTS + 1):
            try:
                return await _catch_up_and_swap(conn, db.schema, shadow, projector, built,
                                                batch)
            except asyncpg.LockNotAvailableError:
                # A long reader holds the live tables; queries must not queue behind us.
                if attempt == SWAP_ATTEMPTS:
                    raise
                await asyncio.sleep(0.5 * attempt)
        raise AssertionError("unreachable")
    finally:
        if shadow is not None:
            with contextlib.suppress(Exception):
                await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(shadow)} CASCADE")
        await conn.close()


async def _catch_up_and_swap(
    conn: asyncpg.Connection, live: str, shadow: str, projector: Projector, built: int,
    batch: int,
) -> int:
    async with conn.transaction():
        await conn.execute(f"SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT}'")
        # Fences the live runner: it re-reads this row FOR UPDATE before every batch.
        await conn.fetchval(
            "SELECT position FROM projection_checkpoints WHERE name = $1 FOR UPDATE",
            projector.name,
        )
        head = await head_position(conn)
        built = await replay(conn, projector, built, head, batch=batch)
        await _swap(conn, live, shadow, projector.tables)
        await conn.execute(
            "UPDATE projection_checkpoints SET position = $2, updated_at = now()"
            " WHERE name = $1", projector.name, built,
        )
    return built


async def _swap(
    conn: asyncpg.Connection, live: str, shadow: str, tables: Sequence[str]
) -> None:
    """Move the live tables out and the shadow tables in, keeping the index names."""
    retired = f"{shadow}_old"
    await conn.execute(f"CREATE SCHEMA {quote_ident(retired)}")
    for table in tables:
        names = await _index_names(conn, live, table)
        await conn.execute(f"ALTER TABLE {quote_ident(live)}.{quote_ident(table)} SET SCHEMA"
                           f" {quote_ident(retired)}")
        await conn.execute(f"ALTER TABLE {quote_ident(shadow)}.{quote_ident(table)} SET SCHEMA"
                           f" {quote_ident(live)}")
        for definition, index in (await _index_names(conn, live, table)).items():
            old = names.get(definition)
            if old is not None and old != index:
                await conn.execute(f"ALTER INDEX {quote_ident(live)}.{quote_ident(index)}"
                                   f" RENAME TO {quote_ident(old)}")
    await conn.execute(f"DROP SCHEMA {quote_ident(retired)} CASCADE")


async def _index_names(conn: asyncpg.Connection, schema: str, table: str) -> dict[str, str]:
    """Index definition (without its name and schema) -> index name."""
    rows = await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = $2",
        schema, table,
    )
    result = {}
    for r in rows:
        kind, rest = r["indexdef"].split(" INDEX ", 1)
        result[kind + " " + rest.split(" USING ", 1)[1]] = r["indexname"]
    return result
