"""Everything Midas holds about one person, gathered for the export (GDPR articles 15
and 20): the account's own events with their personal fields decrypted, and every read
model and state table that names the account.

Left out, on purpose: secrets (password hashes, token hashes, keys, tracking ids), and the
ids of staff members who acted (note authors, concierges, event actors: their role is
shown instead; article 15(4)). After an erasure every personal field reads "[erased]".
The shape is ``PersonalDataExport``; docs/security.md describes it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal
from uuid import UUID

import orjson
from pydantic import BaseModel, Field

from midas.error_reports import REPORTS_TABLE
from midas.eventstore import RecordedEvent
from midas.notifications.outbox import OUTBOX_TABLE
from midas.security import credentials, sessions
from midas.security.pii import open_events
from projections.accounts import ACCOUNTS_TABLE
from projections.bookings import BOOKINGS_TABLE
from projections.payment_ledger import ENTRIES_TABLE
from projections.profiles import NOTES_TABLE, POINTS_TABLE
from queries.consents import Consents, MarketingConsent, TermsConsent, consents_of
from queries.customers import PointsEntry, Profile, load_profiles, profile_of, vip_thresholds

FORMAT: Final = "midas.personal-data-export"
FORMAT_VERSION: Final = 1
FEED_TOKENS_TABLE = "cal_feed_tokens"
STAFF_IDS = frozenset({"author_id", "concierge_id"})  # left out of event data


class ExportAccount(BaseModel):
    email: str
    name: str
    phone: str | None
    role: str
    status: str
    google_linked: bool
    registered_at: datetime
    updated_at: datetime


class Session(BaseModel):
    started_at: datetime
    last_used_at: datetime | None
    expires_at: datetime
    revoked: bool


class SignIn(BaseModel):
    active: bool
    password_set: bool
    google_linked: bool
    failed_logins: int
    locked_until: datetime | None
    sessions: list[Session]


class ExportBooking(BaseModel):
    booking_id: UUID
    item_id: UUID
    status: str
    category: str
    location: str
    service_level: str
    delivered_level: str
    starts_at: datetime
    ends_at: datetime
    held_at: datetime
    hold_expires_at: datetime
    currency: str
    total_due: int
    security_deposit: int
    amount_paid: int
    refund_percentage: str | None
    refund_amount: int | None
    cancel_reason: str | None
    quote: dict[str, Any]


class ExportPayment(BaseModel):
    booking_id: UUID
    type: str
    amount: int | None
    currency: str | None
    provider: str | None
    reference: str | None
    detail: dict[str, Any]
    recorded_at: datetime


class ExportNote(BaseModel):
    note_id: UUID
    text: str
    recorded_at: datetime


class ExportEmail(BaseModel):
    template: str
    status: str
    created_at: datetime
    sent_at: datetime | None
    opened_at: datetime | None
    context: dict[str, Any]


class ExportErrorReport(BaseModel):
    occurred_at: datetime
    source: str
    category: str
    severity: str
    message: str
    request_id: str | None
    context: dict[str, Any]


class CalendarFeed(BaseModel):
    created_at: datetime


class HistoryEntry(BaseModel):
    position: int
    version: int
    type: str
    recorded_at: datetime
    actor: str = Field(description="self, a staff role, or a process (loyalty...)")
    data: dict[str, Any]


class PersonalDataExport(BaseModel):
    format: Literal["midas.personal-data-export"] = FORMAT
    format_version: Literal[1] = FORMAT_VERSION
    generated_at: datetime
    account_id: UUID
    account: ExportAccount | None
    consents: Consents
    sign_in: SignIn | None
    profile: Profile | None = Field(description="Customers: facts, tier and segments.")
    bookings: list[ExportBooking]
    payments: list[ExportPayment]
    loyalty_points: list[PointsEntry]
    notes: list[ExportNote] = Field(description="What staff noted about the person.")
    emails: list[ExportEmail]
    error_reports: list[ExportErrorReport]
    calendar_feed: CalendarFeed | None = Field(description="A private feed link exists.")
    history: list[HistoryEntry] = Field(description="The account's events, in order.")


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str) else value


async def _account(conn: Any, account_id: UUID) -> ExportAccount | None:
    row = await conn.fetchrow(
        f"SELECT {', '.join(ExportAccount.model_fields)} FROM {ACCOUNTS_TABLE}"
        " WHERE id = $1", account_id)
    return ExportAccount.model_validate(dict(row)) if row else None


async def _sign_in(conn: Any, account_id: UUID) -> SignIn | None:
    row = await conn.fetchrow(
        "SELECT active, password_hash IS NOT NULL AS password_set,"
        " google_subject IS NOT NULL AS google_linked, failed_logins, locked_until"
        f" FROM {credentials.TABLE} WHERE account_id = $1", account_id)
    if row is None:
        return None
    families = await conn.fetch(
        "SELECT min(issued_at) AS started_at, max(used_at) AS last_used_at,"
        " max(expires_at) AS expires_at, bool_or(revoked_at IS NOT NULL) AS revoked"
        f" FROM {sessions.TABLE} WHERE account_id = $1 GROUP BY family_id"
        " ORDER BY min(issued_at)", account_id)
    return SignIn(**dict(row), sessions=[Session.model_validate(dict(f)) for f in families])


async def _profile(conn: Any, account_id: UUID, now: datetime) -> Profile | None:
    rows = await load_profiles(conn, "p.customer_id = $1", account_id)
    if not rows:
        return None
    return await profile_of(conn, rows[0], now, await vip_thresholds(conn))


async def _rows(conn: Any, model: type[BaseModel], sql: str, account_id: UUID,
                json_columns: tuple[str, ...] = ()) -> list[Any]:
    out = []
    for row in await conn.fetch(sql, account_id):
        values = dict(row)
        for column in json_columns:
            values[column] = _json(values[column])
        out.append(model.model_validate(values))
    return out


def actor_of(metadata: dict[str, Any], subject: UUID) -> str:
    """Who caused an event, without naming another person."""
    actor = str(metadata.get("actor") or "system")
    if actor == str(subject):
        return "self"
    if metadata.get("actor_role"):
        return str(metadata["actor_role"])
    try:
        UUID(actor)
    except ValueError:
        return actor  # a process: loyalty, anonymous, scheduler...
    return "staff"


async def _history(conn: Any, account_id: UUID) -> list[HistoryEntry]:
    rows = await conn.fetch(
        "SELECT position, stream_id, version, type, data, metadata, recorded_at, hash"
        " FROM events WHERE stream_id = $1 ORDER BY version", account_id)
    events = await open_events(conn, [RecordedEvent.from_row(r) for r in rows])
    return [HistoryEntry(
        position=e.position, version=e.version, type=e.type, recorded_at=e.recorded_at,
        actor=actor_of(e.metadata, account_id),
        data={k: v for k, v in e.data.items() if k not in STAFF_IDS}) for e in events]


async def personal_data(conn: Any, account_id: UUID, now: datetime) -> PersonalDataExport:
    consents = await consents_of(conn, account_id) or Consents(
        terms=TermsConsent(version=None, given_at=None),
        marketing=MarketingConsent(given=False, version=None, given_at=None,
                                   withdrawn_at=None, withdrawn_via=None))
    feed = await conn.fetchrow(
        f"SELECT created_at FROM {FEED_TOKENS_TABLE} WHERE owner_kind = 'customer'"
        " AND owner_id = $1", account_id)
    return PersonalDataExport(
        generated_at=now, account_id=account_id, account=await _account(conn, account_id),
        consents=consents, sign_in=await _sign_in(conn, account_id),
        profile=await _profile(conn, account_id, now),
        bookings=await _rows(
            conn, ExportBooking,
            "SELECT id AS booking_id, item_id, status, category, location, service_level,"
            " delivered_level, starts_at, ends_at, held_at, hold_expires_at, currency,"
            " total_due, security_deposit, amount_paid, refund_percentage, refund_amount,"
            f" cancel_reason, quote FROM {BOOKINGS_TABLE} WHERE customer_id = $1"
            " ORDER BY held_at", account_id, ("quote",)),
        payments=await _rows(
            conn, ExportPayment,
            "SELECT booking_id, type, amount, currency, provider, reference, detail,"
            f" recorded_at FROM {ENTRIES_TABLE} WHERE customer_id = $1 ORDER BY position",
            account_id, ("detail",)),
        loyalty_points=await _rows(
            conn, PointsEntry,
            "SELECT booking_id, kind, points, balance, multiplier, recorded_at"
            f" FROM {POINTS_TABLE} WHERE customer_id = $1 ORDER BY position", account_id),
        notes=await _rows(conn, ExportNote,
                          f"SELECT note_id, text, recorded_at FROM {NOTES_TABLE}"
                          " WHERE customer_id = $1 ORDER BY recorded_at", account_id),
        emails=await _rows(
            conn, ExportEmail,
            "SELECT template, status, created_at, sent_at, opened_at, context"
            f" FROM {OUTBOX_TABLE} WHERE account_id = $1 ORDER BY id", account_id,
            ("context",)),
        error_reports=await _rows(
            conn, ExportErrorReport,
            "SELECT occurred_at, source, category, severity, message, request_id, context"
            f" FROM {REPORTS_TABLE} WHERE account_id = $1 ORDER BY id", account_id,
            ("context",)),
        calendar_feed=CalendarFeed(created_at=feed["created_at"]) if feed else None,
        history=await _history(conn, account_id),
    )
