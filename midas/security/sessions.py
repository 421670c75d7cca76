"""Refresh tokens: opaque, stored as sha256, rotated on every use, revoked by family.

A sign-in starts a family. Refreshing marks the presented token used and issues its
successor in the same family, in one transaction; the conditional UPDATE takes the row
lock, so of two concurrent refreshes with one token exactly one finds it unused. Any
later presentation of a used token is reuse (a stolen copy, or the loser of such a
race): the whole family is revoked.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from midas.eventstore import Statement

TABLE = "refresh_tokens"


class RefreshRefused(Exception):
    """Unknown, expired, revoked or reused: the client must sign in again."""


@dataclass(frozen=True)
class Session:
    account_id: UUID
    role: str
    refresh_token: str


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def start(
    conn: asyncpg.Connection, account_id: UUID, ttl_s: int, family_id: UUID | None = None
) -> str:
    """A new refresh token, in a new family unless one is given."""
    token = secrets.token_urlsafe(32)
    await conn.execute(
        f"INSERT INTO {TABLE} (token_hash, family_id, account_id, expires_at)"
        " VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
        digest(token), family_id or uuid.uuid4(), account_id, float(ttl_s),
    )
    return token


async def rotate(conn: asyncpg.Connection, token: str, ttl_s: int) -> Session:
    async with conn.transaction():
        row = await conn.fetchrow(
            f"UPDATE {TABLE} t SET used_at = now() FROM auth_accounts a"
            " WHERE t.token_hash = $1 AND t.used_at IS NULL AND t.revoked_at IS NULL"
            " AND t.expires_at > now() AND a.account_id = t.account_id AND a.active"
            " RETURNING t.family_id, t.account_id, a.role",
            digest(token),
        )
        if row is not None:
            successor = await start(conn, row["account_id"], ttl_s, row["family_id"])
            return Session(row["account_id"], row["role"], successor)
    # Refused; a used token presented again is reuse, so its family dies (committed).
    await conn.execute(
        f"UPDATE {TABLE} SET revoked_at = now() WHERE revoked_at IS NULL AND family_id ="
        f" (SELECT family_id FROM {TABLE} WHERE token_hash = $1 AND used_at IS NOT NULL)",
        digest(token),
    )
    raise RefreshRefused()


async def revoke_family_of(conn: asyncpg.Connection, token: str) -> None:
    await conn.execute(
        f"UPDATE {TABLE} SET revoked_at = now() WHERE revoked_at IS NULL AND family_id ="
        f" (SELECT family_id FROM {TABLE} WHERE token_hash = $1)",
        digest(token),
    )


def revoke_all(account_id: UUID) -> Statement:
    """Every session of an account (deactivation, password change), in the append."""
    return Statement(
        f"UPDATE {TABLE} SET revoked_at = now() WHERE account_id = $1 AND revoked_at IS NULL",
        (account_id,),
    )


async def revoke_access_token(conn: asyncpg.Connection, jti: str, expires_at: datetime) -> None:
    await conn.execute(
        "INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2)"
        " ON CONFLICT DO NOTHING",
        jti, expires_at,
    )
