"""Console benchmark: the Today page and a 200 items x 31 days timeline, rendered by the
service over a log of about 1,000,000 events.

The log is the synthetic business of ``bench/projections.py`` (``generate_history``),
ending about now, plus a registration and a maintenance window for each of its items,
appended in large batches. The read models the console's pages read (inventory,
availability, bookings, payments, kpis) are built by ``catch_up_in_processes``; then
``python -m midas.cli serve`` starts on that schema (read models and background workers
off, so nothing else competes) and this separate process asks it, over HTTP with an admin's
bearer token, for the pages' fragments: the HTML the browser puts in place, rendered on the
server from the public API's answers (several API calls each, over loopback). It reports
p50 / p95 / max of sequential requests after a warm-up.

Run: ``.venv/bin/python -m bench.console [--events 1000000] [--runs 30] [--record]``.
The schema ``bench_console_<random>`` is dropped at the end, even on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import secrets
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import aiohttp
import asyncpg

from bench.projections import EVENTS_PER_BOOKING, drop, generate_history
from bench.results import publish
from midas.domain.item_events import ITEM_MAINTENANCE_SCHEDULED, ITEM_REGISTERED
from midas.eventstore import NewEvent, StreamAppend

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
READ_MODELS = ("inventory", "availability", "bookings", "payments", "kpis")
GOAL_TODAY_MS, GOAL_TIMELINE_MS = 300.0, 500.0
HISTORY_DAYS = 245  # how long the generator's history lasts at 60 bookings per item
TIMELINE_ITEMS, TIMELINE_DAYS = 200, 31


def _item_appends(items: list[tuple[UUID, str, str, str, str]], now: datetime
                  ) -> list[list[StreamAppend]]:
    rnd = random.Random(11)
    batches, batch = [], []
    for n, (item, category, location, _zone, currency) in enumerate(items):
        start = now + timedelta(days=rnd.randint(-20, 20), hours=rnd.randint(0, 23))
        batch.append(StreamAppend(item, 0, [
            NewEvent(ITEM_REGISTERED, {
                "name": f"{category.title()} {n:05d}", "category": category,
                "location": location, "rate": rnd.randint(500, 20_000) * 100,
                "rate_unit": "day", "currency": currency, "buffer_minutes": 60,
                "minimum_minutes": 240, "attributes": {}}),
            NewEvent(ITEM_MAINTENANCE_SCHEDULED, {
                "window_id": str(uuid4()), "start": start.isoformat(),
                "end": (start + timedelta(hours=rnd.randint(4, 48))).isoformat(),
                "note": "service"})]))
        if len(batch) >= 400:
            batches.append(batch)
            batch = []
    if batch:
        batches.append(batch)
    return batches


async def load(dsn: str, schema: str, events: int, now: datetime) -> tuple[int, float]:
    from midas.config import ROOT
    from midas.eventstore import Database, EventStore
    from midas.eventstore.migrate import migrate

    db = Database(dsn, schema, statement_timeout_s=900, max_size=4)
    await migrate(db, ROOT / "migrations")
    await db.open()
    store = EventStore(db, max_batch=200)
    store.start()
    bookings = int(events / EVENTS_PER_BOOKING)
    history, appends = generate_history(
        bookings, customers=max(bookings // 8, 10), items=max(bookings // 60, 10),
        per_append=400, start=now - timedelta(days=HISTORY_DAYS))
    started = time.perf_counter()
    pending: list[Any] = []
    for batch in appends:
        pending.append(asyncio.ensure_future(store.append(batch)))
        if len(pending) >= 8:
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)
    for batch in _item_appends(history.items, now):
        await store.append(batch)
    elapsed = time.perf_counter() - started
    await store.close()
    async with db.acquire() as conn:
        count = await conn.fetchval("SELECT count(*) FROM events")
    await db.close()
    return count, elapsed


async def build_read_models(dsn: str, schema: str) -> float:
    import projections
    from midas.eventstore import Database
    from midas.rebuild import catch_up_in_processes

    db = Database(dsn, schema, statement_timeout_s=900, max_size=8)
    await db.open()
    try:
        chosen = [p for p in projections.all_projectors() if p.name in READ_MODELS]
        started = time.perf_counter()
        await catch_up_in_processes(db, chosen, processes=2)
        elapsed = time.perf_counter() - started
        async with db.acquire() as conn:
            await conn.execute("VACUUM ANALYZE")
        return elapsed
    finally:
        await db.close()


async def _admin(dsn: str, schema: str) -> UUID:
    account = uuid4()
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        await conn.execute(
            "INSERT INTO auth_accounts (account_id, email, role, email_verified)"
            " VALUES ($1, $2, 'admin', true)", account, f"{account}@bench.test")
    finally:
        await conn.close()
    return account


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _wait_ready(session: aiohttp.ClientSession, base: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            async with session.get(f"{base}/health") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.3)
    raise RuntimeError("the service did not start")


async def _timed(session: aiohttp.ClientSession, url: str, headers: dict[str, str],
                 runs: int, check: Any) -> list[float]:
    for _ in range(3):  # warm-up: connections, prepared statements, template cache
        async with session.get(url, headers=headers) as r:
            check(r.status, await r.text())
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        async with session.get(url, headers=headers) as r:
            body = await r.text()
        times.append((time.perf_counter() - t0) * 1000)
        check(r.status, body)
    return sorted(times)


def _summary(times: list[float]) -> str:
    p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
    return f"{times[len(times) // 2]:.0f} / {p95:.0f} / {times[-1]:.0f}"


async def measure(dsn: str, schema: str, runs: int, now: datetime) -> dict[str, Any]:
    from midas.config import Settings
    from midas.http.auth import Role, issue_access_token

    port = _free_port()
    env = {**os.environ, "MIDAS_DATABASE_URL": dsn, "MIDAS_DATABASE_SCHEMA": schema,
           "MIDAS_ENVIRONMENT": "test", "MIDAS_LOG_LEVEL": "WARNING",
           "MIDAS_PROJECTIONS_ENABLED": "false", "MIDAS_SCHEDULER_ENABLED": "false",
           "MIDAS_EMAIL_DELIVERY_ENABLED": "false", "MIDAS_CALENDAR_POLLER_ENABLED": "false"}
    server = subprocess.Popen(  # noqa: ASYNC220 (started once, before any request)
        [sys.executable, "-m", "midas.cli", "serve", "--port", str(port)], env=env,
        stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            await _wait_ready(session, base)
            account = await _admin(dsn, schema)
            token = issue_access_token(Settings(environment="test"), account, Role.ADMIN)
            headers = {"Authorization": f"Bearer {token}"}

            def today_ok(status: int, body: str) -> None:
                if status != 200 or 'data-figure="bookings.completed"' not in body:
                    raise RuntimeError(f"Today answered {status}: {body[:300]}")

            rows: list[int] = []

            def timeline_ok(status: int, body: str) -> None:
                if status != 200:
                    raise RuntimeError(f"the timeline answered {status}: {body[:300]}")
                rows.append(body.count('class="item"'))

            start = (now - timedelta(days=TIMELINE_DAYS)).date().isoformat()
            today = await _timed(session, f"{base}/console/fragments/today", headers, runs,
                                 today_ok)
            timeline = await _timed(
                session, f"{base}/console/fragments/timeline?zoom=month&start={start}",
                headers, runs, timeline_ok)
            parts = {}
            for name, path in (
                    ("workload", "/api/v1/admin/workload"),
                    ("dashboard", "/api/v1/admin/dashboard"),
                    ("alerts", "/api/v1/admin/errors?limit=1"),
                    ("trends", "/api/v1/admin/trends?days=90&window=30")):
                parts[name] = await _timed(session, base + path, headers, max(runs // 3, 5),
                                           lambda s, b: None)
            end = (now - timedelta(days=TIMELINE_DAYS) + timedelta(days=TIMELINE_DAYS)).date()
            api_timeline = await _timed(
                session, f"{base}/api/v1/fleet/timeline?limit={TIMELINE_ITEMS}"
                f"&from={start}T00:00:00Z&to={end.isoformat()}T00:00:00Z", headers, runs,
                lambda s, b: None)
            async with session.get(
                    f"{base}/console/fragments/timeline?zoom=month&start={start}",
                    headers=headers) as r:
                html = await r.text()
            bars = html.count('class="bar state-')
        conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
        try:
            sizes = {t: await conn.fetchval(f"SELECT count(*) FROM {t}")
                     for t in ("inv_items", "bk_bookings", "avail_occupations", "kpi_bookings")}
            version = await conn.fetchval("SHOW server_version")
        finally:
            await conn.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {"today": today, "timeline": timeline, "api_timeline": api_timeline, "parts": parts,
            "rows": max(rows), "bars": bars, "sizes": sizes, "pg": version}


async def _count(dsn: str, schema: str) -> int:
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        return int(await conn.fetchval("SELECT count(*) FROM events"))
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dsn", default=os.environ.get("MIDAS_BENCH_DATABASE_URL",
                                                        DEFAULT_DSN))
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--record", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the schema (to --reuse)")
    parser.add_argument("--reuse", default=None, help="measure a kept schema again")
    args = parser.parse_args(argv)
    schema = args.reuse or f"bench_console_{secrets.token_hex(4)}"
    now = datetime.now(UTC)
    try:
        if args.reuse:
            count, load_s, build_s = asyncio.run(_count(args.dsn, schema)), 0.0, 0.0
        else:
            count, load_s = asyncio.run(load(args.dsn, schema, args.events, now))
            print(f"loaded {count:,} events in {load_s:.0f} s", flush=True)
            build_s = asyncio.run(build_read_models(args.dsn, schema))
            print(f"built {', '.join(READ_MODELS)} in {build_s:.0f} s", flush=True)
        r = asyncio.run(measure(args.dsn, schema, args.runs, now))
    finally:
        if args.keep:
            print(f"kept schema {schema}")
        else:
            asyncio.run(drop(args.dsn, schema))
    today_p95 = r["today"][int(0.95 * len(r["today"]))]
    timeline_p95 = r["timeline"][int(0.95 * len(r["timeline"]))]
    lines = [
        f"## Console {datetime.now(UTC):%Y-%m-%d %H:%M} UTC", "",
        f"- Machine: {os.cpu_count()} cores, {platform.machine()}, shared with other work"
        f" while measured (timings vary about 2x run to run); Python"
        f" {platform.python_version()}, PostgreSQL {r['pg']}",
        f"- Command: `python -m bench.console --events {args.events} --runs {args.runs}`",
        f"- Log: {count:,} events (loaded in {load_s:.0f} s); read models"
        f" {', '.join(READ_MODELS)} built in {build_s:.0f} s; rows: "
        + ", ".join(f"{k} {v:,}" for k, v in r["sizes"].items()),
        "- Measured from a separate process over HTTP, with an admin's token, sequential"
        " requests after 3 warm-ups; the service renders each fragment from its own public"
        " API's answers (loopback HTTP).", "",
        "| page (server-rendered fragment) | p50 / p95 / max ms | goal |", "|---|---|---|",
        f"| Today (4 API reads: workload, dashboard, alerts, trends) | {_summary(r['today'])}"
        f" | p95 < {GOAL_TODAY_MS:.0f}:"
        f" {'met' if today_p95 < GOAL_TODAY_MS else 'MISSED'} |",
        *(f"| its API read alone, `{name}` | {_summary(times)} | |"
          for name, times in r["parts"].items()),
        f"| Timeline, {r['rows']} items x {TIMELINE_DAYS} days ({r['bars']} bars) |"
        f" {_summary(r['timeline'])} | p95 < {GOAL_TIMELINE_MS:.0f}:"
        f" {'met' if timeline_p95 < GOAL_TIMELINE_MS else 'MISSED'} |",
        f"| its API read alone, `GET /api/v1/fleet/timeline` | {_summary(r['api_timeline'])}"
        " | |", "",
    ]
    publish("\n".join(lines), record=args.record)


if __name__ == "__main__":
    main()
