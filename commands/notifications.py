"""Notification commands: retry a dead letter; the open-tracking pixel."""

from __future__ import annotations

import base64
from typing import Annotated
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, Field

from midas.http.api import Api
from midas.http.context import path_row_id
from midas.http.fields import RowId
from midas.http.keys import CLOCK, DATABASE, SETTINGS
from midas.http.problems import Problem
from midas.notifications.delivery import PIXEL_PATH, count_stat
from midas.notifications.outbox import OUTBOX_TABLE

api = Api(tag="notifications", kind="command")
_PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


# The pixel's file name: the email's tracking UUID, then ".gif".
PixelName = Annotated[str, Field(
    pattern=r"^[0-9a-fA-F]{8}(-?[0-9a-fA-F]{4}){3}-?[0-9a-fA-F]{12}(\.gif)?$")]


class Retried(BaseModel):
    id: int
    status: str


@api.post("/api/v1/admin/notifications/outbox/{id}/retry", status=200, response=Retried,
          path_params={"id": RowId},
          summary="Send a dead-lettered (or bounced) email again: back to pending, due now")
async def retry_email(request: web.Request) -> web.Response:
    outbox_id = path_row_id(request)
    async with request.app[DATABASE].acquire() as conn:
        retried = await conn.fetchval(
            f"UPDATE {OUTBOX_TABLE} SET status = 'pending', attempts = 0,"
            " next_attempt_at = $2, last_error = NULL, updated_at = now()"
            " WHERE id = $1 AND status IN ('dead', 'bounced') RETURNING status",
            outbox_id, request.app[CLOCK](),
        )
        if retried is None:
            status = await conn.fetchval(f"SELECT status FROM {OUTBOX_TABLE} WHERE id = $1",
                                         outbox_id)
            if status is None:
                raise web.HTTPNotFound()
            raise Problem(409, "Only dead-lettered or bounced emails can be retried.",
                          state=status)
    return web.json_response({"id": outbox_id, "status": retried})


@api.get(PIXEL_PATH, summary="Open-tracking pixel of HTML emails (a 1x1 GIF)",
         content_type="image/gif", path_params={"token": PixelName})
async def email_opened(request: web.Request) -> web.Response:
    if not request.app[SETTINGS].email_tracking:
        raise web.HTTPNotFound()
    try:
        token = UUID(request.match_info["token"].removesuffix(".gif"))
    except ValueError:
        raise web.HTTPNotFound() from None
    async with request.app[DATABASE].acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"UPDATE {OUTBOX_TABLE} SET opened_at = $2 WHERE tracking_id = $1"
            " AND opened_at IS NULL AND provider IS NOT NULL RETURNING provider, template",
            token, request.app[CLOCK](),
        )
        if row is not None:  # first open only
            await count_stat(conn, row["provider"], row["template"], "opened")
    return web.Response(body=_PIXEL, content_type="image/gif",
                        headers={"Cache-Control": "no-store, private"})
