"""Audit benchmark: hash-chain verification and NDJSON export over a large log.

Loads a synthetic log (COPY, hashes chained exactly as the event store does) into a fresh
schema ``bench_audit_<random>``, and at growing sizes (default 250,000, 500,000 and
1,000,000 events) runs, each in a fresh child process:

* ``verify_chain`` over the whole log (what ``midas audit verify`` runs),
* ``export`` of the whole log as NDJSON into a counting sink (what ``midas audit export``
  and ``GET /api/v1/audit/export`` run),

reporting events/s and the child's peak RSS before and after the work, so a peak that
stays flat as the log grows shows nothing is held per event. The schema is dropped at
the end, even on failure.

Run: ``.venv/bin/python -m bench.audit [--sizes 250000,500000,1000000] [--record]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import secrets
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context
from uuid import UUID, uuid4

import asyncpg

from bench.results import publish
from midas.config import ROOT
from midas.eventstore import codec
from midas.eventstore.database import Database
from midas.eventstore.migrate import migrate

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
GOAL_VERIFY = 100_000
CHUNK = 50_000


async def load(
    conn: asyncpg.Connection, streams: list[UUID], start: int, end: int, previous: bytes
) -> bytes:
    """Append positions start..end (inclusive) with a valid chain; return the last hash."""
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for chunk in range(start, end + 1, CHUNK):
        rows = []
        for position in range(chunk, min(chunk + CHUNK, end + 1)):
            stream = streams[position % len(streams)]
            version = position // len(streams) + 1
            data = {"n": position, "amount": position * 7 % 100_000, "note": "rental event"}
            metadata = {"actor": f"user-{position % 97}", "correlation_id": f"c{position // 3}",
                        "request_id": f"r{position}"}
            data_text, meta_text = codec.canonical(data), codec.canonical(metadata)
            recorded = base + timedelta(milliseconds=position)
            previous = codec.event_hash(previous, position, stream, version, "Bench.Happened",
                                        data_text, meta_text, recorded)
            rows.append((position, stream, version, "Bench.Happened", data_text.decode(),
                         meta_text.decode(), recorded, previous))
        await conn.copy_records_to_table(
            "events", records=rows,
            columns=["position", "stream_id", "version", "type", "data", "metadata",
                     "recorded_at", "hash"])
    return previous


def measure(dsn: str, schema: str, kind: str) -> tuple[float, int, int, int]:
    """In a child process: (seconds, events, peak RSS KiB before, peak RSS KiB after)."""
    return asyncio.run(_measure(dsn, schema, kind))


async def _measure(dsn: str, schema: str, kind: str) -> tuple[float, int, int, int]:
    from midas.audit.log import LogFilter
    from midas.audit.transfer import export
    from midas.eventstore.chain import verify_chain

    db = Database(dsn, schema, statement_timeout_s=600)
    await db.open()
    try:
        async with db.acquire() as conn:
            await conn.fetchval("SELECT 1")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        if kind == "verify":
            async with db.acquire() as conn:
                report = await verify_chain(conn)
            assert report.ok, report
            count = report.checked
        else:
            written = 0

            async def sink(chunk: bytes) -> None:
                nonlocal written
                written += len(chunk)

            count = await export(db, LogFilter(), sink)
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return elapsed, count, before, after
    finally:
        await db.close()


def in_child(dsn: str, schema: str, kind: str) -> tuple[float, int, int, int]:
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(measure, dsn, schema, kind).result()


async def run(dsn: str, sizes: list[int]) -> list[dict[str, float]]:
    schema = f"bench_audit_{secrets.token_hex(4)}"
    db = Database(dsn, schema, statement_timeout_s=600)
    await migrate(db, ROOT / "migrations")
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    results = []
    try:
        loaded, previous = 0, codec.GENESIS_HASH
        streams = [uuid4() for _ in range(1000)]
        for size in sizes:
            started = time.perf_counter()
            previous = await load(conn, streams, loaded + 1, size, previous)
            print(f"loaded {size - loaded:,} events in {time.perf_counter() - started:.1f} s",
                  file=sys.stderr)
            loaded = size
            await conn.execute("VACUUM ANALYZE events")
            row: dict[str, float] = {"size": size}
            for kind in ("verify", "export"):
                elapsed, count, before, after = await asyncio.to_thread(
                    in_child, dsn, schema, kind)
                assert count == size, (kind, count, size)
                row[f"{kind}_rate"] = count / elapsed
                row[f"{kind}_rss_before"] = before / 1024
                row[f"{kind}_rss_after"] = after / 1024
                print(f"{kind} {size:,}: {count / elapsed:,.0f} events/s, peak RSS"
                      f" {before / 1024:.0f} -> {after / 1024:.0f} MiB", file=sys.stderr)
            results.append(row)
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
    return results


def report(results: list[dict[str, float]], pg_version: str) -> str:
    lines = [
        f"## Audit {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"- Machine: {os.cpu_count()} cores, {platform.machine()}; PostgreSQL {pg_version};"
        f" Python {platform.python_version()}",
        "- Command: `python -m bench.audit`; each measurement in a fresh child process",
        "",
        "| events in log | verify events/s | verify peak RSS MiB (before -> after) |"
        " export events/s | export peak RSS MiB (before -> after) |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {int(r['size']):,} | {r['verify_rate']:,.0f} |"
            f" {r['verify_rss_before']:.0f} -> {r['verify_rss_after']:.0f} |"
            f" {r['export_rate']:,.0f} |"
            f" {r['export_rss_before']:.0f} -> {r['export_rss_after']:.0f} |")
    biggest = results[-1]
    growth = max(r["verify_rss_after"] for r in results) - min(
        r["verify_rss_after"] for r in results)
    met = "met" if biggest["verify_rate"] >= GOAL_VERIFY else "MISSED"
    lines += [
        "",
        f"- Goal: verification ≥ {GOAL_VERIFY:,} events/s at {int(biggest['size']):,} events:"
        f" {biggest['verify_rate']:,.0f}/s — {met}",
        f"- Peak memory flat as the log grows: verify peak varies by {growth:.0f} MiB across"
        f" sizes",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=os.environ.get("MIDAS_BENCH_DATABASE_URL", DEFAULT_DSN))
    parser.add_argument("--sizes", default="250000,500000,1000000")
    parser.add_argument("--record", action="store_true", help="Append to bench/RESULTS.md.")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))

    async def go() -> tuple[list[dict[str, float]], str]:
        conn = await asyncpg.connect(args.dsn)
        try:
            version = (await conn.fetchval("SHOW server_version")).split()[0]
        finally:
            await conn.close()
        return await run(args.dsn, sizes), version

    results, version = asyncio.run(go())
    text = report(results, version)
    publish(text, record=args.record)


if __name__ == "__main__":
    main()
