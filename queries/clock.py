"""The service's clock, outside production (midas/clock.py)."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from midas.clock import movable
from midas.http.api import Api
from midas.http.keys import CLOCK, SETTINGS
from midas.http.problems import Problem

api = Api(tag="clock", kind="query")


class ClockState(BaseModel):
    now: str
    offset_s: float


@api.get("/api/v1/admin/clock", response=ClockState,
         summary="The service's time and how far it was moved forward (not in production)")
async def get_clock(request: web.Request) -> web.Response:
    clock = movable(request.app[CLOCK], request.app[SETTINGS].environment)
    if clock is None:
        raise Problem(404, "The clock cannot be moved here.")
    await clock.reload()
    return web.json_response({"now": clock().isoformat(),
                              "offset_s": clock.offset.total_seconds()})
