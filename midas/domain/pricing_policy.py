"""The pricing policy: the locations, their seasons and tax rates, event-sourced.

One policy aggregate (a fixed id) holds what admins manage about places and prices; its
events are the history of every price rule, so a quote (which records the policy version it
used, and every multiplier and rate line by line) stays explainable later.

Its first event records the seed: the locations of `DEFAULT_CATALOGUE`, each with its name,
time zone, tax rate, currency and seasons. From then on the locations in force are the ones
in the log (added, changed, given new seasons or tax rates by admins), never the constant:
a location added is in force for every process at its next command, with no restart. A
policy stream started before the seed was recorded is seeded from the constant.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID, uuid5
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from eventsourcing.domain import Aggregate, event

from midas.domain.catalogue import (
    DEFAULT_CATALOGUE,
    Catalogue,
    Category,
    Changeover,
    DurationDiscount,
    ExchangeRate,
    Location,
    MinimumStay,
    Season,
    SeasonKind,
    StayRules,
    UnknownLocation,
    Weekday,
)
from midas.domain.errors import DomainError, RuleViolation
from midas.domain.pricing_policy_events import (
    PRICING_POLICY_DURATION_DISCOUNTS_SET,
    PRICING_POLICY_EXCHANGE_RATE_SET,
    PRICING_POLICY_LOCATION_ADDED,
    PRICING_POLICY_LOCATION_CHANGED,
    PRICING_POLICY_SEASONS_SET,
    PRICING_POLICY_STARTED,
    PRICING_POLICY_STAY_RULES_SET,
    PRICING_POLICY_TAX_RATE_SET,
)

POLICY_ID = uuid5(UUID(int=0), "midas:pricing-policy")
LOCATION_CODE = re.compile(r"^[A-Z]{2}-[A-Z]{2}$")
CURRENCY_CODE = re.compile(r"^[A-Z]{3}$")
LOCATION_FIELDS = ("name", "time_zone", "currency")


class LocationExists(DomainError):
    def __init__(self, code: str) -> None:
        super().__init__(f"location {code} exists already")
        self.code = code


class PricingPolicy(Aggregate):
    @event(PRICING_POLICY_STARTED.event_name)
    def __init__(self, locations: list[dict[str, Any]] | None = None) -> None:
        # code -> {code, name, time_zone, tax_rate (text), currency}; code -> seasons
        self.locations: dict[str, dict[str, str]] = {}
        self.seasons: dict[str, list[dict[str, str]]] = {}
        # category -> [{min_nights, percentage}]; the stay rules as plain data
        self.duration_discounts: dict[str, list[dict[str, Any]]] = {}
        self.stay_rules: dict[str, Any] = {}
        # currency -> [{valid_from, rate, reporting_currency}], earliest first
        self.exchange_rates: dict[str, list[dict[str, str]]] = {}
        for record in locations if locations is not None else seed_locations():
            self._file(record)

    @classmethod
    def start(cls) -> PricingPolicy:
        """The policy's first event, recording the seeded locations."""
        # `Started` is made by the library from `@event("Started")` on `__init__`.
        return cls._create(cls.Started, id=POLICY_ID,  # type: ignore[attr-defined]
                           locations=seed_locations())

    # -- locations --------------------------------------------------------------------

    def add_location(
        self, *, code: str, name: str, time_zone: str, tax_rate: Decimal, currency: str,
        seasons: list[dict[str, str]],
    ) -> None:
        """A new location, in force at once for pricing and new items."""
        if code in self.locations:
            raise LocationExists(code)
        record = location_record(code=code, name=name, time_zone=time_zone,
                                 tax_rate=tax_rate, currency=currency)
        self._location_added(location=record, seasons=plain_seasons(seasons))

    def change_location(self, code: str, **changes: str) -> None:
        """Change a location's name, time zone or currency (items keep their own currency).
        Only what differs is recorded; nothing differing records nothing."""
        current = self.location(code)
        unknown = set(changes) - set(LOCATION_FIELDS)
        if unknown:
            raise RuleViolation(f"a location has no field {sorted(unknown)[0]!r}")
        merged = location_record(code=code, name=changes.get("name", current["name"]),
                                 time_zone=changes.get("time_zone", current["time_zone"]),
                                 tax_rate=Decimal(current["tax_rate"]),
                                 currency=changes.get("currency", current["currency"]))
        changed = {k: merged[k] for k in LOCATION_FIELDS if merged[k] != current[k]}
        if changed:
            self._location_changed(code=code, changes=changed)

    def location(self, code: str) -> dict[str, str]:
        try:
            return self.locations[code]
        except KeyError:
            raise UnknownLocation(code) from None

    def set_seasons(self, location: str, seasons: list[dict[str, str]]) -> None:
        """Replace a location's seasons: [{kind, first: "MM-DD", last: "MM-DD"}]."""
        self.location(location)
        self._seasons_set(location=location, seasons=plain_seasons(seasons))

    def set_tax_rate(self, location: str, rate: Decimal) -> None:
        self.location(location)
        self._tax_rate_set(location=location, rate=str(_tax_rate(rate)))

    # -- duration pricing and stay rules ----------------------------------------------

    def set_duration_discounts(self, category: str, tiers: list[dict[str, Any]]) -> None:
        """Replace a category's discounts by length of stay ([] for none)."""
        plain = plain_discounts(tiers)
        if plain != self.duration_discounts.get(Category(category).value, []):
            self._duration_discounts_set(category=Category(category).value, tiers=plain)

    def set_stay_rules(self, rules: dict[str, Any]) -> None:
        """Replace the stay rules as a whole (see `parse_stay_rules`)."""
        parsed = parse_stay_rules(rules)
        located: list[MinimumStay | Changeover] = [*parsed.minimum_stays, *parsed.changeovers]
        for rule in located:
            if rule.location is not None:
                self.location(rule.location)
        plain = plain_stay_rules(parsed)
        if plain != self.stay_rules:
            self._stay_rules_set(rules=plain)

    # -- currencies -----------------------------------------------------------------------

    def set_exchange_rate(self, currency: str, valid_from: date, rate: Decimal,
                          reporting_currency: str) -> None:
        """From `valid_from` on, one `currency` is worth `rate` of the reporting currency
        (a rate set again for the same date replaces it)."""
        if not CURRENCY_CODE.match(currency):
            raise RuleViolation(f"a currency is an ISO 4217 code such as EUR: {currency!r}")
        if currency == reporting_currency:
            raise RuleViolation(f"{currency} is the reporting currency: its rate is 1")
        try:
            ExchangeRate(valid_from, rate, reporting_currency)
        except ValueError as exc:
            raise RuleViolation(str(exc)) from None
        self._exchange_rate_set(currency=currency, valid_from=valid_from.isoformat(),
                                rate=str(rate), reporting_currency=reporting_currency)

    def catalogue(self, base: Catalogue = DEFAULT_CATALOGUE) -> Catalogue:
        """`base` with this policy's locations, seasons, tax rates, duration discounts and
        stay rules."""
        return catalogue_of(self.locations, self.seasons,
                            getattr(self, "duration_discounts", {}),
                            getattr(self, "stay_rules", {}),
                            getattr(self, "exchange_rates", {}), base)

    # -- events -------------------------------------------------------------------------

    @event(PRICING_POLICY_DURATION_DISCOUNTS_SET.event_name)
    def _duration_discounts_set(self, category: str, tiers: list[dict[str, Any]]) -> None:
        self.duration_discounts[category] = tiers

    @event(PRICING_POLICY_STAY_RULES_SET.event_name)
    def _stay_rules_set(self, rules: dict[str, Any]) -> None:
        self.stay_rules = rules

    @event(PRICING_POLICY_EXCHANGE_RATE_SET.event_name)
    def _exchange_rate_set(self, currency: str, valid_from: str, rate: str,
                           reporting_currency: str) -> None:
        listed = [r for r in self.exchange_rates.get(currency, [])
                  if r["valid_from"] != valid_from]
        listed.append({"valid_from": valid_from, "rate": rate,
                       "reporting_currency": reporting_currency})
        self.exchange_rates[currency] = sorted(listed, key=lambda r: r["valid_from"])

    @event(PRICING_POLICY_LOCATION_ADDED.event_name)
    def _location_added(self, location: dict[str, str], seasons: list[dict[str, str]]) -> None:
        self._file({**location, "seasons": seasons})

    @event(PRICING_POLICY_LOCATION_CHANGED.event_name)
    def _location_changed(self, code: str, changes: dict[str, str]) -> None:
        self.locations[code] = {**self.locations[code], **changes}

    @event(PRICING_POLICY_SEASONS_SET.event_name)
    def _seasons_set(self, location: str, seasons: list[dict[str, str]]) -> None:
        self.seasons[location] = seasons

    @event(PRICING_POLICY_TAX_RATE_SET.event_name)
    def _tax_rate_set(self, location: str, rate: str) -> None:
        self.locations[location] = {**self.locations[location], "tax_rate": rate}

    def _file(self, record: dict[str, Any]) -> None:
        code = record["code"]
        self.locations[code] = {k: record[k] for k in ("code", "name", "time_zone",
                                                       "tax_rate", "currency")}
        self.seasons[code] = list(record.get("seasons", []))


def catalogue_of(
    locations: dict[str, dict[str, str]], seasons: dict[str, list[dict[str, str]]],
    duration_discounts: dict[str, list[dict[str, Any]]], stay_rules: dict[str, Any],
    exchange_rates: dict[str, list[dict[str, str]]], base: Catalogue = DEFAULT_CATALOGUE,
) -> Catalogue:
    """`base` with a policy's plain state (as the aggregate keeps it, and the `policy` read
    model): its locations, seasons, tax rates, duration discounts, stay rules and rates."""
    places = {code: Location(code=code, name=r["name"], time_zone=r["time_zone"],
                             tax_rate=Decimal(r["tax_rate"]), currency=r["currency"])
              for code, r in locations.items()}
    periods = {code: tuple(Season.between(SeasonKind(s["kind"]), s["first"], s["last"])
                           for s in listed)
               for code, listed in seasons.items() if code in places}
    discounts = {**base.duration_discounts,
                 **{Category(c): parse_discounts(t) for c, t in duration_discounts.items()}}
    rates = {currency: tuple(ExchangeRate(date.fromisoformat(r["valid_from"]),
                                          Decimal(r["rate"]), r["reporting_currency"])
                             for r in listed)
             for currency, listed in exchange_rates.items()}
    return replace(base, locations=places, seasons=periods, exchange_rates=rates,
                   duration_discounts=discounts,
                   stay_rules=parse_stay_rules(stay_rules) if stay_rules else base.stay_rules)


def seed_locations(base: Catalogue = DEFAULT_CATALOGUE) -> list[dict[str, Any]]:
    """The seeded locations as plain records (with their seasons), from `base`."""
    return [
        {**location_record(code=place.code, name=place.name or place.code,
                           time_zone=place.time_zone, tax_rate=place.tax_rate,
                           currency=place.currency),
         "seasons": [{"kind": s.kind.value, "first": str(s.first), "last": str(s.last)}
                     for s in base.seasons.get(place.code, ())]}
        for place in base.locations.values()
    ]


def location_record(
    *, code: str, name: str, time_zone: str, tax_rate: Decimal, currency: str
) -> dict[str, str]:
    """A location as plain event data, or RuleViolation naming what is wrong."""
    if not LOCATION_CODE.match(code):
        raise RuleViolation(f"a location code is two letters, a dash, two letters: {code!r}")
    if not name.strip():
        raise RuleViolation("a location needs a name")
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise RuleViolation(f"unknown time zone {time_zone!r}") from None
    if not CURRENCY_CODE.match(currency):
        raise RuleViolation(f"a currency is an ISO 4217 code such as EUR: {currency!r}")
    return {"code": code, "name": name, "time_zone": time_zone,
            "tax_rate": str(_tax_rate(tax_rate)), "currency": currency}


def plain_seasons(seasons: list[dict[str, str]]) -> list[dict[str, str]]:
    try:
        parsed = [Season.between(SeasonKind(s["kind"]), s["first"], s["last"])
                  for s in seasons]
    except (KeyError, ValueError) as exc:
        raise RuleViolation(f"invalid season: {exc}") from None
    return [{"kind": s.kind.value, "first": str(s.first), "last": str(s.last)}
            for s in parsed]


def _tax_rate(rate: Decimal) -> Decimal:
    try:
        valid = isinstance(rate, Decimal) and rate.is_finite() and Decimal(0) <= rate < 1
    except InvalidOperation:
        valid = False
    if not valid:
        raise RuleViolation("a tax rate is a fraction from 0 to 1, e.g. 0.05")
    return rate


def parse_discounts(tiers: list[dict[str, Any]]) -> tuple[DurationDiscount, ...]:
    """[{min_nights, percentage: "10"}] -> discounts, or RuleViolation. One tier a length."""
    try:
        parsed = tuple(DurationDiscount(int(t["min_nights"]), Decimal(str(t["percentage"])))
                       for t in tiers)
    except (KeyError, ValueError, TypeError, InvalidOperation) as exc:
        raise RuleViolation(f"invalid duration discount: {exc}") from None
    if len({t.min_nights for t in parsed}) != len(parsed):
        raise RuleViolation("one discount per length of stay")
    return tuple(sorted(parsed, key=lambda t: t.min_nights))


def plain_discounts(tiers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"min_nights": t.min_nights, "percentage": str(t.percentage)}
            for t in parse_discounts(tiers)]


def parse_stay_rules(rules: dict[str, Any]) -> StayRules:
    """{minimum_stays: [{category, season, nights, location?}], changeovers: [{category,
    season, weekday, location?}], advance_notice_hours, horizon_days (null: none)}."""
    try:
        minimum = tuple(MinimumStay(Category(r["category"]), SeasonKind(r["season"]),
                                    _positive(r["nights"], "nights"), r.get("location"))
                        for r in rules.get("minimum_stays", []))
        changeovers = tuple(Changeover(Category(r["category"]), SeasonKind(r["season"]),
                                       Weekday(r["weekday"]), r.get("location"))
                            for r in rules.get("changeovers", []))
        notice = _non_negative(rules.get("advance_notice_hours", 0), "advance_notice_hours")
        horizon = rules.get("horizon_days")
        horizon_days = None if horizon is None else _positive(horizon, "horizon_days")
    except (KeyError, ValueError, TypeError) as exc:
        raise RuleViolation(f"invalid stay rule: {exc}") from None
    return StayRules(minimum_stays=minimum, changeovers=changeovers,
                     advance_notice=timedelta(hours=notice),
                     horizon=None if horizon_days is None else timedelta(days=horizon_days))


def plain_stay_rules(rules: StayRules) -> dict[str, Any]:
    return {
        "minimum_stays": [{"category": r.category.value, "season": r.season.value,
                           "nights": r.nights, "location": r.location}
                          for r in rules.minimum_stays],
        "changeovers": [{"category": r.category.value, "season": r.season.value,
                         "weekday": r.weekday.value, "location": r.location}
                        for r in rules.changeovers],
        "advance_notice_hours": int(rules.advance_notice / timedelta(hours=1)),
        "horizon_days": None if rules.horizon is None else rules.horizon.days,
    }


def _positive(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive whole number")
    return value


def _non_negative(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a whole number, 0 or more")
    return value
