"""Inventory items: unique rentable things (a car, a yacht, a jet, a property)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from eventsourcing.domain import Aggregate, event

from midas.domain.catalogue import Catalogue, Category, RateUnit
from midas.domain.errors import InvalidState, RuleViolation

ITEM_STATUSES = ("active", "inactive", "retired")


class Item(Aggregate):
    """An item of the inventory. Event data is plain: cents, minutes, codes."""

    @event("Registered")
    def __init__(
        self,
        name: str,
        category: str,
        location: str,
        rate: int,
        rate_unit: str,
        currency: str,
        buffer_minutes: int,
        minimum_minutes: int,
        attributes: dict[str, Any],
    ) -> None:
        self.name = name
        self.category = category
        self.location = location
        self.rate = rate
        self.rate_unit = rate_unit
        self.currency = currency
        self.buffer_minutes = buffer_minutes
        self.minimum_minutes = minimum_minutes
        self.attributes = attributes
        self.status = "active"

    @classmethod
    def register(
        cls,
        catalogue: Catalogue,
        *,
        name: str,
        category: Category,
        location: str,
        rate: int,
        currency: str | None = None,
        rate_unit: RateUnit | None = None,
        buffer: timedelta | None = None,
        minimum: timedelta | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> Item:
        """A new item, with its category's defaults where none are given."""
        defaults = catalogue.defaults(category)
        place = catalogue.location(location)
        if rate <= 0:
            raise RuleViolation("the rate must be positive")
        return cls(
            name=name,
            category=category.value,
            location=place.code,
            rate=rate,
            rate_unit=(rate_unit or defaults.rate_unit).value,
            currency=(currency or place.currency).upper(),
            buffer_minutes=_minutes(buffer if buffer is not None else defaults.buffer),
            minimum_minutes=_minutes(minimum if minimum is not None else defaults.minimum),
            attributes=dict(attributes or {}),
        )

    def change_rate(self, rate: int) -> None:
        self._require_not_retired("change its rate")
        if rate <= 0:
            raise RuleViolation("the rate must be positive")
        if rate != self.rate:
            self._rate_changed(rate=rate, previous=self.rate)

    def deactivate(self) -> None:
        if self.status != "active":
            raise InvalidState("the item", self.status, "deactivate it")
        self._deactivated()

    @event("RateChanged")
    def _rate_changed(self, rate: int, previous: int) -> None:
        self.rate = rate

    @event("Deactivated")
    def _deactivated(self) -> None:
        self.status = "inactive"

    def _require_not_retired(self, action: str) -> None:
        if self.status == "retired":
            raise InvalidState("the item", self.status, action)


def _minutes(duration: timedelta) -> int:
    return int(duration.total_seconds() // 60)
