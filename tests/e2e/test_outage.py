"""PostgreSQL unreachable under a running service, then back: 503s, then recovery."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import SecretStr

from tests.support.tcp_proxy import PostgresProxy

ITEM = {"name": "Phantom", "category": "car", "location": "US-CA", "rate": 180_000}


@pytest.fixture
async def proxy(pg_dsn: str) -> AsyncIterator[PostgresProxy]:
    proxy = PostgresProxy(pg_dsn)
    await proxy.start()
    yield proxy
    await proxy.stop()


async def until(check: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


async def test_outage_answers_503_then_recovers_without_losing_acknowledged_commands(
    service: Any, proxy: PostgresProxy, auth: Any
) -> None:
    client = await service(database_url=SecretStr(proxy.dsn), poll_interval_s=0.1,
                           consistency_timeout_s=5.0)
    admin = auth("admin")
    acknowledged: list[str] = []

    async def register() -> int:
        response = await client.post("/api/v1/items", json=ITEM, headers=admin)
        if response.status == 201:
            acknowledged.append((await response.json())["id"])
        else:
            assert response.status == 503, await response.text()
            assert response.content_type == "application/problem+json"
            assert "Retry-After" in response.headers
        return response.status

    assert [await register() for _ in range(3)] == [201] * 3

    proxy.cut()
    assert await register() == 503
    ready = await client.get("/ready")
    assert ready.status == 503
    assert ready.content_type == "application/problem+json"
    assert ready.headers["Retry-After"] == "1"
    listing = await client.get("/api/v1/items")
    assert listing.status == 503

    statuses = await asyncio.gather(*(register() for _ in range(5)))
    assert set(statuses) == {503}
    proxy.restore()

    async def accepted() -> bool:
        return await register() == 201

    await until(accepted)
    await until(lambda: _ready(client))
    last = await client.post("/api/v1/items", json=ITEM, headers=admin)
    position = (await last.json())["position"]
    acknowledged.append((await last.json())["id"])
    listing = await client.get("/api/v1/items", params={"min_position": position, "limit": 500})
    assert listing.status == 200
    seen = {item["id"] for item in (await listing.json())["items"]}
    assert set(acknowledged) <= seen
    assert len(seen) == len(acknowledged)  # nothing beyond what was acknowledged either


async def _ready(client: Any) -> bool:
    return (await client.get("/ready")).status == 200
