"""User-given URLs (external calendars) reach public addresses only: checked when
subscribing, after DNS, after each redirect, with the resolved address pinned; and the
errors never tell whether a port is open."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from midas.http.keys import CALENDAR_POLLER, DATABASE
from midas.security.outbound import OutboundGuard

CAR = {"name": "Huracan", "category": "car", "location": "US-CA", "rate": 150_000}
CALENDAR = (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Owner//EN\r\nBEGIN:VEVENT\r\n"
            b"UID:a@owner.test\r\nDTSTAMP:20261101T000000Z\r\nDTSTART:20261103T100000Z\r\n"
            b"DTEND:20261103T140000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


class Source:
    """A calendar server on 127.0.0.1: /owner.ics, and /redirect?to=URL."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.port = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.paths.append(request.path)
        if request.path == "/redirect":
            raise web.HTTPFound(request.query["to"])
        if request.path == "/loop":
            raise web.HTTPFound("/loop")
        return web.Response(body=CALENDAR, content_type="text/calendar")

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture
async def source(aiohttp_server: Any) -> Source:
    src = Source()
    app = web.Application()
    app.router.add_get("/{tail:.*}", src.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    src.port = server.port
    return src


@pytest.fixture
def start(booking_services: Callable[..., Any]) -> Callable[..., Any]:
    async def start(**overrides: Any) -> Any:
        return await booking_services(calendar_poller_enabled=False, **overrides)

    return start


async def _item(client: Any, auth: Any) -> str:
    response = await client.post("/api/v1/items", json=CAR, headers=auth("admin"))
    assert response.status == 201, await response.text()
    return str((await response.json())["id"])


async def _subscribe(client: Any, auth: Any, item: str, url: str) -> Any:
    return await client.post(f"/api/v1/calendar/items/{item}/subscriptions",
                             json={"name": "owner", "url": url}, headers=auth("admin"))


async def _stored(client: Any, item: str, url: str) -> str:
    """A subscription as if its URL had passed when subscribing (DNS answers change)."""
    subscription = uuid4()
    now = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    async with client.server.app[DATABASE].acquire() as conn:
        await conn.execute(
            "INSERT INTO cal_subscriptions (id, item_id, name, url, poll_interval_s,"
            " next_poll_at, created_at) VALUES ($1, $2, 'owner', $3, 900, $4, $4)",
            subscription, item, url, now)
    return str(subscription)


async def _poll(client: Any, auth: Any, subscription: str) -> dict[str, Any]:
    response = await client.post(f"/api/v1/calendar/subscriptions/{subscription}/poll",
                                 headers=auth("admin"))
    """A poll's outcome: synced (200), or the problem+json of a calendar that cannot be used
    (422), as status, error and detail."""
    body = dict(await response.json())
    if response.status == 422:
        assert response.content_type == "application/problem+json"
        detail = body["detail"].removeprefix("the calendar cannot be used: ")
        return {"status": "error", "error": body["error"], "detail": detail}
    assert response.status == 200, body
    return body


async def test_subscribing_to_an_address_that_is_not_public_is_422(
    start: Any, auth: Any, source: Source
) -> None:
    client = await start()
    item = await _item(client, auth)
    for url in (source.url("/owner.ics"), source.url("/owner.ics", "localhost"),
                "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/cal.ics",
                source.url("/owner.ics", "[::ffff:127.0.0.1]"), "http://[::1]/cal.ics",
                "http://0.0.0.0/cal.ics"):
        response = await _subscribe(client, auth, item, url)
        assert response.status == 422, (url, await response.text())
        [error] = (await response.json())["errors"]
        assert (error["field"], error["type"]) == ("body.url", "url_not_public"), url
    async with client.server.app[DATABASE].acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM cal_subscriptions") == 0
    assert source.paths == []
    allowed = await start(outbound_allowed_hosts=["127.0.0.1"])
    assert (await _subscribe(allowed, auth, item, source.url("/owner.ics"))).status == 201


async def test_a_name_that_resolves_to_loopback_is_refused_when_fetched(
    start: Any, auth: Any, source: Source
) -> None:
    client = await start(outbound_allowed_hosts=["127.0.0.1"])  # the address, not the name
    item = await _item(client, auth)
    subscription = await _stored(client, item, source.url("/owner.ics", "localhost"))
    outcome = await _poll(client, auth, subscription)
    assert (outcome["status"], outcome["error"]) == ("error", "forbidden")
    assert source.paths == []


async def test_every_redirect_is_checked_before_it_is_followed(
    start: Any, auth: Any, source: Source
) -> None:
    client = await start(outbound_allowed_hosts=["127.0.0.1"])
    item = await _item(client, auth)
    for target in (source.url("/owner.ics", "localhost"),
                   "http://169.254.169.254/latest/meta-data/",
                   source.url("/owner.ics", "[::ffff:127.0.0.1]"),
                   "http://[fd00:ec2::254]/latest/meta-data/", "http://10.0.0.1/cal.ics",
                   "ftp://127.0.0.1/cal.ics"):
        subscription = await _stored(client, item, source.url(f"/redirect?to={target}"))
        outcome = await _poll(client, auth, subscription)
        assert (outcome["status"], outcome["error"]) == ("error", "forbidden"), target
    assert set(source.paths) == {"/redirect"}  # never the redirects' targets
    looping = await _poll(client, auth, await _stored(client, item, source.url("/loop")))
    assert (looping["error"], looping["detail"]) == ("http", "more than 3 redirects")
    followed = await _subscribe(client, auth, item,
                                source.url(f"/redirect?to={source.url('/owner.ics')}"))
    assert followed.status == 201, await followed.text()
    outcome = await _poll(client, auth, (await followed.json())["id"])
    assert (outcome["status"], outcome["added"]) == ("synced", 1)
    assert source.paths[-2:] == ["/redirect", "/owner.ics"]


class Dns(AbstractResolver):
    """DNS as the test sets it (no real zone can be changed here): each name's answers,
    one per lookup in turn, the last repeated."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        name = host.rstrip(".")
        self.lookups.append(name)
        turn = self.answers[name]
        addresses = turn.pop(0) if len(turn) > 1 else turn[0]
        return [{"hostname": name, "host": a, "port": port,
                 "family": socket.AF_INET6 if ":" in a else socket.AF_INET,
                 "proto": 0, "flags": 0} for a in addresses]

    async def close(self) -> None:
        pass


async def test_every_resolved_address_is_checked_and_the_checked_one_is_used(
    start: Any, auth: Any, source: Source
) -> None:
    client = await start(calendar_fetch_timeout_s=1.0)
    dns = Dns({"private.test": [["10.0.0.7"]], "mixed.test": [["8.8.8.8", "127.0.0.1"]],
               "mapped.test": [["::ffff:127.0.0.1"]], "metadata.test": [["169.254.169.254"]],
               # public at the first lookup, loopback at any later one (DNS rebinding)
               "rebind.test": [["192.0.0.9"], ["127.0.0.1"]]})
    client.server.app[CALENDAR_POLLER].guard = OutboundGuard(resolver=dns)
    item = await _item(client, auth)
    for name in ("private.test", "mixed.test", "mapped.test", "metadata.test"):
        response = await _subscribe(client, auth, item, f"http://{name}:{source.port}/x.ics")
        assert response.status == 422, name
        outcome = await _poll(client, auth, await _stored(
            client, item, f"http://{name}:{source.port}/owner.ics"))
        assert outcome["error"] == "forbidden", name
    lookups = len(dns.lookups)
    subscription = await _stored(client, item, f"http://rebind.test:{source.port}/owner.ics")
    outcome = await _poll(client, auth, subscription)
    # The connection went to the address that was checked (public, unreachable from
    # here), not to a second answer.
    assert outcome["error"] == "unreachable"
    assert dns.lookups[lookups:] == ["rebind.test"] and source.paths == []


@pytest.fixture
async def ports() -> AsyncIterator[dict[str, int]]:
    """127.0.0.1 ports: closed, silent (accepts, never answers), hanging up at once, and
    answering something that is not HTTP."""
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async def not_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n")
        await writer.drain()
        writer.close()

    servers = {name: await asyncio.start_server(handler, "127.0.0.1", 0)
               for name, handler in (("silent", silent), ("hang_up", hang_up),
                                     ("not_http", not_http))}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    yield {"closed": closed, **{name: server.sockets[0].getsockname()[1]
                                for name, server in servers.items()}}
    for server in servers.values():
        server.close()


async def test_errors_do_not_tell_whether_a_port_is_open(
    start: Any, auth: Any, ports: dict[str, int]
) -> None:
    client = await start(outbound_allowed_hosts=["127.0.0.1"], calendar_fetch_timeout_s=0.5)
    item = await _item(client, auth)
    outcomes = {}
    for name, port in ports.items():
        outcome = await _poll(client, auth, await _stored(
            client, item, f"http://127.0.0.1:{port}/owner.ics"))
        outcomes[name] = (outcome["status"], outcome["error"], outcome["detail"])
    assert len(set(outcomes.values())) == 1, outcomes
    assert outcomes["closed"][:2] == ("error", "unreachable")
    async with client.server.app[DATABASE].acquire() as conn:
        stored = await conn.fetch("SELECT DISTINCT kind, message FROM cal_integration_errors")
        last = await conn.fetch("SELECT DISTINCT last_error FROM cal_subscriptions")
    assert len(stored) == 1 and len(last) == 1
