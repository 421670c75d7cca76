"""The dashboard's "today" is each location's own today: a payment made at 05:00 UTC in
Los Angeles (21:00 the evening before, there) is Los Angeles' revenue today until its
midnight, 08:00 UTC, while one made in Dubai at the same instant counts from Dubai's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from midas.eventstore import Database, EventStore
from midas.projection import catch_up
from projections.kpis import KpisProjector
from queries.dashboard import dashboard
from tests.conftest import history_events

PAID_AT = datetime(2026, 12, 3, 5, 0, tzinfo=UTC)  # 21:00 on Dec 2 in LA, 09:00 in Dubai


async def pay(store: EventStore, location: str, zone: str, currency: str, amount: int
              ) -> None:
    # history_events pays ten days before the start: the payment is at PAID_AT.
    _, appends = history_events(uuid4(), rental=amount, currency=currency, complete=False,
                                start=PAID_AT + timedelta(days=10))
    quote = appends[0][0].events[0].data["quote"]
    quote["location_code"], quote["time_zone"] = location, zone
    for append in appends:
        await store.append(append)


def revenue(view: dict[str, Any]) -> dict[str, int]:
    return {r["currency"]: r["gross"] for r in view["live"]["revenue_today"]}


async def test_today_is_each_locations_own_day(db: Database, store: EventStore) -> None:
    await pay(store, "US-CA", "America/Los_Angeles", "USD", 700_00)
    await pay(store, "AE-DU", "Asia/Dubai", "AED", 900_00)
    await catch_up(db, KpisProjector())
    async with db.acquire() as conn:
        at_six = await dashboard(conn, PAID_AT + timedelta(hours=1))
        before_la_midnight = await dashboard(conn, datetime(2026, 12, 3, 7, 59, tzinfo=UTC))
        la_midnight = await dashboard(conn, datetime(2026, 12, 3, 8, 0, tzinfo=UTC))
        before_dubai = await dashboard(conn, datetime(2026, 12, 2, 19, 59, tzinfo=UTC))
    # At 06:00 UTC it is Dec 3 in UTC and Dubai, still Dec 2 in Los Angeles.
    assert revenue(at_six) == {"USD": 700_00, "AED": 900_00}
    assert revenue(before_la_midnight) == {"USD": 700_00, "AED": 900_00}
    assert revenue(la_midnight) == {"AED": 900_00}  # a new day in Los Angeles
    # 19:59 UTC on Dec 2 is 23:59 in Dubai: its Dec 3, and the payment, are not yet.
    assert revenue(before_dubai) == {"USD": 700_00}
    month = {r["currency"]: r["gross"] for r in la_midnight["this_month"]}
    assert month == {"USD": 700_00, "AED": 900_00}
