"""The database a command-line command works on: the configured one or the embedded
PostgreSQL, migrated, and opened for the command."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import click
from pydantic import SecretStr

from midas.config import Settings
from midas.eventstore import Database

log = logging.getLogger("midas.cli")


def resolve_database(settings: Settings) -> Settings:
    """Use MIDAS_DATABASE_URL, or start the embedded PostgreSQL under data_dir."""
    if settings.database_dsn():
        return settings
    from midas.eventstore.embedded import start_embedded

    uri = start_embedded(settings.data_dir)
    return settings.model_copy(update={"database_url": SecretStr(uri)})


async def wait_and_migrate(settings: Settings, wait_s: float) -> None:
    from midas.eventstore import is_unavailable
    from midas.eventstore.migrate import migrate

    db = Database(settings.database_dsn() or "", settings.database_schema)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            applied = await migrate(db, settings.migrations_dir)
            for migration in applied:
                click.echo(f"applied {migration.version:03d}_{migration.name}", err=True)
            return
        except Exception as exc:
            if not is_unavailable(exc) or time.monotonic() > deadline:
                raise
            log.warning("database not reachable yet; retrying")
            await asyncio.sleep(1)


@asynccontextmanager
async def open_database() -> AsyncIterator[Database]:
    """An open, migrated Database for one CLI command; the process's KEK set from settings
    (projectors and the repository's codec unwrap subject keys with it)."""
    from midas.security.pii import configure_master_key

    settings = resolve_database(Settings())
    configure_master_key(settings.pii_master_key)
    await wait_and_migrate(settings, wait_s=0)
    db = Database(settings.database_dsn() or "", settings.database_schema)
    await db.open()
    try:
        yield db
    finally:
        await db.close()
