"""Stripe webhook signatures: Stripe's own scheme (its SDK), and a timestamp within the
tolerance on both sides of now.

The SDK refuses a timestamp older than the tolerance but accepts any in the future, so a
signed event captured with a timestamp set ahead would stay replayable long after its
time. Here a timestamp more than the tolerance ahead is refused as a stale one is.
"""

from __future__ import annotations

from stripe import SignatureVerificationError, WebhookSignature


def verify_stripe_signature(
    payload: str, header: str | None, secret: str, tolerance_s: int, *, now: float
) -> None:
    """Raise ``SignatureVerificationError`` unless ``header`` signs ``payload`` with
    ``secret`` at a time within ``tolerance_s`` seconds of ``now`` (bounds included)."""
    if not header:
        raise SignatureVerificationError("No signature header", header, payload)
    WebhookSignature.verify_header(payload, header, secret, tolerance=None)  # time: below
    timestamp = _timestamp(header)
    if timestamp is None or abs(timestamp - now) > tolerance_s:
        raise SignatureVerificationError("Timestamp outside the tolerance zone", header,
                                         payload)


def _timestamp(header: str) -> int | None:
    for item in header.split(","):
        key, _, value = item.partition("=")
        if key.strip() == "t":
            try:
                return int(value)
            except ValueError:
                return None
    return None
