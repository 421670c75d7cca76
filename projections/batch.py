"""A batch's changes to one read-model table, merged per row before they are written.

A projector used to send one statement per event. ``RowChanges`` keeps what each of those
statements meant (INSERT .. ON CONFLICT DO NOTHING, UPDATE .. WHERE key, DELETE .. WHERE
key) but applies them to rows held in memory, read once per batch, so a later event of the
batch sees what an earlier one did. The batch is then written with one DELETE, one INSERT
per set of columns and one UPDATE per set of changed columns: a booking held, confirmed and
checked out in one batch is one INSERT with its final status.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID

import asyncpg
from asyncpg.pgproto.pgproto import UUID as _PgUUID

from midas.eventstore import RecordedEvent

Row = dict[str, Any]


def uuid_of(text: str) -> UUID:
    """An id in event data, as a UUID. asyncpg's own UUID class: a ``uuid.UUID`` (equal
    and hashing alike) that parses about eight times faster (0.3 against 2.4 µs), hashes
    faster and goes to PostgreSQL as it is; a rebuild parses millions. It takes only the
    plain forms (32 hex digits, dashes or not), which is what events carry."""
    return _PgUUID(text)


def begun(events: Iterable[RecordedEvent]) -> set[UUID]:
    """Streams whose first event is among ``events``. Facts a projector would read back
    about such a stream, that first event gives before any later one is applied: no
    lookup (in a rebuild most streams begin in the batch that reads them, and looking
    them up found nothing)."""
    return {e.stream_id for e in events if e.version == 1}


class RowChanges:
    """The rows of ``table`` (primary key ``key``) that a batch may touch, and its changes.

    ``rows`` must hold every row the batch's events can touch that exists before the batch
    (with the columns the projector reads); any other key is taken to be absent.
    """

    def __init__(self, table: str, key: str, rows: Mapping[Any, Mapping[str, Any]]) -> None:
        self.table, self.key = table, key
        self._rows: dict[Any, Row | None] = {k: dict(row) for k, row in rows.items()}
        self._existing = set(self._rows)  # in the table before the batch
        self._inserted: dict[Any, None] = {}  # written by an INSERT (ordered)
        self._changed: dict[Any, set[str]] = {}  # existing rows: the columns to UPDATE
        self._deleted: set[Any] = set()  # existing rows to DELETE, before the inserts

    @classmethod
    async def load(
        cls, conn: asyncpg.Connection, table: str, key: str, keys: Iterable[Any],
        columns: Iterable[str] = (),
    ) -> RowChanges:
        """The rows of ``keys`` that exist, with ``columns``: one query."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return cls(table, key, {})
        names = ", ".join((key, *columns))
        found = await conn.fetch(
            f"SELECT {names} FROM {table} WHERE {key} = ANY($1)", wanted)
        return cls(table, key, {r[key]: dict(r) for r in found})

    def get(self, key: Any) -> Row | None:
        """The row as the batch has left it so far; None when there is none."""
        return self._rows.get(key)

    def insert(self, key: Any, values: Mapping[str, Any]) -> None:
        """INSERT .. ON CONFLICT DO NOTHING."""
        if self._rows.get(key) is not None:
            return
        self._rows[key] = {self.key: key, **values}
        self._inserted[key] = None

    def update(self, key: Any, values: Mapping[str, Any]) -> None:
        """UPDATE .. SET values WHERE key: nothing when the row does not exist."""
        row = self._rows.get(key)
        if row is None:
            return
        row.update(values)
        if key not in self._inserted:
            self._changed.setdefault(key, set()).update(values)

    def delete(self, key: Any) -> None:
        if self._rows.get(key) is None:
            return
        self._rows[key] = None
        self._inserted.pop(key, None)
        self._changed.pop(key, None)
        if key in self._existing:
            self._deleted.add(key)

    async def write(self, conn: asyncpg.Connection) -> None:
        if self._deleted:
            await conn.execute(
                f"DELETE FROM {self.table} WHERE {self.key} = ANY($1)", list(self._deleted))
        inserted = (row for k in self._inserted if (row := self._rows[k]) is not None)
        for columns, rows in _by_columns((row, row.keys()) for row in inserted).items():
            await insert_new_rows(conn, self.table, columns, rows)
        updates = _by_columns((row, (self.key, *changed))
                              for k, changed in self._changed.items()
                              if changed and (row := self._rows[k]) is not None)
        for columns, rows in updates.items():
            await update_rows(conn, self.table, columns, rows)


def _by_columns(
    rows: Iterable[tuple[Row, Iterable[str]]]
) -> dict[tuple[str, ...], list[tuple[Any, ...]]]:
    """Rows grouped by the columns they write (the first column stays first)."""
    groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    for row, names in rows:
        first, *rest = names
        columns = (first, *sorted(rest))
        groups.setdefault(columns, []).append(tuple(row[c] for c in columns))
    return groups


_TYPES: dict[str, dict[str, str]] = {}  # table -> column -> SQL type (same in every schema)


async def column_types(conn: asyncpg.Connection, table: str) -> dict[str, str]:
    types = _TYPES.get(table)
    if types is None:
        types = _TYPES[table] = {r["attname"]: r["type"] for r in await conn.fetch(
            "SELECT attname, format_type(atttypid, atttypmod) AS type FROM pg_attribute"
            " WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped", table)}
    return types


async def unnest_rows(conn: asyncpg.Connection, table: str, columns: Sequence[str],
                      rows: Sequence[tuple[Any, ...]]) -> tuple[str, list[list[Any]]]:
    """``unnest($1::t1[], ...) AS u(c1, ...)`` and its arrays: a whole batch of rows as
    one statement's parameters, which PostgreSQL applies far cheaper than row by row."""
    types = await column_types(conn, table)
    arrays = ", ".join(f"${n}::{types[c]}[]" for n, c in enumerate(columns, start=1))
    return f"unnest({arrays}) AS u({', '.join(columns)})", as_columns(rows)


def as_columns(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows as one array per column, for ``unnest``: one statement for the batch."""
    return [list(column) for column in zip(*rows, strict=True)]


async def insert_rows(conn: asyncpg.Connection, table: str, columns: Sequence[str],
                      rows: Sequence[tuple[Any, ...]], conflict: str | None = "DO NOTHING"
                      ) -> None:
    """INSERT ``rows`` .. ON CONFLICT ``conflict`` (a ``DO UPDATE`` reads ``EXCLUDED``;
    None: a conflict is an error): one statement. A ``DO UPDATE`` needs at most one row
    per key."""
    if not rows:
        return
    source, arrays = await unnest_rows(conn, table, columns, rows)
    await conn.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM {source}"
                       + (f" ON CONFLICT {conflict}" if conflict else ""), *arrays)


COPIED_ROWS = 1000  # from this many new rows, one binary COPY writes them


async def insert_new_rows(conn: asyncpg.Connection, table: str, columns: Sequence[str],
                          rows: Sequence[tuple[Any, ...]]) -> None:
    """INSERT ``rows`` whose keys the projector knows are new: a conflict is an error.

    Many go as one binary COPY: asyncpg encodes rows for a COPY at about a third of the
    cost of the same values as arrays, and PostgreSQL writes them at about half the cost
    of an INSERT (pages filled many rows at a time, no check for conflicts first). A
    rebuild writes millions (bench/projections)."""
    if len(rows) >= COPIED_ROWS:
        await conn.copy_records_to_table(table, records=rows, columns=columns)
    else:
        await insert_rows(conn, table, columns, rows, conflict=None)


async def update_rows(conn: asyncpg.Connection, table: str, columns: Sequence[str],
                      rows: Sequence[tuple[Any, ...]], assignments: str | None = None
                      ) -> None:
    """UPDATE ``table`` (alias ``t``) from ``rows`` (alias ``u``; key first, at most one
    per key): one statement. ``assignments`` default to each other column's new value."""
    if not rows:
        return
    key, *rest = columns
    source, arrays = await unnest_rows(conn, table, columns, rows)
    assignments = assignments or ", ".join(f"{c} = u.{c}" for c in rest)
    await conn.execute(f"UPDATE {table} t SET {assignments} FROM {source}"
                       f" WHERE t.{key} = u.{key}", *arrays)
