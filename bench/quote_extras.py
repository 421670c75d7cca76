"""What extras cost inside the service: one `midas serve`, loaded by wrk (32 clients)
with quotes choosing no extra, one, then three (bench/booking's `EXTRAS`), the modes
alternated round by round (the order reversed every other round); the service's CPU per
quote in each mode and what each adds to the plain quote, round by round.

bench/booking compares plain and `--extras` in two services started one after the other,
each after ten seconds of its own holds, so one pair differs from the next by ten percent
and more. Here the modes share one process, its caches and its minute: what the extras
add reads within a few microseconds. With `--rules`, the stay rules and the cars'
duration discounts of bench/booking's `--extras` are set first and apply to every mode.

`--goal` compares what bench/booking's goal compares, plain against three extras under
the stay rules and discount, in the one service: the rules are set before each round of
extras and cleared before each plain round (two policy changes; the catalogue is rebuilt
once after each). `--holds` loads holds instead of quotes (the projections run in the
service, as in bench/booking); each load books days after the previous one's.

Run: `.venv/bin/python -m bench.quote_extras [--rules | --goal] [--holds] [--rounds 4]
[--seconds 5] [--record]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import statistics
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from uuid import uuid4

import aiohttp
import asyncpg

from bench import cpu
from bench.booking import (
    CAR_DISCOUNTS,
    CHILD_SEAT,
    DEFAULT_DSN,
    EXTRAS,
    HOLDS,
    QUOTES,
    STAY_RULES,
    _extras_setup,
    _items,
    _sign_in_rows,
    _wait_ready,
    _wrk_holds,
    auth_headers,
    days_booked,
    service_env,
)
from bench.results import publish
from midas.config import Settings
from midas.http.auth import Role

Chosen = list[dict[str, str]] | None
MODES: dict[str, Chosen] = {
    "no extras": None, "one extra": EXTRAS[:1], "three extras": EXTRAS}
# --goal: bench/booking's plain runs against its --extras runs (the rules with the extras).
GOAL_MODES: dict[str, Chosen] = {"plain": None, "three extras and rules": EXTRAS}
FIRST_DAY = 1000  # the first hold load's stays start this many days ahead


def modes(args: argparse.Namespace) -> dict[str, Chosen]:
    return GOAL_MODES if args.goal else MODES


Headers = Callable[[], tuple[dict[str, str], dict[str, str]]]  # fresh (admin, customer)
# Per mode, per round: (requests/s, p50 ms, service CPU µs per request).
Measured = dict[str, list[tuple[float, float, float]]]


async def _set_rules(session: aiohttp.ClientSession, base: str, admin: dict[str, str],
                     *, on: bool) -> None:
    """bench/booking's stay rules and car discount set (`on`), or none of them."""
    for path, body in (
            ("/api/v1/pricing/stay-rules", STAY_RULES if on else {}),
            ("/api/v1/pricing/duration-discounts/car", {"tiers": CAR_DISCOUNTS if on else []})):
        async with session.put(f"{base}{path}", json=body, headers=admin) as response:
            if response.status != 200:
                raise RuntimeError(f"{path}: {await response.text()}")


async def _measure(args: argparse.Namespace, server: subprocess.Popen[bytes],
                   session: aiohttp.ClientSession, base: str, headers: Headers,
                   items: list[str]) -> Measured:
    """Each round asks `headers` for fresh tokens: a run may outlast an access token."""
    processes = cpu.groups({"service": server.pid}, this="load generator")
    chosen = modes(args)
    measured: Measured = {mode: [] for mode in chosen}
    first_day = FIRST_DAY
    for n in range(args.rounds + 1):  # round 0 warms the service up and is not kept
        admin, customer = headers()
        for mode in list(chosen) if n % 2 else list(chosen)[::-1]:
            if args.goal:
                await _set_rules(session, base, admin, on=chosen[mode] is not None)
            before = cpu.sample(processes)
            load = await _wrk_holds(base, customer, items, args, first_day=first_day,
                                    path=HOLDS if args.holds else QUOTES,
                                    extras=chosen[mode])
            spent = cpu.spent(before, cpu.sample(processes))["service"]
            if load.refused:
                raise RuntimeError(f"{mode}: {load.refused} requests refused")
            if args.holds:
                first_day += days_booked(load, args.items, args.clients)
            if n:
                measured[mode].append((load.done / args.seconds, load.p50_ms,
                                       spent * 1e6 / max(load.done, 1)))
    return measured


async def run(args: argparse.Namespace) -> str:
    schema = f"bench_quote_extras_{secrets.token_hex(4)}"
    server = subprocess.Popen(  # noqa: ASYNC220 (started once, before any load)
        [sys.executable, "-m", "midas.cli", "serve", "--port", str(args.port)],
        env=service_env(args.dsn, schema), stdout=subprocess.DEVNULL)
    accounts = {Role.ADMIN: uuid4(), Role.CUSTOMER: uuid4()}
    settings = Settings(environment="test")
    admin, _ = auth_headers(settings, accounts)
    base = f"http://127.0.0.1:{args.port}"
    try:
        async with aiohttp.ClientSession() as session:
            await _wait_ready(session, base)
            await _sign_in_rows(args.dsn, schema, accounts)
            items = await _items(session, base, admin, args.items)
            if args.rules:
                await _extras_setup(session, base, admin)
            else:
                async with session.post(f"{base}/api/v1/extras", json=CHILD_SEAT,
                                        headers=admin) as response:
                    if response.status != 201:
                        raise RuntimeError(f"the child seat: {await response.text()}")
            measured = await _measure(args, server, session, base,
                                      lambda: auth_headers(settings, accounts), items)
    finally:
        server.terminate()
        server.wait(timeout=60)
        conn = await asyncpg.connect(args.dsn)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()
    return report(args, measured)


def report(args: argparse.Namespace, measured: Measured) -> str:
    """The medians of each mode, and of its round-by-round difference from the first mode
    (its service CPU, and its p50 as a ratio)."""
    first = next(iter(measured))
    reference = measured[first]
    what = "holds" if args.holds else "quotes"
    rows = []
    for mode, rounds in measured.items():
        rate, p50, cpu_us = (statistics.median(r[k] for r in rounds) for k in range(3))
        pairs = list(zip(rounds, reference, strict=True))
        added = statistics.median(r[2] - p[2] for r, p in pairs)
        share = statistics.median((r[2] - p[2]) / p[2] * 100 for r, p in pairs)
        slower = statistics.median((r[1] / p[1] - 1) * 100 for r, p in pairs)
        rows.append(f"| {mode} | {rate:,.0f} | {p50:.2f} | {cpu_us:.1f} |"
                    f" {added:+.1f} ({share:+.1f} %) | {slower:+.1f} % |")
    flags = "".join(f" --{flag}" for flag in ("rules", "goal", "holds") if getattr(args, flag))
    rules = ("set before each round of extras, cleared before each plain round" if args.goal
             else "set" if args.rules else "unset")
    return "\n".join([
        f"## Extras in the service, {what}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"- Machine: {os.cpu_count()} cores, {platform.machine()}; Python"
        f" {platform.python_version()}",
        f"- Command: `python -m bench.quote_extras{flags}`"
        f" ({args.rounds} rounds of {args.seconds:g} s per mode, {args.clients} clients,"
        f" {args.items} items; stay rules and discounts {rules})",
        "",
        f"| {what} | {what}/s | p50 ms | service CPU µs per {what[:-1]} |"
        f" added to {first}, µs | p50 against {first} |",
        "|---|---:|---:|---:|---|---|",
        *rows,
        "",
        *_by_round(measured),
    ])


def _by_round(measured: Measured) -> list[str]:
    """Each mode's rounds against the first mode's, in order: the spread and any drift
    over a long run that the medians hide."""
    first, *others = measured
    lines = []
    for mode in others:
        pairs = list(zip(measured[mode], measured[first], strict=True))
        slower = ", ".join(f"{(r[1] / p[1] - 1) * 100:+.1f}" for r, p in pairs)
        added = ", ".join(f"{r[2] - p[2]:+.0f}" for r, p in pairs)
        lines += [f"Round by round, {mode} against {first}: p50 {slower} %;"
                  f" service CPU added {added} µs.", ""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dsn", default=os.environ.get("MIDAS_BENCH_DATABASE_URL", DEFAULT_DSN))
    parser.add_argument("--port", type=int, default=18082)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5)
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--rules", action="store_true",
                        help="stay rules and the cars' duration discounts set for every mode")
    choice.add_argument("--goal", action="store_true",
                        help="plain against three extras under the stay rules and discount")
    parser.add_argument("--holds", action="store_true", help="hold loads instead of quotes")
    parser.add_argument("--record", action="store_true", help="append to bench/RESULTS.md")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    publish(result, record=args.record)


if __name__ == "__main__":
    main()
