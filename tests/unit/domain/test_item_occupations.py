"""An item's occupations: sorted by start, searched by binary search, the past cut off by
index; snapshots of the earlier, unsorted state still load."""

from __future__ import annotations

import contextlib
import random
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from eventsourcing.domain import Snapshot

import midas.domain.inventory as inventory
from midas.domain.availability import Interval
from midas.domain.catalogue import DEFAULT_CATALOGUE, Category
from midas.domain.inventory import Item, Unavailable
from midas.eventstore import EventTypes, Repository
from midas.eventstore.memory import InMemoryEventStore
from midas.eventstore.repository import _snapshot_transcoder
from midas.eventstore.store import StoredSnapshot

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
DAY = timedelta(days=1)
H = timedelta(hours=1)


def a_car(buffer_hours: int = 0) -> Item:
    item = Item.register(DEFAULT_CATALOGUE, name="Huracan", category=Category.CAR,
                         location="US-CA", rate=150_000, buffer=buffer_hours * H)
    item.collect_events()
    return item


def starts(item: Item) -> list[datetime]:
    return [datetime.fromisoformat(o["start"]) for o in item.occupations]


def test_occupations_placed_out_of_order_are_kept_sorted_by_their_instant() -> None:
    item = a_car()
    first = NOW + 10 * DAY
    item.reserve(uuid4(), first + 5 * DAY, first + 6 * DAY, NOW)
    item.reserve(uuid4(), first + H, first + 2 * H, NOW)
    item.reserve(uuid4(), first, first + H, NOW)
    item.block(uuid4(), first + 3 * DAY, first + 4 * DAY, "ical")
    item.schedule_maintenance(uuid4(), first + DAY, first + 2 * DAY)
    assert starts(item) == sorted(starts(item))
    assert len(item.occupations) == 5


def test_busy_during_finds_exactly_the_overlapping_occupations() -> None:
    item = a_car()
    ids = {}
    for day in range(0, 40, 2):
        ids[day] = uuid4()
        item.reserve(ids[day], NOW + day * DAY + H, NOW + (day + 1) * DAY + H, NOW)
    # [day 4 + 1h, day 5 + 1h) and [day 6 + 1h, day 7 + 1h) overlap days 5..7 on either side.
    found = item.busy_during(Interval(NOW + 5 * DAY, NOW + 6 * DAY + 2 * H))
    assert [UUID(o.id) for o in found] == [ids[4], ids[6]]
    # Touching at either end is no overlap.
    assert item.busy_during(Interval(NOW + 5 * DAY + H, NOW + 6 * DAY + H)) == []
    assert item.busy_during(Interval(NOW, NOW + H)) == []
    # Before the first and after the last.
    assert item.busy_during(Interval(NOW - DAY, NOW)) == []
    assert item.busy_during(Interval(NOW + 100 * DAY, NOW + 101 * DAY)) == []
    # One starting at the same instant, and one covering everything.
    assert [UUID(o.id) for o in item.busy_during(
        Interval(NOW + 38 * DAY + H, NOW + 38 * DAY + 2 * H))] == [ids[38]]
    assert len(item.busy_during(Interval(NOW - DAY, NOW + 100 * DAY))) == 20


def test_busy_during_agrees_with_a_full_scan_on_random_occupations() -> None:
    rng = random.Random(18)
    item = a_car()
    for _ in range(400):
        start = NOW + rng.randrange(0, 2000) * H
        with contextlib.suppress(Unavailable):
            item.reserve(uuid4(), start, start + rng.randrange(1, 30) * H, NOW)
    everything = item.busy()
    assert len(everything) >= 80
    for _ in range(300):
        start = NOW + rng.randrange(-50, 2100) * H
        interval = Interval(start, start + rng.randrange(1, 100) * H)
        expected = [o.id for o in everything if o.interval.overlaps(interval)]
        assert [o.id for o in item.busy_during(interval)] == expected


def test_a_hold_reads_a_logarithmic_number_of_occupations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    item = a_car()
    for day in range(5_000):
        item.reserve(uuid4(), NOW + day * DAY + H, NOW + day * DAY + 2 * H, NOW)
    item.collect_events()
    parsed: list[str] = []
    real = inventory._instant

    def counting(text: str) -> datetime:
        parsed.append(text)
        return real(text)

    monkeypatch.setattr(inventory, "_instant", counting)
    item.reserve(uuid4(), NOW + 2_500 * DAY + 3 * H, NOW + 2_500 * DAY + 4 * H,
                 NOW + 3 * DAY)
    # Two binary searches (log2 5000 < 13 each) and a few neighbours, not 5,000 reads.
    assert 0 < len(parsed) < 60
    assert len(item.occupations) == 5_000 - 3 + 1


def test_the_past_is_cut_off_and_a_running_occupation_kept() -> None:
    item = a_car()
    for day in range(5):
        item.reserve(uuid4(), NOW + day * DAY + H, NOW + day * DAY + 5 * H, NOW)
    item.collect_events()
    # At day 2 + 3h: days 0 and 1 have ended, day 2 is running, days 3 and 4 are ahead.
    at = NOW + 2 * DAY + 3 * H
    later = uuid4()
    item.reserve(later, NOW + 9 * DAY, NOW + 10 * DAY, at)
    assert starts(item) == [NOW + 2 * DAY + H, NOW + 3 * DAY + H, NOW + 4 * DAY + H,
                            NOW + 9 * DAY]
    # An occupation ending exactly now has ended (half-open).
    item.reserve(uuid4(), NOW + 20 * DAY, NOW + 21 * DAY, NOW + 2 * DAY + 5 * H)
    assert starts(item)[0] == NOW + 3 * DAY + H


def test_freeing_removes_only_the_named_occupation_and_keeps_the_order() -> None:
    item = a_car()
    ids = [uuid4() for _ in range(6)]
    for n, booking in enumerate(ids):
        item.reserve(booking, NOW + (10 - n) * DAY, NOW + (10 - n) * DAY + H, NOW)
    item.release(ids[2], "cancelled", NOW)
    item.release(ids[2], "cancelled", NOW)  # idempotent
    assert [UUID(o["id"]) for o in item.occupations] == list(reversed(ids[:2] + ids[3:]))
    assert starts(item) == sorted(starts(item))


def a_v1_snapshot(item: Item) -> Snapshot:
    """The item as a version 1 snapshot: no class_version, occupations as placed."""
    snapshot = Snapshot.take(item)
    state = dict(snapshot.state)
    state.pop("class_version")
    state["occupations"] = list(reversed(state["occupations"]))
    return Snapshot(originator_id=snapshot.originator_id,
                    originator_version=snapshot.originator_version,
                    timestamp=snapshot.timestamp, topic=snapshot.topic, state=state)


def some_bookings(item: Item) -> Item:
    for day in (3, 1, 7, 5):
        item.reserve(uuid4(), NOW + day * DAY, NOW + day * DAY + H, NOW)
    item.collect_events()
    return item


def test_the_upcast_sorts_by_instant_whatever_the_offsets() -> None:
    # 09:30+02:00 is 07:30 UTC: it sorts before 08:00 UTC, although its text sorts after.
    early = {"id": "a", "kind": "maintenance", "start": "2026-06-11T09:30:00+02:00",
             "end": "2026-06-11T07:45:00+00:00"}
    late = {"id": "b", "kind": "maintenance", "start": "2026-06-11T08:00:00+00:00",
            "end": "2026-06-11T09:00:00+00:00"}
    state = {"occupations": [late, early]}
    Item.upcast_v1_v2(state)
    assert state["occupations"] == [early, late]
    item = a_car()
    item.occupations = state["occupations"]
    found = item.busy_during(Interval(datetime(2026, 6, 11, 7, 40, tzinfo=UTC),
                                      datetime(2026, 6, 11, 8, 30, tzinfo=UTC)))
    assert [o.id for o in found] == ["a", "b"]


def test_a_snapshot_is_taken_at_state_version_2() -> None:
    snapshot = Snapshot.take(some_bookings(a_car()))
    assert snapshot.state["class_version"] == 2
    restored = snapshot.mutate(None)
    assert "class_version" not in vars(restored)
    assert starts(restored) == sorted(starts(restored))


def test_a_version_1_snapshot_is_sorted_when_loaded() -> None:
    item = some_bookings(a_car())
    old = a_v1_snapshot(item)
    assert [o["start"] for o in old.state["occupations"]] != sorted(
        o["start"] for o in old.state["occupations"])
    restored = old.mutate(None)
    assert isinstance(restored, Item)
    assert restored.occupations == item.occupations
    assert restored.version == item.version
    with pytest.raises(Unavailable):  # the searches work on the sorted list
        restored.reserve(uuid4(), NOW + 5 * DAY, NOW + 5 * DAY + H, NOW)


@pytest.mark.parametrize("version", [1, 2])
async def test_the_repository_loads_a_stored_snapshot_of_either_version(version: int) -> None:
    store = InMemoryEventStore()
    repo = Repository(store, EventTypes([Item]), cache_size=0)
    item = some_bookings(a_car())
    snapshot = a_v1_snapshot(item) if version == 1 else Snapshot.take(item)
    state = _snapshot_transcoder().encode(snapshot.state)
    await store.save_snapshot(StoredSnapshot(item.id, item.version, snapshot.topic, state,
                                             snapshot.timestamp))
    loaded = await repo.get(item.id, cls=Item)
    assert loaded.occupations == item.occupations
    assert starts(loaded) == sorted(starts(loaded))
