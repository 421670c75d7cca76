"""Google sign-in against our own JWKS server and RSA key (no network)."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.e2e.auth_support import CONSENT, register, signed_in, verify_email

CLIENT_ID = "midas-web.apps.example"
KID = "test-key-1"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
async def google_client(
    aiohttp_server: Any, make_client: Any, settings: Any, rsa_key: rsa.RSAPrivateKey
) -> Any:
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True)
    fetches = []

    async def jwks(request: web.Request) -> web.Response:
        fetches.append(1)
        return web.json_response({"keys": [{**jwk, "kid": KID, "alg": "RS256", "use": "sig"}]})

    app = web.Application()
    app.router.add_get("/certs", jwks)
    server = await aiohttp_server(app)
    settings.google_jwks_url = str(server.make_url("/certs"))
    settings.google_client_id = CLIENT_ID
    client = await make_client()
    client.jwks_fetches = fetches
    return client


def id_token(key: Any, *, kid: str = KID, algorithm: str = "RS256", **changes: Any) -> str:
    now = int(time.time())
    claims = {"iss": "https://accounts.google.com", "aud": CLIENT_ID, "sub": "g-1001",
              "email": "ada@example.com", "email_verified": True, "name": "Ada Lovelace",
              "iat": now, "exp": now + 3600, **changes}
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid})


async def google(client: Any, token: str, consent: Any = CONSENT) -> Any:
    body = {"id_token": token, **({"consent": consent} if consent else {})}
    return await client.post("/api/v1/auth/google", json=body)


async def test_first_sign_in_creates_then_finds_the_account(
    google_client: Any, rsa_key: Any
) -> None:
    first = await google(google_client, id_token(rsa_key))
    assert first.status == 200, await first.text()
    tokens = await first.json()
    assert tokens["role"] == "customer" and tokens["refresh_token"]
    again = await google(google_client, id_token(rsa_key, iss="accounts.google.com"),
                         consent=None)
    assert (await again.json())["account_id"] == tokens["account_id"]
    assert len(google_client.jwks_fetches) == 1  # keys are cached
    mine = await google_client.get(f"/api/v1/accounts/{tokens['account_id']}", params={
        "min_position": 1}, headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert (await mine.json())["google_linked"] is True


async def test_links_an_existing_account_by_verified_email(
    google_client: Any, rsa_key: Any
) -> None:
    created = await register(google_client, email="Ada@Example.com")
    await verify_email(google_client, await signed_in(google_client))
    response = await google(google_client, id_token(rsa_key), consent=None)
    assert response.status == 200
    assert (await response.json())["account_id"] == created["id"]


async def test_a_new_account_needs_consent(google_client: Any, rsa_key: Any) -> None:
    response = await google(google_client, id_token(rsa_key), consent=None)
    assert response.status == 422
    assert (await response.json())["errors"][0]["field"] == "body.consent"


async def test_forged_or_foreign_id_tokens_are_refused(google_client: Any, rsa_key: Any) -> None:
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem_secret = "not-the-google-key-but-a-shared-secret-0123456789"
    bad_tokens = {
        "wrong audience": id_token(rsa_key, aud="someone-else"),
        "wrong issuer": id_token(rsa_key, iss="https://evil.example"),
        "expired": id_token(rsa_key, exp=int(time.time()) - 10),
        "unverified email": id_token(rsa_key, email_verified=False),
        "other key": id_token(other_key),
        "unknown kid": id_token(other_key, kid="nope"),
        "HS256": id_token(public_pem_secret, algorithm="HS256"),
        "garbage": "a.b.c",
    }
    for reason, token in bad_tokens.items():
        response = await google(google_client, token)
        assert response.status == 401, reason


async def test_unconfigured_google_sign_in_is_503(app_client: Any, rsa_key: Any) -> None:
    response = await google(app_client, id_token(rsa_key))
    assert response.status == 503 and "Retry-After" in response.headers
