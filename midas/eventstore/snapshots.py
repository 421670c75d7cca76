"""Snapshots written off the request path: one task per repository, newest state per stream.

A save that crosses a multiple of ``snapshot_every`` events hands the saved aggregate
over (``saved``); the writer encodes and stores it after the request has had its answer.
It keeps the object, not a copy, with the version its save committed; each later save of
that stream moves the entry to the new object and version, so a stream waiting its turn
is written once, at its newest state. The object is encoded only while its state is that
committed version (same version, no pending events): a command that has it in hand
(changed it, or appending it, not yet committed) makes the writer come back to it after
that command's save. A snapshot is only a cache: one dropped (unencodable, the stream's
object gone from the repository's hands for good) costs a longer replay, nothing else.

The store keeps one row per stream (an upsert). Every ``vacuum_every`` writes the writer
vacuums the table, so that the versions each write supersedes are removed even where
autovacuum does not run or runs late (docs/operations.md, Storage).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from uuid import UUID

from eventsourcing.domain import Aggregate, Snapshot
from eventsourcing.persistence import JSONTranscoder

from midas.background import stop_task
from midas.eventstore.store import StoredSnapshot

log = logging.getLogger(__name__)

# How many times a stream's entry waits for its aggregate to be back at a committed state
# before the writer drops it (the next crossing of `snapshot_every` brings it back).
MAX_DEFERRALS = 50


class SnapshotWriter:
    """One background task storing the newest saved state of the streams handed to it."""

    def __init__(
        self,
        save: Callable[[StoredSnapshot], Awaitable[None]],
        transcoder: JSONTranscoder,
        *,
        vacuum: Callable[[], Awaitable[None]] | None = None,
        vacuum_every: int = 0,
    ) -> None:
        self._save = save
        self._transcoder = transcoder
        self._vacuum = vacuum
        self.vacuum_every = vacuum_every
        # stream -> (the aggregate, the version its last save committed, deferrals)
        self._pending: dict[UUID, tuple[Aggregate, int, int]] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.written = 0
        self.since_vacuum = 0

    def saved(self, aggregate: Aggregate, *, due: bool) -> None:
        """`aggregate` was just saved (committed at its version); ``due``: it crossed a
        snapshot threshold. A stream already waiting moves to this state either way."""
        if self._closed:
            return
        entry = self._pending.get(aggregate.id)
        if entry is None and not due:
            return
        self._pending[aggregate.id] = (aggregate, aggregate.version, 0)
        self._idle.clear()
        self._wake.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="snapshot-writer")

    def dropped(self, stream_id: UUID) -> None:
        """What was saved of this stream is no longer trusted (a lost race)."""
        self._pending.pop(stream_id, None)

    @property
    def waiting(self) -> int:
        return len(self._pending)

    async def flush(self) -> None:
        """Wait until every stream handed over is written (or dropped)."""
        while self._pending or not self._idle.is_set():
            self._wake.set()
            await self._idle.wait()
            if self._pending:
                await asyncio.sleep(0.01)  # entries deferred: their commands finish first

    async def close(self) -> None:
        """Write what waits (as far as it can), then stop."""
        try:
            await asyncio.wait_for(self.flush(), 10)
        except TimeoutError:
            log.warning("snapshots left unwritten at close", extra={"streams": self.waiting})
        self._closed = True
        self._pending.clear()
        if self._task is not None:
            await stop_task(self._task)
            self._task = None

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            deferred = 0
            for stream_id in list(self._pending):
                entry = self._pending.pop(stream_id, None)
                if entry is None:
                    continue
                aggregate, version, deferrals = entry
                if aggregate.version != version or aggregate.pending_events:
                    # Its command has it in hand: its save brings it back, current.
                    if deferrals < MAX_DEFERRALS and stream_id not in self._pending:
                        self._pending[stream_id] = (aggregate, version, deferrals + 1)
                        deferred += 1
                    continue
                captured = self._capture(aggregate)
                if captured is not None:
                    await self._write(captured)
                await asyncio.sleep(0)  # requests first: one snapshot at a time
            if self._pending and deferred == len(self._pending):
                self._idle.set()  # only deferred ones: nothing to do until a save
                await asyncio.sleep(0.01)
                self._wake.set()
            elif not self._pending:
                self._idle.set()
            else:
                self._wake.set()

    def _capture(self, aggregate: Aggregate) -> StoredSnapshot | None:
        try:
            snapshot = Snapshot.take(aggregate)
            state = self._transcoder.encode(snapshot.state)
        except Exception:
            log.warning("aggregate state not encodable", exc_info=True,
                        extra={"aggregate": type(aggregate).__name__})
            return None
        return StoredSnapshot(aggregate.id, aggregate.version, snapshot.topic, state,
                              snapshot.timestamp)

    async def _write(self, captured: StoredSnapshot) -> None:
        try:
            await self._save(captured)
        except Exception:  # a snapshot is only a cache
            log.warning("snapshot not saved", exc_info=True)
            return
        self.written += 1
        self.since_vacuum += 1
        if self._vacuum is not None and self.vacuum_every and (
                self.since_vacuum >= self.vacuum_every):
            self.since_vacuum = 0
            try:
                await self._vacuum()
            except Exception:
                log.warning("snapshots not vacuumed", exc_info=True)
