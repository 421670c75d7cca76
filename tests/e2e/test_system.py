"""Operational surface: health, readiness, metrics, OpenAPI, docs, CORS, limits."""

from __future__ import annotations

from typing import Any

from midas.app import all_endpoints, create_app
from midas.config import Settings


async def test_health_and_ready(app_client: Any) -> None:
    assert (await (await app_client.get("/health")).json()) == {"status": "ok"}
    ready = await app_client.get("/ready")
    body = await ready.json()
    assert ready.status == 200 and body["database"] == "ok"
    assert {p["name"] for p in body["projections"]} >= {"inventory"}


async def test_every_response_carries_a_request_id(app_client: Any) -> None:
    mine = await app_client.get("/health", headers={"X-Request-Id": "req-42"})
    assert mine.headers["X-Request-Id"] == "req-42"
    generated = await app_client.get("/nowhere")
    assert generated.status == 404 and len(generated.headers["X-Request-Id"]) == 32
    assert (await generated.json())["request_id"] == generated.headers["X-Request-Id"]


async def test_metrics_are_prometheus_text_for_staff(app_client: Any, auth: Any) -> None:
    await app_client.get("/health")
    assert (await app_client.get("/metrics")).status == 401
    response = await app_client.get("/metrics", headers=auth("concierge"))
    text = await response.text()
    assert response.status == 200
    assert 'midas_http_requests_total{method="GET",route="/health",status="200"}' in text


async def test_openapi_covers_every_route(app_client: Any) -> None:
    document = await (await app_client.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.")
    declared = {(op, path) for path, ops in document["paths"].items() for op in ops}
    routes = {(e.method.lower(), e.path) for e in all_endpoints()}
    assert declared == routes
    post = document["paths"]["/api/v1/items"]["post"]
    schema_name = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert schema_name.endswith("/RegisterItem")
    assert "RegisterItem" in document["components"]["schemas"]
    assert {"422", "409", "503"} <= set(post["responses"])


async def test_docs_page_is_served_locally(app_client: Any) -> None:
    page = await (await app_client.get("/docs")).text()
    assert "/openapi.json" in page and "https://" not in page
    assert "/docs/swagger-ui-bundle.js" in page  # Swagger UI (tests/e2e/test_api_document.py)


async def test_oversized_body_is_413_problem(app_client: Any, auth: Any, settings: Settings
                                             ) -> None:
    big = b'{"name": "' + b"x" * (settings.max_body_bytes + 10) + b'"}'
    response = await app_client.post(
        "/api/v1/items", data=big, headers={**auth(), "Content-Type": "application/json"}
    )
    assert response.status == 413
    assert response.content_type == "application/problem+json"


async def test_wrong_content_type_is_415(app_client: Any, auth: Any) -> None:
    response = await app_client.post(
        "/api/v1/items", data=b"name=x", headers={**auth(), "Content-Type": "text/plain"}
    )
    assert response.status == 415


async def test_cors_allows_configured_origins_only(service: Any) -> None:
    client = await service(cors_origins=["https://app.midas.example"])
    allowed = await client.options("/api/v1/items", headers={
        "Origin": "https://app.midas.example", "Access-Control-Request-Method": "POST"})
    assert allowed.status == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.midas.example"
    other = await client.get("/health", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_production_refuses_the_default_secret(settings: Settings) -> None:
    import pytest

    production = settings.model_copy(update={"environment": "production"})
    with pytest.raises(ValueError, match="MIDAS_JWT_SECRET"):
        create_app(production)
