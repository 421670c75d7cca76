"""The export of all personal data held about a person (GDPR articles 15 and 20): their
own, or anyone's for a super admin (on the person's request). Customers asking for
anyone else's get 404."""

from __future__ import annotations

import logging

from aiohttp import web

from midas.domain.account_events import ACCOUNT_REGISTERED
from midas.http.api import Api
from midas.http.auth import Role, require_principal
from midas.http.consistency import ConsistentQuery
from midas.http.context import path_uuid
from midas.http.keys import CLOCK, DATABASE, GATE
from midas.http.problems import Problem
from queries.consents import NO_STORE, own_or_hidden
from queries.personal_data import PersonalDataExport, personal_data

log = logging.getLogger(__name__)
api = Api(tag="accounts", kind="query")
EXPORT_READS = ("accounts", "profiles", "bookings", "payments", "notifications")


@api.get("/api/v1/accounts/{id}/export", query=ConsistentQuery, response=PersonalDataExport,
         problems={403: "Only the person or a super admin may export personal data"},
         summary="Download all personal data held about an account, as JSON (own, or"
                 " super admins on request)")
async def get_export(request: web.Request, query: ConsistentQuery) -> web.Response:
    principal, account_id = require_principal(request), path_uuid(request)
    own = own_or_hidden(principal, account_id)
    await request.app[GATE].wait(EXPORT_READS, query.min_position)
    async with request.app[DATABASE].acquire() as conn:
        known = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM events WHERE stream_id = $1"
            " AND type = $2)", account_id, ACCOUNT_REGISTERED)
        if not known:
            raise web.HTTPNotFound()
        if not own and principal.role != Role.SUPER_ADMIN:
            raise Problem(403, "Only the person or a super admin may export personal data.")
        export = await personal_data(conn, account_id, request.app[CLOCK]())
    log.info("personal data exported", extra={
        "account": str(account_id), "by": str(principal.account_id),
        "by_role": principal.role.value})
    return web.json_response(text=export.model_dump_json(), headers={
        **NO_STORE,
        "Content-Disposition": f'attachment; filename="midas-personal-data-{account_id}.json"',
    })
