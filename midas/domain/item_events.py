"""The events of the Item aggregate (midas.domain.inventory): payloads and types.

Readers import the type (``midas.domain.events``): ``event.type == X`` selects,
``X.of(event)`` reads the payload. A field with ``NotRequired`` may be absent from events
recorded before it was added.
"""

from __future__ import annotations

from typing import Any, TypedDict

from midas.domain.events import EventType


class ItemRegistered(TypedDict):
    name: str
    category: str
    location: str
    rate: int
    rate_unit: str
    currency: str
    buffer_minutes: int
    minimum_minutes: int
    attributes: dict[str, Any]


ITEM_REGISTERED = EventType("Item.Registered", ItemRegistered)


class ItemStatusChanged(TypedDict):
    status: str
    previous: str


ITEM_STATUS_CHANGED = EventType("Item.StatusChanged", ItemStatusChanged)


class ItemReserved(TypedDict):
    booking_id: str
    start: str
    end: str
    until: str
    at: str


ITEM_RESERVED = EventType("Item.Reserved", ItemReserved)


class ItemReleased(TypedDict):
    booking_id: str
    reason: str
    at: str
    rental_minutes: int


ITEM_RELEASED = EventType("Item.Released", ItemReleased)


class ItemMaintenanceScheduled(TypedDict):
    window_id: str
    start: str
    end: str
    note: str
    planned: bool


ITEM_MAINTENANCE_SCHEDULED = EventType("Item.MaintenanceScheduled", ItemMaintenanceScheduled)


class ItemMaintenanceRemoved(TypedDict):
    window_id: str


ITEM_MAINTENANCE_REMOVED = EventType("Item.MaintenanceRemoved", ItemMaintenanceRemoved)


class ItemBlocked(TypedDict):
    block_id: str
    start: str
    end: str
    source: str


ITEM_BLOCKED = EventType("Item.Blocked", ItemBlocked)


class ItemUnblocked(TypedDict):
    block_id: str


ITEM_UNBLOCKED = EventType("Item.Unblocked", ItemUnblocked)


class ItemMaintenancePlanSet(TypedDict):
    plan: dict[str, int | None]


ITEM_MAINTENANCE_PLAN_SET = EventType("Item.MaintenancePlanSet", ItemMaintenancePlanSet)


class ItemRenamed(TypedDict):
    name: str
    previous: str


ITEM_RENAMED = EventType("Item.Renamed", ItemRenamed)


class ItemAttributesSet(TypedDict):
    attributes: dict[str, Any]
    previous: dict[str, Any]


ITEM_ATTRIBUTES_SET = EventType("Item.AttributesSet", ItemAttributesSet)


class ItemMinimumChanged(TypedDict):
    minimum_minutes: int
    previous: int


ITEM_MINIMUM_CHANGED = EventType("Item.MinimumChanged", ItemMinimumChanged)


class BufferMove(TypedDict):
    """A current booking's occupation under the new buffer: the booking ends at ``end``,
    its buffer runs until ``until`` (ISO instants)."""

    booking_id: str
    start: str
    end: str
    until: str


class ItemBufferChanged(TypedDict):
    buffer_minutes: int
    previous: int
    bookings: list[BufferMove]


ITEM_BUFFER_CHANGED = EventType("Item.BufferChanged", ItemBufferChanged)


class ItemMoved(TypedDict):
    location: str
    currency: str
    previous: str
    previous_currency: str


ITEM_MOVED = EventType("Item.Moved", ItemMoved)


class ItemDurationDiscountsSet(TypedDict):
    tiers: list[dict[str, Any]] | None


ITEM_DURATION_DISCOUNTS_SET = EventType("Item.DurationDiscountsSet", ItemDurationDiscountsSet)


class ItemMediaSet(TypedDict):
    photos: list[str]
    documents: list[dict[str, str]]


ITEM_MEDIA_SET = EventType("Item.MediaSet", ItemMediaSet)


class ItemRateChanged(TypedDict):
    rate: int
    previous: int


ITEM_RATE_CHANGED = EventType("Item.RateChanged", ItemRateChanged)


class ItemDeactivated(TypedDict):
    pass


ITEM_DEACTIVATED = EventType("Item.Deactivated", ItemDeactivated)
