"""Email verification and linking rules of the Account aggregate, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from midas.domain.accounts import Account, AlreadyVerified, VerificationRefused
from midas.domain.errors import InvalidState, RuleViolation

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
DAY = timedelta(hours=24)
TICK = timedelta(microseconds=1)


def customer(email: str = "ada@example.com") -> Account:
    return Account.register(email=email, name="Ada", consent_version="v1", consent_at=NOW)


def test_a_link_verifies_just_before_its_expiry_and_only_once() -> None:
    account = customer()
    assert account.request_email_verification("v1", NOW + DAY) == "ada@example.com"
    assert not account.email_verified
    account.verify_email("v1", NOW + DAY - TICK)
    assert account.email_verified and account.pending_verification is None
    with pytest.raises(VerificationRefused):
        account.verify_email("v1", NOW)  # single use


def test_a_link_is_refused_at_its_expiry() -> None:
    account = customer()
    account.request_email_verification("v1", NOW + DAY)
    with pytest.raises(VerificationRefused):
        account.verify_email("v1", NOW + DAY)
    assert not account.email_verified


def test_a_new_link_replaces_the_earlier_one() -> None:
    account = customer()
    account.request_email_verification("v1", NOW + DAY)
    account.request_email_verification("v2", NOW + 2 * DAY)
    with pytest.raises(VerificationRefused):
        account.verify_email("v1", NOW)
    account.verify_email("v2", NOW)
    with pytest.raises(AlreadyVerified):
        account.request_email_verification("v3", NOW + DAY)


def test_an_email_change_waits_for_the_new_address_to_be_verified() -> None:
    account = customer()
    account.request_email_verification("v1", NOW + DAY)
    account.verify_email("v1", NOW)
    assert account.request_email_change("v2", " ada.king@example.com ", NOW + DAY)
    assert account.email == "ada@example.com" and account.email_verified
    # a resend goes to the address awaiting proof, never to the current one
    assert account.request_email_verification("v3", NOW + DAY) == "ada.king@example.com"
    account.verify_email("v3", NOW)
    assert account.email == "ada.king@example.com" and account.email_verified
    assert not account.request_email_change("v4", "ada.king@example.com", NOW + DAY)
    names = [type(e).__name__ for e in account.collect_events()]
    assert names == ["Registered", "EmailVerificationRequested", "EmailVerified",
                     "EmailChangeRequested", "EmailVerificationRequested", "EmailVerified"]
    assert account.pending_verification is None
    with pytest.raises(RuleViolation):
        account.request_email_change("v5", "not-an-email", NOW + DAY)


def test_google_links_by_email_only_a_verified_customer_account() -> None:
    unverified = customer()
    with pytest.raises(RuleViolation):
        unverified.link_google("g-1", by_email=True)
    unverified.link_google("g-1")  # found by its subject: not by email
    staff = Account.register(email="sam@midas.example", name="Sam", role="concierge")
    staff.request_email_verification("v1", NOW + DAY)
    staff.verify_email("v1", NOW)
    with pytest.raises(RuleViolation):
        staff.link_google("g-2", by_email=True)
    verified = customer("bob@example.com")
    verified.request_email_verification("v1", NOW + DAY)
    verified.verify_email("v1", NOW)
    verified.link_google("g-3", by_email=True)
    assert verified.google_subject == "g-3"


def test_google_vouches_only_for_the_current_email() -> None:
    account = customer()
    assert not account.verified_by_google("someone@example.com")
    assert account.verified_by_google("ADA@example.com")
    assert account.email_verified and not account.verified_by_google("ada@example.com")


def test_an_unverified_claim_lapses_when_its_first_link_expires() -> None:
    account = customer()
    assert not account.claim_lapsed(NOW + 10 * DAY)  # no link ever sent: never
    account.request_email_verification("v1", NOW + DAY)
    account.request_email_verification("v2", NOW + 2 * DAY)  # a resend does not extend it
    assert not account.claim_lapsed(NOW + DAY - TICK)
    assert account.claim_lapsed(NOW + DAY)
    account.verify_email("v2", NOW + DAY)
    assert not account.claim_lapsed(NOW + 10 * DAY)


def test_only_an_unverified_customer_email_is_released() -> None:
    account = customer()
    account.release_email("verified_elsewhere", "other-account")
    assert account.email_released and not account.is_active
    with pytest.raises(InvalidState):
        account.release_email("verified_elsewhere", "other-account")
    verified = customer("bob@example.com")
    verified.verified_by_google("bob@example.com")
    with pytest.raises(RuleViolation):
        verified.release_email("verified_elsewhere", "other-account")
    staff = Account.register(email="sam@midas.example", name="Sam", role="admin")
    with pytest.raises(RuleViolation):
        staff.release_email("verified_elsewhere", "other-account")
