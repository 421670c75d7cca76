"""Segment rules and the Account's tier and loyalty rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from midas.domain.accounts import Account
from midas.domain.errors import RuleViolation
from midas.domain.segments import CustomerFacts, primary, segments_of, threshold_from_ranked

NOW = datetime(2026, 6, 1, tzinfo=UTC)
MULTIPLIERS = {"standard": "1.0", "premium": "1.25", "vvip": "1.5"}


def test_each_segment_rule() -> None:
    assert segments_of(CustomerFacts(), NOW, {}) == ["prospect"]
    assert segments_of(CustomerFacts(tier="vvip"), NOW, {}) == ["vip", "prospect"]
    recent = CustomerFacts(confirmed=1, first_booking_at=NOW - timedelta(days=89),
                           last_booking_at=NOW - timedelta(days=89))
    assert segments_of(recent, NOW, {}) == ["new"]
    older = CustomerFacts(confirmed=1, first_booking_at=NOW - timedelta(days=90),
                          last_booking_at=NOW - timedelta(days=90))
    assert segments_of(older, NOW, {}) == []
    lapsed = CustomerFacts(confirmed=2, completed=3, first_booking_at=NOW - timedelta(days=900),
                           last_booking_at=NOW - timedelta(days=365))
    assert segments_of(lapsed, NOW, {}) == ["loyal", "at_risk"]
    one_lapsed = CustomerFacts(confirmed=1, first_booking_at=NOW - timedelta(days=900),
                               last_booking_at=NOW - timedelta(days=900))
    assert segments_of(one_lapsed, NOW, {}) == []
    top = CustomerFacts(confirmed=1, net_spend={"USD": 500}, first_booking_at=NOW,
                        last_booking_at=NOW)
    assert segments_of(top, NOW, {"USD": 500}) == ["vip", "new"]
    assert segments_of(top, NOW, {"USD": 501}) == ["new"]
    assert segments_of(top, NOW, {"EUR": 1}) == ["new"]
    assert primary(["loyal", "at_risk"]) == "loyal" and primary([]) is None


def test_vip_threshold_is_the_top_five_percent() -> None:
    spends = list(range(100, 0, -1))  # 100 spenders: the top 5 are vip
    assert threshold_from_ranked(spends) == 96
    assert threshold_from_ranked([10, 5, 0, -3]) == 10  # ceil(5 % of 2) = 1
    assert threshold_from_ranked([0, -1]) is None


def _customer() -> Account:
    return Account.register(email="a@example.com", name="A", consent_version="1",
                            consent_at=NOW)


def test_tiers_rise_only_automatically_and_admins_set_them_with_a_reason() -> None:
    a = _customer()
    assert a.tier == "standard"
    assert a.raise_tier("premium", "spend", 100_000_00, "USD") is True
    assert a.raise_tier("premium", "spend", 100_000_00, "USD") is False
    assert a.raise_tier("standard", "spend", 0, "USD") is False
    assert a.tier == "premium"
    with pytest.raises(RuleViolation):
        a.set_tier("vvip", " ")
    with pytest.raises(RuleViolation):
        a.set_tier("gold", "why not")
    assert a.set_tier("standard", "requested by the customer") is True
    assert a.tier == "standard"


def test_points_are_awarded_once_with_the_multiplier_and_revoked_in_proportion() -> None:
    a = _customer()
    a.raise_tier("vvip", "spend", 1, "USD")
    assert a.award_points("b1", 1001, MULTIPLIERS) is True
    assert a.points == 1501  # floor(1001 x 1.5)
    assert a.award_points("b1", 1001, MULTIPLIERS) is False
    assert a.revoke_points("b1", refunded=1, paid=3) is True  # floor(1501 / 3) = 500
    assert a.points == 1001
    assert a.revoke_points("b1", refunded=1, paid=3) is False  # cumulative: nothing more
    assert a.revoke_points("b1", refunded=5, paid=3) is True  # capped at all of it
    assert a.points == 0
    assert a.revoke_points("unknown", 1, 1) is False
