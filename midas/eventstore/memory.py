"""An in-memory event store with the same contract, for unit tests of command handlers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from midas.domain.events import upcast
from midas.eventstore import codec
from midas.eventstore.store import (
    AppendResult,
    CacheStamp,
    ConcurrencyConflict,
    RecordedEvent,
    Statement,
    StoredSnapshot,
    StreamAppend,
)


class InMemoryEventStore:
    """Same versioning, atomicity and plain-data rules as EventStore; no chain, no SQL."""

    def __init__(self) -> None:
        self.events: list[RecordedEvent] = []
        self.snapshots: dict[UUID, StoredSnapshot] = {}
        self.statements: list[Statement] = []

    async def append(
        self,
        streams: Sequence[StreamAppend],
        metadata: Mapping[str, Any] | None = None,
        *,
        statements: Sequence[Statement] = (),
    ) -> AppendResult:
        versions = {s.stream_id: self._version(s.stream_id) for s in streams}
        conflicts = {
            s.stream_id: (s.expected_version, versions[s.stream_id])
            for s in streams
            if versions[s.stream_id] != s.expected_version
        }
        if conflicts:
            raise ConcurrencyConflict(conflicts)
        now, positions = datetime.now(UTC), []
        for stream in streams:
            for offset, event in enumerate(stream.events, start=1):
                data = codec.decode(codec.encode(event.data))  # same plain-data rule
                meta = codec.decode(codec.encode({**(metadata or {}), **event.metadata}))
                position = len(self.events) + 1
                self.events.append(RecordedEvent(
                    position, stream.stream_id, stream.expected_version + offset, event.type,
                    data, meta, now, b""))
                positions.append(position)
        self.statements.extend(statements)
        return AppendResult(positions)

    async def read_stream(
        self, stream_id: UUID, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        return [
            e._replace(data=upcast(e.type, e.data)) for e in self.events
            if e.stream_id == stream_id and e.version >= from_version
            and (to_version is None or e.version <= to_version)
        ]

    async def save_snapshot(self, snapshot: StoredSnapshot) -> None:
        current = self.snapshots.get(snapshot.stream_id)
        if current is None or current.version < snapshot.version:
            self.snapshots[snapshot.stream_id] = snapshot

    async def load_snapshot(self, stream_id: UUID) -> StoredSnapshot | None:
        return self.snapshots.get(stream_id)

    def cache_stamp(self) -> CacheStamp | None:
        return None  # repositories sharing this store would not see each other's appends

    def unchanged_since(self, stream_id: UUID, stamp: CacheStamp | None) -> bool:
        return False

    def _version(self, stream_id: UUID) -> int:
        return sum(1 for e in self.events if e.stream_id == stream_id)

    def types(self) -> list[str]:
        return [e.type for e in self.events]
