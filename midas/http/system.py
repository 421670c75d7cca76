"""Operational routes: health, readiness, metrics, the API document and its docs page."""

from __future__ import annotations

import os
from importlib import resources

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from pydantic import BaseModel

from midas.eventstore import is_unavailable
from midas.http.api import Api
from midas.http.keys import DATABASE, METRICS, PROJECTORS, SETTINGS
from midas.projection import projection_status

api = Api(tag="system", kind="system")
OPENAPI = web.AppKey("openapi", dict)


class Health(BaseModel):
    status: str


class ProjectionReadiness(BaseModel):
    name: str
    position: int
    lag: int


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
    """503 while the database is unreachable or a projection lags too far behind."""
    settings = request.app[SETTINGS]
    projectors = request.app[PROJECTORS]
    try:
        statuses = await projection_status(request.app[DATABASE], projectors)
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        return web.json_response(
            {"status": "unavailable", "database": "unreachable", "projections": []},
            status=503, headers={"Retry-After": "1"},
        )
    lagging = any(s.lag > settings.ready_max_lag for s in statuses)
    body = {
        "status": "lagging" if lagging else "ready",
        "database": "ok",
        "head": statuses[0].head if statuses else None,
        "projections": [{"name": s.name, "position": s.position, "lag": s.lag} for s in statuses],
    }
    return web.json_response(body, status=503 if lagging else 200)


@api.get("/metrics", summary="Prometheus metrics", content_type=CONTENT_TYPE_LATEST)
async def metrics(request: web.Request) -> web.Response:
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
    return registry


@api.get("/openapi.json", summary="This API's OpenAPI 3 document")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])


@api.get("/docs", summary="API documentation page (served locally)", content_type="text/html")
async def docs(request: web.Request) -> web.Response:
    page = resources.files("midas.http").joinpath("docs.html").read_text()
    return web.Response(text=page, content_type="text/html")
