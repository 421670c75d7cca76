"""Event contracts: each event type's stored name, version and payload, declared once.

An aggregate's module has a sibling ``*_events`` module declaring, for every event the
aggregate records, a ``TypedDict`` of its payload and an ``EventType`` constant
(``BOOKING_HELD = EventType("Booking.Held", BookingHeld)``). The aggregate names its
``@event`` methods from the constant (``@event(BOOKING_HELD.event_name)``), and every
reader (projector, process manager, timeline, report) imports it: ``event.type ==
BOOKING_HELD`` selects, ``BOOKING_HELD.of(event)`` reads the payload as its ``TypedDict``,
so a misspelled field or a renamed event is a type error (mypy), not a ``KeyError`` in
production. ``EventType`` is a ``str`` (the stored name) and ``of`` hands back the
event's own data: a contract costs next to nothing per event.

**Versions.** An event type that changes shape keeps its name and gets one more
version: its ``EventType`` lists ``upcasts``, one function per step (version n's payload
to version n + 1's). Events of a version above 1 record it in their data
(``VERSION_KEY``); events without it are version 1. Every read of the log (the
repository, projections, time travel, timelines) passes each event of a versioned type
through ``upcast``, so readers only ever see the current version, while the stored
bytes, the hash chain and export/import keep what was recorded. An upcast sees the
event's data alone: a field it adds must be derivable from the old payload.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

P = TypeVar("P", covariant=True)  # the payload's TypedDict (of the current version)
Data = dict[str, Any]
Upcast = Callable[[Data], Data]
VERSION_KEY = "event_version"  # in the data of events recorded at a version above 1

_DECLARED: dict[str, EventType[Any]] = {}
VERSIONED: dict[str, EventType[Any]] = {}  # the declared types above version 1, by name


class HasData(Protocol):
    @property
    def data(self) -> Mapping[str, Any]: ...


class EventType(str, Generic[P]):
    """An event type: its stored name (this string), its payload and its version."""

    payload: type[P]
    upcasts: tuple[Upcast, ...]

    def __new__(cls, name: str, payload: type[P], *, upcasts: Sequence[Upcast] = ()
                ) -> EventType[P]:
        aggregate, _, event = name.partition(".")
        if not aggregate or not event or "." in event:
            raise ValueError(f"an event type is named Aggregate.Event, not {name!r}")
        if name in _DECLARED:
            raise ValueError(f"event type {name!r} is declared twice")
        self = str.__new__(cls, name)
        self.payload = payload
        self.upcasts = tuple(upcasts)
        _DECLARED[name] = self
        if self.upcasts:
            VERSIONED[name] = self
        return self

    @property
    def version(self) -> int:
        return len(self.upcasts) + 1

    @property
    def aggregate_name(self) -> str:
        return self.partition(".")[0]

    @property
    def event_name(self) -> str:
        """The event's class name on its aggregate (``Held``), for ``@event``."""
        return self.partition(".")[2]

    if TYPE_CHECKING:
        def of(self, event: HasData) -> P:
            """The event's payload, typed (no copy, no check: the log is the contract's)."""
    else:  # ``event.data`` itself, through a C call: readers call it for every event
        of = staticmethod(attrgetter("data"))

    def upcast(self, data: Data) -> Data:
        """``data`` of any recorded version as the current version has it. A version
        newer than this process knows (a later release's) is left as recorded."""
        recorded = data.get(VERSION_KEY, 1)
        if not isinstance(recorded, int) or recorded >= self.version:
            return data
        current = dict(data)
        for step in self.upcasts[recorded - 1:]:
            current = step(current)
        current[VERSION_KEY] = self.version
        return current


def shared_fields(payload: type[P]) -> Callable[[HasData], P]:
    """A reader of the fields several event types share (``payload``, their payloads'
    common base): like ``EventType.of``, the event's own data, typed."""
    return attrgetter("data")


def upcast(type_: str, data: Data) -> Data:
    """``data`` at its type's current version (unchanged for an unversioned type)."""
    event_type = VERSIONED.get(type_)
    return data if event_type is None else event_type.upcast(data)


def declared() -> Mapping[str, EventType[Any]]:
    """Every event type declared so far (the modules imported), by name."""
    return _DECLARED
