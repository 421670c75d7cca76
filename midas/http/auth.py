"""Who is calling: roles, the principal of a request, access tokens (JWT)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from uuid import UUID

import jwt
from aiohttp import web

from midas.config import Settings


class Role(StrEnum):
    CUSTOMER = "customer"
    CONCIERGE = "concierge"
    ADMIN = "admin"
    SUPER_ADMIN = "super_admin"
    AUDITOR = "auditor"  # read-only access to the event log


STAFF = frozenset({Role.CONCIERGE, Role.ADMIN, Role.SUPER_ADMIN})
ADMINS = frozenset({Role.ADMIN, Role.SUPER_ADMIN})
AUDITORS = frozenset({Role.AUDITOR, Role.SUPER_ADMIN})


class InvalidToken(Exception):
    """The token is missing a claim, expired, forged or otherwise unusable."""


@dataclass(frozen=True)
class Principal:
    account_id: UUID
    role: Role
    token_id: str | None = None
    expires_at: int | None = None  # the token's exp (Unix seconds)

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF


def issue_access_token(
    settings: Settings, account_id: UUID, role: Role, *, now: datetime | None = None
) -> str:
    issued = now or datetime.now(UTC)
    claims = {
        "sub": str(account_id),
        "role": role.value,
        "jti": uuid.uuid4().hex,
        "iat": int(issued.timestamp()),
        "exp": int((issued + timedelta(seconds=settings.access_token_ttl_s)).timestamp()),
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
    }
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), settings.jwt_algorithm)


def decode_access_token(settings: Settings, token: str) -> Principal:
    """Verify signature (only the configured algorithm), expiry, issuer and audience."""
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=[settings.jwt_algorithm],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["sub", "role", "jti", "iat", "exp", "iss", "aud"]},
        )
        return Principal(UUID(claims["sub"]), Role(claims["role"]), claims["jti"], claims["exp"])
    except (jwt.PyJWTError, ValueError, KeyError) as exc:
        raise InvalidToken(type(exc).__name__) from None


PRINCIPAL = web.RequestKey("principal", Principal)


class VerifiedTokens:
    """Access tokens already verified, kept until they expire (verifying is pure).

    Revocation is not cached here: the middleware checks the account on every request.
    """

    def __init__(self, settings: Settings, size: int = 10_000) -> None:
        self._settings = settings
        self._size = size
        self._known: dict[str, Principal] = {}

    def principal(self, token: str, now: float | None = None) -> Principal:
        moment = time.time() if now is None else now
        known = self._known.get(token)
        if known is not None:
            if known.expires_at is not None and known.expires_at > moment:
                return known
            del self._known[token]
            raise InvalidToken("ExpiredSignatureError")
        principal = decode_access_token(self._settings, token)
        if len(self._known) >= self._size:
            self._known.pop(next(iter(self._known)))
        self._known[token] = principal
        return principal


def current_principal(request: web.Request) -> Principal | None:
    return request.get(PRINCIPAL)


def require_principal(request: web.Request) -> Principal:
    principal = current_principal(request)
    if principal is None:  # the permission middleware normally answers 401 first
        raise web.HTTPUnauthorized(headers={"WWW-Authenticate": "Bearer"})
    return principal
