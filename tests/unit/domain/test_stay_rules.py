"""Stay rules and duration discounts, without I/O: nights on the local calendar, the tier
reached, and where the discount sits among the multipliers."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from midas.domain.catalogue import (
    DEFAULT_CATALOGUE,
    Category,
    Changeover,
    DurationDiscount,
    MinimumStay,
    SeasonKind,
    ServiceLevel,
    StayRules,
    Weekday,
)
from midas.domain.pricing import quote
from midas.domain.stay_rules import StayRefused, check_stay, discount_rate, nights

DUBAI = ZoneInfo("Asia/Dubai")
WEEKLY = (DurationDiscount(7, Decimal(10)), DurationDiscount(28, Decimal(20)))
NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)


def _local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=DUBAI)


def test_nights_are_local_dates_from_arrival_to_departure() -> None:
    assert nights(_local("2026-12-20T15:00"), _local("2026-12-27T11:00"), DUBAI) == 7
    assert nights(_local("2026-12-20T08:00"), _local("2026-12-20T18:00"), DUBAI) == 0
    # 23:00 UTC on the 19th is already the 20th in Dubai
    assert nights(datetime(2026, 12, 19, 23, tzinfo=UTC),
                  datetime(2026, 12, 21, 1, tzinfo=UTC), DUBAI) == 1


@pytest.mark.parametrize("start, end", [
    (datetime(2026, 12, 20, 10), datetime(2026, 12, 21, 10, tzinfo=UTC)),  # naive start
    (datetime(2026, 12, 20, 10, tzinfo=UTC), datetime(2026, 12, 21, 10)),  # naive end
    (datetime(2026, 12, 20, 10, tzinfo=UTC), datetime(2026, 12, 20, 10, tzinfo=UTC)),
    (datetime(2026, 12, 20, 10, tzinfo=UTC), datetime(2026, 12, 20, 9, tzinfo=UTC)),
])
def test_nights_refuse_naive_instants_and_an_end_not_after_the_start(
        start: datetime, end: datetime) -> None:
    with pytest.raises(ValueError):
        nights(start, end, DUBAI)


@pytest.mark.parametrize("stay_nights, rate", [
    (0, "0"), (6, "0"), (7, "0.1"), (27, "0.1"), (28, "0.2"), (365, "0.2")])
def test_the_tier_with_the_most_nights_reached_applies(stay_nights: int, rate: str) -> None:
    assert discount_rate(WEEKLY, stay_nights) == Decimal(rate)
    assert discount_rate((), stay_nights) == 0


def test_the_discount_comes_after_seasons_and_before_the_service_level() -> None:
    catalogue = replace(DEFAULT_CATALOGUE, duration_discounts={Category.PROPERTY: WEEKLY})
    q = quote(_local("2026-12-20T15:00"), _local("2026-12-27T11:00"),
              category=Category.PROPERTY, location_code="AE-DU", rate=1_000_001,
              service_level=ServiceLevel.VVIP, catalogue=catalogue)
    assert q.rental_subtotal == 7 * 1_500_002  # 1,000,001 x 1.5 rounded half-up, per night
    assert q.duration_discount == 1_050_001  # 10 % of 10,500,014 = 1,050,001.4
    assert q.rental == 17_010_023  # (10,500,014 - 1,050,001) x 1.8 = 17,010,023.4
    assert q.total_due == q.rental + q.insurance + q.tax
    undiscounted = quote(_local("2026-12-20T15:00"), _local("2026-12-27T11:00"),
                         category=Category.PROPERTY, location_code="AE-DU", rate=1_000_001,
                         service_level=ServiceLevel.VVIP, catalogue=catalogue,
                         duration_discounts=())  # an item's own: none
    assert (undiscounted.duration_discount, undiscounted.rental) == (0, 18_900_025)


def _check(rules: StayRules, start: datetime, end: datetime, *, category: Category =
           Category.PROPERTY, staff: bool = False) -> None:
    arrival = start.astimezone(DUBAI).date()
    check_stay(rules, category=category, location="AE-DU", start=start, end=end,
               arrival=arrival, nights=nights(start, end, DUBAI),
               season=DEFAULT_CATALOGUE.season_kind("AE-DU", arrival), now=NOW,
               override_notice=staff)


def test_the_longest_minimum_stay_that_applies_holds() -> None:
    rules = StayRules(minimum_stays=(
        MinimumStay(Category.PROPERTY, SeasonKind.PEAK, 5),
        MinimumStay(Category.PROPERTY, SeasonKind.PEAK, 7, "AE-DU"),
        MinimumStay(Category.PROPERTY, SeasonKind.PEAK, 14, "US-FL"),
        MinimumStay(Category.CAR, SeasonKind.PEAK, 30)))
    with pytest.raises(StayRefused) as refused:
        _check(rules, _local("2026-12-20T15:00"), _local("2026-12-26T11:00"))
    assert refused.value.rule == "minimum_stay"
    assert refused.value.dates["minimum_nights"] == 7 and refused.value.dates["nights"] == 6
    _check(rules, _local("2026-12-20T15:00"), _local("2026-12-27T11:00"))
    # arriving the day before peak: the rule is the arrival's season's
    _check(rules, _local("2026-12-14T15:00"), _local("2026-12-16T11:00"))


def test_changeover_days_bind_both_ends() -> None:
    rules = StayRules(changeovers=(Changeover(Category.YACHT, SeasonKind.HIGH,
                                              Weekday.SATURDAY),))
    saturday = _local("2026-11-14T16:00")
    assert saturday.date() == date(2026, 11, 14) and saturday.weekday() == 5
    _check(rules, saturday, saturday + timedelta(days=7), category=Category.YACHT)
    with pytest.raises(StayRefused) as refused:
        _check(rules, saturday, saturday + timedelta(days=6), category=Category.YACHT)
    assert refused.value.rule == "changeover_day"
    _check(rules, saturday, saturday + timedelta(days=6), category=Category.CAR)


def test_notice_and_horizon_bounds_and_the_staff_override() -> None:
    rules = StayRules(advance_notice=timedelta(hours=48), horizon=timedelta(days=400))
    _check(rules, NOW + timedelta(hours=48), NOW + timedelta(days=3))
    with pytest.raises(StayRefused) as refused:
        _check(rules, NOW + timedelta(hours=47, minutes=59), NOW + timedelta(days=3))
    assert refused.value.rule == "advance_notice"
    _check(rules, NOW + timedelta(hours=1), NOW + timedelta(days=3), staff=True)
    _check(rules, NOW + timedelta(days=400), NOW + timedelta(days=401))
    with pytest.raises(StayRefused) as refused:
        _check(rules, NOW + timedelta(days=400, seconds=1), NOW + timedelta(days=401))
    assert refused.value.rule == "horizon"
    _check(StayRules(), NOW + timedelta(days=4000), NOW + timedelta(days=4001))


@pytest.mark.parametrize("nights_, percentage", [(0, Decimal(5)), (7, Decimal(100)),
                                                 (7, Decimal(-1))])
def test_a_discount_is_positive_nights_and_under_100_percent(
    nights_: int, percentage: Decimal,
) -> None:
    with pytest.raises(ValueError):
        DurationDiscount(nights_, percentage)
