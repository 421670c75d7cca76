"""OpenTelemetry traces: off unless configured, exported over OTLP when on.

Off (the default), nothing of the SDK is loaded: no tracer provider, no instrumentation, no
middleware; the helpers below answer after one check of a module global. On, one SDK
``TracerProvider`` per process (never installed as OpenTelemetry's global one, so that a
test can start and stop it) feeds:

- the aiohttp server middleware (a span per request, the W3C ``traceparent`` of the caller
  continued), the asyncpg instrumentation (a span per query, statements without their
  arguments) and the aiohttp client instrumentation (a span per outbound request: Stripe's
  SDK, PayPal, Google, calendar feeds), URLs recorded without their query string;
- Midas's own spans: provider calls (Stripe, SMTP), group commits, projection batches;
- the chain command -> events -> projections -> process managers: every appended event
  carries the ``traceparent`` of the span that appended it in its metadata (beside
  correlation_id and causation_id), and whatever reacts to the event later opens its span
  in that trace (``event_span``, ``applied_spans``), linked to the batch that carried it.

Tracing is on when ``MIDAS_OTLP_ENDPOINT`` is set, or OpenTelemetry's own
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (unless
``OTEL_SDK_DISABLED=true``), or when a test installs an exporter (``install``).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiohttp import web
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Link, Span, Tracer

    from midas.config import Settings

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"  # the event metadata key (W3C Trace Context)
MAX_LINKS = 64  # links from one batch span to the traces it carries, at most
OTEL_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_URL_ATTRIBUTES = ("http.url", "url.full", "http.target")


class _State:
    provider: TracerProvider | None = None
    tracer: Tracer | None = None
    owner: object | None = None  # who installed it (an app, or a test): it uninstalls
    instrumentors: list[Any] = []


_state = _State()
_NO_METADATA: Mapping[str, str] = {}


def enabled() -> bool:
    return _state.tracer is not None


def wanted(settings: Settings) -> bool:
    """Whether the settings and the environment ask for traces over OTLP."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return bool(settings.otlp_endpoint) or any(os.environ.get(v) for v in
                                               OTEL_ENDPOINT_VARIABLES)


# -- starting and stopping -----------------------------------------------------------------


def install(exporter: SpanExporter, *, owner: object, service: str = "midas",
            sample_ratio: float = 1.0, batch: bool = True) -> None:
    """Trace this process into ``exporter`` (``batch=False``: each span exported as it
    ends, for tests reading an in-memory exporter)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    if _state.provider is not None:
        raise RuntimeError("tracing is already on in this process")
    provider = TracerProvider(
        resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME")
                                  or service}),
        sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
    )
    provider.add_span_processor(_url_scrubber())
    provider.add_span_processor(BatchSpanProcessor(exporter) if batch
                                else SimpleSpanProcessor(exporter))
    _state.provider, _state.owner = provider, owner
    _state.tracer = provider.get_tracer("midas")
    _state.instrumentors = _instrument(provider)


def start(settings: Settings, *, owner: object) -> bool:
    """Turn tracing on over OTLP if the settings ask for it and nobody has yet; whether
    this process traces (also when a test installed an exporter before)."""
    if _state.provider is None and wanted(settings):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = settings.otlp_endpoint
        if endpoint and not endpoint.rstrip("/").endswith("/v1/traces"):
            endpoint = endpoint.rstrip("/") + "/v1/traces"
        install(OTLPSpanExporter(endpoint=endpoint) if endpoint else OTLPSpanExporter(),
                owner=owner, service=settings.otel_service_name,
                sample_ratio=settings.trace_sample_ratio)
        log.info("tracing on: spans exported over OTLP")
    return enabled()


def stop(owner: object) -> None:
    """Turn tracing off and export what is pending, if ``owner`` turned it on."""
    provider = _detach(owner)
    if provider is not None:
        provider.shutdown()


def _detach(owner: object) -> TracerProvider | None:
    """Turn tracing off (instrumentation removed); the provider, still to shut down."""
    if _state.provider is None or _state.owner is not owner:
        return None
    provider = _state.provider
    for instrumentor in _state.instrumentors:
        with contextlib.suppress(Exception):
            instrumentor.uninstrument()
    _state.provider = _state.tracer = _state.owner = None
    _state.instrumentors = []
    return provider


def _instrument(provider: TracerProvider) -> list[Any]:
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    client, database = AioHttpClientInstrumentor(), AsyncPGInstrumentor()
    client.instrument(tracer_provider=provider, url_filter=_without_query)
    database.instrument(tracer_provider=provider)
    return [client, database]


def server_middleware() -> Any:
    """The aiohttp server instrumentation's middleware, on this process's provider.

    Its instrumentor is started and stopped at once: that initialises the module the
    middleware reads, without leaving ``web.Application`` replaced (it would trace every
    application this process makes, tests' stand-ins of Stripe or Google too).
    """
    import warnings

    from opentelemetry.instrumentation import aiohttp_server

    instrumentor = aiohttp_server.AioHttpServerInstrumentor()
    with warnings.catch_warnings():  # its subclass of web.Application, unused here
        warnings.simplefilter("ignore", DeprecationWarning)
        instrumentor.instrument(tracer_provider=_state.provider)
    instrumentor.uninstrument()
    return aiohttp_server.create_aiohttp_middleware(tracer_provider=_state.provider)


def _without_query(url: Any) -> str:
    """A URL as recorded in spans: calendar feed URLs and the like carry tokens there."""
    return str(url).split("?", 1)[0]


def _url_scrubber() -> Any:
    """A span processor dropping the query strings of the URLs a span records at start."""
    from opentelemetry.sdk.trace import SpanProcessor

    class UrlScrubber(SpanProcessor):
        def on_start(self, span: Span, parent_context: Any = None) -> None:
            attributes = getattr(span, "attributes", None) or {}
            for key in _URL_ATTRIBUTES:
                value = attributes.get(key)
                if isinstance(value, str) and "?" in value:
                    span.set_attribute(key, _without_query(value))
            if attributes.get("url.query"):
                span.set_attribute("url.query", "")

    return UrlScrubber()


# -- spans -----------------------------------------------------------------------------------


@contextlib.contextmanager
def span(name: str, attributes: Mapping[str, Any] | None = None, *, kind: str = "internal",
         links: Sequence[Link] = ()) -> Iterator[Span | None]:
    """A span around the block, child of the current one (None, and no cost, when off).

    Errors set the span's status to the exception's type only: messages may quote data.
    """
    tracer = _state.tracer
    if tracer is None:
        yield None
        return
    from opentelemetry.trace import SpanKind

    with _errors_as_status(tracer.start_as_current_span(
            name, kind=SpanKind[kind.upper()], attributes=attributes, links=links,
            record_exception=False, set_status_on_exception=False)) as current:
        yield current


@contextlib.contextmanager
def _errors_as_status(manager: Any) -> Iterator[Span]:
    from opentelemetry.trace import Status, StatusCode

    with manager as current:
        try:
            yield current
        except Exception as exc:
            current.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            current.set_attribute("error.type", type(exc).__name__)
            raise


def current_trace_id() -> str | None:
    """The trace id (32 hex digits) of the current span; None when off or outside one."""
    if _state.tracer is None:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def event_metadata() -> Mapping[str, str]:
    """What an append adds to its events' metadata: the current span's ``traceparent``."""
    if _state.tracer is None:
        return _NO_METADATA
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return {TRACEPARENT: carrier[TRACEPARENT]} if TRACEPARENT in carrier else _NO_METADATA


def _parent(traceparent: str | None) -> Any:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract({TRACEPARENT: traceparent} if traceparent
                                                   else {})


def _span_context(traceparent: str) -> Any:
    from opentelemetry import trace

    return trace.get_current_span(_parent(traceparent)).get_span_context()


def links_to(traceparents: Iterable[str | None]) -> list[Link]:
    """Links to the spans that appended events (distinct, at most ``MAX_LINKS``)."""
    if _state.tracer is None:
        return []
    from opentelemetry.trace import Link

    links: list[Link] = []
    seen: set[str] = set()
    for traceparent in traceparents:
        if traceparent and traceparent not in seen and len(links) < MAX_LINKS:
            seen.add(traceparent)
            context = _span_context(traceparent)
            if context.is_valid:
                links.append(Link(context))
    return links


@contextlib.contextmanager
def event_span(name: str, metadata: Mapping[str, Any], attributes: Mapping[str, Any]
               ) -> Iterator[Span | None]:
    """A span in the trace of the event (its metadata's ``traceparent``), linked to the
    current span (the batch that carried it): a process manager reacting to it."""
    tracer = _state.tracer
    if tracer is None:
        yield None
        return
    from opentelemetry import trace
    from opentelemetry.trace import Link, SpanKind

    batch = trace.get_current_span().get_span_context()
    with _errors_as_status(tracer.start_as_current_span(
            name, context=_parent(metadata.get(TRACEPARENT)), kind=SpanKind.CONSUMER,
            attributes=attributes, links=[Link(batch)] if batch.is_valid else [],
            record_exception=False, set_status_on_exception=False)) as current:
        yield current


@contextlib.contextmanager
def projector_span(name: str, events: Sequence[Any], *, own_spans: bool = False
                   ) -> Iterator[None]:
    """A span around one projector's share of a batch and, in the trace of each event it
    applied, a span saying so (unless the projector opens its own: ``own_spans``)."""
    tracer = _state.tracer
    if tracer is None:
        yield
        return
    import time

    attributes = {"midas.projection": name, "midas.events": len(events),
                  "midas.position.from": events[0].position,
                  "midas.position.to": events[-1].position}
    started = time.time_ns()
    with span(f"project {name}", attributes,
              links=links_to(e.metadata.get(TRACEPARENT) for e in events)) as batch:
        yield
    if not own_spans and batch is not None:
        _applied_spans(tracer, name, events, batch, started, time.time_ns())


def _applied_spans(tracer: Tracer, name: str, events: Sequence[Any], batch: Span,
                   started: int, ended: int) -> None:
    from opentelemetry.trace import Link, SpanKind

    by_trace: dict[str, list[Any]] = {}
    for event in events:
        traceparent = event.metadata.get(TRACEPARENT)
        if traceparent and (traceparent in by_trace or len(by_trace) < MAX_LINKS):
            by_trace.setdefault(traceparent, []).append(event)
    for traceparent, applied in by_trace.items():
        tracer.start_span(
            f"{name} applies {applied[0].type}", context=_parent(traceparent),
            kind=SpanKind.CONSUMER, links=[Link(batch.get_span_context())],
            start_time=started, attributes={
                "midas.projection": name,
                "midas.event.types": sorted({e.type for e in applied}),
                "midas.event.positions": [e.position for e in applied[:100]],
            },
        ).end(end_time=ended)


def trace_context_of(metadata: Mapping[str, Any]) -> str | None:
    """The ``traceparent`` an event carries (kept with what it causes: an outbox row)."""
    value = metadata.get(TRACEPARENT)
    return value if isinstance(value, str) else None


@contextlib.contextmanager
def continued(traceparent: str | None, name: str, attributes: Mapping[str, Any],
              kind: str = "client") -> Iterator[Span | None]:
    """A span in the trace recorded with a row (an email's outbox row), else a new one."""
    tracer = _state.tracer
    if tracer is None:
        yield None
        return
    from opentelemetry.trace import SpanKind

    with _errors_as_status(tracer.start_as_current_span(
            name, context=_parent(traceparent), kind=SpanKind[kind.upper()],
            attributes=attributes, record_exception=False,
            set_status_on_exception=False)) as current:
        yield current


def app_context(owner: object) -> Any:
    """A cleanup context that turns tracing off with the application that turned it on
    (``owner``: what it was turned on by)."""

    async def context(app: web.Application) -> Any:
        import asyncio

        yield
        provider = _detach(owner)
        if provider is not None:  # the last export blocks: not on the event loop
            await asyncio.to_thread(provider.shutdown)

    return context
