"""The Payment aggregate's rules, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from midas.domain.errors import RuleViolation
from midas.domain.payments import (
    DepositLapsed,
    Payment,
    currency_exponent,
    payment_id,
    to_minor_units,
)
from midas.eventstore.repository import encode_event

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _payment(amount: int = 100_000) -> Payment:
    return Payment.request(booking_id=uuid4(), customer_id=uuid4(), amount=amount,
                           currency="USD", provider="stripe", reference="pi_1", at=T0,
                           deposit_amount=50_000)


def test_one_payment_per_booking_with_a_deterministic_id() -> None:
    booking = uuid4()
    p = Payment.request(booking_id=booking, customer_id=uuid4(), amount=1, currency="USD",
                        provider="stripe", reference=None, at=T0)
    assert p.id == payment_id(booking) == payment_id(str(booking))


def test_every_event_carries_the_contract_fields() -> None:
    p = _payment()
    p.succeed("stripe", "pi_1", 100_000, "usd", T0)
    p.fail("stripe", "pi_1", "late failure", T0)  # after success: ignored
    p.request_refund("k1", 10_000, "staff", T0)
    p.refunded_by_provider("re_1", 10_000, T0, key="k1")
    p.open_dispute("dp_1", 100_000, "fraudulent", T0)
    p.close_dispute("dp_1", "won", 100_000, T0)
    p.authorise_deposit("pi_d1", 50_000, T0, timedelta(days=7))
    p.reauthorise_deposit("pi_d2", T0 + timedelta(days=6), timedelta(days=7))
    p.capture_deposit(20_000, "damage", T0 + timedelta(days=8))
    events = [encode_event(p, e) for e in p.collect_events()]
    assert [e.type for e in events] == [
        "Payment.Requested", "Payment.Succeeded", "Payment.RefundRequested",
        "Payment.Refunded", "Payment.DisputeOpened", "Payment.DisputeClosed",
        "Payment.DepositAuthorised", "Payment.DepositReauthorised", "Payment.DepositCaptured"]
    for e in events:
        assert {"booking_id", "customer_id", "amount", "currency", "provider"} <= set(e.data)
        assert isinstance(e.data["amount"], int) and isinstance(e.data["booking_id"], str)
    assert events[5].data["outcome"] == "won"
    assert (p.paid, p.refunded, p.deposit_captured) == (100_000, 10_000, 20_000)


def test_facts_are_recorded_once_and_refunds_never_exceed_what_was_paid() -> None:
    p = _payment()
    assert p.succeed("stripe", "pi_1", 100_000, "USD", T0)
    assert not p.succeed("stripe", "pi_1", 100_000, "USD", T0)
    assert p.request_refund("a", 60_000, "x", T0)
    assert not p.request_refund("a", 60_000, "x", T0)
    with pytest.raises(RuleViolation):
        p.request_refund("b", 40_001, "x", T0)  # 60,000 already asked for
    assert p.refunded_by_provider("re_a", 60_000, T0, key="a")
    assert not p.refunded_by_provider("re_a", 60_000, T0)  # the webhook, later
    assert p.refundable == 40_000
    with pytest.raises(RuleViolation):
        p.succeed("stripe", "pi_2", 1, "EUR", T0)


def test_a_lapsed_deposit_cannot_be_captured() -> None:
    p = _payment()
    p.authorise_deposit("pi_d1", 50_000, T0, timedelta(days=7))
    with pytest.raises(DepositLapsed):
        p.check_capturable(1_000, T0 + timedelta(days=7))
    assert p.lapse_deposit("pi_d1", T0 + timedelta(days=7))
    with pytest.raises(DepositLapsed):
        p.capture_deposit(1_000, "damage", T0 + timedelta(days=7))
    assert not p.reauthorise_deposit("pi_d2", T0 + timedelta(days=7), timedelta(days=7))


def test_minor_units_follow_the_currency() -> None:
    assert currency_exponent("JPY") == 0 and currency_exponent("usd") == 2
    assert to_minor_units("1234.50", "USD") == 123_450
    assert to_minor_units("1234", "JPY") == 1234
    assert to_minor_units("1.2345", "KWD") == 1235  # three decimals, half-up


def test_the_rate_recorded_with_a_payment_converts_its_payments_and_refunds() -> None:
    from decimal import Decimal

    from midas.domain.payments import Payment, convert

    at = datetime(2026, 11, 1, 12, tzinfo=UTC)
    assert convert(5_520_000, "EUR", Decimal("1.10"), "USD") == 6_072_000
    assert convert(1, "EUR", Decimal("0.5"), "USD") == 1  # half a cent: half-up
    assert convert(12_345, "JPY", Decimal("0.0065"), "USD") == 8_024  # exponents 0 -> 2
    assert convert(1_000, "KWD", Decimal("3.25"), "USD") == 325  # exponents 3 -> 2
    rate = {"currency": "USD", "rate": "1.10", "valid_from": "2026-10-01"}
    payment = Payment.request(booking_id="b", customer_id="c", amount=10_000,
                              currency="EUR", provider="stripe", reference="pi_1", at=at,
                              reporting=rate)
    payment.succeed("stripe", "pi_1", 10_000, "eur", at)
    payment.refunded_by_provider("re_1", 2_500, at)
    events = payment.collect_events()
    assert [e.reporting for e in events[1:]] == [{**rate, "amount": 11_000},
                                                 {**rate, "amount": 2_750}]
    unrated = Payment.request(booking_id="b2", customer_id="c", amount=10_000,
                              currency="EUR", provider="stripe", reference="pi_2", at=at)
    unrated.succeed("stripe", "pi_2", 10_000, "EUR", at)
    assert unrated.collect_events()[-1].reporting is None
