"""Projections failing on an event, and the events operators had them skip.

``projection_failures`` holds one row per failing projection: the position of the event
it fails on, the error (its type and a scrubbed message: never a data value such as an
email, a token or a card number), how many attempts, and when the runner tries again.
``projection_skips`` is the operator's repair: events one projection passes over, with
who, when and why. Neither edits the log, so its hash chain stays verifiable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from midas.error_reports import REDACTED, scrub_text
from midas.limits import refused_character

MAX_ERROR = 300  # characters of an error message kept
MAX_REASON = 500
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


@dataclass(frozen=True)
class ProjectionFailure:
    """A projection failing on the event at ``position``."""

    name: str
    position: int
    error: str
    attempts: int
    since: datetime
    next_retry_at: datetime


class SkipRefused(ValueError):
    """The event cannot be skipped for that projection (named in the message)."""


def describe_error(exc: BaseException) -> str:
    """The exception's type (and SQLSTATE) with the first line of its message, scrubbed
    of secrets and emails: what an operator needs, never the data that caused it."""
    name = type(exc).__name__
    sqlstate = getattr(exc, "sqlstate", None)
    lines = str(exc).splitlines()
    message = scrub_text(_EMAIL.sub(REDACTED, lines[0] if lines else ""))[:MAX_ERROR]
    label = f"{name} [{sqlstate}]" if isinstance(sqlstate, str) else name
    return f"{label}: {message}" if message else label


_NEXT_EVENT_SQL = (
    "SELECT e.position FROM events e WHERE e.position > coalesce((SELECT position FROM"
    " projection_checkpoints WHERE name = $1), 0) AND e.type = ANY($2::text[])"
    " AND NOT EXISTS (SELECT 1 FROM projection_skips s WHERE s.name = $1"
    " AND s.position = e.position) ORDER BY e.position LIMIT 1"
)


async def failing_position(
    conn: asyncpg.Connection, name: str, handles: Iterable[str]
) -> int | None:
    """The next event the projection would apply: the one it fails on, once every
    event before it has been applied."""
    return await conn.fetchval(_NEXT_EVENT_SQL, name, sorted(handles))


_RECORD_SQL = (
    "INSERT INTO projection_failures AS f (name, position, error) VALUES ($1, $2, $3)"
    " ON CONFLICT (name) DO UPDATE SET"
    " attempts = CASE WHEN f.position = EXCLUDED.position THEN f.attempts + 1 ELSE 1 END,"
    " first_failed_at = CASE WHEN f.position = EXCLUDED.position THEN f.first_failed_at"
    " ELSE now() END, position = EXCLUDED.position, error = EXCLUDED.error,"
    " last_failed_at = now() RETURNING attempts"
)
_RETRY_SQL = (
    "UPDATE projection_failures SET next_retry_at = now() + make_interval(secs => $2)"
    " WHERE name = $1 RETURNING name, position, error, attempts, first_failed_at,"
    " next_retry_at"
)


async def record_failure(
    conn: asyncpg.Connection, name: str, position: int, error: str, delay_s: Callable[[int], float],
) -> ProjectionFailure:
    """Count one more failed attempt at ``position`` (the first if it failed elsewhere
    before) and set the next retry ``delay_s(attempts)`` seconds from now."""
    async with conn.transaction():
        attempts = await conn.fetchval(_RECORD_SQL, name, position, error)
        row = await conn.fetchrow(_RETRY_SQL, name, float(delay_s(attempts)))
    return _failure(row)


async def clear_failure(conn: asyncpg.Connection, name: str) -> bool:
    """The projection got past the event: its row goes; whether there was one."""
    return await conn.fetchval(
        "WITH gone AS (DELETE FROM projection_failures WHERE name = $1 RETURNING 1)"
        " SELECT count(*) > 0 FROM gone", name)


async def load_failures(
    conn: asyncpg.Connection, names: Sequence[str]
) -> dict[str, ProjectionFailure]:
    rows = await conn.fetch(
        "SELECT name, position, error, attempts, first_failed_at, next_retry_at"
        " FROM projection_failures WHERE name = ANY($1::text[])", list(names))
    return {row["name"]: _failure(row) for row in rows}


async def retry_delays(conn: asyncpg.Connection, names: Sequence[str]) -> dict[str, float]:
    """Seconds until each failing projection's next retry (0: due), as recorded: an
    operator's skip makes it due at once."""
    rows = await conn.fetch(
        "SELECT name, greatest(extract(epoch FROM next_retry_at - now()), 0)::float8 AS wait"
        " FROM projection_failures WHERE name = ANY($1::text[])", list(names))
    return {row["name"]: row["wait"] for row in rows}


def _failure(row: asyncpg.Record) -> ProjectionFailure:
    return ProjectionFailure(row["name"], row["position"], row["error"], row["attempts"],
                             row["first_failed_at"], row["next_retry_at"])


async def skip_event(
    conn: asyncpg.Connection, name: str, handles: Iterable[str], position: int,
    *, reason: str, actor: str,
) -> None:
    """Record that projection ``name`` passes over the event at ``position`` and retry
    it at once. Refused unless the event exists, is one the projection handles and is
    still ahead of it, and the reason is one line of text."""
    if not reason.strip() or len(reason) > MAX_REASON or refused_character(reason):
        raise SkipRefused(f"give a reason: one line of at most {MAX_REASON} characters")
    async with conn.transaction():
        checkpoint = await conn.fetchval(
            "SELECT position FROM projection_checkpoints WHERE name = $1 FOR UPDATE", name)
        event_type = await conn.fetchval("SELECT type FROM events WHERE position = $1",
                                         position)
        if event_type is None or event_type not in set(handles):
            raise SkipRefused(f"{name} has no event at position {position} to skip")
        if checkpoint is not None and position <= checkpoint:
            raise SkipRefused(f"{name} is past position {position} already")
        inserted = await conn.fetchval(
            "INSERT INTO projection_skips (name, position, reason, skipped_by)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING true",
            name, position, reason, actor)
        if not inserted:
            raise SkipRefused(f"{name} skips position {position} already")
        await conn.execute(
            "UPDATE projection_failures SET next_retry_at = now() WHERE name = $1", name)


async def skipped_positions(conn: asyncpg.Connection, name: str) -> frozenset[int]:
    rows = await conn.fetch("SELECT position FROM projection_skips WHERE name = $1", name)
    return frozenset(row["position"] for row in rows)
