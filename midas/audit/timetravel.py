"""An aggregate as of a version or an instant: its stream replayed up to there."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

import asyncpg

from midas.eventstore.repository import EventTypes
from midas.eventstore.store import RecordedEvent

_COLUMNS = "position, stream_id, version, type, data, metadata, recorded_at, hash"


class NothingThen(LookupError):
    """The stream has no event at or before the requested point."""


async def aggregate_as_of(
    conn: asyncpg.Connection, types: EventTypes, stream_id: UUID,
    *, version: int | None = None, at: datetime | None = None,
) -> dict[str, Any]:
    """Replay the stream up to ``version`` and/or ``recorded_at <= at``; public state."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM events WHERE stream_id = $1"
        " AND ($2::int IS NULL OR version <= $2)"
        " AND ($3::timestamptz IS NULL OR recorded_at <= $3) ORDER BY version",
        stream_id, version, at,
    )
    if not rows:
        raise NothingThen(f"stream {stream_id} has no event then")
    aggregate: Any = None
    for row in rows:
        aggregate = types.decode(RecordedEvent.from_row(row)).mutate(aggregate)
    last = rows[-1]
    return {
        "stream_id": str(stream_id),
        "type": type(aggregate).__name__,
        "version": last["version"],
        "position": last["position"],
        "recorded_at": last["recorded_at"].isoformat(),
        "state": public_state(aggregate),
    }


def public_state(aggregate: Any) -> dict[str, Any]:
    state = {"id": aggregate.id, "created_on": aggregate.created_on,
             "modified_on": aggregate.modified_on}
    state.update({k: v for k, v in vars(aggregate).items() if not k.startswith("_")})
    return {k: plain(v) for k, v in state.items()}


def plain(value: Any) -> Any:
    """JSON-friendly copy of an attribute value."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Enum):
        return plain(value.value)
    if isinstance(value, UUID | Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(dataclasses.asdict(value))
    if hasattr(value, "to_dict"):
        return plain(value.to_dict())
    return str(value)
