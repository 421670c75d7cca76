"""`midas audit`: chain verification, signed checkpoints, NDJSON export and import."""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import click
import orjson


def _database() -> Any:
    from midas.cli_database import open_database  # the one CLI database helper

    return open_database()


def _signing_key() -> bytes:
    from midas.audit.checkpoint import key_bytes
    from midas.config import Settings

    key = key_bytes(Settings().audit_signing_key)
    if key is None:
        raise click.ClickException("set MIDAS_AUDIT_SIGNING_KEY to sign and check checkpoints")
    return key


@click.group()
def audit() -> None:
    """Tamper evidence and export of the event log."""


@audit.command("verify")
@click.option("--from", "from_position", type=click.IntRange(1), default=1, show_default=True)
@click.option("--to", "to_position", type=click.IntRange(1), default=None)
def verify(from_position: int, to_position: int | None) -> None:
    """Recompute the hash chain; name the first broken position. Exit 1 if broken."""
    from midas.eventstore.chain import verify_chain

    async def run() -> Any:
        async with _database() as db, db.acquire() as conn:
            return await verify_chain(conn, from_position, to_position)

    report = asyncio.run(run())
    if report.ok:
        click.echo(f"ok: {report.checked} events verified, head position"
                   f" {report.head_position} hash {report.head_hash}")
        return
    click.echo(f"BROKEN at position {report.first_broken_position}: {report.reason}"
               f" ({report.checked} events verified before it)")
    sys.exit(1)


@audit.command("checkpoint")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to FILE instead of stdout.")
def checkpoint(output: Path | None) -> None:
    """Print a signed checkpoint of the chain head (MIDAS_AUDIT_SIGNING_KEY)."""
    from midas.audit.checkpoint import make_checkpoint

    key = _signing_key()

    async def run() -> dict[str, Any]:
        async with _database() as db, db.acquire() as conn:
            return await make_checkpoint(conn, key)

    document = orjson.dumps(asyncio.run(run()), option=orjson.OPT_INDENT_2) + b"\n"
    if output is None:
        click.echo(document.decode(), nl=False)
    else:
        output.write_bytes(document)


@audit.command("check-checkpoint")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def check_checkpoint_command(file: Path) -> None:
    """Check a checkpoint FILE against the log. Exit 1 if the log was rewritten."""
    from midas.audit.checkpoint import InvalidCheckpoint, check_checkpoint

    key = _signing_key()
    try:
        document = orjson.loads(file.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise click.ClickException(f"{file} is not JSON: {exc}") from None

    async def run() -> dict[str, Any]:
        async with _database() as db, db.acquire() as conn:
            return await check_checkpoint(conn, document, key)

    try:
        verdict = asyncio.run(run())
    except InvalidCheckpoint as exc:
        raise click.ClickException(f"not a checkpoint: {exc}") from None
    if verdict["valid"]:
        click.echo(f"ok: the log up to position {verdict['position']} is unchanged")
        return
    broken = verdict["first_broken_position"]
    where = f" (first broken position {broken})" if broken else ""
    click.echo(f"INVALID: {verdict['reason']}{where}")
    sys.exit(1)


@audit.command("export")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to FILE instead of stdout.")
@click.option("--after", type=click.IntRange(0), default=0, help="Events after this position.")
@click.option("--to", "to_position", type=click.IntRange(1), default=None)
@click.option("--stream", "stream_id", type=click.UUID, default=None)
@click.option("--type", "types", multiple=True, help="Event type (repeatable).")
@click.option("--actor", default=None)
@click.option("--since", type=click.DateTime(), default=None, help="Recorded at or after.")
@click.option("--until", type=click.DateTime(), default=None, help="Recorded before.")
def export_command(
    output: Path | None, after: int, to_position: int | None, stream_id: UUID | None,
    types: tuple[str, ...], actor: str | None, since: datetime | None, until: datetime | None,
) -> None:
    """Stream events as NDJSON (one event per line, as stored)."""
    from midas.audit.log import LogFilter
    from midas.audit.transfer import export

    flt = LogFilter(after, to_position, stream_id, types, actor, _aware(since), _aware(until))

    async def run() -> int:
        sink = output.open("wb") if output else sys.stdout.buffer
        try:
            async def write(chunk: bytes) -> None:
                sink.write(chunk)

            async with _database() as db:
                return await export(db, flt, write)
        finally:
            if output:
                sink.close()
            else:
                sink.flush()

    count = asyncio.run(run())
    click.echo(f"exported {count} events", err=True)


def _aware(value: datetime | None) -> datetime | None:
    from datetime import UTC

    return value.replace(tzinfo=UTC) if value and value.tzinfo is None else value


@audit.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_command(file: Path) -> None:
    """Load an export FILE into an EMPTY log; the chain is verified before committing."""
    from midas.audit.transfer import ImportRefused, import_log

    async def run() -> Any:
        async with _database() as db:
            with file.open("rb") as lines:
                return await import_log(db, lines)

    try:
        report = asyncio.run(run())
    except ImportRefused as exc:
        raise click.ClickException(f"import refused, nothing written: {exc}") from None
    click.echo(f"imported {report.checked} events; chain ok, head position"
               f" {report.head_position} hash {report.head_hash}")
