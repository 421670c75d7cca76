"""Quotes: what a booking costs, line by line (docs/domain.md, Pricing).

Billable units. Hourly units are absolute hours: unit k starts at start + k hours, whatever
the clocks do (a DST night just has one hour fewer or more on the wall). Day units are days
of the item's location: they are counted on the local wall clock and unit k starts on the
local calendar k days after the start, at the same local time, so a car out 10:00 to 10:00
across a DST change is one day, never 23 h or 25 h of "days". Each unit's LOCAL start date
decides its season.

Rounding: every priced line is rounded once, half-up (ROUND_HALF_UP), to the minor unit:
  1. each billable unit:      rate x season multiplier
  2. duration discount:       (sum of the unit lines) x the discount of the stay's nights
  3. rental:                  (sum of the unit lines - discount) x service level multiplier
  4. insurance:               rental x the category's insurance rate
  5. tax:                     (rental + insurance) x the location's tax rate
Total due is the sum of the rounded lines 3-5, so a quote always adds up to the cent.
The security deposit is carried alongside, never taxed, never in the total.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from midas.domain.availability import Interval, require_aware
from midas.domain.catalogue import (
    Catalogue,
    Category,
    DurationDiscount,
    RateUnit,
    SeasonKind,
    ServiceLevel,
)
from midas.domain.extras import NO_EXTRAS, ExtraChoice, ExtraLine, line_of, price_choices
from midas.domain.stay_rules import discount_rate, nights


def round_half_up(amount: Decimal) -> int:
    """Round an amount of minor units to a whole one, halves away from zero."""
    # A constant and positional arguments: a quote rounds every unit line and four totals,
    # and building Decimal(1) and passing `rounding=` by name each time doubled the cost.
    return int(amount.quantize(_ONE, ROUND_HALF_UP))


_ONE = Decimal(1)


def effective_service_level(
    chosen: ServiceLevel, customer_tier: ServiceLevel | str
) -> ServiceLevel:
    """The service level delivered for a booking.

    A customer whose tier is above the chosen level is served at their tier's level for free;
    the booking is still priced at `chosen`.
    """
    chosen, tier = ServiceLevel(chosen), ServiceLevel(customer_tier)
    return tier if tier.rank > chosen.rank else chosen


def billable_units(
    start: datetime,
    end: datetime,
    unit: RateUnit,
    minimum: timedelta,
    day_grace: timedelta,
    *,
    time_zone: tzinfo | None = None,
) -> int:
    """ceil(duration / unit), at least the minimum (in whole units) and at least one.

    Day rates forgive an overrun up to `day_grace` (59 min: 24 h 59 min is 1 day, 25 h is 2)
    and are measured on the wall clock of `time_zone` when given (absolute time otherwise).
    """
    interval, unit = Interval(start, end), RateUnit(unit)
    elapsed = interval.duration
    if unit is RateUnit.DAY:
        if time_zone is not None:
            elapsed = _wall_clock(interval.end, time_zone) - _wall_clock(interval.start, time_zone)
        elapsed -= day_grace
    return max(_ceil_units(elapsed, unit), _ceil_units(minimum, unit), 1)


def unit_starts(start: datetime, count: int, unit: RateUnit, time_zone: tzinfo) -> list[datetime]:
    """The local start of each of `count` billable units (see the module docstring)."""
    utc_start = require_aware(start, "start")
    if RateUnit(unit) is RateUnit.HOUR:
        # Step in UTC: aware + timedelta in a local zone would step the wall clock.
        hour = RateUnit.HOUR.length
        return [(utc_start + k * hour).astimezone(time_zone) for k in range(count)]
    local_start = utc_start.astimezone(time_zone)
    # Aware + timedelta steps the wall clock, which is what local days want; k = 0 keeps the
    # original so an ambiguous start (DST fall-back) keeps its fold.
    return [local_start] + [local_start + timedelta(days=k) for k in range(1, count)]


@dataclass(frozen=True)
class QuoteLine:
    """One billable unit: rate x season multiplier of its local start date, rounded."""

    starts_at: datetime  # UTC
    local_date: date
    season: SeasonKind
    rate: int
    multiplier: Decimal
    amount: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "starts_at": self.starts_at.isoformat(),
            "local_date": self.local_date.isoformat(),
            "season": self.season.value,
            "rate": self.rate,
            "multiplier": str(self.multiplier),
            "amount": self.amount,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QuoteLine:
        return cls(
            starts_at=datetime.fromisoformat(data["starts_at"]),
            local_date=date.fromisoformat(data["local_date"]),
            season=SeasonKind(data["season"]),
            rate=int(data["rate"]),
            multiplier=Decimal(data["multiplier"]),
            amount=int(data["amount"]),
        )


@dataclass(frozen=True)
class Quote:
    """A priced booking, as recorded in its events. Amounts in minor units of `currency`."""

    category: Category
    location_code: str
    time_zone: str
    currency: str
    start: datetime  # UTC
    end: datetime  # UTC
    rate: int
    rate_unit: RateUnit
    lines: tuple[QuoteLine, ...]
    rental_subtotal: int
    service_level: ServiceLevel  # the level priced (the chosen one)
    service_multiplier: Decimal
    rental: int
    insurance_rate: Decimal
    insurance: int
    tax_rate: Decimal
    tax: int
    total_due: int
    security_deposit: int
    nights: int = 0  # local dates from arrival to departure
    duration_discount_rate: Decimal = Decimal(0)  # a fraction of the unit lines' sum
    duration_discount: int = 0  # taken off before the service level multiplier
    extras: tuple[ExtraLine, ...] = ()  # one line each (see `quote`)
    extras_total: int = 0  # extras that are revenue (taxed or exempt)
    pass_through: int = 0  # collected for the customer's account (the APA): not revenue

    @property
    def billable_units(self) -> int:
        return len(self.lines)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data: ints, strings (ISO instants and dates, Decimals as text)."""
        return {
            "category": self.category.value,
            "location_code": self.location_code,
            "time_zone": self.time_zone,
            "currency": self.currency,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "rate": self.rate,
            "rate_unit": self.rate_unit.value,
            "lines": [line.to_dict() for line in self.lines],
            "rental_subtotal": self.rental_subtotal,
            "service_level": self.service_level.value,
            "service_multiplier": str(self.service_multiplier),
            "rental": self.rental,
            "insurance_rate": str(self.insurance_rate),
            "insurance": self.insurance,
            "tax_rate": str(self.tax_rate),
            "tax": self.tax,
            "total_due": self.total_due,
            "security_deposit": self.security_deposit,
            "nights": self.nights,
            "duration_discount_rate": str(self.duration_discount_rate),
            "duration_discount": self.duration_discount,
            "extras": [dict(line) for line in self.extras],  # copies: the lines stay ours
            "extras_total": self.extras_total,
            "pass_through": self.pass_through,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Quote:
        return cls(
            category=Category(data["category"]),
            location_code=data["location_code"],
            time_zone=data["time_zone"],
            currency=data["currency"],
            start=datetime.fromisoformat(data["start"]),
            end=datetime.fromisoformat(data["end"]),
            rate=int(data["rate"]),
            rate_unit=RateUnit(data["rate_unit"]),
            lines=tuple(QuoteLine.from_dict(line) for line in data["lines"]),
            rental_subtotal=int(data["rental_subtotal"]),
            service_level=ServiceLevel(data["service_level"]),
            service_multiplier=Decimal(data["service_multiplier"]),
            rental=int(data["rental"]),
            insurance_rate=Decimal(data["insurance_rate"]),
            insurance=int(data["insurance"]),
            tax_rate=Decimal(data["tax_rate"]),
            tax=int(data["tax"]),
            total_due=int(data["total_due"]),
            security_deposit=int(data["security_deposit"]),
            nights=int(data.get("nights", 0)),
            duration_discount_rate=Decimal(data.get("duration_discount_rate", "0")),
            duration_discount=int(data.get("duration_discount", 0)),
            extras=tuple(line_of(line) for line in data.get("extras", [])),
            extras_total=int(data.get("extras_total", 0)),
            pass_through=int(data.get("pass_through", 0)),
        )


def quote(
    start: datetime,
    end: datetime,
    *,
    category: Category,
    location_code: str,
    rate: int,
    service_level: ServiceLevel,
    catalogue: Catalogue,
    rate_unit: RateUnit | None = None,
    minimum: timedelta | None = None,
    currency: str | None = None,
    duration_discounts: tuple[DurationDiscount, ...] | None = None,
    extras: Sequence[ExtraChoice] = (),
    offered: Mapping[str, dict[str, Any]] | None = None,
) -> Quote:
    """Price a booking of one item over [start, end).

    `rate` is the item's price per `rate_unit` in minor units. `rate_unit`, `minimum`,
    `currency` and `duration_discounts` are the item's own values and default to its
    category's and location's. `extras` are the extras chosen, priced from the extras
    catalogue's records (`offered`), each its own line (`extras.price_choices`: a choice
    it cannot price is a ChoiceRefused). Taxed extras join the rental and insurance in the
    tax line (one rounding); exempt ones are revenue without tax; pass-through money (the
    APA) is neither revenue nor taxed. Total due = rental + insurance + extras +
    pass-through + tax.
    """
    interval = Interval(start, end)
    if isinstance(rate, bool) or not isinstance(rate, int) or rate < 0:
        raise ValueError(f"rate must be a non-negative int of minor units, got {rate!r}")
    defaults = catalogue.defaults(category)
    location = catalogue.location(location_code)
    unit = RateUnit(rate_unit or defaults.rate_unit)
    count = billable_units(
        interval.start,
        interval.end,
        unit,
        defaults.minimum if minimum is None else minimum,
        catalogue.day_grace,
        time_zone=location.zone,
    )
    lines = tuple(
        _price_unit(unit_start, rate, location_code, catalogue)
        for unit_start in unit_starts(interval.start, count, unit, location.zone)
    )
    subtotal = sum(line.amount for line in lines)
    stay_nights = nights(interval.start, interval.end, location.zone)
    tiers = (catalogue.duration_discounts.get(Category(category), ())
             if duration_discounts is None else duration_discounts)
    discount_fraction = discount_rate(tiers, stay_nights)
    discount = round_half_up(subtotal * discount_fraction)
    service_multiplier = catalogue.service_multiplier(service_level)
    rental = round_half_up((subtotal - discount) * service_multiplier)
    insurance = round_half_up(rental * defaults.insurance_rate)
    added = NO_EXTRAS
    if extras:
        if offered is None:
            raise ValueError("extras are priced from the extras catalogue's records")
        # A per-day extra counts the nights, or the one day of a stay within a day (the
        # days its capacity ledger takes, `extras.stay_days`, without listing them).
        added = price_choices(offered, extras, category=category, location=location.code,
                              days=max(stay_nights, 1), span=interval.end - interval.start,
                              rental=rental)
    tax = round_half_up((rental + insurance + added.taxed) * location.tax_rate)
    return Quote(
        category=Category(category),
        location_code=location.code,
        time_zone=location.time_zone,
        currency=currency or location.currency,
        start=interval.start,
        end=interval.end,
        rate=rate,
        rate_unit=unit,
        lines=lines,
        rental_subtotal=subtotal,
        service_level=ServiceLevel(service_level),
        service_multiplier=service_multiplier,
        rental=rental,
        insurance_rate=defaults.insurance_rate,
        insurance=insurance,
        tax_rate=location.tax_rate,
        tax=tax,
        total_due=rental + insurance + added.revenue + added.pass_through + tax,
        security_deposit=defaults.security_deposit,
        nights=stay_nights,
        duration_discount_rate=discount_fraction,
        duration_discount=discount,
        extras=added.lines,
        extras_total=added.revenue,
        pass_through=added.pass_through,
    )


def _price_unit(
    local_start: datetime, rate: int, location_code: str, catalogue: Catalogue
) -> QuoteLine:
    season = catalogue.season_kind(location_code, local_start.date())
    multiplier = catalogue.season_multiplier(season)
    return QuoteLine(
        starts_at=local_start.astimezone(UTC),
        local_date=local_start.date(),
        season=season,
        rate=rate,
        multiplier=multiplier,
        amount=round_half_up(rate * multiplier),
    )


def _wall_clock(instant: datetime, time_zone: tzinfo) -> datetime:
    return instant.astimezone(time_zone).replace(tzinfo=None)


def _ceil_units(span: timedelta, unit: RateUnit) -> int:
    return -(-span // unit.length)
