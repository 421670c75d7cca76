"""Shared fixtures: a real PostgreSQL, a clean schema per test."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from midas.config import ROOT, Settings
from midas.eventstore import Database, EventStore
from midas.eventstore.migrate import migrate
from midas.http.auth import Role, issue_access_token

MIGRATIONS = ROOT / "migrations"


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """MIDAS_TEST_DATABASE_URL, else an embedded server under the temp folder."""
    url = os.environ.get("MIDAS_TEST_DATABASE_URL")
    if url:
        return url
    from midas.eventstore.embedded import start_embedded

    return start_embedded(Path(tempfile.gettempdir()) / f"midas-test-{os.getuid()}")


@pytest.fixture
async def schema(pg_dsn: str) -> AsyncIterator[str]:
    """A fresh schema name, dropped with everything in it after the test."""
    name = f"t_{uuid4().hex[:16]}"
    yield name
    await drop_schema(pg_dsn, name)


@pytest.fixture
async def db(pg_dsn: str, schema: str) -> AsyncIterator[Database]:
    database = Database(pg_dsn, schema, max_size=20)
    await migrate(database, MIGRATIONS)
    await database.open()
    yield database
    await database.close()


async def drop_schema(dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
async def store(db: Database) -> AsyncIterator[EventStore]:
    event_store = EventStore(db)
    event_store.start()
    yield event_store
    await event_store.close()


@pytest.fixture
def settings(pg_dsn: str, schema: str) -> Settings:
    return Settings(
        database_url=pg_dsn,
        database_schema=schema,
        environment="test",
        log_json=False,
        poll_interval_s=0.2,
        consistency_timeout_s=3.0,
    )


@pytest.fixture
async def app_client(aiohttp_client: Any, settings: Settings, pg_dsn: str, schema: str) -> Any:
    """The whole service over real HTTP (aiohttp's test client), on a clean schema."""
    from midas.app import create_app

    client = await aiohttp_client(create_app(settings))
    yield client
    await client.close()


@pytest.fixture
def auth(settings: Settings) -> Callable[..., dict[str, str]]:
    """Authorization headers for a role (and optionally a given account id)."""

    def headers(role: str = "admin", account_id: UUID | None = None) -> dict[str, str]:
        token = issue_access_token(settings, account_id or uuid4(), Role(role))
        return {"Authorization": f"Bearer {token}"}

    return headers
