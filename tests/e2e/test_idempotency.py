"""Idempotency-Key: a retried command gets its first answer and appends nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

ITEM = {"name": "Gulfstream G700", "category": "jet", "location": "US-NV", "rate": 1_200_000}


async def event_count(pg_dsn: str, schema: str) -> int:
    conn = await asyncpg.connect(pg_dsn, server_settings={"search_path": schema})
    try:
        return await conn.fetchval("SELECT count(*) FROM events")
    finally:
        await conn.close()


async def test_a_retry_replays_the_first_response(
    app_client: Any, auth: Any, pg_dsn: str, schema: str
) -> None:
    headers = {**auth("admin"), "Idempotency-Key": "register-g700"}
    first = await app_client.post("/api/v1/items", json=ITEM, headers=headers)
    second = await app_client.post("/api/v1/items", json=ITEM, headers=headers)
    assert first.status == second.status == 201
    assert await first.json() == await second.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.headers["Midas-Position"] == first.headers["Midas-Position"]
    assert await event_count(pg_dsn, schema) == 1


async def test_the_same_key_for_another_request_is_422(app_client: Any, auth: Any) -> None:
    headers = {**auth("admin"), "Idempotency-Key": "k1"}
    await app_client.post("/api/v1/items", json=ITEM, headers=headers)
    other = await app_client.post("/api/v1/items", json={**ITEM, "rate": 1}, headers=headers)
    assert other.status == 422
    assert (await other.json())["title"] == "Idempotency key reused"


async def test_keys_are_per_caller(app_client: Any, auth: Any, pg_dsn: str, schema: str) -> None:
    for _ in range(2):  # two admins using the same key both act
        await app_client.post("/api/v1/items", json=ITEM,
                              headers={**auth("admin"), "Idempotency-Key": "same"})
    assert await event_count(pg_dsn, schema) == 2


async def test_concurrent_duplicates_append_once(
    app_client: Any, auth: Any, pg_dsn: str, schema: str
) -> None:
    headers = {**auth("admin"), "Idempotency-Key": "burst"}
    responses = await asyncio.gather(
        *(app_client.post("/api/v1/items", json=ITEM, headers=headers) for _ in range(10))
    )
    statuses = sorted(r.status for r in responses)
    assert set(statuses) <= {201, 409} and 201 in statuses
    assert await event_count(pg_dsn, schema) == 1


async def test_a_failed_command_releases_its_key(app_client: Any, auth: Any) -> None:
    headers = {**auth("admin"), "Idempotency-Key": "retry-me"}
    missing = "00000000-0000-0000-0000-000000000001"
    first = await app_client.put(f"/api/v1/items/{missing}/rate", json={"rate": 5},
                                 headers=headers)
    assert first.status == 404
    again = await app_client.put(f"/api/v1/items/{missing}/rate", json={"rate": 5},
                                 headers=headers)
    assert again.status == 404 and "Idempotent-Replayed" not in again.headers


async def test_committed_without_a_stored_response_replays_the_position(
    app_client: Any, auth: Any, pg_dsn: str, schema: str
) -> None:
    headers = {**auth("admin"), "Idempotency-Key": "crash"}
    first = await app_client.post("/api/v1/items", json=ITEM, headers=headers)
    conn = await asyncpg.connect(pg_dsn, server_settings={"search_path": schema})
    try:  # as if the process died after the commit, before storing the response
        await conn.execute("UPDATE idempotency_keys SET state = 'committed', status = NULL,"
                           " body = NULL")
    finally:
        await conn.close()
    retry = await app_client.post("/api/v1/items", json=ITEM, headers=headers)
    assert retry.status == 200
    assert (await retry.json())["position"] == (await first.json())["position"]
    assert await event_count(pg_dsn, schema) == 1


async def test_bad_keys_are_400(app_client: Any, auth: Any) -> None:
    response = await app_client.post("/api/v1/items", json=ITEM,
                                     headers={**auth("admin"), "Idempotency-Key": "x" * 300})
    assert response.status == 400


async def _leave_started(pg_dsn: str, schema: str, seconds_ago: float) -> None:
    """As if the process died while the command ran, ``seconds_ago`` (before any commit)."""
    conn = await asyncpg.connect(pg_dsn, server_settings={"search_path": schema})
    try:
        await conn.execute(
            "UPDATE idempotency_keys SET state = 'started', position = NULL, status = NULL,"
            " body = NULL, headers = NULL, created_at = now() - make_interval(secs => $1)",
            seconds_ago,
        )
    finally:
        await conn.close()


@pytest.mark.parametrize(("seconds_ago", "retry_after"), [(45, "15"), (0.2, "60"), (59.5, "1")])
async def test_a_key_left_started_answers_409_with_the_wait_until_its_takeover(
    app_client: Any, auth: Any, pg_dsn: str, schema: str, seconds_ago: float, retry_after: str
) -> None:
    """MIDAS_IDEMPOTENCY_STALE_S is 60: the wait is what is left of it, rounded up."""
    headers = {**auth("admin"), "Idempotency-Key": "crashed"}
    await app_client.post("/api/v1/items", json=ITEM, headers=headers)
    await _leave_started(pg_dsn, schema, seconds_ago)
    retry = await app_client.post("/api/v1/items", json=ITEM, headers=headers)
    assert retry.status == 409
    assert retry.content_type == "application/problem+json"
    assert retry.headers["Retry-After"] == retry_after


async def test_a_key_left_started_past_the_stale_time_is_taken_over(
    app_client: Any, auth: Any, pg_dsn: str, schema: str
) -> None:
    headers = {**auth("admin"), "Idempotency-Key": "crashed"}
    await app_client.post("/api/v1/items", json=ITEM, headers=headers)
    await _leave_started(pg_dsn, schema, 60.5)
    retry = await app_client.post("/api/v1/items", json=ITEM, headers=headers)
    assert retry.status == 201 and "Idempotent-Replayed" not in retry.headers
    assert await event_count(pg_dsn, schema) == 2  # the first run never committed, as far
    # as the key knows: the takeover runs the command again


async def test_a_duplicate_of_a_request_in_progress_waits_for_the_takeover_time(
    app_client: Any, auth: Any, pg_dsn: str, schema: str
) -> None:
    headers = {**auth("admin"), "Idempotency-Key": "slow"}
    blocker = await asyncpg.connect(pg_dsn, server_settings={"search_path": schema})
    writes_blocked = blocker.transaction()
    await writes_blocked.start()
    try:
        await blocker.execute("LOCK TABLE events IN EXCLUSIVE MODE")  # the append waits
        first = asyncio.create_task(app_client.post("/api/v1/items", json=ITEM, headers=headers))
        for _ in range(500):  # until the first request has claimed the key
            if await blocker.fetchval("SELECT count(*) FROM idempotency_keys"):
                break
            await asyncio.sleep(0.02)
        duplicate = await app_client.post("/api/v1/items", json=ITEM, headers=headers)
        assert duplicate.status == 409
        # Claimed a moment ago: (nearly) the whole 60 s, rounded up.
        assert duplicate.headers["Retry-After"] in {"59", "60"}
    finally:
        await writes_blocked.rollback()
        await blocker.close()
    assert (await first).status == 201
    assert await event_count(pg_dsn, schema) == 1
