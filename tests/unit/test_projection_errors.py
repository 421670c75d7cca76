"""What a failing projection's record and /ready say about the error: its type, SQLSTATE
and first line, never a secret or a data value such as an email or a card number."""

from __future__ import annotations

import asyncpg

from midas.projection_failures import describe_error


def test_the_type_sqlstate_and_first_line_are_kept() -> None:
    error = asyncpg.exceptions.CharacterNotInRepertoireError(
        'invalid byte sequence for encoding "UTF8": 0x00')
    assert describe_error(error) == (
        'CharacterNotInRepertoireError [22021]: invalid byte sequence for encoding "UTF8": 0x00')
    assert describe_error(KeyError("rate")) == "KeyError: 'rate'"
    assert describe_error(RuntimeError()) == "RuntimeError"
    assert describe_error(ValueError("first\nsecond")) == "ValueError: first"


def test_secrets_and_personal_data_are_scrubbed() -> None:
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    message = (f"no row for ada.lovelace+vip@example.co.uk, card 4242 4242 4242 4242,"
               f" bearer {token}, password=hunter2, key sk_live_abc123")
    described = describe_error(ValueError(message))
    for secret in ("ada.lovelace", "example.co.uk", "4242", token, "hunter2", "sk_live"):
        assert secret not in described, secret
    assert described.startswith("ValueError: no row for [redacted]")


def test_the_message_is_bounded() -> None:
    assert len(describe_error(ValueError("x" * 10_000))) == len("ValueError: ") + 300
