"""Email verification links: the ``auth_email_verifications`` table and the link tokens.

A link's token is never stored anywhere, not even in the outbox: it is an HMAC of the
verification's id under a key derived from ``MIDAS_JWT_SECRET``, computed when the email
is rendered and when the link is presented. The table keeps its sha256 (to find the row),
the address to prove and, for a change, the address to tell. Whether a link is still
valid is the Account aggregate's decision (the latest link, once, before it expires); the
rows change in the append transaction of its events, so they always agree with it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from midas.config import Settings
from midas.eventstore import Statement

TABLE = "auth_email_verifications"
_PURPOSE = b"midas email verification link"


@dataclass(frozen=True)
class Link:
    """A verification found by its token."""

    verification_id: UUID
    account_id: UUID


def new_id() -> UUID:
    return uuid.uuid4()


def token_for(settings: Settings, verification_id: UUID) -> str:
    """The token of a verification's link (url-safe, 256 bits), derived, never stored."""
    secret = settings.jwt_secret.get_secret_value().encode()
    key = hmac.new(secret, _PURPOSE, hashlib.sha256).digest()
    mac = hmac.new(key, verification_id.bytes, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def issue(
    settings: Settings, verification_id: UUID, account_id: UUID, email: str,
    previous_email: str | None, expires_at: datetime,
) -> list[Statement]:
    """A new link for an account (in its event's append); earlier live links end."""
    return [
        revoke_all(account_id),
        Statement(
            f"INSERT INTO {TABLE} (id, account_id, email, previous_email, token_hash,"
            " expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
            (verification_id, account_id, email, previous_email,
             digest(token_for(settings, verification_id)), expires_at),
        ),
    ]


def mark_used(verification_id: UUID) -> Statement:
    return Statement(f"UPDATE {TABLE} SET used_at = now() WHERE id = $1", (verification_id,))


def revoke_all(account_id: UUID) -> Statement:
    """Every live link of an account (a newer link, a released email)."""
    return Statement(
        f"UPDATE {TABLE} SET revoked_at = now()"
        " WHERE account_id = $1 AND used_at IS NULL AND revoked_at IS NULL",
        (account_id,),
    )


def revoke_for(account_id: UUID, email: str) -> Statement:
    """The live links of an account for ``email`` (verified otherwise: by Google)."""
    return Statement(
        f"UPDATE {TABLE} SET revoked_at = now() WHERE account_id = $1 AND email = $2"
        " AND used_at IS NULL AND revoked_at IS NULL",
        (account_id, email),
    )


def erase(account_id: UUID) -> Statement:
    """GDPR erasure: the addresses go with the rows."""
    return Statement(f"DELETE FROM {TABLE} WHERE account_id = $1", (account_id,))


async def find(conn: asyncpg.Connection, token: str) -> Link | None:
    row = await conn.fetchrow(
        f"SELECT id, account_id FROM {TABLE} WHERE token_hash = $1", digest(token)
    )
    return Link(row["id"], row["account_id"]) if row else None
