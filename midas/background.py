"""Components that run one background task for the life of the service, and the one way
the service stops such a task (``stop_task``)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

# How long ``stop_task`` waits for a cancelled task before cancelling it again: time for
# its own clean-up (closing a connection) before that is cut short.
RECANCEL_S = 1.0


async def stop_task(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait until it has ended, cancelling it again for as long as it
    runs on; what it raised, other than its cancellation, is raised here.

    One ``cancel()`` is not always enough on Python 3.11: ``asyncio.wait_for`` returns the
    awaited result when the cancellation arrives in the same turn of the loop as that
    result, and the cancellation is lost (fixed in 3.12). Background loops wait that way
    all the time (aiosmtplib waits so for every SMTP reply), so a loop that lost its
    cancellation would run on, and the service would never finish stopping."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=RECANCEL_S)
    with contextlib.suppress(asyncio.CancelledError):
        await task


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
            await stop_task(task)
        await self._stopped()

    async def _loop(self) -> None:
        raise NotImplementedError

    async def _stopped(self) -> None:
        """Release what the task used (sessions, connections)."""
