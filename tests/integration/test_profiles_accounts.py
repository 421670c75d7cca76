"""Account events on customer profiles: a customer's row is created with the table's
defaults, status changes reach existing rows only (staff accounts get no profile)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from midas.eventstore import Database, RecordedEvent
from midas.projection import DeferredWrites
from projections.profiles import ProfilesProjector

T0 = datetime(2026, 4, 1, tzinfo=UTC)


def _events(steps: list[tuple[UUID, str, dict[str, Any]]]) -> list[RecordedEvent]:
    versions: dict[UUID, int] = {}
    events = []
    for position, (stream, type_, data) in enumerate(steps, start=1):
        versions[stream] = versions.get(stream, 0) + 1
        events.append(RecordedEvent(position, stream, versions[stream], type_, data, {},
                                    T0 + timedelta(minutes=position), b""))
    return events


@pytest.mark.parametrize("batch", [1, 100])
async def test_account_events_create_and_change_only_customer_profiles(
    db: Database, batch: int
) -> None:
    ada, bea, staff = uuid4(), uuid4(), uuid4()
    events = _events([
        (ada, "Account.Registered", {"role": "customer"}),
        (staff, "Account.Registered", {"role": "staff"}),
        (bea, "Account.Registered", {"role": "customer"}),
        (staff, "Account.Deactivated", {}),
        (bea, "Account.TierSet", {"tier": "vvip", "reason": "board member"}),
        (ada, "Account.Deactivated", {}),
    ])
    projector = ProfilesProjector()
    for start in range(0, len(events), batch):
        async with db.acquire() as conn, conn.transaction():
            writes = DeferredWrites(conn)
            await projector.apply(writes, events[start:start + batch])  # type: ignore[arg-type]
            await writes.flush()
    async with db.acquire() as conn:
        rows = {r["customer_id"]: dict(r) for r in await conn.fetch(
            "SELECT customer_id, status, tier, tier_reason, points, bookings, registered_at,"
            " updated_at FROM cust_profiles")}
    assert set(rows) == {ada, bea}
    assert rows[ada]["status"] == "deactivated"
    assert (rows[bea]["status"], rows[bea]["tier"], rows[bea]["tier_reason"]) == (
        "active", "vvip", "board member")
    assert rows[ada]["tier"] == "standard" and rows[ada]["points"] == rows[ada]["bookings"] == 0
    assert rows[ada]["registered_at"] == T0 + timedelta(minutes=1)
    assert rows[ada]["updated_at"] == T0 + timedelta(minutes=6)  # its last change
    assert rows[bea]["updated_at"] == T0 + timedelta(minutes=5)
