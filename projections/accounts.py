"""The accounts read model: one row per account, for staff lookups (never any secret)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

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
        "Account.Registered", "Account.ProfileChanged", "Account.PasswordChanged",
        "Account.RoleChanged", "Account.GoogleLinked", "Account.Deactivated",
        "Account.Erased",
    })

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        for event in await open_events(conn, events, _PERSONAL):
            d = event.data
            if event.type == "Account.Registered":
                await conn.execute(
                    f"INSERT INTO {ACCOUNTS_TABLE} (id, email, name, phone, role, status,"
                    " google_linked, consent_version, consent_at, version, registered_at,"
                    " updated_at) VALUES ($1,$2,$3,$4,$5,'active',$6,$7,$8,$9,"
                    " $10,$10)",
                    event.stream_id, d["email"], d["name"], d["phone"], d["role"],
                    d["google_subject"] is not None, d["consent_version"],
                    _instant(d["consent_at"]), event.version, event.recorded_at,
                )
            elif event.type == "Account.ProfileChanged":
                changes = {k: v for k, v in d["changes"].items() if k in _PROFILE_COLUMNS}
                await self._update(conn, event, changes)
            elif event.type == "Account.RoleChanged":
                await self._update(conn, event, {"role": d["role"]})
            elif event.type == "Account.GoogleLinked":
                await self._update(conn, event, {"google_linked": True})
            elif event.type == "Account.Deactivated":
                await self._update(conn, event, {"status": "deactivated"})
            elif event.type == "Account.Erased":
                await conn.execute(
                    f"UPDATE {ACCOUNTS_TABLE} SET email = $2, name = $2,"
                    " phone = CASE WHEN phone IS NULL THEN NULL ELSE $2 END,"
                    " status = 'erased', version = $3, updated_at = $4 WHERE id = $1",
                    event.stream_id, ERASED, event.version, event.recorded_at,
                )
            else:
                await self._update(conn, event, {})

    async def _update(
        self, conn: asyncpg.Connection, event: RecordedEvent, values: dict[str, object]
    ) -> None:
        names = sorted(values)  # column names come from the code above, never from input
        sets = "".join(f", {name} = ${n}" for n, name in enumerate(names, start=4))
        await conn.execute(
            f"UPDATE {ACCOUNTS_TABLE} SET version = $2, updated_at = $3{sets} WHERE id = $1",
            event.stream_id, event.version, event.recorded_at, *(values[n] for n in names),
        )


def _instant(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
