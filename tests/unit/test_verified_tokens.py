"""The verified-token cache never outlives a token."""

from __future__ import annotations

import time
from uuid import uuid4

import pytest

from midas.config import Settings
from midas.http.auth import InvalidToken, Role, VerifiedTokens, issue_access_token


def test_a_cached_token_is_refused_once_expired() -> None:
    settings = Settings(environment="test", access_token_ttl_s=60)
    tokens = VerifiedTokens(settings)
    token = issue_access_token(settings, uuid4(), Role.CUSTOMER)
    principal = tokens.principal(token)
    assert tokens.principal(token) is principal  # served from the cache
    with pytest.raises(InvalidToken):
        tokens.principal(token, now=time.time() + 120)


def test_the_cache_is_bounded() -> None:
    settings = Settings(environment="test")
    tokens = VerifiedTokens(settings, size=3)
    issued = [issue_access_token(settings, uuid4(), Role.ADMIN) for _ in range(5)]
    for token in issued:
        tokens.principal(token)
    assert len(tokens._known) == 3
