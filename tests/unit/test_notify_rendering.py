"""Email templates: every one renders HTML and text, escaped, local times, money."""

from __future__ import annotations

import pytest

from midas.notifications.outbox import mask, message_id
from midas.notifications.rendering import TEMPLATES, local, money, render

BRAND = {"brand_name": "Midas", "concierge_email": "concierge@midas.example",
         "concierge_phone": "+1 555 0100", "pixel_url": "https://m.example/p/1"}
BOOKING = {
    "booking_id": "b-1", "item_name": "Villa <Amber> & Co", "time_zone": "Asia/Dubai",
    "currency": "USD", "start": "2026-12-26T11:00:00+00:00", "end": "2026-12-28T07:00:00+00:00",
    "hold_expires_at": "2026-12-01T12:30:00+00:00", "total_due": 9_355_500,
    "security_deposit": 1_000_000, "amount_paid": 9_355_500, "refund_amount": 4_677_750,
    "refund_percentage": "50", "amount": 9_355_500, "reason": "card_declined",
    "customer_id": "c-1", "concierge_name": "Ana", "name": "Ada <Lovelace>",
    "title": "3 booking errors", "lines": ["count: 3"],
}


def test_money_in_minor_units_for_the_currency() -> None:
    assert money(9_355_500, "USD") == "USD 93,555.00"
    assert money(5, "EUR") == "EUR 0.05"
    assert money(123_456, "JPY") == "JPY 123,456"
    assert money(1_234_567, "KWD") == "KWD 1,234.567"
    assert money(None, "USD") == ""


def test_local_times_in_the_location_zone() -> None:
    assert local("2026-12-26T11:00:00+00:00", "Asia/Dubai") == "Sat 26 Dec 2026, 15:00 (+04)"
    assert local("2026-07-04T16:00:00+00:00", "America/New_York") == (
        "Sat 04 Jul 2026, 12:00 (EDT)")


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_every_template_renders_branded_html_and_text(template: str) -> None:
    rendered = render(template, BOOKING, BRAND)
    assert rendered.subject and "\n" not in rendered.subject
    assert "MIDAS" in rendered.text and "<html" not in rendered.text
    assert "<html" in rendered.html and "#c9a45c" in rendered.html
    assert "concierge@midas.example" in rendered.html
    assert 'src="https://m.example/p/1"' in rendered.html
    assert "<Amber>" not in rendered.html and "<Lovelace>" not in rendered.html


def test_html_is_escaped_text_is_not_and_values_are_formatted() -> None:
    rendered = render("booking_held", BOOKING, BRAND)
    assert "Villa &lt;Amber&gt; &amp; Co" in rendered.html
    assert "Villa <Amber> & Co" in rendered.text
    for part in (rendered.html, rendered.text):
        assert "USD 93,555.00" in part  # total due
        assert "USD 10,000.00" in part  # deposit
        assert "Sat 26 Dec 2026, 15:00 (+04)" in part  # Dubai wall clock
        assert "Tue 01 Dec 2026, 16:30 (+04)" in part  # the hold's deadline
    cancelled = render("booking_cancelled", BOOKING, BRAND)
    assert "USD 46,777.50" in cancelled.text and "50 %" in cancelled.text


def test_no_pixel_when_tracking_is_off() -> None:
    rendered = render("welcome", {"name": "Ada"}, {**BRAND, "pixel_url": None})
    assert "<img" not in rendered.html


def test_subjects_cannot_inject_headers() -> None:
    rendered = render("welcome", {"name": "Ada\r\nBcc: evil@example.com"}, BRAND)
    assert "\r" not in rendered.subject and "\n" not in rendered.subject


def test_message_ids_are_stable_per_cause_and_addresses_masked() -> None:
    assert message_id("Booking.Held:b:1", "m.example") == message_id("Booking.Held:b:1",
                                                                      "m.example")
    assert message_id("a", "m.example") != message_id("b", "m.example")
    assert mask("jane@example.com") == "j***@example.com"
    assert mask("@ops") == "@ops"
