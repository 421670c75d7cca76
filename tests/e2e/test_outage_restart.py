"""`pg_ctl restart -m fast` under load, on a private cluster: 503s with Retry-After as
problem+json while connections break (never a 500), then recovery."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.private_pg import PrivateCluster

CAR = {"name": "Huracan", "category": "car", "location": "US-CA", "rate": 150_000}
RESTARTS = 3
CLIENTS = 8


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    server = PrivateCluster()
    server.create()
    yield server
    server.remove()


@pytest.fixture(scope="module")
def pg_dsn(cluster: PrivateCluster) -> str:
    """This module's schemas, service and accounts live on the private cluster."""
    return cluster.dsn


class Answers:
    """Every answer seen, by route and status; each 503 checked as it arrives."""

    def __init__(self) -> None:
        self.seen: Counter[tuple[str, int]] = Counter()

    async def record(self, route: str, response: Any) -> int:
        self.seen[route, response.status] += 1
        if response.status == 503:
            assert response.content_type == "application/problem+json", route
            assert int(response.headers["Retry-After"]) >= 1, route
            assert (await response.json())["status"] == 503
        return response.status

    def statuses(self) -> set[int]:
        return {status for _, status in self.seen}


@pytest.mark.slow
async def test_a_restart_mid_flight_answers_503_never_500_then_recovers(
    service: Any, auth: Any, cluster: PrivateCluster
) -> None:
    # Each client books ever further ahead (two days a hold): far beyond the default horizon.
    client = await service(poll_interval_s=0.1, booking_horizon_days=36_500)
    admin, customer = auth("admin"), auth("customer")
    created = await client.post("/api/v1/items", json=CAR, headers=admin)
    item = (await created.json())["id"]
    answers, stop = Answers(), asyncio.Event()
    days = iter(range(10_000))
    first_day = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)

    async def hold_then_cancel() -> None:
        while not stop.is_set():
            start = first_day + timedelta(days=2 * next(days))
            stay = {"item_id": item, "start": start.isoformat(),
                    "end": (start + timedelta(days=1)).isoformat()}
            held = await client.post("/api/v1/bookings", json=stay, headers=customer)
            if await answers.record("hold", held) == 201:
                booking = (await held.json())["id"]
                cancelled = await client.post(f"/api/v1/bookings/{booking}/cancel", json={},
                                              headers=customer)
                await answers.record("cancel", cancelled)
            await answers.record("ready", await client.get("/ready"))

    clients = [asyncio.create_task(hold_then_cancel()) for _ in range(CLIENTS)]
    loop = asyncio.get_running_loop()
    for _ in range(RESTARTS):
        await asyncio.sleep(0.5)
        await loop.run_in_executor(None, cluster.restart)
    await asyncio.sleep(0.5)
    stop.set()
    await asyncio.gather(*clients)

    assert answers.statuses() <= {200, 201, 503}, answers.seen
    assert answers.seen["hold", 201] > 0 and answers.seen["cancel", 200] > 0, answers.seen
    await _until_ready(client)
    start = first_day + timedelta(days=2 * next(days))
    stay = {"item_id": item, "start": start.isoformat(),
            "end": (start + timedelta(days=1)).isoformat()}
    assert (await client.post("/api/v1/bookings", json=stay, headers=customer)).status == 201


@pytest.mark.slow
async def test_ready_and_commands_answer_503_while_the_server_is_down(
    service: Any, auth: Any, cluster: PrivateCluster
) -> None:
    # Each client books ever further ahead (two days a hold): far beyond the default horizon.
    client = await service(poll_interval_s=0.1, booking_horizon_days=36_500)
    admin = auth("admin")
    assert (await client.post("/api/v1/items", json=CAR, headers=admin)).status == 201
    answers = Answers()
    cluster.stop()
    try:
        assert await answers.record("ready", await client.get("/ready")) == 503
        assert await answers.record(
            "item", await client.post("/api/v1/items", json=CAR, headers=admin)) == 503
        ready = await client.get("/ready")
        assert (await ready.json())["database"] == "unreachable"
    finally:
        cluster.start()
    await _until_ready(client)
    assert (await client.post("/api/v1/items", json=CAR, headers=admin)).status == 201


async def _until_ready(client: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while (await client.get("/ready")).status != 200:
        assert time.monotonic() < deadline, "not ready again in time"
        await asyncio.sleep(0.2)
