"""Concurrent holds on free dates of the same few items, in one process: none refused.

Commands on one aggregate take turns within a process, so they never lose version races
to each other; the retry budget is set to a single run here, so any lost race would be a
409 "changed concurrently"."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from midas.http.keys import DATABASE, REPOSITORY

ITEMS = 3
HOLDS_PER_ITEM = 20
FIRST_DAY = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # the booking clock is 2026-11-01


async def test_concurrent_holds_on_free_dates_of_few_items_are_never_refused(
    booking_services: Any, auth: Any
) -> None:
    client = await booking_services(conflict_retry_attempts=1)
    admin = auth("admin")
    items = []
    for n in range(ITEMS):
        created = await client.post("/api/v1/items", headers=admin, json={
            "name": f"Chiron {n}", "category": "car", "location": "US-CA", "rate": 150_000})
        items.append((await created.json())["id"])
    customers = [auth("customer") for _ in range(4)]

    async def hold(n: int) -> int:
        item, day = items[n % ITEMS], n // ITEMS
        start = FIRST_DAY + timedelta(days=day)
        response = await client.post("/api/v1/bookings", headers=customers[n % 4], json={
            "item_id": item, "start": start.isoformat(),
            "end": (start + timedelta(hours=20)).isoformat()})
        return response.status

    statuses = await asyncio.gather(*(hold(n) for n in range(ITEMS * HOLDS_PER_ITEM)))

    assert statuses.count(409) == 0, statuses
    assert statuses == [201] * ITEMS * HOLDS_PER_ITEM
    async with client.server.app[DATABASE].acquire() as conn:
        reserved = await conn.fetchval("SELECT count(*) FROM events WHERE type = 'Item.Reserved'")
    assert reserved == ITEMS * HOLDS_PER_ITEM
    assert len(client.server.app[REPOSITORY].locks) == 0  # freed once idle
