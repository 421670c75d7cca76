"""Google ID tokens: RS256 only, our client id as audience, Google as issuer, not expired.

Keys come from the JWKS URL in settings, fetched with aiohttp and cached; an unknown
``kid`` refetches at most once a minute (Google rotates its keys).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt

from midas import tracing

ISSUERS = ("accounts.google.com", "https://accounts.google.com")
_REFETCH_MIN_S = 60.0


class InvalidGoogleToken(Exception):
    """Forged, expired, for another client, or with an unverified email."""


class GoogleUnavailable(Exception):
    """Google's keys cannot be fetched right now (or sign-in is not configured)."""


@dataclass(frozen=True)
class GoogleIdentity:
    subject: str
    email: str
    name: str


class GoogleVerifier:
    def __init__(self, jwks_url: str, client_id: str | None, ttl_s: float = 3600) -> None:
        self._url = jwks_url
        self._client_id = client_id
        self._ttl_s = ttl_s
        self._keys: dict[str, Any] = {}
        self._fetched_at = -1e9
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def verify(self, id_token: str) -> GoogleIdentity:
        if not self._client_id:
            raise GoogleUnavailable("Google sign-in is not configured")
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError:
            raise InvalidGoogleToken("malformed token") from None
        if header.get("alg") != "RS256":
            raise InvalidGoogleToken("unexpected algorithm")
        key = await self._key(str(header.get("kid", "")))
        try:
            claims = jwt.decode(
                id_token, key, algorithms=["RS256"], audience=self._client_id,
                issuer=ISSUERS, options={"require": ["sub", "email", "iss", "aud", "exp"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidGoogleToken(type(exc).__name__) from None
        if claims.get("email_verified") not in (True, "true"):
            raise InvalidGoogleToken("the Google email is not verified")
        email = str(claims["email"])
        return GoogleIdentity(str(claims["sub"]), email, str(claims.get("name") or email))

    async def _key(self, kid: str) -> Any:
        async with self._lock:
            stale = time.monotonic() - self._fetched_at > self._ttl_s
            missing = kid not in self._keys
            if stale or (missing and time.monotonic() - self._fetched_at > _REFETCH_MIN_S):
                await self._fetch()
            if kid not in self._keys:
                raise InvalidGoogleToken("unknown signing key")
            return self._keys[kid]

    async def _fetch(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        try:
            with tracing.span("google keys fetch", {"midas.provider": "google"},
                              kind="client"):
                async with self._session.get(self._url) as response:
                    response.raise_for_status()
                    document = await response.json(content_type=None)
            keys = jwt.PyJWKSet.from_dict(document).keys
        except (aiohttp.ClientError, TimeoutError, ValueError, jwt.PyJWTError):
            raise GoogleUnavailable("Google's keys are unavailable") from None
        self._keys = {k.key_id: k.key for k in keys if k.key_id}
        self._fetched_at = time.monotonic()
