"""Refresh tokens: opaque, stored as sha256, rotated on every use, revoked by family.

A sign-in starts a family. Refreshing marks the presented token used and issues its
successor in the same family, in one transaction; the conditional UPDATE takes the row
lock, so of two concurrent refreshes with one token exactly one finds it unused.

A used token presented again within the grace window (a double submit, or a retry after a
lost response) gets one more successor in the same family: the earlier successors stay
valid, and no stored token is ever handed out again (only hashes are kept). Later, it is
reuse (a stolen copy): the whole family is revoked. The window is measured by the
database's clock, like expiry, so every process agrees on it.

Revoking a family first locks its live rows, so that refreshes in flight finish and the
UPDATE (a later snapshot) sees the successors they commit. A token whose family has any
revoked row is refused anyway: the guard for a successor committed in between.
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

# Presentable: neither revoked nor expired, the account active, the family alive.
_PRESENTABLE = (
    " t.token_hash = $1 AND t.revoked_at IS NULL AND t.expires_at > now()"
    " AND a.account_id = t.account_id AND a.active"
    f" AND NOT EXISTS (SELECT 1 FROM {TABLE} r"
    "   WHERE r.family_id = t.family_id AND r.revoked_at IS NOT NULL)"
)
# clock_timestamp(), not now(): a refresh that waited for the winner's row lock started
# before the winner's used_at, and must still see the winner's use as in the past.
_WITHIN_GRACE = "t.used_at > clock_timestamp() - make_interval(secs => $2)"


class RefreshRefused(Exception):
    """Unknown, expired, revoked or reused: the client must sign in again."""


class RefreshReused(RefreshRefused):
    """A token used before the grace window, presented again: its family is revoked."""

    def __init__(self, account_id: UUID) -> None:
        super().__init__("refresh token reused")
        self.account_id = account_id


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


async def rotate(
    conn: asyncpg.Connection, token: str, ttl_s: int, grace_s: float = 0.0
) -> Session:
    """The successor of ``token``; a used one only within ``grace_s`` of its first use."""
    async with conn.transaction():
        row = await _use(conn, token) or await _just_used(conn, token, grace_s)
        if row is not None:
            successor = await start(conn, row["account_id"], ttl_s, row["family_id"])
            return Session(row["account_id"], row["role"], successor)
    reused = await _revoke_if_reused(conn, token, grace_s)  # committed, whatever happens
    if reused is not None:
        raise RefreshReused(reused)
    raise RefreshRefused()


async def _use(conn: asyncpg.Connection, token: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"UPDATE {TABLE} t SET used_at = now() FROM auth_accounts a"
        f" WHERE t.used_at IS NULL AND {_PRESENTABLE}"
        " RETURNING t.family_id, t.account_id, a.role",
        digest(token),
    )


async def _just_used(
    conn: asyncpg.Connection, token: str, grace_s: float
) -> asyncpg.Record | None:
    if grace_s <= 0:
        return None
    # FOR SHARE: concurrent re-presentations pass together, a revocation waits for them.
    return await conn.fetchrow(
        f"SELECT t.family_id, t.account_id, a.role FROM {TABLE} t, auth_accounts a"
        f" WHERE {_WITHIN_GRACE} AND {_PRESENTABLE} FOR SHARE OF t",
        digest(token), float(grace_s),
    )


async def _revoke_if_reused(
    conn: asyncpg.Connection, token: str, grace_s: float
) -> UUID | None:
    """Revoke the family of a token used before the grace window (refused in it: kept);
    the account whose family it was, if so."""
    row = await conn.fetchrow(
        f"SELECT family_id, account_id FROM {TABLE} t WHERE token_hash = $1"
        f" AND used_at IS NOT NULL AND NOT ({_WITHIN_GRACE})",
        digest(token), float(grace_s),
    )
    if row is None:
        return None
    await _revoke_family(conn, row["family_id"])
    return row["account_id"]


async def revoke_family_of(conn: asyncpg.Connection, token: str) -> None:
    family_id = await conn.fetchval(
        f"SELECT family_id FROM {TABLE} WHERE token_hash = $1", digest(token)
    )
    await _revoke_family(conn, family_id)


async def _revoke_family(conn: asyncpg.Connection, family_id: UUID | None) -> None:
    if family_id is None:
        return
    async with conn.transaction():
        # Wait for the family's refreshes in flight, so that the UPDATE (a later snapshot)
        # also sees the successors they commit.
        await conn.execute(
            f"SELECT 1 FROM {TABLE} WHERE family_id = $1 AND revoked_at IS NULL"
            " ORDER BY token_hash FOR UPDATE",
            family_id,
        )
        await conn.execute(
            f"UPDATE {TABLE} SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL",
            family_id,
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
