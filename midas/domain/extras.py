"""Extras: what a booking adds to the item (a chauffeur, crew, a chef, the APA...).

The extras on offer form one catalogue aggregate (a fixed id) whose first event records the
seeded extras; admins add and change extras as its events. An extra with a capacity (so
many a day at a location) has a ledger aggregate per extra and location, the consistency
boundary that keeps it from being overbooked: a hold takes its days there in the same
atomic append as the item and the booking, and a concurrent hold that loses the version
race is retried on fresh state and finds the day full.

Prices are minor units of the booking's currency (the item's), or a percentage of the
rental. Pass-through money (the yachts' Advance Provisioning Allowance) is collected with
the booking but is neither revenue nor taxed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any, NamedTuple, NotRequired, TypedDict
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from midas.domain.catalogue import Category
from midas.domain.errors import DomainError, RuleViolation
from midas.domain.extras_events import (
    EXTRA_CAPACITY_OPENED,
    EXTRA_CAPACITY_RELEASED,
    EXTRA_CAPACITY_TAKEN,
    EXTRAS_CATALOGUE_ADDED,
    EXTRAS_CATALOGUE_CHANGED,
    EXTRAS_CATALOGUE_STARTED,
)

EXTRAS_ID = uuid5(UUID(int=0), "midas:extras-catalogue")
CODE = re.compile(r"^[a-z][a-z0-9_]{1,39}$")


class PriceBasis(StrEnum):
    PER_BOOKING = "per_booking"
    PER_DAY = "per_day"  # a day or a night of the stay
    PER_HOUR = "per_hour"
    PER_PERSON = "per_person"
    PERCENTAGE = "percentage"  # of the rental


class TaxRule(StrEnum):
    TAXED = "taxed"  # like the rental, at the location's rate
    EXEMPT = "exempt"
    PASS_THROUGH = "pass_through"  # collected for the customer's account: not revenue


# The catalogue's records hold the values (checked when recorded) and a priced line keeps
# them: pricing compares the strings, read once here (a member read off its enum class
# costs about 65 ns on Python 3.11, a module global 10).
_PER_DAY, _PER_HOUR, _PERCENTAGE = (PriceBasis.PER_DAY.value, PriceBasis.PER_HOUR.value,
                                    PriceBasis.PERCENTAGE.value)
_TAXED, _PASS_THROUGH = TaxRule.TAXED.value, TaxRule.PASS_THROUGH.value


class UnknownExtra(DomainError):
    status = 422

    def __init__(self, code: str) -> None:
        super().__init__(f"no extra {code!r}")
        self.code = code


class ExtraExists(DomainError):
    def __init__(self, code: str) -> None:
        super().__init__(f"extra {code} exists already")
        self.code = code


class ExtraFull(DomainError):
    """The extra's capacity is taken on a day: names the extra, the location and the day."""

    def __init__(self, code: str, location: str, day: date, capacity: int) -> None:
        super().__init__(f"extra {code} at {location} is fully booked on {day.isoformat()}"
                         f" ({capacity} a day)")
        self.code, self.location, self.day = code, location, day


def _seed() -> list[dict[str, Any]]:
    def extra(code: str, name: str, categories: list[str], basis: PriceBasis, price: int = 0,
              percentage: str | None = None, tax: TaxRule = TaxRule.TAXED,
              capacity: int | None = None, zones: dict[str, int] | None = None,
              ) -> dict[str, Any]:
        return {"code": code, "name": name, "categories": categories, "basis": basis.value,
                "price": price, "percentage": percentage, "tax": tax.value,
                "capacity": capacity, "locations": None, "active": True, "zones": zones}

    every = [c.value for c in Category]
    return [extra_record(e) for e in (
        extra("chauffeur", "Chauffeur", ["car"], PriceBasis.PER_DAY, 80_000, capacity=3),
        extra("airport_transfer", "Airport transfer", every, PriceBasis.PER_BOOKING, 35_000),
        extra("crew", "Crew", ["yacht"], PriceBasis.PER_DAY, 150_000),
        extra("catering", "Catering", ["yacht"], PriceBasis.PER_PERSON, 25_000),
        extra("apa", "Advance Provisioning Allowance", ["yacht"], PriceBasis.PERCENTAGE,
              percentage="30", tax=TaxRule.PASS_THROUGH),
        extra("jet_catering", "Jet catering", ["jet"], PriceBasis.PER_PERSON, 40_000),
        extra("chef", "Villa chef", ["property"], PriceBasis.PER_DAY, 120_000, capacity=1),
        extra("housekeeping", "Housekeeping", ["property"], PriceBasis.PER_DAY, 30_000),
        extra("delivery", "Delivery and collection to an address", ["car"],
              PriceBasis.PER_BOOKING, zones={"city": 20_000, "airport": 30_000,
                                             "region": 45_000}),
    )]


def extra_record(data: dict[str, Any]) -> dict[str, Any]:
    """An extra as plain event data, or RuleViolation naming what is wrong."""
    try:
        code = str(data["code"])
        if not CODE.match(code):
            raise ValueError(f"a code is lower case letters, digits and _: {code!r}")
        name = str(data["name"]).strip()
        if not name:
            raise ValueError("an extra needs a name")
        categories = sorted({Category(c).value for c in data["categories"]})
        if not categories:
            raise ValueError("an extra applies to at least one category")
        basis, tax = PriceBasis(data["basis"]), TaxRule(data.get("tax", "taxed"))
        price, percentage = int(data.get("price") or 0), data.get("percentage")
        if basis is PriceBasis.PERCENTAGE:
            if percentage is None or not Decimal(0) < Decimal(str(percentage)) <= 100:
                raise ValueError("a percentage extra needs a percentage above 0, at most 100")
            percentage, price = str(Decimal(str(percentage))), 0
        else:
            if price < 0:
                raise ValueError("a price is 0 or more minor units")
            percentage = None
        capacity = data.get("capacity")
        if capacity is not None and (isinstance(capacity, bool) or int(capacity) < 1):
            raise ValueError("a capacity is 1 or more a day")
        locations, zones = data.get("locations"), data.get("zones")
        if zones is not None:
            if basis is PriceBasis.PERCENTAGE or not zones:
                raise ValueError("zones are prices by zone of an extra priced in money")
            zones = {str(zone): int(amount) for zone, amount in sorted(zones.items())}
            if any(amount < 0 for amount in zones.values()):
                raise ValueError("a zone's price is 0 or more minor units")
        return {"code": code, "name": name, "categories": categories, "basis": basis.value,
                "price": price, "percentage": percentage, "tax": tax.value,
                "capacity": None if capacity is None else int(capacity),
                "locations": None if locations is None else sorted(set(locations)),
                "active": bool(data.get("active", True)), "zones": zones}
    except (KeyError, ValueError, TypeError, ArithmeticError) as exc:
        raise RuleViolation(f"invalid extra: {exc}") from None


class ExtrasCatalogue(Aggregate):
    @event(EXTRAS_CATALOGUE_STARTED.event_name)
    def __init__(self, extras: list[dict[str, Any]]) -> None:
        self.extras: dict[str, dict[str, Any]] = {e["code"]: e for e in extras}

    @classmethod
    def start(cls) -> ExtrasCatalogue:
        # `Started` is made by the library from `@event("Started")` on `__init__`.
        return cls._create(cls.Started, id=EXTRAS_ID,  # type: ignore[attr-defined]
                           extras=_seed())

    def add(self, data: dict[str, Any]) -> None:
        record = extra_record(data)
        if record["code"] in self.extras:
            raise ExtraExists(record["code"])
        self._added(extra=record)

    def change(self, code: str, data: dict[str, Any]) -> None:
        self.get(code)
        record = extra_record({**data, "code": code})
        if record != self.extras[code]:
            self._changed(extra=record)

    def get(self, code: str) -> dict[str, Any]:
        try:
            return self.extras[code]
        except KeyError:
            raise UnknownExtra(code) from None

    @event(EXTRAS_CATALOGUE_ADDED.event_name)
    def _added(self, extra: dict[str, Any]) -> None:
        self.extras[extra["code"]] = extra

    @event(EXTRAS_CATALOGUE_CHANGED.event_name)
    def _changed(self, extra: dict[str, Any]) -> None:
        self.extras[extra["code"]] = extra


def seeded_catalogue() -> ExtrasCatalogue:
    """The catalogue before any admin change (nothing recorded yet)."""
    return ExtrasCatalogue(extras=_seed())


# -- choosing and pricing ------------------------------------------------------------------


class ExtraChoice(TypedDict):
    """An extra as chosen (a command's body holds them as they are: no copy to make)."""

    code: str
    quantity: NotRequired[int]  # persons for per-person extras, how many otherwise (1)
    zone: NotRequired[str | None]  # for an extra priced by zone (delivery to an address)


def chosen(code: str, quantity: int = 1, zone: str | None = None) -> ExtraChoice:
    return {"code": code, "quantity": quantity, "zone": zone}


class ExtraLine(TypedDict):
    """One extra of a quote, priced, as quotes, events and answers carry it: plain data,
    made once when the extra is priced and written as it is (building a typed line and
    then its dict cost twice as much, on every quote and hold with extras)."""

    code: str
    name: str
    basis: str  # a PriceBasis value
    tax: str  # a TaxRule value
    unit_price: int  # 0 for a percentage
    percentage: str | None  # of the rental (a decimal as text), for a percentage extra
    units: int  # days, hours or 1
    quantity: int
    amount: int
    zone: NotRequired[str]  # the zone chosen, for an extra priced by zone


def line_of(data: Mapping[str, Any]) -> ExtraLine:
    """A line as read back (from an event, a stored quote), its numbers as ints."""
    percentage = data.get("percentage")
    line: ExtraLine = {
        "code": str(data["code"]), "name": str(data["name"]),
        "basis": PriceBasis(data["basis"]).value, "tax": TaxRule(data["tax"]).value,
        "unit_price": int(data["unit_price"]),
        "percentage": None if percentage is None else str(Decimal(percentage)),
        "units": int(data["units"]), "quantity": int(data["quantity"]),
        "amount": int(data["amount"])}
    if data.get("zone") is not None:
        line["zone"] = str(data["zone"])
    return line


class ChoiceRefused(RuleViolation):
    """The `index`th extra chosen cannot be priced: `field` ("code", "quantity" or "zone")
    says which of its fields, `kind` why (``unknown_extra``, ``value_error``,
    ``unknown_zone``)."""

    def __init__(self, index: int, field: str, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.index, self.field, self.kind, self.reason = index, field, kind, reason


class PricedExtras(NamedTuple):
    """A stay's extras, one line each, and their sums by tax rule (what a quote adds)."""

    lines: tuple[ExtraLine, ...]
    revenue: int  # taxed and exempt lines: the booking's revenue beside the rental
    taxed: int  # of it, what the location's tax rate applies to
    pass_through: int  # collected for the customer's account (the APA): not revenue


NO_EXTRAS = PricedExtras((), 0, 0, 0)


def price_choices(offered: Mapping[str, dict[str, Any]], chosen: Iterable[ExtraChoice], *,
                  category: str, location: str, days: int, span: timedelta,
                  rental: int) -> PricedExtras:
    """The chosen extras of a stay of an item of `category` at `location`, priced from the
    catalogue's records (`offered`): `days` is what a per-day extra counts (the stay's
    nights, at least one), `span` the stay's length (a per-hour extra counts its hours,
    begun hours in full), `rental` what a percentage is of (rounded half up).
    ChoiceRefused names the first extra unknown, not offered there, chosen twice or without
    a known zone.

    One loop prices, checks and sums: every quote and hold with extras runs it, and a
    function call per line or a second pass over the lines costs more than the pricing."""
    lines: list[ExtraLine] = []
    seen: set[str] = set()
    revenue = taxed = passing = 0
    for index, choice in enumerate(chosen):
        code, quantity = choice["code"], choice.get("quantity", 1)
        extra = offered.get(code)
        if extra is None or code in seen or not (
                extra["active"] and category in extra["categories"]
                and (extra["locations"] is None or location in extra["locations"])):
            why = ("unknown extra" if extra is None else "chosen twice" if code in seen
                   else "not offered for this item")
            raise ChoiceRefused(index, "code", "unknown_extra", why)
        if quantity < 1:
            raise ChoiceRefused(index, "quantity", "value_error", "the quantity is 1 or more")
        seen.add(code)
        basis, tax, percentage = extra["basis"], extra["tax"], extra["percentage"]
        zones = extra.get("zones")
        if zones:
            zone = choice.get("zone")
            if zone not in zones:
                raise ChoiceRefused(index, "zone", "unknown_zone", _zone_refusal(code, zone,
                                                                                 zones))
            unit_price = zones[zone]
        else:
            zone, unit_price = None, extra["price"]
        if basis == _PERCENTAGE:
            units = 1
            share = rental * Decimal(percentage) / 100
            amount = int(share.quantize(_ONE, ROUND_HALF_UP)) * quantity
        else:
            units = (days if basis == _PER_DAY
                     else max(-(-span // _HOUR), 1) if basis == _PER_HOUR else 1)
            amount = unit_price * units * quantity
        line: ExtraLine = {"code": code, "name": extra["name"], "basis": basis, "tax": tax,
                           "unit_price": unit_price, "percentage": percentage,
                           "units": units, "quantity": quantity, "amount": amount}
        if zone is not None:
            line["zone"] = zone
        lines.append(line)
        if tax == _PASS_THROUGH:
            passing += amount
        else:
            revenue += amount
            if tax == _TAXED:
                taxed += amount
    return PricedExtras(tuple(lines), revenue, taxed, passing)


_ONE, _HOUR = Decimal(1), timedelta(hours=1)


def _zone_refusal(code: str, zone: str | None, zones: dict[str, int]) -> str:
    return (f"extra {code} is priced by zone: choose one of {', '.join(sorted(zones))}"
            + (f" (not {zone!r})" if zone else ""))


def stay_days(start: datetime, end: datetime, zone: tzinfo) -> list[date]:
    """The local days of a stay an extra counts: each date from arrival to the day before
    departure (the nights), or the one day of a stay within a day."""
    first = start.astimezone(zone).date()
    return [first + timedelta(days=k) for k in range(stay_day_count(start, end, zone))]


def stay_day_count(start: datetime, end: datetime, zone: tzinfo) -> int:
    """How many `stay_days` a stay has (what a per-day extra is priced by)."""
    return max((end.astimezone(zone).date() - start.astimezone(zone).date()).days, 1)


# -- capacity ------------------------------------------------------------------------------


def capacity_id(code: str, location: str) -> UUID:
    return uuid5(EXTRAS_ID, f"capacity:{code}:{location}")


class ExtraCapacity(Aggregate):
    """The days an extra with a capacity is taken at one location, by holder: a booking
    (its id), or a change of a booking awaiting its payment (the change's hold id)."""

    @classmethod
    def create_id(cls, code: str, location: str, **_: Any) -> UUID:
        return capacity_id(code, location)

    @event(EXTRA_CAPACITY_OPENED.event_name)
    def __init__(self, code: str, location: str) -> None:
        self.code, self.location = code, location
        self.taken: dict[str, list[str]] = {}  # ISO day -> booking ids

    def take(self, booking_id: UUID | str, days: list[date], capacity: int | None,
             today: date, *, beside: UUID | str | None = None) -> None:
        """Take `days` for a holder; ExtraFull on the first day already full. `beside`: a
        holder whose places do not count (a booking beside its own change's hold);
        `capacity` None: places already held are handed over (a paid change), unchecked."""
        if capacity is not None:
            day = self.full_day(days, capacity, beside=beside)
            if day is not None:
                raise ExtraFull(self.code, self.location, day, capacity)
        self._taken(booking_id=str(booking_id), days=[d.isoformat() for d in days],
                    today=today.isoformat())

    def full_day(self, days: list[date], capacity: int, *,
                 beside: UUID | str | None = None) -> date | None:
        """The first of `days` with no place left (`beside`'s own places not counted)."""
        mine = None if beside is None else str(beside)
        for day in days:
            if len([b for b in self.taken.get(day.isoformat(), []) if b != mine]) >= capacity:
                return day
        return None

    def release(self, booking_id: UUID | str) -> bool:
        if not any(str(booking_id) in ids for ids in self.taken.values()):
            return False
        self._released(booking_id=str(booking_id))
        return True

    @event(EXTRA_CAPACITY_TAKEN.event_name)
    def _taken(self, booking_id: str, days: list[str], today: str) -> None:
        # Past days are dropped: nothing can be taken there any more (bounded state).
        self.taken = {d: ids for d, ids in self.taken.items() if d >= today}
        for day in days:
            self.taken.setdefault(day, []).append(booking_id)

    @event(EXTRA_CAPACITY_RELEASED.event_name)
    def _released(self, booking_id: str) -> None:
        self.taken = {d: [b for b in ids if b != booking_id]
                      for d, ids in self.taken.items()}
