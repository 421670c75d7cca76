"""Stripe signatures: Stripe's own scheme, and a timestamp within the tolerance on both
sides of now (the SDK alone refuses only stale ones)."""

from __future__ import annotations

import pytest
from stripe import SignatureVerificationError

from midas.payment_providers.stripe_signature import verify_stripe_signature
from tests.support.fake_stripe import WEBHOOK_SECRET, sign

PAYLOAD = '{"id": "evt_1", "type": "payment_intent.succeeded"}'
NOW = 1_790_000_000
TOLERANCE = 300


def _verify(timestamp: int, payload: str = PAYLOAD) -> None:
    verify_stripe_signature(payload, sign(PAYLOAD, timestamp=timestamp), WEBHOOK_SECRET,
                            TOLERANCE, now=NOW)


@pytest.mark.parametrize("offset", [0, -TOLERANCE, TOLERANCE, -1, 1])
def test_timestamps_within_the_tolerance_either_side_are_accepted(offset: int) -> None:
    _verify(NOW + offset)


@pytest.mark.parametrize("offset", [-TOLERANCE - 1, TOLERANCE + 1, 10 * 365 * 24 * 3600])
def test_timestamps_beyond_the_tolerance_either_side_are_refused(offset: int) -> None:
    with pytest.raises(SignatureVerificationError):
        _verify(NOW + offset)


def test_the_bound_holds_with_a_fractional_now() -> None:
    header = sign(PAYLOAD, timestamp=NOW + TOLERANCE)
    verify_stripe_signature(PAYLOAD, header, WEBHOOK_SECRET, TOLERANCE, now=NOW + 0.5)
    with pytest.raises(SignatureVerificationError):
        verify_stripe_signature(PAYLOAD, header, WEBHOOK_SECRET, TOLERANCE, now=NOW - 0.5)


@pytest.mark.parametrize("header", [None, "", "t=abc,v1=zz", f"t={NOW}", "v1=abc",
                                    sign(PAYLOAD, secret="whsec_other", timestamp=NOW)])
def test_missing_malformed_or_foreign_signatures_are_refused(header: str | None) -> None:
    with pytest.raises(SignatureVerificationError):
        verify_stripe_signature(PAYLOAD, header, WEBHOOK_SECRET, TOLERANCE, now=NOW)


def test_a_tampered_payload_is_refused() -> None:
    with pytest.raises(SignatureVerificationError):
        _verify(NOW, payload=PAYLOAD.replace("evt_1", "evt_2"))
