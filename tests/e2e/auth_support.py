"""Helpers of the account and auth tests: sign up and sign in over HTTP."""

from __future__ import annotations

from typing import Any

PASSWORD = "Correct-Horse-42"
CONSENT = {"version": "2026-01", "accepted": True}


async def register(client: Any, email: str = "ada@example.com", password: str = PASSWORD,
                   name: str = "Ada Lovelace", **extra: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/auth/register", json={
        "email": email, "name": name, "password": password, "consent": CONSENT, **extra})
    assert response.status == 201, await response.text()
    return await response.json()


async def login(client: Any, email: str = "ada@example.com",
                password: str = PASSWORD) -> Any:
    return await client.post("/api/v1/auth/login", json={"email": email, "password": password})


async def signed_in(client: Any, email: str = "ada@example.com",
                    password: str = PASSWORD) -> dict[str, Any]:
    response = await login(client, email, password)
    assert response.status == 200, await response.text()
    return await response.json()


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def verify_email(client: Any, tokens: dict[str, Any]) -> dict[str, Any]:
    """Confirm the account's live verification link as its owner would, signed in, with the
    token that link carries (derived from the server's secret, as the emailed one is)."""
    from uuid import UUID

    from midas.http.keys import DATABASE, SETTINGS
    from midas.security.verification import token_for

    app = client.server.app
    async with app[DATABASE].acquire() as conn:
        verification_id = await conn.fetchval(
            "SELECT id FROM auth_email_verifications WHERE account_id = $1"
            " AND used_at IS NULL AND revoked_at IS NULL", UUID(tokens["account_id"]))
    assert verification_id is not None, "no live verification link"
    response = await client.post("/api/v1/auth/verify-email", headers=bearer(tokens),
                                 json={"token": token_for(app[SETTINGS], verification_id)})
    assert response.status == 200, await response.text()
    return await response.json()
