"""Booking benchmark through the real service (HTTP, a separate server process).

1. Booking commands per second: `--clients` (32) concurrent clients each book, one after
   another, non-overlapping days on their own share of `--items` (200) items, for
   `--seconds`. Each booking is a full hold: item + policy loaded, quote, atomic append of
   `Item.Reserved` + `Booking.Held`.
2. Quote latency, once the read models have taken in the holds: the same `--clients`
   ask, one after another, for the price of a day on their items (`POST /api/v1/quotes`,
   the pricing a hold does, nothing recorded), for `--seconds`: quotes/s, p50 / p99 and
   the CPU each process spends per quote.
3. Availability search latency at a fixed `--rate` (200 req/s) for `--seconds`: p50 / p99
   of `GET /api/v1/availability` over the items created above (with their bookings).
4. Applied changes per second: the same `--clients` each hold one booking, then change it
   again and again for `--seconds` (its end one day later, then back: `POST
   /api/v1/bookings/{id}/changes` with `apply`), each an atomic append of the item's
   `Released` + `Reserved` and `Booking.Changed`; changes/s and p50 / p99.

With `--extras`, stay rules and duration discounts are set first and every hold chooses
three extras (`EXTRAS`, no capacity: clients never contend on a ledger), and every quote
prices them, to compare the quote and hold latency with and without them side by side.

The service is `python -m midas.cli serve` on a fresh schema (dropped at the end).
Run: `.venv/bin/python -m bench.booking [--record]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import NamedTuple
from uuid import UUID, uuid4

import aiohttp
import asyncpg

from bench import cpu
from bench.results import publish
from midas.config import Settings
from midas.http.auth import Role, issue_access_token

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
LOADS = {"wrk": "wrk (a thread per core)", "python": "a separate Python process (aiohttp)"}
HORIZON_DAYS = 36_500
START = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0) + timedelta(days=2)
EXTRAS = [{"code": "airport_transfer"}, {"code": "delivery", "zone": "city"},
          {"code": "child_seat"}]
# The third extra of `EXTRAS` (the others are seeded) and the cars' discount tiers.
CHILD_SEAT = {"code": "child_seat", "name": "Child seat", "categories": ["car"],
              "basis": "per_day", "price": 2_500}
CAR_DISCOUNTS = [{"min_nights": 7, "percentage": "10"}]
STAY_RULES = {"minimum_stays": [{"category": "car", "season": "peak", "nights": 1}],
              "changeovers": [{"category": "yacht", "season": "high", "weekday": "saturday"}],
              "advance_notice_hours": 24, "horizon_days": 3660}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def _wait_ready(session: aiohttp.ClientSession, base: str, timeout_s: float = 60,
                      path: str = "/health") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            async with session.get(f"{base}{path}") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{base} did not start")


async def _sign_in_rows(dsn: str, schema: str, accounts: dict[Role, UUID]) -> None:
    """The auth middleware checks each token's account: record the two (as tests do)."""
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        for role, account in accounts.items():
            await conn.execute(
                "INSERT INTO auth_accounts (account_id, email, role, email_verified)"
                " VALUES ($1, $2, $3, true)",
                account, f"{account}@bench.test", role.value)
    finally:
        await conn.close()


async def _items(session: aiohttp.ClientSession, base: str, admin: dict[str, str],
                 count: int) -> list[str]:
    ids = []
    for n in range(count):
        body = {"name": f"Car {n}", "category": "car",
                "location": ("US-CA", "US-NY", "AE-DU", "US-FL")[n % 4], "rate": 100_000 + n}
        async with session.post(f"{base}/api/v1/items", json=body, headers=admin) as response:
            if response.status != 201:
                raise RuntimeError(f"registering an item: {await response.text()}")
            ids.append((await response.json())["id"])
    return ids


async def _extras_setup(session: aiohttp.ClientSession, base: str,
                        admin: dict[str, str]) -> None:
    """Stay rules, discounts and the third extra of `EXTRAS` (the others are seeded)."""
    for method, path, body in (
            ("PUT", "/api/v1/pricing/stay-rules", STAY_RULES),
            ("PUT", "/api/v1/pricing/duration-discounts/car", {"tiers": CAR_DISCOUNTS}),
            ("POST", "/api/v1/extras", CHILD_SEAT)):
        async with session.request(method, f"{base}{path}", json=body,
                                   headers=admin) as response:
            if response.status not in (200, 201):
                raise RuntimeError(f"{path}: {await response.text()}")


async def _book_load(
    session: aiohttp.ClientSession, base: str, customer: dict[str, str], items: list[str],
    clients: int, seconds: float, first_day: int = 0, extras: list[dict[str, str]] | None = None,
    path: str = "/api/v1/bookings", ok: int = 201,
) -> tuple[int, int, list[float]]:
    stop = time.monotonic() + seconds
    done, refused, latencies = 0, 0, []

    async def client(index: int) -> None:
        nonlocal done, refused
        mine = items[index::clients]
        day = 0
        while time.monotonic() < stop:
            item = mine[day % len(mine)]
            start = START + timedelta(days=first_day + 2 * (day // len(mine)))
            body = {"item_id": item, "start": start.isoformat(),
                    "end": (start + timedelta(days=1)).isoformat(),
                    **({"extras": extras} if extras else {})}
            began = time.perf_counter()
            async with session.post(f"{base}{path}", json=body,
                                    headers=customer) as response:
                await response.read()
                latencies.append((time.perf_counter() - began) * 1000)
                if response.status == ok:
                    done += 1
                else:
                    refused += 1
            day += 1

    await asyncio.gather(*[client(i) for i in range(clients)])
    return done, refused, latencies


async def _change_load(session: aiohttp.ClientSession, base: str, customer: dict[str, str],
                       items: list[str], clients: int, seconds: float
                       ) -> tuple[int, int, list[float]]:
    """Each client holds one booking far ahead, then moves its end back and forth."""
    bookings: list[tuple[str, datetime]] = []
    for index in range(clients):
        start = START + timedelta(days=5000 + 3 * index)
        body = {"item_id": items[index % len(items)], "start": start.isoformat(),
                "end": (start + timedelta(days=1)).isoformat()}
        async with session.post(f"{base}/api/v1/bookings", json=body,
                                headers=customer) as response:
            if response.status != 201:
                raise RuntimeError(f"holding for the changes: {await response.text()}")
            bookings.append(((await response.json())["id"], start))
    stop = time.monotonic() + seconds
    done, refused, latencies = 0, 0, []

    async def client(booking: str, start: datetime) -> None:
        nonlocal done, refused
        n = 0
        while time.monotonic() < stop:
            n += 1
            end = start + timedelta(days=1 + n % 2)
            began = time.perf_counter()
            async with session.post(f"{base}/api/v1/bookings/{booking}/changes", json={
                    "end": end.isoformat(), "apply": True}, headers=customer) as response:
                await response.read()
                latencies.append((time.perf_counter() - began) * 1000)
                if response.status == 200:
                    done += 1
                else:
                    refused += 1

    await asyncio.gather(*[client(b, s) for b, s in bookings])
    return done, refused, latencies


HOLDS, QUOTES = "/api/v1/bookings", "/api/v1/quotes"
OK = {HOLDS: 201, QUOTES: 200}  # the status of a request that did what was asked


class Holds(NamedTuple):
    done: int
    refused: int
    p50_ms: float
    p99_ms: float
    most_per_thread: int = 0  # requests of wrk's busiest thread (each books the next day)


async def _python_holds(session: aiohttp.ClientSession, base: str, customer: dict[str, str],
                        items: list[str], args: argparse.Namespace, path: str = HOLDS,
                        extras: list[dict[str, str]] | None = None) -> Holds:
    done, refused, latencies = await _book_load(
        session, base, customer, items, args.clients, args.seconds, first_day=1000,
        extras=extras, path=path, ok=OK[path])
    return Holds(done, refused, _percentile(latencies, 0.5), _percentile(latencies, 0.99))


# wrk's Lua: each thread books (or asks the price of), request after request, the next day
# (every other day) on its own share of the items, so no two requests conflict; it counts
# the answers that did what was asked (201 for a hold, 200 for a quote) and the rest.
_WRK_SCRIPT = """
local items = {%(items)s}
local threads, base, token = %(threads)d, %(base)d, "%(token)s"
local all, next_index = {}, 0

function setup(thread)
  thread:set("index", next_index)
  next_index = next_index + 1
  table.insert(all, thread)
end

function init(args)
  mine, n, created, refused = {}, 0, 0, 0
  for i = index + 1, #items, threads do table.insert(mine, items[i]) end
end

function request()
  local item = mine[(n %% #mine) + 1]
  local start = base + 2 * 86400 * math.floor(n / #mine)
  n = n + 1
  local body = string.format('{"item_id": "%%s", "start": "%%s", "end": "%%s"%(extras)s}', item,
    os.date("!%%Y-%%m-%%dT%%H:%%M:%%S+00:00", start),
    os.date("!%%Y-%%m-%%dT%%H:%%M:%%S+00:00", start + 86400))
  return wrk.format("POST", "%(path)s",
    {["Authorization"] = token, ["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  if status == %(ok)d then created = created + 1 else
    if refused == 0 then io.stderr:write(body .. "\\n") end
    refused = refused + 1 end
end

function done(summary, latency, requests)
  local c, r, most = 0, 0, 0
  for _, thread in ipairs(all) do
    c = c + thread:get("created")
    r = r + thread:get("refused")
    most = math.max(most, thread:get("n"))
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"created": %%d, "refused": %%d, "errors": %%d, "p50_us": %%d, "p99_us": %%d,'
    .. ' "most_per_thread": %%d}\\n',
    c, r, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), most))
end
"""


async def _wrk(args: argparse.Namespace, url: str, seconds: float, *options: str) -> str:
    """What wrk prints after loading ``url`` with ``args.clients`` connections, a thread
    per core."""
    wrk = await asyncio.create_subprocess_exec(
        "wrk", "-t", str(min(os.cpu_count() or 1, args.clients)), "-c", str(args.clients),
        "-d", f"{seconds:g}s", *options, url, stdout=asyncio.subprocess.PIPE)
    out, _ = await wrk.communicate()
    return out.decode()


def _wrk_line(out: str, prefix: str) -> str:
    line = next((row for row in out.splitlines() if row.startswith(prefix)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no {prefix!r} line: {out[-2000:]}")
    return line.removeprefix(prefix)


async def _wrk_holds(base: str, customer: dict[str, str], items: list[str],
                     args: argparse.Namespace, first_day: int = 1000,
                     path: str = HOLDS, extras: list[dict[str, str]] | None = None) -> Holds:
    """The same load as ``_book_load``, generated by wrk (C, so it leaves the cores to
    the service); its CPU counts as the load generator's once it has ended. Every
    request chooses ``extras`` when given (an empty list too)."""
    first = START + timedelta(days=first_day)
    script = _WRK_SCRIPT % {"items": ", ".join(f'"{i}"' for i in items),
                            "threads": min(os.cpu_count() or 1, args.clients),
                            "base": int(first.timestamp()), "token": customer["Authorization"],
                            "extras": ('' if extras is None
                                       else ', "extras": ' + json.dumps(extras)),
                            "path": path, "ok": OK[path]}
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write(script)
        lua.flush()
        out = await _wrk(args, base, args.seconds, "--timeout", "10s", "-s", lua.name)
    result = json.loads(_wrk_line(out, "RESULT "))
    if result["errors"]:
        raise RuntimeError(f"wrk: {result['errors']} socket errors or timeouts")
    return Holds(result["created"], result["refused"], result["p50_us"] / 1000,
                 result["p99_us"] / 1000, result["most_per_thread"])


def days_booked(holds: Holds, items: int, clients: int) -> int:
    """How far past its first day a wrk hold load booked (each thread books its items in
    turn, two days apart): a next load starting that many days later meets none of it."""
    threads = min(os.cpu_count() or 1, clients)
    return 2 * math.ceil(holds.most_per_thread / math.ceil(items / threads)) + 2


class Reference(NamedTuple):
    json_rps: float
    insert_rps: float


async def _reference(args: argparse.Namespace, schema: str) -> Reference:
    """The issue's two reference handlers (bench/reference.py), loaded by wrk as the
    holds are: the machine's speed at the time of this run."""
    port = args.port + 1
    server = subprocess.Popen(  # noqa: ASYNC220 (started once, before any load)
        [sys.executable, "-m", "bench.reference", "--port", str(port), "--dsn", args.dsn,
         "--schema", schema], stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            await _wait_ready(session, base, timeout_s=30, path="/insert")  # its table too
        rates = [float(_wrk_line(await _wrk(args, f"{base}{path}", 5), "Requests/sec:"))
                 for path in ("/json", "/insert")]
        return Reference(*rates)
    finally:
        server.terminate()
        server.wait(timeout=30)


async def _caught_up(session: aiohttp.ClientSession, base: str, timeout_s: float = 120) -> None:
    """Wait until `/ready` shows every projection at the log's head."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        async with session.get(f"{base}/ready") as response:
            body = await response.json()
        if all(p["lag"] == 0 for p in body.get("projections", [])):
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"projections still behind after {timeout_s:g} s: {body}")


async def _search_load(session: aiohttp.ClientSession, base: str, rate: float,
                       seconds: float, first: datetime = START) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0

    async def one(n: int) -> None:
        nonlocal errors
        start = first + timedelta(days=n % 30)
        params = {"category": "car", "location": ("US-CA", "US-NY")[n % 2],
                  "start": start.isoformat(), "end": (start + timedelta(days=2)).isoformat(),
                  "limit": "20"}
        began = time.perf_counter()
        try:
            async with session.get(f"{base}/api/v1/availability", params=params) as response:
                await response.read()
                if response.status != 200:
                    errors += 1
        except (aiohttp.ClientError, TimeoutError):  # counted, not fatal to a long run
            errors += 1
        latencies.append((time.perf_counter() - began) * 1000)

    tasks = []
    began = time.monotonic()
    for n in range(int(rate * seconds)):
        delay = began + n / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(n)))
    await asyncio.gather(*tasks)
    return latencies, errors


def auth_headers(settings: Settings, accounts: dict[Role, UUID]
                 ) -> tuple[dict[str, str], dict[str, str]]:
    """Fresh admin and customer authorisation headers (an access token lasts minutes: a
    load that runs longer asks again)."""
    admin, customer = (
        {"Authorization": f"Bearer {issue_access_token(settings, accounts[role], role)}"}
        for role in (Role.ADMIN, Role.CUSTOMER))
    return admin, customer


def service_env(dsn: str, schema: str) -> dict[str, str]:
    """The environment of the service under load, on `schema` of `dsn`."""
    return {**os.environ, "MIDAS_DATABASE_URL": dsn, "MIDAS_DATABASE_SCHEMA": schema,
            "MIDAS_ENVIRONMENT": "test", "MIDAS_LOG_LEVEL": "WARNING",
            "MIDAS_POOL_MAX_SIZE": "20", "MIDAS_BCRYPT_ROUNDS": "4",
            # Its holds start 1,000 days ahead and go on, every other day, for as long as
            # the load runs: beyond the default horizon.
            "MIDAS_BOOKING_HORIZON_DAYS": str(HORIZON_DAYS)}


async def run(args: argparse.Namespace) -> str:
    schema = f"bench_booking_{secrets.token_hex(4)}"
    port = args.port
    env = service_env(args.dsn, schema)
    web_env = {**env, "MIDAS_PROJECTIONS_ENABLED": "false"} if args.worker else env
    reference = await _reference(args, schema) if args.load == "wrk" else None
    server = subprocess.Popen(  # noqa: ASYNC220 (started once, before any load)
        [sys.executable, "-m", "midas.cli", "serve", "--port", str(port),
         "--workers", str(args.workers)], env=web_env,
        stdout=subprocess.DEVNULL)
    worker = subprocess.Popen(  # noqa: ASYNC220 (the read models beside the service)
        [sys.executable, "-m", "midas.cli", "worker"], env=env,
        stdout=subprocess.DEVNULL) if args.worker else None
    settings = Settings(environment="test")
    accounts = {Role.ADMIN: uuid4(), Role.CUSTOMER: uuid4()}
    admin, customer = auth_headers(settings, accounts)
    base = f"http://127.0.0.1:{port}"
    try:
        connector = aiohttp.TCPConnector(limit=max(args.clients, 64) * 4)
        async with aiohttp.ClientSession(connector=connector) as session:
            await _wait_ready(session, base)
            await _sign_in_rows(args.dsn, schema, accounts)
            items = await _items(session, base, admin, args.items)
            if args.extras:
                await _extras_setup(session, base, admin)
            chosen = EXTRAS if args.extras else None
            await _book_load(session, base, customer, items, args.clients, 1.0,  # warm-up
                             extras=chosen)
            processes = cpu.groups({"service": server.pid,
                                    "worker": worker.pid if worker else None},
                                   this="load generator")
            before = cpu.sample(processes)
            if args.load == "wrk":
                holds = await _wrk_holds(base, customer, items, args, extras=chosen)
            else:
                holds = await _python_holds(session, base, customer, items, args,
                                            extras=chosen)
            cpu_s = cpu.spent(before, cpu.sample(processes))
            # The read models take in the holds before the next load: their catch-up
            # would otherwise share the service's core with it, more after bigger holds.
            await _caught_up(session, base)
            load = _wrk_holds if args.load == "wrk" else partial(_python_holds, session)
            before = cpu.sample(processes)
            quotes = await load(base, customer, items, args, path=QUOTES, extras=chosen)
            quote_cpu_s = cpu.spent(before, cpu.sample(processes))
            search_ms, errors = await _search_load(session, base, args.rate, args.seconds)
            changes = None
            if not args.no_changes:
                changed, unchanged, change_ms = await _change_load(
                    session, base, customer, items, args.clients, args.seconds)
                changes = (changed, unchanged, change_ms)
    finally:
        stopping = time.monotonic()
        for process in (server, worker):
            if process is not None:
                process.terminate()
                try:
                    process.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=30)
        stop_s = time.monotonic() - stopping
        conn = await asyncpg.connect(args.dsn)
        try:
            version = await conn.fetchval("SHOW server_version")
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()
    lines = [
        f"## Bookings {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"- Machine: {os.cpu_count()} cores, {platform.machine()}; PostgreSQL {version};"
        f" Python {platform.python_version()}",
        f"- Service: `midas serve --workers {args.workers}`"
        + (" with projections off, plus `midas worker`" if args.worker else "")
        + f"; load from {LOADS[args.load]} over HTTP",
        f"- Command: `python -m bench.booking{' --worker' if args.worker else ''}"
        f"{' --extras' if args.extras else ''}"
        f" --load {args.load}`"
        f" ({args.seconds:g} s per measurement)",
        "",
        "| measurement | result |",
        "|---|---|",
        f"| holds/s, {args.clients} clients, {args.items} items |"
        f" {holds.done / args.seconds:.0f} ({holds.refused} refused) |",
        f"| hold latency p50 / p99 ms | {holds.p50_ms:.1f} / {holds.p99_ms:.1f} |",
        f"| CPU ms per hold: {' / '.join(cpu_s)} | "
        + " / ".join(f"{seconds * 1000 / max(holds.done, 1):.2f}" for seconds in cpu_s.values())
        + f" (together {sum(cpu_s.values()) * 1000 / max(holds.done, 1):.2f};"
        f" {os.cpu_count()} cores at that cost: at most"
        f" {os.cpu_count() * max(holds.done, 1) / max(sum(cpu_s.values()), 1e-9):.0f} holds/s) |",
        f"| quotes/s, {args.clients} clients | {quotes.done / args.seconds:.0f}"
        f" ({quotes.refused} refused); p50 / p99 ms {quotes.p50_ms:.1f} / {quotes.p99_ms:.1f} |",
        f"| CPU ms per quote: {' / '.join(quote_cpu_s)} | "
        + " / ".join(f"{seconds * 1000 / max(quotes.done, 1):.3f}"
                     for seconds in quote_cpu_s.values()) + " |",
        *([f"| machine reference, the issue's handlers under the same wrk load:"
            f" bare JSON / one INSERT | {reference.json_rps:,.0f} / {reference.insert_rps:,.0f}"
            " req/s (the issue measured about 25,000 / 4,000) |"] if reference else []),
        f"| availability search at {args.rate:g} req/s: p50 / p99 ms |"
        f" {statistics.median(search_ms):.1f} / {_percentile(search_ms, 0.99):.1f}"
        f" ({errors} errors, {len(search_ms)} requests) |",
        f"| service stop after SIGTERM, s | {stop_s:.1f} |",
        *([f"| applied changes/s, {args.clients} clients (one booking each, its end moved"
           f" back and forth) | {changes[0] / args.seconds:.0f} ({changes[1]} refused);"
           f" p50 / p99 ms {statistics.median(changes[2]):.1f} /"
           f" {_percentile(changes[2], 0.99):.1f} |"] if changes else []),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dsn", default=os.environ.get("MIDAS_BENCH_DATABASE_URL", DEFAULT_DSN))
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--workers", type=int, default=1, help="service processes")
    parser.add_argument("--worker", action="store_true",
                        help="build the read models in a `midas worker` process instead")
    parser.add_argument("--load", choices=sorted(LOADS),
                        default="wrk" if shutil.which("wrk") else "python",
                        help="the holds' load generator (default: wrk when installed)")
    parser.add_argument("--extras", action="store_true",
                        help="holds with three extras, under stay rules and discounts")
    parser.add_argument("--no-changes", action="store_true",
                        help="skip the applied-changes measurement")
    parser.add_argument("--record", action="store_true", help="append to bench/RESULTS.md")
    args = parser.parse_args()
    if args.items < args.clients:
        parser.error("--items must be at least --clients: each client books its own share")
    report = asyncio.run(run(args))
    publish(report, record=args.record)


if __name__ == "__main__":
    main()
