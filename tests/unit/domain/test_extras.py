"""Extras without I/O: price bases, tax rules in the quote, the capacity ledger."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest

from midas.domain.catalogue import DEFAULT_CATALOGUE, Category, ServiceLevel
from midas.domain.errors import RuleViolation
from midas.domain.extras import (
    NO_EXTRAS,
    ChoiceRefused,
    ExtraCapacity,
    ExtraChoice,
    ExtraFull,
    PricedExtras,
    chosen,
    extra_record,
    price_choices,
    seeded_catalogue,
    stay_day_count,
    stay_days,
)
from midas.domain.pricing import Quote, quote

START = datetime(2027, 2, 1, 10, tzinfo=UTC)


def _extra(basis: str, code: str = "xx", **kw: object) -> dict[str, object]:
    return extra_record({"code": code, "name": "X", "categories": ["car"], "basis": basis,
                         **kw})


def _priced(records: list[dict[str, object]], choices: list[ExtraChoice], *, days: int = 1,
            span: timedelta = timedelta(days=1), rental: int = 0) -> PricedExtras:
    return price_choices({str(r["code"]): r for r in records}, choices, category="car",
                         location="AE-DU", days=days, span=span, rental=rental)


@pytest.mark.parametrize("basis, kw, quantity, amount", [
    ("per_booking", {"price": 500}, 2, 1_000),
    ("per_day", {"price": 500}, 1, 1_500),  # 3 days
    ("per_hour", {"price": 10}, 1, 730),  # 72 h 30 min: 73 begun hours
    ("per_person", {"price": 250}, 4, 1_000),
    ("percentage", {"percentage": "30"}, 1, 3_334),  # 30 % of 11,113 = 3,333.9
    ("percentage", {"percentage": "30"}, 2, 6_668),  # rounded once per person, then times 2
])
def test_price_bases(basis: str, kw: dict[str, object], quantity: int, amount: int) -> None:
    priced = _priced([_extra(basis, **kw)], [chosen("xx", quantity)], days=3,
                     span=timedelta(hours=72, minutes=30), rental=11_113)
    assert [line["amount"] for line in priced.lines] == [amount]


@pytest.mark.parametrize("span, hours", [
    (timedelta(0), 1), (timedelta(minutes=1), 1), (timedelta(hours=1), 1),
    (timedelta(hours=1, seconds=1), 2), (timedelta(hours=48), 48)])
def test_a_per_hour_extra_counts_begun_hours_and_at_least_one(span: timedelta,
                                                              hours: int) -> None:
    priced = _priced([_extra("per_hour", price=10)], [chosen("xx")], span=span)
    assert (priced.lines[0]["units"], priced.lines[0]["amount"]) == (hours, 10 * hours)


def test_the_sums_split_taxed_exempt_and_pass_through() -> None:
    priced = _priced([_extra("per_day", "aa", price=10_000),
                      _extra("per_booking", "bb", price=5_000, tax="exempt"),
                      _extra("percentage", "cc", percentage="10", tax="pass_through")],
                     [chosen("aa"), chosen("bb"), chosen("cc")], days=2, rental=250_000)
    assert [line["code"] for line in priced.lines] == ["aa", "bb", "cc"]
    assert (priced.revenue, priced.taxed, priced.pass_through) == (25_000, 20_000, 25_000)
    assert _priced([], []) == NO_EXTRAS


@pytest.mark.parametrize("choices, index, field, kind", [
    ([chosen("zz")], 0, "code", "unknown_extra"),
    ([chosen("xx"), chosen("yacht_only")], 1, "code", "unknown_extra"),  # not for cars
    ([chosen("xx"), chosen("gone")], 1, "code", "unknown_extra"),  # withdrawn
    ([chosen("xx"), chosen("xx")], 1, "code", "unknown_extra"),  # chosen twice
    ([chosen("xx", 0)], 0, "quantity", "value_error"),
    ([chosen("xx"), chosen("zoned")], 1, "zone", "unknown_zone"),
    ([chosen("zoned", 1, "moon")], 0, "zone", "unknown_zone"),
])
def test_a_choice_that_cannot_be_priced_is_named(choices: list[ExtraChoice], index: int,
                                                 field: str, kind: str) -> None:
    records = [_extra("per_booking", price=1), _extra("per_booking", "zoned", zones={"city": 1}),
               {**_extra("per_booking", "yacht_only", price=1), "categories": ["yacht"]},
               {**_extra("per_booking", "gone", price=1), "active": False}]
    with pytest.raises(ChoiceRefused) as refused:
        _priced(records, choices)
    assert (refused.value.index, refused.value.field, refused.value.kind) == (index, field,
                                                                             kind)


def test_an_extra_offered_in_some_locations_only() -> None:
    record = _extra("per_booking", price=1, locations=["FR-NI"])
    with pytest.raises(ChoiceRefused):
        _priced([record], [chosen("xx")])  # the helper's stays are at AE-DU
    assert price_choices({"xx": record}, [chosen("xx")], category="car", location="FR-NI",
                         days=1, span=timedelta(days=1), rental=0).lines[0]["amount"] == 1


def _quote(days: int = 2, **extras: object) -> Quote:
    return quote(START, START + timedelta(days=days), category=Category.CAR,
                 location_code="AE-DU", rate=100_000, service_level=ServiceLevel.STANDARD,
                 catalogue=DEFAULT_CATALOGUE, **extras)  # type: ignore[arg-type]


def test_a_quote_taxes_only_taxed_extras_and_keeps_pass_through_apart() -> None:
    records = [_extra("per_day", "aa", price=10_000),
               _extra("per_booking", "bb", price=5_000, tax="exempt"),
               _extra("percentage", "cc", percentage="10", tax="pass_through")]
    priced = _quote()
    q = _quote(extras=[chosen("aa"), chosen("bb"), chosen("cc")],
               offered={str(r["code"]): r for r in records})
    assert (q.rental, q.insurance) == (priced.rental, priced.insurance) == (250_000, 25_000)
    assert q.lines == priced.lines  # the extras add lines of their own, not to the units
    assert [line["amount"] for line in q.extras] == [20_000, 5_000, 25_000]  # 2 days; 10 %
    assert (q.extras_total, q.pass_through) == (25_000, 25_000)
    assert q.tax == 14_750  # 5 % of 250,000 + 25,000 + 20,000 taxed: not the exempt 5,000
    assert q.total_due == 250_000 + 25_000 + 25_000 + 25_000 + 14_750
    assert priced.extras == () and priced.tax == 13_750
    assert _quote(extras=[], offered={}) == priced
    with pytest.raises(ValueError, match="catalogue"):
        _quote(extras=[chosen("aa")])  # chosen, but nothing to price them from


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
    zoned = _extra("per_booking", zones={"city": 20_000, "region": 45_000})
    line = _priced([zoned], [chosen("xx", 1, "region")]).lines[0]
    assert (line["unit_price"], line["amount"], line.get("zone")) == (45_000, 45_000, "region")
    for zone in (None, "moon"):
        with pytest.raises(ChoiceRefused, match="choose one of city, region"):
            _priced([zoned], [chosen("xx", 1, zone)])
    with pytest.raises(RuleViolation):
        _extra("percentage", percentage="10", zones={"city": 1})
    with pytest.raises(RuleViolation):
        _extra("per_booking", zones={"city": -1})


def test_a_quote_with_extras_is_frozen_like_any_quote() -> None:
    q = _quote(extras=[chosen("xx")], offered={"xx": _extra("per_booking", price=5_000)})
    assert [line["amount"] for line in q.extras] == [5_000] and q.extras_total == 5_000
    with pytest.raises(AttributeError):
        q.tax = 0  # type: ignore[misc]


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
                   service_level=ServiceLevel.STANDARD, catalogue=DEFAULT_CATALOGUE,
                   extras=[chosen("xx")], offered={"xx": _extra("per_day", price=1)})
    assert priced.extras[0]["units"] == days


def test_a_quote_with_extras_reads_back_as_it_was_written_and_hands_out_copies() -> None:
    records = [_extra("per_booking", "zoned", zones={"city": 7_000}),
               _extra("percentage", "share", percentage="12.5", tax="pass_through")]
    q = _quote(extras=[chosen("zoned", 1, "city"), chosen("share", 2)],
               offered={str(r["code"]): r for r in records})
    data = q.to_dict()
    assert data["extras"][0]["zone"] == "city" and "zone" not in data["extras"][1]
    assert data["extras"][1]["percentage"] == "12.5"
    assert Quote.from_dict(data) == q
    # numbers stored as text (an older writer, a JSON round trip) come back as ints
    text = [{**line, "amount": str(line["amount"])} for line in data["extras"]]
    assert Quote.from_dict({**data, "extras": text}) == q
    data["extras"][0]["amount"] = 0  # the answer's lines are copies
    assert q.extras[0]["amount"] == 7_000 and q.to_dict()["extras"][0]["amount"] == 7_000
