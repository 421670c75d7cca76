"""A realistic history for the audit tests: items registered, repriced, maintained."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from commands.inventory import ChangeRate, RegisterItem, change_rate, on_item, register_item
from midas.domain.registry import AGGREGATES
from midas.eventstore import EventStore, EventTypes, Repository

START = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)


def repository(store: EventStore) -> Repository:
    return Repository(store, EventTypes(AGGREGATES))


async def inventory_history(store: EventStore, items: int = 4, tag: str = "a") -> list[UUID]:
    repo = repository(store)
    ids = []
    for n in range(items):
        md = {"actor": f"admin-{tag}", "actor_role": "admin", "correlation_id": f"{tag}{n}"}
        item_id, _ = await register_item(repo, RegisterItem(
            name=f"Villa {tag}{n}", category="property", location="AE-DU",
            rate=1_000_000 + n), md)
        ids.append(item_id)
        await change_rate(repo, item_id, ChangeRate(rate=2_000_000 + n), md)
        day = START + timedelta(days=10 * n)
        await on_item(repo, item_id, lambda item, day=day: item.schedule_maintenance(
            uuid4(), day, day + timedelta(hours=5), "service"), md)
    return ids
