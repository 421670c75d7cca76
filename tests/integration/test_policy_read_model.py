"""The pricing policy read model: what queries price and place with equals the policy's
own catalogue after every kind of change, and the defaults before any event."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from midas.domain.catalogue import DEFAULT_CATALOGUE
from midas.domain.pricing_policy import PricingPolicy
from midas.domain.registry import AGGREGATES
from midas.eventstore import Database, EventStore, EventTypes, Repository
from midas.projection import catch_up
from projections.policy import PolicyProjector
from queries import policy

MONACO = {"code": "MC-MO", "name": "Monaco", "time_zone": "Europe/Monaco",
          "tax_rate": Decimal("0.20"), "currency": "EUR",
          "seasons": [{"kind": "peak", "first": "07-01", "last": "08-31"}]}


async def _read_model(db: Database) -> tuple[object, int]:
    await catch_up(db, PolicyProjector())
    async with db.acquire() as conn:
        return await policy.catalogue(conn)


async def test_the_read_model_prices_as_the_policy_after_each_change(
        db: Database, store: EventStore) -> None:
    assert await _read_model(db) == (DEFAULT_CATALOGUE, 0)
    repo = Repository(store, EventTypes(AGGREGATES))
    policy_ = PricingPolicy.start()
    await repo.save(policy_, metadata={})
    assert await _read_model(db) == (policy_.catalogue(), policy_.version)

    changes = [
        lambda p: p.add_location(**MONACO),
        lambda p: p.change_location("MC-MO", name="Monte Carlo", time_zone="Europe/Paris"),
        lambda p: p.set_seasons("MC-MO", [{"kind": "high", "first": "05-01",
                                           "last": "06-30"}]),
        lambda p: p.set_tax_rate("MC-MO", Decimal("0.085")),
        lambda p: p.set_duration_discounts("property", [{"min_nights": 7, "percentage": "10"}]),
        lambda p: p.set_stay_rules({"minimum_stays": [
            {"category": "property", "season": "high", "nights": 5, "location": "MC-MO"}],
            "changeovers": [{"category": "property", "season": "high", "weekday": "saturday"}],
            "advance_notice_hours": 24, "horizon_days": None}),
        lambda p: p.set_exchange_rate("EUR", date(2026, 1, 1), Decimal("1.08"), "USD"),
        lambda p: p.set_exchange_rate("EUR", date(2026, 6, 1), Decimal("1.10"), "USD"),
        lambda p: p.set_exchange_rate("EUR", date(2026, 1, 1), Decimal("1.07"), "USD"),
    ]
    for change in changes:
        policy_ = await repo.get(policy_.id, cls=PricingPolicy)
        change(policy_)
        await repo.save(policy_, metadata={})
        catalogue, version = await _read_model(db)
        assert version == policy_.version
        assert catalogue == policy_.catalogue()
    catalogue, _ = await _read_model(db)
    assert catalogue.location("MC-MO").tax_rate == Decimal("0.085")
    assert catalogue.location("MC-MO").name == "Monte Carlo"
    async with db.acquire() as conn:
        assert str(await policy.location_zone(conn, "MC-MO")) == "Europe/Paris"
        assert str(await policy.location_zone(conn, "XX-XX")) == "UTC"
