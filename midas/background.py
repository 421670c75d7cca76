"""Components that run one background task for the life of the service."""

from __future__ import annotations

import asyncio
import contextlib


class Background:
    """``start()`` runs ``_loop()`` once as a named task; ``stop()`` cancels and awaits it."""

    task_name = "midas-background"
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=self.task_name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._stopped()

    async def _loop(self) -> None:
        raise NotImplementedError

    async def _stopped(self) -> None:
        """Release what the task used (sessions, connections)."""
