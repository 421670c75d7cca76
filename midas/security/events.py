"""Security events: an append-only record of what an attacker's attempts look like.

Kinds: failed sign-ins, lockouts, refresh-token reuse, permission refusals, webhook
signature failures, and erasures (legitimate, but irreversible: each is on record). Rows of
``security_events`` (migration 119) are never changed or deleted (a trigger refuses it).
No secret is ever written: no password, token or signature; an email that matches no
account is kept only as a keyed hash (``subject_of``), so a record can be matched to an
email by whoever holds the key (the audit API's ``email`` filter) but never read back.

Every record counts towards the authentication alert threshold
(``MIDAS_ERROR_THRESHOLDS["authentication"]`` within ``MIDAS_ERROR_WINDOW_S``: 10 in 5
minutes): reaching it raises one alert for the window through ``midas.error_reports.raise_alert``
(the webhook and the ops email). They are counted in ``/metrics`` by kind
(``midas_security_events_total``, from this table, the same from every process).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

import orjson

from midas.config import Settings
from midas.error_reports import raise_alert
from midas.eventstore import Database

log = logging.getLogger(__name__)
TABLE = "security_events"
ALERT_CATEGORY = "authentication"


class Kind(StrEnum):
    LOGIN_FAILED = "login_failed"
    LOCKOUT = "lockout"
    REFRESH_REUSE = "refresh_reuse"
    PERMISSION_REFUSED = "permission_refused"
    WEBHOOK_SIGNATURE_FAILED = "webhook_signature_failed"
    ERASURE = "erasure"


@dataclass(frozen=True)
class SecurityEvent:
    kind: Kind
    account_id: UUID | None = None
    subject: str | None = None
    actor: str | None = None
    client_ip: str | None = None
    route: str | None = None
    request_id: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


def subject_key(settings: Settings) -> bytes:
    """The key of ``subject_of``'s hashes, derived from the JWT secret."""
    return hashlib.sha256(b"midas security events\0" + settings.jwt_secret
                          .get_secret_value().encode()).digest()


def subject_of(settings: Settings, email: str) -> str:
    """A keyed hash of an email as typed (trimmed, lower case): equal emails, equal
    subjects; the email itself cannot be read back from it."""
    normal = email.strip().lower().encode()
    return "email:" + hmac.new(subject_key(settings), normal, hashlib.sha256).hexdigest()[:32]


async def record(db: Database, settings: Settings, event: SecurityEvent, now: datetime
                 ) -> int | None:
    """Append ``event``; the id of the alert it raised, if it reached the threshold."""
    async with db.acquire() as conn, conn.transaction():
        await conn.execute(
            f"INSERT INTO {TABLE} (occurred_at, kind, account_id, subject, actor, client_ip,"
            " route, request_id, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)",
            now, event.kind.value, event.account_id, event.subject, event.actor,
            event.client_ip, event.route, event.request_id,
            orjson.dumps(dict(event.detail)).decode())
        alert = await _check_threshold(conn, db, settings, event, now)
    log.warning("security event", extra={"kind": event.kind.value, "alert": alert,
                                         "account": str(event.account_id or "")})
    return alert


async def record_quietly(db: Database, settings: Settings, event: SecurityEvent,
                         now: datetime) -> None:
    """``record``, where a failure to record must not change the answer (logged)."""
    try:
        await record(db, settings, event, now)
    except Exception:
        log.warning("security event not recorded", extra={"kind": event.kind.value},
                    exc_info=True)


async def _check_threshold(conn: Any, db: Database, settings: Settings,
                           event: SecurityEvent, now: datetime) -> int | None:
    threshold = settings.error_thresholds.get(ALERT_CATEGORY)
    if threshold is None:
        return None
    await conn.execute("SELECT pg_advisory_xact_lock($1)", db.lock_key("security-alert"))
    since = now - timedelta(seconds=settings.error_window_s)
    rows = await conn.fetch(
        f"SELECT kind, count(*) AS n FROM {TABLE} WHERE occurred_at > $1 AND occurred_at <= $2"
        " GROUP BY kind ORDER BY kind", since, now)
    total = sum(r["n"] for r in rows)
    if total < threshold or await conn.fetchval(
            "SELECT 1 FROM err_alerts WHERE key LIKE 'security:%' AND raised_at > $1", since):
        return None
    minutes = settings.error_window_s // 60
    detail = {"count": total, "threshold": threshold, "window_minutes": minutes,
              "by_kind": {r["kind"]: r["n"] for r in rows}, "latest": event.kind.value}
    title = f"{total} security event(s) in {minutes} min (threshold {threshold})"
    return await raise_alert(conn, settings, f"security:{now.isoformat()}", ALERT_CATEGORY,
                             title, detail, now)
