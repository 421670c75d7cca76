"""Structured JSON logs carrying the request id of the request being served."""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import Any

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse
from pythonjsonlogger.json import JsonFormatter

from midas import tracing

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


class _RequestIdFilter(logging.Filter):
    """The request id on every record, and the trace id while the process traces
    (``midas.tracing``): a log line leads to its trace."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        if not hasattr(record, "trace_id"):
            trace_id = tracing.current_trace_id()
            if trace_id is not None:
                record.trace_id = trace_id
        return True


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    root = logging.getLogger()
    root.handlers[:] = [log_handler(json=json)]
    root.setLevel(level.upper())


def log_handler(*, json: bool = True, stream: Any = None) -> logging.Handler:
    """The service's handler: JSON lines (or text) on ``stream`` (standard error)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if json:
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    handler.addFilter(_RequestIdFilter())
    return handler


class AccessLogger(AbstractAccessLogger):
    """One structured line per request, with its request id."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s",
            request.method, request.path, response.status,
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status,
                "duration_ms": round(time * 1000, 2),
                "request_id": response.headers.get("X-Request-Id"),
                "remote": request.remote,
            },
        )
