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
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.process import BaseProcess
from typing import Any

import click
from aiohttp import web

from midas.cli_database import open_database, resolve_database, wait_and_migrate
from midas.config import Settings
from midas.domain.accounts import ROLES
from midas.logs import AccessLogger, configure_logging
from midas.loop import run as run_loop
from midas.loop import settle_heap
from midas.projection import Projector

log = logging.getLogger("midas.cli")
KEEPALIVE_TIMEOUT_S = 75.0  # idle keep-alive connections, as web.run_app sets it


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
    from midas.notifications.local_mail import embedded_mail
    from midas.payment_providers.local_stripe import embedded_payments

    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    _refuse_unready_production(settings)
    updates = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = resolve_database(settings.model_copy(update=updates))
    asyncio.run(wait_and_migrate(settings, wait_s=60))
    # One local Stripe and one local mail drop for every worker (when they stand in).
    with embedded_payments(settings) as settings, embedded_mail(settings) as settings:
        if workers == 1:
            _serve_one(settings, reuse_port=False)
            return
        _serve_many(settings, workers)


def _refuse_unready_production(settings: Settings) -> None:
    try:
        settings.check_secrets()
        settings.check_payments()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


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
    asyncio.run(wait_and_migrate(settings, wait_s=60))
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
    configure_logging(settings.log_level, json=settings.log_json)
    run_loop(_serve(settings, reuse_port=reuse_port), settings.event_loop)


async def _serve(settings: Settings, *, reuse_port: bool) -> None:
    """Serve until SIGTERM or SIGINT, then stop gracefully (``shutdown_timeout_s``). What
    ``web.run_app`` does, with Midas's runner (``midas.http.server``: what aiohttp cannot
    parse is answered as problem+json)."""
    from midas.app import create_app
    from midas.http.server import AppRunner

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):  # before start-up: a stop then waits
        loop.add_signal_handler(signum, stopping.set)
    app = create_app(settings)
    app.on_startup.append(_settle_heap)  # after every cleanup_ctx has started
    runner = AppRunner(app, shutdown_timeout=settings.shutdown_timeout_s,
                       keepalive_timeout=KEEPALIVE_TIMEOUT_S,
                       access_log=logging.getLogger("midas.access"),
                       access_log_class=AccessLogger)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port, reuse_port=reuse_port)
        await site.start()
        log.info("serving on %s", site.name)
        await stopping.wait()
    finally:
        await runner.cleanup()


async def _settle_heap(_app: web.Application) -> None:
    """Keep the garbage collector's pauses short under load (``settle_heap``)."""
    settle_heap()


def _serve_many(settings: Settings, workers: int) -> None:
    """N workers on one port, each restarted when it dies (``midas.supervisor``)."""
    from midas.supervisor import CrashPolicy, Supervisor

    context = multiprocessing.get_context("spawn")
    policy = CrashPolicy(
        limit=settings.worker_crash_limit, window_s=settings.worker_crash_window_s,
        backoff_s=settings.worker_restart_backoff_s,
        max_backoff_s=settings.worker_restart_backoff_max_s,
    )
    with _metrics_directory() as metrics_dir:
        supervisor = Supervisor(
            lambda slot: context.Process(target=_serve_one, args=(settings,),
                                         kwargs={"reuse_port": True},
                                         name=f"midas-worker-{slot}"),
            workers, policy, on_exit=lambda process: _mark_dead(process, metrics_dir),
            stop_timeout_s=settings.shutdown_timeout_s + 5,
        )
        code = supervisor.run()
    sys.exit(code)


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


def _mark_dead(process: BaseProcess, metrics_dir: str) -> None:
    """Drop a finished worker's live gauges (its counters and histograms still count)."""
    from prometheus_client.multiprocess import mark_process_dead

    if process.pid is not None:
        mark_process_dead(process.pid, metrics_dir)


@main.command()
@click.option("--months", type=click.IntRange(1, 24), default=12, show_default=True,
              help="How much history to live through, up to now.")
def demo(months: int) -> None:
    """Load a believable luxury business through the service's own commands, then print
    the logins (never in production; a second run changes nothing)."""
    from midas.demo import DemoError, load_demo

    settings = Settings()
    configure_logging("WARNING", json=settings.log_json)  # the demo prints its own report
    if settings.environment == "production":
        raise click.ClickException("the demo never runs in production")
    settings = resolve_database(settings)
    asyncio.run(wait_and_migrate(settings, wait_s=60))
    click.echo(f"Loading {months} months of the demo business (a few minutes)...", err=True)
    try:
        outcome = run_loop(load_demo(settings, months=months), settings.event_loop)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(outcome.report())


@main.command("migrate")
def migrate_command() -> None:
    """Apply pending migrations once (under a lock)."""
    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    settings = resolve_database(settings)
    asyncio.run(wait_and_migrate(settings, wait_s=0))


@main.group()
def projections() -> None:
    """Inspect and rebuild read models."""


@projections.command("status")
def projections_status() -> None:
    """Position and lag of every projection; where and why one fails."""
    from midas.projection import projection_status

    async def run() -> None:
        async with open_database() as db:
            for s in await projection_status(db, _projectors()):
                leader = "leader running" if s.leader else "no leader"
                click.echo(f"{s.name:<20} position {s.position:>10}  lag {s.lag:>8}  {leader}")
                if (f := s.failure) is not None:
                    click.echo(f"{'':<20} FAILING on the event at position {f.position}"
                               f" since {f.since:%Y-%m-%d %H:%M:%S}, {f.attempts} attempt(s),"
                               f" next {f.next_retry_at:%H:%M:%S}: {f.error}")

    asyncio.run(run())


@projections.command("skip")
@click.argument("name")
@click.argument("position", type=click.IntRange(1))
@click.option("--reason", required=True, help="Why the event cannot be applied (audited).")
@click.option("--by", "actor", default=None, help="Who decides (default: the OS user).")
def projections_skip(name: str, position: int, reason: str, actor: str | None) -> None:
    """Have NAME pass over the event at POSITION, which it cannot apply.

    The log is not touched (its hash chain stays verifiable): the decision is recorded
    (who, when, why) and honoured by the runner and every rebuild. Correct what the event
    meant with a command afterwards (docs/architecture.md, "A poisonous event").
    """
    import getpass

    from midas.projection_failures import SkipRefused, skip_event

    async def run() -> None:
        projector = _projector(name)
        async with open_database() as db, db.acquire() as conn:
            try:
                await skip_event(conn, name, projector.handles, position, reason=reason,
                                 actor=actor or getpass.getuser())
            except SkipRefused as exc:
                raise click.ClickException(str(exc)) from None
        click.echo(f"{name}: skips the event at position {position}; retried now")

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
        async with open_database() as db:
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
        async with open_database() as db:
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
        async with open_database() as db:
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
@click.option("--role", type=click.Choice(["admin", "super_admin", "auditor"]),
              default="super_admin", show_default=True)
def users_create_admin(email: str, name: str, role: str) -> None:
    """Create a staff or auditor account; the password is prompted for, or read from
    stdin."""
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
    from midas.app import create_account
    from midas.domain.errors import DomainError
    from midas.domain.registry import AGGREGATES
    from midas.eventstore import EventStore, EventTypes, Repository
    from midas.security.pii import PiiCodec

    settings = resolve_database(Settings())
    async with open_database() as db:
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


@users.command("set-role")
@click.argument("email")
@click.argument("role", type=click.Choice(ROLES))
def users_set_role(email: str, role: str) -> None:
    """Change the role of the account with this email (e.g. grant auditor)."""
    asyncio.run(_set_role(email, role))
    click.echo(f"{email} is now {role}")


async def _set_role(email: str, role: str) -> None:
    from midas.app import change_account
    from midas.domain.accounts import Account
    from midas.domain.errors import DomainError
    from midas.domain.registry import AGGREGATES
    from midas.eventstore import EventStore, EventTypes, Repository
    from midas.security import credentials
    from midas.security.pii import PiiCodec

    def change(account: Account) -> list[Any]:
        account.change_role(role)
        return [credentials.set_fields(account.id, role=account.role)]

    async with open_database() as db:
        async with db.acquire() as conn:
            account_id = await credentials.email_owner(conn, email)
        if account_id is None:
            raise click.ClickException(f"no account with the email {email}")
        store = EventStore(db)
        store.start()
        try:
            repo = Repository(store, EventTypes(AGGREGATES),
                              field_codec=PiiCodec(db, store=store))
            await change_account(repo, account_id, change,
                                 {"actor": "cli", "actor_role": "system"})
        except DomainError as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            await store.close()


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
        async with open_database() as db:
            return await wrap_unwrapped_keys(db, batch_size=batch_size)

    try:
        wrapped = asyncio.run(run())
    except PiiError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrapped {wrapped} subject key(s)")


def _projectors() -> list[Projector]:
    from midas.app import read_models

    return read_models()


from midas.audit.cli import audit  # noqa: E402  (the `midas audit` group)

main.add_command(audit)

if __name__ == "__main__":
    main()
