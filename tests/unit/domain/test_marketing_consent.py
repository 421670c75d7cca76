"""Marketing consent on the Account aggregate: apart from the terms, with version and time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from midas.domain.accounts import Account
from midas.domain.errors import InvalidState, RuleViolation

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def customer() -> Account:
    account = Account.register(email="ada@example.com", name="Ada", consent_version="t1",
                               consent_at=NOW)
    account.collect_events()
    return account


def test_a_new_customer_has_not_consented_to_marketing() -> None:
    account = customer()
    assert account.has_marketing_consent is False
    assert account.marketing_version is None and account.marketing_given_at is None
    assert account.consent_version == "t1"  # the terms consent is apart


def test_giving_records_version_and_time_once_per_version() -> None:
    account = customer()
    assert account.give_marketing_consent("m1", NOW) is True
    (event,) = account.collect_events()
    assert type(event).__name__ == "MarketingConsentGiven"
    assert (vars(event)["version"], vars(event)["at"]) == ("m1", NOW.isoformat())
    assert account.has_marketing_consent and account.marketing_given_at == NOW.isoformat()
    assert account.give_marketing_consent("m1", NOW + timedelta(days=1)) is False
    assert account.collect_events() == []
    assert account.give_marketing_consent("m2", NOW + timedelta(days=2)) is True
    assert account.marketing_version == "m2"
    with pytest.raises(RuleViolation):
        account.give_marketing_consent("  ", NOW)


def test_withdrawing_records_time_and_channel_and_is_idempotent() -> None:
    account = customer()
    assert account.withdraw_marketing_consent(NOW, "account") is False  # nothing given
    assert account.collect_events() == []
    account.give_marketing_consent("m1", NOW)
    later = NOW + timedelta(hours=1)
    assert account.withdraw_marketing_consent(later, "unsubscribe_link") is True
    (_, event) = account.collect_events()
    assert type(event).__name__ == "MarketingConsentWithdrawn"
    assert vars(event)["via"] == "unsubscribe_link" and vars(event)["version"] == "m1"
    assert account.has_marketing_consent is False
    assert (account.marketing_withdrawn_at, account.marketing_withdrawn_via) == (
        later.isoformat(), "unsubscribe_link")
    assert account.withdraw_marketing_consent(later, "account") is False
    # giving again after a withdrawal is a new consent, even of the same version
    assert account.give_marketing_consent("m1", later) is True
    assert account.has_marketing_consent and account.marketing_withdrawn_at is None
    with pytest.raises(RuleViolation):
        account.withdraw_marketing_consent(later, "carrier pigeon")
    assert account.has_marketing_consent


def test_a_closed_account_can_withdraw_but_not_give() -> None:
    account = customer()
    account.give_marketing_consent("m1", NOW)
    account.deactivate()
    with pytest.raises(InvalidState):
        account.give_marketing_consent("m2", NOW)
    assert account.withdraw_marketing_consent(NOW, "staff") is True
    account.erase()
    assert account.withdraw_marketing_consent(NOW, "account") is False
