"""The booking rules in force (admins): read from the rules' aggregate itself, which the
repository caches, as every command reads them, so the answer never lags a change."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from midas.http.api import Api
from midas.http.keys import REPOSITORY
from midas.policy import rules_in_force

api = Api(tag="booking rules", kind="query")


class ScheduleView(BaseModel):
    first_share: str
    balance_days_before: int | None


class CollectionView(BaseModel):
    reminder_days: int
    alert_after_hours: int
    grace_days: int


class PointsView(BaseModel):
    points_per_unit: int
    max_share: str


class RulesView(BaseModel):
    change_notice_hours: int
    payment_schedules: dict[str, ScheduleView]
    collection: CollectionView
    points: PointsView
    version: int  # of the rules' stream; 0: the defaults, no admin has set a rule


@api.get("/api/v1/booking-rules", summary="The booking rules in force (admins)",
         response=RulesView)
async def get_booking_rules(request: web.Request) -> web.Response:
    rules, version = await rules_in_force(request.app[REPOSITORY])
    return web.json_response({**rules.to_dict(), "version": version})
