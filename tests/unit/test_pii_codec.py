"""Envelopes of personal fields: sealing, opening, shredding, declared paths."""

from __future__ import annotations

import base64
from uuid import uuid4

import pytest

from midas.domain.accounts import ERASED, Account
from midas.security import pii


def test_seal_and_open_round_trip_with_a_fresh_nonce_each_time() -> None:
    key, subject = pii.new_key(), uuid4()
    first, second = pii.seal(key, subject, "ada@example.com"), pii.seal(key, subject,
                                                                       "ada@example.com")
    assert first.startswith(pii.PREFIX) and first != second
    assert "ada" not in first
    assert pii.open_value(key, subject, first) == "ada@example.com"
    assert pii.open_value(key, subject, second) == "ada@example.com"


def test_without_the_key_an_envelope_reads_as_erased_and_clear_values_pass() -> None:
    subject = uuid4()
    sealed = pii.seal(pii.new_key(), subject, "Ada")
    assert pii.open_value(None, subject, sealed) == ERASED
    assert pii.open_value(None, subject, "legacy clear value") == "legacy clear value"
    assert pii.open_value(None, subject, None) is None


def test_an_envelope_is_bound_to_its_subject_and_key() -> None:
    key, subject = pii.new_key(), uuid4()
    sealed = pii.seal(key, subject, "Ada")
    with pytest.raises(pii.PiiError):
        pii.open_value(key, uuid4(), sealed)  # moved to another subject
    with pytest.raises(pii.PiiError):
        pii.open_value(pii.new_key(), subject, sealed)
    raw = sealed[len(pii.PREFIX):]
    blob = bytearray(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    blob[-1] ^= 1
    tampered = pii.PREFIX + base64.urlsafe_b64encode(bytes(blob)).decode().rstrip("=")
    with pytest.raises(pii.PiiError):
        pii.open_value(key, subject, tampered)


def test_transform_reaches_nested_paths_and_leaves_the_rest() -> None:
    data = {"changes": {"email": "a@b.cd", "role": "x"}, "name": "Ada", "phone": None,
            "amount": 100}
    out = pii.transform(data, ("changes.email", "name", "phone", "missing.x"), str.upper)
    assert out == {"changes": {"email": "A@B.CD", "role": "x"}, "name": "ADA",
                   "phone": None, "amount": 100}
    assert data["name"] == "Ada"  # a copy
    assert pii.has_personal(data, ("changes.email",))
    assert not pii.has_personal(data, ("phone", "changes.phone"))


def test_account_declares_its_personal_fields() -> None:
    specs = pii.personal_paths([Account])
    assert specs["Account.Registered"] == ("email", "name", "phone", "google_subject")
    assert "changes.email" in specs["Account.ProfileChanged"]
    assert specs["Account.GoogleLinked"] == ("subject",)
    assert "Account.Erased" not in specs


def test_erasing_an_account_blanks_its_state_once() -> None:
    from datetime import UTC, datetime

    account = Account.register(email="ada@example.com", name="Ada", phone="+44 1234 5678",
                               consent_version="v1", consent_at=datetime.now(UTC))
    assert account.erase() is True
    assert (account.email, account.name, account.phone, account.status) == (
        ERASED, ERASED, ERASED, "erased")
    assert account.google_subject is None
    assert account.erase() is False
    assert not account.is_active


def test_a_deactivated_account_can_still_be_erased_and_then_nothing_changes_it() -> None:
    from datetime import UTC, datetime

    from midas.domain.errors import InvalidState

    account = Account.register(email="ada@example.com", name="Ada", consent_version="v1",
                               consent_at=datetime.now(UTC))
    account.deactivate()
    assert account.erase() is True and account.phone is None
    with pytest.raises(InvalidState):
        account.change_profile(name="Someone")
