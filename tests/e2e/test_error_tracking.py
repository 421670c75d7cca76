"""Error tracking: with MIDAS_SENTRY_DSN set, an unexpected error reaches Sentry (here a
local endpoint taking the SDK's envelopes) without personal data or secrets."""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
from typing import Any
from uuid import uuid4

import sentry_sdk
from aiohttp import web
from pydantic import SecretStr

from midas.app import create_app
from midas.config import Settings

# Made at run time: the events carry the source lines around the failing one, and the
# values must not be found there only because this file spells them out.
EMAIL = f"ada.{uuid4().hex[:10]}@example.com"
PASSWORD = f"pw-{uuid4().hex}"
COOKIE, SIGNATURE, QUERY = (f"{what}-{uuid4().hex}" for what in ("cookie", "sig", "query"))
CLIENT_IP = f"203.0.113.{uuid4().int % 200 + 20}"


async def _sentry(aiohttp_server: Any) -> tuple[str, list[bytes]]:
    envelopes: list[bytes] = []

    async def envelope(request: web.Request) -> web.Response:
        envelopes.append(await request.read())  # aiohttp undoes the gzip encoding
        return web.json_response({"id": uuid4().hex})

    app = web.Application()
    app.router.add_post("/api/{project}/envelope/", envelope)
    server = await aiohttp_server(app)
    return f"http://publickey@127.0.0.1:{server.port}/42", envelopes


def _events(envelopes: list[bytes]) -> list[dict[str, Any]]:
    found = []
    for raw in envelopes:
        lines = raw.split(b"\n")
        for header, payload in itertools.pairwise(lines):
            try:
                if json.loads(header).get("type") == "event":
                    found.append(json.loads(payload))
            except ValueError:
                continue
    return found


async def test_an_unexpected_error_reaches_sentry_without_personal_data_or_secrets(
    aiohttp_server: Any, aiohttp_client: Any, settings: Settings, auth: Any,
) -> None:
    dsn, envelopes = await _sentry(aiohttp_server)
    app = create_app(settings.model_copy(update={"sentry_dsn": SecretStr(dsn)}))
    refresh_token = secrets.token_urlsafe(32)

    async def boom(request: web.Request) -> web.Response:
        customer_email, token = EMAIL, refresh_token  # local variables naming a person
        raise RuntimeError(f"could not reach {customer_email} with {token}")

    app.router.add_post("/api/v1/boom", boom)  # an unexpected failure in a handler
    client = await aiohttp_client(app)
    headers = {**auth("customer"), "Cookie": f"session={COOKIE}",
               "Stripe-Signature": f"t=1,v1={SIGNATURE}",
               "X-Forwarded-For": CLIENT_IP, "X-Request-Id": "req-sentry-1"}
    response = await client.post(
        f"/api/v1/boom?token={QUERY}&email={EMAIL}", headers=headers,
        json={"email": EMAIL, "password": PASSWORD, "refresh_token": refresh_token})
    assert response.status == 500
    await asyncio.to_thread(sentry_sdk.flush, 5)
    await client.close()

    events = _events(envelopes)
    assert events, "the error reached Sentry"
    event = next(e for e in events if e.get("exception"))
    assert event["exception"]["values"][-1]["type"] == "RuntimeError"
    assert event["request"]["method"] == "POST"
    assert event["request"]["url"].endswith("/api/v1/boom")
    kept = {k.lower(): v for k, v in event["request"]["headers"].items()}
    assert kept["x-request-id"] == "req-sentry-1"
    assert not {"authorization", "cookie", "stripe-signature", "x-forwarded-for"} & set(kept)
    sent = b"\n".join(envelopes).decode()
    bearer = headers["Authorization"].split()[1]
    for secret in (EMAIL, EMAIL.replace("@", "%40"), PASSWORD, refresh_token, bearer,
                   COOKIE, SIGNATURE, QUERY, CLIENT_IP):
        assert secret not in sent, secret
    frames = [f for v in event["exception"]["values"] for f in v["stacktrace"]["frames"]]
    assert frames and not any("vars" in f for f in frames)  # no local variables


async def test_no_dsn_no_sentry(app_client: Any) -> None:
    assert not sentry_sdk.get_client().is_active()
    assert (await app_client.get("/health")).status == 200
