"""Read-your-writes: a query waits until its projections reach ``min_position``."""

from __future__ import annotations

import time
from collections.abc import Sequence

import orjson
from aiohttp import web
from pydantic import BaseModel, Field

from midas.eventstore import AppendResult, Database
from midas.eventstore.notifier import Notifier
from midas.http.problems import Problem
from midas.projection import CHECKPOINTS_CHANNEL

POSITION_HEADER = "Midas-Position"


class ConsistentQuery(BaseModel):
    """Query parameters every read-model query accepts."""

    model_config = {"extra": "forbid"}

    min_position: int | None = Field(
        None, ge=0, description="Answer only once the read model includes this log position."
    )


class ConsistencyGate:
    def __init__(self, db: Database, notifier: Notifier, timeout_s: float) -> None:
        self._db = db
        self._notifier = notifier
        self._timeout_s = timeout_s

    async def reached(self, projections: Sequence[str], position: int) -> bool:
        async with self._db.acquire() as conn:
            low = await conn.fetchval(
                "SELECT CASE WHEN count(*) = $2 THEN min(position) END"
                " FROM projection_checkpoints WHERE name = ANY($1::text[])",
                list(projections), len(projections),
            )
        return low is not None and low >= position

    async def wait(self, projections: Sequence[str], position: int | None) -> None:
        """Return once every projection has reached ``position``, else answer 503."""
        if not position:
            return
        deadline = time.monotonic() + self._timeout_s
        while not await self.reached(projections, position):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Problem(
                    503,
                    f"The read model has not reached position {position} yet.",
                    title="Read model catching up",
                    headers={"Retry-After": "1"},
                )
            await self._notifier.wait(CHECKPOINTS_CHANNEL, min(remaining, 0.25))


def command_response(
    result: AppendResult, body: dict[str, object], *, status: int = 201
) -> web.Response:
    """A command's answer: its body plus the position of its last event."""
    position = result.last_position
    return web.json_response(
        {**body, "position": position}, status=status, headers={POSITION_HEADER: str(position)},
        dumps=_dumps,  # every command answers through here: orjson is ~10x the stdlib's
    )


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()
