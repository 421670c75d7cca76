"""Cancellation refunds (docs/domain.md, Cancellation and refunds).

The refund is a percentage of the amount paid; the deposit hold is always released, so it
never appears here. Notice is measured in absolute time from the cancellation to the start,
and each tier's lower bound is inclusive: exactly 48 h before a car booking refunds 100 %,
47 h 59 min refunds 50 %. Cancelling at or after the start refunds nothing, unless the
business cancels or force majeure is declared, which always refund in full.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from midas.domain.availability import require_aware
from midas.domain.catalogue import Catalogue, Category
from midas.domain.pricing import round_half_up

FULL_REFUND = Decimal(100)
NO_REFUND = Decimal(0)


class CancellationReason(StrEnum):
    CUSTOMER = "customer"
    BUSINESS = "business"  # cancelled by the business
    FORCE_MAJEURE = "force_majeure"  # declared by an admin on the booking
    # A balance left unpaid past its grace: what was paid is forfeited (yacht and villa
    # practice), not refunded by the table.
    CLIENT_DEFAULT = "client_default"


def notice_before_start(start: datetime, cancelled_at: datetime) -> timedelta:
    """How long before the start a booking was cancelled (negative once it has started)."""
    return require_aware(start, "start") - require_aware(cancelled_at, "cancelled_at")


def refund_percentage(
    category: Category,
    notice: timedelta,
    catalogue: Catalogue,
    *,
    reason: CancellationReason = CancellationReason.CUSTOMER,
) -> Decimal:
    """The percentage of the amount paid refunded for a cancellation with this notice."""
    if CancellationReason(reason) is CancellationReason.CLIENT_DEFAULT:
        return NO_REFUND
    if CancellationReason(reason) is not CancellationReason.CUSTOMER:
        return FULL_REFUND
    if notice <= timedelta(0):
        return NO_REFUND
    for tier in catalogue.refund_table(category):  # longest notice first
        if notice >= tier.min_notice:
            return tier.percentage
    return NO_REFUND


def refund_percentage_at(
    category: Category,
    start: datetime,
    cancelled_at: datetime,
    catalogue: Catalogue,
    *,
    reason: CancellationReason = CancellationReason.CUSTOMER,
) -> Decimal:
    """`refund_percentage` for a cancellation at `cancelled_at` of a booking starting `start`."""
    notice = notice_before_start(start, cancelled_at)
    return refund_percentage(category, notice, catalogue, reason=reason)


def refund_amount(paid: int, percentage: Decimal) -> int:
    """The refund in minor units: `percentage` % of `paid`, rounded half-up to the cent."""
    if isinstance(paid, bool) or not isinstance(paid, int) or paid < 0:
        raise ValueError(f"paid must be a non-negative int of minor units, got {paid!r}")
    if not isinstance(percentage, Decimal) or not NO_REFUND <= percentage <= FULL_REFUND:
        raise ValueError(f"percentage must be a Decimal from 0 to 100, got {percentage!r}")
    return round_half_up(paid * percentage / FULL_REFUND)
