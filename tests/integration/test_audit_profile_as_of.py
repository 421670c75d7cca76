"""A customer profile as of position N equals the live profile of a log truncated at N."""

from __future__ import annotations

from uuid import uuid4

from midas.eventstore import Database, EventStore
from midas.projection import catch_up
from midas.replay import read_model_as_of, table_rows
from projections.profiles import ProfilesProjector
from tests.conftest import history_events


async def append_history(store: EventStore, customer: object, **booking: int) -> None:
    _, appends = history_events(customer, **booking)  # type: ignore[arg-type]
    for append in appends:
        await store.append(append)


async def live(db: Database) -> dict[str, list[dict[str, object]]]:
    async with db.acquire() as conn:
        return {t: await table_rows(conn, db.schema, t) for t in ProfilesProjector.tables}


async def test_profile_as_of_n_equals_the_live_profile_of_the_log_cut_at_n(
    db: Database, store: EventStore
) -> None:
    ada, bob = uuid4(), uuid4()
    await append_history(store, ada, rental=50_000_00, insurance=5_000_00)
    await append_history(store, bob, rental=12_000_00, refund=2_000_00)
    n = await store.head()
    await catch_up(db, ProfilesProjector())
    at_n = await live(db)
    assert at_n["cust_profiles"], "the history must produce profiles"

    await append_history(store, ada, rental=90_000_00, insurance=9_000_00, refund=10_000_00)
    await append_history(store, uuid4(), rental=1_000_00)
    await catch_up(db, ProfilesProjector())
    assert await live(db) != at_n

    assert await read_model_as_of(db, ProfilesProjector(), n) == at_n
