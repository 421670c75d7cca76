"""The events of the extras aggregates (midas.domain.extras): payloads and types.

Readers import the type (``midas.domain.events``): ``event.type == X`` selects,
``X.of(event)`` reads the payload. A field with ``NotRequired`` may be absent from events
recorded before it was added.
"""

from __future__ import annotations

from typing import Any, TypedDict

from midas.domain.events import EventType


class ExtrasCatalogueStarted(TypedDict):
    extras: list[dict[str, Any]]


EXTRAS_CATALOGUE_STARTED = EventType("ExtrasCatalogue.Started", ExtrasCatalogueStarted)


class ExtrasCatalogueAdded(TypedDict):
    extra: dict[str, Any]


EXTRAS_CATALOGUE_ADDED = EventType("ExtrasCatalogue.Added", ExtrasCatalogueAdded)


class ExtrasCatalogueChanged(TypedDict):
    extra: dict[str, Any]


EXTRAS_CATALOGUE_CHANGED = EventType("ExtrasCatalogue.Changed", ExtrasCatalogueChanged)


class ExtraCapacityOpened(TypedDict):
    code: str
    location: str


EXTRA_CAPACITY_OPENED = EventType("ExtraCapacity.Opened", ExtraCapacityOpened)


class ExtraCapacityTaken(TypedDict):
    booking_id: str
    days: list[str]
    today: str


EXTRA_CAPACITY_TAKEN = EventType("ExtraCapacity.Taken", ExtraCapacityTaken)


class ExtraCapacityReleased(TypedDict):
    booking_id: str


EXTRA_CAPACITY_RELEASED = EventType("ExtraCapacity.Released", ExtraCapacityReleased)
