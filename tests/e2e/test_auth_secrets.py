"""No password, hash or token in logs, events or error bodies."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from midas.http.keys import DATABASE
from tests.e2e.auth_support import PASSWORD, bearer, register, signed_in

WRONG = "Wrong-secret-pass-77"
NEW = "Fresh-secret-pass-88"
SHORT = "tiny-pw"


async def test_secrets_stay_out_of_logs_events_and_errors(
    app_client: Any, caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[str] = []

    async def call(method: str, path: str, **kw: Any) -> Any:
        response = await app_client.request(method, path, **kw)
        text = await response.text()
        if response.status >= 400:
            errors.append(text)
        return response, text

    created = await register(app_client)
    await call("POST", "/api/v1/auth/register", json={
        "email": "b@example.com", "name": "B", "password": SHORT,
        "consent": {"version": "1", "accepted": True}})
    await call("POST", "/api/v1/auth/register", json={
        "email": "ada@example.com", "name": "B", "password": PASSWORD,
        "consent": {"version": "1", "accepted": True}})  # 409 duplicate
    await call("POST", "/api/v1/auth/login", json={"email": "ada@example.com",
                                                   "password": WRONG})
    await call("POST", "/api/v1/auth/login", json={"email": "x@example.com", "password": 7})
    tokens = await signed_in(app_client)
    _, text = await call("POST", "/api/v1/auth/refresh",
                         json={"refresh_token": tokens["refresh_token"]})
    rotated = json.loads(text)
    # within the grace window a second presentation gets tokens too; after logout, a 401
    _, text = await call("POST", "/api/v1/auth/refresh",
                         json={"refresh_token": tokens["refresh_token"]})
    retried = json.loads(text)
    await call("POST", "/api/v1/auth/logout", json={"refresh_token": retried["refresh_token"]})
    await call("POST", "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    path = f"/api/v1/accounts/{created['id']}/password"
    await call("PUT", path, json={"current_password": WRONG, "new_password": NEW},
               headers=bearer(tokens))
    await call("PUT", path, json={"current_password": PASSWORD, "new_password": SHORT},
               headers=bearer(tokens))
    fresh = await signed_in(app_client)
    await call("PUT", path, json={"current_password": PASSWORD, "new_password": NEW},
               headers=bearer(fresh))
    await call("GET", "/api/v1/accounts", headers={"Authorization": "Bearer " + WRONG})

    async with app_client.server.app[DATABASE].acquire() as conn:
        hashes = [r["password_hash"] for r in await conn.fetch(
            "SELECT password_hash FROM auth_accounts")]
        stored_refresh = [bytes(r["token_hash"]).hex() for r in await conn.fetch(
            "SELECT token_hash FROM refresh_tokens")]
        events = "\n".join(
            f"{r['type']} {r['data']} {r['metadata']}"
            for r in await conn.fetch("SELECT type, data::text, metadata::text FROM events"))
    assert "Account.PasswordChanged" in events and hashes and stored_refresh

    secrets = [PASSWORD, WRONG, NEW, SHORT, *hashes, *stored_refresh,
               tokens["access_token"], tokens["refresh_token"], fresh["access_token"],
               fresh["refresh_token"], rotated["access_token"], rotated["refresh_token"],
               retried["access_token"], retried["refresh_token"],
               hashlib.sha256(PASSWORD.encode()).hexdigest()]
    logs = caplog.text + "\n".join(str(vars(record)) for record in caplog.records)
    for secret in secrets:
        assert secret not in logs
        assert secret not in events
        assert all(secret not in body for body in errors)
    assert len(errors) >= 8


async def test_the_idempotency_store_never_keeps_a_secret(app_client: Any) -> None:
    await register(app_client)
    key = {"Idempotency-Key": "sign-in-1"}
    for path, body in [
        ("/api/v1/auth/login", {"email": "ada@example.com", "password": PASSWORD}),
        ("/api/v1/auth/register", {"email": "b@example.com", "name": "B",
                                   "password": PASSWORD,
                                   "consent": {"version": "1", "accepted": True}}),
        ("/api/v1/auth/refresh", {"refresh_token": "x" * 40}),
    ]:
        response = await app_client.post(path, json=body, headers=key)
        assert response.status == 400, path
    async with app_client.server.app[DATABASE].acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM idempotency_keys") == 0
