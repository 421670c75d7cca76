"""The event loop `serve` and `worker` run on."""

from __future__ import annotations

import asyncio

import uvloop

from midas.cli import event_loop_factory
from midas.config import Settings


def test_the_service_runs_on_uvloop_unless_told_otherwise() -> None:
    chosen = event_loop_factory(Settings(environment="test"))()
    standard = event_loop_factory(Settings(environment="test", event_loop="asyncio"))()
    try:
        assert isinstance(chosen, uvloop.Loop)
        assert isinstance(standard, asyncio.BaseEventLoop)
        assert not isinstance(standard, uvloop.Loop)
    finally:
        chosen.close()
        standard.close()
