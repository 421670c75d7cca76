"""The auditor role: granted by a super admin (over HTTP or `midas users`), reads the log,
and changes nothing anywhere."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import asyncpg
from click.testing import CliRunner

from midas.cli import main
from midas.http.keys import DATABASE
from tests.e2e.auth_support import bearer, register, signed_in
from tests.support.fake_stripe import hold, make_item

PROBLEM = "application/problem+json"
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)  # the booking clock


def days(n: int) -> datetime:
    return NOW + timedelta(days=n)


async def _grant(client: Any, headers: dict[str, str], account_id: str, role: str) -> Any:
    return await client.put(f"/api/v1/accounts/{account_id}/role", json={"role": role},
                            headers=headers)


async def test_a_super_admin_grants_the_auditor_role_over_http(app_client: Any,
                                                               auth: Any) -> None:
    created = await register(app_client)
    by_admin = await _grant(app_client, auth("admin"), created["id"], "auditor")
    assert by_admin.status == 403
    granted = await _grant(app_client, auth("super_admin"), created["id"], "auditor")
    assert granted.status == 200, await granted.text()
    tokens = await signed_in(app_client)
    assert tokens["role"] == "auditor"
    log = await app_client.get("/api/v1/audit/events", headers=bearer(tokens))
    assert log.status == 200, await log.text()
    unknown = await _grant(app_client, auth("super_admin"), created["id"], "overlord")
    assert unknown.status == 422


async def _events(client: Any) -> int:
    async with client.server.app[DATABASE].acquire() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM events"))


async def test_an_auditor_can_hold_pay_or_take_a_feed_token_for_nothing(
    payment_services: Any, auth: Any, fake_stripe: Any
) -> None:
    client = await payment_services()
    car = await make_item(client, auth)
    customer = auth("customer")
    booking = await hold(client, customer, car, days(10), days(12))
    auditor_id = uuid4()
    auditor = auth("auditor", auditor_id)
    before, stripe_calls = await _events(client), len(fake_stripe.calls)
    attempts = [
        ("POST", "/api/v1/bookings", {"item_id": car, "start": days(20).isoformat(),
                                      "end": days(22).isoformat(),
                                      "service_level": "standard"}),
        ("POST", f"/api/v1/bookings/{booking['id']}/payments", None),
        ("POST", f"/api/v1/bookings/{booking['id']}/cancel", {}),
        ("POST", f"/api/v1/calendar/feeds/customers/{auditor_id}/token", None),
        ("PUT", f"/api/v1/accounts/{auditor_id}/profile", {"name": "Changed"}),
        ("POST", f"/api/v1/accounts/{auditor_id}/deactivate", None),
        ("POST", "/api/v1/errors", {"category": "system", "message": "x"}),
    ]
    for method, path, body in attempts:
        response = await client.request(method, path, json=body, headers=auditor)
        assert response.status == 403, (method, path, response.status, await response.text())
        assert response.content_type == PROBLEM
    assert await _events(client) == before
    assert len(fake_stripe.calls) == stripe_calls
    async with client.server.app[DATABASE].acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM cal_feed_tokens") == 0
        assert await conn.fetchval("SELECT count(*) FROM err_reports") == 0
    # What it may do: read, price a stay, and verify a checkpoint.
    assert (await client.get("/api/v1/audit/verify", headers=auditor)).status == 200
    quote = await client.post("/api/v1/quotes", headers=auditor, json={
        "item_id": car, "start": days(30).isoformat(), "end": days(31).isoformat(),
        "service_level": "standard"})
    assert quote.status == 200, await quote.text()
    assert await _events(client) == before


def _query(dsn: str, schema: str, sql: str, *args: Any) -> Any:
    async def run() -> Any:
        conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


def test_midas_users_grants_the_auditor_role(pg_dsn: str, schema: str) -> None:
    env = {"MIDAS_DATABASE_URL": pg_dsn, "MIDAS_DATABASE_SCHEMA": schema,
           "MIDAS_ENVIRONMENT": "test", "MIDAS_LOG_JSON": "false", "MIDAS_BCRYPT_ROUNDS": "4"}
    runner = CliRunner()
    created = runner.invoke(main, ["users", "create-admin", "ops@example.com", "--role",
                                   "auditor"], env=env, input="A long passphrase 1!\n")
    assert created.exit_code == 0, created.output
    assert "created auditor " in created.output
    other = runner.invoke(main, ["users", "create-admin", "Kim@Example.com", "--role", "admin"],
                          env=env, input="A long passphrase 2!\n")
    assert other.exit_code == 0, other.output
    granted = runner.invoke(main, ["users", "set-role", "kim@example.com", "auditor"], env=env)
    assert granted.exit_code == 0, granted.output
    assert "kim@example.com is now auditor" in granted.output.lower()
    rows = _query(pg_dsn, schema, "SELECT lower(email) AS email, role FROM auth_accounts"
                  " ORDER BY email")
    assert [(r["email"], r["role"]) for r in rows] == [("kim@example.com", "auditor"),
                                                       ("ops@example.com", "auditor")]
    [changed] = _query(pg_dsn, schema, "SELECT data, metadata FROM events"
                       " WHERE type = 'Account.RoleChanged'")
    assert '"auditor"' in changed["data"] and '"cli"' in changed["metadata"]
    again = runner.invoke(main, ["users", "set-role", "kim@example.com", "auditor"], env=env)
    assert again.exit_code == 0, again.output  # already so: nothing appended
    assert len(_query(pg_dsn, schema, "SELECT 1 FROM events"
                      " WHERE type = 'Account.RoleChanged'")) == 1
    unknown = runner.invoke(main, ["users", "set-role", "nobody@example.com", "auditor"],
                            env=env)
    assert unknown.exit_code != 0 and "no account" in unknown.output
    wrong = runner.invoke(main, ["users", "set-role", "kim@example.com", "overlord"], env=env)
    assert wrong.exit_code == 2

