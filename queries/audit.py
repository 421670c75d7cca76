"""Audit queries over the event log itself: log, streams, timelines, time travel,
chain verification, signed checkpoints and NDJSON export. Read only."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import orjson
from aiohttp import web
from pydantic import BaseModel, Field, model_validator

from midas.audit import log as audit_log
from midas.audit.checkpoint import key_bytes, make_checkpoint
from midas.audit.timeline import booking_timeline
from midas.audit.timetravel import NothingThen, aggregate_as_of
from midas.audit.transfer import export
from midas.domain.registry import AGGREGATES
from midas.eventstore import EventTypes
from midas.eventstore.chain import verify_chain
from midas.http.api import Api
from midas.http.context import path_uuid
from midas.http.fields import Instant, Line, Slug
from midas.http.keys import DATABASE, PROJECTORS, SETTINGS
from midas.http.problems import Problem
from midas.replay import NoReadModel, read_model_as_of
from midas.security import credentials
from midas.security.events import TABLE as SECURITY_EVENTS
from midas.security.events import Kind, subject_of

api = Api(tag="audit", kind="query")
NDJSON = "application/x-ndjson"
MAX_POSITION = 2**63 - 1  # bigint
MAX_VERSION = 2**31 - 1  # integer
_TYPES = EventTypes(AGGREGATES)
EventType = Annotated[Line, Field(max_length=200)]


class LogQuery(BaseModel):
    model_config = {"extra": "forbid"}

    after: int = Field(0, ge=0, le=MAX_POSITION,
                      description="Events after this position (keyset paging).")
    to: int | None = Field(None, ge=1, le=MAX_POSITION,
                           description="Up to and including this position.")
    stream_id: UUID | None = None
    type: list[EventType] | EventType | None = Field(
        None, max_length=100, description="Event type(s); repeat to add.")
    actor: Line | None = Field(None, max_length=200)
    since: Instant | None = Field(None, description="Recorded at or after this instant.")
    until: Instant | None = Field(None, description="Recorded before this instant.")

    def log_filter(self) -> audit_log.LogFilter:
        types = [self.type] if isinstance(self.type, str) else list(self.type or [])
        return audit_log.LogFilter(self.after, self.to, self.stream_id, types, self.actor,
                                   self.since, self.until)


class LogPageQuery(LogQuery):
    limit: int = Field(100, ge=1, le=1000)


class EventView(BaseModel):
    position: int
    stream_id: UUID
    version: int
    type: str
    data: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: str
    hash: str


class EventPage(BaseModel):
    events: list[EventView]
    next_after: int | None = Field(None, description="Pass as `after` for the next page.")


@api.get("/api/v1/audit/events", summary="The event log, filtered, in pages by position",
         query=LogPageQuery, response=EventPage)
async def list_events(request: web.Request, query: LogPageQuery) -> web.Response:
    async with request.app[DATABASE].acquire() as conn:
        rows = await audit_log.page(conn, query.log_filter(), query.after, query.limit)
    events = [audit_log.event_json(r) for r in rows]
    next_after = events[-1]["position"] if len(events) == query.limit else None
    return _json({"events": events, "next_after": next_after})


class StreamQuery(BaseModel):
    model_config = {"extra": "forbid"}

    after_version: int = Field(0, ge=0, le=MAX_VERSION)
    limit: int = Field(1000, ge=1, le=1000)


@api.get("/api/v1/audit/streams/{id}", summary="One stream's history", query=StreamQuery,
         response=EventPage)
async def stream_history(request: web.Request, query: StreamQuery) -> web.Response:
    stream_id = path_uuid(request)
    async with request.app[DATABASE].acquire() as conn:
        rows = await conn.fetch(
            f"SELECT {audit_log.COLUMNS} FROM events WHERE stream_id = $1 AND version > $2"
            " ORDER BY version LIMIT $3", stream_id, query.after_version, query.limit,
        )
    if not rows and query.after_version == 0:
        raise Problem(404, f"No stream {stream_id} in the log.")
    events = [audit_log.event_json(r) for r in rows]
    next_after = events[-1]["version"] if len(events) == query.limit else None
    return _json({"events": events, "next_after": next_after})


class StateQuery(BaseModel):
    model_config = {"extra": "forbid"}

    version: int | None = Field(None, ge=1, le=MAX_VERSION,
                                description="Replay up to this version.")
    at: Instant | None = Field(None, description="Replay events recorded until then.")


class AggregateState(BaseModel):
    stream_id: UUID
    type: str
    version: int
    position: int
    recorded_at: str
    state: dict[str, Any]


@api.get("/api/v1/audit/streams/{id}/state",
         summary="An aggregate's state as of a version or an instant (time travel)",
         query=StateQuery, response=AggregateState)
async def stream_state(request: web.Request, query: StateQuery) -> web.Response:
    stream_id = path_uuid(request)
    async with request.app[DATABASE].acquire() as conn:
        try:
            state = await aggregate_as_of(conn, _TYPES, stream_id, version=query.version,
                                          at=query.at)
        except NothingThen as exc:
            raise Problem(404, str(exc)) from None
        except LookupError as exc:
            raise Problem(409, f"The stream holds an event Midas cannot replay: {exc}") from None
    return _json(state)


class TimelineEntry(BaseModel):
    position: int
    at: str = Field(description="When the store recorded the event.")
    occurred_at: str | None = Field(None, description="The business time of the event.")
    stream_id: UUID
    version: int
    type: str
    actor: str | None
    actor_role: str | None
    correlation_id: str | None
    summary: str
    data: dict[str, Any]


class Timeline(BaseModel):
    booking_id: UUID
    entries: list[TimelineEntry]


@api.get("/api/v1/audit/bookings/{id}/timeline",
         summary="A booking's story in plain words, across its streams", response=Timeline)
async def timeline(request: web.Request) -> web.Response:
    booking_id = path_uuid(request)
    async with request.app[DATABASE].acquire() as conn:
        entries = await booking_timeline(conn, booking_id)
    if not entries:
        raise Problem(404, f"No booking {booking_id} in the log.")
    return _json({"booking_id": str(booking_id), "entries": entries})


class AsOfQuery(BaseModel):
    model_config = {"extra": "forbid"}

    position: int = Field(..., ge=0, le=MAX_POSITION,
                          description="Replay the log up to this position.")
    limit: int = Field(1000, ge=1, le=10_000, description="Rows per table at most.")


class ReadModelAsOf(BaseModel):
    name: str
    position: int
    tables: dict[str, list[dict[str, Any]]]


@api.get("/api/v1/audit/read-models/{name}",
         summary="A read model as of a past position (replayed into a shadow copy)",
         query=AsOfQuery, response=ReadModelAsOf, path_params={"name": Slug})
async def read_model(request: web.Request, query: AsOfQuery) -> web.Response:
    name = request.match_info["name"]
    projector = next((p for p in request.app[PROJECTORS] if p.name == name), None)
    if projector is None:
        raise Problem(404, f"No read model named {name!r}.")
    db = request.app[DATABASE]
    async with db.acquire() as conn:
        head = await conn.fetchval("SELECT coalesce(max(position), 0) FROM events")
    if query.position > head:
        raise Problem(422, f"Position {query.position} is beyond the head of the log ({head}).")
    try:
        tables = await read_model_as_of(db, projector, query.position, limit=query.limit)
    except NoReadModel as exc:
        raise Problem(409, str(exc)) from None
    return _json({"name": name, "position": query.position, "tables": tables})


class VerifyQuery(BaseModel):
    model_config = {"extra": "forbid"}

    from_position: int = Field(1, ge=1, le=MAX_POSITION, alias="from")
    to: int | None = Field(None, ge=1, le=MAX_POSITION)

    @model_validator(mode="after")
    def _ordered(self) -> VerifyQuery:
        if self.to is not None and self.to < self.from_position:
            raise ValueError("`to` must not be before `from`")
        return self


class ChainVerdict(BaseModel):
    ok: bool
    checked: int
    head_position: int
    head_hash: str
    first_broken_position: int | None
    reason: str | None


@api.get("/api/v1/audit/verify", summary="Verify the hash chain (a range of positions)",
         query=VerifyQuery, response=ChainVerdict)
async def verify(request: web.Request, query: VerifyQuery) -> web.Response:
    async with request.app[DATABASE].acquire() as conn:
        report = await verify_chain(conn, query.from_position, query.to)
    return _json(chain_verdict(report))


def chain_verdict(report: Any) -> dict[str, Any]:
    return {"ok": report.ok, "checked": report.checked, "head_position": report.head_position,
            "head_hash": report.head_hash, "first_broken_position": report.first_broken_position,
            "reason": report.reason}


class Checkpoint(BaseModel):
    algorithm: str
    position: int
    head_hash: str
    created_at: str
    signature: str


@api.get("/api/v1/audit/checkpoint", summary="A signed checkpoint of the chain head",
         response=Checkpoint)
async def checkpoint(request: web.Request) -> web.Response:
    key = signing_key(request)
    async with request.app[DATABASE].acquire() as conn:
        return _json(await make_checkpoint(conn, key))


def signing_key(request: web.Request) -> bytes:
    key = key_bytes(request.app[SETTINGS].audit_signing_key)
    if key is None:
        raise Problem(409, "Set MIDAS_AUDIT_SIGNING_KEY to sign and check checkpoints.",
                      title="No audit signing key")
    return key


@api.get("/api/v1/audit/export", summary="The event log as NDJSON, streamed",
         query=LogQuery, content_type=NDJSON)
async def export_events(request: web.Request, query: LogQuery) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": NDJSON})
    await response.prepare(request)
    await export(request.app[DATABASE], query.log_filter(), response.write)
    await response.write_eof()
    return response


def _json(body: dict[str, Any]) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


# -- security events ----------------------------------------------------------------------------


class SecurityEventsQuery(BaseModel):
    model_config = {"extra": "forbid"}

    after: int = Field(0, ge=0, le=MAX_POSITION, description="Records after this id (paging).")
    limit: int = Field(100, ge=1, le=1000)
    kind: list[Kind] | Kind | None = Field(None, description="Kind(s); repeat to add.")
    account_id: UUID | None = None
    email: Line | None = Field(None, min_length=3, max_length=254,
                              description="Records about this email: its account's, and"
                                          " failed sign-ins naming it (by keyed hash).")
    since: Instant | None = Field(None, description="Occurred at or after this instant.")
    until: Instant | None = Field(None, description="Occurred before this instant.")


class SecurityEventView(BaseModel):
    id: int
    occurred_at: str
    kind: Kind
    account_id: UUID | None
    subject: str | None = Field(description="A keyed hash of an email matching no account.")
    actor: str | None
    client_ip: str | None
    route: str | None
    request_id: str | None
    detail: dict[str, Any]


class SecurityEventPage(BaseModel):
    events: list[SecurityEventView]
    next_after: int | None = Field(None, description="Pass as `after` for the next page.")


@api.get("/api/v1/audit/security-events",
         summary="Security events: failed sign-ins, lockouts, refresh-token reuse, refusals,"
                 " webhook signature failures, erasures", query=SecurityEventsQuery,
         response=SecurityEventPage)
async def security_events(request: web.Request, query: SecurityEventsQuery) -> web.Response:
    kinds = [query.kind] if isinstance(query.kind, Kind) else list(query.kind or [])
    where: list[str] = ["id > $1"]
    args: list[Any] = [query.after]

    def condition(sql: str, value: Any) -> None:
        args.append(value)
        where.append(sql.replace("?", f"${len(args)}"))

    if kinds:
        condition("kind = ANY(?::text[])", [k.value for k in kinds])
    if query.account_id is not None:
        condition("account_id = ?", query.account_id)
    if query.since is not None:
        condition("occurred_at >= ?", query.since)
    if query.until is not None:
        condition("occurred_at < ?", query.until)
    async with request.app[DATABASE].acquire() as conn:
        if query.email is not None:
            owner = await credentials.email_owner(conn, query.email)
            args.extend([subject_of(request.app[SETTINGS], query.email), owner])
            where.append(f"(subject = ${len(args) - 1} OR account_id = ${len(args)})")
        args.append(query.limit)
        rows = await conn.fetch(
            f"SELECT * FROM {SECURITY_EVENTS} WHERE {' AND '.join(where)}"
            f" ORDER BY id LIMIT ${len(args)}", *args)
    events = [{**dict(r), "occurred_at": r["occurred_at"].isoformat(),
               "account_id": str(r["account_id"]) if r["account_id"] else None,
               "detail": orjson.loads(r["detail"]) if isinstance(r["detail"], str)
               else r["detail"]} for r in rows]
    next_after = events[-1]["id"] if len(events) == query.limit else None
    return _json({"events": events, "next_after": next_after})
