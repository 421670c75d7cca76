"""What extras cost a quote inside the service: one `midas serve`, loaded by wrk (32
clients) with quotes choosing no extra, one, then three (bench/booking's `EXTRAS`), the
modes alternated round by round (the order reversed every other round); the service's
CPU per quote in each mode and what each adds to the plain quote, round by round.

bench/booking compares plain and `--extras` in two services started one after the other,
each after ten seconds of its own holds, so one pair differs from the next by ten percent
and more. Here the modes share one process, its caches and its minute: what the extras
add reads within a few microseconds. With `--rules`, the stay rules and the cars'
duration discounts of bench/booking's `--extras` are set first and apply to every mode.

Run: `.venv/bin/python -m bench.quote_extras [--rules] [--rounds 4] [--seconds 5]
[--record]`.
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
from datetime import UTC, datetime
from uuid import uuid4

import aiohttp
import asyncpg

from bench import cpu
from bench.booking import (
    CHILD_SEAT,
    DEFAULT_DSN,
    EXTRAS,
    QUOTES,
    _extras_setup,
    _items,
    _sign_in_rows,
    _wait_ready,
    _wrk_holds,
    service_env,
)
from bench.results import publish
from midas.config import Settings
from midas.http.auth import Role, issue_access_token

MODES: dict[str, list[dict[str, str]] | None] = {
    "no extras": None, "one extra": EXTRAS[:1], "three extras": EXTRAS}


# Per mode, per round: (quotes/s, p50 ms, service CPU µs per quote).
Measured = dict[str, list[tuple[float, float, float]]]


async def _measure(args: argparse.Namespace, server: subprocess.Popen[bytes],
                   base: str, customer: dict[str, str], items: list[str]) -> Measured:
    processes = cpu.groups({"service": server.pid}, this="load generator")
    measured: Measured = {mode: [] for mode in MODES}
    for n in range(args.rounds + 1):  # round 0 warms the service up and is not kept
        for mode in list(MODES) if n % 2 else list(MODES)[::-1]:
            before = cpu.sample(processes)
            quotes = await _wrk_holds(base, customer, items, args, path=QUOTES,
                                      extras=MODES[mode])
            spent = cpu.spent(before, cpu.sample(processes))["service"]
            if quotes.refused:
                raise RuntimeError(f"{mode}: {quotes.refused} quotes refused")
            if n:
                measured[mode].append((quotes.done / args.seconds, quotes.p50_ms,
                                       spent * 1e6 / max(quotes.done, 1)))
    return measured


async def run(args: argparse.Namespace) -> str:
    schema = f"bench_quote_extras_{secrets.token_hex(4)}"
    server = subprocess.Popen(  # noqa: ASYNC220 (started once, before any load)
        [sys.executable, "-m", "midas.cli", "serve", "--port", str(args.port)],
        env=service_env(args.dsn, schema), stdout=subprocess.DEVNULL)
    accounts = {Role.ADMIN: uuid4(), Role.CUSTOMER: uuid4()}
    settings = Settings(environment="test")
    admin, customer = (
        {"Authorization": f"Bearer {issue_access_token(settings, accounts[role], role)}"}
        for role in (Role.ADMIN, Role.CUSTOMER))
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
        measured = await _measure(args, server, base, customer, items)
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
    """The medians of each mode, and of its round-by-round difference from no extras."""
    plain = measured["no extras"]
    rows = []
    for mode, rounds in measured.items():
        rate, p50, cpu_us = (statistics.median(r[k] for r in rounds) for k in range(3))
        added = [r[2] - p[2] for r, p in zip(rounds, plain, strict=True)]
        share = statistics.median(a / p[2] * 100 for a, p in zip(added, plain, strict=True))
        rows.append(f"| {mode} | {rate:,.0f} | {p50:.2f} | {cpu_us:.1f} |"
                    f" {statistics.median(added):+.1f} ({share:+.1f} %) |")
    return "\n".join([
        f"## Quote extras {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"- Machine: {os.cpu_count()} cores, {platform.machine()}; Python"
        f" {platform.python_version()}",
        f"- Command: `python -m bench.quote_extras{' --rules' if args.rules else ''}`"
        f" ({args.rounds} rounds of {args.seconds:g} s per mode, {args.clients} clients,"
        f" {args.items} items; stay rules and discounts {'set' if args.rules else 'unset'})",
        "",
        "| quotes | quotes/s | p50 ms | service CPU µs per quote | added to no extras, µs |",
        "|---|---:|---:|---:|---|",
        *rows,
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dsn", default=os.environ.get("MIDAS_BENCH_DATABASE_URL", DEFAULT_DSN))
    parser.add_argument("--port", type=int, default=18082)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rules", action="store_true",
                        help="stay rules and the cars' duration discounts set for every mode")
    parser.add_argument("--record", action="store_true", help="append to bench/RESULTS.md")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    publish(result, record=args.record)


if __name__ == "__main__":
    main()
