"""The async event store on asyncpg, with group commit.

Appends from every task of this process go through one queue. A single writer task
takes everything pending, and in one transaction: takes the store's advisory lock,
checks every expected version in one query, refuses only the conflicting appends,
inserts the rest with one ``unnest`` statement, and commits once. The lock makes
positions commit in order, so a reader following ``position > last`` never skips one.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol
from uuid import UUID

import asyncpg

from midas import tracing
from midas.domain.events import VERSIONED, upcast
from midas.eventstore import codec
from midas.eventstore.database import Database
from midas.eventstore.notifier import Notifier
from midas.eventstore.outages import is_unavailable

log = logging.getLogger(__name__)
_loads = codec.decode
_new_tuple = tuple.__new__

EVENTS_CHANNEL = "events"
ANNOUNCED_STREAMS = 500  # streams listed in a commit's announcement, at most
TOUCHED_STREAMS = 100_000  # stream prefixes remembered before everything counts as stale


class CacheStamp(NamedTuple):
    epoch: int
    foreign_commits: int
_COLUMNS = "position, stream_id, version, type, data, metadata, recorded_at, hash"
_BARE_COLUMNS = "position, stream_id, version, type, data, recorded_at"


class ConcurrencyConflict(Exception):
    """A stream's version was not the expected one: nothing of the append was written."""

    def __init__(self, conflicts: Mapping[UUID, tuple[int, int]]) -> None:
        self.conflicts = dict(conflicts)
        detail = ", ".join(
            f"{stream} expected version {exp} but is at {act}"
            for stream, (exp, act) in self.conflicts.items()
        )
        super().__init__(f"concurrency conflict: {detail}")


class StoreClosed(Exception):
    """The store is shutting down and takes no more appends."""


@dataclass(frozen=True)
class NewEvent:
    type: str
    data: Mapping[str, Any]
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamAppend:
    stream_id: UUID
    expected_version: int
    events: Sequence[NewEvent]


class RecordedEvent(NamedTuple):
    """An event as read: as stored, with ``data`` at its type's current version
    (``midas.domain.events``: an older version's is upcast, the stored row is not).
    A named tuple: catch-up reads build hundreds of thousands."""

    position: int
    stream_id: UUID
    version: int
    type: str
    data: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: datetime
    hash: bytes

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> RecordedEvent:
        position, stream_id, version, type_, data, metadata, recorded_at, hash_ = row
        payload = _loads(data)
        if type_ in VERSIONED:
            payload = upcast(type_, payload)
        return cls(position, stream_id, version, type_, payload, _loads(metadata),
                   recorded_at, hash_)


@dataclass(frozen=True)
class StoredSnapshot:
    stream_id: UUID
    version: int
    topic: str
    state: bytes
    taken_at: datetime


@dataclass(frozen=True)
class AppendResult:
    positions: list[int]

    @property
    def last_position(self) -> int:
        return self.positions[-1] if self.positions else 0


@dataclass(frozen=True)
class Statement:
    """SQL run in the append's transaction, only if the append is accepted.

    For state that must change atomically with the events but must not be in them
    (password hashes, idempotency records). A failing statement fails its append only.
    """

    sql: str
    args: tuple[Any, ...] = ()


_AMBIENT: ContextVar[tuple[Statement, ...]] = ContextVar("midas_ambient_statements", default=())


@contextmanager
def with_statements(*statements: Statement) -> Iterator[None]:
    """Add ``statements`` to every append made in this context (and tasks it starts).

    The idempotency middleware marks its key "committed" this way, in the very transaction
    that writes the command's events, without every handler passing it on.
    """
    token = _AMBIENT.set(_AMBIENT.get() + statements)
    try:
        yield
    finally:
        _AMBIENT.reset(token)


@dataclass
class _Pending:
    streams: list[StreamAppend]
    rows: list[tuple[UUID, str, str, str]]  # stream, type, data json, metadata json
    statements: Sequence[Statement]
    future: asyncio.Future[AppendResult]
    traceparent: str | None = None  # the appending span (when tracing), linked to the commit


class EventStorePort(Protocol):
    """What the repository and the command handlers need of an event store."""

    async def append(
        self,
        streams: Sequence[StreamAppend],
        metadata: Mapping[str, Any] | None = None,
        *,
        statements: Sequence[Statement] = (),
    ) -> AppendResult: ...

    async def read_stream(
        self, stream_id: UUID, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]: ...

    async def save_snapshot(self, snapshot: StoredSnapshot) -> None: ...

    async def load_snapshot(self, stream_id: UUID) -> StoredSnapshot | None: ...

    def cache_stamp(self) -> CacheStamp | None:
        """What the store has seen of other writers so far; None: trust no cache."""
        ...

    def unchanged_since(self, stream_id: UUID, stamp: CacheStamp | None) -> bool:
        """True if no other writer has appended to ``stream_id`` since ``stamp``."""
        ...


class EventStore:
    def __init__(
        self, db: Database, *, max_batch: int = 1000, notifier: Notifier | None = None
    ) -> None:
        self.db = db
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._closed = False
        self._lock_key = db.lock_key("event-store-writer")
        self._conn: asyncpg.Connection | None = None
        self._channel = db.channel(EVENTS_CHANNEL)
        self._owns_notifier = notifier is None
        self.notifier = notifier or Notifier(db, [EVENTS_CHANNEL])
        self.notifier.listen(EVENTS_CHANNEL, self._on_commit_seen)
        self.batches_committed = 0
        # Commits are announced with their last position and their streams: ours are
        # known; another writer's mark its streams as touched (see cache_stamp).
        self._own_commits: set[int] = set()
        self._epoch = 0  # moves when anything may have been missed: every stamp is stale
        # The head this writer last committed (position, hash), while no other writer is
        # seen committing after it: the next batch is planned against it, in one round trip.
        self._head: tuple[int, bytes | None] | None = None
        self._foreign_commits = 0
        # A stream's prefix (its first 32 bits, the 8 hex digits a commit announces) ->
        # the foreign commit count then. Keyed by the number: `stream_id.int >> 96` costs
        # a tenth of `str(stream_id)[:8]`, and every cached read asks.
        self._touched: dict[int, int] = {}

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        if self._writer is None:
            # A context of its own: the writer outlives the request whose append starts it
            # (its spans and log fields must not be that request's).
            self._writer = asyncio.create_task(self._write_forever(), name="midas-writer",
                                               context=contextvars.Context())
        self.notifier.start()

    async def close(self) -> None:
        """Take no new appends, finish the ones already queued, then stop."""
        self._closed = True
        if self._writer is not None:
            await self._queue.put(None)
            await self._writer
            self._writer = None
        if self._conn is not None:
            await self._abandon_quietly()
        if self._owns_notifier:
            await self.notifier.stop()

    def cache_stamp(self) -> CacheStamp | None:
        """State cached in this process at this stamp stays current for every stream no
        other writer is seen appending to afterwards (an append that raced in unseen
        still fails its expected-version check). None while announcements are not being
        received."""
        if not self.notifier.connected.is_set():
            return None
        return CacheStamp(self._epoch, self._foreign_commits)

    def unchanged_since(self, stream_id: UUID, stamp: CacheStamp | None) -> bool:
        return (
            stamp is not None
            and stamp.epoch == self._epoch
            and self.notifier.connected.is_set()
            and self._touched.get(stream_id.int >> 96, 0) <= stamp.foreign_commits
        )

    def _on_commit_seen(self, payload: str | None) -> None:
        if payload is None:  # (re)connected: commits may have gone unseen
            self._forget_all()
            return
        last, _, streams = payload.partition(" ")
        try:
            self._own_commits.remove(int(last))
            return
        except (KeyError, ValueError):
            pass
        if not streams or streams == "*":  # an import, or too many streams to list
            self._forget_all()
            return
        try:
            prefixes = [int(prefix, 16) for prefix in streams.split()]
        except ValueError:  # not an announcement this store makes: assume the worst
            self._forget_all()
            return
        self._foreign_commits += 1
        self._head = None
        for prefix in prefixes:
            self._touched[prefix] = self._foreign_commits
        if len(self._touched) > TOUCHED_STREAMS:
            self._forget_all()

    def _forget_all(self) -> None:
        self._head = None
        self._own_commits.clear()
        self._touched.clear()
        self._epoch += 1

    # -- writing ---------------------------------------------------------------------

    async def append(
        self,
        streams: Sequence[StreamAppend],
        metadata: Mapping[str, Any] | None = None,
        *,
        statements: Sequence[Statement] = (),
    ) -> AppendResult:
        """Append to one or several streams atomically; return the new positions."""
        if self._closed:
            raise StoreClosed("the event store is shutting down")
        if tracing.enabled():
            with tracing.span("eventstore.append", {"midas.streams": len(streams)}):
                return await self._append(streams, metadata, statements,
                                          tracing.event_metadata())
        return await self._append(streams, metadata, statements)

    async def _append(
        self,
        streams: Sequence[StreamAppend],
        metadata: Mapping[str, Any] | None,
        statements: Sequence[Statement],
        trace: Mapping[str, str] | None = None,
    ) -> AppendResult:
        statements = (*statements, *_AMBIENT.get())
        if trace:  # the appending span's traceparent, unless the caller gave one
            metadata = {**trace, **(metadata or {})}
        pending = self._prepare(streams, metadata or {}, statements)
        if trace:
            pending.traceparent = metadata.get(tracing.TRACEPARENT)  # type: ignore[union-attr]
        if not pending.rows:
            return AppendResult([])
        if self._writer is None:
            self.start()
        await self._queue.put(pending)
        # The writer owns the outcome: a cancelled caller must not cancel the commit.
        return await asyncio.shield(pending.future)

    def _prepare(
        self,
        streams: Sequence[StreamAppend],
        metadata: Mapping[str, Any],
        statements: Sequence[Statement],
    ) -> _Pending:
        seen: set[UUID] = set()
        rows = []
        for stream in streams:
            if stream.stream_id in seen:
                raise ValueError(f"stream {stream.stream_id} appears twice in one append")
            if stream.expected_version < 0:
                raise ValueError("expected_version must be >= 0")
            seen.add(stream.stream_id)
            for event in stream.events:
                merged = {**metadata, **event.metadata}
                rows.append(
                    (stream.stream_id, event.type, codec.encode(event.data), codec.encode(merged))
                )
        future = asyncio.get_running_loop().create_future()
        # Retrieve the outcome even if the caller was cancelled, so it is never "lost".
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        return _Pending(list(streams), rows, statements, future)

    async def _write_forever(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self._max_batch and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            try:
                await self._commit_batch(batch)
            except Exception as exc:  # the writer must outlive any one batch
                log.exception("writer failed a batch")
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(exc)

    async def _commit_batch(self, batch: list[_Pending]) -> None:
        try:
            if tracing.enabled():
                with tracing.span("eventstore.commit", {"midas.appends": len(batch)},
                                  links=tracing.links_to(p.traceparent for p in batch)):
                    results = await self._commit(batch)
            else:
                results = await self._commit(batch)
        except Exception as exc:
            if len(batch) > 1 and not is_unavailable(exc):
                # One bad append must not sink the others: retry each on its own.
                for pending in batch:
                    await self._commit_batch([pending])
                return
            if not is_unavailable(exc):
                # The caller gets the exception; its text may carry data, so not logged here.
                log.warning("append failed", extra={"error": type(exc).__name__})
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        for pending, result in zip(batch, results, strict=True):
            if not pending.future.done():
                if isinstance(result, BaseException):
                    pending.future.set_exception(result)
                else:
                    pending.future.set_result(result)

    async def _commit(self, batch: list[_Pending]) -> list[AppendResult | BaseException]:
        """One transaction: in one round trip when the head this writer last committed
        and the versions the appenders expect still hold, else in four (lock, read
        state, insert, commit)."""
        conn = await self._connection()
        if self._head is not None and not any(p.statements for p in batch):
            results = await self._commit_if_current(conn, batch, *self._head)
            if results is not None:
                return results
        last: int | None = None
        self._head = None
        try:
            # Simple-query protocol: BEGIN and the lock in one round trip.
            await conn.execute(f"BEGIN; SELECT pg_advisory_xact_lock({self._lock_key})")
            stream_ids = list({s.stream_id for p in batch for s in p.streams})
            state = await conn.fetchrow(_STATE_SQL, stream_ids)
            plan = _plan(batch, state)
            last = plan.columns[0][-1] if plan.columns[0] else None
            if last is not None:
                await conn.execute(_INSERT_SQL, *plan.columns, self._channel,
                                   _announcement(last, plan.columns[1]))
                for statement in plan.statements:
                    await conn.execute(statement.sql, *statement.args)
                self._own_commits.add(last)
            await conn.execute("COMMIT")
        except BaseException:
            self._own_commits.discard(last)
            await self._abandon(conn)
            raise
        self._committed(plan, (state["head"] or 0, state["hash"]))
        return plan.results

    async def _commit_if_current(
        self, conn: asyncpg.Connection, batch: list[_Pending], head: int, hash_: bytes | None
    ) -> list[AppendResult | BaseException] | None:
        """The batch planned against the last known head and the expected versions, and
        committed in one statement if both still hold; None when they do not."""
        expected: dict[UUID, int] = {}
        for pending in batch:
            for stream in pending.streams:
                expected.setdefault(stream.stream_id, stream.expected_version)
        plan = _plan(batch, {"head": head, "hash": hash_, "ids": list(expected),
                             "versions": list(expected.values())})
        if not plan.columns[0]:
            return None  # only refusals: let the log confirm them
        last = plan.columns[0][-1]
        self._own_commits.add(last)
        try:
            done = await conn.fetchval(
                _APPEND_IF_CURRENT_SQL, self._lock_key, head, hash_, list(expected),
                list(expected.values()), *plan.columns, self._channel,
                _announcement(last, plan.columns[1]))
        except BaseException:
            self._own_commits.discard(last)
            self._head = None
            raise
        if not done:
            self._own_commits.discard(last)
            self._head = None
            return None
        self._committed(plan, (head, hash_))
        return plan.results

    def _committed(self, plan: _Plan, before: tuple[int, bytes | None]) -> None:
        self.batches_committed += 1
        self._head = (plan.columns[0][-1], plan.columns[7][-1]) if plan.columns[0] else before

    async def _abandon_quietly(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), 2)
            except Exception:
                conn.terminate()

    async def _connection(self) -> asyncpg.Connection:
        """The writer's own connection: no pool round trips, reopened after a failure."""
        if self._conn is None or self._conn.is_closed():
            self._conn = await self.db.connect()
        return self._conn

    async def _abandon(self, conn: asyncpg.Connection) -> None:
        try:
            if not conn.is_closed():
                await asyncio.wait_for(conn.execute("ROLLBACK"), 2)
        except Exception:
            conn.terminate()
            self._conn = None

    # -- reading ---------------------------------------------------------------------

    async def save_snapshot(self, snapshot: StoredSnapshot) -> None:
        """Keep the newest snapshot of a stream (a cache: never in the append path)."""
        async with self.db.acquire() as conn:
            await conn.execute(
                "INSERT INTO snapshots (stream_id, version, topic, state, taken_at)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (stream_id) DO UPDATE SET"
                " version = EXCLUDED.version, topic = EXCLUDED.topic, state = EXCLUDED.state,"
                " taken_at = EXCLUDED.taken_at WHERE snapshots.version < EXCLUDED.version",
                snapshot.stream_id, snapshot.version, snapshot.topic, snapshot.state,
                snapshot.taken_at,
            )

    async def vacuum_snapshots(self) -> None:
        """Remove the row versions that snapshot upserts superseded (VACUUM, outside any
        transaction; it only marks their space for reuse, never locks out writers)."""
        async with self.db.acquire() as conn:
            await conn.execute("VACUUM snapshots")

    async def load_snapshot(self, stream_id: UUID) -> StoredSnapshot | None:
        async with self.db.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT version, topic, state, taken_at FROM snapshots WHERE stream_id = $1",
                stream_id,
            )
        if row is None:
            return None
        return StoredSnapshot(stream_id, row["version"], row["topic"], bytes(row["state"]),
                              row["taken_at"])

    async def read_stream(
        self, stream_id: UUID, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        async with self.db.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM events WHERE stream_id = $1 AND version >= $2"
                " AND ($3::int IS NULL OR version <= $3) ORDER BY version",
                stream_id, from_version, to_version,
            )
        return [RecordedEvent.from_row(r) for r in rows]

    async def read_all(
        self, after: int = 0, limit: int = 1000, types: Sequence[str] | None = None
    ) -> list[RecordedEvent]:
        async with self.db.acquire() as conn:
            return await read_all(conn, after, limit, types)

    async def head(self) -> int:
        async with self.db.acquire() as conn:
            return await head_position(conn)

    async def subscribe(
        self, after: int = 0, *, batch_size: int = 1000, poll_interval_s: float = 1.0
    ) -> AsyncIterator[list[RecordedEvent]]:
        """Yield batches of events after ``after``, forever, in position order."""
        self.notifier.start()
        while True:
            try:
                events = await self.read_all(after, batch_size)
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                await asyncio.sleep(poll_interval_s)
                continue
            if events:
                after = events[-1].position
                yield events
                continue
            await self.notifier.wait(EVENTS_CHANNEL, poll_interval_s)


_STATE_SQL = (
    "SELECT (SELECT position FROM events ORDER BY position DESC LIMIT 1) AS head,"
    " (SELECT hash FROM events ORDER BY position DESC LIMIT 1) AS hash,"
    " array_agg(s.id ORDER BY s.n) AS ids,"
    " array_agg((SELECT max(e.version) FROM events e WHERE e.stream_id = s.id) ORDER BY s.n)"
    " AS versions FROM unnest($1::uuid[]) WITH ORDINALITY AS s(id, n)"
)
_INSERT_SQL = (  # the insert runs to completion though the query does not read it
    f"WITH inserted AS (INSERT INTO events ({_COLUMNS}) SELECT * FROM unnest("
    "$1::bigint[], $2::uuid[], $3::int[], $4::text[], $5::jsonb[], $6::jsonb[],"
    " $7::timestamptz[], $8::bytea[])) SELECT pg_notify($9, $10)"
)


_APPEND_IF_CURRENT_SQL = (
    "SELECT append_events_if_current($1, $2, $3, $4::uuid[], $5::int[], $6::bigint[],"
    " $7::uuid[], $8::int[], $9::text[], $10::jsonb[], $11::jsonb[], $12::timestamptz[],"
    " $13::bytea[], $14, $15)"
)


def _announcement(last: int, streams: list[UUID]) -> str:
    """What a commit announces: its last position, then its streams (short prefixes: a
    false match only costs a read), "*" when too many to list (payloads are small)."""
    prefixes = {str(stream)[:8] for stream in streams}
    return f"{last} {' '.join(prefixes) if len(set(streams)) <= ANNOUNCED_STREAMS else '*'}"


@dataclass
class _Plan:
    results: list[AppendResult | BaseException]
    columns: list[list[Any]]
    statements: list[Statement]


def _plan(batch: list[_Pending], state: Mapping[str, Any]) -> _Plan:
    """Accept or refuse each pending append in order; number and hash the accepted."""
    current = {sid: v or 0 for sid, v in zip(state["ids"] or [], state["versions"] or [],
                                               strict=True)}
    position = state["head"] or 0
    previous = bytes(state["hash"]) if state["hash"] is not None else codec.GENESIS_HASH
    recorded_at = datetime.now(UTC)
    plan = _Plan([], [[] for _ in range(8)], [])
    for pending in batch:
        conflicts = {
            s.stream_id: (s.expected_version, current[s.stream_id])
            for s in pending.streams
            if current[s.stream_id] != s.expected_version
        }
        if conflicts:
            plan.results.append(ConcurrencyConflict(conflicts))
            continue
        positions = []
        for stream_id, type_, data, metadata in pending.rows:
            current[stream_id] += 1
            position += 1
            version = current[stream_id]
            previous = codec.event_hash(
                previous, position, stream_id, version, type_,
                data.encode(), metadata.encode(), recorded_at,
            )
            row = (position, stream_id, version, type_, data, metadata, recorded_at, previous)
            for column, value in zip(plan.columns, row, strict=True):
                column.append(value)
            positions.append(position)
        plan.results.append(AppendResult(positions))
        plan.statements.extend(pending.statements)
    return plan


async def read_all(
    conn: asyncpg.Connection, after: int, limit: int, types: Sequence[str] | None = None,
    *, bare: bool = False,
) -> list[RecordedEvent]:
    """Events after ``after`` in position order; ``bare``: without metadata and hash
    (``{}`` and ``b""``), which read models never use: less to send and to decode."""
    columns = _BARE_COLUMNS if bare else _COLUMNS
    if types is None:
        rows = await conn.fetch(
            f"SELECT {columns} FROM events WHERE position > $1 ORDER BY position LIMIT $2",
            after, limit,
        )
    else:
        rows = await conn.fetch(
            f"SELECT {columns} FROM events WHERE position > $1 AND type = ANY($3::text[])"
            " ORDER BY position LIMIT $2",
            after, limit, list(types),
        )
    if bare:  # tuple.__new__: a named tuple's own __new__ is a Python call per event
        return [_new_tuple(RecordedEvent, (
                    position, stream_id, version, type_,
                    _loads(data) if type_ not in VERSIONED else upcast(type_, _loads(data)),
                    {}, recorded_at, b""))
                for position, stream_id, version, type_, data, recorded_at in rows]
    return [RecordedEvent.from_row(r) for r in rows]


async def head_position(conn: asyncpg.Connection) -> int:
    head: int = await conn.fetchval("SELECT coalesce(max(position), 0) FROM events")
    return head
