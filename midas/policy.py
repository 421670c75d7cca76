"""Load the pricing policy in force (the catalogue plus the admins' overrides)."""

from __future__ import annotations

from midas.domain.catalogue import DEFAULT_CATALOGUE, Catalogue
from midas.domain.pricing_policy import POLICY_ID, PricingPolicy
from midas.eventstore import AggregateNotFound, Repository


async def current_policy(repo: Repository) -> tuple[Catalogue, int]:
    """The catalogue in force and the policy version it comes from (0: the defaults)."""
    try:
        policy = await repo.get(POLICY_ID, cls=PricingPolicy)
    except AggregateNotFound:
        return DEFAULT_CATALOGUE, 0
    return policy.catalogue(), policy.version
