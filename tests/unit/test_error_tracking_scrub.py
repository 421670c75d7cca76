"""The Sentry scrubber (before_send) on events shaped as the SDK builds them."""

from __future__ import annotations

import json

from midas.error_tracking import scrub_breadcrumb, scrub_event

TOKEN = "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5d2FsZG8"


def test_requests_keep_only_harmless_headers_and_no_body_cookies_query_or_address() -> None:
    event = scrub_event({"request": {
        "method": "POST", "url": "https://midas.test/api/v1/auth/login?token=abc",
        "query_string": "token=abc", "data": {"password": "pw"}, "cookies": {"s": "1"},
        "env": {"REMOTE_ADDR": "198.51.100.4"},
        "headers": {"Authorization": "Bearer x", "Cookie": "s=1", "Stripe-Signature": "v1=y",
                    "X-Forwarded-For": "198.51.100.4", "Content-Type": "application/json",
                    "X-Request-Id": "r1"}},
        "user": {"ip_address": "198.51.100.4", "email": "a@b.example"}})
    assert event["request"] == {"method": "POST", "url": "https://midas.test/api/v1/auth/login",
                                "headers": {"Content-Type": "application/json",
                                            "X-Request-Id": "r1"}}
    assert "user" not in event


def test_texts_lose_emails_tokens_and_local_variables() -> None:
    event = scrub_event({
        "exception": {"values": [{"type": "UniqueViolationError",
                                  "value": f"Key (email)=(ada@example.com) {TOKEN}",
                                  "stacktrace": {"frames": [{"function": "f",
                                                             "vars": {"email": "x"}}]}}]},
        "logentry": {"message": "failed for %s", "params": ["bob@example.org"]},
        "extra": {"password": "pw", "note": "call eve@example.net", "count": 3},
        "breadcrumbs": {"values": [{"message": "sk_live_abcdef123 used",
                                    "data": {"token": "t", "path": "/x"}}]},
    })
    text = json.dumps(event)
    for secret in ("ada@example.com", TOKEN, "bob@example.org", "eve@example.net",
                   "sk_live_abcdef123", '"vars"', '"password"', '"token"'):
        assert secret not in text, secret
    assert event["extra"]["count"] == 3 and event["breadcrumbs"]["values"][0]["data"] == {
        "path": "/x"}


def test_a_uuid_is_not_taken_for_a_token() -> None:
    crumb = scrub_breadcrumb({"message": "booking 0b5e6a57-8a0c-4cf3-9d1e-4f3c2d1b0a99"})
    assert crumb["message"].endswith("0b5e6a57-8a0c-4cf3-9d1e-4f3c2d1b0a99")
