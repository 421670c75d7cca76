"""Crypto-shredding against the real PostgreSQL: events keep envelopes, the repository and
the projector decrypt, erasure shreds the key and the chain keeps verifying."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import orjson

from commands.accounts import change_account, create_account
from commands.privacy import erase_account
from midas.audit.log import LogFilter
from midas.audit.transfer import export
from midas.config import Settings
from midas.domain.accounts import ERASED, Account
from midas.domain.registry import AGGREGATES
from midas.eventstore import Database, EventStore, EventTypes, Repository
from midas.eventstore.chain import verify_chain
from midas.projection import catch_up
from midas.security import credentials, pii, verification
from projections.accounts import AccountsProjector

_SCANNED = ("text", "character varying", "character", "json", "jsonb", "bytea")
MD = {"actor": "test", "actor_role": "system"}


async def find_values(conn: asyncpg.Connection, schema: str, values: list[str]) -> list[str]:
    """Every ``table.column`` of the schema holding one of ``values`` (text and json
    case-insensitively, bytea as UTF-8 bytes): a scan of every such column of every table."""
    columns = await conn.fetch(
        "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c"
        " JOIN information_schema.tables t ON t.table_schema = c.table_schema"
        " AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE'"
        " WHERE c.table_schema = $1 AND (c.data_type = ANY($2::text[])"
        " OR c.data_type = 'ARRAY')", schema, list(_SCANNED),
    )
    assert columns, f"nothing to scan in {schema}"
    hits = []
    for row in columns:
        table = f'"{schema}"."{row["table_name"]}"'
        column = f'"{row["column_name"]}"'
        for value in values:
            if row["data_type"] == "bytea":
                sql = (f"SELECT EXISTS (SELECT 1 FROM {table} WHERE position("
                       f"convert_to($1, 'UTF8') in {column}) > 0)")
            else:
                sql = (f"SELECT EXISTS (SELECT 1 FROM {table}"
                       f" WHERE strpos(lower({column}::text), lower($1)) > 0)")
            if await conn.fetchval(sql, value):
                hits.append(f"{row['table_name']}.{row['column_name']}")
    return sorted(set(hits))


def _repo(store: EventStore, db: Database, **kwargs: Any) -> Repository:
    return Repository(store, EventTypes(AGGREGATES), field_codec=pii.PiiCodec(db), **kwargs)


async def _customer(repo: Repository, email: str, name: str, phone: str) -> UUID:
    account_id, _ = await create_account(
        repo, email=email, name=name, phone=phone, password=None, rounds=4, metadata=MD,
        consent_version="v1", consent_at=datetime.now(UTC), google_subject=f"g-{name}",
    )
    return account_id


async def test_events_hold_envelopes_and_erasure_shreds_them(
    db: Database, store: EventStore
) -> None:
    repo = _repo(store, db, snapshot_every=2)
    ada = await _customer(repo, "ada@example.com", "Ada Lovelace", "+44 1111 2222")
    bob = await _customer(repo, "bob@example.com", "Bob Builder", "+44 3333 4444")

    link = uuid4()

    def change(account: Account) -> list[Any]:
        account.change_profile(name="Ada King")
        account.request_email_change(str(link), "ada.king@example.com",
                                     datetime.now(UTC) + timedelta(days=1))
        return verification.issue(Settings(), link, account.id, "ada.king@example.com",
                                  account.email, datetime.now(UTC) + timedelta(days=1))

    def verify(account: Account) -> list[Any]:
        account.verify_email(str(link), datetime.now(UTC))
        return [verification.mark_used(link),
                credentials.set_fields(account.id, email=account.email, email_verified=True)]

    await change_account(repo, ada, change, MD)
    await change_account(repo, ada, verify, MD)

    async with db.acquire() as conn:
        rows = await conn.fetch("SELECT type, data::text AS data FROM events"
                                " WHERE stream_id = $1 ORDER BY version", ada)
        registered = orjson.loads(rows[0]["data"])
        assert all(pii.is_sealed(registered[f]) for f in ("email", "name", "phone",
                                                          "google_subject"))
        assert registered["role"] == "customer" and registered["consent_version"] == "v1"
        assert pii.is_sealed(orjson.loads(rows[1]["data"])["changes"]["name"])
        for value in ("Lovelace", "ada@example.com", "1111 2222", "Ada King", "g-Ada"):
            assert all(value not in r["data"] for r in rows)
        # Personal aggregates are not snapshotted in the database (their state is clear).
        assert await conn.fetchval("SELECT count(*) FROM snapshots") == 0

    fresh = _repo(store, db, cache_size=0)
    account = await fresh.get(ada, cls=Account)
    assert (account.email, account.name, account.phone) == (
        "ada.king@example.com", "Ada King", "+44 1111 2222")
    projector = AccountsProjector()
    await catch_up(db, projector)
    async with db.acquire() as conn:
        row = await conn.fetchrow("SELECT email, name, phone FROM acc_accounts WHERE id = $1",
                                  ada)
        assert tuple(row) == ("ada.king@example.com", "Ada King", "+44 1111 2222")

    assert await erase_account(repo, ada, MD) is not None
    assert await erase_account(repo, ada, MD) is None  # idempotent
    await catch_up(db, projector)

    erased = await _repo(store, db).get(ada, cls=Account)
    assert (erased.email, erased.name, erased.phone, erased.status) == (
        ERASED, ERASED, ERASED, "erased")
    async with db.acquire() as conn:
        assert (await verify_chain(conn)).ok
        key_row = await conn.fetchrow("SELECT key, erased_at FROM subject_keys"
                                      " WHERE account_id = $1", ada)
        assert key_row["key"] is None and key_row["erased_at"] is not None
        login = await conn.fetchrow("SELECT email, active, google_subject, password_hash"
                                    " FROM auth_accounts WHERE account_id = $1", ada)
        assert login["email"] == f"erased:{ada}" and not login["active"]
        assert login["google_subject"] is None and login["password_hash"] is None
        assert await credentials.by_email(conn, "ada.king@example.com") is None
        # Replaying the log into the read model again still reads "[erased]".
        events = [e for e in await store.read_stream(ada)]
        opened = await pii.open_events(conn, events)
        assert opened[0].data["email"] == ERASED and opened[0].data["role"] == "customer"
        schema = db.schema
        values = ["Lovelace", "ada@example.com", "ada.king", "Ada King", "1111 2222", "g-Ada"]
        assert await find_values(conn, schema, values) == []
        assert await find_values(conn, schema, ["bob@example.com"])

    other = await _repo(store, db).get(bob, cls=Account)
    assert (other.email, other.name) == ("bob@example.com", "Bob Builder")

    # The NDJSON export (what `midas audit export` writes) holds envelopes only.
    chunks: list[bytes] = []

    async def write(chunk: bytes) -> None:
        chunks.append(chunk)

    assert await export(db, LogFilter(), write) == await store.head()
    exported = b"".join(chunks).decode()
    assert "pii:v1:" in exported and '"Account.Erased"' in exported
    for value in [*values, "bob@example.com", "Bob Builder"]:
        assert value.lower() not in exported.lower()


async def test_rebuilt_read_model_reads_erased(db: Database, store: EventStore) -> None:
    from midas.projection import reset

    repo = _repo(store, db)
    ada = await _customer(repo, "ada@example.com", "Ada Lovelace", "+44 1111 2222")
    projector = AccountsProjector()
    await catch_up(db, projector)
    await erase_account(repo, ada, MD)
    async with db.acquire() as conn:
        await reset(conn, projector)
    await catch_up(db, projector)
    async with db.acquire() as conn:
        row = await conn.fetchrow("SELECT email, name, phone, status FROM acc_accounts"
                                  " WHERE id = $1", ada)
    assert tuple(row) == (ERASED, ERASED, ERASED, "erased")


async def test_legacy_clear_events_still_load(db: Database, store: EventStore) -> None:
    """Events written before the scheme (no codec) keep loading through the codec."""
    plain = Repository(store, EventTypes(AGGREGATES))
    ada = await _customer(plain, "ada@example.com", "Ada Lovelace", "+44 1111 2222")
    account = await _repo(store, db).get(ada, cls=Account)
    assert account.email == "ada@example.com"


async def test_another_process_stops_using_an_erased_subjects_key(
    db: Database, store: EventStore
) -> None:
    """Its key cache hears of the erasure through the store's commit announcements."""
    import asyncio

    await store.notifier.connected.wait()
    codec = pii.PiiCodec(db, store=store)
    mine = Repository(store, EventTypes(AGGREGATES), field_codec=codec)
    account_id = await _customer(mine, "leaving@example.com", "Leaving", "+15550100")
    assert await codec._key(account_id) is not None  # cached here
    other_process = EventStore(db)
    other_process.start()
    try:
        await erase_account(_repo(other_process, db), account_id, MD)
    finally:
        await other_process.close()
    for _ in range(200):
        if await codec._key(account_id) is None:
            break
        await asyncio.sleep(0.01)
    assert await codec._key(account_id) is None
    fresh = Repository(store, EventTypes(AGGREGATES), field_codec=codec)
    assert (await fresh.get(account_id, cls=Account)).email == ERASED
