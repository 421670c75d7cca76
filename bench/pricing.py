"""The pricing work of one quote and one hold, in process, without I/O: a stay with no
extras under no stay rules (bench/booking's plain holds) beside the same stay with
bench/booking's three extras under its stay rules and duration discounts (`--extras`).

Each step is what the service runs for every `POST /api/v1/quotes` and `POST
/api/v1/bookings`: the body parsed and validated, the item priced with the chosen extras,
the stay rules checked, the quote written as event data and checked and encoded for the
log, and the answer encoded. Each figure is the best of 25 repeats of a thousand calls,
plain and extras alternated step by step (the machine's noise only ever adds), so it moves
with the code rather than with the load: a change to this work compares before and after
in seconds. What it weighs inside a whole request is bench/booking's to say.

Run: `.venv/bin/python -m bench.pricing [--record]`.
"""

from __future__ import annotations

import argparse
import os
import platform
import timeit
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from bench.booking import CAR_DISCOUNTS, CHILD_SEAT, EXTRAS, START, STAY_RULES
from bench.results import publish
from commands.quotes import Stay, check_rules, price
from midas.domain.catalogue import DEFAULT_CATALOGUE, Catalogue, Category
from midas.domain.extras import ExtrasCatalogue, seeded_catalogue
from midas.domain.inventory import Item
from midas.domain.pricing_policy import PricingPolicy
from midas.eventstore.codec import encode

REPEATS = 25


def _policies() -> tuple[Catalogue, ExtrasCatalogue]:
    """The catalogue and extras of bench/booking's `--extras` runs."""
    policy = PricingPolicy.start()
    policy.set_stay_rules(STAY_RULES)
    policy.set_duration_discounts("car", CAR_DISCOUNTS)
    extras = seeded_catalogue()
    extras.add(CHILD_SEAT)
    return policy.catalogue(), extras


def _steps(body: bytes, item: Item, catalogue: Catalogue, extras: ExtrasCatalogue,
           now: datetime) -> dict[str, Callable[[], Any]]:
    stay = Stay.model_validate_json(body)
    chosen = stay.extras or None
    final = price(item, stay.start, stay.end, stay.service_level, catalogue, chosen, extras)
    event = {"item_id": str(item.id), "customer_id": str(item.id), "quote": final.to_dict(),
             "policy_version": 3, "held_at": now.isoformat()}
    steps: dict[str, Callable[[], Any]] = {
        "body parsed and validated": lambda: Stay.model_validate_json(body),
        "item priced, with the extras chosen": lambda: price(
            item, stay.start, stay.end, stay.service_level, catalogue, chosen, extras),
        "stay rules checked": lambda: check_rules(final, catalogue, now, staff=False),
    }
    steps["quote as event data, checked and encoded"] = lambda: encode(
        {**event, "quote": final.to_dict()})
    steps["answer encoded"] = lambda: orjson.dumps({**final.to_dict(), "policy_version": 3})
    return steps


def _best_us(step: Callable[[], Any], number: int) -> float:
    return min(timeit.repeat(step, number=number, repeat=REPEATS)) / number * 1e6


def run(number: int) -> str:
    catalogue, extras = _policies()
    item = Item.register(DEFAULT_CATALOGUE, name="Car", category=Category.CAR,
                         location="US-NY", rate=100_000)
    now = datetime.now(UTC)
    start = START + timedelta(days=1000)
    stay = {"item_id": str(item.id), "start": start.isoformat(),
            "end": (start + timedelta(days=1)).isoformat()}
    modes = {"plain": _steps(orjson.dumps(stay), item, DEFAULT_CATALOGUE, seeded_catalogue(),
                             now),
             "extras": _steps(orjson.dumps({**stay, "extras": EXTRAS}), item, catalogue,
                              extras, now)}
    # Plain and extras alternate step by step, so a slower minute of the machine falls on
    # both; the best of many short repeats is what the code costs.
    figures: dict[str, dict[str, float]] = {mode: {} for mode in modes}
    for name in modes["extras"]:
        for mode, steps in modes.items():
            if name in steps:
                figures[mode][name] = _best_us(steps[name], number)
    plain, with_them = (sum(figures[mode].values()) for mode in ("plain", "extras"))
    rows = [f"| {name} | {figures['plain'].get(name, 0):.1f} |"
            f" {figures['extras'][name]:.1f} |" for name in figures["extras"]]
    return "\n".join([
        f"## Pricing {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"- Machine: {os.cpu_count()} cores, {platform.machine()}; Python"
        f" {platform.python_version()}",
        f"- Command: `python -m bench.pricing` (best of {REPEATS} repeats of {number:,}"
        " calls)",
        "",
        "| step, µs | plain | three extras, stay rules |",
        "|---|---:|---:|",
        *rows,
        f"| **together** | **{plain:.1f}** | **{with_them:.1f}** (+{with_them - plain:.1f}) |",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--number", type=int, default=1_000, help="calls per repeat")
    parser.add_argument("--record", action="store_true", help="append to bench/RESULTS.md")
    args = parser.parse_args()
    report = run(args.number)
    publish(report, record=args.record)


if __name__ == "__main__":
    main()
