"""Progressive lockout (on an injected clock) and per-IP limits shared by service processes."""

from __future__ import annotations

from typing import Any

from tests.e2e.auth_support import login, register

WRONG = "Wrong-password-0"


async def fail(client: Any, times: int) -> list[int]:
    return [(await login(client, password=WRONG)).status for _ in range(times)]


async def test_lockout_doubles_and_resets_on_success(
    make_client: Any, settings: Any, clock: Any
) -> None:
    settings.login_rate_limit = 1000
    client = await make_client(clock)
    await register(client)

    assert await fail(client, 5) == [401] * 5
    locked = await login(client)  # even the right password waits
    assert locked.status == 429
    assert locked.headers["Retry-After"] == str(15 * 60)
    clock.advance(minutes=14, seconds=59)
    assert (await login(client)).status == 429
    clock.advance(seconds=1)

    assert await fail(client, 5) == [401] * 5  # second lockout: 30 min
    assert (await login(client)).headers["Retry-After"] == str(30 * 60)
    clock.advance(minutes=30)
    assert await fail(client, 5) == [401] * 5  # third: 60 min
    assert (await login(client)).headers["Retry-After"] == str(60 * 60)
    clock.advance(hours=1)

    assert (await login(client)).status == 200  # success resets count and escalation
    assert await fail(client, 4) == [401] * 4
    assert (await login(client)).status == 200
    assert await fail(client, 5) == [401] * 5
    assert (await login(client)).headers["Retry-After"] == str(15 * 60)


async def test_lockout_is_capped_at_a_day(make_client: Any, settings: Any, clock: Any) -> None:
    settings.login_rate_limit = 1000
    client = await make_client(clock)
    await register(client)
    for _ in range(9):  # 15 min x 2^8 would be 64 h
        assert await fail(client, 5) == [401] * 5
        retry = int((await login(client)).headers["Retry-After"])
        clock.advance(seconds=retry)
    assert retry == 24 * 3600


async def test_login_limit_holds_across_two_instances(
    make_client: Any, settings: Any, clock: Any
) -> None:
    settings.login_rate_limit = 6
    first, second = await make_client(clock), await make_client(clock)
    statuses = []
    for n in range(10):
        statuses.append((await login(first if n % 2 else second, "x@example.com")).status)
    assert statuses == [401] * 6 + [429] * 4
    refused = await login(first)
    assert refused.content_type == "application/problem+json"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    clock.advance(minutes=1)
    assert (await login(second, "x@example.com")).status == 401


async def test_registration_and_refresh_are_limited_per_ip(
    make_client: Any, settings: Any, clock: Any
) -> None:
    settings.register_rate_limit = 2
    settings.refresh_rate_limit = 3
    first, second = await make_client(clock), await make_client(clock)
    await register(first, email="a@example.com")
    await register(second, email="b@example.com")
    third = await second.post("/api/v1/auth/register", json={
        "email": "c@example.com", "name": "C", "password": "Long-enough-1",
        "consent": {"version": "1", "accepted": True}})
    assert third.status == 429 and "Retry-After" in third.headers
    statuses = [
        (await c.post("/api/v1/auth/refresh", json={"refresh_token": "nope"})).status
        for c in (first, second, first, second)
    ]
    assert statuses == [401, 401, 401, 429]
