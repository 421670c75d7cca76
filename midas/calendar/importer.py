"""External busy blocks in: parse an iCalendar document, expand its recurrences over a
horizon, and make the item's external blocks match it (added, moved, removed).

Block ids are deterministic (subscription + UID + occurrence start), so polling the same
document twice changes nothing. What a subscription produced last time is kept in
`cal_sub_blocks`, written in the same transaction as the item's Blocked / Unblocked events.
A block the item refuses (it overlaps a booking, maintenance or another block) is recorded
in `cal_conflicts` and logged as an alert; it never touches the booking, and it is retried
on every later sync (and resolved once it fits or disappears from the source).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4, uuid5
from zoneinfo import ZoneInfo

import recurring_ical_events
from icalendar import Calendar

from midas.calendar.feeds import local_midnight
from midas.domain.inventory import Item, Unavailable
from midas.eventstore import Database, Repository, Statement, retry_on_conflict
from midas.limits import storable_text
from midas.policy import location_zone

log = logging.getLogger(__name__)


class FeedError(Exception):
    """An external calendar could not be used; `kind` names why."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class BusyPeriod:
    uid: str
    start: datetime
    end: datetime
    summary: str = ""


@dataclass(frozen=True)
class SyncResult:
    added: int
    removed: int
    refused: int
    unchanged: int
    position: int


def parse_busy(
    data: bytes, *, now: datetime, horizon: timedelta, zone: ZoneInfo,
    max_occurrences: int = 5000,
) -> list[BusyPeriod]:
    """The opaque, not cancelled occurrences ending after `now` and starting before
    `now + horizon`. All-day dates and floating times are read in the item's zone."""
    if b"BEGIN:VCALENDAR" not in data[:4096].upper():
        raise FeedError("malformed", "not an iCalendar document (no BEGIN:VCALENDAR)")
    try:
        calendar = Calendar.from_ical(data)
        occurrences = recurring_ical_events.of(calendar).between(now, now + horizon)
    except Exception as exc:  # the library raises many kinds on bad input
        raise FeedError("malformed", f"cannot parse the calendar: {type(exc).__name__}") from None
    periods: list[BusyPeriod] = []
    for component in occurrences:
        if component.name != "VEVENT":
            continue
        if str(component.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT":
            continue
        if str(component.get("STATUS", "")).upper() == "CANCELLED":
            continue
        if component.get("DTSTART") is None:
            continue
        start_value = component["DTSTART"].dt
        end_value = component["DTEND"].dt if component.get("DTEND") is not None else None
        start = _instant(start_value, zone)
        if end_value is None:
            end = start + timedelta(days=1) if not isinstance(start_value, datetime) else start
        else:
            end = _instant(end_value, zone)
        if end <= start or end <= now:
            continue
        # Text from outside is kept, cleaned of what PostgreSQL cannot store.
        uid = storable_text(str(component.get("UID", ""))) or f"no-uid:{start.isoformat()}"
        summary = storable_text(str(component.get("SUMMARY", "")))[:200]
        periods.append(BusyPeriod(uid, start, end, summary))
        if len(periods) > max_occurrences:
            raise FeedError("too_large", f"more than {max_occurrences} busy occurrences")
    return periods


def _instant(value: date | datetime, zone: ZoneInfo) -> datetime:
    if not isinstance(value, datetime):
        return local_midnight(value, zone)
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


def block_id(subscription_id: UUID, period: BusyPeriod) -> UUID:
    return uuid5(subscription_id, f"{period.uid}|{period.start.astimezone(UTC).isoformat()}")


async def item_zone(repo: Repository, item: Item) -> ZoneInfo:
    """The time zone of the item's location, as the pricing policy in force has it."""
    return await location_zone(repo, item.location)


async def sync_blocks(
    repo: Repository, db: Database, *, subscription_id: UUID, item_id: UUID,
    periods: list[BusyPeriod], now: datetime, actor: str = "calendar-sync",
) -> SyncResult:
    """Make the item's blocks from this subscription match `periods`, atomically."""
    source = f"calendar:{subscription_id}"
    metadata = {"actor": actor, "actor_role": "system", "correlation_id": str(uuid4()),
                "causation_id": f"calendar-sync:{subscription_id}"}

    async def attempt() -> SyncResult:
        item = await repo.get(item_id, cls=Item)
        async with db.acquire() as conn:
            rows = await conn.fetch(
                "SELECT block_id, uid, starts_at, ends_at, state FROM cal_sub_blocks"
                " WHERE subscription_id = $1", subscription_id)
        current = {row["block_id"]: row for row in rows}
        desired: dict[UUID, BusyPeriod] = {}
        for period in periods:
            desired.setdefault(block_id(subscription_id, period), period)
        present = {o["id"] for o in item.occupations if o["kind"] == "external_block"}
        statements: list[Statement] = []
        added = removed = unchanged = 0
        refused: list[tuple[UUID, BusyPeriod, Unavailable]] = []
        for bid in current:
            if bid in desired:
                continue
            if str(bid) in present:
                item.unblock(bid)
                removed += 1
            statements.append(Statement(
                "DELETE FROM cal_sub_blocks WHERE subscription_id = $1 AND block_id = $2",
                (subscription_id, bid)))
            statements.append(_resolve(subscription_id, bid, now))
        for bid, period in desired.items():
            row = current.get(bid)
            same = row is not None and (row["starts_at"], row["ends_at"]) == (
                period.start, period.end)
            if same and row is not None and row["state"] == "active" and str(bid) in present:
                unchanged += 1
                continue
            if str(bid) in present:
                item.unblock(bid)  # moved: its end changed
                removed += 1
            try:
                item.block(bid, period.start, period.end, source)
            except Unavailable as exc:
                refused.append((bid, period, exc))
                statements.append(_remember(subscription_id, bid, period, "refused"))
                statements.append(_conflict(item_id, subscription_id, bid, period, exc, now))
                continue
            added += 1
            statements.append(_remember(subscription_id, bid, period, "active"))
            statements.append(_resolve(subscription_id, bid, now))
        if item.pending_events:
            result = await repo.save(item, metadata=metadata, statements=statements)
            position = result.last_position
        else:
            if statements:
                async with db.acquire() as conn, conn.transaction():
                    for statement in statements:
                        await conn.execute(statement.sql, *statement.args)
            position = 0
        for bid, period, refusal in refused:
            log.warning(
                "calendar block refused: it overlaps the item's occupations",
                extra={"alert": "calendar_conflict", "category": "integration",
                       "item_id": str(item_id), "subscription_id": str(subscription_id),
                       "block_id": str(bid), "start": period.start.isoformat(),
                       "conflicts": [str(o.id) for o in refusal.conflicts]})
        return SyncResult(added, removed, len(refused), unchanged, position)

    return await retry_on_conflict(attempt)


def _remember(subscription_id: UUID, bid: UUID, period: BusyPeriod, state: str) -> Statement:
    return Statement(
        "INSERT INTO cal_sub_blocks (subscription_id, block_id, uid, starts_at, ends_at, state)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (subscription_id, block_id) DO UPDATE"
        " SET uid = EXCLUDED.uid, starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at,"
        " state = EXCLUDED.state",
        (subscription_id, bid, period.uid, period.start, period.end, state))


def _resolve(subscription_id: UUID, bid: UUID, now: datetime) -> Statement:
    return Statement(
        "UPDATE cal_conflicts SET resolved_at = $3 WHERE subscription_id = $1"
        " AND block_id = $2 AND resolved_at IS NULL", (subscription_id, bid, now))


def _conflict(
    item_id: UUID, subscription_id: UUID, bid: UUID, period: BusyPeriod, exc: Unavailable,
    now: datetime,
) -> Statement:
    found: list[dict[str, Any]] = [
        {"kind": o.kind.value, "id": str(o.id), "start": o.interval.start.isoformat(),
         "end": o.interval.end.isoformat()} for o in exc.conflicts]
    return Statement(
        "INSERT INTO cal_conflicts (item_id, subscription_id, block_id, uid, starts_at, ends_at,"
        " summary, conflicts, detected_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9)"
        " ON CONFLICT (subscription_id, block_id, starts_at, ends_at) DO UPDATE"
        " SET conflicts = EXCLUDED.conflicts, resolved_at = NULL",
        (item_id, subscription_id, bid, period.uid, period.start, period.end, period.summary,
         json.dumps(found), now))
