"""Envelope encryption of the subject keys under MIDAS_PII_MASTER_KEY (a KEK): new keys are
stored wrapped, old unwrapped keys still read, `wrap_unwrapped_keys` wraps them, erasure
still shreds, and a wrapped key without its KEK fails loudly."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID, uuid4

import pytest
from pydantic import SecretStr, ValidationError

from commands.accounts import change_account
from commands.privacy import erase_account
from midas.config import Settings
from midas.domain.accounts import ERASED, Account
from midas.eventstore import Database, EventStore, Repository
from midas.projection import catch_up
from midas.security import pii
from projections.accounts import AccountsProjector
from projections.profiles import ProfilesProjector
from tests.integration.test_erasure_store import MD, _customer, _repo


def new_master_key() -> SecretStr:
    return SecretStr(base64.b64encode(os.urandom(32)).decode())


@pytest.fixture
def use_master_key() -> Iterator[Callable[[SecretStr | None], None]]:
    """Configure the process's KEK for a test; never leak it into the next test."""
    try:
        yield pii.configure_master_key
    finally:
        pii.configure_master_key(None)


async def stored_key(db: Database, subject: UUID) -> bytes | None:
    async with db.acquire() as conn:
        key = await conn.fetchval("SELECT key FROM subject_keys WHERE account_id = $1", subject)
    return bytes(key) if key is not None else None


async def clear_key(db: Database, subject: UUID) -> bytes | None:
    async with db.acquire() as conn:
        return (await pii.load_keys(conn, [subject]))[subject]


async def read_models(db: Database, subject: UUID) -> tuple[Any, ...]:
    async with db.acquire() as conn:
        account = await conn.fetchrow("SELECT email, name, phone FROM acc_accounts"
                                      " WHERE id = $1", subject)
        notes = await conn.fetch("SELECT text FROM cust_notes WHERE customer_id = $1"
                                 " ORDER BY recorded_at", subject)
    return (*account, [n["text"] for n in notes])


async def add_note(repo: Repository, subject: UUID, text: str) -> None:
    def note(account: Account) -> list[Any]:
        account.add_note(str(uuid4()), text, None)
        return []

    await change_account(repo, subject, note, MD)


async def reads_back(db: Database, store: EventStore, subject: UUID, email: str) -> None:
    """Clear values through a fresh repository (no key cache) and a fresh projection."""
    account = await _repo(store, db, cache_size=0).get(subject, cls=Account)
    assert account.email == email
    async with db.acquire() as conn:
        events = await pii.open_events(conn, await store.read_stream(subject))
    assert events[0].data["email"] == email


async def test_new_keys_are_wrapped_and_everything_reads_and_erases(
    db: Database, store: EventStore, use_master_key: Any
) -> None:
    use_master_key(new_master_key())
    repo = _repo(store, db)
    ada = await _customer(repo, "ada@example.com", "Ada Lovelace", "+44 1111 2222")
    await add_note(repo, ada, "prefers the red Huracan")

    stored, key = await stored_key(db, ada), await clear_key(db, ada)
    assert stored is not None and key is not None and len(key) == pii.KEY_SIZE
    assert stored.startswith(pii.WRAPPED) and len(stored) == pii.WRAPPED_SIZE
    async with db.acquire() as conn:
        assert not await conn.fetchval(
            "SELECT count(*) FROM subject_keys WHERE position($1::bytea in key) > 0", key)
    await reads_back(db, store, ada, "ada@example.com")

    accounts, profiles = AccountsProjector(), ProfilesProjector()
    await catch_up(db, accounts)
    await catch_up(db, profiles)
    assert await read_models(db, ada) == (
        "ada@example.com", "Ada Lovelace", "+44 1111 2222", ["prefers the red Huracan"])

    assert await erase_account(repo, ada, MD) is not None
    await catch_up(db, accounts)
    await catch_up(db, profiles)
    assert await stored_key(db, ada) is None
    assert await read_models(db, ada) == (ERASED, ERASED, ERASED, [ERASED])
    erased = await _repo(store, db, cache_size=0).get(ada, cls=Account)
    assert (erased.email, erased.name, erased.status) == (ERASED, ERASED, "erased")


async def test_old_unwrapped_keys_still_read_and_get_wrapped_once(
    db: Database, store: EventStore, use_master_key: Any
) -> None:
    use_master_key(None)
    ada = await _customer(_repo(store, db), "ada@example.com", "Ada Lovelace", "+1 555 01")
    assert len(await stored_key(db, ada) or b"") == pii.KEY_SIZE
    ada_key = await clear_key(db, ada)

    use_master_key(new_master_key())
    bob = await _customer(_repo(store, db), "bob@example.com", "Bob Builder", "+1 555 02")
    assert pii.is_wrapped(await stored_key(db, bob) or b"")
    await reads_back(db, store, ada, "ada@example.com")
    await reads_back(db, store, bob, "bob@example.com")

    assert await pii.wrap_unwrapped_keys(db, batch_size=1) == 1
    assert await pii.wrap_unwrapped_keys(db) == 0  # idempotent
    assert pii.is_wrapped(await stored_key(db, ada) or b"")
    assert await clear_key(db, ada) == ada_key
    await reads_back(db, store, ada, "ada@example.com")
    await reads_back(db, store, bob, "bob@example.com")
    await catch_up(db, AccountsProjector())
    assert (await read_models(db, ada))[:2] == ("ada@example.com", "Ada Lovelace")
    assert (await read_models(db, bob))[:2] == ("bob@example.com", "Bob Builder")


async def test_a_wrapped_key_without_its_master_key_fails_clearly(
    db: Database, store: EventStore, use_master_key: Any
) -> None:
    secret = new_master_key()
    use_master_key(secret)
    ada = await _customer(_repo(store, db), "ada@example.com", "Ada Lovelace", "+1 555 01")

    for other, message in ((None, "is wrapped: set MIDAS_PII_MASTER_KEY"),
                           (new_master_key(), "does not unwrap with this MIDAS_PII_MASTER_KEY")):
        use_master_key(other)
        with pytest.raises(pii.PiiError, match=message) as failure:
            await clear_key(db, ada)
        assert secret.get_secret_value() not in str(failure.value)
        with pytest.raises(pii.PiiError):
            await _repo(store, db, cache_size=0).get(ada, cls=Account)
        with pytest.raises(pii.PiiError):
            await catch_up(db, AccountsProjector())

    # wrap-keys refuses to run without a KEK, and to mix a second KEK into the table.
    unwrapped = uuid4()
    async with db.acquire() as conn:
        await conn.execute("INSERT INTO subject_keys (account_id, key) VALUES ($1, $2)",
                           unwrapped, pii.new_key())
    with pytest.raises(pii.PiiError, match="does not unwrap"):
        await pii.wrap_unwrapped_keys(db)
    use_master_key(None)
    with pytest.raises(pii.PiiError, match="set MIDAS_PII_MASTER_KEY"):
        await pii.wrap_unwrapped_keys(db)
    assert len(await stored_key(db, unwrapped) or b"") == pii.KEY_SIZE


async def test_a_corrupted_stored_key_is_refused(db: Database, use_master_key: Any) -> None:
    use_master_key(new_master_key())
    subject = uuid4()
    async with db.acquire() as conn:
        await conn.execute("INSERT INTO subject_keys (account_id, key) VALUES ($1, $2)",
                           subject, b"w1" + os.urandom(10))
        with pytest.raises(pii.PiiError, match="unknown format"):
            await pii.load_keys(conn, [subject])


@pytest.mark.parametrize("size", [16, 31, 33, 64])
def test_settings_refuse_a_master_key_of_the_wrong_length(size: int) -> None:
    value = base64.b64encode(os.urandom(size)).decode()
    with pytest.raises(ValidationError) as failure:
        Settings(pii_master_key=value)
    message = str(failure.value)
    assert "MIDAS_PII_MASTER_KEY must be 32 random bytes" in message
    assert value not in message and value[:12] not in message


def test_settings_refuse_a_master_key_that_is_not_base64() -> None:
    value = "not base64 at all! " * 3
    with pytest.raises(ValidationError) as failure:
        Settings(pii_master_key=value)
    assert "MIDAS_PII_MASTER_KEY" in str(failure.value) and value not in str(failure.value)


def test_settings_accept_base64_and_base64url_master_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw = os.urandom(32)
    for text in (base64.b64encode(raw).decode(),
                 base64.urlsafe_b64encode(raw).decode().rstrip("=")):
        monkeypatch.setenv("MIDAS_PII_MASTER_KEY", text)
        settings = Settings()
        assert settings.pii_master_key is not None
        assert pii.decode_master_key(settings.pii_master_key.get_secret_value()) == raw
        assert text not in repr(settings)
    monkeypatch.setenv("MIDAS_PII_MASTER_KEY", "")
    assert Settings().pii_master_key is None
    monkeypatch.delenv("MIDAS_PII_MASTER_KEY")
    assert Settings().pii_master_key is None


def test_unwrapping_is_bound_to_the_subject() -> None:
    master, key, subject = os.urandom(32), pii.new_key(), uuid4()
    wrapped = pii.wrap_key(master, subject, key)
    assert pii.unwrap_key(master, subject, wrapped) == key
    assert pii.unwrap_key(None, subject, key) == key  # written before the KEK
    with pytest.raises(pii.PiiError):
        pii.unwrap_key(master, uuid4(), wrapped)  # copied onto another subject's row
