"""Error reporting and alerts.

Server-side unhandled errors and client apps' reports are recorded (scrubbed of secrets)
with a category, a severity, the request id and the amount at risk. Per category, the
service's own errors in the last ``error_window_s`` (5 min) are counted after each report;
reaching the category's threshold raises ONE alert for the window: a row of ``err_alerts``
(the webhook's outbox, delivered by the notification workers) and an email to ops (the
email outbox), written in the report's transaction. A per-category advisory lock
serialises the decision, so several processes never raise two alerts for one window.

Client reports are anyone's word (``POST /api/v1/errors`` is open to anonymous callers):
they are recorded as sent but never count towards those thresholds. All of them together
count towards ``client_error_threshold``, which raises at most one ``client`` alert per
window.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

import aiohttp
import asyncpg
import orjson

from midas.config import Settings
from midas.eventstore import Database
from midas.notifications.outbox import OPS, enqueue

log = logging.getLogger(__name__)
REPORTS_TABLE, ALERTS_TABLE = "err_reports", "err_alerts"
SERVER, CLIENT = "server", "client"  # where a report comes from


class Category(StrEnum):
    PAYMENT = "payment"
    BOOKING = "booking"
    AUTHENTICATION = "authentication"
    SYSTEM = "system"
    USER_EXPERIENCE = "user_experience"
    INTEGRATION = "integration"


class Severity(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


# -- scrubbing -------------------------------------------------------------------------------

REDACTED = "[redacted]"
# Key names dropped when they contain one of these ...
_SECRET_PARTS = ("password", "passwd", "passphrase", "secret", "token", "authorization",
                 "cookie", "card", "cvc", "cvv", "apikey", "api_key", "credential",
                 "private_key", "iban", "signature")
# ... or have one of these as a whole word (pin, not shipping).
_SECRET_WORDS = frozenset({"auth", "pin", "pan", "number", "key", "session", "otp", "ssn",
                           "expiry", "exp", "jwt", "bearer"})
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_VALUE_PATTERNS = [
    re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*"),  # JWTs
    re.compile(r"(?i)\bbearer\s+\S+"),
    re.compile(r"\b(?:sk|pk|rk|whsec)_(?:live|test)?_?\w+"),  # API keys
    re.compile(r"\b(?:\d[ -]?){12,18}\d\b"),  # card-like digit runs
    re.compile(r"(?i)\b(password|passwd|token|secret|api_?key|cvc|cvv)=[^&\s]+"),
]
MAX_DEPTH, MAX_ITEMS, MAX_TEXT = 6, 50, 2000


def is_secret_key(name: str) -> bool:
    lowered = name.lower()
    if any(part in lowered for part in _SECRET_PARTS):
        return True
    words = {w.lower() for w in _WORDS.findall(name)}
    return bool(words & _SECRET_WORDS)


def scrub_text(text: str) -> str:
    for pattern in _VALUE_PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text[:MAX_TEXT]


def scrub(value: Any, depth: int = 0) -> Any:
    """A copy without secret keys and with secret-looking values redacted (plain JSON)."""
    if depth > MAX_DEPTH:
        return REDACTED
    if isinstance(value, Mapping):
        return {str(k)[:100]: scrub(v, depth + 1)
                for k, v in list(value.items())[:MAX_ITEMS] if not is_secret_key(str(k))}
    if isinstance(value, (list, tuple)):
        return [scrub(v, depth + 1) for v in list(value)[:MAX_ITEMS]]
    if isinstance(value, str):
        return scrub_text(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return scrub_text(str(value))


# -- recording and thresholds ----------------------------------------------------------------


@dataclass(frozen=True)
class ErrorReport:
    category: Category
    severity: Severity
    message: str
    source: str = SERVER  # SERVER (the service's own code) | CLIENT (a client app's word)
    request_id: str | None = None
    account_id: UUID | None = None
    context: Mapping[str, Any] = field(default_factory=dict)
    amount_at_risk: int | None = None
    currency: str | None = None


@dataclass(frozen=True)
class Recorded:
    id: int
    alert_id: int | None  # the alert this report raised, if it crossed a threshold


async def record_error(
    db: Database, settings: Settings, report: ErrorReport, now: datetime
) -> Recorded:
    async with db.acquire() as conn, conn.transaction():
        report_id = await conn.fetchval(
            f"INSERT INTO {REPORTS_TABLE} (occurred_at, source, category, severity, message,"
            " request_id, account_id, context, amount_at_risk, currency)"
            " VALUES ($1,$2,$3,$4,$5,$6,$7,$8::jsonb,$9,$10) RETURNING id",
            now, report.source, report.category.value, report.severity.value,
            scrub_text(report.message), report.request_id, report.account_id,
            orjson.dumps(scrub(dict(report.context))).decode(), report.amount_at_risk,
            report.currency,
        )
        alert_id = await _check_threshold(conn, db, settings, report, now)
    if alert_id is not None:
        log.warning("error threshold crossed: alert raised",
                    extra={"category": report.category.value, "alert": alert_id})
    return Recorded(report_id, alert_id)


async def _check_threshold(
    conn: asyncpg.Connection, db: Database, settings: Settings, report: ErrorReport,
    now: datetime,
) -> int | None:
    if report.source == CLIENT:
        return await _check_client_threshold(conn, db, settings, report, now)
    category = report.category.value
    threshold = settings.error_thresholds.get(category)
    high_only = category in settings.error_high_only
    if threshold is None or (high_only and report.severity is not Severity.HIGH):
        return None
    await conn.execute("SELECT pg_advisory_xact_lock($1)", db.lock_key(f"errors:{category}"))
    since = now - timedelta(seconds=settings.error_window_s)
    if await _alerted(conn, category, since):
        return None  # this window already has its alert
    rows = await conn.fetch(
        f"SELECT severity, amount_at_risk, currency FROM {REPORTS_TABLE}"
        " WHERE category = $1 AND source <> $5 AND occurred_at > $2 AND occurred_at <= $3"
        " AND ($4 = false OR severity = 'high')",
        category, since, now, high_only, CLIENT,
    )
    if len(rows) < threshold:
        return None
    at_risk: dict[str, int] = {}
    for row in rows:
        if row["amount_at_risk"]:
            cur = row["currency"] or "USD"
            at_risk[cur] = at_risk.get(cur, 0) + row["amount_at_risk"]
    minutes = settings.error_window_s // 60
    detail = {
        "category": category, "count": len(rows), "threshold": threshold,
        "window_minutes": minutes, "latest": scrub_text(report.message)[:300],
        "severity": report.severity.value, "request_id": report.request_id,
        "amount_at_risk": at_risk,
    }
    title = f"{len(rows)} {category} error(s) in {minutes} min (threshold {threshold})"
    return await raise_alert(conn, settings, f"threshold:{category}:{now.isoformat()}",
                             category, title, detail, now)


async def _check_client_threshold(
    conn: asyncpg.Connection, db: Database, settings: Settings, report: ErrorReport,
    now: datetime,
) -> int | None:
    """Client reports choose their own category, severity and amount, so none of them is
    trusted: every client report counts towards one threshold of its own, and the alert
    names what clients claimed per category, never an amount at risk."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", db.lock_key(f"errors:{CLIENT}"))
    since = now - timedelta(seconds=settings.error_window_s)
    if await _alerted(conn, CLIENT, since):
        return None
    threshold = settings.client_error_threshold
    rows = await conn.fetch(
        f"SELECT category, count(*) AS n FROM {REPORTS_TABLE}"
        " WHERE source = $1 AND occurred_at > $2 AND occurred_at <= $3 GROUP BY category",
        CLIENT, since, now,
    )
    count = sum(row["n"] for row in rows)
    if count < threshold:
        return None
    minutes = settings.error_window_s // 60
    detail = {
        "source": CLIENT, "count": count, "threshold": threshold, "window_minutes": minutes,
        "by_category": {row["category"]: row["n"] for row in rows},
        "latest": scrub_text(report.message)[:300], "request_id": report.request_id,
    }
    title = (f"{count} client-reported error(s) in {minutes} min (threshold {threshold});"
             " severities and amounts as clients claimed them, unverified")
    return await raise_alert(conn, settings, f"threshold:{CLIENT}:{now.isoformat()}",
                             CLIENT, title, detail, now)


async def _alerted(conn: asyncpg.Connection, category: str, since: datetime) -> bool:
    return bool(await conn.fetchval(
        f"SELECT 1 FROM {ALERTS_TABLE} WHERE category = $1 AND key LIKE 'threshold:%'"
        " AND raised_at > $2", category, since,
    ))


async def raise_alert(
    conn: asyncpg.Connection, settings: Settings, key: str, category: str, title: str,
    detail: Mapping[str, Any], now: datetime, *, email: bool = True,
) -> int | None:
    """Record an alert once per key (webhook outbox) and email ops, in the caller's
    transaction. None when the key was already raised."""
    alert_id = await conn.fetchval(
        f"INSERT INTO {ALERTS_TABLE} (key, category, title, detail, raised_at, webhook_status,"
        " webhook_next_at) VALUES ($1, $2, $3, $4::jsonb, $5, $6, $5)"
        " ON CONFLICT (key) DO NOTHING RETURNING id",
        key, category, title, orjson.dumps(dict(detail)).decode(), now,
        "pending" if settings.alert_webhook_url else "none",
    )
    if alert_id is not None and email:
        lines = [f"{k}: {v}" for k, v in detail.items() if v not in (None, {}, "")]
        await enqueue(conn, f"alert:{key}", "alert", OPS, None,
                      {"title": title, "lines": lines}, now)
    return alert_id


async def alert_projection_failure(
    db: Database, settings: Settings, projection: str, position: int, error: str,
    now: datetime,
) -> int | None:
    """A read model stopped at an event: a high-severity system report, and one alert per
    projection and position (a second process failing on it raises none)."""
    title = f"projection {projection} fails on the event at position {position}"
    detail = {"projection": projection, "position": position, "error": error,
              "severity": Severity.HIGH.value,
              "repair": "see docs/architecture.md, 'A poisonous event'"}
    async with db.acquire() as conn, conn.transaction():
        await conn.execute(
            f"INSERT INTO {REPORTS_TABLE} (occurred_at, source, category, severity, message,"
            " context) VALUES ($1, 'server', $2, $3, $4, $5::jsonb)",
            now, Category.SYSTEM.value, Severity.HIGH.value, scrub_text(f"{title}: {error}"),
            orjson.dumps({"projection": projection, "position": position}).decode())
        alert_id = await raise_alert(conn, settings, f"projection:{projection}:{position}",
                                     Category.SYSTEM.value, title, detail, now)
    if alert_id is not None:
        log.warning("projection failure: alert raised",
                    extra={"projection": projection, "position": position, "alert": alert_id})
    return alert_id


# -- the webhook -----------------------------------------------------------------------------

WEBHOOK_BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15))


def slack_payload(title: str, category: str, detail: Mapping[str, Any]) -> dict[str, Any]:
    fields = [{"title": k, "value": str(v), "short": len(str(v)) < 40}
              for k, v in detail.items() if v not in (None, {}, "")]
    return {
        "text": f":rotating_light: Midas alert: {title}",
        "attachments": [{"color": "danger", "title": f"{category} errors", "fields": fields}],
    }


async def deliver_alerts(
    db: Database, settings: Settings, session: aiohttp.ClientSession, now: datetime,
    batch: int = 20,
) -> int:
    """POST pending alerts to the webhook (claimed with SKIP LOCKED); the number sent."""
    url = settings.alert_webhook_url
    if not url:
        return 0
    sent = 0
    async with db.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            f"SELECT id, category, title, detail, webhook_attempts FROM {ALERTS_TABLE}"
            " WHERE webhook_status = 'pending' AND webhook_next_at <= $1"
            " ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED", now, batch,
        )
        for row in rows:
            detail = orjson.loads(row["detail"]) if isinstance(row["detail"], str) else row[
                "detail"]
            ok = False
            try:
                async with session.post(url, json=slack_payload(row["title"], row["category"],
                                                                  detail),
                                        timeout=aiohttp.ClientTimeout(total=10)) as response:
                    ok = response.status < 300
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            if ok:
                sent += 1
                await conn.execute(f"UPDATE {ALERTS_TABLE} SET webhook_status = 'sent',"
                                   " webhook_attempts = webhook_attempts + 1 WHERE id = $1",
                                   row["id"])
                continue
            attempts = row["webhook_attempts"] + 1
            final = attempts > len(WEBHOOK_BACKOFF)
            await conn.execute(
                f"UPDATE {ALERTS_TABLE} SET webhook_attempts = $2, webhook_status = $3,"
                " webhook_next_at = $4 WHERE id = $1",
                row["id"], attempts, "failed" if final else "pending",
                now + (WEBHOOK_BACKOFF[attempts - 1] if not final else timedelta(0)),
            )
            log.warning("alert webhook failed", extra={"alert": row["id"], "attempts": attempts})
    return sent
