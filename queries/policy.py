"""The pricing policy in force, read from its read model (`projections.policy`): the
catalogue queries price and place with, and the time zone of a location."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import asyncpg
import orjson

from midas.domain.catalogue import DEFAULT_CATALOGUE, Catalogue
from midas.domain.pricing_policy import catalogue_of
from projections.policy import POLICY_TABLE

READS = ("policy",)
# The catalogue last built, with the state it was built from: building one (its locations,
# seasons, rules, rates) costs about half a millisecond. Keyed by the state itself, not
# its version: two schemas (tests, blue-green rebuilds) may be at one version.
_built: tuple[str, Catalogue] = ("", DEFAULT_CATALOGUE)


async def catalogue(conn: asyncpg.Connection) -> tuple[Catalogue, int]:
    """The catalogue in force and the policy version it comes from (0: the defaults)."""
    global _built
    row = await conn.fetchrow(f"SELECT version, state FROM {POLICY_TABLE} WHERE id = 1")
    if row is None:
        return DEFAULT_CATALOGUE, 0
    if _built[0] != row["state"]:
        state = orjson.loads(row["state"])
        _built = (row["state"], catalogue_of(
            state["locations"], state["seasons"], state["duration_discounts"],
            state["stay_rules"], state["exchange_rates"]))
    return _built[1], row["version"]


async def location_zone(conn: asyncpg.Connection, code: str) -> ZoneInfo:
    """The time zone of a location in force; UTC for a code the policy does not know."""
    found, _ = await catalogue(conn)
    place = found.locations.get(code)
    return place.zone if place is not None else ZoneInfo("UTC")
