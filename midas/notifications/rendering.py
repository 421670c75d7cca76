"""Templates: branded HTML and plain-text parts from files under ``templates/``.

HTML is rendered with autoescape on; text parts and subjects with it off (they are not
HTML). Times are shown in the booking location's time zone; money is integer minor units
formatted for its currency ("USD 93,555.00").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

SUBJECTS: dict[str, str] = {
    "welcome": "Welcome to Midas, {{ name }}",
    "booking_held": "Your {{ item_name }} is held until {{ hold_expires_at | local(time_zone) }}",
    "booking_confirmed": "Confirmed: {{ item_name }} from {{ start | local(time_zone) }}",
    "booking_reminder": "Tomorrow: your {{ item_name }} at {{ start | local(time_zone) }}",
    "booking_cancelled": "Cancelled: {{ item_name }}",
    "instalment_reminder": "{{ item_name }}: instalment {{ number }} of"
                           " {{ amount | money(currency) }} due",
    "booking_changed": "Changed: {{ item_name }}, now from {{ start | local(time_zone) }}",
    "payment_failed": "Your payment for {{ item_name }} did not go through",
    "refund_processed": "Refund of {{ amount | money(currency) }} processed",
    "dispute_opened": "Dispute opened on booking {{ booking_id }}",
    "concierge_assigned": "Your concierge for {{ item_name }}",
    # to the concierge desk: something about a booking needs a person
    "concierge_alert": "[Midas] {{ title }}: {{ item_name }}",
    "alert": "[Midas alert] {{ title }}",
    # a staff message to a customer segment
    "segment_message": "{{ subject or 'A message from ' ~ (brand_name or 'Midas') }}",
    "verify_email": "Confirm your email address for {{ brand_name }}",
    "email_change_requested": "A change of your {{ brand_name }} email was requested",
    "email_changed": "Your {{ brand_name }} email was changed",
}
TEMPLATES = frozenset(SUBJECTS)

# ISO 4217 minor units where they are not 2.
_MINOR_UNITS = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "KWD": 3, "BHD": 3,
                "OMR": 3, "JOD": 3, "TND": 3}


def money(amount: int | None, currency: str | None = "USD") -> str:
    """Integer minor units -> "USD 93,555.00" (the currency's own number of decimals)."""
    if amount is None or isinstance(amount, jinja2.Undefined):
        return ""
    currency = (currency or "USD").upper()
    digits = _MINOR_UNITS.get(currency, 2)
    value = Decimal(int(amount)).scaleb(-digits)
    return f"{currency} {value:,.{digits}f}"


def local(instant: str | datetime | None, time_zone: str | None = "UTC") -> str:
    """An instant shown on the location's wall clock: "Sat 26 Dec 2026, 15:00 (+04)"."""
    if not instant:  # None or undefined
        return ""
    when = datetime.fromisoformat(instant) if isinstance(instant, str) else instant
    there = when.astimezone(ZoneInfo(time_zone or "UTC"))
    return f"{there:%a %d %b %Y, %H:%M} ({there.tzname()})"


def _environment(autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = money
    env.filters["local"] = local
    return env


_HTML = _environment(True)
_TEXT = _environment(False)


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


def render(template: str, context: Mapping[str, Any], brand: Mapping[str, Any]) -> Rendered:
    """Render one email. ``brand`` holds the globals (names, contacts, tracking pixel)."""
    if template not in TEMPLATES:
        raise KeyError(f"unknown email template {template!r}")
    values = {"time_zone": "UTC", "currency": "USD", **brand, **context}
    subject = _TEXT.from_string(SUBJECTS[template]).render(values)
    subject = " ".join(subject.split())  # never a header injection
    return Rendered(
        subject=subject,
        html=_HTML.get_template(f"{template}.html").render(values),
        text=_TEXT.get_template(f"{template}.txt").render(values),
    )
