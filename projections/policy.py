"""The pricing policy read model: one row, the policy's plain state as its events left it
(locations, seasons, tax rates, duration discounts, stay rules, exchange rates) and the
version of its stream.

Queries build the catalogue in force from it (`queries.policy`) with the same function as
the aggregate (`midas.domain.pricing_policy.catalogue_of`). Each event changes the state
as the aggregate's own handler of it does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson

from midas.domain.pricing_policy import seed_locations
from midas.domain.pricing_policy_events import (
    PRICING_POLICY_DURATION_DISCOUNTS_SET,
    PRICING_POLICY_EXCHANGE_RATE_SET,
    PRICING_POLICY_LOCATION_ADDED,
    PRICING_POLICY_LOCATION_CHANGED,
    PRICING_POLICY_SEASONS_SET,
    PRICING_POLICY_STARTED,
    PRICING_POLICY_STAY_RULES_SET,
    PRICING_POLICY_TAX_RATE_SET,
)
from midas.eventstore import RecordedEvent

POLICY_TABLE = "pol_policy"
State = dict[str, Any]


def empty_state() -> State:
    return {"locations": {}, "seasons": {}, "duration_discounts": {}, "stay_rules": {},
            "exchange_rates": {}}


class PolicyProjector:
    name = "policy"
    tables = (POLICY_TABLE,)
    handles = frozenset({
        PRICING_POLICY_STARTED, PRICING_POLICY_LOCATION_ADDED, PRICING_POLICY_LOCATION_CHANGED,
        PRICING_POLICY_SEASONS_SET, PRICING_POLICY_TAX_RATE_SET,
        PRICING_POLICY_DURATION_DISCOUNTS_SET, PRICING_POLICY_STAY_RULES_SET,
        PRICING_POLICY_EXCHANGE_RATE_SET,
    })

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        row = await conn.fetchrow(f"SELECT state FROM {POLICY_TABLE} WHERE id = 1")
        state = orjson.loads(row["state"]) if row is not None else empty_state()
        for event in events:
            state = applied(state, event)
        await conn.execute(
            f"INSERT INTO {POLICY_TABLE} (id, version, state) VALUES (1, $1, $2::jsonb)"
            " ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version,"
            " state = EXCLUDED.state", events[-1].version, orjson.dumps(state).decode())


def applied(state: State, event: RecordedEvent) -> State:
    """`state` after the policy event."""
    t = event.type
    if t == PRICING_POLICY_STARTED:
        state = empty_state()
        seeded = PRICING_POLICY_STARTED.of(event).get("locations")
        for record in seeded if seeded is not None else seed_locations():
            _file(state, record)
    elif t == PRICING_POLICY_LOCATION_ADDED:
        added = PRICING_POLICY_LOCATION_ADDED.of(event)
        _file(state, {**added["location"], "seasons": added["seasons"]})
    elif t == PRICING_POLICY_LOCATION_CHANGED:
        changed = PRICING_POLICY_LOCATION_CHANGED.of(event)
        state["locations"][changed["code"]] = {**state["locations"][changed["code"]],
                                               **changed["changes"]}
    elif t == PRICING_POLICY_SEASONS_SET:
        seasons = PRICING_POLICY_SEASONS_SET.of(event)
        state["seasons"][seasons["location"]] = seasons["seasons"]
    elif t == PRICING_POLICY_TAX_RATE_SET:
        tax = PRICING_POLICY_TAX_RATE_SET.of(event)
        state["locations"][tax["location"]] = {**state["locations"][tax["location"]],
                                               "tax_rate": tax["rate"]}
    elif t == PRICING_POLICY_DURATION_DISCOUNTS_SET:
        discounts = PRICING_POLICY_DURATION_DISCOUNTS_SET.of(event)
        state["duration_discounts"][discounts["category"]] = discounts["tiers"]
    elif t == PRICING_POLICY_STAY_RULES_SET:
        state["stay_rules"] = PRICING_POLICY_STAY_RULES_SET.of(event)["rules"]
    elif t == PRICING_POLICY_EXCHANGE_RATE_SET:
        r = PRICING_POLICY_EXCHANGE_RATE_SET.of(event)
        listed = [x for x in state["exchange_rates"].get(r["currency"], [])
                  if x["valid_from"] != r["valid_from"]]
        listed.append({"valid_from": r["valid_from"], "rate": r["rate"],
                       "reporting_currency": r["reporting_currency"]})
        state["exchange_rates"][r["currency"]] = sorted(listed, key=lambda x: x["valid_from"])
    return state


def _file(state: State, record: dict[str, Any]) -> None:
    code = record["code"]
    state["locations"][code] = {k: record[k] for k in ("code", "name", "time_zone",
                                                       "tax_rate", "currency")}
    state["seasons"][code] = list(record.get("seasons", []))
