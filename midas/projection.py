"""The projection runner: read models built from the log, exactly once.

A projector applies a batch of events to its read-model tables; the runner commits
those changes and the projection's checkpoint in one transaction. The checkpoint row is
locked (``FOR UPDATE``) and re-read in every batch, so even two runners could never
apply one event twice; a session advisory lock makes one of them the leader anyway, so
any number of service processes can run while only one works.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg

from midas.eventstore.database import Database, is_unavailable
from midas.eventstore.notifier import Notifier
from midas.eventstore.store import EVENTS_CHANNEL, RecordedEvent, head_position, read_all

log = logging.getLogger(__name__)
CHECKPOINTS_CHANNEL = "checkpoints"


class Projector(Protocol):
    name: str
    handles: frozenset[str]  # event types; the rest of the log is skipped
    tables: tuple[str, ...]  # read-model tables it owns, emptied on rebuild

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        """Apply ``events`` inside the runner's transaction."""


@dataclass(frozen=True)
class ProjectionStatus:
    name: str
    position: int
    head: int
    leader: bool

    @property
    def lag(self) -> int:
        return max(self.head - self.position, 0)


async def ensure_checkpoint(conn: asyncpg.Connection, name: str) -> None:
    await conn.execute(
        "INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT DO NOTHING", name
    )


_PROGRESS_SQL = (
    "SELECT position, (SELECT coalesce(max(position), 0) FROM events) AS head"
    " FROM projection_checkpoints WHERE name = $1"
)
_ADVANCE_SQL = (
    "WITH moved AS (UPDATE projection_checkpoints SET position = $2, updated_at = now()"
    " WHERE name = $1 RETURNING name, position)"
    " SELECT pg_notify($3, name || ':' || position) FROM moved"
)


async def apply_next_batch(
    conn: asyncpg.Connection, db: Database, projector: Projector, batch_size: int
) -> bool:
    """Apply the next batch; False when the projection has reached the head."""
    progress = await conn.fetchrow(_PROGRESS_SQL, projector.name)
    if progress["position"] >= progress["head"]:
        return False  # caught up: no transaction needed to find out
    async with conn.transaction():
        # Re-read under the row lock: the checkpoint is the fence against double applies.
        progress = await conn.fetchrow(_PROGRESS_SQL + " FOR UPDATE", projector.name)
        position, head = progress["position"], progress["head"]
        if position >= head:
            return False
        events = await read_all(conn, position, batch_size, sorted(projector.handles))
        events = [e for e in events if e.position <= head]
        new_position = head if len(events) < batch_size else events[-1].position
        if events:
            writes = DeferredWrites(conn)
            await projector.apply(writes, events)  # type: ignore[arg-type]
            await writes.flush()
        await conn.execute(
            _ADVANCE_SQL, projector.name, new_position, db.channel(CHECKPOINTS_CHANNEL)
        )
    return True


_QUERIES = frozenset({
    "fetch", "fetchrow", "fetchval", "executemany", "copy_from_table", "copy_from_query",
    "copy_to_table", "copy_records_to_table",
})


class DeferredWrites:
    """The connection a projector writes through: its writes are pipelined.

    ``execute`` with arguments is queued (it answers "" instead of a status); any other
    call first sends what is queued, in order, runs of the same statement as one
    ``executemany`` (one round trip). The runner flushes after ``apply``, inside the
    batch's transaction, so a failing write still rolls the whole batch back.
    """

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._pending: list[tuple[str, tuple[Any, ...]]] = []

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
        if not args:
            await self.flush()
            return await self._conn.execute(query, timeout=timeout)
        self._pending.append((query, args))
        return ""

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        for query, group in itertools.groupby(pending, key=lambda write: write[0]):
            rows = [args for _, args in group]
            if len(rows) == 1:
                await self._conn.execute(query, *rows[0])
            else:
                await self._conn.executemany(query, rows)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._conn, name)
        if name not in _QUERIES:
            return attr

        async def flushed_first(*args: Any, **kwargs: Any) -> Any:
            await self.flush()
            return await attr(*args, **kwargs)

        return flushed_first


async def reset(conn: asyncpg.Connection, projector: Projector) -> None:
    """Empty the read model and rewind its checkpoint, in one transaction."""
    async with conn.transaction():
        await ensure_checkpoint(conn, projector.name)
        await conn.fetchval(
            "SELECT position FROM projection_checkpoints WHERE name = $1 FOR UPDATE",
            projector.name,
        )
        if projector.tables:
            await conn.execute(f"TRUNCATE {', '.join(projector.tables)}")
        await conn.execute(
            "UPDATE projection_checkpoints SET position = 0, updated_at = now() WHERE name = $1",
            projector.name,
        )


async def catch_up(db: Database, projector: Projector, batch_size: int = 500) -> None:
    """Apply batches until the head (used by rebuilds run outside the service)."""
    async with db.acquire() as conn:
        await ensure_checkpoint(conn, projector.name)
        while await apply_next_batch(conn, db, projector, batch_size):
            pass


class ProjectionRunner:
    def __init__(
        self,
        db: Database,
        projector: Projector,
        notifier: Notifier,
        *,
        batch_size: int = 500,
        poll_interval_s: float = 1.0,
        retry_s: float = 0.5,
        linger_s: float = 0.0,
    ) -> None:
        self.db = db
        self.projector = projector
        self._notifier = notifier
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._retry_s = retry_s
        self._linger_s = linger_s
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.is_leader = False
        self.batches_applied = 0

    @property
    def name(self) -> str:
        return self.projector.name

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"projection-{self.name}")

    async def stop(self, timeout: float = 10.0) -> None:
        """Finish the batch in progress, then stop."""
        self._stopping.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def _run(self) -> None:
        while not self._stopping.is_set():
            conn: asyncpg.Connection | None = None
            try:
                conn = await self.db.connect()
                await ensure_checkpoint(conn, self.name)
                if await conn.fetchval(
                    "SELECT pg_try_advisory_lock($1)", self.db.lock_key(f"projection:{self.name}")
                ):
                    self.is_leader = True
                    await self._lead(conn)
                else:
                    await self._sleep(self._poll_interval_s)
            except Exception as exc:
                if not is_unavailable(exc):
                    log.exception("projection failed", extra={"projection": self.name})
                await self._sleep(self._retry_s)
            finally:
                self.is_leader = False
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 2)

    async def _lead(self, conn: asyncpg.Connection) -> None:
        while not self._stopping.is_set():
            if await apply_next_batch(conn, self.db, self.projector, self._batch_size):
                self.batches_applied += 1
                continue
            waiter = asyncio.ensure_future(
                self._notifier.wait(EVENTS_CHANNEL, self._poll_interval_s)
            )
            stopper = asyncio.ensure_future(self._stopping.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            for task in (waiter, stopper):
                task.cancel()
            if self._linger_s:
                # Under load, let a few more commits land: one batch then carries them all.
                await self._sleep(self._linger_s)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)


async def projection_status(
    db: Database, projectors: Sequence[Projector]
) -> list[ProjectionStatus]:
    async with db.acquire() as conn:
        head = await head_position(conn)
        rows = {
            r["name"]: r["position"]
            for r in await conn.fetch("SELECT name, position FROM projection_checkpoints")
        }
        statuses = []
        for projector in projectors:
            key = db.lock_key(f"projection:{projector.name}")
            leader = await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " AND ((classid::bigint << 32) | objid::bigint) = $1)",
                key,
            )
            statuses.append(
                ProjectionStatus(projector.name, rows.get(projector.name, 0), head, leader)
            )
        return statuses
