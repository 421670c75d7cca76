"""The event loop `serve` and `worker` run on."""

from __future__ import annotations

import asyncio

import uvloop

from midas.config import Settings
from midas.loop import event_loop_factory


def test_the_service_runs_on_uvloop_unless_told_otherwise() -> None:
    chosen = event_loop_factory(Settings(environment="test").event_loop)()
    standard = event_loop_factory(Settings(environment="test", event_loop="asyncio").event_loop)()
    try:
        assert isinstance(chosen, uvloop.Loop)
        assert isinstance(standard, asyncio.BaseEventLoop)
        assert not isinstance(standard, uvloop.Loop)
    finally:
        chosen.close()
        standard.close()
