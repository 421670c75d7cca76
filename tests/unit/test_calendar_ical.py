"""Calendar sync, pure parts: parsing external calendars, rendering feeds, tokens."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from midas.calendar.feeds import (
    etag_matches,
    etag_of,
    new_token,
    render,
    token_hash,
    token_matches,
)
from midas.calendar.importer import BusyPeriod, FeedError, block_id, parse_busy

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
LA = ZoneInfo("America/Los_Angeles")
DUBAI = ZoneInfo("Asia/Dubai")


def _cal(*events: str) -> bytes:
    body = "".join(f"BEGIN:VEVENT\r\nDTSTAMP:20261101T000000Z\r\n{e}END:VEVENT\r\n"
                   for e in events)
    head = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\n"
    return f"{head}{body}END:VCALENDAR\r\n".encode()


def _parse(data: bytes, zone: ZoneInfo = LA, **kw: object) -> list[BusyPeriod]:
    return parse_busy(data, now=NOW, horizon=timedelta(days=180), zone=zone, **kw)  # type: ignore[arg-type]


def test_all_day_events_are_local_days_of_the_item() -> None:
    [period] = _parse(_cal("UID:a\r\nDTSTART;VALUE=DATE:20261120\r\n"
                           "DTEND;VALUE=DATE:20261122\r\n"))
    assert period.start == datetime(2026, 11, 20, 8, tzinfo=UTC)  # midnight in LA (PST)
    assert period.end == datetime(2026, 11, 22, 8, tzinfo=UTC)
    [single] = _parse(_cal("UID:b\r\nDTSTART;VALUE=DATE:20261120\r\n"), zone=DUBAI)
    assert (single.start, single.end) == (datetime(2026, 11, 19, 20, tzinfo=UTC),
                                          datetime(2026, 11, 20, 20, tzinfo=UTC))


def test_floating_and_zoned_times() -> None:
    periods = _parse(_cal(
        "UID:f\r\nDTSTART:20261110T090000\r\nDTEND:20261110T100000\r\n",
        "UID:z\r\nDTSTART;TZID=Europe/Paris:20261110T090000\r\n"
        "DTEND;TZID=Europe/Paris:20261110T100000\r\n"))
    by_uid = {p.uid: p for p in periods}
    assert by_uid["f"].start == datetime(2026, 11, 10, 17, tzinfo=UTC)
    assert by_uid["z"].start == datetime(2026, 11, 10, 8, tzinfo=UTC)


def test_recurrence_exceptions_transparent_cancelled_and_past_are_handled() -> None:
    periods = _parse(_cal(
        "UID:w\r\nDTSTART:20261020T100000Z\r\nDTEND:20261020T120000Z\r\n"
        "RRULE:FREQ=WEEKLY;UNTIL=20261201T000000Z\r\nEXDATE:20261117T100000Z\r\n",
        "UID:t\r\nDTSTART:20261110T100000Z\r\nDTEND:20261110T120000Z\r\nTRANSP:TRANSPARENT\r\n",
        "UID:c\r\nDTSTART:20261110T100000Z\r\nDTEND:20261110T120000Z\r\nSTATUS:CANCELLED\r\n",
        "UID:p\r\nDTSTART:20261001T100000Z\r\nDTEND:20261001T120000Z\r\n"))
    starts = sorted(p.start.day for p in periods if p.uid == "w")
    assert starts == [3, 10, 24]  # Oct 20/27 are past, Nov 17 excluded
    assert {p.uid for p in periods} == {"w"}


def test_block_ids_are_deterministic() -> None:
    sub = uuid4()
    a = BusyPeriod("u", NOW, NOW + timedelta(hours=1))
    assert block_id(sub, a) == block_id(sub, BusyPeriod("u", NOW, NOW + timedelta(hours=2)))
    assert block_id(sub, a) != block_id(uuid4(), a)
    assert block_id(sub, a) != block_id(sub, BusyPeriod("u", NOW + timedelta(days=7),
                                                         NOW + timedelta(days=7, hours=1)))


@pytest.mark.parametrize("data", [b"", b"hello", b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\n"
                                  b"DTSTART:nonsense\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"])
def test_malformed_documents_raise(data: bytes) -> None:
    with pytest.raises(FeedError) as raised:
        _parse(data)
    assert raised.value.kind == "malformed"


def test_too_many_occurrences_raise() -> None:
    data = _cal("UID:d\r\nDTSTART:20261102T100000Z\r\nDTEND:20261102T110000Z\r\n"
                "RRULE:FREQ=DAILY\r\n")
    with pytest.raises(FeedError) as raised:
        _parse(data, max_occurrences=50)
    assert raised.value.kind == "too_large"


def _row(entry_id: str, kind: str, start: datetime, end: datetime, **extra: object) -> dict:
    return {"entry_id": entry_id, "item_id": "i", "kind": kind, "booking_id": extra.get(
        "booking_id"), "status": extra.get("status", "busy"), "starts_at": start,
        "ends_at": end, "note": "", "sequence": extra.get("sequence", 0), "updated_at": NOW}


def test_render_all_day_exclusive_end_and_utc_times() -> None:
    midnight = datetime(2026, 11, 20, tzinfo=LA)
    rows = [
        _row("block-1", "external_block", midnight, midnight + timedelta(days=2)),
        _row("block-2", "external_block", midnight + timedelta(hours=3),
             midnight + timedelta(days=1)),
        _row("booking-3", "booking", midnight, midnight + timedelta(days=1),
             booking_id="3", status="cancelled", sequence=4),
    ]
    cal = Calendar.from_ical(render("x", rows, {"i": LA}))
    events = {str(e["UID"]): e for e in cal.walk("VEVENT")}
    assert events["block-1@midas"]["DTSTART"].dt == date(2026, 11, 20)
    assert events["block-1@midas"]["DTEND"].dt == date(2026, 11, 22)
    assert events["block-2@midas"]["DTSTART"].dt == datetime(2026, 11, 20, 11, tzinfo=UTC)
    booking = events["booking-3@midas"]
    assert booking["DTSTART"].dt == datetime(2026, 11, 20, 8, tzinfo=UTC)  # never all-day
    assert (str(booking["STATUS"]), int(booking["SEQUENCE"])) == ("CANCELLED", 4)


def test_tokens_and_etags() -> None:
    token = new_token()
    assert len(token) >= 40 and token_matches(token, token_hash(token))
    assert not token_matches(token + "x", token_hash(token))
    assert not token_matches(None, token_hash(token)) and not token_matches(token, None)
    tag = etag_of(b"body")
    assert etag_matches(tag, tag) and etag_matches(f'"a", W/{tag}', tag)
    assert etag_matches("*", tag) and not etag_matches('"a"', tag)
    assert not etag_matches(None, tag)
