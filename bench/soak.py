"""Soak: bench/booking's load, minute after minute, to see whether anything grows.

One `midas serve` (projections off) and one `midas worker` on a fresh schema; wrk's
`--clients` (32) connections book, every other day, on `--items` (200) items, as
bench/booking does. Each minute: the holds for `--hold-seconds` (50), then the
projection lag, a `VACUUM ANALYZE` of the schema's tables (what autovacuum does in
production; this machine's PostgreSQL may run without it), then the availability search
at `--rate` (200) req/s for `--search-seconds` (5). Per minute it reports holds/s,
p50/p99, CPU ms per hold of the service, the worker and PostgreSQL (the backends
serving those two), the RSS of each, the schema's and the largest tables' sizes, the
projection lag and the search's p99. At the end: bytes per hold of each table.

Each minute's holds start after the days the last one booked, so that none is refused;
then the service's clock (`POST /api/v1/admin/clock`) moves forward by as many days, as
time would: each item carries about a minute's worth of future bookings, its past cut
off, as an item in production carries its bookings up to the horizon, not all it ever
had. (`--fixed-clock` keeps the clock: the items' future then grows all along, the
service's booking horizon raised for it.) The scheduler is off in both processes, so the
holds never expire (each would add an expiry command); the worker still decides and
delivers the emails (to the local mail drop), reminders included as the clock passes
each booking's eve. The search asks for the month after the clock's day.

`--profile 1,10`: the service runs under bench/profiled.py (cProfile and a census of its
heap on signals); the holds of those minutes are profiled and the heap counted at their
end, under `--profile-dir`. Compare them with `python -m bench.soak --compare DIR`.

Run: `.venv/bin/python -m bench.soak [--minutes 10] [--record]` (wrk needed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import platform
import pstats
import secrets
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import aiohttp
import asyncpg
import psutil

from bench import cpu
from bench.booking import (
    DEFAULT_DSN,
    HORIZON_DAYS,
    START,
    _items,
    _percentile,
    _search_load,
    _sign_in_rows,
    _wait_ready,
    _wrk_holds,
    auth_headers,
    days_booked,
)
from bench.results import publish
from midas.config import Settings
from midas.http.auth import Role

MB = 1024 * 1024
FIRST_DAY = 2  # days after the clock's now: the first minute's holds
DAY_S = 24 * 3600


@dataclass
class Minute:
    number: int
    holds_per_s: float
    p50_ms: float
    p99_ms: float
    refused: int
    cpu_ms: dict[str, float]
    rss_mb: dict[str, float]
    schema_mb: float
    tables_mb: dict[str, float]
    lag_events: int
    catch_up_s: float
    vacuum_s: float
    search_alone_ms: float
    search_p99_ms: float
    search_errors: int


@dataclass
class Soak:
    minutes: list[Minute] = field(default_factory=list)
    holds: int = 0
    sizes_before: dict[str, int] = field(default_factory=dict)
    sizes_after: dict[str, int] = field(default_factory=dict)


def _tree(pid: int) -> list[psutil.Process]:
    try:
        parent = psutil.Process(pid)
        return [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _database_ports(pids: Iterable[int]) -> set[int]:
    """The local ports of these processes' connections to PostgreSQL."""
    ports = set()
    for pid in pids:
        for process in _tree(pid):
            with contextlib.suppress(psutil.Error):
                for conn in process.net_connections(kind="tcp"):
                    if conn.raddr and conn.raddr.port == 5432:
                        ports.add(conn.laddr.port)
    return ports


async def _backends(conn: asyncpg.Connection, pids: Iterable[int]) -> list[int]:
    """PostgreSQL's backends serving these processes (by their connections' ports)."""
    ports = sorted(_database_ports(pids))
    rows = await conn.fetch(
        "SELECT pid FROM pg_stat_activity WHERE client_port = ANY($1::int[])", ports)
    return [row["pid"] for row in rows]


def _rss_mb(processes: Iterable[psutil.Process]) -> float:
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            total += process.memory_info().rss
    return total / MB


def _backends_mb(pids: Iterable[int]) -> float:
    """What PostgreSQL's backends hold privately (USS; RSS counts shared buffers too)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            try:
                total += process.memory_full_info().uss
            except psutil.AccessDenied:
                total += process.memory_info().rss
    return total / MB


async def _table_sizes(conn: asyncpg.Connection, schema: str) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT c.relname, pg_total_relation_size(c.oid) AS bytes FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY bytes DESC", schema)
    return {row["relname"]: row["bytes"] for row in rows}


async def _vacuum(conn: asyncpg.Connection, schema: str) -> float:
    """VACUUM ANALYZE of the schema's tables only (the database is shared)."""
    tables = await _table_sizes(conn, schema)
    began = time.monotonic()
    names = ", ".join(f'"{schema}"."{name}"' for name in tables)
    await conn.execute(f"VACUUM (ANALYZE) {names}")
    return time.monotonic() - began


async def _projection_lag(conn: asyncpg.Connection, timeout_s: float = 60
                          ) -> tuple[int, float]:
    """How many events the slowest read model is behind now, and how long it takes to
    catch up with the head as it is now."""
    head = await conn.fetchval("SELECT coalesce(max(position), 0) FROM events")
    slowest = await conn.fetchval(
        "SELECT coalesce(min(position), 0) FROM projection_checkpoints")
    began = time.monotonic()
    while time.monotonic() - began < timeout_s:
        if await conn.fetchval(
                "SELECT coalesce(min(position), 0) FROM projection_checkpoints") >= head:
            break
        await asyncio.sleep(0.1)
    return head - slowest, time.monotonic() - began


async def _advance_clock(session: aiohttp.ClientSession, base: str,
                         admin: dict[str, str], days: int) -> None:
    """Move every process's clock forward by ``days`` (a year at most per request)."""
    left = days * DAY_S
    while left > 0:
        step = min(left, 365 * DAY_S)
        async with session.post(f"{base}/api/v1/admin/clock", json={"advance_s": step},
                                headers=admin) as response:
            if response.status != 200:
                raise RuntimeError(f"moving the clock: {await response.text()}")
        left -= step


def _command(profile: bool) -> list[str]:
    return [sys.executable, "-m", "bench.profiled" if profile else "midas.cli"]


async def run(args: argparse.Namespace) -> tuple[Soak, str]:
    schema = f"bench_soak_{secrets.token_hex(4)}"
    env = {**os.environ, "MIDAS_DATABASE_URL": args.dsn, "MIDAS_DATABASE_SCHEMA": schema,
           "MIDAS_ENVIRONMENT": "test", "MIDAS_LOG_LEVEL": "WARNING",
           "MIDAS_POOL_MAX_SIZE": "20", "MIDAS_BCRYPT_ROUNDS": "4",
           "MIDAS_BOOKING_HORIZON_DAYS": str(HORIZON_DAYS), "MIDAS_SCHEDULER_ENABLED": "false",
           "MIDAS_PROFILE_DIR": str(args.profile_dir)}
    profiled = set(args.profile)
    if profiled:
        args.profile_dir.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen(  # noqa: ASYNC220 (started once, before any load)
        [*_command(bool(profiled)), "serve", "--port", str(args.port)],
        env={**env, "MIDAS_PROJECTIONS_ENABLED": "false"}, stdout=subprocess.DEVNULL)
    worker = subprocess.Popen(  # noqa: ASYNC220 (the read models beside the service)
        [sys.executable, "-m", "midas.cli", "worker"], env=env, stdout=subprocess.DEVNULL)
    settings = Settings(environment="test")
    accounts = {Role.ADMIN: uuid4(), Role.CUSTOMER: uuid4()}
    admin, customer = auth_headers(settings, accounts)
    base = f"http://127.0.0.1:{args.port}"
    soak = Soak()
    conn: asyncpg.Connection | None = None
    try:
        connector = aiohttp.TCPConnector(limit=max(args.clients, 64) * 4)
        async with aiohttp.ClientSession(connector=connector) as session:
            await _wait_ready(session, base)
            await _sign_in_rows(args.dsn, schema, accounts)
            conn = await asyncpg.connect(args.dsn, server_settings={"search_path": schema})
            items = await _items(session, base, admin, args.items)
            soak.sizes_before = await _table_sizes(conn, schema)
            first_day, clock_days = FIRST_DAY, 0
            for number in range(1, args.minutes + 1):
                admin, customer = auth_headers(settings, accounts)
                pids = {"service": server.pid, "worker": worker.pid}
                backends = await _backends(conn, pids.values())
                known = backends
                groups: cpu.Groups = {
                    "service": lambda stats: [p.pid for p in _tree(server.pid)],
                    "worker": lambda stats: [p.pid for p in _tree(worker.pid)],
                    "PostgreSQL": lambda stats, known=known: known,
                }
                if number in profiled:
                    os.kill(server.pid, signal.SIGUSR1)
                before = cpu.sample(groups)
                args.seconds = args.hold_seconds
                holds = await _wrk_holds(base, customer, items, args, first_day=first_day)
                known[:] = sorted({*known, *await _backends(conn, pids.values())})
                spent = cpu.spent(before, cpu.sample(groups))
                if number in profiled:
                    os.kill(server.pid, signal.SIGUSR2)
                soak.holds += holds.done
                days = days_booked(holds, args.items, args.clients)
                first_day += days
                if not args.fixed_clock:
                    await _advance_clock(session, base, admin, days)
                    clock_days += days
                lag, catch_up = await _projection_lag(conn)
                vacuum_s = await _vacuum(conn, schema)
                sizes = await _table_sizes(conn, schema)
                alone_ms, _ = await _search_load(  # one at a time: each one's own cost
                    session, base, 20, 1, first=START + timedelta(days=clock_days))
                search_ms, errors = await _search_load(
                    session, base, args.rate, args.search_seconds,
                    first=START + timedelta(days=clock_days))
                minute = Minute(
                    number, holds.done / args.hold_seconds, holds.p50_ms, holds.p99_ms,
                    holds.refused,
                    {label: s * 1000 / max(holds.done, 1) for label, s in spent.items()},
                    {"service": _rss_mb(_tree(server.pid)),
                     "worker": _rss_mb(_tree(worker.pid)),
                     "PostgreSQL": _backends_mb(known)},
                    sum(sizes.values()) / MB,
                    {name: size / MB for name, size in list(sizes.items())[:3]},
                    lag, catch_up, vacuum_s, statistics.median(alone_ms),
                    _percentile(search_ms, 0.99), errors)
                soak.minutes.append(minute)
                print(_row(minute), flush=True)
            soak.sizes_after = await _table_sizes(conn, schema)
            version = await conn.fetchval("SHOW server_version")
    finally:
        for process in (server, worker):
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:  # an overloaded machine: stop it anyway
                process.kill()
                process.wait()
        if conn is not None:
            await conn.close()
        if not args.keep:
            drop = await asyncpg.connect(args.dsn)
            try:
                await drop.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await drop.close()
    return soak, _report(args, soak, version)


HEADER = ("| minute | holds/s | p50 / p99 ms | CPU ms per hold: service / worker / PostgreSQL"
          " | RSS MB: service / worker / PostgreSQL | schema MB (largest tables) |"
          " projection lag: events, catch-up s | vacuum s | search alone p50 ms |"
          " search p99 ms at the rate |")


def _row(m: Minute) -> str:
    tables = ", ".join(f"{name} {size:.0f}" for name, size in m.tables_mb.items())
    return (f"| {m.number} | {m.holds_per_s:,.0f}"
            + (f" ({m.refused} refused)" if m.refused else "")
            + f" | {m.p50_ms:.1f} / {m.p99_ms:.0f}"
            f" | {' / '.join(f'{v:.2f}' for v in m.cpu_ms.values())}"
            f" | {' / '.join(f'{v:.0f}' for v in m.rss_mb.values())}"
            f" | {m.schema_mb:.0f} ({tables}) | {m.lag_events:,}, {m.catch_up_s:.1f}"
            f" | {m.vacuum_s:.1f} | {m.search_alone_ms:.1f} | {m.search_p99_ms:.1f}"
            + (f" ({m.search_errors} errors)" if m.search_errors else "") + " |")


def _report(args: argparse.Namespace, soak: Soak, version: str) -> str:
    per_hold = sorted(
        ((name, (size - soak.sizes_before.get(name, 0)) / max(soak.holds, 1))
         for name, size in soak.sizes_after.items()), key=lambda row: -row[1])
    grown = [f"{name} {value:,.0f}" for name, value in per_hold
             if value * soak.holds >= 64 * 1024]  # more than a vacuum's maps
    lines = [
        f"## Soak {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {args.minutes} minutes",
        "",
        f"- Machine: {os.cpu_count()} cores, {platform.machine()},"
        f" {psutil.virtual_memory().total / 1024**3:.0f} GB;"
        f" PostgreSQL {version}; Python {platform.python_version()}",
        f"- Command: `python -m bench.soak --minutes {args.minutes}`: `midas serve` (projections"
        f" off) and `midas worker`; wrk, {args.clients} connections, {args.items} items;"
        f" each minute {args.hold_seconds:g} s of holds, the projection lag, VACUUM ANALYZE,"
        f" {args.search_seconds:g} s of search at {args.rate:g} req/s; "
        + ("the clock left alone" if args.fixed_clock else
           "then the service's clock moved on by the days booked (holds never expire:"
           " the scheduler is off)")
        + (f"; profiled minutes {sorted(args.profile)} (slower)" if args.profile else ""),
        f"- Holds: {soak.holds:,}, about {soak.holds / args.items:,.0f} per item",
        "",
        HEADER,
        "|---|---|---|---|---|---|---|---|---|---|",
        *(_row(m) for m in soak.minutes),
        "",
        "Bytes per hold by table (growth over the run / holds): " + "; ".join(grown) + ".",
        "",
    ]
    return "\n".join(lines)


def compare(folder: Path, top: int = 25) -> str:
    """The profiles and heaps that --profile wrote: the first against the last."""
    profiles = sorted(folder.glob("profile-*.prof"), key=lambda p: int(p.stem.split("-")[1]))
    heaps = sorted(folder.glob("heap-*.json"), key=lambda p: int(p.stem.split("-")[1]))
    out = []
    for path in (profiles[0], profiles[-1]):
        stream = io.StringIO()
        out.append(f"### {path.name}")
        pstats.Stats(str(path), stream=stream).sort_stats("tottime").print_stats(top)
        out.append(stream.getvalue())
    first, last = (json.loads(path.read_text()) for path in (heaps[0], heaps[-1]))
    out.append(f"### heap census {heaps[0].name} -> {heaps[-1].name}:"
               f" gc stats {first['gc_stats']} -> {last['gc_stats']}")
    grown = sorted(
        ((name, count - first["types"].get(name, [0, 0])[0],
          size - first["types"].get(name, [0, 0])[1])
         for name, (count, size) in last["types"].items()), key=lambda row: -row[2])
    out.extend(f"{bytes_ / 1024:+,.0f} KiB {count:+,} {name}"
               for name, count, bytes_ in grown[:top])
    return "\n".join(out)


def _minutes_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", default=os.environ.get("MIDAS_BENCH_DATABASE_URL", DEFAULT_DSN))
    parser.add_argument("--port", type=int, default=18180)
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--hold-seconds", type=float, default=50)
    parser.add_argument("--search-seconds", type=float, default=5)
    parser.add_argument("--profile", type=_minutes_list, default=[],
                        help="minutes to profile, e.g. 1,10")
    parser.add_argument("--profile-dir", type=Path, default=Path("soak-profile"))
    parser.add_argument("--compare", type=Path, help="print the comparison of a profiled run")
    parser.add_argument("--fixed-clock", action="store_true",
                        help="leave the service's clock alone: the items' future grows")
    parser.add_argument("--keep", action="store_true", help="keep the schema at the end")
    parser.add_argument("--record", action="store_true", help="append to bench/RESULTS.md")
    args = parser.parse_args()
    if args.compare:
        print(compare(args.compare))
        return
    _, report = asyncio.run(run(args))
    publish(report, record=args.record)


if __name__ == "__main__":
    main()
