"""The pricing policy: admin-managed seasons and tax rates, event-sourced.

One policy aggregate (a fixed id) overrides entries of `DEFAULT_CATALOGUE`; its events are
the history of every price rule, so a quote (which records the policy version it used, and
every multiplier and rate line by line) stays explainable later.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from midas.domain.catalogue import DEFAULT_CATALOGUE, Catalogue, Season, SeasonKind
from midas.domain.errors import RuleViolation

POLICY_ID = uuid5(UUID(int=0), "midas:pricing-policy")


class PricingPolicy(Aggregate):
    @event("Started")
    def __init__(self) -> None:
        self.seasons: dict[str, list[dict[str, str]]] = {}
        self.tax_rates: dict[str, str] = {}

    @classmethod
    def start(cls) -> PricingPolicy:
        return cls._create(cls.Started, id=POLICY_ID)

    def set_seasons(self, location: str, seasons: list[dict[str, str]]) -> None:
        """Replace a location's seasons: [{kind, first: "MM-DD", last: "MM-DD"}]."""
        DEFAULT_CATALOGUE.location(location)
        try:
            parsed = [Season.between(SeasonKind(s["kind"]), s["first"], s["last"])
                      for s in seasons]
        except (KeyError, ValueError) as exc:
            raise RuleViolation(f"invalid season: {exc}") from None
        plain = [{"kind": s.kind.value, "first": str(s.first), "last": str(s.last)}
                 for s in parsed]
        self._seasons_set(location=location, seasons=plain)

    def set_tax_rate(self, location: str, rate: Decimal) -> None:
        DEFAULT_CATALOGUE.location(location)
        if not rate.is_finite() or not Decimal(0) <= rate < Decimal(1):
            raise RuleViolation("a tax rate is a fraction from 0 to 1, e.g. 0.05")
        self._tax_rate_set(location=location, rate=str(rate))

    def catalogue(self, base: Catalogue = DEFAULT_CATALOGUE) -> Catalogue:
        """`base` with this policy's overrides."""
        return apply_policy(base, self.seasons, self.tax_rates)

    @event("SeasonsSet")
    def _seasons_set(self, location: str, seasons: list[dict[str, str]]) -> None:
        self.seasons[location] = seasons

    @event("TaxRateSet")
    def _tax_rate_set(self, location: str, rate: str) -> None:
        self.tax_rates[location] = rate


def apply_policy(
    base: Catalogue, seasons: dict[str, list[dict[str, str]]], tax_rates: dict[str, str]
) -> Catalogue:
    if not seasons and not tax_rates:
        return base
    all_seasons = dict(base.seasons)
    for code, listed in seasons.items():
        all_seasons[code] = tuple(
            Season.between(SeasonKind(s["kind"]), s["first"], s["last"]) for s in listed)
    locations = {
        code: replace(place, tax_rate=Decimal(tax_rates[code])) if code in tax_rates else place
        for code, place in base.locations.items()
    }
    return replace(base, seasons=all_seasons, locations=locations)
