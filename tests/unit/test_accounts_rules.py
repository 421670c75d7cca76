"""Account rules without I/O: the aggregate, password rules, settings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from midas.config import DEV_JWT_SECRET, Settings
from midas.domain.accounts import Account
from midas.domain.errors import InvalidState, RuleViolation
from midas.security.passwords import WeakPassword, check_password_rules, verify_password

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def customer() -> Account:
    return Account.register(email=" Ada@Example.com ", name="Ada", consent_version="v1",
                            consent_at=NOW)


def test_registration_records_consent_and_no_secret() -> None:
    account = customer()
    (event,) = account.collect_events()
    assert account.email == "Ada@Example.com" and account.role == "customer"
    assert vars(event)["consent_version"] == "v1"
    assert vars(event)["consent_at"] == NOW.isoformat()
    assert not any("password" in key or "hash" in key for key in vars(event))


def test_customers_must_consent_and_roles_are_known() -> None:
    with pytest.raises(RuleViolation):
        Account.register(email="a@b.example", name="A")
    with pytest.raises(RuleViolation):
        Account.register(email="a@b.example", name="A", role="emperor")
    with pytest.raises(RuleViolation):
        Account.register(email="not-an-email", name="A", consent_version="1", consent_at=NOW)
    staff = Account.register(email="boss@midas.example", name="Boss", role="super_admin")
    assert staff.is_staff


def test_changes_are_events_and_a_deactivated_account_is_frozen() -> None:
    account = customer()
    account.change_profile(name="Ada King", phone="+44 1")
    account.change_profile(name="Ada King")  # nothing changed: no event
    account.change_role("concierge")
    account.record_password_change()
    account.link_google("g-123")
    account.deactivate()
    names = [type(e).__name__ for e in account.collect_events()]
    assert names == ["Registered", "ProfileChanged", "RoleChanged", "PasswordChanged",
                     "GoogleLinked", "Deactivated"]
    with pytest.raises(InvalidState):
        account.change_profile(name="X")
    with pytest.raises(InvalidState):
        account.deactivate()


def test_password_rules_count_characters_and_bytes() -> None:
    check_password_rules("0123456789")
    check_password_rules("é" * 36)  # 72 bytes
    for bad in ("012345678", "é" * 37, "x" * 73):
        with pytest.raises(WeakPassword):
            check_password_rules(bad)


async def test_verify_without_a_hash_is_always_false() -> None:
    assert await verify_password("anything-at-all", None, 4) is False
    assert await verify_password("anything-at-all", "not-a-bcrypt-hash", 4) is False


def test_production_refuses_the_default_or_a_short_secret() -> None:
    with pytest.raises(ValueError, match="MIDAS_JWT_SECRET"):
        Settings(environment="production").check_secrets()
    with pytest.raises(ValueError):
        Settings(environment="production", jwt_secret="short").check_secrets()
    Settings(environment="production", jwt_secret="s" * 40,
             public_base_url="https://midas.example").check_secrets()
    Settings(environment="development", jwt_secret=DEV_JWT_SECRET).check_secrets()


def test_the_jwt_algorithm_is_a_fixed_hmac_choice() -> None:
    with pytest.raises(ValueError):
        Settings(jwt_algorithm="none")
    with pytest.raises(ValueError):
        Settings(jwt_algorithm="RS256")
