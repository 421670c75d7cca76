"""Load and save eventsourcing aggregates through the async event store.

Event type names are ``Aggregate.Event`` (e.g. ``Item.Registered``), declared with their
payloads in ``midas.domain.*_events``. An event's data is its own attributes (and, for a
type above version 1, its version: ``midas.domain.events``); the library's bookkeeping
(id, version, timestamp, topic) lives in the stream id, the version and the metadata.
"""

from __future__ import annotations

import asyncio
import logging
import pickle  # the cache's copies: our own objects, never leaving the process
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple, Protocol, TypeVar, cast
from uuid import UUID

from eventsourcing.domain import Aggregate, CanMutateAggregate, CanMutateProtocol, Snapshot
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    UUIDAsHex,
)
from eventsourcing.utils import get_topic, resolve_topic

from midas.domain.events import VERSION_KEY, VERSIONED
from midas.eventstore.snapshots import SnapshotWriter
from midas.eventstore.store import (
    AppendResult,
    CacheStamp,
    ConcurrencyConflict,
    EventStorePort,
    NewEvent,
    RecordedEvent,
    Statement,
    StoredSnapshot,
    StreamAppend,
)
from midas.eventstore.turns import (
    DEFAULT_ATTEMPTS,
    AggregateLocks,
    command_attempt,
    current_attempt,
)

log = logging.getLogger(__name__)
A = TypeVar("A", bound=Aggregate)
T = TypeVar("T")



class _Cached(NamedTuple):
    """An aggregate's last known state in this process (``state`` None: known absent),
    and the store's cache stamp when it was known current."""

    version: int
    state: bytes | None
    stamp: CacheStamp | None

_BOOKKEEPING = ("originator_id", "originator_version", "timestamp", "originator_topic")


class AggregateNotFound(Exception):
    def __init__(self, aggregate_id: UUID) -> None:
        super().__init__(f"aggregate {aggregate_id} not found")
        self.aggregate_id = aggregate_id


class FieldCodec(Protocol):
    """Transforms event data on its way in and out (e.g. encrypting personal fields).

    ``seal`` may return statements to run in the append (a new key, say). Aggregates the
    codec calls ``personal`` are never snapshotted in the database (their state is clear).
    """

    async def seal(
        self, aggregate: Aggregate, events: Sequence[NewEvent]
    ) -> tuple[list[NewEvent], list[Statement]]: ...

    async def open(
        self, subject: UUID, events: Sequence[RecordedEvent]
    ) -> list[RecordedEvent]: ...

    def personal(self, aggregate: Aggregate) -> bool: ...


class EventTypes:
    """Maps stored type names to event classes, for the aggregates registered here."""

    def __init__(self, aggregates: Iterable[type[Aggregate]] = ()) -> None:
        self._classes: dict[str, tuple[type[Aggregate], type[Aggregate.Event]]] = {}
        for aggregate in aggregates:
            self.register(aggregate)

    def register(self, aggregate: type[Aggregate]) -> None:
        for attr in vars(aggregate).values():
            if isinstance(attr, type) and issubclass(attr, Aggregate.Event):
                if attr is aggregate.Event:
                    continue
                self._classes[type_name(aggregate, attr)] = (aggregate, attr)

    def names(self, aggregate: type[Aggregate]) -> list[str]:
        return [name for name, (agg, _) in self._classes.items() if agg is aggregate]

    def decode(self, recorded: RecordedEvent) -> Aggregate.Event:
        try:
            aggregate, event_class = self._classes[recorded.type]
        except KeyError:
            raise LookupError(f"unknown event type {recorded.type!r}") from None
        kwargs: dict[str, Any] = dict(recorded.data)
        kwargs.pop(VERSION_KEY, None)  # the data is at the current version (the store's read)
        occurred = recorded.metadata.get("occurred_at")
        kwargs.update(
            originator_id=recorded.stream_id,
            originator_version=recorded.version,
            timestamp=datetime.fromisoformat(occurred) if occurred else recorded.recorded_at,
        )
        if issubclass(event_class, Aggregate.Created):
            kwargs["originator_topic"] = get_topic(aggregate)
        return event_class(**kwargs)


def type_name(aggregate: type[Aggregate], event_class: type) -> str:
    return f"{aggregate.__name__}.{event_class.__name__}"


def encode_event(aggregate: Aggregate, event: CanMutateAggregate[Any]) -> NewEvent:
    name = type_name(type(aggregate), type(event))
    data = {k: v for k, v in vars(event).items() if k not in _BOOKKEEPING}
    if (versioned := VERSIONED.get(name)) is not None:
        data[VERSION_KEY] = versioned.version
    return NewEvent(
        type=name,
        data=data,
        metadata={"occurred_at": event.timestamp.isoformat()},
    )


def _snapshot_transcoder() -> JSONTranscoder:
    transcoder = JSONTranscoder()
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
        transcoder.register(transcoding)
    return transcoder


class Repository:
    """Aggregates in, aggregates out.

    Snapshots are stored every ``snapshot_every`` events, by a background writer
    (``midas.eventstore.snapshots``): never in the request that crosses the threshold,
    and only the newest state of a stream waiting its turn; ``close()`` writes what waits.
    Besides, the last saved state of
    up to ``cache_size`` aggregates is kept in memory: the ``live_size`` most recently
    saved as the objects themselves (handed over to a command that asks for one
    exclusively), the others as pickled copies (immutable bytes); each with the store's
    cache stamp when it was known current. While no other writer has appended to its
    stream since, a load uses it without a query; otherwise it reads the events after
    it, usually none. The log stays the truth: every save is checked against it by
    expected version, and a save that loses evicts what it was based on, so the retry
    reads the log.

    Within ``retry_on_conflict``, an exclusive load first takes the aggregate's lock in
    this process (``midas.eventstore.turns``): commands on one aggregate take turns here
    instead of losing version races to each other. ``conflict_attempts`` is how many
    times such a command runs before a lost race is refused.
    """

    def __init__(
        self,
        store: EventStorePort,
        types: EventTypes,
        *,
        snapshot_every: int = 50,
        cache_size: int = 10_000,
        live_size: int = 1_000,
        field_codec: FieldCodec | None = None,
        conflict_attempts: int = DEFAULT_ATTEMPTS,
        lock_wait_s: float = 5.0,
        snapshot_vacuum_every: int = 0,
    ) -> None:
        self.store = store
        self.conflict_attempts = conflict_attempts
        self.locks = AggregateLocks(lock_wait_s)
        self.field_codec = field_codec
        self.types = types
        self.snapshot_every = snapshot_every
        self._transcoder = _snapshot_transcoder()
        self.snapshots = SnapshotWriter(
            store.save_snapshot, self._transcoder,
            vacuum=getattr(store, "vacuum_snapshots", None),
            vacuum_every=snapshot_vacuum_every)
        self._cache: OrderedDict[UUID, _Cached] = OrderedDict()
        self._cache_size = cache_size
        # Saved aggregates as they are, until a command takes one (get(exclusive=True)) or
        # they cool down (then pickled into _cache): a busy item is never copied.
        self._live: OrderedDict[UUID, tuple[Aggregate, CacheStamp | None]] = OrderedDict()
        self._live_size = min(live_size, cache_size)

    async def get(
        self, aggregate_id: UUID, *, cls: type[A] | None = None, exclusive: bool = False
    ) -> A:
        """The aggregate, current. ``exclusive``: the caller is a command that will change
        and save it, so the object last saved may be handed over instead of a copy (it
        returns to the cache with the save; a command that fails drops it). Inside
        ``retry_on_conflict`` it also waits for this process's other commands on the
        aggregate to finish, and holds them off until this attempt ends."""
        if exclusive and (attempt := current_attempt()) is not None:
            await attempt.take(self.locks, aggregate_id)
        stamp = self.store.cache_stamp()
        aggregate, cached, handed_over = self._take_live(aggregate_id, exclusive)
        if aggregate is None and cached is None:
            cached = self._cache.get(aggregate_id)
            if cached is not None:
                aggregate = pickle.loads(cached.state) if cached.state is not None else None
            else:
                stored = await self.store.load_snapshot(aggregate_id)
                aggregate = self._restore(stored) if stored is not None else None
        if cached is not None and self.store.unchanged_since(aggregate_id, cached.stamp):
            events: list[RecordedEvent] = []  # nobody else has appended since
        else:
            from_version = aggregate.version + 1 if aggregate is not None else 1
            events = await self.store.read_stream(aggregate_id, from_version)
        if self.field_codec is not None and events:
            events = await self.field_codec.open(aggregate_id, events)
        for recorded in events:
            event: CanMutateProtocol[Any] = self.types.decode(recorded)
            aggregate = event.mutate(aggregate)
        if aggregate is None:
            self._put(aggregate_id, _Cached(0, None, stamp))  # known absent
            raise AggregateNotFound(aggregate_id)
        if handed_over:
            pass  # it comes back with the caller's save
        elif events or cached is None:
            self._remember(aggregate, stamp)
        elif cached.stamp != stamp:
            self._put(aggregate_id, cached._replace(stamp=stamp))
        if cls is not None and not isinstance(aggregate, cls):
            raise AggregateNotFound(aggregate_id)
        found: A = aggregate
        return found

    def known_version(self, aggregate_id: UUID) -> int | None:
        """The version of the aggregate this process holds, when it is known current (0:
        known absent), without loading it: a reader that keeps what it built from a
        version asks this before `get`. None: unknown here, or maybe stale (then `get`)."""
        live = self._live.get(aggregate_id)
        if live is not None:
            aggregate, stamp = live
            if aggregate.pending_events or not self.store.unchanged_since(aggregate_id, stamp):
                return None
            return int(aggregate.version)
        cached = self._cache.get(aggregate_id)
        if cached is None or not self.store.unchanged_since(aggregate_id, cached.stamp):
            return None
        return cached.version

    def _take_live(
        self, aggregate_id: UUID, exclusive: bool
    ) -> tuple[Any, _Cached | None, bool]:
        """(aggregate, its cache entry, handed over) from the live tier, if it is there."""
        live = self._live.pop(aggregate_id, None)
        if live is None:
            return None, None, False
        aggregate, known = live
        if aggregate.pending_events:  # changed after its save and never saved: stale
            return None, None, False
        entry = _Cached(aggregate.version, None, known)
        if exclusive:
            return aggregate, entry, True
        self._remember(aggregate, known)  # others may hold it no more: a copy from now on
        cached = self._cache.get(aggregate_id)
        if cached is None or cached.state is None:
            return None, None, False
        return pickle.loads(cached.state), cached, False

    async def save(
        self,
        *aggregates: Aggregate,
        metadata: Mapping[str, Any] | None = None,
        statements: Sequence[Statement] = (),
    ) -> AppendResult:
        """Append every aggregate's pending events in one atomic append."""
        streams, saved = [], []
        statements = list(statements)
        for aggregate in aggregates:
            pending = aggregate.collect_events()
            if not pending:
                continue
            saved.append(aggregate)
            encoded = [encode_event(aggregate, event) for event in pending]
            if self.field_codec is not None:
                encoded, extra = await self.field_codec.seal(aggregate, encoded)
                statements.extend(extra)
            streams.append(
                StreamAppend(
                    stream_id=aggregate.id,
                    expected_version=pending[0].originator_version - 1,
                    events=encoded,
                )
            )
        if (attempt := current_attempt()) is not None:
            attempt.attempts = self.conflict_attempts
        stamp = self.store.cache_stamp()
        try:
            result = await self.store.append(streams, metadata, statements=statements)
        except ConcurrencyConflict:
            for stream in streams:  # what the losing decision was based on is stale
                self._cache.pop(stream.stream_id, None)
                self._live.pop(stream.stream_id, None)
                self.snapshots.dropped(stream.stream_id)
            raise
        for stream, aggregate in zip(streams, saved, strict=True):
            self._keep_live(aggregate, stamp)
            personal = self.field_codec is not None and self.field_codec.personal(aggregate)
            if not personal:
                self.snapshots.saved(aggregate, due=self._crosses_snapshot(stream))
        return result

    async def close(self) -> None:
        """Write the snapshots that wait, and stop the writer."""
        await self.snapshots.close()

    def _crosses_snapshot(self, stream: StreamAppend) -> bool:
        after = stream.expected_version + len(stream.events)
        return after // self.snapshot_every != stream.expected_version // self.snapshot_every

    def _keep_live(self, aggregate: Aggregate, stamp: CacheStamp | None) -> None:
        if self._live_size <= 0:
            self._remember(aggregate, stamp)
            return
        self._cache.pop(aggregate.id, None)  # an older version
        self._live[aggregate.id] = (aggregate, stamp)
        self._live.move_to_end(aggregate.id)
        while len(self._live) > self._live_size:
            _, (cooled, known) = self._live.popitem(last=False)
            if not cooled.pending_events:
                self._remember(cooled, known)

    def _remember(self, aggregate: Aggregate, stamp: CacheStamp | None) -> None:
        current = self._cache.get(aggregate.id)
        if current is not None and current.version > aggregate.version:
            return
        try:
            # Pickled, not JSON: this copy never leaves the process and loads 3x faster.
            state = pickle.dumps(aggregate, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:
            log.warning("aggregate state not cacheable", exc_info=True,
                        extra={"aggregate": type(aggregate).__name__})
            return
        self._put(aggregate.id, _Cached(aggregate.version, state, stamp))

    def _put(self, aggregate_id: UUID, entry: _Cached) -> None:
        if self._cache_size <= 0:
            return
        self._cache[aggregate_id] = entry
        self._cache.move_to_end(aggregate_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _restore(self, stored: StoredSnapshot) -> Aggregate:
        resolve_topic(stored.topic)  # fail loudly if the class is gone
        snapshot = Snapshot(
            originator_id=stored.stream_id,
            originator_version=stored.version,
            timestamp=stored.taken_at,
            topic=stored.topic,
            state=self._transcoder.decode(stored.state),
        )
        return cast(Aggregate, snapshot.mutate(None))  # the topic names an Aggregate class


async def retry_on_conflict(
    handler: Callable[[], Awaitable[T]], *, attempts: int | None = None,
    base_delay_s: float = 0.002,
) -> T:
    """Run ``handler`` again on fresh state while it loses a version race (bounded:
    ``attempts``, else the repository's ``conflict_attempts``).

    Each run is one command attempt (``midas.eventstore.turns``): the aggregates it loads
    exclusively are its own in this process until it ends, so the races it can still
    lose are against other processes. The back-off between runs holds no lock."""
    run = 0
    while True:
        run += 1
        with command_attempt() as attempt:
            try:
                return await handler()
            except ConcurrencyConflict:
                if run >= (attempts or attempt.attempts):
                    raise
        await asyncio.sleep(random.uniform(0, base_delay_s * 2**run))
