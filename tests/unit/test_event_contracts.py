"""Event contracts: every recorded event type is declared once, with the fields the
aggregate records, and an older version reads as the current one."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from pathlib import Path

import pytest
from eventsourcing.domain import Aggregate

from midas.domain.booking_events import BOOKING_CONFIRMED, STATUS_AFTER
from midas.domain.events import VERSION_KEY, EventType, declared, upcast
from midas.domain.lifecycle import BookingState
from midas.domain.registry import AGGREGATES
from midas.eventstore.repository import EventTypes, encode_event
from midas.eventstore.store import RecordedEvent

_BOOKKEEPING = {"self", "originator_id", "originator_version", "timestamp",
                "originator_topic"}


def _recorded_event_classes() -> dict[str, type[Aggregate.Event]]:
    """Stored name -> the event class each aggregate records (not the library's default
    ``Created``, unused where ``__init__`` names its own creation event)."""
    found = {}
    for aggregate in AGGREGATES:
        classes = {name: attr for name, attr in vars(aggregate).items()
                   if isinstance(attr, type) and issubclass(attr, Aggregate.Event)
                   and attr is not aggregate.Event}
        creations = [n for n, c in classes.items() if issubclass(c, Aggregate.Created)]
        if len(creations) > 1:
            classes.pop("Created")
        found.update({f"{aggregate.__name__}.{n}": c for n, c in classes.items()})
    return found


def test_every_recorded_event_type_is_declared_with_the_fields_it_records() -> None:
    classes = _recorded_event_classes()
    assert set(classes) == set(declared()), "declare each event type once, and only those"
    for name, event_class in classes.items():
        fields = [p for p in inspect.signature(event_class.__init__).parameters
                  if p not in _BOOKKEEPING]
        assert set(fields) == set(declared()[name].payload.__annotations__), name


def test_an_event_type_is_a_string_of_aggregate_and_event() -> None:
    assert BOOKING_CONFIRMED == "Booking.Confirmed"
    assert (BOOKING_CONFIRMED.aggregate_name, BOOKING_CONFIRMED.event_name) == (
        "Booking", "Confirmed")
    assert {BOOKING_CONFIRMED: 1}["Booking.Confirmed"] == 1  # a dict key like its name
    with pytest.raises(ValueError, match="declared twice"):
        EventType("Booking.Confirmed", dict)
    with pytest.raises(ValueError, match=r"Aggregate\.Event"):
        EventType("Confirmed", dict)


def test_the_status_map_names_the_lifecycle_states() -> None:
    assert set(STATUS_AFTER.values()) == {s.value for s in BookingState} - {"held"}
    assert all(t in declared() for t in STATUS_AFTER)


def test_a_version_1_confirmation_reads_as_version_2() -> None:
    assert BOOKING_CONFIRMED.version == 2
    old = {"at": "2026-05-01T10:00:00+00:00", "amount_paid": 100, "start": "x"}
    late = {**old, "late": True}
    assert upcast("Booking.Confirmed", old) == {**old, "reinstated": False, VERSION_KEY: 2}
    assert upcast("Booking.Confirmed", late) == {**old, "reinstated": True, VERSION_KEY: 2}
    assert late == {**old, "late": True}  # the recorded data is left as it was
    current = {**old, "reinstated": True, VERSION_KEY: 2}
    assert upcast("Booking.Confirmed", current) is current
    newer = {"something": "else", VERSION_KEY: 3}  # a later release's: left as recorded
    assert upcast("Booking.Confirmed", newer) is newer
    held = {"item_id": "x"}
    assert upcast("Booking.Held", held) is held


def test_a_confirmation_records_its_version_and_decodes_from_either() -> None:
    from midas.domain.bookings import Booking

    booking = Booking(item_id="i", customer_id="c", start="s", end="e", service_level="x",
                      delivered_level="x", quote={}, policy_version=1, held_at="h",
                      hold_expires_at="2999-01-01T00:00:00+00:00")
    booking._confirmed(at="a", amount_paid=5, start="s", reinstated=True)
    held, confirmed = (encode_event(booking, e) for e in booking.collect_events())
    assert VERSION_KEY not in held.data
    assert confirmed.data == {"at": "a", "amount_paid": 5, "start": "s", "reinstated": True,
                              VERSION_KEY: 2}
    types = EventTypes(AGGREGATES)
    at = datetime(2026, 5, 1, tzinfo=UTC)
    for data in (confirmed.data, {"at": "a", "amount_paid": 5, "start": "s", "late": True}):
        recorded = RecordedEvent(2, booking.id, 2, "Booking.Confirmed",
                                 upcast("Booking.Confirmed", dict(data)), {}, at, b"")
        event = types.decode(recorded)
        assert event.reinstated is True  # type: ignore[attr-defined]
        assert not hasattr(event, "late") and not hasattr(event, VERSION_KEY)


def test_the_type_checker_catches_a_misspelled_field_or_event(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")
    reader = tmp_path / "reader.py"
    reader.write_text(
        "from midas.domain import booking_events as b\n"
        "from midas.eventstore.store import RecordedEvent\n\n\n"
        "def location(event: RecordedEvent) -> str:\n"
        "    return b.BOOKING_HELD.of(event)['quote']['location']\n\n\n"
        "def paid(event: RecordedEvent) -> int:\n"
        "    return b.BOOKING_CONFIRMD.of(event)['amount_paid']\n")
    out, _, status = api.run(["--follow-imports=silent", "--ignore-missing-imports",
                              "--no-error-summary", str(reader)])
    assert status == 1
    assert 'TypedDict "BookingQuote" has no key "location"' in out
    assert 'has no attribute "BOOKING_CONFIRMD"' in out
