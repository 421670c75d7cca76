"""Forged and stale access tokens are refused with 401, whatever the trick."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from midas.http.auth import Role, issue_access_token
from tests.e2e.auth_support import bearer, register, signed_in

LIST = "/api/v1/accounts"  # staff only: a forged admin token would open it


def claims(settings: Any, account_id: uuid.UUID, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"sub": str(account_id), "role": "admin", "jti": uuid.uuid4().hex, "iat": now,
            "exp": now + 600, "iss": settings.jwt_issuer, "aud": settings.jwt_audience}
    return {**base, **changes}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_signed(header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    """HS256 by hand: PyJWT itself refuses to use a PEM key as an HMAC secret."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


async def status_with(client: Any, token: str) -> int:
    response = await client.get(LIST, headers={"Authorization": f"Bearer {token}"})
    if response.status == 401:
        assert response.content_type == "application/problem+json"
    return response.status


async def test_a_genuine_admin_token_works(app_client: Any, auth: Any) -> None:
    assert (await app_client.get(LIST, headers=auth("admin"))).status == 200


async def test_alg_none_is_refused(app_client: Any, auth: Any, settings: Any) -> None:
    admin_id = uuid.uuid4()
    auth("admin", admin_id)
    unsigned = jwt.encode(claims(settings, admin_id), key=None, algorithm="none")
    assert await status_with(app_client, unsigned) == 401
    none_header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    header_only = f"{none_header}.{b64(json.dumps(claims(settings, admin_id)).encode())}."
    assert await status_with(app_client, header_only) == 401


async def test_rs_hs_confusion_is_refused(app_client: Any, auth: Any, settings: Any) -> None:
    admin_id = uuid.uuid4()
    auth("admin", admin_id)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    confused = hand_signed({"alg": "HS256", "typ": "JWT"}, claims(settings, admin_id),
                           public_pem)
    assert await status_with(app_client, confused) == 401
    rs256 = jwt.encode(claims(settings, admin_id), key, algorithm="RS256")
    assert await status_with(app_client, rs256) == 401


async def test_expired_wrong_audience_or_issuer_are_refused(
    app_client: Any, auth: Any, settings: Any
) -> None:
    admin_id = uuid.uuid4()
    auth("admin", admin_id)
    secret = settings.jwt_secret.get_secret_value()
    expired = issue_access_token(settings, admin_id, Role.ADMIN,
                                 now=datetime.now(UTC) - timedelta(minutes=16))
    assert await status_with(app_client, expired) == 401
    for change in ({"aud": "someone-else"}, {"iss": "evil"}, {"sub": "not-a-uuid"},
                   {"role": "emperor"}):
        forged = jwt.encode(claims(settings, admin_id, **change), secret, algorithm="HS256")
        assert await status_with(app_client, forged) == 401, change
    missing_jti = claims(settings, admin_id)
    del missing_jti["jti"]
    assert await status_with(app_client, jwt.encode(missing_jti, secret, "HS256")) == 401
    other_secret = jwt.encode(claims(settings, admin_id), "x" * 48, algorithm="HS256")
    assert await status_with(app_client, other_secret) == 401


async def test_tampered_payload_is_refused(app_client: Any, auth: Any, settings: Any) -> None:
    customer_id = uuid.uuid4()
    token = auth("customer", customer_id)["Authorization"].split()[1]
    assert await status_with(app_client, token) == 403
    header, _, signature = token.split(".")
    promoted = b64(json.dumps(claims(settings, customer_id, role="super_admin")).encode())
    assert await status_with(app_client, f"{header}.{promoted}.{signature}") == 401


async def test_a_token_for_an_unknown_account_is_refused(
    app_client: Any, settings: Any
) -> None:
    token = issue_access_token(settings, uuid.uuid4(), Role.SUPER_ADMIN)
    assert await status_with(app_client, token) == 401


async def test_tokens_of_a_deactivated_account_are_refused(
    app_client: Any, auth: Any
) -> None:
    created = await register(app_client)
    await app_client.put(f"/api/v1/accounts/{created['id']}/role", json={"role": "admin"},
                         headers=auth("super_admin"))
    admin = await signed_in(app_client)
    assert (await app_client.get(LIST, headers=bearer(admin))).status == 200
    await app_client.post(f"/api/v1/accounts/{created['id']}/deactivate",
                          headers=auth("super_admin"))
    assert await status_with(app_client, admin["access_token"]) == 401


async def test_malformed_authorization_headers(app_client: Any) -> None:
    for header in ("Basic abc", "Bearer", "Bearer not.a.token", "Bearer " + "a" * 5000):
        response = await app_client.get(LIST, headers={"Authorization": header})
        assert response.status == 401, header
