"""The accounts read model: one row per account, for staff lookups (never any secret)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import asyncpg

from midas.domain.account_events import (
    ACCOUNT_DEACTIVATED,
    ACCOUNT_EMAIL_CHANGE_REQUESTED,
    ACCOUNT_EMAIL_RELEASED,
    ACCOUNT_EMAIL_VERIFICATION_REQUESTED,
    ACCOUNT_EMAIL_VERIFIED,
    ACCOUNT_ERASED,
    ACCOUNT_GOOGLE_LINKED,
    ACCOUNT_PASSWORD_CHANGED,
    ACCOUNT_PROFILE_CHANGED,
    ACCOUNT_REGISTERED,
    ACCOUNT_ROLE_CHANGED,
)
from midas.domain.accounts import ERASED, Account
from midas.eventstore import RecordedEvent
from midas.security.pii import open_events, personal_paths

ACCOUNTS_TABLE = "acc_accounts"
_PROFILE_COLUMNS = ("name", "phone", "email")
_PERSONAL = personal_paths([Account])  # decrypted here; "[erased]" once the key is shredded


class AccountsProjector:
    name = "accounts"
    tables = (ACCOUNTS_TABLE,)
    handles = frozenset({
        ACCOUNT_REGISTERED, ACCOUNT_PROFILE_CHANGED, ACCOUNT_PASSWORD_CHANGED,
        ACCOUNT_ROLE_CHANGED, ACCOUNT_GOOGLE_LINKED, ACCOUNT_DEACTIVATED, ACCOUNT_ERASED,
        ACCOUNT_EMAIL_VERIFICATION_REQUESTED, ACCOUNT_EMAIL_CHANGE_REQUESTED,
        ACCOUNT_EMAIL_VERIFIED, ACCOUNT_EMAIL_RELEASED,
    })

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        for event in await open_events(conn, events, _PERSONAL):
            if event.type == ACCOUNT_REGISTERED:
                d = ACCOUNT_REGISTERED.of(event)
                await conn.execute(
                    f"INSERT INTO {ACCOUNTS_TABLE} (id, email, name, phone, role, status,"
                    " google_linked, consent_version, consent_at, version, registered_at,"
                    " updated_at) VALUES ($1,$2,$3,$4,$5,'active',$6,$7,$8,$9,"
                    " $10,$10)",
                    event.stream_id, d["email"], d["name"], d["phone"], d["role"],
                    d["google_subject"] is not None, d["consent_version"],
                    _instant(d["consent_at"]), event.version, event.recorded_at,
                )
            elif event.type == ACCOUNT_PROFILE_CHANGED:
                changes = {k: v for k, v in ACCOUNT_PROFILE_CHANGED.of(event)["changes"].items()
                           if k in _PROFILE_COLUMNS}
                await self._update(conn, event, changes)
            elif event.type == ACCOUNT_ROLE_CHANGED:
                await self._update(conn, event, {"role": ACCOUNT_ROLE_CHANGED.of(event)["role"]})
            elif event.type == ACCOUNT_GOOGLE_LINKED:
                await self._update(conn, event, {"google_linked": True})
            elif event.type == ACCOUNT_DEACTIVATED:
                await self._update(conn, event, {"status": "deactivated"})
            elif event.type == ACCOUNT_ERASED:
                await conn.execute(
                    f"UPDATE {ACCOUNTS_TABLE} SET email = $2, name = $2,"
                    " phone = CASE WHEN phone IS NULL THEN NULL ELSE $2 END,"
                    " pending_email = NULL,"
                    " status = 'erased', version = $3, updated_at = $4 WHERE id = $1",
                    event.stream_id, ERASED, event.version, event.recorded_at,
                )
            elif event.type == ACCOUNT_EMAIL_RELEASED:
                await self._update(conn, event, {"pending_email": None})
            elif event.type in _VERIFICATION_SQL:
                await conn.execute(
                    f"UPDATE {ACCOUNTS_TABLE} SET {_VERIFICATION_SQL[event.type]},"
                    " version = $2, updated_at = $3 WHERE id = $1",
                    event.stream_id, event.version, event.recorded_at, _address(event),
                )
            else:
                await self._update(conn, event, {})

    async def _update(
        self, conn: asyncpg.Connection, event: RecordedEvent, values: Mapping[str, object]
    ) -> None:
        names = sorted(values)  # column names come from the code above, never from input
        sets = "".join(f", {name} = ${n}" for n, name in enumerate(names, start=4))
        await conn.execute(
            f"UPDATE {ACCOUNTS_TABLE} SET version = $2, updated_at = $3{sets} WHERE id = $1",
            event.stream_id, event.version, event.recorded_at, *(values[n] for n in names),
        )


# How each verification event changes a row ($4: the event's address). The pending email is
# the address of a change awaiting proof (a link for the current address is not a change).
_VERIFICATION_SQL: dict[str, str] = {
    ACCOUNT_EMAIL_VERIFICATION_REQUESTED:
        "pending_email = CASE WHEN email = $4::text THEN pending_email ELSE $4::text END",
    ACCOUNT_EMAIL_CHANGE_REQUESTED: "pending_email = $4::text",
    ACCOUNT_EMAIL_VERIFIED: "email = $4::text, email_verified = true, pending_email ="
                            " CASE WHEN pending_email = $4::text THEN NULL ELSE pending_email END",
}


def _address(event: RecordedEvent) -> str:
    """The address a verification event is about."""
    if event.type == ACCOUNT_EMAIL_VERIFICATION_REQUESTED:
        return ACCOUNT_EMAIL_VERIFICATION_REQUESTED.of(event)["email"]
    if event.type == ACCOUNT_EMAIL_CHANGE_REQUESTED:
        return ACCOUNT_EMAIL_CHANGE_REQUESTED.of(event)["email"]
    return ACCOUNT_EMAIL_VERIFIED.of(event)["email"]


def _instant(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
