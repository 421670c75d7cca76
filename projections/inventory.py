"""The inventory read model: one row per item, for listing and filtering."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import orjson

from midas.eventstore import RecordedEvent

ITEMS_TABLE = "inv_items"


class InventoryProjector:
    name = "inventory"
    tables = (ITEMS_TABLE,)
    handles = frozenset(
        {"Item.Registered", "Item.RateChanged", "Item.Deactivated", "Item.StatusChanged"}
    )

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        for event in events:
            if event.type == "Item.Registered":
                await self._registered(conn, event)
            elif event.type == "Item.RateChanged":
                await self._update(conn, event, "rate = $3", event.data["rate"])
            elif event.type == "Item.Deactivated":
                await self._update(conn, event, "status = $3", "inactive")
            elif event.type == "Item.StatusChanged":
                await self._update(conn, event, "status = $3", event.data["status"])

    async def _registered(self, conn: asyncpg.Connection, event: RecordedEvent) -> None:
        d = event.data
        await conn.execute(
            f"INSERT INTO {ITEMS_TABLE} (id, name, category, location, rate, rate_unit,"
            " currency, buffer_minutes, minimum_minutes, status, attributes, version,"
            " registered_at, updated_at)"
            " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,'active',$10::jsonb,$11,$12,$12)",
            event.stream_id, d["name"], d["category"], d["location"], d["rate"],
            d["rate_unit"], d["currency"], d["buffer_minutes"], d["minimum_minutes"],
            orjson.dumps(d["attributes"]).decode(), event.version, event.recorded_at,
        )

    async def _update(
        self, conn: asyncpg.Connection, event: RecordedEvent, assignment: str, value: object
    ) -> None:
        await conn.execute(
            f"UPDATE {ITEMS_TABLE} SET {assignment}, version = $2, updated_at = $4"
            " WHERE id = $1",
            event.stream_id, event.version, value, event.recorded_at,
        )
