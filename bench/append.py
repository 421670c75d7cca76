"""Append throughput and catch-up read benchmark.

Compares, on the same PostgreSQL database and in the same run:

* Midas's ``EventStore`` (group commit, gap-free positions, hash chain), driven by
  N asyncio tasks sharing one store;
* the ``eventsourcing`` library's ``PostgresApplicationRecorder`` (table lock per
  insert), driven by N threads;
* a baseline of plain asyncpg INSERTs with no lock and no position, N tasks on a
  pool of N connections.

Every append is one event to a stream its appender owns, with the right expected
version. Then it loads ``--catchup-events`` events in big appends and times reading
them back with ``EventStore.read_all``. Everything lives in fresh schemas that are
dropped at the end.

Run: ``.venv/bin/python -m bench.append [--seconds 5] [--record]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import orjson

from bench.results import RESULTS
from midas.config import ROOT
from midas.eventstore.chain import verify_chain
from midas.eventstore.database import Database
from midas.eventstore.migrate import migrate
from midas.eventstore.store import EventStore, NewEvent, StreamAppend

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
RESULTS_HEADER = """\
# Benchmark results

How to run each benchmark: [README.md](README.md). Recorded runs are appended below.
"""

EVENTS_PER_STREAM = 20  # an appender moves on to a new stream after this many events
EVENT_TYPE = "BenchEvent"
LIB_TOPIC = "bench.append:BenchEvent"

# Goals from the issue.
GOAL_RATIO_VS_LIBRARY = 8.0
GOAL_ABOVE_UNSERIALISED = 4_500.0
GOAL_CATCHUP = 100_000.0


def payload(appender: int, n: int) -> dict[str, Any]:
    return {"appender": appender, "n": n, "sku": f"item-{n % 97}", "qty": n % 7 + 1}


class Streams:
    """The streams one appender owns: the next (stream, expected version)."""

    def __init__(self) -> None:
        self.stream_id: UUID = uuid4()
        self.version = 0

    def advance(self) -> None:
        self.version += 1
        if self.version >= EVENTS_PER_STREAM:
            self.stream_id, self.version = uuid4(), 0


@dataclass
class Measurement:
    events: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    commits: int | None = None  # Midas: transactions committed during the window

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def latency_ms(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


class _Window:
    """Shared by the workers of one measurement: counts appends done inside it."""

    def __init__(self, n: int) -> None:
        self.counts = [0] * n  # one slot per worker: no shared read-modify-write
        self.latencies: list[list[float]] = [[] for _ in range(n)]
        self.measuring = False
        self.stopping = False

    def done(self, worker: int, started: float) -> None:
        if self.measuring:
            self.counts[worker] += 1
            self.latencies[worker].append(time.perf_counter() - started)

    def result(self, seconds: float) -> Measurement:
        return Measurement(
            sum(self.counts), seconds, [x for w in self.latencies for x in w]
        )


async def measure_tasks(
    n: int,
    make_op: Callable[[int], Callable[[], Awaitable[None]]],
    warmup: float,
    seconds: float,
    on_window: Callable[[bool], None] = lambda _start: None,
) -> Measurement:
    """Run n tasks, each repeating its own append, and count those done in the window."""
    window = _Window(n)

    async def work(i: int) -> None:
        op = make_op(i)
        while not window.stopping:
            started = time.perf_counter()
            await op()
            window.done(i, started)

    tasks = [asyncio.create_task(work(i)) for i in range(n)]
    try:
        await asyncio.sleep(warmup)
        on_window(True)
        window.measuring = True
        t0 = time.perf_counter()
        await asyncio.sleep(seconds)
        window.measuring = False
        elapsed = time.perf_counter() - t0
        on_window(False)
        window.stopping = True
        await asyncio.gather(*tasks)
    finally:
        window.stopping = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return window.result(elapsed)


def measure_threads(
    n: int, make_op: Callable[[int], Callable[[], None]], warmup: float, seconds: float
) -> Measurement:
    """Like measure_tasks, with n OS threads for a synchronous client."""
    window = _Window(n)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            op = make_op(i)
            while not window.stopping:
                started = time.perf_counter()
                op()
                window.done(i, started)
        except BaseException as exc:
            errors.append(exc)
            window.stopping = True

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(n)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(warmup)
        window.measuring = True
        t0 = time.perf_counter()
        time.sleep(seconds)
        window.measuring = False
        elapsed = time.perf_counter() - t0
    finally:
        window.stopping = True
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    return window.result(elapsed)


# -- the three systems --------------------------------------------------------------


def midas_op(store: EventStore) -> Callable[[int], Callable[[], Awaitable[None]]]:
    def make(i: int) -> Callable[[], Awaitable[None]]:
        streams = Streams()
        n = 0

        async def op() -> None:
            nonlocal n
            n += 1
            event = NewEvent(EVENT_TYPE, payload(i, n))
            await store.append([StreamAppend(streams.stream_id, streams.version, [event])])
            streams.advance()

        return op

    return make


def library_op(recorder: Any) -> Callable[[int], Callable[[], None]]:
    from eventsourcing.persistence import StoredEvent

    def make(i: int) -> Callable[[], None]:
        streams = Streams()
        n = 0

        def op() -> None:
            nonlocal n
            n += 1
            recorder.insert_events([
                StoredEvent(
                    originator_id=streams.stream_id,
                    originator_version=streams.version + 1,
                    topic=LIB_TOPIC,
                    state=orjson.dumps(payload(i, n)),
                )
            ])
            streams.advance()

        return op

    return make


RAW_TABLE = """CREATE TABLE "{schema}".events (
    stream_id uuid NOT NULL,
    version   integer NOT NULL,
    type      text NOT NULL,
    data      jsonb NOT NULL,
    PRIMARY KEY (stream_id, version)
)"""


def raw_op(pool: asyncpg.Pool) -> Callable[[int], Callable[[], Awaitable[None]]]:
    def make(i: int) -> Callable[[], Awaitable[None]]:
        streams = Streams()
        n = 0

        async def op() -> None:
            nonlocal n
            n += 1
            data = orjson.dumps(payload(i, n)).decode()
            async with pool.acquire() as conn:
                await conn.execute(
                    "INSERT INTO events (stream_id, version, type, data)"
                    " VALUES ($1, $2, $3, $4)",
                    streams.stream_id, streams.version + 1, EVENT_TYPE, data,
                )
            streams.advance()

        return op

    return make


def open_library(dsn: str, schema: str, pool_size: int) -> Any:
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(dsn)
    datastore = PostgresDatastore(
        dbname=str(params.get("dbname", "postgres")),
        host=str(params.get("host", "127.0.0.1")),
        port=str(params.get("port", "5432")),
        user=str(params.get("user", "postgres")),
        password=str(params.get("password", "")),
        pool_size=pool_size,
        max_overflow=0,
        schema=schema,
    )
    recorder = PostgresApplicationRecorder(datastore)
    recorder.create_table()
    datastore.pool.open(wait=True, timeout=30)
    return datastore, recorder


# -- machine, reporting ---------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def nproc() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 0


def pg_host(dsn: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    return str(conninfo_to_dict(dsn).get("host", "the default socket"))


def fmt(x: float) -> str:
    return f"{x:,.0f}"


@dataclass
class Row:
    appenders: int
    midas: Measurement
    library: Measurement
    raw: Measurement


def results_table(rows: list[Row]) -> list[str]:
    lines = [
        "| appenders | Midas ev/s | library ev/s | raw asyncpg ev/s | Midas / library"
        " | Midas / raw | Midas events per commit | Midas p50 / p99 ms | library p50 / p99 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        per_commit = (
            f"{r.midas.events / r.midas.commits:.1f}" if r.midas.commits else "n/a"
        )
        lines.append(
            f"| {r.appenders} | {fmt(r.midas.rate)} | {fmt(r.library.rate)}"
            f" | {fmt(r.raw.rate)} | {r.midas.rate / max(r.library.rate, 1e-9):.1f}x"
            f" | {r.midas.rate / max(r.raw.rate, 1e-9):.2f}x | {per_commit}"
            f" | {r.midas.latency_ms(0.5):.1f} / {r.midas.latency_ms(0.99):.1f}"
            f" | {r.library.latency_ms(0.5):.1f} / {r.library.latency_ms(0.99):.1f} |"
        )
    return lines


def goal_lines(rows: list[Row], catchup_rate: float, gap_free: bool) -> list[str]:
    top = max(rows, key=lambda r: r.appenders)
    ratio = top.midas.rate / max(top.library.rate, 1e-9)

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    return [
        f"- Midas at {top.appenders} appenders ≥ {GOAL_RATIO_VS_LIBRARY:.0f}x the library at"
        f" {top.appenders}: {ratio:.1f}x — {verdict(ratio >= GOAL_RATIO_VS_LIBRARY)}",
        f"- Midas at {top.appenders} appenders above the unserialised"
        f" {fmt(GOAL_ABOVE_UNSERIALISED)}/s of the issue: {fmt(top.midas.rate)}/s —"
        f" {verdict(top.midas.rate > GOAL_ABOVE_UNSERIALISED)}"
        f" (raw asyncpg measured here at {top.appenders}: {fmt(top.raw.rate)}/s)",
        f"- Catch-up ≥ {fmt(GOAL_CATCHUP)} events/s: {fmt(catchup_rate)}/s —"
        f" {verdict(catchup_rate >= GOAL_CATCHUP)}",
        f"- Midas log gap-free with an intact hash chain after the run: "
        f"{'yes' if gap_free else 'NO'}",
    ]


def record(text: str) -> None:
    existing = RESULTS.read_text() if RESULTS.exists() else RESULTS_HEADER
    if not existing.endswith("\n"):
        existing += "\n"
    RESULTS.write_text(existing + "\n" + text)


# -- the run --------------------------------------------------------------------------


async def catchup(store: EventStore, events: int) -> tuple[float, float, int]:
    """Load ``events`` in big multi-stream appends, then time reading them back."""
    after = await store.head()
    per_stream, streams_per_append = 20, 50
    per_append = per_stream * streams_per_append
    remaining = events
    chunks: list[int] = []
    while remaining > 0:
        chunks.append(min(per_append, remaining))
        remaining -= chunks[-1]

    async def load(my_chunks: list[int]) -> None:
        for size in my_chunks:
            appends, left = [], size
            while left > 0:
                k = min(per_stream, left)
                appends.append(StreamAppend(uuid4(), 0, [
                    NewEvent(EVENT_TYPE, payload(0, j)) for j in range(k)
                ]))
                left -= k
            await store.append(appends)

    t0 = time.perf_counter()
    await asyncio.gather(*(load(chunks[i::4]) for i in range(4)))
    load_rate = events / (time.perf_counter() - t0)

    read = 0
    t0 = time.perf_counter()
    while True:
        batch = await store.read_all(after, limit=5000)
        if not batch:
            break
        read += len(batch)
        after = batch[-1].position
    read_rate = read / (time.perf_counter() - t0)
    return load_rate, read_rate, read


async def run(args: argparse.Namespace) -> None:
    suffix = secrets.token_hex(4)
    midas_schema = f"bench_midas_{suffix}"
    lib_schema = f"bench_lib_{suffix}"
    raw_schema = f"bench_raw_{suffix}"
    levels = [int(x) for x in args.appenders.split(",")]
    out: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        out.append(line)

    admin = await asyncpg.connect(args.dsn)
    try:
        pg_version = await admin.fetchval("SHOW server_version")
        sync_commit = await admin.fetchval("SHOW synchronous_commit")
        fsync = await admin.fetchval("SHOW fsync")
        for schema in (midas_schema, lib_schema, raw_schema):
            await admin.execute(f'CREATE SCHEMA "{schema}"')
        await admin.execute(RAW_TABLE.format(schema=raw_schema))

        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        say(f"## Append {now}")
        say()
        say(f"- Machine: {nproc()} cores (nproc), {cpu_model()}, {platform.machine()}")
        say(f"- PostgreSQL {pg_version} at {pg_host(args.dsn)} (synchronous_commit={sync_commit},"
            f" fsync={fsync}); Python {platform.python_version()}, asyncpg"
            f" {version('asyncpg')}, eventsourcing {version('eventsourcing')},"
            f" psycopg {version('psycopg')}")
        say(f"- Window: {args.seconds:g} s per measurement after {args.warmup:g} s warm-up;"
            f" a new stream every {EVENTS_PER_STREAM} events per appender")
        say(f"- Command: `{' '.join(['python -m bench.append', *sys.argv[1:]])}`")
        say()
        print("measuring (system, appenders):", flush=True)

        db = Database(args.dsn, midas_schema, max_size=4)
        await db.open()
        await migrate(db, ROOT / "migrations")
        store = EventStore(db, max_batch=args.max_batch)
        store.start()
        datastore, recorder = await asyncio.to_thread(
            open_library, args.dsn, lib_schema, max(levels)
        )
        rows: list[Row] = []
        commits: list[int] = []  # store.batches_committed at the window's start and end
        try:
            for n in levels:
                commits.clear()
                print(f"  midas   {n:>3} ...", flush=True)
                midas = await measure_tasks(
                    n, midas_op(store), args.warmup, args.seconds,
                    lambda _start: commits.append(store.batches_committed),
                )
                midas.commits = commits[1] - commits[0]
                print(f"  library {n:>3} ...", flush=True)
                library = await asyncio.to_thread(
                    measure_threads, n, library_op(recorder), args.warmup, args.seconds
                )
                print(f"  raw     {n:>3} ...", flush=True)
                pool = await asyncpg.create_pool(
                    args.dsn, min_size=n, max_size=n,
                    server_settings={"search_path": raw_schema},
                )
                try:
                    raw = await measure_tasks(n, raw_op(pool), args.warmup, args.seconds)
                finally:
                    await pool.close()
                rows.append(Row(n, midas, library, raw))
        finally:
            await asyncio.to_thread(datastore.close)

        try:
            print(f"  catch-up: loading {args.catchup_events:,} events ...", flush=True)
            load_rate, read_rate, read = await catchup(store, args.catchup_events)
            async with db.acquire() as conn:
                total, head = await conn.fetchrow(
                    "SELECT count(*), coalesce(max(position), 0) FROM events"
                )
                chain = await verify_chain(conn)
        finally:
            await store.close()
            await db.close()

        gap_free = total == head and chain.ok and chain.checked == total
        for line in results_table(rows):
            say(line)
        say()
        say(f"Catch-up read: {read:,} events with `read_all(after, limit=5000)` in"
            f" {read / read_rate:.2f} s = **{fmt(read_rate)} events/s** (loaded at"
            f" {fmt(load_rate)} events/s in appends of 1,000 events over 50 streams)")
        say()
        say("Goals (from the issue):")
        say()
        for line in goal_lines(rows, read_rate, gap_free):
            say(line)
        say()
        if args.record:
            record("\n".join(out) + "\n")
            print(f"recorded in {RESULTS}")
    finally:
        for schema in (midas_schema, lib_schema, raw_schema):
            await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.append", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", default=os.environ.get("MIDAS_BENCH_DATABASE_URL", DEFAULT_DSN),
                        help="PostgreSQL to run in (fresh schemas, dropped at the end)")
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--warmup", type=float, default=1.0, help="before each measurement")
    parser.add_argument("--catchup-events", type=int, default=200_000)
    parser.add_argument("--appenders", default="1,8,32", help="comma-separated levels")
    parser.add_argument("--max-batch", type=int, default=1000,
                        help="EventStore max_batch (appends per group commit)")
    parser.add_argument("--record", action="store_true",
                        help="append this run's section to bench/RESULTS.md")
    args = parser.parse_args(argv)
    asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
