"""The refresh reuse grace window, over HTTP on the real PostgreSQL.

A used refresh token presented again within `refresh_reuse_grace_s` (a double submit, a
retry after a lost response) gets a new successor; later, it is reuse and kills the family.
"""

from __future__ import annotations

import asyncio
from typing import Any

from midas.http.keys import DATABASE
from midas.security import sessions
from tests.e2e.auth_support import bearer, register, signed_in

REFRESH = "/api/v1/auth/refresh"


async def refresh(client: Any, token: str) -> Any:
    return await client.post(REFRESH, json={"refresh_token": token})


async def refreshed(client: Any, token: str) -> str:
    response = await refresh(client, token)
    assert response.status == 200, await response.text()
    return (await response.json())["refresh_token"]


async def read_own(client: Any, created: dict[str, Any], tokens: dict[str, Any]) -> int:
    """The status of reading one's account with these tokens' access token."""
    return (await client.get(f"/api/v1/accounts/{created['id']}",
                             params={"min_position": created["position"]},
                             headers=bearer(tokens))).status


async def family_rows(client: Any) -> list[Any]:
    async with client.server.app[DATABASE].acquire() as conn:
        return await conn.fetch(
            "SELECT used_at, revoked_at FROM refresh_tokens ORDER BY issued_at, used_at")


async def test_two_simultaneous_refreshes_both_succeed_and_change_only_their_rows(
    app_client: Any,
) -> None:
    created = await register(app_client)
    tokens = await signed_in(app_client)
    answers = await asyncio.gather(*(refresh(app_client, tokens["refresh_token"]) for _ in "ab"))
    assert [a.status for a in answers] == [200, 200]
    bodies = [await a.json() for a in answers]
    rows = await family_rows(app_client)
    # the presented token used once, two fresh successors, nothing revoked
    assert len(rows) == 3 and all(r["revoked_at"] is None for r in rows)
    assert sum(r["used_at"] is not None for r in rows) == 1
    for body in bodies:  # both answers are usable
        assert await read_own(app_client, created, body) == 200
        await refreshed(app_client, body["refresh_token"])


async def test_simultaneous_refreshes_through_two_processes(service: Any) -> None:
    first, second = await service(), await service()
    await register(first)
    tokens = await signed_in(first)
    answers = await asyncio.gather(
        refresh(first, tokens["refresh_token"]), refresh(second, tokens["refresh_token"]))
    assert [a.status for a in answers] == [200, 200]
    for answer, client in zip(answers, (second, first), strict=True):
        await refreshed(client, (await answer.json())["refresh_token"])


async def test_a_retry_within_the_window_gets_another_successor(app_client: Any) -> None:
    created = await register(app_client)
    token = (await signed_in(app_client))["refresh_token"]
    lost = await refreshed(app_client, token)  # as if the response never arrived
    retry = await refresh(app_client, token)
    assert retry.status == 200
    body = await retry.json()
    assert body["refresh_token"] not in (lost, token)
    assert await read_own(app_client, created, body) == 200
    await refreshed(app_client, body["refresh_token"])
    await refreshed(app_client, lost)  # the first successor stays valid too


async def test_reuse_after_the_window_revokes_the_whole_family(service: Any) -> None:
    client = await service(refresh_reuse_grace_s=0.3)
    await register(client)
    token = (await signed_in(client))["refresh_token"]
    successor = await refreshed(client, token)
    within = await refreshed(client, token)
    await asyncio.sleep(0.5)
    assert (await refresh(client, token)).status == 401
    assert (await refresh(client, successor)).status == 401
    assert (await refresh(client, within)).status == 401
    assert all(r["revoked_at"] is not None for r in await family_rows(client))


async def test_a_logged_out_token_is_refused_within_the_window(app_client: Any) -> None:
    await register(app_client)
    tokens = await signed_in(app_client)
    successor = await refreshed(app_client, tokens["refresh_token"])
    out = await app_client.post("/api/v1/auth/logout",
                                json={"refresh_token": successor}, headers=bearer(tokens))
    assert out.status == 204
    assert (await refresh(app_client, tokens["refresh_token"])).status == 401
    assert (await refresh(app_client, successor)).status == 401


async def test_logout_racing_retries_leaves_no_live_token(app_client: Any) -> None:
    await register(app_client)
    token = (await signed_in(app_client))["refresh_token"]
    successor = await refreshed(app_client, token)
    answers = await asyncio.gather(
        app_client.post("/api/v1/auth/logout", json={"refresh_token": successor}),
        *(refresh(app_client, token) for _ in range(5)))
    assert answers[0].status == 204
    issued = [(await a.json())["refresh_token"] for a in answers[1:] if a.status == 200]
    for each in [token, successor, *issued]:
        assert (await refresh(app_client, each)).status == 401


async def test_an_expired_token_is_refused_within_the_window(service: Any) -> None:
    client = await service(refresh_token_ttl_s=1)
    await register(client)
    token = (await signed_in(client))["refresh_token"]
    successor = await refreshed(client, token)
    await asyncio.sleep(1.1)
    assert (await refresh(client, token)).status == 401
    assert (await refresh(client, successor)).status == 401


async def test_a_logout_waits_for_a_refresh_in_flight_and_revokes_its_successor(
    app_client: Any,
) -> None:
    await register(app_client)
    token = (await signed_in(app_client))["refresh_token"]
    await refreshed(app_client, token)
    database = app_client.server.app[DATABASE]
    async with database.acquire() as refreshing, database.acquire() as logging_out:
        in_flight = refreshing.transaction()
        await in_flight.start()
        retry = await sessions.rotate(refreshing, token, 3600, 10)  # not committed yet
        logout = asyncio.create_task(sessions.revoke_family_of(logging_out, token))
        await asyncio.sleep(0.2)
        assert not logout.done()  # it waits for the refresh to end
        await in_flight.commit()
        await logout
        assert await refreshing.fetchval(
            "SELECT revoked_at IS NOT NULL FROM refresh_tokens WHERE token_hash = $1",
            sessions.digest(retry.refresh_token))
