"""`midas audit ...` and `midas projections verify/rebuild` against a real PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import orjson
import pytest
from click.testing import CliRunner

from midas.cli import main
from midas.eventstore import Database, EventStore
from midas.eventstore.migrate import migrate
from midas.projection import catch_up
from projections.inventory import InventoryProjector
from tests.conftest import MIGRATIONS, drop_schema
from tests.integration.audit_support import inventory_history


@pytest.fixture
def env(pg_dsn: str, schema: str) -> dict[str, str]:
    return {"MIDAS_DATABASE_URL": pg_dsn, "MIDAS_DATABASE_SCHEMA": schema,
            "MIDAS_ENVIRONMENT": "test", "MIDAS_LOG_JSON": "false",
            "MIDAS_AUDIT_SIGNING_KEY": "cli-test-key"}


def run_sql(dsn: str, schema: str, sql: str) -> Any:
    async def run() -> Any:
        conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
        try:
            return await conn.fetch(sql)
        finally:
            await conn.close()

    return asyncio.run(run())


def make_history(dsn: str, schema: str, items: int = 3) -> None:
    async def run() -> None:
        db = Database(dsn, schema)
        await migrate(db, MIGRATIONS)
        await db.open()
        store = EventStore(db)
        store.start()
        try:
            await inventory_history(store, items)
            await catch_up(db, InventoryProjector())
        finally:
            await store.close()
            await db.close()

    asyncio.run(run())


def cli(env: dict[str, str], *args: str) -> Any:
    return CliRunner().invoke(main, list(args), env=env)


def test_audit_verify_passes_then_names_the_broken_position(
    env: dict[str, str], pg_dsn: str, schema: str
) -> None:
    make_history(pg_dsn, schema)
    ok = cli(env, "audit", "verify")
    assert ok.exit_code == 0, ok.output
    assert "ok: 9 events verified, head position 9" in ok.output
    ranged = cli(env, "audit", "verify", "--from", "3", "--to", "5")
    assert ranged.exit_code == 0 and "ok: 3 events verified" in ranged.output

    run_sql(pg_dsn, schema, "DELETE FROM events WHERE position = 7")
    broken = cli(env, "audit", "verify")
    assert broken.exit_code == 1
    assert "BROKEN at position 7: event is missing" in broken.output
    assert cli(env, "audit", "verify", "--to", "6").exit_code == 0


def test_checkpoint_then_check_it(
    env: dict[str, str], pg_dsn: str, schema: str, tmp_path: Path
) -> None:
    make_history(pg_dsn, schema)
    file = tmp_path / "checkpoint.json"
    made = cli(env, "audit", "checkpoint", "--output", str(file))
    assert made.exit_code == 0, made.output
    assert orjson.loads(file.read_bytes())["position"] == 9
    checked = cli(env, "audit", "check-checkpoint", str(file))
    assert checked.exit_code == 0 and "unchanged" in checked.output, checked.output

    run_sql(pg_dsn, schema, "UPDATE events SET data = data || '{\"rate\": 5}' WHERE position = 2")
    rewritten = cli(env, "audit", "check-checkpoint", str(file))
    assert rewritten.exit_code == 1 and "first broken position 2" in rewritten.output

    file.write_text("{}")
    assert cli(env, "audit", "check-checkpoint", str(file)).exit_code == 1
    no_key = cli({**env, "MIDAS_AUDIT_SIGNING_KEY": ""}, "audit", "checkpoint")
    assert no_key.exit_code != 0


def test_export_then_import_into_a_fresh_schema(
    env: dict[str, str], pg_dsn: str, schema: str, tmp_path: Path
) -> None:
    make_history(pg_dsn, schema, 4)
    dump = tmp_path / "log.ndjson"
    exported = cli(env, "audit", "export", "--output", str(dump))
    assert exported.exit_code == 0, exported.output
    assert len(dump.read_bytes().splitlines()) == 12

    fresh = f"t_{uuid4().hex[:16]}"
    try:
        fresh_env = {**env, "MIDAS_DATABASE_SCHEMA": fresh}
        imported = cli(fresh_env, "audit", "import", str(dump))
        assert imported.exit_code == 0, imported.output
        assert "imported 12 events; chain ok" in imported.output
        columns = "position, stream_id, version, type, data, metadata, recorded_at, hash"
        rows = f"SELECT {columns} FROM events ORDER BY position"
        assert run_sql(pg_dsn, fresh, rows) == run_sql(pg_dsn, schema, rows)
        head = cli(env, "audit", "verify").output.split("hash ")[1]
        assert cli(fresh_env, "audit", "verify").output.split("hash ")[1] == head
        again = cli(fresh_env, "audit", "import", str(dump))
        assert again.exit_code == 1 and "not empty" in again.output
    finally:
        asyncio.run(drop_schema(pg_dsn, fresh))


def test_projections_verify_and_blue_green_rebuild(
    env: dict[str, str], pg_dsn: str, schema: str
) -> None:
    make_history(pg_dsn, schema)
    healthy = cli(env, "projections", "verify", "inventory")
    assert healthy.exit_code == 0, healthy.output
    assert "inventory: ok at position 9" in healthy.output

    (row,) = run_sql(pg_dsn, schema, "UPDATE inv_items SET rate = 7 WHERE name = 'Villa a1'"
                                     " RETURNING id")
    damaged = cli(env, "projections", "verify", "inventory")
    assert damaged.exit_code == 1
    assert "inventory: DIFFERS" in damaged.output
    assert f'inv_items: differs at key ["{row["id"]}"]' in damaged.output

    rebuilt = cli(env, "projections", "rebuild", "inventory")
    assert rebuilt.exit_code == 0 and "rebuilt up to position 9" in rebuilt.output
    assert cli(env, "projections", "verify", "--all").exit_code == 0
    assert cli(env, "projections", "verify").exit_code == 2
