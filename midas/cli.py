"""The ``midas`` command line: serve, migrate, projections."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import click
from aiohttp import web
from pydantic import SecretStr

from midas.config import Settings
from midas.eventstore import Database
from midas.logs import configure_logging
from midas.projection import Projector

log = logging.getLogger("midas.cli")


def resolve_database(settings: Settings) -> Settings:
    """Use MIDAS_DATABASE_URL, or start the embedded PostgreSQL under data_dir."""
    if settings.database_dsn():
        return settings
    from midas.eventstore.embedded import start_embedded

    uri = start_embedded(settings.data_dir)
    return settings.model_copy(update={"database_url": SecretStr(uri)})


async def _wait_and_migrate(settings: Settings, wait_s: float) -> None:
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


@click.group()
def main() -> None:
    """Midas: the event-sourced backend of a luxury rental business."""


@main.command()
@click.option("--host", default=None, help="Address to bind (default: MIDAS_HOST).")
@click.option("--port", type=int, default=None, help="Port (default: MIDAS_PORT).")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Processes serving the one port (SO_REUSEPORT).")
def serve(host: str | None, port: int | None, workers: int) -> None:
    """Run the HTTP service (embedded PostgreSQL when MIDAS_DATABASE_URL is unset)."""
    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    updates = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = resolve_database(settings.model_copy(update=updates))
    asyncio.run(_wait_and_migrate(settings, wait_s=60))
    if workers == 1:
        _serve_one(settings, reuse_port=False)
        return
    _serve_many(settings, workers)


def _serve_one(settings: Settings, *, reuse_port: bool) -> None:
    from midas.app import create_app

    configure_logging(settings.log_level, json=settings.log_json)
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        reuse_port=reuse_port,
        shutdown_timeout=settings.shutdown_timeout_s,
        access_log=logging.getLogger("midas.access"),
        print=lambda message: log.info(message),
    )


def _serve_many(settings: Settings, workers: int) -> None:
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_serve_one, args=(settings,), kwargs={"reuse_port": True},
                        name=f"midas-worker-{n}")
        for n in range(workers)
    ]
    for process in processes:
        process.start()

    def forward(signum: int, _frame: object) -> None:
        for process in processes:
            if process.pid is not None:
                os.kill(process.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for process in processes:
        process.join()
    sys.exit(max((p.exitcode or 0) for p in processes))


@main.command("migrate")
def migrate_command() -> None:
    """Apply pending migrations once (under a lock)."""
    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    settings = resolve_database(settings)
    asyncio.run(_wait_and_migrate(settings, wait_s=0))


@main.group()
def projections() -> None:
    """Inspect and rebuild read models."""


@projections.command("status")
def projections_status() -> None:
    """Position and lag of every projection."""
    from midas.projection import projection_status

    async def run() -> None:
        async with _database() as db:
            for s in await projection_status(db, _projectors()):
                leader = "leader running" if s.leader else "no leader"
                click.echo(f"{s.name:<20} position {s.position:>10}  lag {s.lag:>8}  {leader}")

    asyncio.run(run())


@projections.command("rebuild")
@click.argument("name")
def projections_rebuild(name: str) -> None:
    """Empty NAME's read model and replay the whole log into it."""
    from midas.projection import catch_up, projection_status, reset

    async def run() -> None:
        projector = next((p for p in _projectors() if p.name == name), None)
        if projector is None:
            raise click.BadParameter(f"no projection named {name!r}", param_hint="NAME")
        async with _database() as db:
            async with db.acquire() as conn:
                await reset(conn, projector)
            (status,) = await projection_status(db, [projector])
            if status.leader:
                click.echo(f"{name}: reset; the running service is rebuilding it")
                return
            await catch_up(db, projector)
            (status,) = await projection_status(db, [projector])
            click.echo(f"{name}: rebuilt up to position {status.position}")

    asyncio.run(run())


def _projectors() -> list[Projector]:
    from projections import all_projectors

    return all_projectors()


@asynccontextmanager
async def _database() -> AsyncIterator[Database]:
    """An open, migrated Database for one CLI command."""
    settings = resolve_database(Settings())
    await _wait_and_migrate(settings, wait_s=0)
    db = Database(settings.database_dsn() or "", settings.database_schema)
    await db.open()
    try:
        yield db
    finally:
        await db.close()


if __name__ == "__main__":
    main()
