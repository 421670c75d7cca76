"""Property-based fuzzing of every operation of /openapi.json (schemathesis).

The whole service runs in this process, on a thread of its own (schemathesis sends with
``requests``, synchronously), against a real PostgreSQL schema. Every operation is
called as an anonymous client, a customer and an admin, with data generated from its
documented parameters and body: valid (positive) and invalid (negative). No answer may
be a 5xx, and every answer must match what the document declares for it: its status
code, its content type and its schema.

Bounded: ``MAX_EXAMPLES`` cases per operation, role and mode, and a time budget after
which the remaining operations get a single case each (the run stays about a minute).
Generation is derandomised, so a failure reproduces; ``MIDAS_FUZZ_EXAMPLES`` and
``MIDAS_FUZZ_SEED`` explore further locally.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from uuid import uuid4

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, Phase, given, seed
from hypothesis import settings as hypothesis_settings
from pydantic import SecretStr
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from midas.config import Settings
from midas.http.auth import Role, issue_access_token
from midas.http.permissions import allows, rule_for
from midas.loop import event_loop_factory

MAX_EXAMPLES = int(os.environ.get("MIDAS_FUZZ_EXAMPLES", "5"))
SEED = os.environ.get("MIDAS_FUZZ_SEED")
BUDGET_S = float(os.environ.get("MIDAS_FUZZ_BUDGET_S", "60"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]

pytestmark = pytest.mark.slow


class ServedApp:
    """The service on 127.0.0.1 (an ephemeral port), its event loop on a thread."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._loop = event_loop_factory(settings.event_loop)()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="midas-fuzzed")
        self._runner: web.AppRunner | None = None

    def start(self) -> str:
        self._thread.start()
        return asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(60)

    async def _start(self) -> str:
        from midas.app import create_app

        self._runner = web.AppRunner(create_app(self._settings))
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def served(settings: Settings) -> Iterator[str]:
    app = ServedApp(settings.model_copy(update={
        "calendar_poller_enabled": False, "email_delivery_enabled": False,
        # Generous limits: a limit reached answers 429 (declared), but hides the handler.
        "register_rate_limit": 100_000, "login_rate_limit": 100_000,
        "refresh_rate_limit": 100_000, "client_error_rate_limit": 100_000,
        "payment_rate_limit": 100_000,
        # Configured (as in production): a signature that does not verify is a 400.
        "stripe_webhook_secret": SecretStr("whsec_fuzz"),
        "paypal_verify_url": "http://127.0.0.1:9/cgi-bin/webscr",
        # Configured, with Google's keys out of reach: a token that is not a JWT is a 401.
        "google_client_id": "fuzz.apps.googleusercontent.com",
        "google_jwks_url": "http://127.0.0.1:9/oauth2/v3/certs",
    }))
    url = app.start()
    try:
        yield url
    finally:
        app.stop()


def _strategy(operation: Any) -> Any:
    """Valid cases, and invalid ones where there is something to make invalid: a body or
    query parameters (a path parameter is any string; the route answers 404)."""
    definition = operation.definition.raw
    valid = operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
    if "requestBody" not in definition and not any(
            p.get("in") == "query" for p in definition.get("parameters", [])):
        return valid
    return valid | operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)


def _fuzz(strategy: Any, examples: int, call: Callable[[Any], None]) -> None:
    @hypothesis_settings(max_examples=examples, deadline=None, database=None,
                         derandomize=SEED is None, phases=[Phase.explicit, Phase.generate],
                         suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
    @given(case=strategy)
    def run(case: Any) -> None:
        call(case)

    if SEED is not None:
        run = seed(int(SEED))(run)
    run()


def test_every_operation_answers_as_documented_for_every_role(
    served: str, auth: Callable[..., dict[str, str]], settings: Settings,
) -> None:
    document = requests.get(f"{served}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(document)
    accounts = {Role.CUSTOMER: uuid4(), Role.ADMIN: uuid4()}
    for role, account_id in accounts.items():
        auth(role.value, account_id)  # the account's sign-in row

    def headers_of(role: Role | None) -> dict[str, str]:
        """A fresh token per case: a case may log out, which revokes the token it sent."""
        if role is None:
            return {}
        token = issue_access_token(settings, accounts[role], role)
        return {"Authorization": f"Bearer {token}"}

    session = requests.Session()
    failures: list[str] = []
    started = time.monotonic()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == sum(len(ops) for ops in document["paths"].values())
    for operation in operations:
        over_budget = time.monotonic() - started > BUDGET_S
        strategy = _strategy(operation)
        rule = rule_for(operation.method.upper(), operation.path)
        assert rule is not None, operation.label
        for role in (None, Role.CUSTOMER, Role.ADMIN):
            # A role the route refuses is answered 401/403 before the handler: one case.
            examples = MAX_EXAMPLES if allows(rule, role) and not over_budget else 1

            def call(case: Any, role: Role | None = role) -> None:
                headers = headers_of(role)
                response = case.call(base_url=served, session=session, headers=headers,
                                     timeout=30)
                case.validate_response(response, checks=CHECKS, headers=headers)

            try:
                _fuzz(strategy, examples, call)
            except (Exception, BaseExceptionGroup) as exc:  # all tried, all listed
                who = role.value if role else "anonymous"
                failures.append(f"{operation.label} as {who}:\n{exc}")
    assert not failures, "\n\n".join(failures)
