"""The pricing policy's locations: seeded in its first event, added and changed as events."""

from __future__ import annotations

from decimal import Decimal

import pytest

from midas.domain.catalogue import DEFAULT_CATALOGUE, UnknownLocation
from midas.domain.errors import RuleViolation
from midas.domain.pricing_policy import LocationExists, PricingPolicy

MONACO = {"code": "MC-MO", "name": "Monaco", "time_zone": "Europe/Monaco",
          "tax_rate": Decimal("0.20"), "currency": "EUR",
          "seasons": [{"kind": "peak", "first": "07-01", "last": "08-31"}]}


def test_the_first_event_records_the_seed_and_prices_as_the_defaults() -> None:
    policy = PricingPolicy.start()
    started = policy.collect_events()[0]
    assert [p["code"] for p in started.locations] == list(DEFAULT_CATALOGUE.locations)
    assert started.locations[0]["seasons"][0] == {"kind": "peak", "first": "12-15",
                                                   "last": "01-10"}
    assert policy.catalogue() == DEFAULT_CATALOGUE


def test_a_stream_started_before_the_seed_was_recorded_is_seeded() -> None:
    legacy = PricingPolicy()  # a Started event without locations
    assert legacy.catalogue() == DEFAULT_CATALOGUE


def test_a_location_added_is_in_the_catalogue_with_its_seasons() -> None:
    policy = PricingPolicy.start()
    policy.add_location(**MONACO)
    catalogue = policy.catalogue()
    monaco = catalogue.location("MC-MO")
    assert (monaco.name, monaco.time_zone, monaco.tax_rate, monaco.currency) == (
        "Monaco", "Europe/Monaco", Decimal("0.20"), "EUR")
    assert [s.kind.value for s in catalogue.seasons["MC-MO"]] == ["peak"]
    with pytest.raises(LocationExists):
        policy.add_location(**{**MONACO, "name": "Monte Carlo"})
    with pytest.raises(LocationExists):
        policy.add_location(**{**MONACO, "code": "AE-DU"})


@pytest.mark.parametrize("field, value", [
    ("code", "MC_MO"), ("name", " "), ("time_zone", "Europe/Atlantis"),
    ("tax_rate", Decimal(1)), ("tax_rate", Decimal("-0.01")), ("tax_rate", Decimal("NaN")),
    ("currency", "eu"),
])
def test_an_invalid_location_is_refused(field: str, value: object) -> None:
    policy = PricingPolicy.start()
    with pytest.raises(RuleViolation):
        policy.add_location(**{**MONACO, field: value})
    assert "MC-MO" not in policy.locations


def test_bounds_of_the_tax_rate() -> None:
    policy = PricingPolicy.start()
    policy.add_location(**{**MONACO, "tax_rate": Decimal(0)})
    policy.set_tax_rate("MC-MO", Decimal("0.999"))
    assert policy.catalogue().location("MC-MO").tax_rate == Decimal("0.999")


def test_changes_record_only_what_differs_and_unknown_codes_are_refused() -> None:
    policy = PricingPolicy.start()
    policy.collect_events()
    policy.change_location("US-FL", name="Miami", time_zone="America/New_York",
                           currency="USD")
    assert policy.collect_events() == []
    policy.change_location("US-FL", name="Miami Beach", currency="USD")
    changed = policy.collect_events()
    assert [e.changes for e in changed] == [{"name": "Miami Beach"}]
    assert policy.catalogue().location("US-FL").name == "Miami Beach"
    with pytest.raises(UnknownLocation):
        policy.change_location("MC-MO", name="Monaco")
    with pytest.raises(UnknownLocation):
        policy.set_tax_rate("MC-MO", Decimal("0.2"))
    with pytest.raises(RuleViolation):
        policy.change_location("US-FL", rate="1")


def test_dated_exchange_rates_the_latest_on_or_before_the_day_applies() -> None:
    from datetime import date

    policy = PricingPolicy.start()
    policy.set_exchange_rate("EUR", date(2026, 10, 1), Decimal("1.10"), "USD")
    policy.set_exchange_rate("EUR", date(2026, 12, 1), Decimal("1.30"), "USD")
    policy.set_exchange_rate("EUR", date(2026, 12, 1), Decimal("1.20"), "USD")  # replaces
    catalogue = policy.catalogue()
    assert catalogue.exchange_rate("EUR", date(2026, 9, 30)) is None
    assert catalogue.exchange_rate("EUR", date(2026, 10, 1)).rate == Decimal("1.10")
    assert catalogue.exchange_rate("EUR", date(2026, 11, 30)).rate == Decimal("1.10")
    assert catalogue.exchange_rate("EUR", date(2026, 12, 1)).rate == Decimal("1.20")
    assert catalogue.exchange_rate("USD", date(2000, 1, 1)).rate == 1
    assert catalogue.exchange_rate("GBP", date(2026, 12, 1)) is None
    for currency, rate, reporting in (("USD", Decimal(1), "USD"), ("EUR", Decimal(0), "USD"),
                                      ("eur", Decimal(1), "USD")):
        with pytest.raises(RuleViolation):
            policy.set_exchange_rate(currency, date(2026, 1, 1), rate, reporting)
