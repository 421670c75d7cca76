"""Read-your-writes: a query waits until its projections reach ``min_position``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import orjson
from aiohttp import web
from pydantic import BaseModel, Field

from midas.eventstore import AppendResult, Database
from midas.eventstore.notifier import Notifier
from midas.eventstore.replicas import Reader, Replicas
from midas.eventstore.store import head_position
from midas.http.fields import Position
from midas.http.problems import Problem
from midas.projection import CHECKPOINTS_CHANNEL

POSITION_HEADER = "Midas-Position"


class ConsistentQuery(BaseModel):
    """Query parameters every read-model query accepts."""

    model_config = {"extra": "forbid"}

    min_position: Position | None = Field(
        None, description="Answer only once the read model includes this log position."
    )


class CommandResult(BaseModel):
    """What every command answers: at least the log position of its last event."""

    position: int = Field(description="The log position of the command's last event: pass"
                                      " it as `min_position` to read your own write.")


_REACHED_SQL = (
    "SELECT CASE WHEN count(*) = $2 THEN min(position) END"
    " FROM projection_checkpoints WHERE name = ANY($1::text[])"
)
REPLICA_POLL_S = 0.02  # a standby hears no NOTIFY: how often its checkpoints are read


class ConsistencyGate:
    def __init__(self, db: Database, notifier: Notifier, timeout_s: float,
                 replicas: Replicas | None = None) -> None:
        self._db = db
        self._notifier = notifier
        self._timeout_s = timeout_s
        self._replicas = replicas

    async def reached(self, projections: Sequence[str], position: int,
                      db: Reader | None = None) -> bool:
        async with (db or self._db).acquire() as conn:
            low = await conn.fetchval(_REACHED_SQL, list(projections), len(projections))
        return low is not None and low >= position

    async def wait(self, projections: Sequence[str], position: int | None) -> None:
        """Return once every projection has reached ``position``, else answer 503. A
        position beyond the log's head was never answered by a command: 422."""
        if not position:
            return
        deadline = time.monotonic() + self._timeout_s
        if not await self.reached(projections, position):
            await self._within_head(position)
        while not await self.reached(projections, position):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _catching_up(position)
            await self._notifier.wait(CHECKPOINTS_CHANNEL, min(remaining, 0.25))

    async def reader(self, projections: Sequence[str], position: int | None) -> Reader:
        """Where a query reads ``projections``: a read replica in service whose
        checkpoints have reached ``position`` (waited for, else 503), or the primary when
        no replica serves (``wait``)."""
        replica = self._replicas.pick() if self._replicas is not None else None
        if replica is None:
            if position:
                await self.wait(projections, position)
            return self._db
        reader = self._replicas.reader(replica)  # type: ignore[union-attr]
        if position:
            deadline = time.monotonic() + self._timeout_s
            if not await self.reached(projections, position, reader):
                await self._within_head(position)  # the primary's head
            while not await self.reached(projections, position, reader):
                if time.monotonic() >= deadline:
                    raise _catching_up(position)
                await asyncio.sleep(REPLICA_POLL_S)
        return reader

    async def _within_head(self, position: int) -> None:
        async with self._db.acquire() as conn:
            head = await head_position(conn)
        if position > head:
            raise Problem(422, f"No command has answered position {position}: the log ends"
                          f" at {head}.", title="Invalid request", errors=[{
                              "field": "query.min_position", "message": "beyond the log's head",
                              "type": "beyond_head"}])


def _catching_up(position: int) -> Problem:
    return Problem(
        503,
        f"The read model has not reached position {position} yet.",
        title="Read model catching up",
        headers={"Retry-After": "1"},
    )


def command_response(
    result: AppendResult, body: dict[str, object], *, status: int = 201
) -> web.Response:
    """A command's answer: its body plus the position of its last event."""
    position = result.last_position
    return web.json_response(
        {**body, "position": position}, status=status, headers={POSITION_HEADER: str(position)},
        dumps=dumps,  # every command answers through here
    )


def dumps(value: object) -> str:
    """JSON for a response body: orjson, about ten times the standard library's speed
    (keys of any plain type, as ``json.dumps`` allows)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
