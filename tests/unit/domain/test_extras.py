"""Extras without I/O: price bases, tax rules in the quote, the capacity ledger."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest

from midas.domain.catalogue import DEFAULT_CATALOGUE, Category, ServiceLevel
from midas.domain.errors import RuleViolation
from midas.domain.extras import (
    Chosen,
    ExtraCapacity,
    ExtraFull,
    extra_record,
    price_line,
    seeded_catalogue,
    stay_day_count,
    stay_days,
)
from midas.domain.pricing import quote, with_extras

START = datetime(2027, 2, 1, 10, tzinfo=UTC)


def _extra(basis: str, **kw: object) -> dict[str, object]:
    return extra_record({"code": "xx", "name": "X", "categories": ["car"], "basis": basis,
                         **kw})


@pytest.mark.parametrize("basis, kw, quantity, amount", [
    ("per_booking", {"price": 500}, 2, 1_000),
    ("per_day", {"price": 500}, 1, 1_500),  # 3 days
    ("per_hour", {"price": 10}, 1, 730),  # 73 hours
    ("per_person", {"price": 250}, 4, 1_000),
    ("percentage", {"percentage": "30"}, 1, 3_334),  # 30 % of 11,113 = 3,333.9
])
def test_price_bases(basis: str, kw: dict[str, object], quantity: int, amount: int) -> None:
    line = price_line(_extra(basis, **kw), Chosen("xx", quantity), days=3, hours=73,
                      rental=11_113)
    assert line.amount == amount


def test_a_quote_taxes_only_taxed_extras_and_keeps_pass_through_apart() -> None:
    priced = quote(START, START + timedelta(days=2), category=Category.CAR,
                   location_code="AE-DU", rate=100_000, service_level=ServiceLevel.STANDARD,
                   catalogue=DEFAULT_CATALOGUE)
    lines = tuple(price_line(_extra(b, tax=t, **kw), Chosen("xx"), days=2, hours=48,
                             rental=priced.rental)
                  for b, t, kw in (("per_day", "taxed", {"price": 10_000}),
                                   ("per_booking", "exempt", {"price": 5_000}),
                                   ("percentage", "pass_through", {"percentage": "10"})))
    q = with_extras(priced, lines)
    assert (priced.rental, priced.insurance) == (250_000, 25_000)  # 2 high-season days
    assert (q.extras_total, q.pass_through) == (25_000, 25_000)
    assert q.tax == 14_750  # 5 % of 250,000 + 25,000 + 20,000 taxed: not the exempt 5,000
    assert q.total_due == 250_000 + 25_000 + 25_000 + 25_000 + 14_750
    assert with_extras(priced, ()) == priced


def test_days_of_a_stay_are_its_nights_or_its_one_day() -> None:
    zone = DEFAULT_CATALOGUE.location("AE-DU").zone
    assert stay_days(START, START + timedelta(hours=5), zone) == [date(2027, 2, 1)]
    assert stay_days(START, START + timedelta(days=2), zone) == [date(2027, 2, 1),
                                                                 date(2027, 2, 2)]


def test_the_ledger_refuses_the_place_beyond_capacity_and_gives_it_back() -> None:
    ledger = ExtraCapacity(code="chauffeur", location="AE-DU")
    day, today = date(2027, 2, 1), date(2027, 1, 1)
    first, second = uuid4(), uuid4()
    ledger.take(first, [day], 2, today)
    ledger.take(second, [day, day + timedelta(days=1)], 2, today)
    with pytest.raises(ExtraFull) as full:
        ledger.take(uuid4(), [day + timedelta(days=1), day], 2, today)
    assert full.value.day == day and "2027-02-01" in str(full.value)
    assert ledger.release(first) and not ledger.release(first)
    ledger.take(uuid4(), [day], 2, today)


def test_the_seed_and_invalid_extras() -> None:
    seeded = seeded_catalogue()
    assert seeded.extras["apa"]["tax"] == "pass_through"
    assert seeded.extras["chef"]["capacity"] == 1
    for bad in ({"basis": "per_day", "price": -1}, {"basis": "percentage"},
                {"basis": "percentage", "percentage": "101"},
                {"basis": "per_day", "capacity": 0}, {"basis": "weekly"}):
        with pytest.raises(RuleViolation):
            extra_record({"code": "xx", "name": "X", "categories": ["car"], **bad})


def test_an_extra_priced_by_zone_needs_a_known_zone() -> None:
    from midas.domain.extras import UnknownZone

    zoned = _extra("per_booking", zones={"city": 20_000, "region": 45_000})
    line = price_line(zoned, Chosen("xx", 1, "region"), days=1, hours=24, rental=0)
    assert (line.unit_price, line.amount) == (45_000, 45_000)
    for zone in (None, "moon"):
        with pytest.raises(UnknownZone):
            price_line(zoned, Chosen("xx", 1, zone), days=1, hours=24, rental=0)
    with pytest.raises(RuleViolation):
        _extra("percentage", percentage="10", zones={"city": 1})
    with pytest.raises(RuleViolation):
        _extra("per_booking", zones={"city": -1})


def test_a_quote_with_extras_is_a_new_quote_and_the_priced_one_is_unchanged() -> None:
    priced = quote(START, START + timedelta(days=2), category=Category.CAR,
                   location_code="AE-DU", rate=100_000, service_level=ServiceLevel.STANDARD,
                   catalogue=DEFAULT_CATALOGUE)
    before = priced.to_dict()
    line = price_line(_extra("per_booking", price=5_000), Chosen("xx"), days=2, hours=48,
                      rental=priced.rental)
    q = with_extras(priced, (line,))
    assert priced.to_dict() == before and priced.extras == ()
    assert q.extras == (line,) and q.lines == priced.lines and q.rental == priced.rental
    with pytest.raises(AttributeError):
        q.tax = 0  # type: ignore[misc]  (frozen, like the quote it came from)


def test_an_amended_quote_refuses_a_field_it_does_not_have() -> None:
    priced = quote(START, START + timedelta(days=1), category=Category.CAR,
                   location_code="AE-DU", rate=100_000, service_level=ServiceLevel.STANDARD,
                   catalogue=DEFAULT_CATALOGUE)
    with pytest.raises(TypeError, match="'taxes'"):
        priced.amended(taxes=1)
    assert priced.amended(tax=7).tax == 7 and priced.tax != 7


@pytest.mark.parametrize("start, end, days", [
    (START, START + timedelta(hours=1), 1),  # within a day: that day
    (START, START + timedelta(days=1), 1),
    (START, START + timedelta(days=1, hours=9), 1),  # 23:00 local the next day
    (START, START + timedelta(days=1, hours=10), 2),  # 00:00 local the day after
    (START, START + timedelta(days=7), 7),
])
def test_the_day_count_is_the_count_of_the_stay_days(start: datetime, end: datetime,
                                                    days: int) -> None:
    zone = ZoneInfo("Asia/Dubai")  # UTC+4: START is 14:00 local
    assert stay_day_count(start, end, zone) == len(stay_days(start, end, zone)) == days
    # What a per-day extra is priced by: the days its capacity ledger takes.
    priced = quote(start, end, category=Category.CAR, location_code="AE-DU", rate=100_000,
                   service_level=ServiceLevel.STANDARD, catalogue=DEFAULT_CATALOGUE)
    assert priced.extra_days == days
