from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from midas.domain.catalogue import DEFAULT_CATALOGUE, Category, RefundTier
from midas.domain.refunds import (
    CancellationReason,
    notice_before_start,
    refund_amount,
    refund_percentage,
    refund_percentage_at,
)

MINUTE = timedelta(minutes=1)

# (category, inclusive lower bound in hours, refund at the bound, refund one minute under it)
BOUNDS = [
    (Category.CAR, 48, 100, 50),
    (Category.CAR, 24, 50, 0),
    (Category.YACHT, 336, 100, 50),
    (Category.YACHT, 168, 50, 25),
    (Category.YACHT, 72, 25, 0),
    (Category.JET, 168, 90, 50),
    (Category.JET, 72, 50, 25),
    (Category.JET, 24, 25, 0),
    (Category.PROPERTY, 336, 100, 50),
    (Category.PROPERTY, 168, 50, 0),
]


def _percentage(category, notice, reason=CancellationReason.CUSTOMER):
    return refund_percentage(category, notice, DEFAULT_CATALOGUE, reason=reason)


@pytest.mark.parametrize(("category", "hours", "at_bound", "under"), BOUNDS)
def test_refund_at_each_bound_is_inclusive(category, hours, at_bound, under):
    assert _percentage(category, timedelta(hours=hours)) == Decimal(at_bound)


@pytest.mark.parametrize(("category", "hours", "at_bound", "under"), BOUNDS)
def test_refund_one_minute_under_each_bound(category, hours, at_bound, under):
    assert _percentage(category, timedelta(hours=hours) - MINUTE) == Decimal(under)


@pytest.mark.parametrize(("category", "hours", "at_bound", "under"), BOUNDS)
def test_refund_bounds_from_instants(category, hours, at_bound, under):
    start = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    at_bound_time = start - timedelta(hours=hours)
    assert refund_percentage_at(category, start, at_bound_time, DEFAULT_CATALOGUE) == at_bound
    late = at_bound_time + MINUTE
    assert refund_percentage_at(category, start, late, DEFAULT_CATALOGUE) == under


@pytest.mark.parametrize(
    ("category", "top"),
    [(Category.CAR, 100), (Category.YACHT, 100), (Category.JET, 90), (Category.PROPERTY, 100)],
)
def test_long_notice_gets_the_top_tier(category, top):
    assert _percentage(category, timedelta(days=365)) == top


@pytest.mark.parametrize("category", list(Category))
@pytest.mark.parametrize("notice", [timedelta(0), -MINUTE, timedelta(hours=-30)])
def test_cancelling_at_or_after_start_refunds_nothing(category, notice):
    assert _percentage(category, notice) == 0


@pytest.mark.parametrize("category", list(Category))
@pytest.mark.parametrize("reason", [CancellationReason.BUSINESS, CancellationReason.FORCE_MAJEURE])
@pytest.mark.parametrize("notice", [timedelta(days=30), timedelta(hours=1), timedelta(hours=-5)])
def test_business_and_force_majeure_refund_in_full(category, reason, notice):
    assert _percentage(category, notice, reason) == 100


def test_notice_is_absolute_time_across_dst():
    new_york = ZoneInfo("America/New_York")
    start = datetime(2026, 3, 9, 10, 0, tzinfo=new_york)
    cancelled_at = datetime(2026, 3, 7, 10, 0, tzinfo=new_york)  # 47 real hours before
    assert notice_before_start(start, cancelled_at) == timedelta(hours=47)
    assert refund_percentage_at(Category.CAR, start, cancelled_at, DEFAULT_CATALOGUE) == 50


def test_naive_instants_are_refused():
    with pytest.raises(ValueError):
        notice_before_start(datetime(2026, 3, 9, 10, 0), datetime(2026, 3, 7, 10, 0, tzinfo=UTC))


def test_admin_refund_table_replaces_the_default():
    table = (RefundTier(timedelta(hours=12), Decimal(80)),)
    catalogue = replace(
        DEFAULT_CATALOGUE, refund_tables={**DEFAULT_CATALOGUE.refund_tables, Category.CAR: table}
    )
    assert refund_percentage(Category.CAR, timedelta(hours=12), catalogue) == 80
    assert refund_percentage(Category.CAR, timedelta(hours=11), catalogue) == 0


@pytest.mark.parametrize(
    ("paid", "percentage", "refund"),
    [
        (9_355_500, Decimal(100), 9_355_500),
        (9_355_500, Decimal(50), 4_677_750),
        (9_355_500, Decimal(0), 0),
        (12_345, Decimal(50), 6_173),  # 6,172.5 rounds half-up
        (12_345, Decimal(25), 3_086),  # 3,086.25
        (99, Decimal(90), 89),  # 89.1
        (5, Decimal(90), 5),  # 4.5 rounds half-up
        (0, Decimal(100), 0),
    ],
)
def test_refund_amount(paid, percentage, refund):
    assert refund_amount(paid, percentage) == refund


@pytest.mark.parametrize(
    ("paid", "percentage"),
    [(-1, Decimal(50)), (100, Decimal(101)), (100, Decimal(-1)), (100, 50.0), (100.0, Decimal(50))],
)
def test_refund_amount_refuses_bad_input(paid, percentage):
    with pytest.raises(ValueError):
        refund_amount(paid, percentage)
