"""Migrations: applied once, recorded, changed files refused."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from midas.eventstore import Database
from midas.eventstore.migrate import MigrationError, migrate
from tests.conftest import MIGRATIONS


async def test_concurrent_migrations_apply_each_file_once(pg_dsn: str, schema: str) -> None:
    db = Database(pg_dsn, schema)
    results = await asyncio.gather(*(migrate(db, MIGRATIONS) for _ in range(3)))
    applied = sorted(m.version for result in results for m in result)
    assert applied == sorted({int(p.name[:3]) for p in MIGRATIONS.glob("*.sql")})
    assert await migrate(db, MIGRATIONS) == []


async def test_a_changed_applied_migration_is_refused(
    pg_dsn: str, schema: str, tmp_path: Path
) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, folder)
    db = Database(pg_dsn, schema)
    await migrate(db, folder)
    first = sorted(folder.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await migrate(db, folder)


async def test_badly_named_files_are_refused(tmp_path: Path, pg_dsn: str, schema: str) -> None:
    (tmp_path / "add_things.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="unexpected migration file name"):
        await migrate(Database(pg_dsn, schema), tmp_path)
