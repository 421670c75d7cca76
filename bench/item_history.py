"""Does a hold cost more on an item that already carries thousands of future bookings?

Two cars on a fresh schema: one given `--bookings` (5,000) one-day future bookings, every
third day; the other empty. Then `--holds` (2,000) holds on each, through the hold command
(`commands.bookings.hold_booking`: item and policy loaded, quote, atomic append of
`Item.Reserved` + `Booking.Held`, snapshots by the background writer), in rounds of
`--round` alternating between the two so the machine's noise falls on both alike. The
loaded car's holds go into its free days at random (inserted anywhere in its history);
the empty car's go one after another, each round on a fresh empty car, so that it stays
nearly empty. Reported: this process's CPU per hold (the writer's snapshots included,
flushed at the end of each round) and the wall time per hold, for each car, and their
ratio. The goal: within 20 %.

Run: `.venv/bin/python -m bench.item_history [--record]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import secrets
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg

from bench.booking import DEFAULT_DSN
from bench.results import publish
from commands.bookings import HoldBooking, hold_booking
from commands.inventory import RegisterItem, register_item
from midas.domain.registry import AGGREGATES
from midas.eventstore import Database, EventStore, EventTypes, Repository
from midas.eventstore.migrate import migrate

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
NOW = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
META = {"actor": "bench", "actor_role": "system"}


async def _car(repo: Repository, n: int) -> UUID:
    item_id, _ = await register_item(
        repo, RegisterItem(name=f"Car {n}", category="car", location="US-CA", rate=100_000),
        META)
    return item_id


async def _hold(repo: Repository, item: UUID, start: datetime) -> None:
    await hold_booking(repo, lambda: NOW, uuid4(),
                       HoldBooking(item_id=item, start=start, end=start + DAY), META)


async def _timed(repo: Repository, holds: list[Callable[[], object]]) -> tuple[float, float]:
    """(CPU s, wall s) of running these holds one after another, snapshots written."""
    cpu, wall = time.process_time(), time.perf_counter()
    for hold in holds:
        await hold()  # type: ignore[misc]
    await repo.snapshots.flush()
    return time.process_time() - cpu, time.perf_counter() - wall


async def run(args: argparse.Namespace) -> str:
    schema = f"bench_item_history_{secrets.token_hex(4)}"
    db = Database(args.dsn, schema, max_size=4)
    await migrate(db, MIGRATIONS)
    await db.open()
    store = EventStore(db)
    store.start()
    rng = random.Random(18)
    try:
        repo = Repository(store, EventTypes(AGGREGATES))
        loaded = await _car(repo, 0)
        began = time.perf_counter()
        for day in range(args.bookings):
            await _hold(repo, loaded, NOW + (2 + 3 * day) * DAY)  # every third day
        setup_s = time.perf_counter() - began
        # Between two of them (each occupies a day and the car's 2 h buffer), a free day.
        free_days = [NOW + (3 + 3 * day) * DAY + 4 * HOUR for day in range(args.bookings)]
        rng.shuffle(free_days)
        history_cpu, history_wall, empty_cpu, empty_wall = [], [], [], []
        rounds = args.holds // args.round
        for number in range(rounds):
            empty = await _car(repo, number + 1)
            mine = free_days[number * args.round:(number + 1) * args.round]
            on_loaded = [lambda start=start: _hold(repo, loaded, start) for start in mine]
            on_empty = [lambda n=n, empty=empty: _hold(repo, empty, NOW + (2 + 2 * n) * DAY)
                        for n in range(args.round)]
            first, second = (on_loaded, on_empty) if number % 2 else (on_empty, on_loaded)
            a_cpu, a_wall = await _timed(repo, first)
            b_cpu, b_wall = await _timed(repo, second)
            if first is on_loaded:
                history_cpu.append(a_cpu), history_wall.append(a_wall)
                empty_cpu.append(b_cpu), empty_wall.append(b_wall)
            else:
                empty_cpu.append(a_cpu), empty_wall.append(a_wall)
                history_cpu.append(b_cpu), history_wall.append(b_wall)
        item = await repo.get(loaded)
        occupations = len(item.occupations)  # type: ignore[attr-defined]
        async with db.acquire() as conn:
            snapshot_kb = (await conn.fetchval(
                "SELECT length(state) FROM snapshots WHERE stream_id = $1", loaded) or 0) / 1024
            version = await conn.fetchval("SHOW server_version")
        await repo.close()
    finally:
        await store.close()
        await db.close()
        conn = await asyncpg.connect(args.dsn)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    def per_hold_ms(values: list[float]) -> float:
        return statistics.median(values) * 1000 / args.round

    rows = [("CPU ms per hold", per_hold_ms(history_cpu), per_hold_ms(empty_cpu)),
            ("wall ms per hold", per_hold_ms(history_wall), per_hold_ms(empty_wall))]
    lines = [
        f"## Item history {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"- Machine: {os.cpu_count()} cores, {platform.machine()}; PostgreSQL {version};"
        f" Python {platform.python_version()}",
        f"- Command: `python -m bench.item_history`: {args.holds:,} holds on a car carrying"
        f" {args.bookings:,} future bookings (inserted at random among them) against as many"
        f" on empty cars, in rounds of {args.round} alternating; medians over {rounds} rounds;"
        f" setting up the {args.bookings:,} bookings took {setup_s:.0f} s",
        f"- At the end the loaded car held {occupations:,} occupations; its snapshot"
        f" {snapshot_kb:,.0f} KiB",
        "",
        "| measurement | item with history | empty item | ratio |",
        "|---|---|---|---|",
        *(f"| {name} | {loaded_ms:.3f} | {empty_ms:.3f} | {loaded_ms / empty_ms:.2f} |"
          for name, loaded_ms, empty_ms in rows),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", default=os.environ.get("MIDAS_BENCH_DATABASE_URL", DEFAULT_DSN))
    parser.add_argument("--bookings", type=int, default=5_000)
    parser.add_argument("--holds", type=int, default=2_000)
    parser.add_argument("--round", type=int, default=100)
    parser.add_argument("--record", action="store_true", help="append to bench/RESULTS.md")
    args = parser.parse_args()
    report = asyncio.run(run(args))
    publish(report, record=args.record)


if __name__ == "__main__":
    main()
