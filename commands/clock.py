"""Moving the service's clock forward, outside production (midas/clock.py)."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from midas.clock import movable
from midas.http.api import Api
from midas.http.keys import CLOCK, SETTINGS
from midas.http.problems import Problem
from queries.clock import ClockState  # the same answer as reading the clock

api = Api(tag="clock", kind="command")
MAX_ADVANCE_S = 366 * 24 * 3600


class AdvanceClock(BaseModel):
    model_config = ConfigDict(extra="forbid")

    advance_s: float = Field(gt=0, le=MAX_ADVANCE_S, examples=[1860],
                             description="Seconds to move the clock forward (at most a year).")


@api.post("/api/v1/admin/clock", body=AdvanceClock, response=ClockState, status=200,
          summary="Move the service's clock forward, for every process (not in production)")
async def post_clock(request: web.Request, body: AdvanceClock) -> web.Response:
    """Timers then fire as they would have: holds expire, reminders go out, deposits are
    authorised. 404 where the clock cannot be moved (production)."""
    clock = movable(request.app[CLOCK], request.app[SETTINGS].environment)
    if clock is None:
        raise Problem(404, "The clock cannot be moved here.")
    now = await clock.advance(timedelta(seconds=body.advance_s))
    return web.json_response({"now": now.isoformat(),
                              "offset_s": clock.offset.total_seconds()})
