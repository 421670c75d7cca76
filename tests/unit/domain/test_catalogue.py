from dataclasses import FrozenInstanceError, replace
from datetime import date, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from midas.domain.catalogue import (
    DEFAULT_CATALOGUE,
    Catalogue,
    Category,
    CategoryDefaults,
    Location,
    MonthDay,
    PricingPolicy,
    RateUnit,
    RefundTier,
    Season,
    SeasonKind,
    ServiceLevel,
    UnknownLocation,
    season_kind_on,
)

CATALOGUE = DEFAULT_CATALOGUE


@pytest.mark.parametrize(
    ("category", "unit", "buffer", "minimum", "insurance", "deposit"),
    [
        (Category.CAR, RateUnit.DAY, timedelta(hours=2), timedelta(days=1), "0.10", 500_000),
        (Category.YACHT, RateUnit.HOUR, timedelta(hours=4), timedelta(hours=4), "0.15", 2_500_000),
        (Category.JET, RateUnit.HOUR, timedelta(hours=3), timedelta(hours=2), "0.25", 5_000_000),
        (
            Category.PROPERTY,
            RateUnit.DAY,
            timedelta(hours=24),
            timedelta(days=2),
            "0.10",
            1_000_000,
        ),
    ],
)
def test_category_defaults_match_the_domain_table(
    category, unit, buffer, minimum, insurance, deposit
):
    defaults = CATALOGUE.defaults(category)
    assert defaults == CategoryDefaults(unit, buffer, minimum, Decimal(insurance), deposit)


def test_category_can_be_named_by_its_value():
    assert CATALOGUE.defaults("yacht") is CATALOGUE.defaults(Category.YACHT)


@pytest.mark.parametrize(
    ("level", "multiplier"),
    [(ServiceLevel.STANDARD, "1.0"), (ServiceLevel.PREMIUM, "1.3"), (ServiceLevel.VVIP, "1.8")],
)
def test_service_multipliers(level, multiplier):
    assert CATALOGUE.service_multiplier(level) == Decimal(multiplier)


@pytest.mark.parametrize(
    ("kind", "multiplier"),
    [
        (SeasonKind.PEAK, "1.5"),
        (SeasonKind.HIGH, "1.25"),
        (SeasonKind.LOW, "0.85"),
        (SeasonKind.OTHER, "1.0"),
    ],
)
def test_season_multipliers(kind, multiplier):
    assert CATALOGUE.season_multiplier(kind) == Decimal(multiplier)


@pytest.mark.parametrize(
    ("code", "zone", "tax"),
    [
        ("AE-DU", "Asia/Dubai", "0.05"),
        ("US-FL", "America/New_York", "0.06"),
        ("US-CA", "America/Los_Angeles", "0.0725"),
        ("US-NV", "America/Los_Angeles", "0.08375"),
        ("US-NY", "America/New_York", "0.08875"),
    ],
)
def test_locations(code, zone, tax):
    location = CATALOGUE.location(code)
    assert (location.code, location.time_zone, location.tax_rate) == (code, zone, Decimal(tax))
    assert location.zone == ZoneInfo(zone)
    assert location.currency == "USD"


def test_unknown_location_is_refused():
    with pytest.raises(UnknownLocation):
        CATALOGUE.location("FR-PA")


def test_service_levels_are_ordered():
    assert ServiceLevel.STANDARD.rank < ServiceLevel.PREMIUM.rank < ServiceLevel.VVIP.rank


def test_rate_unit_lengths():
    assert RateUnit.HOUR.length == timedelta(hours=1)
    assert RateUnit.DAY.length == timedelta(days=1)


def test_day_grace_and_hold_expiry():
    assert CATALOGUE.day_grace == timedelta(minutes=59)
    assert CATALOGUE.hold_expiry == timedelta(minutes=30)


def test_pricing_policy_is_the_catalogue():
    assert PricingPolicy is Catalogue


@pytest.mark.parametrize(
    ("day", "kind"),
    [
        (date(2026, 12, 14), SeasonKind.HIGH),
        (date(2026, 12, 15), SeasonKind.PEAK),
        (date(2026, 12, 31), SeasonKind.PEAK),
        (date(2027, 1, 1), SeasonKind.PEAK),
        (date(2027, 1, 10), SeasonKind.PEAK),
        (date(2027, 1, 11), SeasonKind.HIGH),
        (date(2026, 11, 1), SeasonKind.HIGH),
        (date(2026, 10, 31), SeasonKind.OTHER),
        (date(2026, 3, 31), SeasonKind.HIGH),
        (date(2026, 4, 1), SeasonKind.OTHER),
        (date(2026, 5, 31), SeasonKind.OTHER),
        (date(2026, 6, 1), SeasonKind.LOW),
        (date(2026, 8, 31), SeasonKind.LOW),
        (date(2026, 9, 1), SeasonKind.OTHER),
        (date(2028, 2, 29), SeasonKind.HIGH),
    ],
)
def test_dubai_seasons(day, kind):
    assert CATALOGUE.season_kind("AE-DU", day) is kind


@pytest.mark.parametrize("code", ["US-FL", "US-CA", "US-NV", "US-NY"])
@pytest.mark.parametrize(
    ("day", "kind"),
    [
        (date(2026, 12, 19), SeasonKind.OTHER),
        (date(2026, 12, 20), SeasonKind.PEAK),
        (date(2027, 1, 3), SeasonKind.PEAK),
        (date(2027, 1, 4), SeasonKind.OTHER),
        (date(2026, 6, 30), SeasonKind.OTHER),
        (date(2026, 7, 1), SeasonKind.PEAK),
        (date(2026, 8, 15), SeasonKind.PEAK),
        (date(2026, 8, 16), SeasonKind.OTHER),
    ],
)
def test_us_seasons(code, day, kind):
    assert CATALOGUE.season_kind(code, day) is kind


def test_season_wrapping_the_year_end():
    season = Season.between(SeasonKind.PEAK, "12-15", "01-10")
    assert season.wraps_year_end
    assert season.contains(date(2026, 12, 15))
    assert season.contains(date(2027, 1, 10))
    assert not season.contains(date(2026, 12, 14))
    assert not season.contains(date(2027, 1, 11))


def test_single_day_season():
    season = Season.between(SeasonKind.HIGH, "07-04", "07-04")
    assert not season.wraps_year_end
    assert season.contains(date(2026, 7, 4))
    assert not season.contains(date(2026, 7, 5))


@pytest.mark.parametrize(
    "order",
    [(0, 1, 2), (2, 1, 0), (1, 2, 0)],
)
def test_overlapping_seasons_highest_priority_wins_in_any_order(order):
    seasons = [
        Season.between(SeasonKind.LOW, "01-01", "12-31"),
        Season.between(SeasonKind.HIGH, "06-01", "06-30"),
        Season.between(SeasonKind.PEAK, "06-10", "06-12"),
    ]
    arranged = [seasons[i] for i in order]
    assert season_kind_on(date(2026, 6, 11), arranged) is SeasonKind.PEAK
    assert season_kind_on(date(2026, 6, 20), arranged) is SeasonKind.HIGH
    assert season_kind_on(date(2026, 9, 1), arranged) is SeasonKind.LOW


def test_no_season_is_other():
    assert season_kind_on(date(2026, 6, 11), []) is SeasonKind.OTHER


def test_month_day_validation_and_text():
    assert str(MonthDay.parse("02-29")) == "02-29"
    with pytest.raises(ValueError):
        MonthDay(2, 30)
    with pytest.raises(ValueError):
        MonthDay(13, 1)
    with pytest.raises(ValueError):
        MonthDay(4, 0)


def test_catalogue_is_frozen():
    with pytest.raises(FrozenInstanceError):
        CATALOGUE.day_grace = timedelta(0)  # type: ignore[misc]
    with pytest.raises(TypeError):
        CATALOGUE.locations["XX"] = CATALOGUE.location("AE-DU")  # type: ignore[index]


def test_refund_tables_are_kept_longest_notice_first():
    shuffled = (
        RefundTier(timedelta(hours=24), Decimal(50)),
        RefundTier(timedelta(hours=48), Decimal(100)),
    )
    catalogue = replace(
        CATALOGUE, refund_tables={**CATALOGUE.refund_tables, Category.CAR: shuffled}
    )
    assert [tier.percentage for tier in catalogue.refund_table(Category.CAR)] == [100, 50]


def test_admin_values_replace_defaults():
    dubai = replace(CATALOGUE.location("AE-DU"), tax_rate=Decimal("0.07"))
    catalogue = replace(CATALOGUE, locations={**CATALOGUE.locations, "AE-DU": dubai})
    assert catalogue.location("AE-DU").tax_rate == Decimal("0.07")
    assert CATALOGUE.location("AE-DU").tax_rate == Decimal("0.05")


def test_catalogue_must_cover_every_category():
    categories = {k: v for k, v in CATALOGUE.categories.items() if k is not Category.JET}
    with pytest.raises(ValueError, match="jet"):
        replace(CATALOGUE, categories=categories)


def test_catalogue_must_cover_every_service_level():
    multipliers = {ServiceLevel.STANDARD: Decimal(1)}
    with pytest.raises(ValueError, match="premium"):
        replace(CATALOGUE, service_multipliers=multipliers)


def test_seasons_need_a_known_location():
    with pytest.raises(ValueError, match="FR-PA"):
        replace(CATALOGUE, seasons={"FR-PA": ()})


def test_location_must_be_filed_under_its_code():
    with pytest.raises(ValueError):
        replace(CATALOGUE, locations={"US-NY": CATALOGUE.location("US-FL")})


@pytest.mark.parametrize("bad", [0.05, 5, Decimal("-0.01"), Decimal("NaN")])
def test_rates_must_be_non_negative_decimals(bad):
    with pytest.raises(ValueError):
        Location("XX-XX", "UTC", bad, "USD")


def test_floats_are_refused_as_multipliers():
    multipliers = {**CATALOGUE.service_multipliers, ServiceLevel.VVIP: 1.8}
    with pytest.raises(ValueError):
        replace(CATALOGUE, service_multipliers=multipliers)


def test_deposit_must_be_int_minor_units():
    with pytest.raises(ValueError):
        replace(CATALOGUE.defaults(Category.CAR), security_deposit=5000.0)


def test_unknown_time_zone_is_refused():
    with pytest.raises(ValueError):
        Location("XX-XX", "Mars/Olympus_Mons", Decimal("0.05"), "USD")


def test_refund_percentage_above_100_is_refused():
    with pytest.raises(ValueError):
        RefundTier(timedelta(hours=1), Decimal(101))


def test_each_catalogue_answers_season_kinds_from_its_own_seasons():
    # Catalogues are remembered per policy version: the kinds one has answered are its own.
    day = date(2027, 7, 14)
    other = replace(CATALOGUE, seasons={
        **CATALOGUE.seasons, "US-CA": (Season.between(SeasonKind.LOW, "07-01", "07-31"),)})
    for _ in range(2):  # asked again, each answers the same
        assert CATALOGUE.season_kind("US-CA", day) is SeasonKind.PEAK
        assert other.season_kind("US-CA", day) is SeasonKind.LOW
        # the same day of another year, the day after the season
        assert other.season_kind("US-CA", date(2031, 7, 14)) is SeasonKind.LOW
        assert other.season_kind("US-CA", date(2027, 8, 1)) is SeasonKind.OTHER
    with pytest.raises(UnknownLocation):
        CATALOGUE.season_kind("MC-MO", day)
    with pytest.raises(UnknownLocation):  # refused again, not remembered
        CATALOGUE.season_kind("MC-MO", day)
