"""An operator's view of a poisonous event in the log (written before the store refused
such values): /ready and `midas projections status` show where and why the projection
fails, `midas projections skip` repairs it, the log stays as it was."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID, uuid4

import pytest
from click.testing import CliRunner

from midas.cli import main
from midas.eventstore.chain import verify_chain
from midas.http.keys import DATABASE, STORE
from tests.e2e.auth_support import register
from tests.support.fake_stripe import wait_until
from tests.support.unchecked import append_unchecked

YACHT = {"name": "Riva", "category": "yacht", "location": "AE-DU", "rate": 150_000}


async def _failing(client: Any) -> dict[str, Any]:
    ready = await client.get("/ready")
    body = await ready.json()
    return {p["name"]: p["failing"] for p in body["projections"] if "failing" in p}


def _cli(env: dict[str, str], *args: str) -> Any:
    return CliRunner().invoke(main, list(args), env=env)


async def test_ready_and_status_show_the_failing_event_and_a_skip_repairs_it(
    service: Any, auth: Any, pg_dsn: str, schema: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = await service(projection_retry_s=0.05, projection_retry_max_s=0.5)
    app = client.server.app
    admin = auth("admin")
    yacht = await (await client.post("/api/v1/items", json=YACHT, headers=admin)).json()
    registered = (await app[STORE].read_stream(UUID(yacht["id"])))[0]
    position = await append_unchecked(app[STORE], monkeypatch, uuid4(), registered.type,
                                      {**registered.data, "name": "Jet", "rate": 2**63})
    later = await (await client.post("/api/v1/items", json={**YACHT, "name": "Wally"},
                                     headers=admin)).json()

    async def shown() -> bool:
        return "inventory" in await _failing(client)

    await wait_until(shown)
    ready = await client.get("/ready")
    body = await ready.json()
    assert ready.status == 200 and body["status"] == "failing"
    failing = (await _failing(client))["inventory"]
    assert failing["position"] == position and failing["attempts"] >= 1
    assert failing["error"].startswith("DataError [22000]")
    assert str(2**63) not in await ready.text()
    reads = await client.get("/api/v1/items", params={"min_position": str(later["position"])})
    assert reads.status == 503  # the read model is behind, and says so
    # Commands and the other read models go on.
    bob = await register(client, "bob@example.com", name="Bob")
    found = await client.get("/api/v1/accounts", headers=auth("concierge"),
                             params={"min_position": str(bob["position"]), "q": "Bob"})
    assert found.status == 200, await found.text()

    env = {"MIDAS_DATABASE_URL": pg_dsn, "MIDAS_DATABASE_SCHEMA": schema,
           "MIDAS_ENVIRONMENT": "test", "MIDAS_LOG_JSON": "false"}
    status = await asyncio.to_thread(_cli, env, "projections", "status")
    assert status.exit_code == 0, status.output
    assert f"FAILING on the event at position {position}" in status.output
    assert "DataError [22000]" in status.output
    refused = await asyncio.to_thread(_cli, env, "projections", "skip", "inventory",
                                      str(position + 100), "--reason", "x")
    assert refused.exit_code == 1 and "no event at position" in refused.output
    skipped = await asyncio.to_thread(_cli, env, "projections", "skip", "inventory",
                                      str(position), "--reason", "rate beyond a bigint",
                                      "--by", "ops@midas")
    assert skipped.exit_code == 0, skipped.output

    async def repaired() -> bool:
        return await _failing(client) == {}

    await wait_until(repaired)
    items = await client.get("/api/v1/items", params={"min_position": str(later["position"])})
    assert items.status == 200, await items.text()
    assert sorted(i["name"] for i in (await items.json())["items"]) == ["Riva", "Wally"]
    assert (await (await client.get("/ready")).json())["status"] == "ready"
    async with app[DATABASE].acquire() as conn:
        assert (await verify_chain(conn)).ok
    assert await app[STORE].head() == bob["position"]  # nothing was appended or edited
