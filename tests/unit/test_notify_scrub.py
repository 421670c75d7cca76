"""Error contexts are scrubbed of secrets before they are stored."""

from __future__ import annotations

from midas.error_reports import REDACTED, is_secret_key, scrub, scrub_text


def test_secret_keys_are_dropped_at_any_depth() -> None:
    context = {
        "password": "hunter2", "newPassword": "x", "access_token": "t", "Authorization": "B",
        "card": {"number": "4242424242424242"}, "cvc": "123", "card_number": "4242",
        "client_secret": "pi_secret", "apiKey": "k", "pin": "1234", "session_id": "s",
        "shipping": "kept", "booking_id": "kept", "screen": "checkout",
        "nested": [{"refresh_token": "r", "step": 2}], "headers": {"cookie": "c", "ua": "x"},
    }
    assert scrub(context) == {"shipping": "kept", "booking_id": "kept", "screen": "checkout",
                              "nested": [{"step": 2}], "headers": {"ua": "x"}}


def test_secret_looking_values_are_redacted() -> None:
    text = ("paid with 4242 4242 4242 4242 then Bearer abc.def.ghi and "
            "eyJhbGciOi.eyJzdWIiOi.sig key sk_live_51Habc and ?password=pw&x=1")
    cleaned = scrub_text(text)
    for secret in ("4242 4242", "abc.def", "eyJhbGciOi", "sk_live_51Habc", "password=pw"):
        assert secret not in cleaned
    assert cleaned.count(REDACTED) == 5 and "x=1" in cleaned


def test_key_names_by_word_not_by_substring() -> None:
    assert is_secret_key("pin") and is_secret_key("PIN") and is_secret_key("card_pin")
    assert not is_secret_key("shipping") and not is_secret_key("spinner")
    assert is_secret_key("phoneNumber") and is_secret_key("x-api-key")
