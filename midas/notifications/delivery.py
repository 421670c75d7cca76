"""Delivery: outbox rows -> SMTP, through an ordered list of providers.

Each row is claimed with ``FOR UPDATE SKIP LOCKED`` in its own transaction, which stays open
while the email is sent and commits the row's new status: several workers (processes) never
send one email twice. A crash between the SMTP server's acceptance and the commit rolls the
claim back, so that email is sent again once; it carries the same Message-ID (derived from
the dedupe key) both times, so the resend is visible and mail clients fold it.

An attempt tries the providers in order (connections are opened lazily and reused for the
whole run). When all fail, the row is retried after 1, 5 and 15 minutes (settings), then
dead-lettered with an alert (webhook only: email is what failed). A recipient refused with a
5xx code is a bounce: final, no retry. Counters per provider and template feed analytics.

Marketing emails (``midas.notifications.marketing``) are sent only while their recipient
agrees to marketing, checked at delivery (a withdrawal after queueing still stops them),
and carry the one-click unsubscribe headers; service emails never do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any
from uuid import UUID

import aiohttp
import aiosmtplib
import asyncpg
import orjson

from midas import tracing
from midas.background import Background
from midas.config import Settings, SmtpProvider
from midas.error_reports import deliver_alerts, raise_alert
from midas.eventstore import Database, is_unavailable
from midas.notifications.marketing import (
    add_unsubscribe_headers,
    consenting,
    is_marketing,
    unsubscribe_url,
)
from midas.notifications.outbox import (
    ACCOUNT,
    CONCIERGE,
    LEGAL,
    OPS,
    OUTBOX_TABLE,
    PREVIOUS,
    STATS_TABLE,
    TIMERS_TABLE,
    VERIFICATION,
    enqueue_for_booking,
    mask,
    message_id,
    reminder_key,
)
from midas.notifications.rendering import render
from midas.security import verification
from midas.security.unsubscribe import tokens_from

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
PIXEL_PATH = "/api/v1/notifications/opened/{token}"
_PERSONAL = frozenset({ACCOUNT, VERIFICATION, PREVIOUS})  # emails to an account's holder


@dataclass
class RunReport:
    sent: int = 0
    bounced: int = 0
    retried: int = 0
    dead: int = 0
    skipped: int = 0
    reminders: int = 0
    alerts: int = 0
    providers: list[str] = field(default_factory=list)  # who sent each email, in order


class _Outcome:
    SENT, BOUNCED, FAILED = "sent", "bounced", "failed"


class NotificationWorker(Background):
    task_name = "midas-notifications"

    def __init__(self, db: Database, settings: Settings, clock: Clock) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self.connections_opened = 0  # per provider connect() calls (reuse is observable)
        self._unsubscribe = tokens_from(settings)

    # -- one pass --------------------------------------------------------------------------

    async def run_once(self, now: datetime | None = None) -> RunReport:
        """Fire due reminders, send due emails, post pending alerts."""
        now = now or self.clock()
        report = RunReport()
        report.reminders = await self._fire_reminders(now)
        connections: dict[str, aiosmtplib.SMTP] = {}
        try:
            async with self.db.acquire() as conn:
                # No provider configured: emails stay queued (nothing is attempted or lost).
                limit = self.settings.email_batch_size if self.settings.smtp_providers else 0
                for _ in range(limit):
                    if not await self._deliver_next(conn, connections, now, report):
                        break
        finally:
            for smtp in connections.values():
                with contextlib.suppress(Exception):
                    await smtp.quit()
        if self.settings.alert_webhook_url:
            if self._session is None or self._session.closed:
                self._session = aiohttp.ClientSession()
            report.alerts = await deliver_alerts(self.db, self.settings, self._session, now)
        return report

    async def run_until_idle(self, now: datetime | None = None) -> RunReport:
        total = RunReport()
        while True:
            report = await self.run_once(now)
            for name in ("sent", "bounced", "retried", "dead", "skipped", "reminders", "alerts"):
                setattr(total, name, getattr(total, name) + getattr(report, name))
            total.providers += report.providers
            if not (report.sent or report.bounced or report.retried or report.dead
                    or report.skipped or report.reminders or report.alerts):
                return total

    async def next_reminder(self) -> datetime | None:
        """When the earliest reminder falls due."""
        async with self.db.acquire() as conn:
            return await conn.fetchval(f"SELECT min(due_at) FROM {TIMERS_TABLE}")

    async def _fire_reminders(self, now: datetime) -> int:
        fired = 0
        async with self.db.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"DELETE FROM {TIMERS_TABLE} WHERE id IN (SELECT id FROM {TIMERS_TABLE}"
                " WHERE due_at <= $1 ORDER BY due_at LIMIT 100 FOR UPDATE SKIP LOCKED)"
                " RETURNING booking_id", now,
            )
            for row in rows:
                if await enqueue_for_booking(conn, reminder_key(row["booking_id"]),
                                             "booking_reminder", row["booking_id"], None, {},
                                             now):
                    fired += 1
        return fired

    async def _deliver_next(
        self, conn: asyncpg.Connection, connections: dict[str, aiosmtplib.SMTP],
        now: datetime, report: RunReport,
    ) -> bool:
        async with conn.transaction():
            row = await conn.fetchrow(
                "SELECT o.id, o.dedupe_key, o.template, o.recipient, o.context, o.attempts,"
                " o.tracking_id, o.account_id, o.trace_context, a.email AS account_email,"
                f" r.name AS account_name, {consenting('o.account_id')} AS consenting,"
                " v.email AS link_email, v.previous_email AS link_previous_email,"
                " (v.used_at IS NULL AND v.revoked_at IS NULL AND v.expires_at > $1)"
                " AS link_live"
                f" FROM {OUTBOX_TABLE} o"
                " LEFT JOIN auth_accounts a ON a.account_id = o.account_id"
                " LEFT JOIN acc_accounts r ON r.id = o.account_id"
                f" LEFT JOIN {verification.TABLE} v"
                "   ON v.id = (o.context ->> 'verification_id')::uuid"
                " WHERE o.status = 'pending' AND o.next_attempt_at <= $1"
                " ORDER BY o.next_attempt_at, o.id LIMIT 1 FOR UPDATE OF o SKIP LOCKED", now,
            )
            if row is None:
                return False
            address = self._address(row)
            if address is None:  # erased, unknown, or a link no longer valid: nobody to write to
                return await _skip(
                    conn, row, "no address (an erased account, or a link no longer valid)", report
                )
            if is_marketing(row["template"]) and not row["consenting"]:
                return await _skip(conn, row, "no marketing consent", report)
            try:
                message = self._message(row, address)
            except Exception as exc:  # a template bug: retrying cannot help
                log.exception("email could not be rendered", extra={"outbox": row["id"]})
                await self._dead(conn, row, f"render failed: {type(exc).__name__}", now)
                report.dead += 1
                return True
            with tracing.continued(row["trace_context"], "email delivery", {
                    "midas.outbox.id": row["id"], "midas.email.template": row["template"]}):
                outcome, provider, error = await self._send(message, connections,
                                                            row["template"], conn)
            if outcome == _Outcome.SENT:
                await conn.execute(
                    f"UPDATE {OUTBOX_TABLE} SET status = 'sent', sent_at = $2, provider = $3,"
                    " attempts = attempts + 1, last_error = NULL, updated_at = now()"
                    " WHERE id = $1", row["id"], now, provider,
                )
                report.sent += 1
                report.providers.append(provider or "")
                log.info("email sent", extra={"outbox": row["id"], "template": row["template"],
                                              "provider": provider})
            elif outcome == _Outcome.BOUNCED:
                await conn.execute(
                    f"UPDATE {OUTBOX_TABLE} SET status = 'bounced', provider = $2,"
                    " attempts = attempts + 1, last_error = $3, updated_at = now()"
                    " WHERE id = $1", row["id"], provider, error,
                )
                report.bounced += 1
            else:
                attempts = row["attempts"] + 1
                delays = self.settings.email_retry_minutes
                if attempts <= len(delays):
                    await conn.execute(
                        f"UPDATE {OUTBOX_TABLE} SET attempts = $2, last_error = $3,"
                        " next_attempt_at = $4, updated_at = now() WHERE id = $1",
                        row["id"], attempts, error,
                        now + timedelta(minutes=delays[attempts - 1]),
                    )
                    report.retried += 1
                else:
                    await self._dead(conn, row, error, now)
                    report.dead += 1
            return True

    async def _dead(
        self, conn: asyncpg.Connection, row: asyncpg.Record, error: str | None, now: datetime
    ) -> None:
        await conn.execute(
            f"UPDATE {OUTBOX_TABLE} SET status = 'dead', attempts = attempts + 1,"
            " last_error = $2, updated_at = now() WHERE id = $1", row["id"], error,
        )
        log.error("email dead-lettered", extra={"outbox": row["id"], "template": row["template"]})
        await raise_alert(
            conn, self.settings, f"dead_letter:{row['id']}:{row['attempts']}", "integration",
            f"Email #{row['id']} ({row['template']}) dead-lettered",
            {"outbox_id": row["id"], "template": row["template"],
             "attempts": row["attempts"] + 1, "error": error}, now, email=False,
        )

    # -- messages and SMTP ---------------------------------------------------------------

    def _address(self, row: asyncpg.Record) -> str | None:
        s, recipient = self.settings, row["recipient"]
        if recipient == ACCOUNT:
            email = row["account_email"]
            return email if email and "@" in email else None
        if recipient == VERIFICATION:  # only while its link can still be used
            return row["link_email"] if row["link_live"] else None
        if recipient == PREVIOUS:
            return row["link_previous_email"]
        return {OPS: s.ops_email, LEGAL: s.legal_email,
                CONCIERGE: s.concierge_email}.get(recipient, recipient)

    def _link_context(self, row: asyncpg.Record, context: dict[str, Any]) -> None:
        """The masked address a change goes to, and for the address to prove, the link
        (its token derived here: it is stored nowhere)."""
        context["new_email_masked"] = mask(row["link_email"] or "")
        context["change"] = row["link_previous_email"] is not None
        if row["recipient"] == VERIFICATION:
            token = verification.token_for(self.settings, UUID(context["verification_id"]))
            context["verify_url"] = f"{self.settings.verification_page()}#token={token}"

    def _message(self, row: asyncpg.Record, recipient: str) -> EmailMessage:
        s = self.settings
        context = row["context"]
        context = orjson.loads(context) if isinstance(context, str) else dict(context)
        if row["recipient"] in _PERSONAL:
            name = row["account_name"]
            context["name"] = name if name and not name.startswith("[") else "valued guest"
        if row["recipient"] in (VERIFICATION, PREVIOUS):
            self._link_context(row, context)
        pixel = (s.public_base_url.rstrip("/")
                 + PIXEL_PATH.format(token=row["tracking_id"])) if s.email_tracking else None
        brand = {"brand_name": s.brand_name, "concierge_email": s.concierge_email,
                 "concierge_phone": s.concierge_phone, "pixel_url": pixel}
        token = self._unsubscribe.issue(row["account_id"]) if is_marketing(
            row["template"]) else None
        if token is not None:
            context["unsubscribe_url"] = unsubscribe_url(s, token)
        rendered = render(row["template"], context, brand)
        message = EmailMessage()
        message["From"] = s.email_from
        message["To"] = recipient
        message["Subject"] = rendered.subject
        message["Message-ID"] = message_id(row["dedupe_key"], s.email_domain)
        message["Date"] = format_datetime(self.clock())
        message["X-Midas-Template"] = row["template"]
        if token is not None:
            add_unsubscribe_headers(message, s, token)
        message.set_content(rendered.text)
        message.add_alternative(rendered.html, subtype="html")
        return message

    async def _send(
        self, message: EmailMessage, connections: dict[str, aiosmtplib.SMTP], template: str,
        conn: asyncpg.Connection,
    ) -> tuple[str, str | None, str | None]:
        errors: list[str] = []
        for provider in self.settings.smtp_providers:
            try:
                with tracing.span("smtp send", {"midas.smtp.provider": provider.name,
                                                "server.port": provider.port}, kind="client"):
                    await self._send_via(provider, message, connections)
            except aiosmtplib.SMTPRecipientsRefused as exc:
                codes = [r.code for r in exc.recipients]
                if codes and all(code >= 500 for code in codes):
                    await count_stat(conn, provider.name, template, "bounced")
                    return _Outcome.BOUNCED, provider.name, f"{provider.name}: refused {codes}"
                errors.append(f"{provider.name}: refused {codes}")
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                errors.append(f"{provider.name}: {type(exc).__name__}")
            else:
                await count_stat(conn, provider.name, template, "sent")
                return _Outcome.SENT, provider.name, None
            await count_stat(conn, provider.name, template, "failed")
            await _drop(connections, provider.name)
        return _Outcome.FAILED, None, "; ".join(errors) or "no SMTP provider configured"

    async def _send_via(
        self, provider: SmtpProvider, message: EmailMessage,
        connections: dict[str, aiosmtplib.SMTP],
    ) -> None:
        reused = provider.name in connections
        smtp = connections.get(provider.name) or await self._connect(provider, connections)
        try:
            await smtp.send_message(message)
        except aiosmtplib.SMTPServerDisconnected:
            if not reused:
                raise
            await _drop(connections, provider.name)  # an idle connection went away: once more
            smtp = await self._connect(provider, connections)
            await smtp.send_message(message)

    async def _connect(
        self, provider: SmtpProvider, connections: dict[str, aiosmtplib.SMTP]
    ) -> aiosmtplib.SMTP:
        smtp = aiosmtplib.SMTP(
            hostname=provider.host, port=provider.port, timeout=self.settings.smtp_timeout_s,
            use_tls=provider.tls == "tls", start_tls=provider.tls == "starttls",
            username=provider.username,
            password=provider.password.get_secret_value() if provider.password else None,
        )
        await smtp.connect()
        self.connections_opened += 1
        connections[provider.name] = smtp
        return smtp

    # -- the background worker -----------------------------------------------------------

    async def _stopped(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_until_idle()
            except Exception as exc:
                if not is_unavailable(exc):
                    log.exception("notification delivery pass failed")
            await asyncio.sleep(self.settings.email_poll_interval_s)


async def _skip(conn: asyncpg.Connection, row: asyncpg.Record, reason: str,
                report: RunReport) -> bool:
    await conn.execute(f"UPDATE {OUTBOX_TABLE} SET status = 'skipped', last_error = $2,"
                       " updated_at = now() WHERE id = $1", row["id"], reason)
    report.skipped += 1
    return True


async def _drop(connections: dict[str, aiosmtplib.SMTP], name: str) -> None:
    smtp = connections.pop(name, None)
    if smtp is not None:
        with contextlib.suppress(Exception):
            smtp.close()


async def count_stat(conn: Any, provider: str, template: str, column: str) -> None:
    assert column in ("sent", "failed", "bounced", "opened")
    await conn.execute(
        f"INSERT INTO {STATS_TABLE} (provider, template, {column}) VALUES ($1, $2, 1)"
        f" ON CONFLICT (provider, template) DO UPDATE SET {column} = {STATS_TABLE}.{column} + 1",
        provider, template,
    )

