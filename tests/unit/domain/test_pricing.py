import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from midas.domain.catalogue import (
    DEFAULT_CATALOGUE,
    Category,
    RateUnit,
    Season,
    SeasonKind,
    ServiceLevel,
)
from midas.domain.pricing import (
    Quote,
    billable_units,
    effective_service_level,
    quote,
    round_half_up,
)

DUBAI = ZoneInfo("Asia/Dubai")
NEW_YORK = ZoneInfo("America/New_York")
GRACE = DEFAULT_CATALOGUE.day_grace
T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


def _quote(start, end, category, location, rate, level=ServiceLevel.STANDARD, **kwargs):
    return quote(
        start,
        end,
        category=category,
        location_code=location,
        rate=rate,
        service_level=level,
        catalogue=DEFAULT_CATALOGUE,
        **kwargs,
    )


# --- the worked example ---------------------------------------------------------------------


def test_dubai_villa_worked_example_to_the_cent():
    start = datetime(2026, 12, 26, 15, 0, tzinfo=DUBAI)
    end = datetime(2026, 12, 28, 11, 0, tzinfo=DUBAI)
    q = _quote(start, end, Category.PROPERTY, "AE-DU", 1_500_000, ServiceLevel.VVIP)

    assert [line.local_date for line in q.lines] == [date(2026, 12, 26), date(2026, 12, 27)]
    assert {line.season for line in q.lines} == {SeasonKind.PEAK}
    assert [line.amount for line in q.lines] == [2_250_000, 2_250_000]
    assert q.rental_subtotal == 4_500_000
    assert q.service_multiplier == Decimal("1.8")
    assert q.rental == 8_100_000
    assert (q.insurance_rate, q.insurance) == (Decimal("0.10"), 810_000)
    assert (q.tax_rate, q.tax) == (Decimal("0.05"), 445_500)
    assert q.total_due == 9_355_500
    assert q.security_deposit == 1_000_000
    assert q.currency == "USD"


def test_deposit_is_never_in_the_total_nor_taxed():
    start = datetime(2026, 5, 4, 10, 0, tzinfo=NEW_YORK)
    q = _quote(start, start + timedelta(days=1), Category.CAR, "US-NY", 100_000)
    assert q.total_due == q.rental + q.insurance + q.tax
    assert q.tax == round_half_up((q.rental + q.insurance) * Decimal("0.08875"))
    assert q.security_deposit == 500_000


# --- billable units --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration", "days"),
    [
        (timedelta(hours=24), 1),
        (timedelta(hours=24, minutes=59), 1),
        (timedelta(hours=24, minutes=59, seconds=1), 2),
        (timedelta(hours=25), 2),
        (timedelta(hours=48, minutes=59), 2),
        (timedelta(hours=49), 3),
        (timedelta(minutes=30), 1),
    ],
)
def test_day_grace(duration, days):
    assert billable_units(T0, T0 + duration, RateUnit.DAY, timedelta(days=1), GRACE) == days


@pytest.mark.parametrize(
    ("duration", "hours"),
    [
        (timedelta(hours=5), 5),
        (timedelta(hours=5, minutes=1), 6),
        (timedelta(hours=5, minutes=59), 6),
    ],
)
def test_hourly_units_round_up_without_grace(duration, hours):
    assert billable_units(T0, T0 + duration, RateUnit.HOUR, timedelta(hours=4), GRACE) == hours


def test_one_hour_yacht_bills_its_four_hour_minimum():
    start = datetime(2026, 5, 4, 10, 0, tzinfo=NEW_YORK)
    q = _quote(start, start + timedelta(hours=1), Category.YACHT, "US-NY", 200_000)
    assert q.billable_units == 4
    assert q.rental_subtotal == 800_000


def test_one_day_property_bills_its_two_day_minimum():
    start = datetime(2026, 5, 4, 15, 0, tzinfo=DUBAI)
    q = _quote(start, start + timedelta(days=1), Category.PROPERTY, "AE-DU", 1_000_000)
    assert q.billable_units == 2
    assert [line.local_date for line in q.lines] == [date(2026, 5, 4), date(2026, 5, 5)]


def test_one_hour_jet_bills_two_hours():
    start = datetime(2026, 5, 4, 10, 0, tzinfo=NEW_YORK)
    assert _quote(start, start + timedelta(hours=1), Category.JET, "US-NY", 1).billable_units == 2


def test_item_minimum_overrides_the_category():
    start = datetime(2026, 5, 4, 10, 0, tzinfo=NEW_YORK)
    end = start + timedelta(hours=1)
    q = _quote(start, end, Category.YACHT, "US-NY", 1, minimum=timedelta(hours=6))
    assert q.billable_units == 6


def test_minimum_not_a_whole_number_of_units_rounds_up():
    assert (
        billable_units(T0, T0 + timedelta(hours=1), RateUnit.HOUR, timedelta(minutes=90), GRACE)
        == 2
    )


@pytest.mark.parametrize(
    "start",
    [datetime(2026, 5, 4, 10, 0), datetime(2026, 5, 4, 10, 0, tzinfo=UTC)],
)
def test_naive_datetimes_are_refused(start):
    naive_end = datetime(2026, 5, 5, 10, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        billable_units(start, naive_end, RateUnit.DAY, timedelta(days=1), GRACE)
    with pytest.raises(ValueError, match="timezone-aware"):
        _quote(start, naive_end, Category.CAR, "US-NY", 100)


@pytest.mark.parametrize("offset", [timedelta(0), timedelta(hours=-1)])
def test_end_must_be_after_start(offset):
    with pytest.raises(ValueError):
        _quote(T0, T0 + offset, Category.CAR, "US-NY", 100)


@pytest.mark.parametrize("rate", [-1, 1.5, Decimal(100), True])
def test_rate_must_be_int_minor_units(rate):
    with pytest.raises(ValueError):
        _quote(T0, T0 + timedelta(days=1), Category.CAR, "US-NY", rate)


# --- seasons, per unit -----------------------------------------------------------------------


def test_day_units_priced_by_season_across_a_boundary():
    start = datetime(2026, 12, 18, 10, 0, tzinfo=NEW_YORK)
    end = datetime(2026, 12, 22, 10, 0, tzinfo=NEW_YORK)
    q = _quote(start, end, Category.CAR, "US-FL", 100_000)
    assert [(line.local_date.day, line.season) for line in q.lines] == [
        (18, SeasonKind.OTHER),
        (19, SeasonKind.OTHER),
        (20, SeasonKind.PEAK),
        (21, SeasonKind.PEAK),
    ]
    assert [line.amount for line in q.lines] == [100_000, 100_000, 150_000, 150_000]
    assert q.rental_subtotal == 500_000


def test_dubai_stay_from_high_into_peak():
    start = datetime(2026, 12, 13, 15, 0, tzinfo=DUBAI)
    end = datetime(2026, 12, 17, 11, 0, tzinfo=DUBAI)
    q = _quote(start, end, Category.PROPERTY, "AE-DU", 1_000_000)
    assert [line.season for line in q.lines] == [
        SeasonKind.HIGH,
        SeasonKind.HIGH,
        SeasonKind.PEAK,
        SeasonKind.PEAK,
    ]
    assert [line.multiplier for line in q.lines] == [Decimal("1.25")] * 2 + [Decimal("1.5")] * 2
    assert q.rental_subtotal == 1_250_000 * 2 + 1_500_000 * 2


def test_hourly_units_take_the_local_date_not_the_utc_date():
    # 22:00 in Miami on Dec 19 is already Dec 20 in UTC; the local date decides.
    start = datetime(2026, 12, 19, 22, 0, tzinfo=NEW_YORK)
    q = _quote(start, start + timedelta(hours=4), Category.YACHT, "US-FL", 100_000)
    assert [(line.local_date.day, line.season) for line in q.lines] == [
        (19, SeasonKind.OTHER),
        (19, SeasonKind.OTHER),
        (20, SeasonKind.PEAK),
        (20, SeasonKind.PEAK),
    ]
    assert q.lines[0].starts_at == datetime(2026, 12, 20, 3, 0, tzinfo=UTC)


def test_admin_seasons_replace_the_defaults():
    seasons = {
        **DEFAULT_CATALOGUE.seasons,
        "US-NY": (Season.between(SeasonKind.LOW, "05-01", "05-31"),),
    }
    catalogue = replace(DEFAULT_CATALOGUE, seasons=seasons)
    start = datetime(2026, 5, 4, 10, 0, tzinfo=NEW_YORK)
    q = quote(
        start,
        start + timedelta(days=1),
        category=Category.CAR,
        location_code="US-NY",
        rate=100_000,
        service_level=ServiceLevel.STANDARD,
        catalogue=catalogue,
    )
    assert q.lines[0].season is SeasonKind.LOW
    assert q.rental_subtotal == 85_000


# --- DST (2026-03-08 in New York has no 02:00-02:59) ----------------------------------------


def test_hourly_units_across_spring_forward_are_absolute_hours():
    start = datetime(2026, 3, 8, 0, 0, tzinfo=NEW_YORK)  # 05:00 UTC
    end = datetime(2026, 3, 8, 6, 0, tzinfo=NEW_YORK)  # 10:00 UTC: five hours later
    q = _quote(start, end, Category.YACHT, "US-NY", 100_000)
    assert q.billable_units == 5
    local_hours = [line.starts_at.astimezone(NEW_YORK).hour for line in q.lines]
    assert local_hours == [0, 1, 3, 4, 5]
    assert [line.starts_at.hour for line in q.lines] == [5, 6, 7, 8, 9]
    assert q.rental_subtotal == 500_000


def test_four_hours_from_half_past_one_across_spring_forward():
    start = datetime(2026, 3, 8, 1, 30, tzinfo=NEW_YORK)
    q = _quote(start, start.astimezone(UTC) + timedelta(hours=4), Category.YACHT, "US-NY", 1)
    local = [line.starts_at.astimezone(NEW_YORK).strftime("%H:%M") for line in q.lines]
    assert local == ["01:30", "03:30", "04:30", "05:30"]


def test_hourly_units_across_fall_back_are_absolute_hours():
    start = datetime(2026, 11, 1, 0, 0, tzinfo=NEW_YORK)  # 04:00 UTC
    end = datetime(2026, 11, 1, 3, 0, tzinfo=NEW_YORK)  # 08:00 UTC: four hours later
    q = _quote(start, end, Category.YACHT, "US-NY", 100_000)
    assert q.billable_units == 4
    assert [line.starts_at.hour for line in q.lines] == [4, 5, 6, 7]


@pytest.mark.parametrize(
    ("start", "end"),
    [
        # 23 absolute hours, one local day
        (
            datetime(2026, 3, 7, 10, 0, tzinfo=NEW_YORK),
            datetime(2026, 3, 8, 10, 0, tzinfo=NEW_YORK),
        ),
        # 25 absolute hours, still one local day (no grace needed)
        (
            datetime(2026, 10, 31, 10, 0, tzinfo=NEW_YORK),
            datetime(2026, 11, 1, 10, 0, tzinfo=NEW_YORK),
        ),
    ],
)
def test_day_units_across_dst_count_local_days(start, end):
    assert _quote(start, end, Category.CAR, "US-NY", 100_000).billable_units == 1


def test_day_units_across_spring_forward_take_each_local_date():
    start = datetime(2026, 3, 7, 23, 30, tzinfo=NEW_YORK)
    end = datetime(2026, 3, 10, 23, 30, tzinfo=NEW_YORK)
    q = _quote(start, end, Category.CAR, "US-NY", 100_000)
    assert [line.local_date for line in q.lines] == [
        date(2026, 3, 7),
        date(2026, 3, 8),
        date(2026, 3, 9),
    ]
    # Each unit starts at 23:30 local: 04:30 UTC before the change, 03:30 UTC after it.
    assert [line.starts_at.strftime("%d %H:%M") for line in q.lines] == [
        "08 04:30",
        "09 03:30",
        "10 03:30",
    ]


def test_day_unit_starting_in_the_spring_forward_gap():
    # Day 2 would start at 02:30 on Mar 8, which New York skips: it starts an hour of
    # wall clock later (03:30 EDT, 07:30 UTC), still on Mar 8.
    start = datetime(2026, 3, 7, 2, 30, tzinfo=NEW_YORK)
    end = datetime(2026, 3, 9, 2, 30, tzinfo=NEW_YORK)
    q = _quote(start, end, Category.CAR, "US-NY", 100_000)
    assert [line.local_date for line in q.lines] == [date(2026, 3, 7), date(2026, 3, 8)]
    assert q.lines[1].starts_at == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)


def test_billable_units_without_a_zone_measure_absolute_time():
    start = datetime(2026, 10, 31, 10, 0, tzinfo=NEW_YORK)
    end = datetime(2026, 11, 1, 10, 0, tzinfo=NEW_YORK)  # 25 h
    assert billable_units(start, end, RateUnit.DAY, timedelta(days=1), GRACE) == 2
    assert (
        billable_units(start, end, RateUnit.DAY, timedelta(days=1), GRACE, time_zone=NEW_YORK) == 1
    )


# --- rounding --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "expected"),
    [("8508.5", 8509), ("8508.49", 8508), ("2.5", 3), ("3.5", 4), ("0.5", 1), ("7", 7)],
)
def test_round_half_up(amount, expected):
    assert round_half_up(Decimal(amount)) == expected


def test_a_line_ending_in_half_a_cent_rounds_up():
    # $100.10 in low season: 10,010 x 0.85 = 8,508.5 cents -> 8,509 (half-even would give 8,508)
    start = datetime(2026, 6, 10, 15, 0, tzinfo=DUBAI)
    q = _quote(start, start + timedelta(days=2), Category.PROPERTY, "AE-DU", 10_010)
    assert [line.season for line in q.lines] == [SeasonKind.LOW, SeasonKind.LOW]
    assert [line.amount for line in q.lines] == [8_509, 8_509]
    assert q.rental_subtotal == 17_018


def test_each_priced_line_is_rounded_once():
    # Premium: 17,018 x 1.3 = 22,123.4 -> 22,123; insurance 10 % = 2,212.3 -> 2,212;
    # tax 5 % of 24,335 = 1,216.75 -> 1,217.
    start = datetime(2026, 6, 10, 15, 0, tzinfo=DUBAI)
    q = _quote(
        start, start + timedelta(days=2), Category.PROPERTY, "AE-DU", 10_010, ServiceLevel.PREMIUM
    )
    assert (q.rental, q.insurance, q.tax, q.total_due) == (22_123, 2_212, 1_217, 25_552)


# --- quote data ------------------------------------------------------------------------------


def test_quote_round_trips_through_plain_json():
    start = datetime(2026, 3, 7, 23, 30, tzinfo=NEW_YORK)
    q = _quote(start, start + timedelta(days=3), Category.CAR, "US-NY", 123_457, ServiceLevel.VVIP)
    data = json.loads(json.dumps(q.to_dict()))
    assert Quote.from_dict(data) == q
    assert data["total_due"] == q.total_due
    assert data["service_multiplier"] == "1.8"
    assert data["lines"][1]["local_date"] == "2026-03-08"
    assert data["start"] == "2026-03-08T04:30:00+00:00"


def test_quote_data_has_no_floats():
    start = datetime(2026, 12, 26, 15, 0, tzinfo=DUBAI)
    q = _quote(start, start + timedelta(days=2), Category.PROPERTY, "AE-DU", 1_500_000)

    def walk(value):
        assert not isinstance(value, float)
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(q.to_dict())


def test_quote_keeps_the_item_values():
    start = datetime(2026, 5, 4, 10, 0, tzinfo=NEW_YORK)
    q = _quote(
        start,
        start + timedelta(hours=30),
        Category.CAR,
        "US-NY",
        5_000,
        rate_unit=RateUnit.HOUR,
        currency="EUR",
    )
    assert (q.rate_unit, q.billable_units, q.currency) == (RateUnit.HOUR, 30, "EUR")
    assert (q.location_code, q.time_zone) == ("US-NY", "America/New_York")
    assert q.start.tzinfo is UTC


# --- service level upgrade -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chosen", "tier", "delivered"),
    [
        (ServiceLevel.STANDARD, ServiceLevel.STANDARD, ServiceLevel.STANDARD),
        (ServiceLevel.STANDARD, ServiceLevel.PREMIUM, ServiceLevel.PREMIUM),
        (ServiceLevel.STANDARD, ServiceLevel.VVIP, ServiceLevel.VVIP),
        (ServiceLevel.PREMIUM, ServiceLevel.VVIP, ServiceLevel.VVIP),
        (ServiceLevel.PREMIUM, ServiceLevel.STANDARD, ServiceLevel.PREMIUM),
        (ServiceLevel.VVIP, ServiceLevel.STANDARD, ServiceLevel.VVIP),
        (ServiceLevel.VVIP, "premium", ServiceLevel.VVIP),
    ],
)
def test_effective_service_level(chosen, tier, delivered):
    assert effective_service_level(chosen, tier) is delivered


def test_upgrade_is_free_the_quote_stays_at_the_chosen_level():
    start = datetime(2026, 5, 4, 10, 0, tzinfo=NEW_YORK)
    q = _quote(start, start + timedelta(days=1), Category.CAR, "US-NY", 100_000)
    assert effective_service_level(q.service_level, ServiceLevel.VVIP) is ServiceLevel.VVIP
    assert (q.service_level, q.service_multiplier) == (ServiceLevel.STANDARD, Decimal("1.0"))
