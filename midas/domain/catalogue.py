"""The catalogue: the vocabulary of the business and every number its rules use.

The numbers of docs/domain.md live in one place, `DEFAULT_CATALOGUE`. Admin commands (stored as
events) build a replacement with `dataclasses.replace`; the rules in the sibling modules take
the catalogue, or the piece of it they need, as a parameter and hold no literal of their own.

Conventions: money is an `int` count of minor units (cents); rates and multipliers are
`Decimal` (a float is refused); durations are `timedelta`.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import cached_property
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class Category(StrEnum):
    CAR = "car"
    YACHT = "yacht"
    JET = "jet"
    PROPERTY = "property"


class RateUnit(StrEnum):
    HOUR = "hour"
    DAY = "day"

    @property
    def length(self) -> timedelta:
        return timedelta(hours=1) if self is RateUnit.HOUR else timedelta(days=1)


class ServiceLevel(StrEnum):
    """The service level of a booking. Customer tiers use the same three names."""

    STANDARD = "standard"
    PREMIUM = "premium"
    VVIP = "vvip"

    @property
    def rank(self) -> int:
        """Position in the order standard < premium < vvip."""
        return list(ServiceLevel).index(self)


class SeasonKind(StrEnum):
    PEAK = "peak"
    HIGH = "high"
    LOW = "low"
    OTHER = "other"


# Where seasons overlap, the kind listed first wins (see `season_kind_on`).
SEASON_PRIORITY = (SeasonKind.PEAK, SeasonKind.HIGH, SeasonKind.LOW, SeasonKind.OTHER)


class UnknownLocation(LookupError):
    def __init__(self, code: str) -> None:
        super().__init__(f"unknown location {code!r}")
        self.code = code


@dataclass(frozen=True, order=True)
class MonthDay:
    """A day of the year without a year, such as 12-15. February 29 is allowed."""

    month: int
    day: int

    def __post_init__(self) -> None:
        if not 1 <= self.month <= 12:
            raise ValueError(f"month out of range: {self.month}")
        if not 1 <= self.day <= calendar.monthrange(2000, self.month)[1]:  # 2000 is a leap year
            raise ValueError(f"day out of range for month {self.month}: {self.day}")

    @classmethod
    def of(cls, day: date) -> MonthDay:
        return cls(day.month, day.day)

    @classmethod
    def parse(cls, text: str) -> MonthDay:
        """Parse "MM-DD"."""
        month, _, day = text.partition("-")
        return cls(int(month), int(day))

    def __str__(self) -> str:
        return f"{self.month:02d}-{self.day:02d}"


@dataclass(frozen=True)
class Season:
    """A yearly range of local dates, `first` to `last` INCLUSIVE.

    When `last` comes before `first` the range wraps the year end (Dec 15 - Jan 10).
    """

    kind: SeasonKind
    first: MonthDay
    last: MonthDay

    @classmethod
    def between(cls, kind: SeasonKind, first: str, last: str) -> Season:
        """Build a season from "MM-DD" texts."""
        return cls(SeasonKind(kind), MonthDay.parse(first), MonthDay.parse(last))

    @property
    def wraps_year_end(self) -> bool:
        return self.last < self.first

    @cached_property
    def _bounds(self) -> tuple[tuple[int, int], tuple[int, int], bool]:
        first, last = (self.first.month, self.first.day), (self.last.month, self.last.day)
        return first, last, last < first

    def contains(self, day: date) -> bool:
        # Plain (month, day) tuples: every quoted day asks, and a MonthDay per question
        # (validated) cost several times the comparison.
        first, last, wraps = self._bounds
        month_day = (day.month, day.day)
        if wraps:
            return month_day >= first or month_day <= last
        return first <= month_day <= last


def season_kind_on(day: date, seasons: Iterable[Season]) -> SeasonKind:
    """The kind of season a local date falls in.

    Rule where ranges overlap: the highest-priority kind wins, peak over high over low over
    other (`SEASON_PRIORITY`). So Dubai's Dec 15 - Jan 10 peak beats the Nov 1 - Mar 31 high
    season it sits inside, and "high outside peak" needs no hole cut in the high range.
    Seasons of one kind price alike, so ties need no further rule. A date in no season is
    `other`.
    """
    kinds = {season.kind for season in seasons if season.contains(day)}
    return next((kind for kind in SEASON_PRIORITY if kind in kinds), SeasonKind.OTHER)


@dataclass(frozen=True)
class CategoryDefaults:
    """Defaults of one category; an item may override its rate unit, buffer and minimum."""

    rate_unit: RateUnit
    buffer: timedelta
    minimum: timedelta
    insurance_rate: Decimal
    security_deposit: int  # minor units; an authorisation hold, never revenue

    def __post_init__(self) -> None:
        _require_non_negative_duration("buffer", self.buffer)
        _require_non_negative_duration("minimum", self.minimum)
        _require_rate("insurance_rate", self.insurance_rate)
        _require_minor_units("security_deposit", self.security_deposit)


@dataclass(frozen=True)
class Location:
    code: str
    time_zone: str  # IANA name; seasons and days are computed in this zone
    tax_rate: Decimal
    currency: str  # default currency of items here (ISO 4217)
    name: str = ""

    def __post_init__(self) -> None:
        _require_rate("tax_rate", self.tax_rate)
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown time zone {self.time_zone!r}") from error

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


@dataclass(frozen=True)
class RefundTier:
    """Cancelling at least `min_notice` before start (inclusive) refunds `percentage`."""

    min_notice: timedelta
    percentage: Decimal  # of the amount paid, 0 to 100

    def __post_init__(self) -> None:
        _require_rate("percentage", self.percentage)
        if self.percentage > 100:
            raise ValueError(f"percentage above 100: {self.percentage}")


class Weekday(StrEnum):
    MONDAY = "monday"
    TUESDAY = "tuesday"
    WEDNESDAY = "wednesday"
    THURSDAY = "thursday"
    FRIDAY = "friday"
    SATURDAY = "saturday"
    SUNDAY = "sunday"

    @property
    def number(self) -> int:
        """As `date.weekday()`: Monday 0 ... Sunday 6."""
        return list(Weekday).index(self)


@dataclass(frozen=True)
class DurationDiscount:
    """Stays of at least `min_nights` nights take `percentage` off the rental."""

    min_nights: int
    percentage: Decimal  # 0 to 100

    def __post_init__(self) -> None:
        if isinstance(self.min_nights, bool) or not isinstance(self.min_nights, int) \
                or self.min_nights < 1:
            raise ValueError(f"min_nights must be a positive int, got {self.min_nights!r}")
        _require_rate("percentage", self.percentage)
        if self.percentage >= 100:
            raise ValueError(f"a discount is below 100 %, got {self.percentage}")


@dataclass(frozen=True)
class MinimumStay:
    """Stays of `category` arriving in a `season` day last at least `nights` nights; at
    one location, or at every one when `location` is None."""

    category: Category
    season: SeasonKind
    nights: int
    location: str | None = None


@dataclass(frozen=True)
class Changeover:
    """Stays of `category` arriving in a `season` day start and end on `weekday` (local)."""

    category: Category
    season: SeasonKind
    weekday: Weekday
    location: str | None = None


@dataclass(frozen=True)
class StayRules:
    """What a stay must respect to be quoted or held (midas/domain/stay_rules.py)."""

    minimum_stays: tuple[MinimumStay, ...] = ()
    changeovers: tuple[Changeover, ...] = ()
    advance_notice: timedelta = timedelta(0)  # customers' stays start at least this ahead
    horizon: timedelta | None = None  # stays start at most this far ahead; None: no limit


@dataclass(frozen=True)
class ExchangeRate:
    """From `valid_from` (a date, inclusive) until the next rate: one unit of a currency is
    worth `rate` units of `reporting_currency`."""

    valid_from: date
    rate: Decimal
    reporting_currency: str

    def __post_init__(self) -> None:
        _require_rate("rate", self.rate)
        if self.rate == 0:
            raise ValueError("an exchange rate is above zero")


@dataclass(frozen=True)
class Catalogue:
    """Every number the domain rules use. Mappings are frozen on construction.

    `refund_tables` lists, per category, the tiers that refund something; cancelling with
    less notice than the lowest tier refunds nothing. Tiers are kept longest notice first.
    """

    categories: Mapping[Category, CategoryDefaults]
    service_multipliers: Mapping[ServiceLevel, Decimal]
    season_multipliers: Mapping[SeasonKind, Decimal]
    locations: Mapping[str, Location]
    seasons: Mapping[str, tuple[Season, ...]]  # by location code; a missing code has none
    refund_tables: Mapping[Category, tuple[RefundTier, ...]]
    day_grace: timedelta
    hold_expiry: timedelta
    # by category; an item may have its own (none: no discount)
    duration_discounts: Mapping[Category, tuple[DurationDiscount, ...]] = field(
        default_factory=dict)
    stay_rules: StayRules = field(default_factory=StayRules)
    # Lifetime value and tiers count in this currency; other currencies are converted at
    # the dated rates admins set (by currency, earliest first).
    reporting_currency: str = "USD"
    exchange_rates: Mapping[str, tuple[ExchangeRate, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require_keys("categories", self.categories, Category)
        _require_keys("service_multipliers", self.service_multipliers, ServiceLevel)
        _require_keys("season_multipliers", self.season_multipliers, SeasonKind)
        _require_keys("refund_tables", self.refund_tables, Category)
        for name, value in (*self.service_multipliers.items(), *self.season_multipliers.items()):
            _require_rate(f"multiplier of {name}", value)
        for code, location in self.locations.items():
            if code != location.code:
                raise ValueError(f"location {location.code!r} filed under {code!r}")
        if unknown := set(self.seasons) - set(self.locations):
            raise ValueError(f"seasons for unknown locations: {sorted(unknown)}")
        _require_non_negative_duration("day_grace", self.day_grace)
        _require_non_negative_duration("hold_expiry", self.hold_expiry)
        self._freeze()

    def _freeze(self) -> None:
        frozen: dict[str, Mapping[Any, Any]] = {
            "categories": dict(self.categories),
            "service_multipliers": dict(self.service_multipliers),
            "season_multipliers": dict(self.season_multipliers),
            "locations": dict(self.locations),
            "seasons": {code: tuple(seasons) for code, seasons in self.seasons.items()},
            "refund_tables": {
                category: tuple(sorted(tiers, key=lambda tier: tier.min_notice, reverse=True))
                for category, tiers in self.refund_tables.items()
            },
            "duration_discounts": {
                Category(category): tuple(sorted(tiers, key=lambda tier: tier.min_nights))
                for category, tiers in self.duration_discounts.items()
            },
            "exchange_rates": {
                currency: tuple(sorted(rates, key=lambda rate: rate.valid_from))
                for currency, rates in self.exchange_rates.items()
            },
        }
        for name, value in frozen.items():
            object.__setattr__(self, name, MappingProxyType(value))

    def defaults(self, category: Category) -> CategoryDefaults:
        return self.categories[Category(category)]

    def location(self, code: str) -> Location:
        try:
            return self.locations[code]
        except KeyError:
            raise UnknownLocation(code) from None

    def season_kind(self, location_code: str, day: date) -> SeasonKind:
        """The season kind of a local date at a location (see `season_kind_on`)."""
        key = (location_code, day.month, day.day)
        kind = self._season_kinds.get(key)
        if kind is None:
            self.location(location_code)
            kind = self._season_kinds[key] = season_kind_on(
                day, self.seasons.get(location_code, ()))
        return kind

    @cached_property
    def _season_kinds(self) -> dict[tuple[str, int, int], SeasonKind]:
        """Season kinds asked for, by location and day of the year: a season depends on
        nothing else, so this holds at most 366 entries per location, and every quoted day
        asks (several times for a long stay under stay rules)."""
        return {}

    def season_multiplier(self, kind: SeasonKind) -> Decimal:
        return self.season_multipliers[SeasonKind(kind)]

    def service_multiplier(self, level: ServiceLevel) -> Decimal:
        return self.service_multipliers[ServiceLevel(level)]

    def refund_table(self, category: Category) -> tuple[RefundTier, ...]:
        return self.refund_tables[Category(category)]

    def exchange_rate(self, currency: str, day: date) -> ExchangeRate | None:
        """The rate of `currency` into the reporting currency on `day`: 1 for the reporting
        currency itself, the latest rate dated on or before `day`, None when none is."""
        if currency == self.reporting_currency:
            return ExchangeRate(date.min, Decimal(1), self.reporting_currency)
        dated = [rate for rate in self.exchange_rates.get(currency, ())
                 if rate.valid_from <= day and rate.reporting_currency == self.reporting_currency]
        return dated[-1] if dated else None


PricingPolicy = Catalogue


def _require_keys(name: str, mapping: Mapping[Any, object], enum: type[StrEnum]) -> None:
    if missing := [member.value for member in enum if member not in mapping]:
        raise ValueError(f"{name} lacks {missing}")


def _require_rate(name: str, value: object) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        raise ValueError(f"{name} must be a finite, non-negative Decimal, got {value!r}")


def _require_minor_units(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int of minor units, got {value!r}")


def _require_non_negative_duration(name: str, value: timedelta) -> None:
    if value < timedelta(0):
        raise ValueError(f"{name} must not be negative, got {value}")


def _hours(count: int) -> timedelta:
    return timedelta(hours=count)


def _dollars(count: int) -> int:
    return count * 100


_US_SEASONS = (
    Season.between(SeasonKind.PEAK, "12-20", "01-03"),
    Season.between(SeasonKind.PEAK, "07-01", "08-15"),
)

DEFAULT_CATALOGUE = Catalogue(
    categories={
        Category.CAR: CategoryDefaults(
            RateUnit.DAY, _hours(2), timedelta(days=1), Decimal("0.10"), _dollars(5_000)
        ),
        Category.YACHT: CategoryDefaults(
            RateUnit.HOUR, _hours(4), _hours(4), Decimal("0.15"), _dollars(25_000)
        ),
        Category.JET: CategoryDefaults(
            RateUnit.HOUR, _hours(3), _hours(2), Decimal("0.25"), _dollars(50_000)
        ),
        Category.PROPERTY: CategoryDefaults(
            RateUnit.DAY, _hours(24), timedelta(days=2), Decimal("0.10"), _dollars(10_000)
        ),
    },
    service_multipliers={
        ServiceLevel.STANDARD: Decimal("1.0"),
        ServiceLevel.PREMIUM: Decimal("1.3"),
        ServiceLevel.VVIP: Decimal("1.8"),
    },
    season_multipliers={
        SeasonKind.PEAK: Decimal("1.5"),
        SeasonKind.HIGH: Decimal("1.25"),
        SeasonKind.LOW: Decimal("0.85"),
        SeasonKind.OTHER: Decimal("1.0"),
    },
    locations={
        "AE-DU": Location("AE-DU", "Asia/Dubai", Decimal("0.05"), "USD", "Dubai"),
        "US-FL": Location("US-FL", "America/New_York", Decimal("0.06"), "USD", "Miami"),
        "US-CA": Location("US-CA", "America/Los_Angeles", Decimal("0.0725"), "USD",
                          "Los Angeles"),
        "US-NV": Location("US-NV", "America/Los_Angeles", Decimal("0.08375"), "USD",
                          "Las Vegas"),
        "US-NY": Location("US-NY", "America/New_York", Decimal("0.08875"), "USD", "New York"),
    },
    seasons={
        "AE-DU": (
            Season.between(SeasonKind.PEAK, "12-15", "01-10"),
            Season.between(SeasonKind.HIGH, "11-01", "03-31"),
            Season.between(SeasonKind.LOW, "06-01", "08-31"),
        ),
        "US-FL": _US_SEASONS,
        "US-CA": _US_SEASONS,
        "US-NV": _US_SEASONS,
        "US-NY": _US_SEASONS,
    },
    refund_tables={
        Category.CAR: (
            RefundTier(_hours(48), Decimal(100)),
            RefundTier(_hours(24), Decimal(50)),
        ),
        Category.YACHT: (
            RefundTier(_hours(336), Decimal(100)),
            RefundTier(_hours(168), Decimal(50)),
            RefundTier(_hours(72), Decimal(25)),
        ),
        Category.JET: (
            RefundTier(_hours(168), Decimal(90)),
            RefundTier(_hours(72), Decimal(50)),
            RefundTier(_hours(24), Decimal(25)),
        ),
        Category.PROPERTY: (
            RefundTier(_hours(336), Decimal(100)),
            RefundTier(_hours(168), Decimal(50)),
        ),
    },
    day_grace=timedelta(minutes=59),
    hold_expiry=timedelta(minutes=30),
)
