"""Every aggregate class whose events the event store holds."""

from __future__ import annotations

from eventsourcing.domain import Aggregate

from midas.domain.inventory import Item

AGGREGATES: tuple[type[Aggregate], ...] = (Item,)
