"""The ``midas`` command line: serve, migrate, projections."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from multiprocessing.process import BaseProcess
from typing import Any

import click
from aiohttp import web
from pydantic import SecretStr

from midas.config import Settings
from midas.eventstore import Database
from midas.logs import AccessLogger, configure_logging
from midas.loop import event_loop_factory, settle_heap
from midas.loop import run as run_loop
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


@main.command()
def worker() -> None:
    """Run the background work without serving HTTP: the projections, the process
    managers, the scheduler, email delivery, calendar polling and housekeeping.

    Pair it with `serve` processes started with MIDAS_PROJECTIONS_ENABLED=false: the
    read models are then built beside the request handling instead of in between.
    """
    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    settings = resolve_database(settings.model_copy(update={"projections_enabled": True}))
    asyncio.run(_wait_and_migrate(settings, wait_s=60))
    run_loop(_work(settings), settings.event_loop)


async def _work(settings: Settings) -> None:
    from midas.app import create_app

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):  # before start-up: a stop then waits
        loop.add_signal_handler(signum, stopping.set)
    runner = web.AppRunner(create_app(settings))
    await runner.setup()  # starts every cleanup_ctx: the background work; no listener
    await _settle_heap(runner.app)
    log.info("worker started")
    await stopping.wait()
    await runner.cleanup()


def _serve_one(settings: Settings, *, reuse_port: bool) -> None:
    from midas.app import create_app

    configure_logging(settings.log_level, json=settings.log_json)
    app = create_app(settings)
    app.on_startup.append(_settle_heap)  # after every cleanup_ctx has started
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        reuse_port=reuse_port,
        shutdown_timeout=settings.shutdown_timeout_s,
        access_log=logging.getLogger("midas.access"),
        access_log_class=AccessLogger,
        print=lambda message: log.info(message),
        loop=event_loop_factory(settings.event_loop)(),
    )


async def _settle_heap(_app: web.Application) -> None:
    """Keep the garbage collector's pauses short under load (``settle_heap``)."""
    settle_heap()


def _serve_many(settings: Settings, workers: int) -> None:
    with _metrics_directory() as metrics_dir:
        processes = _start_workers(settings, workers)
        for process in processes:
            process.join()
            _mark_dead(process, metrics_dir)
    sys.exit(max((p.exitcode or 0) for p in processes))


@contextmanager
def _metrics_directory() -> Iterator[str]:
    """A fresh private directory where the workers' metric values live, so that /metrics
    sums every worker (prometheus_client's multiprocess mode). The variable must be set
    before the workers import prometheus_client: the spawned workers inherit it."""
    directory = tempfile.mkdtemp(prefix="midas-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _start_workers(settings: Settings, workers: int) -> list[BaseProcess]:
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
    return processes


def _mark_dead(process: BaseProcess, metrics_dir: str) -> None:
    """Drop a finished worker's live gauges (its counters and histograms still count)."""
    from prometheus_client.multiprocess import mark_process_dead

    if process.pid is not None:
        mark_process_dead(process.pid, metrics_dir)


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
    """Replay the whole log into a shadow copy of NAME's read model, then swap it in.

    Blue/green: queries see the old read model until the new one has caught up.
    """
    from midas.replay import NoReadModel, rebuild_blue_green

    async def run() -> None:
        projector = _projector(name)
        async with _database() as db:
            try:
                position = await rebuild_blue_green(db, projector)
            except NoReadModel as exc:
                raise click.ClickException(str(exc)) from None
            click.echo(f"{name}: rebuilt up to position {position} (swapped in)")

    asyncio.run(run())


@projections.command("rebuild-all")
@click.option("--processes", default=2, show_default=True, type=click.IntRange(1, 32),
              help="Processes rebuilding side by side (about one per core).")
def projections_rebuild_all(processes: int) -> None:
    """Empty every read model and rebuild it from the log, in place, in PROCESSES.

    For a new deployment or after a restore, with the service stopped (refused while a
    service leads a projection): queries would see partly built read models. A running
    service rebuilds one with `rebuild NAME`.
    """
    from midas.projection import projection_status, reset
    from midas.rebuild import catch_up_in_processes

    async def run() -> None:
        master_key = resolve_database(Settings()).pii_master_key
        chosen = _projectors()
        async with _database() as db:
            led = [s.name for s in await projection_status(db, chosen) if s.leader]
            if led:
                raise click.ClickException(
                    f"a running service leads {', '.join(led)}: stop it first, or rebuild"
                    " one projection at a time with `midas projections rebuild NAME`")
            async with db.acquire() as conn:
                for projector in chosen:
                    await reset(conn, projector)
            started = time.perf_counter()
            await catch_up_in_processes(db, chosen, processes=processes,
                                        master_key=master_key)
            async with db.acquire() as conn:
                head = await conn.fetchval("SELECT coalesce(max(position), 0) FROM events")
        click.echo(f"rebuilt {len(chosen)} projections up to position {head}"
                   f" in {time.perf_counter() - started:.1f} s")

    asyncio.run(run())


@projections.command("verify")
@click.argument("name", required=False)
@click.option("--all", "every", is_flag=True, help="Verify every projection.")
def projections_verify(name: str | None, every: bool) -> None:
    """Rebuild NAME into a shadow copy and report rows that differ from the live one."""
    from midas.replay import verify

    if every == (name is not None):
        raise click.UsageError("give a projection NAME or --all")
    chosen = _projectors() if every else [_projector(name or "")]

    async def run() -> bool:
        healthy = True
        async with _database() as db:
            for projector in chosen:
                report = await verify(db, projector)
                healthy &= report.ok
                _echo_verify(report)
        return healthy

    if not asyncio.run(run()):
        sys.exit(1)


def _echo_verify(report: Any) -> None:
    import orjson

    verdict = "ok" if report.ok else "DIFFERS"
    click.echo(f"{report.name}: {verdict} at position {report.position}")
    for table in report.tables:
        for label, rows in (("only in live", table.only_live),
                            ("only in shadow", table.only_shadow)):
            for row in rows:
                click.echo(f"  {table.table}: {label}: {orjson.dumps(row).decode()}")
        for change in table.changed:
            click.echo(f"  {table.table}: differs at key {orjson.dumps(change['key']).decode()}:"
                       f" live {orjson.dumps(change['live']).decode()}"
                       f" shadow {orjson.dumps(change['shadow']).decode()}")


def _projector(name: str) -> Projector:
    projector = next((p for p in _projectors() if p.name == name), None)
    if projector is None:
        raise click.BadParameter(f"no projection named {name!r}", param_hint="NAME")
    return projector


@main.group()
def users() -> None:
    """Manage accounts from the command line."""


@users.command("create-admin")
@click.argument("email")
@click.option("--name", default="Administrator", show_default=True)
@click.option("--role", type=click.Choice(["admin", "super_admin"]), default="super_admin",
              show_default=True)
def users_create_admin(email: str, name: str, role: str) -> None:
    """Create a staff account; the password is prompted for, or read from stdin."""
    from midas.security.passwords import WeakPassword, check_password_rules

    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        check_password_rules(password)
    except WeakPassword as exc:
        raise click.BadParameter(f"the password needs {exc}", param_hint="password") from None
    account_id = asyncio.run(_create_admin(email, name, role, password))
    click.echo(f"created {role} {account_id}")


async def _create_admin(email: str, name: str, role: str, password: str) -> str:
    from commands.accounts import create_account
    from midas.domain.errors import DomainError
    from midas.domain.registry import AGGREGATES
    from midas.eventstore import EventStore, EventTypes, Repository
    from midas.security.pii import PiiCodec

    settings = resolve_database(Settings())
    async with _database() as db:
        store = EventStore(db)
        store.start()
        try:
            account_id, _ = await create_account(
                Repository(store, EventTypes(AGGREGATES), field_codec=PiiCodec(db, store=store)),
                email=email, name=name,
                password=password, rounds=settings.bcrypt_rounds, role=role,
                metadata={"actor": "cli", "actor_role": "system"},
            )
        except DomainError as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            await store.close()
    return str(account_id)


@main.group("pii")
def pii_group() -> None:
    """Personal data: the per-subject keys (docs/privacy.md)."""


@pii_group.command("wrap-keys")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=1000,
              show_default=True, help="Keys wrapped per transaction.")
def pii_wrap_keys(batch_size: int) -> None:
    """Wrap every still-unwrapped subject key with MIDAS_PII_MASTER_KEY (idempotent)."""
    from midas.security.pii import PiiError, wrap_unwrapped_keys

    if Settings().pii_master_key is None:
        raise click.ClickException("set MIDAS_PII_MASTER_KEY to wrap the subject keys")

    async def run() -> int:
        async with _database() as db:
            return await wrap_unwrapped_keys(db, batch_size=batch_size)

    try:
        wrapped = asyncio.run(run())
    except PiiError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrapped {wrapped} subject key(s)")


def _projectors() -> list[Projector]:
    from projections import all_projectors

    return all_projectors()


@asynccontextmanager
async def _database() -> AsyncIterator[Database]:
    """An open, migrated Database for one CLI command; the process's KEK set from settings
    (projectors and the repository's codec unwrap subject keys with it)."""
    from midas.security.pii import configure_master_key

    settings = resolve_database(Settings())
    configure_master_key(settings.pii_master_key)
    await _wait_and_migrate(settings, wait_s=0)
    db = Database(settings.database_dsn() or "", settings.database_schema)
    await db.open()
    try:
        yield db
    finally:
        await db.close()


from midas.audit.cli import audit  # noqa: E402  (the `midas audit` group, issue 8)

main.add_command(audit)

if __name__ == "__main__":
    main()
