"""Customer segments: the rules, in one place.

Segments depend on time ("new", "at_risk") and on everyone else's spend ("vip" by top
share), so they are computed at query time from facts the profiles projection stores,
never stored themselves: a profile read a year later is still right without a timer.

A customer may be in several segments; ``primary`` picks one by ``PRIORITY``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

SEGMENTS = ("vip", "loyal", "at_risk", "new", "prospect")
PRIORITY = SEGMENTS  # the primary segment is the first that applies


@dataclass(frozen=True)
class SegmentRules:
    vip_tier: str = "vvip"  # this tier is always vip
    vip_top_share: Decimal = Decimal("0.05")  # top 5 % by lifetime net spend (per currency)
    loyal_min_completed: int = 3
    new_within: timedelta = timedelta(days=90)
    at_risk_after: timedelta = timedelta(days=365)
    at_risk_min_bookings: int = 2


@dataclass(frozen=True)
class CustomerFacts:
    """What the rules need, as stored by the profiles projection."""

    tier: str = "standard"
    confirmed: int = 0  # bookings ever confirmed (a "booking" below)
    completed: int = 0
    first_booking_at: datetime | None = None
    last_booking_at: datetime | None = None
    net_spend: Mapping[str, int] = field(default_factory=dict)  # currency -> minor units


def vip_rank_size(customers_with_spend: int, rules: SegmentRules = SegmentRules()) -> int:
    """How many of the top spenders of a currency are vip: ceil(share x spenders)."""
    share = rules.vip_top_share * customers_with_spend
    return int(share.to_integral_value(rounding="ROUND_CEILING"))


def segments_of(
    facts: CustomerFacts,
    now: datetime,
    vip_thresholds: Mapping[str, int],
    rules: SegmentRules = SegmentRules(),
) -> list[str]:
    """The segments of one customer. ``vip_thresholds``: per currency, the lowest net
    spend (> 0) inside the top share (see ``vip_thresholds`` in queries/customers.py)."""
    found: list[str] = []
    top = any(
        spend > 0 and currency in vip_thresholds and spend >= vip_thresholds[currency]
        for currency, spend in facts.net_spend.items()
    )
    if facts.tier == rules.vip_tier or top:
        found.append("vip")
    if facts.completed >= rules.loyal_min_completed:
        found.append("loyal")
    if (facts.confirmed >= rules.at_risk_min_bookings and facts.last_booking_at is not None
            and now - facts.last_booking_at >= rules.at_risk_after):
        found.append("at_risk")
    if facts.first_booking_at is not None and now - facts.first_booking_at < rules.new_within:
        found.append("new")
    if facts.confirmed == 0:
        found.append("prospect")
    return found


def primary(segments: list[str]) -> str | None:
    for name in PRIORITY:
        if name in segments:
            return name
    return None


def threshold_from_ranked(spends_desc: list[int], rules: SegmentRules = SegmentRules()
                          ) -> int | None:
    """The vip threshold of one currency from its positive net spends, highest first."""
    positive = [s for s in spends_desc if s > 0]
    if not positive:
        return None
    return positive[vip_rank_size(len(positive), rules) - 1]
