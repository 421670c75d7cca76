"""Stopping background tasks: a task that lost its cancellation still stops (`stop_task`,
`Background.stop`), and what a task raised comes out of its stop."""

from __future__ import annotations

import asyncio
import sys

import pytest

from midas import background
from midas.background import Background, stop_task


class RepliesLoop:
    """A loop that waits for each reply with ``asyncio.wait_for``, as aiosmtplib does for
    every SMTP reply."""

    def __init__(self) -> None:
        self.waiting: asyncio.Future[int] | None = None
        self.replies = 0

    async def run(self) -> None:
        while True:
            self.waiting = asyncio.get_running_loop().create_future()
            self.replies += await asyncio.wait_for(self.waiting, 10)

    async def answer(self) -> None:
        """Answer the reply it waits for; the caller cancels it in the same turn."""
        await asyncio.sleep(0)  # the loop starts and waits
        assert self.waiting is not None
        self.waiting.set_result(1)


@pytest.fixture(autouse=True)
def _quick_recancel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(background, "RECANCEL_S", 0.05)


async def test_a_cancellation_lost_in_wait_for_does_not_keep_the_task_running() -> None:
    loop = RepliesLoop()
    task = asyncio.create_task(loop.run())
    await loop.answer()
    await asyncio.wait_for(stop_task(task), 5)  # cancels before anything else runs
    assert task.cancelled()
    # 3.11 takes the reply that raced the cancellation, and the next cancel stops it.
    assert loop.replies == (1 if sys.version_info < (3, 12) else 0)


async def test_one_cancel_is_lost_there_on_this_python() -> None:
    """Why ``stop_task`` cancels again: on 3.11 the race above swallows a single cancel."""
    loop = RepliesLoop()
    task = asyncio.create_task(loop.run())
    await loop.answer()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=0.2)
    if sys.version_info < (3, 12):
        assert not done and loop.replies == 1  # it took the reply and waits for the next
    await stop_task(task)
    assert task.done()


class Stubborn(Background):
    """Swallows its first cancellation, as a lost one looks from inside the task."""

    def __init__(self) -> None:
        self.swallowed = 0
        self.released = False

    async def _loop(self) -> None:
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                if self.swallowed:
                    raise
                self.swallowed += 1

    async def _stopped(self) -> None:
        self.released = True


async def test_background_stop_ends_a_loop_that_swallowed_its_cancellation() -> None:
    worker = Stubborn()
    worker.start()
    await asyncio.sleep(0)
    await asyncio.wait_for(worker.stop(), 5)
    assert worker.swallowed == 1
    assert worker.released


async def test_stop_raises_what_the_task_raised_and_accepts_a_finished_task() -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    failed = asyncio.create_task(fails())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="boom"):
        await stop_task(failed)

    async def returns() -> None:
        return None

    finished = asyncio.create_task(returns())
    await finished
    await stop_task(finished)  # nothing to cancel, nothing raised
    assert not finished.cancelled()


async def test_a_task_whose_clean_up_takes_a_moment_is_cancelled_once() -> None:
    """Clean-up shorter than the re-cancel interval (closing a connection) runs whole."""
    cleaned = asyncio.Event()

    async def closes_on_the_way_out() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.sleep(0.01)
            cleaned.set()

    task = asyncio.create_task(closes_on_the_way_out())
    await asyncio.sleep(0)
    await stop_task(task)
    assert cleaned.is_set() and task.cancelled()
