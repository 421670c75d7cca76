"""MIDAS_PII_MASTER_KEY over HTTP and the command line: the service stores wrapped keys and
reads them back, `midas pii wrap-keys` wraps the keys written before the KEK, projections
rebuilt by the CLI still read, erasure still shreds."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from click.testing import CliRunner, Result
from pydantic import SecretStr

from midas.cli import main
from midas.domain.accounts import ERASED
from midas.security import pii
from tests.e2e.auth_support import register

ADA = {"email": "ada.wrapped@example.com", "name": "Ada Wrapped", "phone": "+44 20 7946 0101"}
BOB = {"email": "bob.wrapped@example.com", "name": "Bob Wrapped", "phone": "+44 20 7946 0202"}


@pytest.fixture
def master_key() -> Iterator[SecretStr]:
    """A fresh KEK; the process-wide keyring is cleared after the test whatever happens."""
    try:
        yield SecretStr(base64.b64encode(os.urandom(32)).decode())
    finally:
        pii.configure_master_key(None)


async def stored_keys(pg_dsn: str, schema: str) -> dict[UUID, bytes | None]:
    conn = await asyncpg.connect(pg_dsn, server_settings={"search_path": schema})
    try:
        rows = await conn.fetch("SELECT account_id, key FROM subject_keys")
    finally:
        await conn.close()
    return {r["account_id"]: (bytes(r["key"]) if r["key"] is not None else None) for r in rows}


async def account_view(client: Any, headers: dict[str, str], account: dict[str, Any],
                       position: int) -> tuple[Any, ...]:
    response = await client.get(f"/api/v1/accounts/{account['id']}",
                                params={"min_position": position}, headers=headers)
    assert response.status == 200, await response.text()
    view = await response.json()
    return view["email"], view["name"], view["phone"]


async def cli(env: dict[str, str], *args: str) -> Result:
    """Run a `midas` command as the CLI would (its own event loop, in a thread)."""
    return await asyncio.to_thread(CliRunner().invoke, main, list(args), env=env)


async def test_with_a_master_key_keys_are_wrapped_and_data_reads_until_erased(
    service: Any, auth: Any, master_key: SecretStr, pg_dsn: str, schema: str
) -> None:
    client = await service(pii_master_key=master_key)
    ada = await register(client, **ADA)
    keys = await stored_keys(pg_dsn, schema)
    stored = keys[UUID(ada["id"])]
    assert stored is not None and pii.is_wrapped(stored) and len(stored) != pii.KEY_SIZE

    staff = auth("concierge")
    position = ada["position"]
    assert await account_view(client, staff, ada, position) == (
        ADA["email"], ADA["name"], ADA["phone"])
    erased = await client.post(f"/api/v1/accounts/{ada['id']}/erase",
                               headers=auth("super_admin"))
    assert erased.status == 200, await erased.text()
    after = (await erased.json())["position"]
    assert await account_view(client, staff, ada, after) == (ERASED, ERASED, ERASED)
    assert (await stored_keys(pg_dsn, schema))[UUID(ada["id"])] is None


async def test_keys_from_before_the_master_key_read_and_wrap_keys_wraps_them_once(
    service: Any, auth: Any, master_key: SecretStr, pg_dsn: str, schema: str
) -> None:
    env = {"MIDAS_DATABASE_URL": pg_dsn, "MIDAS_DATABASE_SCHEMA": schema,
           "MIDAS_ENVIRONMENT": "test", "MIDAS_LOG_JSON": "false"}
    refused = await cli(env, "pii", "wrap-keys")
    assert refused.exit_code == 1 and "set MIDAS_PII_MASTER_KEY" in refused.output

    before = await service()  # a deployment without a KEK
    ada = await register(before, **ADA)
    assert len((await stored_keys(pg_dsn, schema))[UUID(ada["id"])] or b"") == pii.KEY_SIZE

    client = await service(pii_master_key=master_key)  # restarted with one
    bob = await register(client, **BOB)
    keys = await stored_keys(pg_dsn, schema)
    assert pii.is_wrapped(keys[UUID(bob["id"])] or b"")
    staff = auth("concierge")
    position = max(ada["position"], bob["position"])
    assert await account_view(client, staff, ada, position) == (
        ADA["email"], ADA["name"], ADA["phone"])
    assert await account_view(client, staff, bob, position) == (
        BOB["email"], BOB["name"], BOB["phone"])

    with_key = {**env, "MIDAS_PII_MASTER_KEY": master_key.get_secret_value()}
    first = await cli(with_key, "pii", "wrap-keys")
    assert first.exit_code == 0, first.output
    assert "wrapped 1 subject key(s)" in first.output
    assert master_key.get_secret_value() not in first.output
    second = await cli(with_key, "pii", "wrap-keys")
    assert second.exit_code == 0 and "wrapped 0 subject key(s)" in second.output
    keys = await stored_keys(pg_dsn, schema)
    assert all(pii.is_wrapped(key or b"") for key in keys.values())

    # A fresh process (no key cache) and read models rebuilt by the CLI still read.
    fresh = await service(pii_master_key=master_key)
    assert await account_view(fresh, staff, ada, position) == (
        ADA["email"], ADA["name"], ADA["phone"])
    verified = await cli(with_key, "projections", "verify", "accounts")
    assert verified.exit_code == 0, verified.output
    assert "accounts: ok" in verified.output

    # Without the KEK, a CLI replay fails with the clear error, not garbage.
    blind = await cli(env, "projections", "verify", "accounts")
    assert blind.exit_code != 0 and isinstance(blind.exception, pii.PiiError)
    assert "set MIDAS_PII_MASTER_KEY" in str(blind.exception)
