"""Connections to PostgreSQL: one pool per process, all objects in one schema."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from midas.eventstore.outages import CONNECTION_ERRORS, DatabaseUnavailable

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """Released pool connections skip asyncpg's reset query (a round trip each time).

    Pooled connections never hold session state: LISTEN and session advisory locks
    live on dedicated connections (``Database.connect``), and nothing issues SET. asyncpg
    still rolls back a transaction left open before calling this.
    """


def quote_ident(name: str) -> str:
    """``name`` as an SQL identifier (schemas, tables, indexes named at run time)."""
    return '"' + name.replace('"', '""') + '"'


class Database:
    """A pool plus the schema every connection works in.

    Advisory-lock keys and NOTIFY channels are derived from the schema, so several
    Midas instances (or tests) can share one PostgreSQL database without interfering.
    """

    def __init__(
        self,
        dsn: str,
        schema: str = "public",
        *,
        min_size: int = 1,
        max_size: int = 10,
        statement_timeout_s: float = 30.0,
        connect_timeout_s: float = 5.0,
    ) -> None:
        if not _SCHEMA_NAME.match(schema):
            raise ValueError(f"invalid schema name {schema!r}")
        self.dsn = dsn
        self.schema = schema
        self._min_size = min_size
        self._max_size = max_size
        self._statement_timeout_s = statement_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._pool: asyncpg.Pool | None = None

    @property
    def server_settings(self) -> dict[str, str]:
        return {
            "search_path": self.schema,
            "application_name": "midas",
            "statement_timeout": str(int(self._statement_timeout_s * 1000)),
        }

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(
            self.dsn,
            min_size=0,
            max_size=self._max_size,
            server_settings=self.server_settings,
            timeout=self._connect_timeout_s,
            command_timeout=self._statement_timeout_s,
            reset=_keep_session,
        )

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), timeout=5)
            except CONNECTION_ERRORS:
                pool.terminate()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:  # not open yet, or closing: the process is stopping
            raise DatabaseUnavailable("the database pool is closed")
        return self._pool

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.pool.acquire(timeout=self._connect_timeout_s) as conn:
            yield conn

    async def connect(
        self, *, custom_plans: bool = False, keyed_only: bool = False
    ) -> asyncpg.Connection:
        """A dedicated connection outside the pool (listeners, leader locks, rebuilds).

        ``custom_plans``: plan each statement for its arguments, for the live projection
        runner. Its read models start empty (a new deployment), and a statement prepared
        then kept the generic plan chosen for an empty table, a sequential scan, until
        autovacuum next analyzed it: each batch's ``key = ANY($1)`` lookups scanned whole
        tables (bench/booking: half of PostgreSQL's CPU). Not everywhere: the long arrays of
        bulk statements make each custom plan costly.

        ``keyed_only``: no sequential scans where an index serves (``enable_seqscan =
        off``), for rebuilds. Their read models grow from empty within minutes, faster
        than autovacuum analyzes them, and every statement they send is keyed: a plan made
        on the empty table scanned it whole for each batch's lookups (bench/projections:
        19 of PostgreSQL's 89 s on one lookup; custom plans instead cost more planning than
        they saved)."""
        settings = self.server_settings
        if custom_plans:
            settings = {**settings, "plan_cache_mode": "force_custom_plan"}
        if keyed_only:
            settings = {**settings, "enable_seqscan": "off"}
        return await asyncpg.connect(
            self.dsn,
            server_settings=settings,
            timeout=self._connect_timeout_s,
            command_timeout=self._statement_timeout_s,
        )

    def lock_key(self, name: str) -> int:
        """A signed 64-bit advisory-lock key for ``name`` within this schema."""
        digest = hashlib.blake2b(f"{self.schema}:{name}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big", signed=True)

    def channel(self, name: str) -> str:
        return f"{self.schema}_{name}"
