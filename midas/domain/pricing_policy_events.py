"""The events of the PricingPolicy aggregate (midas.domain.pricing_policy): payloads and types.

Readers import the type (``midas.domain.events``): ``event.type == X`` selects,
``X.of(event)`` reads the payload. A field with ``NotRequired`` may be absent from events
recorded before it was added.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

from midas.domain.events import EventType


class PricingPolicyStarted(TypedDict):
    locations: NotRequired[list[dict[str, Any]] | None]


PRICING_POLICY_STARTED = EventType("PricingPolicy.Started", PricingPolicyStarted)


class PricingPolicyDurationDiscountsSet(TypedDict):
    category: str
    tiers: list[dict[str, Any]]


PRICING_POLICY_DURATION_DISCOUNTS_SET = EventType(
    "PricingPolicy.DurationDiscountsSet", PricingPolicyDurationDiscountsSet)


class PricingPolicyStayRulesSet(TypedDict):
    rules: dict[str, Any]


PRICING_POLICY_STAY_RULES_SET = EventType("PricingPolicy.StayRulesSet", PricingPolicyStayRulesSet)


class PricingPolicyExchangeRateSet(TypedDict):
    currency: str
    valid_from: str
    rate: str
    reporting_currency: str


PRICING_POLICY_EXCHANGE_RATE_SET = EventType(
    "PricingPolicy.ExchangeRateSet", PricingPolicyExchangeRateSet)


class PricingPolicyLocationAdded(TypedDict):
    location: dict[str, str]
    seasons: list[dict[str, str]]


PRICING_POLICY_LOCATION_ADDED = EventType("PricingPolicy.LocationAdded", PricingPolicyLocationAdded)


class PricingPolicyLocationChanged(TypedDict):
    code: str
    changes: dict[str, str]


PRICING_POLICY_LOCATION_CHANGED = EventType(
    "PricingPolicy.LocationChanged", PricingPolicyLocationChanged)


class PricingPolicySeasonsSet(TypedDict):
    location: str
    seasons: list[dict[str, str]]


PRICING_POLICY_SEASONS_SET = EventType("PricingPolicy.SeasonsSet", PricingPolicySeasonsSet)


class PricingPolicyTaxRateSet(TypedDict):
    location: str
    rate: str


PRICING_POLICY_TAX_RATE_SET = EventType("PricingPolicy.TaxRateSet", PricingPolicyTaxRateSet)
