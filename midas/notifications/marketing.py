"""Marketing emails: which templates are marketing, who may receive them now, and the
one-click unsubscribe headers they carry (RFC 2369 and RFC 8058).

Every other email (welcome, bookings, payments, alerts) is a service email: no consent
needed, no unsubscribe header, always sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote
from uuid import UUID

from midas.config import Settings
from midas.domain.accounts import Account
from midas.eventstore import Statement

MARKETING_TEMPLATES = frozenset({"segment_message"})
CONSENTS_TABLE = "marketing_consents"
UNSUBSCRIBE_PATH = "/api/v1/notifications/unsubscribe/{token}"
ONE_CLICK = "List-Unsubscribe=One-Click"  # the List-Unsubscribe-Post value, and its body
VERSION_PATTERN = r"^[ -~]+$"  # a marketing terms version: printable ASCII only


def is_marketing(template: str) -> bool:
    return template in MARKETING_TEMPLATES


def consenting(account_column: str) -> str:
    """SQL: true when the account in ``account_column`` agrees to marketing now."""
    return (f"EXISTS (SELECT 1 FROM {CONSENTS_TABLE} mc WHERE mc.account_id ="
            f" {account_column} AND mc.withdrawn_at IS NULL)")


async def consenting_among(conn: Any, accounts: Sequence[UUID]) -> set[UUID]:
    """Those of ``accounts`` who agree to marketing now."""
    rows = await conn.fetch(
        f"SELECT account_id FROM {CONSENTS_TABLE} WHERE account_id = ANY($1::uuid[])"
        " AND withdrawn_at IS NULL", list(accounts))
    return {r["account_id"] for r in rows}


def consent_state(account: Account) -> list[Statement]:
    """The gate row as the account's marketing consent stands after its pending events;
    runs in their append transaction."""
    if account.marketing_version is None or account.marketing_given_at is None:
        return []
    withdrawn = account.marketing_withdrawn_at
    return [Statement(
        f"INSERT INTO {CONSENTS_TABLE} (account_id, version, given_at, withdrawn_at,"
        " withdrawn_via) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id) DO UPDATE"
        " SET version = EXCLUDED.version, given_at = EXCLUDED.given_at,"
        " withdrawn_at = EXCLUDED.withdrawn_at, withdrawn_via = EXCLUDED.withdrawn_via",
        (account.id, account.marketing_version,
         datetime.fromisoformat(account.marketing_given_at),
         datetime.fromisoformat(withdrawn) if withdrawn else None,
         account.marketing_withdrawn_via),
    )]


def unsubscribe_url(settings: Settings, token: str) -> str:
    return settings.public_base_url.rstrip("/") + UNSUBSCRIBE_PATH.format(token=token)


class ListHeader(str):
    """A header of comma-separated items sent exactly as written, folded only between
    items. The email package would fold a URI longer than a line (78 characters) into
    RFC 2047 encoded words, which mailbox providers do not decode in List-Unsubscribe.
    Items are plain ASCII; a line stays far below RFC 5322's 998 characters."""

    name: str
    items: tuple[str, ...]

    def __new__(cls, name: str, items: Sequence[str]) -> ListHeader:
        header = super().__new__(cls, ", ".join(items))
        header.name, header.items = name, tuple(items)
        return header

    def fold(self, *, policy: Any) -> str:
        return f"{self.name}: " + f",{policy.linesep} ".join(self.items) + policy.linesep


def add_unsubscribe_headers(message: EmailMessage, settings: Settings, token: str) -> None:
    """``List-Unsubscribe`` (the https link, then the optional mailto) and
    ``List-Unsubscribe-Post``: mailbox providers POST the link, without credentials."""
    links = [f"<{unsubscribe_url(settings, token)}>"]
    if settings.unsubscribe_mailto:
        links.append(f"<mailto:{settings.unsubscribe_mailto}"
                     f"?subject={quote('unsubscribe ' + token)}>")
    message.set_raw("List-Unsubscribe", ListHeader("List-Unsubscribe", links))
    message["List-Unsubscribe-Post"] = ONE_CLICK
