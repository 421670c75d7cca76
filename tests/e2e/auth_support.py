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
