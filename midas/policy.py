"""Load the policies in force: the catalogue with the locations, seasons and tax rates of
the pricing policy's events, and the booking rules (the seeds while no admin has changed
anything)."""

from __future__ import annotations

import weakref
from datetime import datetime
from zoneinfo import ZoneInfo

from midas.domain.booking_rules import DEFAULT_RULES, RULES_ID, BookingRules, Rules
from midas.domain.catalogue import DEFAULT_CATALOGUE, Catalogue
from midas.domain.extras import EXTRAS_ID, ExtrasCatalogue, seeded_catalogue
from midas.domain.pricing_policy import POLICY_ID, PricingPolicy
from midas.eventstore import AggregateNotFound, Repository

# The catalogue built from the policy, per repository (a store, a schema), with the policy
# version it was built from: a version is one state of the policy's single stream, and
# building a catalogue (its locations, seasons, rules, rates) costs about half a
# millisecond, which every quote and hold would otherwise pay. While the repository knows
# that version is still current, the policy is not even loaded (a copy of it costs a
# tenth of a millisecond); likewise the extras catalogue, kept as loaded. Both are shared
# by every reader: read only.
_BUILT: weakref.WeakKeyDictionary[Repository, tuple[int, Catalogue]] = (
    weakref.WeakKeyDictionary())
_EXTRAS: weakref.WeakKeyDictionary[Repository, tuple[int, ExtrasCatalogue]] = (
    weakref.WeakKeyDictionary())
_SEEDED_EXTRAS: list[ExtrasCatalogue] = []


async def current_policy(repo: Repository) -> tuple[Catalogue, int]:
    """The catalogue in force and the policy version it comes from (0: the defaults)."""
    built = _BUILT.get(repo)
    if built is not None and repo.known_version(POLICY_ID) == built[0]:
        return built[1], built[0]
    try:
        policy = await repo.get(POLICY_ID, cls=PricingPolicy)
    except AggregateNotFound:
        _BUILT[repo] = (0, DEFAULT_CATALOGUE)
        return DEFAULT_CATALOGUE, 0
    if built is None or built[0] != policy.version:
        built = _BUILT[repo] = (policy.version, policy.catalogue())
    return built[1], policy.version


async def location_zone(repo: Repository, code: str) -> ZoneInfo:
    """The time zone of a location in force; UTC for a code the policy does not know."""
    catalogue, _ = await current_policy(repo)
    place = catalogue.locations.get(code)
    return place.zone if place is not None else ZoneInfo("UTC")


async def reporting_rate(repo: Repository, currency: str, at: datetime) -> dict[str, str] | None:
    """The rate of `currency` into the reporting currency in force on `at`'s UTC date, as
    recorded with a payment ({currency, rate, valid_from}); None when no rate is set."""
    catalogue, _ = await current_policy(repo)
    rate = catalogue.exchange_rate(currency.upper(), at.date())
    if rate is None:
        return None
    return {"currency": rate.reporting_currency, "rate": str(rate.rate),
            "valid_from": rate.valid_from.isoformat()}


async def current_extras(repo: Repository) -> ExtrasCatalogue:
    """The extras on offer: the catalogue's events, or the seed while none is recorded
    (shared: read only)."""
    held = _EXTRAS.get(repo)
    if held is not None and repo.known_version(EXTRAS_ID) == held[0]:
        return held[1]
    try:
        extras = await repo.get(EXTRAS_ID, cls=ExtrasCatalogue)
    except AggregateNotFound:
        if not _SEEDED_EXTRAS:
            _SEEDED_EXTRAS.append(seeded_catalogue())
        _EXTRAS[repo] = (0, _SEEDED_EXTRAS[0])
        return _SEEDED_EXTRAS[0]
    _EXTRAS[repo] = (extras.version, extras)
    return extras


# The booking rules built from their aggregate, per repository, with the version built
# from; as for the catalogue, not loaded again while that version is known current.
_RULES: weakref.WeakKeyDictionary[Repository, tuple[int, Rules]] = weakref.WeakKeyDictionary()


async def current_rules(repo: Repository) -> Rules:
    """The booking rules in force: the rules' events, or the defaults while none is
    recorded (shared: read only)."""
    rules, _ = await rules_in_force(repo)
    return rules


async def rules_in_force(repo: Repository) -> tuple[Rules, int]:
    """The booking rules in force and the version of their stream (0: the defaults)."""
    built = _RULES.get(repo)
    if built is not None and repo.known_version(RULES_ID) == built[0]:
        return built[1], built[0]
    try:
        aggregate = await repo.get(RULES_ID, cls=BookingRules)
    except AggregateNotFound:
        _RULES[repo] = (0, DEFAULT_RULES)
        return DEFAULT_RULES, 0
    if built is None or built[0] != aggregate.version:
        built = _RULES[repo] = (aggregate.version, aggregate.rules)
    return built[1], built[0]
