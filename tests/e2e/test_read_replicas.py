"""Read replicas against a real PostgreSQL streaming replica (a private primary and its
standby, started for these tests): queries read the replica, read-your-writes holds there
or answers 503, and a replica down or too far behind is skipped for the primary."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
from pydantic import SecretStr

from midas.app import create_app
from midas.config import Settings
from midas.http.auth import Role, issue_access_token
from midas.http.keys import REPLICAS
from tests.support.pg_cluster import StreamingPair, start_pair

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pair() -> Iterator[StreamingPair]:
    cluster = start_pair()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def replica_schema(pair: StreamingPair) -> AsyncIterator[str]:
    name = f"t_{uuid4().hex[:16]}"
    yield name
    conn = await asyncpg.connect(pair.primary_dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
def start(aiohttp_client: Any, pair: StreamingPair, replica_schema: str) -> Any:
    async def started(**overrides: Any) -> tuple[Any, dict[str, str]]:
        settings = Settings(**{
            "database_url": SecretStr(pair.primary_dsn), "database_schema": replica_schema,
            "read_database_urls": [SecretStr(pair.standby_dsn)], "environment": "test",
            "log_json": False, "poll_interval_s": 0.2, "bcrypt_rounds": 4,
            "consistency_timeout_s": 1.5, "read_replica_check_s": 0.1, **overrides})
        client = await aiohttp_client(create_app(settings))
        admin = uuid4()
        conn = await asyncpg.connect(pair.primary_dsn,
                                     server_settings={"search_path": replica_schema})
        try:
            await conn.execute("INSERT INTO auth_accounts (account_id, email, role)"
                               " VALUES ($1, $2, 'admin')", admin, f"{admin}@replica.test")
        finally:
            await conn.close()
        token = issue_access_token(settings, admin, Role.ADMIN)
        return client, {"Authorization": f"Bearer {token}"}

    return started


async def _standby(pair: StreamingPair, sql: str) -> Any:
    conn = await asyncpg.connect(pair.standby_dsn)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def _item(client: Any, admin: dict[str, str], name: str) -> tuple[UUID, int]:
    response = await client.post("/api/v1/items", headers=admin, json={
        "name": name, "category": "car", "location": "US-CA", "rate": 150_000})
    assert response.status == 201, await response.text()
    body = await response.json()
    return UUID(body["id"]), body["position"]


async def _names(client: Any, **params: Any) -> tuple[int, set[str]]:
    response = await client.get("/api/v1/items", params=params)
    if response.status != 200:
        return response.status, set()
    return 200, {item["name"] for item in (await response.json())["items"]}


async def _until(check: Any, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.05)


async def test_queries_read_the_replica_and_wait_there_for_their_position(
    start: Any, pair: StreamingPair,
) -> None:
    client, admin = await start()
    replica = client.server.app[REPLICAS].replicas[0]
    await _until(lambda: replica.healthy)
    _, first = await _item(client, admin, "Huracan")
    assert await _names(client, min_position=first) == (200, {"Huracan"})

    await _standby(pair, "SELECT pg_wal_replay_pause()")
    try:
        _, second = await _item(client, admin, "Urus")
        # The replica answers, as of before the pause: the new item is not there yet...
        assert await _names(client) == (200, {"Huracan"})
        # ... so a query that must include it waits there, and gives up with a 503.
        response = await client.get("/api/v1/items", params={"min_position": second})
        assert response.status == 503 and response.headers["Retry-After"] == "1"
        assert replica.healthy  # two events behind: well within the allowed lag
        waiting = asyncio.ensure_future(_names(client, min_position=second))
        await asyncio.sleep(0.3)
        assert not waiting.done()
    finally:
        await _standby(pair, "SELECT pg_wal_replay_resume()")
    assert await waiting == (200, {"Huracan", "Urus"})


async def test_a_replica_too_far_behind_is_left_out_for_the_primary(
    start: Any, pair: StreamingPair,
) -> None:
    client, admin = await start(read_replica_max_lag=2)
    replica = client.server.app[REPLICAS].replicas[0]
    await _until(lambda: replica.healthy)
    await _standby(pair, "SELECT pg_wal_replay_pause()")
    try:
        for n in range(2):  # two events behind: still in service
            await _item(client, admin, f"Car {n}")
        await _until(lambda: replica.lag == 2)  # the next check has counted both
        assert replica.healthy
        _, last = await _item(client, admin, "Car 2")  # three: left out
        await _until(lambda: not replica.healthy)
        assert replica.lag == 3
        assert await _names(client, min_position=last) == (200, {"Car 0", "Car 1", "Car 2"})
    finally:
        await _standby(pair, "SELECT pg_wal_replay_resume()")
    # Back in service within its allowed lag, then all the way caught up.
    await _until(lambda: replica.healthy and replica.lag == 0)
    metrics = await (await client.get("/metrics", headers=admin)).text()
    assert 'midas_read_replicas{state="in_service"} 1.0' in metrics
    assert f'midas_read_replica_lag_events{{replica="127.0.0.1:{pair.standby_port}"}} 0.0' in (
        metrics)


async def test_a_replica_that_is_down_is_skipped_for_the_primary(
    start: Any, pair: StreamingPair,
) -> None:
    client, admin = await start(read_replica_check_s=3600)  # only the first check
    replica = client.server.app[REPLICAS].replicas[0]
    assert replica.healthy
    pair.stop_standby()
    try:
        _, position = await _item(client, admin, "Cullinan")
        # The replica refuses connections: the query falls back to the primary at once.
        assert await _names(client, min_position=position) == (200, {"Cullinan"})
        assert not replica.healthy
        assert await _names(client) == (200, {"Cullinan"})
    finally:
        pair.start_standby()
