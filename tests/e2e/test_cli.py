"""The `midas` command line against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import asyncpg
import pytest
from click.testing import CliRunner

from midas.cli import main


@pytest.fixture
def env(pg_dsn: str, schema: str, tmp_path: Path) -> dict[str, str]:
    return {"MIDAS_DATABASE_URL": pg_dsn, "MIDAS_DATABASE_SCHEMA": schema,
            "MIDAS_ENVIRONMENT": "test", "MIDAS_LOG_JSON": "false",
            "MIDAS_DATA_DIR": str(tmp_path)}  # the local Stripe's state: not in the checkout


def query(dsn: str, schema: str, sql: str) -> object:
    async def run() -> object:
        conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    return asyncio.run(run())


def test_migrate_applies_once(env: dict[str, str], pg_dsn: str, schema: str) -> None:
    first = CliRunner().invoke(main, ["migrate"], env=env)
    assert first.exit_code == 0, first.output
    assert "applied 001_event_store" in first.output
    second = CliRunner().invoke(main, ["migrate"], env=env)
    assert second.exit_code == 0 and "applied" not in second.output
    assert query(pg_dsn, schema, "SELECT count(*) FROM schema_migrations") == len(
        list(Path("migrations").glob("*.sql")))


def test_projections_status_and_rebuild(env: dict[str, str], pg_dsn: str, schema: str) -> None:
    assert CliRunner().invoke(main, ["migrate"], env=env).exit_code == 0
    status = CliRunner().invoke(main, ["projections", "status"], env=env)
    assert status.exit_code == 0 and "inventory" in status.output
    rebuilt = CliRunner().invoke(main, ["projections", "rebuild", "inventory"], env=env)
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "rebuilt up to position 0" in rebuilt.output
    unknown = CliRunner().invoke(main, ["projections", "rebuild", "nope"], env=env)
    assert unknown.exit_code == 2 and "no projection named" in unknown.output


def test_projections_rebuild_all_in_two_processes(
    env: dict[str, str], pg_dsn: str, schema: str
) -> None:
    from bench.projections import generate_history
    from midas.eventstore import Database, EventStore

    assert CliRunner().invoke(main, ["migrate"], env=env).exit_code == 0

    async def append_history() -> None:
        db = Database(pg_dsn, schema)
        await db.open()
        store = EventStore(db)
        store.start()
        try:
            for append in generate_history(40, customers=10, items=5)[1]:
                await store.append(append)
        finally:
            await store.close()
            await db.close()

    asyncio.run(append_history())
    head = query(pg_dsn, schema, "SELECT max(position) FROM events")
    rebuilt = CliRunner().invoke(main, ["projections", "rebuild-all", "--processes", "2"],
                                 env=env)
    assert rebuilt.exit_code == 0, rebuilt.output
    assert f"rebuilt 12 projections up to position {head}" in rebuilt.output
    assert query(pg_dsn, schema, "SELECT count(*) FROM bk_bookings") == 40
    assert query(pg_dsn, schema, "SELECT count(*) FROM kpi_bookings") == 40
    assert query(pg_dsn, schema, "SELECT min(position) FROM projection_checkpoints") == head


def test_projections_rebuild_all_is_refused_while_a_service_leads(
    env: dict[str, str], pg_dsn: str, schema: str
) -> None:
    from midas.eventstore import Database

    assert CliRunner().invoke(main, ["migrate"], env=env).exit_code == 0

    async def leading() -> asyncpg.Connection:  # what a running service's runner holds
        conn = await asyncpg.connect(pg_dsn)
        await conn.execute("SELECT pg_advisory_lock($1)",
                           Database(pg_dsn, schema).lock_key("projection:kpis"))
        return conn

    loop = asyncio.new_event_loop()
    leader = loop.run_until_complete(leading())
    try:
        refused = CliRunner().invoke(main, ["projections", "rebuild-all"], env=env)
    finally:
        loop.run_until_complete(leader.close())
        loop.close()
    assert refused.exit_code == 1 and "a running service leads kpis" in refused.output


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.status


def wait_healthy(process: subprocess.Popen[bytes], port: int) -> float:
    """Until the service answers /health (failing with its output if it exits); the
    deadline it had, for what follows."""
    deadline = time.monotonic() + 30
    while True:
        try:
            assert get(f"http://127.0.0.1:{port}/health") == 200
            return deadline
        except OSError:
            assert process.poll() is None, process.stdout.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "service did not start"
            time.sleep(0.2)


@pytest.mark.slow
def test_serve_with_two_workers_on_one_port_and_a_clean_shutdown(env: dict[str, str]) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "midas.cli", "serve", "--workers", "2", "--port", str(port)],
        env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        wait_healthy(process, port)
        for _ in range(20):
            assert get(f"http://127.0.0.1:{port}/ready") == 200
        workers = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True,
                                 text=True).stdout.split()
        assert len(workers) >= 2
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    assert code == 0


@pytest.mark.slow
def test_a_worker_builds_the_read_models_of_a_service_without_projections(
    env: dict[str, str], pg_dsn: str, schema: str
) -> None:
    """`serve` with MIDAS_PROJECTIONS_ENABLED=false takes commands; `worker` projects."""
    port = free_port()
    web_env = {**os.environ, **env, "MIDAS_PROJECTIONS_ENABLED": "false"}
    service = subprocess.Popen(
        [sys.executable, "-m", "midas.cli", "serve", "--port", str(port)],
        env=web_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    worker = None
    try:
        deadline = wait_healthy(service, port)
        created = CliRunner().invoke(main, ["users", "create-admin", "ops@example.com"],
                                     env=env, input="A long passphrase 1!\n")
        assert created.exit_code == 0, created.output
        head = query(pg_dsn, schema, "SELECT max(position) FROM events")
        assert head and query(pg_dsn, schema,
                              "SELECT coalesce(max(position), 0) FROM projection_checkpoints"
                              " WHERE name = 'accounts'") == 0
        worker = subprocess.Popen(  # the same environment: it projects all the same
            [sys.executable, "-m", "midas.cli", "worker"], env=web_env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        while query(pg_dsn, schema, "SELECT coalesce(max(position), 0) FROM"
                                    " projection_checkpoints WHERE name = 'accounts'") < head:
            assert worker.poll() is None, worker.stdout.read().decode()
            assert time.monotonic() < deadline + 30, "the worker did not project"
            time.sleep(0.2)
        assert query(pg_dsn, schema, "SELECT count(*) FROM acc_accounts") == 1
    finally:
        for process in (service, worker):
            if process is not None:
                process.send_signal(signal.SIGTERM)
                assert process.wait(timeout=30) == 0
