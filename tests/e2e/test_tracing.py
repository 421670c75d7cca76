"""Traces (OpenTelemetry): one Stripe webhook followed from its HTTP request through its
events, the payments process manager, the booking confirmation and the notifications
projection to the confirmation email's outbox row and its delivery; trace ids in logs and
problem bodies; OTLP export; and nothing at all while tracing is off."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import asyncpg
import pytest
from aiohttp import web
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from midas import tracing
from midas.app import create_app
from midas.config import Settings
from midas.http.keys import DATABASE, NOTIFICATIONS
from midas.logs import log_handler
from tests.support.fake_stripe import (
    booking_status,
    deliver,
    hold,
    intent_event,
    make_item,
    pay,
    wait_until,
)
from tests.support.smtp import smtp_server

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """This process traces into memory for the test (each span exported as it ends)."""
    exporter, owner = InMemorySpanExporter(), object()
    tracing.install(exporter, owner=owner, batch=False)
    yield exporter
    tracing.stop(owner)


@pytest.fixture
def mailbox() -> Iterator[Any]:
    with smtp_server() as pair:
        yield pair


def _trace(span: Any) -> str:
    return format(span.context.trace_id, "032x")


def _traceparent_trace(traceparent: str) -> str:
    return traceparent.split("-")[1]


async def test_a_webhooks_trace_runs_from_the_request_to_the_confirmation_emails_outbox_row(
    spans: InMemorySpanExporter, payment_services: Any, auth: Any, mailbox: Any,
) -> None:
    inbox, provider = mailbox
    client = await payment_services(smtp_providers=[provider], email_delivery_enabled=False)
    car = await make_item(client, auth)
    customer = auth("customer", uuid4())
    booking = await hold(client, customer, car, NOW + timedelta(days=10),
                         NOW + timedelta(days=12))
    intent = (await (await pay(client, customer, booking["id"])).json())["payment_intent"]
    spans.clear()

    response = await deliver(client, intent_event("payment_intent.succeeded", intent,
                                                  booking["quote"]["total_due"], booking["id"]))
    assert response.status == 200, await response.text()
    assert (await response.json())["outcome"] == "applied"

    async def confirmation_queued() -> bool:
        async with client.server.app[DATABASE].acquire() as conn:
            return bool(await conn.fetchval(
                "SELECT 1 FROM notif_outbox WHERE template = 'booking_confirmed'"))

    await wait_until(confirmation_queued, timeout=30)
    assert await booking_status(client, booking["id"]) == "confirmed"
    await client.server.app[NOTIFICATIONS].run_until_idle()
    assert "booking_confirmed" in inbox.templates()

    finished = spans.get_finished_spans()
    webhook = [s for s in finished if s.name == "POST /api/v1/webhooks/stripe"]
    assert len(webhook) == 1 and webhook[0].kind.name == "SERVER"
    trace_id = _trace(webhook[0])
    in_trace = [s for s in finished if _trace(s) == trace_id]
    names = {s.name for s in in_trace}
    # The request, its append and its queries; the process manager confirming the booking
    # (with its own append); the notifications projection applying the confirmation; the
    # email's delivery over SMTP.
    assert {"eventstore.append", "payments_process Payment.Succeeded",
            "notifications applies Booking.Confirmed", "email delivery",
            "smtp send"} <= names, names
    assert any(s.attributes.get("db.system") == "postgresql" for s in in_trace)
    reaction = next(s for s in in_trace if s.name == "payments_process Payment.Succeeded")
    assert any(s.name == "eventstore.append" and s.parent is not None
               and s.parent.span_id == reaction.context.span_id for s in in_trace)
    applied = next(s for s in in_trace if s.name == "notifications applies Booking.Confirmed")
    assert applied.links, "linked to the projection batch that carried the event"

    async with client.server.app[DATABASE].acquire() as conn:
        events = {r["type"]: json.loads(r["metadata"]) for r in await conn.fetch(
            "SELECT type, metadata FROM events WHERE type = ANY($1::text[])",
            ["Payment.Succeeded", "Booking.Confirmed"])}
        outbox = await conn.fetchval(
            "SELECT trace_context FROM notif_outbox WHERE template = 'booking_confirmed'")
    for metadata in events.values():
        assert _traceparent_trace(metadata["traceparent"]) == trace_id
        assert metadata["correlation_id"]  # the correlation id is kept beside it
    assert _traceparent_trace(outbox) == trace_id


async def test_problem_bodies_and_log_lines_carry_the_trace_id(
    spans: InMemorySpanExporter, app_client: Any, auth: Any,
) -> None:
    missing = await app_client.get(f"/api/v1/bookings/{uuid4()}", headers=auth("admin"))
    assert missing.status == 404
    body = await missing.json()
    request_span = next(s for s in spans.get_finished_spans()
                        if s.name == "GET /api/v1/bookings/{id}")
    assert body["trace_id"] == _trace(request_span)

    stream = io.StringIO()
    logger = logging.getLogger("midas.test.tracing")
    logger.addHandler(log_handler(json=True, stream=stream))
    try:
        with tracing.span("outer") as outer:
            logger.warning("inside a span")
        logger.warning("outside")
    finally:
        logger.handlers.clear()
    assert outer is not None
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["trace_id"] == format(outer.get_span_context().trace_id, "032x")
    assert "trace_id" not in outside


async def test_spans_record_no_query_strings_and_no_query_arguments(
    spans: InMemorySpanExporter, app_client: Any, auth: Any,
) -> None:
    secret = "feedtoken-" + uuid4().hex
    response = await app_client.get(
        f"/api/v1/calendar/feeds/items/{uuid4()}/feed.ics?token={secret}")
    assert response.status == 404
    login = await app_client.post("/api/v1/auth/login", json={
        "email": "who@example.com", "password": "hunter2-hunter2"})
    assert login.status == 401
    exported = json.dumps([json.loads(s.to_json()) for s in spans.get_finished_spans()])
    assert secret not in exported
    assert "who@example.com" not in exported and "hunter2" not in exported
    assert "SELECT" in exported  # statements are there, their arguments are not


async def test_spans_are_exported_over_otlp_to_the_configured_endpoint(
    aiohttp_server: Any, aiohttp_client: Any, settings: Settings,
) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    received: list[ExportTraceServiceRequest] = []

    async def collect(request: web.Request) -> web.Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        received.append(message)
        return web.Response(status=200, content_type="application/x-protobuf")

    collector = web.Application()
    collector.router.add_post("/v1/traces", collect)
    server = await aiohttp_server(collector)
    app = create_app(settings.model_copy(update={
        "otlp_endpoint": str(server.make_url("")).rstrip("/"),
        "otel_service_name": "midas-test"}))
    assert tracing.enabled()
    client = await aiohttp_client(app)
    assert (await client.get("/health")).status == 200
    await client.close()  # the application's cleanup flushes and turns tracing off
    assert not tracing.enabled()
    exported = [span for message in received for resource in message.resource_spans
                for scope in resource.scope_spans for span in scope.spans]
    assert "GET /health" in {span.name for span in exported}
    services = {attribute.value.string_value for message in received
                for resource in message.resource_spans
                for attribute in resource.resource.attributes
                if attribute.key == "service.name"}
    assert services == {"midas-test"}


async def test_nothing_traces_while_tracing_is_off(app_client: Any, auth: Any) -> None:
    assert not tracing.enabled()
    assert not hasattr(asyncpg.connection.Connection.execute, "__wrapped__")
    names = {getattr(m, "__module__", "") for m in app_client.server.app.middlewares}
    assert not any("opentelemetry" in name for name in names)
    item = await app_client.post("/api/v1/items", headers=auth("admin"), json={
        "name": "Huracan", "category": "car", "location": "US-CA", "rate": 150_000})
    assert item.status == 201
    missing = await app_client.get(f"/api/v1/bookings/{uuid4()}", headers=auth("admin"))
    assert "trace_id" not in await missing.json()
    async with app_client.server.app[DATABASE].acquire() as conn:
        metadata = json.loads(await conn.fetchval("SELECT metadata FROM events LIMIT 1"))
    assert "traceparent" not in metadata
    await asyncio.sleep(0)
