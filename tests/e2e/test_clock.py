"""The movable clock: admins move the service's time forward outside production, every
process follows, and the running timers fire as they would have in real time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from pydantic import SecretStr

from midas.config import Settings
from midas.http.auth import Role, issue_access_token
from midas.http.keys import CLOCK, DATABASE, SCHEDULER
from midas.http.ratelimit import system_clock
from tests.support.fake_stripe import booking_status, hold, make_item, wait_until

CLOCK_PATH = "/api/v1/admin/clock"


async def _advance(client: Any, headers: dict[str, str], seconds: float) -> Any:
    return await client.post(CLOCK_PATH, headers=headers, json={"advance_s": seconds})


async def _offset(client: Any, headers: dict[str, str]) -> float:
    response = await client.get(CLOCK_PATH, headers=headers)
    assert response.status == 200, await response.text()
    return float((await response.json())["offset_s"])


async def test_a_hold_expires_through_the_running_scheduler_after_31_minutes_not_29(
    service: Any, auth: Any
) -> None:
    client = await service(scheduler_poll_interval_s=0.2)
    admin = auth("admin")
    car = await make_item(client, auth)
    start = datetime.now(UTC) + timedelta(days=10)
    booking = (await hold(client, auth("customer", uuid4()), car, start,
                          start + timedelta(days=2)))["id"]

    async def task_written() -> bool:
        async with client.server.app[DATABASE].acquire() as conn:
            return bool(await conn.fetchval(
                "SELECT 1 FROM due_tasks WHERE id = $1", f"expire_hold:{booking}"))

    await wait_until(task_written)
    moved = await _advance(client, admin, 29 * 60)
    assert moved.status == 200, await moved.text()
    body = await moved.json()
    assert body["offset_s"] == 29 * 60
    assert abs(datetime.fromisoformat(body["now"]) - (datetime.now(UTC) + timedelta(
        minutes=29))) < timedelta(seconds=30)
    await asyncio.sleep(0.5)  # the running scheduler makes passes at the moved time
    assert await client.server.app[SCHEDULER].run_due() == 0  # and one more, to be sure
    assert await booking_status(client, booking) == "held"  # 29 min: within the 30

    assert (await _advance(client, admin, 2 * 60)).status == 200  # 31 min after the hold

    async def expired() -> bool:
        return await booking_status(client, booking) == "expired"

    await wait_until(expired)  # nobody ran the scheduler: its own loop did
    async with client.server.app[DATABASE].acquire() as conn:
        at = await conn.fetchval("SELECT data->>'at' FROM events WHERE type = 'Booking.Expired'")
    assert datetime.fromisoformat(at) - datetime.now(UTC) > timedelta(minutes=30)


async def test_every_process_follows_the_moved_clock(service: Any, auth: Any) -> None:
    first, second = await service(), await service()
    admin = auth("admin")
    assert await _offset(second, admin) == 0
    assert (await _advance(first, admin, 3600)).status == 200
    assert (await _advance(first, admin, 0.5)).status == 200

    async def followed() -> bool:
        return second.server.app[CLOCK].offset == timedelta(seconds=3600.5)

    await wait_until(followed)  # announced, not re-read on request
    assert await _offset(second, admin) == 3600.5
    assert second.server.app[CLOCK]() - datetime.now(UTC) > timedelta(minutes=59)
    third = await service()  # a process started later reads it at start-up
    assert third.server.app[CLOCK].offset == timedelta(seconds=3600.5)


async def test_only_forward_only_admins_and_at_most_a_year(service: Any, auth: Any) -> None:
    client = await service()
    for seconds in (0, -1, 366 * 24 * 3600 + 1, "soon"):
        refused = await _advance(client, auth("admin"), seconds)  # type: ignore[arg-type]
        assert refused.status == 422, seconds
        assert (await refused.json())["errors"][0]["field"] == "body.advance_s"
    assert (await _advance(client, auth("admin"), 366 * 24 * 3600)).status == 200
    for role in ("concierge", "customer", "auditor"):
        assert (await _advance(client, auth(role), 60)).status == 403, role
    assert (await client.post(CLOCK_PATH, json={"advance_s": 60})).status == 401
    assert (await client.get(CLOCK_PATH, headers=auth("concierge"))).status == 200
    assert await _offset(client, auth("admin")) == 366 * 24 * 3600


async def test_production_keeps_the_system_clock_and_has_no_clock_route(
    settings: Settings, aiohttp_client: Any, auth: Any
) -> None:
    from midas.app import create_app

    production = settings.model_copy(update={
        "environment": "production", "jwt_secret": SecretStr("p" * 40),
        "stripe_secret_key": SecretStr("sk_live_configured"),
        "stripe_webhook_secret": SecretStr("whsec_configured"),
        "public_base_url": "https://midas.test"})
    client = await aiohttp_client(create_app(production))
    assert client.server.app[CLOCK] is system_clock
    account = uuid4()
    auth("admin", account)  # the account's sign-in row (every token's account is checked)
    admin = {"Authorization": "Bearer " + issue_access_token(production, account, Role.ADMIN)}
    moved = await _advance(client, admin, 60)
    assert moved.status == 404, await moved.text()
    assert (await client.get(CLOCK_PATH, headers=admin)).status == 404
    assert (await client.get("/health")).status == 200
