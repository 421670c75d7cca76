"""Operational routes: health, readiness, metrics, the API document and its docs page."""

from __future__ import annotations

import os
from datetime import datetime
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from pydantic import BaseModel, ConfigDict, Field
from swagger_ui_bundle import swagger_ui_path

from midas.eventstore import is_unavailable
from midas.http.api import Api
from midas.http.headers import DOCS_POLICY, PUBLIC_CACHE
from midas.http.keys import DATABASE, METRICS, PROJECTORS, SETTINGS
from midas.http.problems import unavailable
from midas.projection import projection_status
from midas.projection_failures import ProjectionFailure

api = Api(tag="system", kind="system")
OPENAPI = web.AppKey("openapi", dict)
# Collectors read at scrape time (business series from the database): each has an async
# ``refresh()``, awaited before /metrics is written.
SCRAPED = web.AppKey("scraped_collectors", list)


class Health(BaseModel):
    status: str


class FailingAt(BaseModel):
    position: int = Field(description="The log position of the event it fails on.")
    error: str = Field(description="The error's type and scrubbed message.")
    attempts: int
    since: datetime
    next_retry_at: datetime


class ProjectionReadiness(BaseModel):
    name: str
    position: int
    lag: int
    failing: FailingAt | None = None


class Readiness(BaseModel):
    status: str
    database: str
    head: int | None = None
    projections: list[ProjectionReadiness] = []


@api.get("/health", summary="The process is up", response=Health)
async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@api.get("/ready", summary="Database reachable and projections caught up", response=Readiness)
async def ready(request: web.Request) -> web.Response:
    """503 while a projection lags too far behind; 503 problem+json (``database``:
    ``unreachable``) while the database is out of reach. A projection failing on an event
    is shown (`failing`: where and why; status "failing" while none lags too far): the
    others, and the commands, still work."""
    settings = request.app[SETTINGS]
    projectors = request.app[PROJECTORS]
    try:
        statuses = await projection_status(request.app[DATABASE], projectors)
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        raise unavailable(database="unreachable") from None
    lagging = any(s.lag > settings.ready_max_lag for s in statuses)
    failing = any(s.failure is not None for s in statuses)
    body = Readiness(
        status="lagging" if lagging else "failing" if failing else "ready",
        database="ok",
        head=statuses[0].head if statuses else None,
        projections=[ProjectionReadiness(name=s.name, position=s.position, lag=s.lag,
                                         failing=_failing_at(s.failure))
                     for s in statuses],
    )
    return web.json_response(text=body.model_dump_json(exclude_none=True),
                             status=503 if lagging else 200)


def _failing_at(failure: ProjectionFailure | None) -> FailingAt | None:
    if failure is None:
        return None
    return FailingAt(position=failure.position, error=failure.error,
                     attempts=failure.attempts, since=failure.since,
                     next_retry_at=failure.next_retry_at)


@api.get("/metrics", summary="Prometheus metrics", content_type=CONTENT_TYPE_LATEST)
async def metrics(request: web.Request) -> web.Response:
    for collector in request.app.get(SCRAPED, ()):
        await collector.refresh()
    body = generate_latest(_exposed_registry(request.app))
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _exposed_registry(app: web.Application) -> CollectorRegistry:
    """This process's registry; under `midas serve --workers N`, the sum over every
    worker, read from the files of prometheus_client's multiprocess mode."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return app[METRICS]
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    for collector in app.get(SCRAPED, ()):
        registry.register(collector)
    return registry


class OpenApiDocument(BaseModel):
    """An OpenAPI 3.1 document (https://spec.openapis.org/oas/v3.1.0)."""

    model_config = ConfigDict(extra="allow")

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]
    components: dict[str, Any]


@api.get("/openapi.json", summary="This API's OpenAPI 3 document", response=OpenApiDocument)
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI], headers={"Cache-Control": PUBLIC_CACHE})


DOCS_PAGE = resources.files("midas.http").joinpath("docs.html").read_text()
DOCS_HEADERS = {"Cache-Control": PUBLIC_CACHE, "Content-Security-Policy": DOCS_POLICY}
# The page's assets: Swagger UI's from its package (swagger-ui-bundle-v2), its start-up
# script ours. All served here: the page loads nothing from another host.
_SWAGGER_UI = swagger_ui_path
_INITIALIZER = resources.files("midas.http").joinpath("swagger-initializer.js")


@api.get("/docs", summary="API documentation page: Swagger UI (served locally)",
         content_type="text/html")
async def docs(request: web.Request) -> web.Response:
    """Try any operation from the browser; "Authorize" takes a bearer token (from
    POST /api/v1/auth/login) and keeps it across reloads."""
    return web.Response(text=DOCS_PAGE, content_type="text/html", headers=DOCS_HEADERS)


def _asset(path: str, source: Traversable, content_type: str, summary: str) -> None:
    body = source.read_bytes()

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type=content_type, charset="utf-8",
                            headers={"Cache-Control": PUBLIC_CACHE})

    handler.__name__ = "docs_" + path.rsplit("/", 1)[-1].split(".")[0].replace("-", "_")
    api.get(path, summary=summary, content_type=content_type)(handler)


_asset("/docs/swagger-ui.css", _SWAGGER_UI / "swagger-ui.css", "text/css",
       "Swagger UI's style sheet (of the docs page)")
_asset("/docs/swagger-ui-bundle.js", _SWAGGER_UI / "swagger-ui-bundle.js", "text/javascript",
       "Swagger UI's script (of the docs page)")
_asset("/docs/swagger-initializer.js", _INITIALIZER, "text/javascript",
       "The docs page's start-up script: Swagger UI on /openapi.json")
