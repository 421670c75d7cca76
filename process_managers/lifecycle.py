"""The booking lifecycle's timers: an unpaid hold expires, the item is handed over at the
start (with `MIDAS_AUTO_CHECK_OUT`) and taken back after the end."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from aiohttp import web

from commands.bookings import check_in, check_out, expire_hold
from midas.http.keys import REPOSITORY, SETTINGS
from process_managers import Timer, caused_by

ACTOR = "scheduler"


def timers(app: web.Application) -> dict[str, Timer]:
    """The due-task kinds of the booking lifecycle and the commands they run."""
    repo = app[REPOSITORY]

    async def run_expire(booking_id: UUID, now: datetime) -> object:
        return await expire_hold(repo, booking_id, now, caused_by(ACTOR, "hold expiry"))

    async def run_check_out(booking_id: UUID, now: datetime) -> object:
        if not app[SETTINGS].auto_check_out:
            return None
        return await check_out(repo, booking_id, now, caused_by(ACTOR, "start reached"))

    async def run_check_in(booking_id: UUID, now: datetime) -> object:
        return await check_in(repo, booking_id, now, caused_by(ACTOR, "end passed"))

    return {"expire_hold": run_expire, "check_out": run_check_out, "check_in": run_check_in}
