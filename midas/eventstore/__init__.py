"""The async event store on asyncpg: appends, reads, subscriptions, snapshots, chain."""

from midas.eventstore.database import Database
from midas.eventstore.outages import DatabaseUnavailable, is_unavailable
from midas.eventstore.repository import (
    AggregateNotFound,
    EventTypes,
    Repository,
    retry_on_conflict,
)
from midas.eventstore.store import (
    AppendResult,
    ConcurrencyConflict,
    EventStore,
    NewEvent,
    RecordedEvent,
    Statement,
    StoreClosed,
    StreamAppend,
    with_statements,
)

__all__ = [
    "AggregateNotFound",
    "AppendResult",
    "ConcurrencyConflict",
    "Database",
    "DatabaseUnavailable",
    "EventStore",
    "EventTypes",
    "NewEvent",
    "RecordedEvent",
    "Repository",
    "Statement",
    "StoreClosed",
    "StreamAppend",
    "is_unavailable",
    "retry_on_conflict",
    "with_statements",
]
