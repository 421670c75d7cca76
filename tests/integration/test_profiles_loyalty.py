"""Loyalty as reactions: spend raises the tier, completion awards points with the
tier multiplier, refunds take them back in proportion; replays change nothing."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from midas.http.keys import DATABASE, REPOSITORY, SETTINGS, STORE
from midas.projection import catch_up, reset
from process_managers.loyalty import LoyaltyProcess, tier_for
from tests.conftest import history_events
from tests.e2e.auth_support import bearer, register, signed_in
from tests.support.fake_stripe import wait_until


def test_tier_for_thresholds() -> None:
    thresholds = {"premium": 100, "vvip": 500}
    assert [tier_for(n, thresholds) for n in (0, 99, 100, 499, 500, 10**9)] == [
        "standard", "standard", "premium", "premium", "vvip", "vvip"]


async def _account_events(client: Any, customer: UUID) -> list[tuple[str, dict[str, Any]]]:
    import orjson

    async with client.server.app[DATABASE].acquire() as conn:
        rows = await conn.fetch("SELECT type, data FROM events WHERE stream_id = $1"
                                " ORDER BY version", customer)
    return [(r["type"], orjson.loads(r["data"])) for r in rows]


async def test_spend_raises_the_tier_and_completion_awards_points(
    booking_client: Any, auth: Any
) -> None:
    client = booking_client
    ada = await register(client)
    customer = UUID(ada["id"])
    tokens = await signed_in(client)
    store = client.server.app[STORE]
    # $80,000 + $8,000 insurance: 88,000 points at standard (x1.0); net spend 88,000.
    _, first = history_events(customer, rental=80_000_00, insurance=8_000_00 + 99)
    for append in first:
        await store.append(append)
    # $10,000 + $1,000 more: net 99,000 -> still standard ... then a third crosses 100k.
    _, second = history_events(customer, rental=10_000_00, insurance=1_000_00,
                               complete=False)
    for append in second:
        await store.append(append)
    _, third = history_events(customer, rental=2_000_00, insurance=0, refund=1_000_00)
    for append in third:
        await store.append(append)

    async def points() -> dict[str, Any]:
        r = await client.get(f"/api/v1/customers/{customer}/points", headers=bearer(tokens))
        assert r.status == 200, await r.text()
        return await r.json()

    async def settled() -> bool:
        r = await client.get(f"/api/v1/customers/{customer}/points", headers=bearer(tokens))
        if r.status == 404:  # the account's read model is not built yet
            return False
        view = await r.json()
        return view["tier"] == "premium" and len(view["history"]) == 3
    await wait_until(settled, timeout=15)
    view = await points()
    # third: 2,000 x 1.25 = 2,500 awarded at completion (tier raised at payment, before);
    # refund of half of what was paid takes back 1,250.
    assert [(h["kind"], h["points"]) for h in view["history"]] == [
        ("awarded", 88_000), ("awarded", 2_500), ("revoked", -1_250)]
    assert view["balance"] == 88_000 + 2_500 - 1_250
    events = await _account_events(client, customer)
    raised = [d for t, d in events if t == "Account.TierRaised"]
    assert [(d["tier"], d["net_spend"]) for d in raised] == [("premium", 101_000_99)]

    # The refund lowered net spend below 100k: the tier is never lowered automatically.
    async with client.server.app[DATABASE].acquire() as conn:
        net = await conn.fetchval("SELECT paid - refunded FROM cust_spend"
                                  " WHERE customer_id = $1", customer)
    assert net == 100_000_99

    # A replay (rebuild of the process) issues nothing new.
    app = client.server.app
    process = LoyaltyProcess(lambda: app[REPOSITORY], app[SETTINGS].loyalty_multipliers,
                             app[SETTINGS].tier_thresholds)
    async with app[DATABASE].acquire() as conn:
        await reset(conn, process)
    await catch_up(app[DATABASE], process)
    assert await _account_events(client, customer) == events

    # An admin sets the tier (with a reason); customers cannot.
    denied = await client.put(f"/api/v1/customers/{customer}/tier", headers=bearer(tokens),
                              json={"tier": "vvip", "reason": "self-service"})
    assert denied.status == 403
    missing = await client.put(f"/api/v1/customers/{customer}/tier", headers=auth("admin"),
                               json={"tier": "vvip"})
    assert missing.status == 422
    set_ = await client.put(f"/api/v1/customers/{customer}/tier", headers=auth("admin"),
                            json={"tier": "vvip", "reason": "board member"})
    assert set_.status == 200, await set_.text()
    position = (await set_.json())["position"]
    # vvip multiplier 1.5 for the next completion.
    _, fourth = history_events(customer, rental=1_000_00)
    for append in fourth:
        await store.append(append)

    async def vvip_award() -> bool:
        return len((await points())["history"]) == 4
    await wait_until(vvip_award, timeout=15)
    view = await points()
    assert view["tier"] == "vvip" and view["history"][-1]["points"] == 1_500
    r = await client.get(f"/api/v1/customers/{customer}", headers=auth("concierge"),
                         params={"min_position": position})
    profile = (await r.json())["profile"]
    assert profile["tier"] == "vvip" and profile["tier_reason"] == "board member"
    assert "vip" in profile["segments"] and profile["segment"] == "vip"
    assert profile["completed"] == 3 and "loyal" in profile["segments"]
