"""One-click unsubscribe tokens: opaque, unforgeable, one recipient each."""

from __future__ import annotations

import base64
from uuid import uuid4

import pytest
from pydantic import SecretStr

from midas.config import Settings
from midas.security.unsubscribe import UnsubscribeTokens, tokens_from


def test_a_token_opens_to_its_own_account_only() -> None:
    tokens = UnsubscribeTokens(b"k" * 32)
    ada, bob = uuid4(), uuid4()
    token = tokens.issue(ada)
    assert tokens.account_of(token) == ada
    assert tokens.account_of(tokens.issue(bob)) == bob
    assert tokens.issue(ada) != token  # a fresh nonce each time: nothing to correlate


def test_a_token_reveals_nothing_of_the_account() -> None:
    tokens = UnsubscribeTokens(b"k" * 32)
    ada = uuid4()
    token = tokens.issue(ada)
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert ada.bytes not in raw and ada.hex not in token and str(ada) not in token
    assert token.isascii() and set(token) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@pytest.mark.parametrize("bad", ["", "x", "!!!!", "é" * 60, "A" * 59, "A" * 4000])
def test_garbage_is_refused(bad: str) -> None:
    assert UnsubscribeTokens(b"k" * 32).account_of(bad) is None


def test_every_tampered_character_is_refused() -> None:
    tokens = UnsubscribeTokens(b"k" * 32)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for _ in range(20):
        token = tokens.issue(uuid4())
        for i in range(len(token)):
            for other in alphabet.replace(token[i], ""):
                swapped = token[:i] + other + token[i + 1:]
                assert tokens.account_of(swapped) is None, (i, other)


def test_another_secret_opens_nothing() -> None:
    token = UnsubscribeTokens(b"k" * 32).issue(uuid4())
    assert UnsubscribeTokens(b"j" * 32).account_of(token) is None


def test_the_secret_comes_from_settings() -> None:
    ada = uuid4()
    own = Settings(environment="test", unsubscribe_secret=SecretStr("s" * 40))
    derived = Settings(environment="test")
    token = tokens_from(own).issue(ada)
    assert tokens_from(own).account_of(token) == ada
    assert tokens_from(derived).account_of(token) is None  # not the JWT secret's key
    assert tokens_from(derived).account_of(tokens_from(derived).issue(ada)) == ada


def test_production_wants_https_links_and_a_long_unsubscribe_secret() -> None:
    ready = {"environment": "production", "jwt_secret": SecretStr("s" * 40),
             "public_base_url": "https://midas.example"}
    Settings(**ready).check_secrets()
    with pytest.raises(ValueError, match="MIDAS_PUBLIC_BASE_URL"):
        Settings(**{**ready, "public_base_url": "http://midas.example"}).check_secrets()
    with pytest.raises(ValueError, match="MIDAS_UNSUBSCRIBE_SECRET"):
        Settings(**ready, unsubscribe_secret=SecretStr("u" * 31)).check_secrets()
    Settings(**ready, unsubscribe_secret=SecretStr("u" * 32)).check_secrets()
    Settings(environment="test", public_base_url="http://127.0.0.1:8080").check_secrets()
