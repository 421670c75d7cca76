"""The event store's second line of defence: whoever the caller, what PostgreSQL cannot
store (NUL, lone surrogates) and integers beyond a bigint never reach the log; personal
fields are checked before they are encrypted."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest

from commands.accounts import create_account
from midas.domain.accounts import Account
from midas.domain.registry import AGGREGATES
from midas.eventstore import Database, EventStore, EventTypes, NewEvent, Repository, StreamAppend
from midas.eventstore.codec import InvalidEventData
from midas.limits import BIGINT_MAX, BIGINT_MIN
from midas.security import pii

MD = {"actor": "test", "actor_role": "system"}


def _append(data: dict[str, Any], metadata: dict[str, Any] | None = None) -> list[StreamAppend]:
    return [StreamAppend(uuid4(), 0, [NewEvent("Thing.Happened", data, metadata or {})])]


@pytest.mark.parametrize(("data", "where"), [
    ({"name": "Ada\x00"}, "$.name"),
    ({"name": "Ada\ud800"}, "$.name"),
    ({"changes": {"note": ["ok", "\udfff"]}}, "$.changes.note[1]"),
    ({"key\x00": 1}, "$"),
    ({"\udc80": 1}, "$"),
    ({"rate": 2**63}, "$.rate"),
    ({"rate": BIGINT_MIN - 1}, "$.rate"),
    ({"lines": [{"amount": 2**64}]}, "$.lines[0].amount"),
])
async def test_unstorable_values_are_refused_before_anything_is_queued(
    store: EventStore, data: dict[str, Any], where: str,
) -> None:
    batches = store.batches_committed
    with pytest.raises(InvalidEventData) as refused:
        await store.append(_append(data))
    assert refused.value.path == where
    assert "Ada" not in str(refused.value)  # the message names where, never the value
    assert store.batches_committed == batches
    assert await store.head() == 0


async def test_metadata_is_checked_too(store: EventStore) -> None:
    with pytest.raises(InvalidEventData):
        await store.append(_append({"n": 1}), {"actor": "x\x00"})
    with pytest.raises(InvalidEventData):
        await store.append(_append({"n": 1}, {"request_id": 2**63}))
    assert await store.head() == 0


async def test_the_bounds_themselves_and_plain_text_are_stored(store: EventStore) -> None:
    data = {"low": BIGINT_MIN, "high": BIGINT_MAX, "text": "tab\tline\nΩ 🛥 \u200b\x1b",
            "flag": True}
    result = await store.append(_append(data))
    stored = (await store.read_all())[0]
    assert (result.last_position, stored.data) == (1, data)


async def test_a_personal_field_is_checked_before_it_is_encrypted(
    db: Database, store: EventStore,
) -> None:
    repo = Repository(store, EventTypes(AGGREGATES), field_codec=pii.PiiCodec(db))
    for name in ("Ada\x00", "Ada\ud800"):
        with pytest.raises(InvalidEventData) as refused:
            await create_account(repo, email="ada@example.com", name=name, password=None,
                                 rounds=4, metadata=MD, consent_version="v1",
                                 consent_at=datetime.now(UTC))
        assert refused.value.path == "$.name"
    async with db.acquire() as conn:  # no key was made for a subject never written
        assert await conn.fetchval("SELECT count(*) FROM subject_keys") == 0
    assert await store.head() == 0
    account_id, _ = await create_account(
        repo, email="ada@example.com", name="Ada\tLovelace", password=None, rounds=4,
        metadata=MD, consent_version="v1", consent_at=datetime.now(UTC))
    loaded = await repo.get(account_id, cls=Account)
    assert isinstance(account_id, UUID) and loaded.name == "Ada\tLovelace"
    raw = (await store.read_stream(account_id))[0].data
    assert pii.is_sealed(raw["name"])
