"""Stay rules: what a stay must respect to be quoted or held (docs/domain.md, Stay rules).

A stay's nights are counted on its location's calendar: the local dates from arrival to
departure (arriving Saturday 16:00 and leaving the next Saturday 10:00 is 7 nights). The
season of a stay, for these rules, is the season of its arrival date. A refusal names the
rule, the stay's dates and what the rule asks, so the customer can choose other dates.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from midas.domain.availability import Interval
from midas.domain.catalogue import Category, DurationDiscount, SeasonKind, StayRules
from midas.domain.errors import RuleViolation


class StayRefused(RuleViolation):
    """A stay rule refuses the stay: `rule` is its name, `dates` the stay's local dates."""

    def __init__(self, rule: str, detail: str, dates: dict[str, Any]) -> None:
        super().__init__(detail)
        self.rule = rule
        self.dates = dates


def local_dates(start: datetime, end: datetime, zone: tzinfo) -> tuple[date, date]:
    """The local dates of arrival and departure (ValueError unless aware, end after start)."""
    if start.tzinfo is None or end.tzinfo is None or end <= start:
        Interval(start, end)  # raises, naming the problem
    return start.astimezone(zone).date(), end.astimezone(zone).date()


def nights(start: datetime, end: datetime, zone: tzinfo) -> int:
    """The local dates from arrival to departure (0 for a stay within one day)."""
    arrival, departure = local_dates(start, end, zone)
    return (departure - arrival).days


def discount_rate(tiers: tuple[DurationDiscount, ...], stay_nights: int) -> Decimal:
    """The fraction off the rental for a stay of `stay_nights` nights: the tier with the
    most nights the stay reaches (0 when it reaches none)."""
    reached = [tier for tier in tiers if stay_nights >= tier.min_nights]
    if not reached:
        return Decimal(0)
    return max(reached, key=lambda tier: tier.min_nights).percentage / 100


def check_stay(
    rules: StayRules, *, category: Category, location: str, start: datetime, end: datetime,
    arrival: date, nights: int, season: SeasonKind, now: datetime,
    override_notice: bool = False,
) -> None:
    """Refuse the stay (StayRefused) if a rule forbids it; staff override the notice.
    `arrival` is the local date of `start`, `nights` the local dates to departure and
    `season` the arrival's: what the stay's quote has already worked out (its first line's
    date and season, its nights), so they are not converted again.

    Every quote and hold asks, so the refusal's words are only built for a refusal."""
    if not (rules.minimum_stays or rules.changeovers or rules.horizon is not None
            or (rules.advance_notice and not override_notice)):
        return
    departure = arrival + timedelta(days=nights)

    def refused(rule: str, detail: str, **more: Any) -> StayRefused:
        stay = f"a stay from {arrival.isoformat()} to {departure.isoformat()}"
        return StayRefused(rule, f"{stay} {detail}", {
            "start": start.isoformat(), "end": end.isoformat(),
            "arrival": arrival.isoformat(), "departure": departure.isoformat(),
            "season": season.value, **more})

    if not override_notice and start - now < rules.advance_notice:
        hours = int(rules.advance_notice / timedelta(hours=1))
        earliest = (now + rules.advance_notice).isoformat()
        raise refused("advance_notice", f"starts within {hours} hours of now: the earliest"
                      f" start is {earliest}", earliest=earliest)
    if rules.horizon is not None and start > now + rules.horizon:
        latest = (now + rules.horizon).isoformat()
        raise refused("horizon", f"starts beyond the furthest bookable date, {latest}",
                      latest=latest)
    least = 0
    for minimum in rules.minimum_stays:
        if minimum.nights > least and _applies(minimum.category, minimum.season,
                                               minimum.location, category, season, location):
            least = minimum.nights
    if nights < least:
        raise refused("minimum_stay", f"({nights} nights) arrives in {season.value} season:"
                      f" a {category.value} at {location} is booked for at least {least}"
                      " nights then", nights=nights, minimum_nights=least)
    for rule in rules.changeovers:
        if not _applies(rule.category, rule.season, rule.location, category, season, location):
            continue
        if arrival.weekday() != rule.weekday.number or departure.weekday() != rule.weekday.number:
            day = rule.weekday.value.capitalize()
            raise refused("changeover_day", f"arrives in {season.value} season: a"
                          f" {category.value} at {location} is booked {day} to {day} then",
                          weekday=rule.weekday.value)


def _applies(
    rule_category: Category, rule_season: SeasonKind, rule_location: str | None,
    category: Category, season: SeasonKind, location: str,
) -> bool:
    return (rule_category == category and rule_season == season
            and rule_location in (None, location))
