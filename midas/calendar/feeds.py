"""iCalendar (RFC 5545) feeds from calendar entries, and secret feed tokens.

Rules (see docs/calendar.md): UID stable per entry (`booking-<id>@midas`), DTSTAMP the
time of the entry's last change, SEQUENCE raised on every change, times in UTC; bookings
are TENTATIVE while held, CONFIRMED once paid, CANCELLED when cancelled or expired; buffers,
maintenance and external blocks are their own events on item (staff) feeds; an entry whose
start and end fall on local midnight of the item's time zone is an all-day event with an
exclusive DTEND (the day after its last day).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event

PRODID = "-//Midas//Calendar sync//EN"

_BOOKING_STATUS = {
    "held": "TENTATIVE", "confirmed": "CONFIRMED", "active": "CONFIRMED",
    "completed": "CONFIRMED", "cancelled": "CANCELLED", "expired": "CANCELLED",
}
_TITLES = {"buffer": "Buffer", "maintenance": "Maintenance", "external_block": "Busy"}


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def token_matches(token: str | None, stored: bytes | None) -> bool:
    if not token or stored is None:
        return False
    return hmac.compare_digest(token_hash(token), bytes(stored))


def uid_of(entry_id: str) -> str:
    return f"{entry_id}@midas"


def render(
    name: str, entries: Iterable[Mapping[str, Any]], zones: Mapping[Any, ZoneInfo] | None = None,
) -> bytes:
    """The calendar of `entries` (rows of cal_entries); `zones` maps item ids to their zone
    (for all-day events)."""
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", name)
    for row in entries:
        cal.add_component(_event(row, (zones or {}).get(row["item_id"])))
    return cal.to_ical()


def _event(row: Mapping[str, Any], zone: ZoneInfo | None) -> Event:
    kind, status = row["kind"], row["status"]
    ev = Event()
    ev.add("uid", uid_of(row["entry_id"]))
    ev.add("dtstamp", _utc(row["updated_at"]))
    ev.add("sequence", int(row["sequence"]))
    day_span = _all_day(row["starts_at"], row["ends_at"], zone) if kind != "booking" else None
    if day_span is not None:
        ev.add("dtstart", day_span[0])
        ev.add("dtend", day_span[1])  # exclusive: the day after the last day
    else:
        ev.add("dtstart", _utc(row["starts_at"]))
        ev.add("dtend", _utc(row["ends_at"]))
    if kind == "booking":
        short = str(row["booking_id"])[:8]
        ev.add("summary", f"Booking {short} ({status})")
        ev.add("status", _BOOKING_STATUS.get(status, "CONFIRMED"))
        cancelled = status in ("cancelled", "expired")
    else:
        note = row.get("note") or ""
        title = _TITLES.get(kind, kind)
        ev.add("summary", f"{title}: {note}" if note and kind == "maintenance" else title)
        cancelled = status == "removed"
        ev.add("status", "CANCELLED" if cancelled else "CONFIRMED")
        ev.add("categories", [kind.upper()])
    ev.add("transp", "TRANSPARENT" if cancelled else "OPAQUE")
    return ev


def _utc(instant: datetime) -> datetime:
    return instant.astimezone(UTC)


def _all_day(start: datetime, end: datetime, zone: ZoneInfo | None) -> tuple[Any, Any] | None:
    if zone is None:
        return None
    local_start, local_end = start.astimezone(zone), end.astimezone(zone)
    if local_start.timetz().replace(tzinfo=None) != time(0) or (
            local_end.timetz().replace(tzinfo=None) != time(0)):
        return None
    if local_end.date() <= local_start.date():
        return None
    return local_start.date(), local_end.date()


def local_midnight(day: Any, zone: ZoneInfo) -> datetime:
    """The instant a local date begins in `zone` (all-day events imported)."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    candidates = [c.strip().removeprefix("W/") for c in header.split(",")]
    return etag in candidates


DAY = timedelta(days=1)
