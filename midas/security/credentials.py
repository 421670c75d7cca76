"""The ``auth_accounts`` table: sign-in state kept beside the account's events.

Rows are written by ``Statement``s in the append transaction of the account's events
(so email uniqueness, role, status and the password hash change atomically with them),
except the lockout counters, which are throttling state, not account history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple
from uuid import UUID

import asyncpg

from midas.eventstore import Statement


class Access(NamedTuple):
    """An account as the auth middleware sees it, with the token asked about."""

    role: str
    active: bool
    revoked: bool  # the token
    email_verified: bool


TABLE = "auth_accounts"


@dataclass(frozen=True)
class Credentials:
    account_id: UUID
    role: str
    active: bool
    password_hash: str | None
    locked_until: datetime | None
    email_verified: bool = False

    def lockout_wait(self, now: datetime) -> int | None:
        """Whole seconds (at least 1) until a lockout ends; None when not locked."""
        if self.locked_until is None or self.locked_until <= now:
            return None
        return max(1, int((self.locked_until - now).total_seconds() + 0.999))


_COLUMNS = "account_id, role, active, password_hash, locked_until, email_verified"


def insert(
    account_id: UUID, email: str, role: str, password_hash: str | None,
    google_subject: str | None = None, email_verified: bool = False,
) -> Statement:
    return Statement(
        f"INSERT INTO {TABLE} (account_id, email, role, password_hash, google_subject,"
        " email_verified) VALUES ($1, $2, $3, $4, $5, $6)",
        (account_id, email, role, password_hash, google_subject, email_verified),
    )


def set_password(account_id: UUID, password_hash: str) -> Statement:
    return Statement(
        f"UPDATE {TABLE} SET password_hash = $2, updated_at = now() WHERE account_id = $1",
        (account_id, password_hash),
    )


def set_fields(account_id: UUID, **fields: object) -> Statement:
    """Mirror email, role, active, google_subject or email_verified (column names are
    ours, not input)."""
    allowed = {"email", "role", "active", "google_subject", "email_verified"}
    if not fields or set(fields) - allowed:
        raise ValueError(f"unexpected fields {sorted(fields)}")
    names = sorted(fields)
    sets = ", ".join(f"{name} = ${n}" for n, name in enumerate(names, start=2))
    return Statement(
        f"UPDATE {TABLE} SET {sets}, updated_at = now() WHERE account_id = $1",
        (account_id, *(fields[name] for name in names)),
    )


def erase(account_id: UUID) -> Statement:
    """GDPR erasure: the login email becomes a placeholder no email can match (it has no
    ``@``), the Google link, the hash and the counters go, and the account is inactive."""
    return Statement(
        f"UPDATE {TABLE} SET email = 'erased:' || account_id::text, active = false,"
        " password_hash = NULL, google_subject = NULL, failed_logins = 0, lockouts = 0,"
        " locked_until = NULL, updated_at = now() WHERE account_id = $1",
        (account_id,),
    )


def release(account_id: UUID) -> Statement:
    """An unverified email given up to an account that proved control of it: the login
    email becomes a placeholder no email can match (no ``@``), the password and the
    Google link go, and the account is inactive."""
    return Statement(
        f"UPDATE {TABLE} SET email = 'released:' || account_id::text, active = false,"
        " password_hash = NULL, google_subject = NULL, updated_at = now()"
        " WHERE account_id = $1",
        (account_id,),
    )


async def by_email(conn: asyncpg.Connection, email: str) -> Credentials | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM {TABLE} WHERE lower(email) = lower($1)", email.strip()
    )
    return Credentials(**dict(row)) if row else None


async def by_id(conn: asyncpg.Connection, account_id: UUID) -> Credentials | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM {TABLE} WHERE account_id = $1",
                              account_id)
    return Credentials(**dict(row)) if row else None



async def by_google_subject(conn: asyncpg.Connection, subject: str) -> UUID | None:
    return await conn.fetchval(
        f"SELECT account_id FROM {TABLE} WHERE google_subject = $1", subject
    )


async def email_owner(conn: asyncpg.Connection, email: str) -> UUID | None:
    return await conn.fetchval(
        f"SELECT account_id FROM {TABLE} WHERE lower(email) = lower($1)", email.strip()
    )


async def record_failure(
    conn: asyncpg.Connection, account_id: UUID, now: datetime,
    *, threshold: int, base_s: int, max_s: int,
) -> datetime | None:
    """Count a failed login; the threshold-th in a row locks, twice as long each time."""
    return await conn.fetchval(
        f"""UPDATE {TABLE} SET
              failed_logins = CASE WHEN failed_logins + 1 >= $2 THEN 0 ELSE failed_logins + 1 END,
              lockouts = CASE WHEN failed_logins + 1 >= $2 THEN lockouts + 1 ELSE lockouts END,
              locked_until = CASE WHEN failed_logins + 1 >= $2
                  THEN $3::timestamptz
                       + make_interval(secs => least($4 * power(2, least(lockouts, 30)), $5))
                  ELSE locked_until END
            WHERE account_id = $1 RETURNING locked_until""",
        account_id, threshold, now, float(base_s), float(max_s),
    )


async def record_success(conn: asyncpg.Connection, account_id: UUID) -> None:
    await conn.execute(
        f"UPDATE {TABLE} SET failed_logins = 0, lockouts = 0, locked_until = NULL"
        " WHERE account_id = $1 AND (failed_logins <> 0 OR lockouts <> 0)",
        account_id,
    )


async def access_of(conn: asyncpg.Connection, account_id: UUID, jti: str | None) -> Access | None:
    """What the auth middleware checks, and whether the email is verified: one indexed
    lookup."""
    row = await conn.fetchrow(
        f"SELECT role, active, EXISTS (SELECT 1 FROM revoked_access_tokens WHERE jti = $2)"
        f" AS revoked, email_verified FROM {TABLE} WHERE account_id = $1",
        account_id, jti or "",
    )
    return Access(row["role"], row["active"], row["revoked"], row["email_verified"]) if row \
        else None
