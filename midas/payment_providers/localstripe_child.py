"""The child process that serves `localstripe` (a stateful fake of Stripe's API, on PyPI)
for the embedded payments of development and tests: ``python -m
midas.payment_providers.localstripe_child [--state FILE]``.

Run as localstripe's own command, it would listen on every interface and pickle its whole
store to the shared ``/tmp/localstripe.pickle`` on every change. Here it listens on
127.0.0.1 only, on a port the system picks (written as one line, ``port N``, on standard
output once it accepts connections), keeps its state in ``--state`` (rewritten whole and
atomically at most once a second while it changes, and at exit) or nowhere, and exits
when its parent process is gone.

localstripe is GPL-licensed: it runs in this separate process, and Midas calls it only
over HTTP, as it would call Stripe.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

PARENT_CHECK_S = 1.0
SAVE_EVERY_S = 1.0


class _State:
    """localstripe's store, kept in a file (or nowhere): loaded at start, and written at
    most once a second while it changes, and at exit (localstripe itself would write the
    whole store at every change)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.changed = False

    def patch(self) -> None:
        from localstripe import resources

        state = self
        store_class = resources.Store

        def load(store: dict[str, object]) -> None:
            if state.path is not None and state.path.exists():
                with state.path.open("rb") as file:
                    dict.update(store, pickle.load(file))

        def changed(_store: dict[str, object]) -> None:
            state.changed = True

        store_class.try_load_from_disk = load
        store_class.dump_to_disk = changed
        store_class.__setitem__ = dict.__setitem__
        store_class.__delitem__ = dict.__delitem__

    def save(self, store: dict[str, object]) -> None:
        if self.path is None or not self.changed:
            return
        self.changed = False
        partial = self.path.with_name(self.path.name + ".partial")
        with partial.open("wb") as file:
            pickle.dump(dict(store), file, protocol=pickle.HIGHEST_PROTOCOL)
        partial.replace(self.path)

    async def keep(self, store: dict[str, object]) -> None:
        while True:
            await asyncio.sleep(SAVE_EVERY_S)
            self.save(store)


async def _exit_with_parent(parent: int, state: _State, store: dict[str, object]) -> None:
    while True:
        await asyncio.sleep(PARENT_CHECK_S)
        if os.getppid() != parent:
            state.save(store)
            os._exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="localstripe_child")
    parser.add_argument("--state", type=Path, default=None)
    args = parser.parse_args(argv)
    state = _State(args.state)
    state.patch()

    from aiohttp import web
    from localstripe.resources import store
    from localstripe.server import app

    store.try_load_from_disk()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # connections wait in the backlog until the server accepts them
    parent = os.getppid()

    async def announce(_app: web.Application) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(_exit_with_parent(parent, state, store)),
                 asyncio.create_task(state.keep(store))]
        print(f"port {sock.getsockname()[1]}", flush=True)
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # nobody reads the pipe any more
        yield
        for task in tasks:
            task.cancel()
        state.save(store)

    app.cleanup_ctx.append(announce)
    web.run_app(app, sock=sock, print=None, access_log=None, handle_signals=True)


if __name__ == "__main__":
    main(sys.argv[1:])
