"""KPIs and profiles read back the facts of a batch's bookings, except those whose
first event (the hold) is in the batch: it gives them (a rebuild's usual case)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest

from midas.eventstore import RecordedEvent
from projections.kpis import KpisProjector
from projections.profiles import ProfilesProjector

AT = datetime(2026, 5, 1, tzinfo=UTC)


class Lookups:
    """Records the bookings each query asks for; finds none."""

    def __init__(self) -> None:
        self.asked: list[set[UUID]] = []

    async def fetch(self, sql: str, ids: list[UUID]) -> list[Any]:
        self.asked.append(set(ids))
        return []


def _event(stream: UUID, version: int, type_: str, **data: Any) -> RecordedEvent:
    return RecordedEvent(version, stream, version, type_, data, {}, AT, b"")


@pytest.mark.parametrize("projector", [KpisProjector(), ProfilesProjector()],
                         ids=lambda p: p.name)
async def test_only_bookings_held_before_the_batch_are_looked_up(projector: Any) -> None:
    new, older = uuid4(), uuid4()
    events = [
        _event(new, 1, "Booking.Held"),
        _event(new, 2, "Booking.Confirmed"),
        _event(uuid4(), 2, "Payment.Succeeded", booking_id=str(new)),
        _event(older, 3, "Booking.Cancelled"),
    ]
    conn = Lookups()
    await projector._load_dims(conn, events)
    assert conn.asked == [{older}]
