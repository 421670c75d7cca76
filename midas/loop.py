"""The event loop Midas runs on: uvloop (libuv), whose sockets and callbacks cost less CPU
than asyncio's own loop; ``MIDAS_EVENT_LOOP=asyncio`` chooses the standard one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")
EventLoopChoice = Literal["uvloop", "asyncio"]


def event_loop_factory(
    choice: EventLoopChoice = "uvloop",
) -> Callable[[], asyncio.AbstractEventLoop]:
    if choice == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T], choice: EventLoopChoice = "uvloop") -> T:
    """``asyncio.run`` on the chosen loop."""
    with asyncio.Runner(loop_factory=event_loop_factory(choice)) as runner:
        return runner.run(main)
