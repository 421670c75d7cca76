"""Load the policies in force: the catalogue with the locations, seasons and tax rates of
the pricing policy's events, and the booking rules (the seeds while no admin has changed
anything)."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import TypeVar
from uuid import UUID
from zoneinfo import ZoneInfo

from eventsourcing.domain import Aggregate

from midas.domain.booking_rules import DEFAULT_RULES, RULES_ID, BookingRules, Rules
from midas.domain.catalogue import DEFAULT_CATALOGUE, Catalogue
from midas.domain.extras import EXTRAS_ID, ExtrasCatalogue, seeded_catalogue
from midas.domain.pricing_policy import POLICY_ID, PricingPolicy
from midas.eventstore import AggregateNotFound, Repository

T = TypeVar("T")
A = TypeVar("A", bound=Aggregate)

# What is built from each policy aggregate (the catalogue, the extras catalogue, the booking
# rules), per repository (a store, a schema), with the version of the aggregate's single
# stream it was built from. Building a catalogue (its locations, seasons, rules, rates)
# costs about half a millisecond, which every quote and hold would otherwise pay; while the
# repository knows that version is still current, the aggregate is not even loaded (a copy
# of it costs a tenth of a millisecond). Shared by every reader: read only.
_Kept = weakref.WeakKeyDictionary[Repository, tuple[int, T]]
_BUILT: _Kept[Catalogue] = weakref.WeakKeyDictionary()
_EXTRAS: _Kept[ExtrasCatalogue] = weakref.WeakKeyDictionary()
_RULES: _Kept[Rules] = weakref.WeakKeyDictionary()


async def _in_force(repo: Repository, kept: _Kept[T], aggregate_id: UUID, cls: type[A],
                    build: Callable[[A], T], default: Callable[[], T]) -> tuple[T, int]:
    """What ``build`` makes of the aggregate in force and its version, kept in ``kept``;
    ``default()`` and 0 while nothing is recorded."""
    held = kept.get(repo)
    if held is not None and repo.known_version(aggregate_id) == held[0]:
        return held[1], held[0]
    try:
        aggregate = await repo.get(aggregate_id, cls=cls)
    except AggregateNotFound:
        held = kept[repo] = (0, default())
        return held[1], 0
    if held is None or held[0] != aggregate.version:
        held = kept[repo] = (aggregate.version, build(aggregate))
    return held[1], held[0]


async def current_policy(repo: Repository) -> tuple[Catalogue, int]:
    """The catalogue in force and the policy version it comes from (0: the defaults)."""
    return await _in_force(repo, _BUILT, POLICY_ID, PricingPolicy, PricingPolicy.catalogue,
                           lambda: DEFAULT_CATALOGUE)


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
    extras, _ = await _in_force(repo, _EXTRAS, EXTRAS_ID, ExtrasCatalogue, lambda e: e,
                                _seeded_extras)
    return extras


@cache
def _seeded_extras() -> ExtrasCatalogue:
    return seeded_catalogue()


async def current_rules(repo: Repository) -> Rules:
    """The booking rules in force: the rules' events, or the defaults while none is
    recorded (shared: read only)."""
    rules, _ = await rules_in_force(repo)
    return rules


async def rules_in_force(repo: Repository) -> tuple[Rules, int]:
    """The booking rules in force and the version of their stream (0: the defaults)."""
    return await _in_force(repo, _RULES, RULES_ID, BookingRules, lambda a: a.rules,
                           lambda: DEFAULT_RULES)
