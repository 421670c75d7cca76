"""Inventory use cases driven with the in-memory event store: given / when / then events."""

from __future__ import annotations

import pytest

from commands.inventory import ChangeRate, RegisterItem, change_rate, register_item
from midas.domain.errors import RuleViolation
from midas.domain.registry import AGGREGATES
from midas.eventstore import ConcurrencyConflict, EventTypes, Repository
from midas.eventstore.memory import InMemoryEventStore

META = {"actor": "admin-1", "request_id": "r1"}


def repository() -> tuple[Repository, InMemoryEventStore]:
    store = InMemoryEventStore()
    return Repository(store, EventTypes(AGGREGATES), snapshot_every=3), store


async def test_register_applies_category_defaults_and_records_the_actor() -> None:
    repo, store = repository()
    cmd = RegisterItem(name="Riva", category="yacht", location="AE-DU", rate=300_000)
    item_id, result = await register_item(repo, cmd, META)
    (event,) = store.events
    assert (event.stream_id, event.type, result.positions) == (item_id, "Item.Registered", [1])
    assert event.data["rate_unit"] == "hour" and event.data["buffer_minutes"] == 240
    assert event.metadata["actor"] == "admin-1"


async def test_rate_change_then_snapshot_reload_gives_the_same_item() -> None:
    repo, store = repository()
    cmd = RegisterItem(name="Riva", category="yacht", location="AE-DU", rate=300_000)
    item_id, _ = await register_item(repo, cmd, META)
    for rate in (310_000, 320_000, 330_000):
        await change_rate(repo, item_id, ChangeRate(rate=rate), META)
    assert store.types() == ["Item.Registered"] + ["Item.RateChanged"] * 3
    assert store.events[-1].data == {"rate": 330_000, "previous": 320_000}
    await repo.snapshots.flush()
    assert item_id in store.snapshots
    item = await repo.get(item_id)
    assert (item.rate, item.version) == (330_000, 4)


async def test_a_rule_violation_appends_nothing() -> None:
    repo, store = repository()
    cmd = RegisterItem(name="Riva", category="yacht", location="AE-DU", rate=300_000)
    item_id, _ = await register_item(repo, cmd, META)
    item = await repo.get(item_id)
    with pytest.raises(RuleViolation):
        item.change_rate(0)
    assert len(store.events) == 1


async def test_a_stale_save_is_a_conflict() -> None:
    repo, store = repository()
    cmd = RegisterItem(name="Riva", category="yacht", location="AE-DU", rate=300_000)
    item_id, _ = await register_item(repo, cmd, META)
    first, second = await repo.get(item_id), await repo.get(item_id)
    first.change_rate(1)
    second.change_rate(2)
    await repo.save(first)
    with pytest.raises(ConcurrencyConflict):
        await repo.save(second)
    assert [e.data.get("rate") for e in store.events] == [300_000, 1]
