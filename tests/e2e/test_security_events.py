"""Security events over HTTP: each kind recorded (without secrets), visible to auditors
through the audit API, append-only, and alerting at the authentication threshold."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from midas.config import Settings
from midas.http.keys import DATABASE, SETTINGS
from midas.security.events import Kind, SecurityEvent, record, subject_of
from tests.e2e.auth_support import PASSWORD, login, register, signed_in
from tests.support.fake_stripe import deliver, event, sign, wait_until


async def _records(client: Any, kind: str | None = None) -> list[dict[str, Any]]:
    async with client.server.app[DATABASE].acquire() as conn:
        rows = await conn.fetch(
            "SELECT * FROM security_events WHERE ($1::text IS NULL OR kind = $1) ORDER BY id",
            kind)
    return [dict(r) for r in rows]


async def _audit(client: Any, auth: Any, **query: Any) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/audit/security-events", params=query,
                                headers=auth("auditor"))
    assert response.status == 200, await response.text()
    return (await response.json())["events"]


def _dump(records: list[dict[str, Any]]) -> str:
    return json.dumps(records, default=str)


async def test_failed_sign_ins_name_the_account_or_only_a_keyed_hash_of_the_email(
    app_client: Any, auth: Any, settings: Settings,
) -> None:
    account = UUID((await register(app_client, "ada@example.com"))["id"])
    assert (await login(app_client, "ada@example.com", "wrong-password-1")).status == 401
    assert (await login(app_client, "nobody@example.com", "wrong-password-2")).status == 401
    await signed_in(app_client, "ada@example.com")  # a success records nothing

    known, unknown = await _records(app_client, "login_failed")
    assert (known["account_id"], json.loads(known["detail"])) == (
        account, {"reason": "wrong_password"})
    assert known["route"] == "POST /api/v1/auth/login" and known["client_ip"]
    assert unknown["account_id"] is None
    assert unknown["subject"] == subject_of(settings, " Nobody@Example.com ")
    dump = _dump(await _records(app_client))
    for secret in ("nobody@example.com", "wrong-password-1", "wrong-password-2", PASSWORD):
        assert secret not in dump
    # Auditors find both by email, and nothing about another one.
    assert [e["kind"] for e in await _audit(app_client, auth, email="NOBODY@example.com")
            ] == ["login_failed"]
    assert [e["account_id"] for e in await _audit(app_client, auth, email="ada@example.com")
            ] == [str(account)]
    assert await _audit(app_client, auth, email="someone@example.com") == []


async def test_a_lockout_and_the_sign_ins_it_refuses(service: Any) -> None:
    client = await service(lockout_threshold=3)
    account = UUID((await register(client, "bob@example.com"))["id"])
    for n in range(2):
        assert (await login(client, "bob@example.com", f"wrong-{n}-password")).status == 401
    assert await _records(client, "lockout") == []  # one failure short of the threshold
    assert (await login(client, "bob@example.com", "wrong-2-password")).status == 401
    [lockout] = await _records(client, "lockout")
    assert lockout["account_id"] == account and "until" in json.loads(lockout["detail"])
    assert (await login(client, "bob@example.com", PASSWORD)).status == 429
    reasons = [json.loads(r["detail"])["reason"] for r in await _records(client,
                                                                         "login_failed")]
    assert reasons == ["wrong_password"] * 3 + ["locked"]


async def test_refresh_token_reuse(service: Any) -> None:
    client = await service(refresh_reuse_grace_s=0)
    account = UUID((await register(client, "eve@example.com"))["id"])
    first = (await signed_in(client, "eve@example.com"))["refresh_token"]
    rotated = await client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert rotated.status == 200
    assert await _records(client, "refresh_reuse") == []
    unknown = await client.post("/api/v1/auth/refresh", json={"refresh_token": "x" * 43})
    assert unknown.status == 401
    assert await _records(client, "refresh_reuse") == []  # unknown is not reuse
    reused = await client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert reused.status == 401
    [record_] = await _records(client, "refresh_reuse")
    assert record_["account_id"] == account
    dump = _dump(await _records(client))
    assert first not in dump and (await rotated.json())["refresh_token"] not in dump


async def test_permission_refusals(app_client: Any, auth: Any) -> None:
    customer = uuid4()
    refused = await app_client.post("/api/v1/items", headers=auth("customer", customer), json={
        "name": "Huracan", "category": "car", "location": "US-CA", "rate": 150_000})
    assert refused.status == 403
    anonymous = await app_client.post("/api/v1/items", json={})
    assert anonymous.status == 401  # not signed in: not a refusal of a permission
    allowed = await app_client.get("/api/v1/items", headers=auth("customer", customer))
    assert allowed.status == 200
    [record_] = await _records(app_client, "permission_refused")
    assert (record_["account_id"], record_["actor"], record_["route"]) == (
        customer, str(customer), "POST /api/v1/items")
    assert json.loads(record_["detail"]) == {"role": "customer"}
    assert "Bearer" not in _dump([record_])


async def test_webhook_signature_failures(payment_services: Any, fake_paypal: Any) -> None:
    client = await payment_services()
    payload = event("payment_intent.succeeded", {"id": "pi_1", "object": "payment_intent"})
    forged = sign(payload, secret="whsec_not_ours")
    assert (await deliver(client, payload, forged)).status == 400
    fake_paypal.answer = "INVALID"
    ipn = b"txn_id=T1&payment_status=Completed&mc_gross=1.00&mc_currency=USD"
    assert (await client.post("/api/v1/webhooks/paypal", data=ipn)).status == 200

    async def both() -> bool:
        return len(await _records(client, "webhook_signature_failed")) == 2

    await wait_until(both, timeout=30)
    stripe, paypal = await _records(client, "webhook_signature_failed")
    assert (stripe["actor"], paypal["actor"]) == ("stripe", "paypal")
    assert forged.split("v1=")[1] not in _dump([stripe, paypal])


async def test_erasures(app_client: Any, auth: Any) -> None:
    account = UUID((await register(app_client, "gone@example.com"))["id"])
    admin = uuid4()
    erased = await app_client.post(f"/api/v1/accounts/{account}/erase",
                                   headers=auth("super_admin", admin))
    assert erased.status == 200, await erased.text()
    again = await app_client.post(f"/api/v1/accounts/{account}/erase",
                                  headers=auth("super_admin", admin))
    assert again.status == 200
    [record_] = await _records(app_client, "erasure")  # once: the second erased nothing
    assert (record_["account_id"], record_["actor"]) == (account, str(admin))
    listed = await _audit(app_client, auth, kind="erasure")
    assert [e["account_id"] for e in listed] == [str(account)]


async def test_the_record_is_append_only(app_client: Any) -> None:
    assert (await login(app_client, "x@example.com", "not-the-password")).status == 401
    async with app_client.server.app[DATABASE].acquire() as conn:
        for statement in ("UPDATE security_events SET kind = 'nothing'",
                          "DELETE FROM security_events", "TRUNCATE security_events"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(statement)
        assert await conn.fetchval("SELECT count(*) FROM security_events") == 1


async def test_only_auditors_read_the_record_and_they_page_through_it(
    app_client: Any, auth: Any,
) -> None:
    for n in range(3):
        assert (await login(app_client, f"u{n}@example.com", "not-the-password")).status == 401
    assert (await app_client.get("/api/v1/audit/security-events",
                                 headers=auth("admin"))).status == 403
    first = await _audit(app_client, auth, limit=2)
    response = await app_client.get("/api/v1/audit/security-events", headers=auth("auditor"),
                                    params={"limit": 2, "after": first[-1]["id"]})
    body = await response.json()
    assert len(first) == 2 and len(body["events"]) == 2 and body["next_after"] is not None
    # the admin's refusal above is the fourth record
    assert [e["kind"] for e in first + body["events"]] == ["login_failed"] * 3 + [
        "permission_refused"]
    bad = await app_client.get("/api/v1/audit/security-events", headers=auth("auditor"),
                               params={"kind": "everything"})
    assert bad.status == 422


async def test_ten_in_five_minutes_raise_one_alert(app_client: Any) -> None:
    app = app_client.server.app
    db, settings = app[DATABASE], app[SETTINGS]
    assert settings.error_thresholds["authentication"] == 10
    start = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    old = SecurityEvent(Kind.LOGIN_FAILED, subject="email:old")
    assert await record(db, settings, old, start - timedelta(minutes=5)) is None
    alerts = [await record(db, settings, SecurityEvent(Kind.LOGIN_FAILED, subject=f"s{n}"),
                           start + timedelta(seconds=n)) for n in range(11)]
    # The one five minutes before is out of the window: the tenth inside it alerts, once.
    assert alerts[:9] == [None] * 9 and alerts[9] is not None and alerts[10] is None
    async with db.acquire() as conn:
        alert = await conn.fetchrow("SELECT category, title, detail FROM err_alerts")
        email = await conn.fetchval(
            "SELECT template FROM notif_outbox WHERE dedupe_key LIKE 'alert:security:%'")
    assert alert["category"] == "authentication" and email == "alert"
    assert json.loads(alert["detail"])["by_kind"] == {"login_failed": 10}
    await asyncio.sleep(0)
