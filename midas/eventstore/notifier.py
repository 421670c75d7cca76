"""LISTEN/NOTIFY fan-out with reconnection.

Notifications are only a wake-up call: they are lost while the listening connection
is down, so every waiter also wakes on a timeout and re-reads the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

from midas.background import Background
from midas.eventstore.database import Database
from midas.eventstore.outages import is_unavailable

log = logging.getLogger(__name__)


class Notifier(Background):
    task_name = "midas-notifier"

    def __init__(self, db: Database, channels: list[str], *, retry_s: float = 0.5) -> None:
        self._db = db
        self._channels = [db.channel(c) for c in channels]
        self._names = dict(zip(self._channels, channels, strict=True))
        self._retry_s = retry_s
        self._conditions = {name: asyncio.Condition() for name in channels}
        self._listeners: dict[str, list[Callable[[str | None], None]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self.connected = asyncio.Event()

    async def wait(self, channel: str, timeout: float) -> bool:
        """Wait for a notification on ``channel``; False on timeout."""
        condition = self._conditions[channel]
        async with condition:
            try:
                await asyncio.wait_for(condition.wait(), timeout)
                return True
            except TimeoutError:
                return False

    def listen(self, channel: str, callback: Callable[[str | None], None]) -> None:
        """Call ``callback(payload)`` on each notification, and ``callback(None)`` on
        each (re)connection: notifications sent meanwhile may have been lost."""
        self._listeners.setdefault(channel, []).append(callback)

    async def _wake(self, channel: str) -> None:
        condition = self._conditions[channel]
        async with condition:
            condition.notify_all()

    def _on_notify(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        name = self._names.get(channel)
        if name is not None:
            for callback in self._listeners.get(name, ()):
                callback(payload)
            asyncio.get_running_loop().create_task(self._wake(name))

    async def _loop(self) -> None:
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await self._db.connect()
                self._lost.clear()
                conn.add_termination_listener(lambda _c: self._lost.set())
                for channel in self._channels:
                    await conn.add_listener(channel, self._on_notify)
                self.connected.set()
                # Anything sent while we were away is lost: wake everyone to re-read.
                for name in self._conditions:
                    for callback in self._listeners.get(name, ()):
                        callback(None)
                    await self._wake(name)
                await self._watch(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not is_unavailable(exc):
                    log.exception("notifier failed")
            finally:
                self.connected.clear()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 1)
            await asyncio.sleep(self._retry_s)

    async def _watch(self, conn: asyncpg.Connection) -> None:
        while not conn.is_closed():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), 5)
                return
            await conn.fetchval("SELECT 1", timeout=5)
