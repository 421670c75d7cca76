"""Availability search throughput: the primary alone against the primary plus a replica.

Starts a private PostgreSQL primary and a streaming standby (``tests/support/pg_cluster``:
initdb, pg_basebackup -R, pg_ctl, on free ports under a temporary folder, removed at the
end), registers ``--items`` (200) cars over four locations with a hold on every other one,
then runs ``midas serve --workers N`` twice over the same data, and loads
``GET /api/v1/availability`` (category, location, a two-day interval, 20 results) with
``--clients`` (32) connections for ``--seconds`` (10), alternately ``--rounds`` (2) times:

- ``primary``: every query reads the primary;
- ``replica``: ``MIDAS_READ_DATABASE_URLS`` names the standby, so queries read it.

It prints requests/s and latency per round, and the CPU seconds each PostgreSQL spent
(``bench/cpu.py``). The load comes from wrk when installed (else this Python process).
Run: ``.venv/bin/python -m bench.replicas [--record]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import aiohttp
import asyncpg

from bench import cpu
from bench.results import publish
from midas.config import Settings
from midas.http.auth import Role, issue_access_token
from tests.support.pg_cluster import StreamingPair, free_port, start_pair

START = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0) + timedelta(
    days=3)
LOCATIONS = ("US-CA", "US-NY", "AE-DU", "US-FL")


def _search_path() -> str:
    start, end = START + timedelta(days=1), START + timedelta(days=3)
    return (f"/api/v1/availability?category=car&location=US-CA&start={start:%Y-%m-%dT%H:%M:%SZ}"
            f"&end={end:%Y-%m-%dT%H:%M:%SZ}&limit=20")


async def _ready(session: aiohttp.ClientSession, base: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            async with session.get(f"{base}/ready") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.3)
    raise RuntimeError(f"{base} did not become ready")


def _serve(pair: StreamingPair, schema: str, port: int, workers: int,
           replica: bool) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MIDAS_DATABASE_URL": pair.primary_dsn,
           "MIDAS_DATABASE_SCHEMA": schema, "MIDAS_ENVIRONMENT": "test",
           "MIDAS_LOG_LEVEL": "WARNING", "MIDAS_CALENDAR_POLLER_ENABLED": "false",
           "MIDAS_EMAIL_DELIVERY_ENABLED": "false"}
    if replica:
        env["MIDAS_READ_DATABASE_URLS"] = pair.standby_dsn
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return subprocess.Popen(
        [sys.executable, "-m", "midas.cli", "serve", "--workers", str(workers),
         "--port", str(port)], env=env, stdout=subprocess.DEVNULL)


async def _seed(session: aiohttp.ClientSession, base: str, pair: StreamingPair, schema: str,
                items: int) -> None:
    settings = Settings(environment="test")
    admin, customer = uuid4(), uuid4()
    conn = await asyncpg.connect(pair.primary_dsn, server_settings={"search_path": schema})
    try:
        for account, role in ((admin, "admin"), (customer, "customer")):
            await conn.execute("INSERT INTO auth_accounts (account_id, email, role)"
                               " VALUES ($1, $2, $3)", account, f"{account}@bench.test", role)
    finally:
        await conn.close()
    admin_h = {"Authorization": f"Bearer {issue_access_token(settings, admin, Role.ADMIN)}"}
    customer_h = {"Authorization": "Bearer "
                  + issue_access_token(settings, customer, Role.CUSTOMER)}
    position = 0
    for n in range(items):
        body = {"name": f"Car {n}", "category": "car", "location": LOCATIONS[n % 4],
                "rate": 100_000 + n}
        async with session.post(f"{base}/api/v1/items", json=body, headers=admin_h) as r:
            if r.status != 201:
                raise RuntimeError(f"registering an item: {await r.text()}")
            item = (await r.json())["id"]
        if n % 2 == 0:
            hold = {"item_id": item, "start": (START + timedelta(days=1)).isoformat(),
                    "end": (START + timedelta(days=2)).isoformat()}
            async with session.post(f"{base}/api/v1/bookings", json=hold,
                                    headers=customer_h) as r:
                if r.status != 201:
                    raise RuntimeError(f"holding: {await r.text()}")
                position = (await r.json())["position"]
    async with session.get(f"{base}{_search_path()}&min_position={position}") as r:
        if r.status != 200:
            raise RuntimeError(f"searching: {await r.text()}")


async def _load(base: str, clients: int, seconds: float) -> dict[str, float]:
    url = f"{base}{_search_path()}"
    if _has_wrk():
        wrk = await asyncio.create_subprocess_exec(
            "wrk", "-t", str(min(os.cpu_count() or 1, clients)), "-c", str(clients),
            "-d", f"{seconds:g}s", "--latency", url, stdout=asyncio.subprocess.PIPE)
        out = (await wrk.communicate())[0].decode()
        return _parse_wrk(out)
    return await _python_load(url, clients, seconds)


def _has_wrk() -> bool:
    return subprocess.run(["sh", "-c", "command -v wrk"], capture_output=True).returncode == 0


def _parse_wrk(out: str) -> dict[str, float]:
    result: dict[str, float] = {}
    for line in out.splitlines():
        words = line.split()
        if line.startswith("Requests/sec:"):
            result["rps"] = float(words[1])
        elif len(words) == 2 and words[0] in ("50%", "99%"):
            result[f"p{words[0][:-1]}_ms"] = _ms(words[1])
        elif "Non-2xx" in line:
            result["non_2xx"] = float(words[-1])
    if "rps" not in result:
        raise RuntimeError(f"wrk printed no rate: {out[-1500:]}")
    return result


def _ms(value: str) -> float:
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if value.endswith(unit):
            return float(value[: -len(unit)]) * factor
    return float(value)


async def _python_load(url: str, clients: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    stop = time.monotonic() + seconds
    async with aiohttp.ClientSession() as session:
        async def client() -> None:
            while time.monotonic() < stop:
                began = time.perf_counter()
                async with session.get(url) as response:
                    await response.read()
                latencies.append((time.perf_counter() - began) * 1000)

        await asyncio.gather(*[client() for _ in range(clients)])
    latencies.sort()
    return {"rps": len(latencies) / seconds,
            "p50_ms": latencies[len(latencies) // 2],
            "p99_ms": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]}


def _clusters(pair: StreamingPair) -> cpu.Groups:
    """Each cluster's processes: its postmaster and the children it forked."""
    pids = {}
    for name, directory in (("primary", pair.primary_dir), ("standby", pair.standby_dir)):
        pid_file = directory / "postmaster.pid"
        pids[name] = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
    return {name: (lambda stats, pid=pid: cpu._children(pid, stats))
            for name, pid in pids.items() if pid is not None}


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    pair = start_pair()
    schema = f"bench_replicas_{uuid4().hex[:8]}"
    rounds: list[dict[str, Any]] = []
    try:
        async with aiohttp.ClientSession() as session:
            for n in range(args.rounds * 2):
                mode = ("primary", "replica")[n % 2]
                port = free_port()
                base = f"http://127.0.0.1:{port}"
                service = _serve(pair, schema, port, args.workers, replica=mode == "replica")
                try:
                    await _ready(session, base)
                    if n == 0:
                        await _seed(session, base, pair, schema, args.items)
                    await _load(base, args.clients, 2)  # warm up
                    clusters = _clusters(pair)
                    before = cpu.sample(clusters)
                    measured = await _load(base, args.clients, args.seconds)
                    spent = cpu.spent(before, cpu.sample(clusters))
                finally:
                    service.terminate()
                    service.wait(timeout=60)
                measured["cpu_primary_s"] = round(spent.get("primary", 0.0), 2)
                measured["cpu_standby_s"] = round(spent.get("standby", 0.0), 2)
                rounds.append({"mode": mode, **measured})
                print(json.dumps(rounds[-1]), flush=True)
    finally:
        pair.stop()
    return rounds


def report(rounds: list[dict[str, Any]], args: argparse.Namespace) -> str:
    def median(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in rounds if r["mode"] == mode and key in r)

    lines = [
        f"## Read replicas {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()},"
        f" load average before the run {args.load_before}; PostgreSQL primary and"
        " streaming standby both on this machine (tests/support/pg_cluster.py).",
        f"`python -m bench.replicas` ({args.items} items, {args.clients} connections,"
        f" {args.seconds:g} s per round, {args.rounds} rounds each, `serve --workers"
        f" {args.workers}`, load from {'wrk' if _has_wrk() else 'Python'}):",
        "",
        "| round | reads | requests/s | p50 ms | p99 ms | primary CPU s | standby CPU s |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n, r in enumerate(rounds, 1):
        lines.append(f"| {n} | {r['mode']} | {r['rps']:.0f} | {r.get('p50_ms', 0):.1f} |"
                     f" {r.get('p99_ms', 0):.1f} | {r['cpu_primary_s']} |"
                     f" {r['cpu_standby_s']} |")
    lines += ["", f"Median requests/s: primary alone {median('primary', 'rps'):.0f},"
              f" primary + replica {median('replica', 'rps'):.0f}.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--record", action="store_true", help="append to bench/RESULTS.md")
    args = parser.parse_args()
    args.load_before = " / ".join(f"{v:.1f}" for v in os.getloadavg())
    rounds = asyncio.run(run(args))
    text = report(rounds, args)
    publish(text, record=args.record)


if __name__ == "__main__":
    main()
