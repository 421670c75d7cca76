"""Headers on every response (no sniffing, no framing, no referrer, no version banner,
no caching of personal data), and what aiohttp's parser refuses answered as problem+json."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from midas.app import all_endpoints
from midas.http.server import AppRunner
from tests.e2e.auth_support import bearer, register, signed_in
from tests.e2e.auth_support import login as login_answer
from tests.e2e.test_cli import free_port, wait_healthy

_PARAM = re.compile(r"\{[^}]+\}")
CACHEABLE = {"GET /openapi.json", "GET /docs", "GET /docs/swagger-ui.css",  # public, the
             "GET /docs/swagger-ui-bundle.js", "GET /docs/swagger-initializer.js"}  # same for all


def assert_secured(headers: Any, what: str) -> None:
    assert headers.get("X-Content-Type-Options") == "nosniff", what
    assert headers.get("X-Frame-Options") == "DENY", what
    assert "frame-ancestors 'none'" in headers.get("Content-Security-Policy", ""), what
    assert headers.get("Referrer-Policy") == "no-referrer", what
    assert headers.get("Server") == "Midas", what


async def test_every_route_answers_with_the_security_headers(app_client: Any,
                                                             auth: Any) -> None:
    """Each route as an admin, with an empty body: successes and refusals alike."""
    admin = auth("admin")
    for endpoint in all_endpoints():
        key = f"{endpoint.method} {endpoint.path}"
        path = _PARAM.sub(lambda _: str(uuid.uuid4()), endpoint.path)
        response = await app_client.request(
            endpoint.method, path, headers=admin,
            json=None if endpoint.method in ("GET", "DELETE") else {})
        await response.read()
        assert_secured(response.headers, f"{key}: {response.status}")
        expected = "public, max-age=300" if key in CACHEABLE else "no-store"
        assert response.headers.get("Cache-Control") == expected, (key, response.status)


async def test_errors_of_every_kind_carry_them_too(app_client: Any, auth: Any) -> None:
    answers = [
        await app_client.get("/nowhere"),  # 404
        await app_client.patch("/api/v1/items"),  # 405
        await app_client.get("/api/v1/bookings"),  # 401
        await app_client.get("/api/v1/admin/errors", headers=auth("customer")),  # 403
        await app_client.post("/api/v1/items", data=b"{", headers={  # 400
            **auth("admin"), "Content-Type": "application/json"}),
        await app_client.post("/api/v1/auth/login", json={"email": "a@b.c",
                                                          "password": "x"}),  # 401
    ]
    assert [a.status for a in answers] == [404, 405, 401, 403, 400, 401]
    for answer in answers:
        assert answer.content_type == "application/problem+json"
        assert_secured(answer.headers, f"{answer.method} {answer.url}")
        assert answer.headers["Cache-Control"] == "no-store"


async def test_answers_with_personal_data_or_tokens_are_never_stored(app_client: Any) -> None:
    created = await register(app_client)
    tokens = await signed_in(app_client)
    login = await login_answer(app_client)
    account = await app_client.get(f"/api/v1/accounts/{created['id']}",
                                   params={"min_position": created["position"]},
                                   headers=bearer(tokens))
    feed_token = await app_client.post(
        f"/api/v1/calendar/feeds/customers/{created['id']}/token", headers=bearer(tokens))
    feed = await app_client.get((await feed_token.json())["url"])
    again = await app_client.get((await feed_token.json())["url"],
                                 headers={"If-None-Match": feed.headers["ETag"]})
    answers = {"login": login, "account": account, "feed token": feed_token, "feed": feed,
               "feed not modified": again}
    assert {k: a.status for k, a in answers.items()} == {
        "login": 200, "account": 200, "feed token": 201, "feed": 200,
        "feed not modified": 304}
    for what, answer in answers.items():
        assert answer.headers["Cache-Control"] == "no-store", what
        assert_secured(answer.headers, what)


async def test_the_docs_page_runs_scripts_and_styles_of_this_origin_only(
        app_client: Any) -> None:
    response = await app_client.get("/docs")
    page = await response.text()
    policy = dict(part.strip().split(" ", 1) for part in
                  response.headers["Content-Security-Policy"].split(";") if part.strip())
    assert re.findall(r"<script>|<style>|\sstyle=|\son[a-z]+=", page) == []  # none inline
    assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"
    assert policy["connect-src"] == "'self'"  # the document, and try-it-out's requests
    assert policy["img-src"] == "'self' data:"  # the style sheet's icons
    assert policy["default-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
    assert "unsafe" not in response.headers["Content-Security-Policy"]
    other = await app_client.get("/openapi.json")
    assert other.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors"\
        " 'none'; base-uri 'none'"  # relaxed for the page only


@pytest.fixture
async def served(settings: Any, aiohttp_client: Any) -> Any:
    """The service through Midas's own runner, as `midas serve` runs it (``settings``
    first: the app stops before its schema is dropped)."""
    from midas.app import create_app

    class Served(TestServer):
        async def _make_runner(self, **kwargs: Any) -> AppRunner:
            return AppRunner(self.app, **kwargs)

    return await aiohttp_client(Served(create_app(settings)))


async def _raw(host: str, port: int, request: bytes) -> tuple[str, dict[str, str], bytes]:
    """Send bytes as they are (no client would send these) and read the whole answer."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(request)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return status, headers, body


@pytest.mark.parametrize("request_bytes", [
    b"GET /api/v1/items?q=" + b"x" * 9 * 1024 + b" HTTP/1.1\r\nHost: midas\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: midas\r\nX-Big: " + b"y" * 9 * 1024 + b"\r\n\r\n",
    b"NOT HTTP AT ALL\r\n\r\n",
], ids=["long-request-line", "long-header", "garbage"])
async def test_what_the_parser_refuses_is_a_problem_json_400(served: Any,
                                                             request_bytes: bytes) -> None:
    status, headers, body = await _raw(served.host, served.port, request_bytes)
    assert re.match(r"HTTP/1\.[01] 400 ", status), status
    assert headers["Content-Type"].startswith("application/problem+json")
    assert_secured(headers, status)
    problem = json.loads(body)
    assert (problem["status"], problem["title"]) == (400, "Bad Request")
    assert "x" * 20 not in problem["detail"] and "y" * 20 not in problem["detail"]
    health = await served.get("/health")  # the service answers on
    assert health.status == 200


@pytest.mark.slow
def test_midas_serve_answers_an_over_long_request_line_with_problem_json(
    pg_dsn: str, schema: str
) -> None:
    port = free_port()
    env = {**os.environ, "MIDAS_DATABASE_URL": pg_dsn, "MIDAS_DATABASE_SCHEMA": schema,
           "MIDAS_ENVIRONMENT": "test", "MIDAS_LOG_JSON": "false"}
    service = subprocess.Popen([sys.executable, "-m", "midas.cli", "serve", "--port",
                                str(port)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    try:
        wait_healthy(service, port)
        long_line = b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: midas\r\n\r\n"
        status, headers, _body = asyncio.run(_raw("127.0.0.1", port, long_line))
        assert re.match(r"HTTP/1\.[01] 400 ", status), status
        assert headers["Content-Type"].startswith("application/problem+json")
        assert_secured(headers, status)
    finally:
        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=30) == 0
