"""RowChanges: per-event statement meanings, merged per row, written with few statements."""

from __future__ import annotations

from typing import Any

from projections.batch import COPIED_ROWS, RowChanges

TYPES = {"id": "bigint", "n": "bigint", "note": "text", "s": "text", "status": "text",
         "v": "text"}


class Recorder:
    """Records the statements; answers the column types of table ``t``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    async def execute(self, sql: str, *args: Any) -> str:
        self.calls.append((sql, args))
        return ""

    async def copy_records_to_table(self, table: str, *, records: Any, columns: Any) -> str:
        self.calls.append(("COPY", (table, tuple(columns), list(records))))
        return ""

    async def fetch(self, sql: str, table: str) -> list[dict[str, str]]:
        assert "pg_attribute" in sql and table == "t"
        return [{"attname": name, "type": type_} for name, type_ in TYPES.items()]


async def _written(changes: RowChanges) -> list[tuple[str, Any]]:
    conn = Recorder()
    await changes.write(conn)  # type: ignore[arg-type]
    return conn.calls


async def test_a_row_inserted_then_updated_is_one_insert_with_its_final_values() -> None:
    changes = RowChanges("t", "id", {})
    changes.insert(1, {"status": "held", "v": 1})
    changes.update(1, {"status": "confirmed", "v": 2})
    changes.update(1, {"status": "active", "v": 3, "note": "x"})
    changes.insert(1, {"status": "held", "v": 9})  # as ON CONFLICT DO NOTHING: nothing
    assert await _written(changes) == [(
        "INSERT INTO t (id, note, status, v) SELECT * FROM unnest($1::bigint[], $2::text[],"
        " $3::text[], $4::text[]) AS u(id, note, status, v)",
        ([1], ["x"], ["active"], [3]))]


async def test_an_existing_row_gets_one_update_of_the_columns_that_changed() -> None:
    changes = RowChanges("t", "id", {1: {"id": 1, "n": 5}})
    changes.update(1, {"n": changes.get(1)["n"] + 1})  # type: ignore[index]
    changes.update(1, {"n": changes.get(1)["n"] + 1, "s": "a"})  # type: ignore[index]
    changes.update(2, {"n": 1})  # no such row: nothing
    assert await _written(changes) == [(
        "UPDATE t t SET n = u.n, s = u.s FROM unnest($1::bigint[], $2::bigint[], $3::text[])"
        " AS u(id, n, s) WHERE t.id = u.id", ([1], [7], ["a"]))]


async def test_deletes_come_first_and_a_deleted_row_can_be_inserted_again() -> None:
    changes = RowChanges("t", "id", {1: {"id": 1}, 2: {"id": 2}})
    changes.delete(1)
    changes.insert(1, {"v": "new"})
    changes.delete(2)
    changes.insert(3, {"v": "gone"})
    changes.delete(3)  # inserted and deleted in the batch: never written
    changes.delete(4)  # absent: nothing
    calls = await _written(changes)
    assert calls[0][0] == "DELETE FROM t WHERE id = ANY($1)"
    assert sorted(calls[0][1][0]) == [1, 2]
    assert calls[1:] == [(
        "INSERT INTO t (id, v) SELECT * FROM unnest($1::bigint[], $2::text[]) AS u(id, v)",
        ([1], ["new"]))]
    assert changes.get(1) == {"id": 1, "v": "new"} and changes.get(3) is None


async def test_many_new_rows_go_as_one_copy() -> None:
    changes = RowChanges("t", "id", {})
    for n in range(COPIED_ROWS):
        changes.insert(n, {"v": str(n)})
    changes.update(0, {"v": "first"})
    assert await _written(changes) == [
        ("COPY", ("t", ("id", "v"), [(0, "first"), *((n, str(n)) for n in range(1, COPIED_ROWS))]))]
