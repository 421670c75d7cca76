"""Verification of the hash chain over the event log (tamper evidence)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from midas.eventstore import codec


@dataclass(frozen=True)
class ChainReport:
    checked: int
    head_position: int
    head_hash: str
    first_broken_position: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.first_broken_position is None


async def verify_chain(
    conn: asyncpg.Connection,
    from_position: int = 1,
    to_position: int | None = None,
    *,
    page: int = 5000,
) -> ChainReport:
    """Recompute every hash from ``from_position``; report the first broken position."""
    previous = codec.GENESIS_HASH
    if from_position > 1:
        stored = await conn.fetchval(
            "SELECT hash FROM events WHERE position = $1", from_position - 1
        )
        if stored is None:
            return ChainReport(0, 0, "", from_position - 1, "event is missing")
        previous = bytes(stored)
    expected_position = from_position
    checked = 0
    while True:
        rows = await conn.fetch(
            "SELECT position, stream_id, version, type, data, metadata, recorded_at, hash"
            " FROM events WHERE position >= $1 AND ($2::bigint IS NULL OR position <= $2)"
            " ORDER BY position LIMIT $3",
            expected_position, to_position, page,
        )
        for row in rows:
            position = row["position"]
            if position != expected_position:
                return _broken(checked, previous, expected_position, "event is missing")
            computed = codec.event_hash(
                previous, position, row["stream_id"], row["version"], row["type"],
                codec.canonical(codec.decode(row["data"])),
                codec.canonical(codec.decode(row["metadata"])),
                row["recorded_at"],
            )
            if computed != bytes(row["hash"]):
                reason = "hash does not match the event's content or its predecessor"
                return _broken(checked, previous, position, reason)
            previous = computed
            checked += 1
            expected_position += 1
        if len(rows) < page:
            break
    if to_position is not None and expected_position <= to_position:
        return _broken(checked, previous, expected_position, "event is missing")
    return ChainReport(checked, expected_position - 1, previous.hex())


def _broken(checked: int, previous: bytes, position: int, reason: str) -> ChainReport:
    return ChainReport(checked, position - 1, previous.hex(), position, reason)
