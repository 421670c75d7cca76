"""Reference handlers, measured on the same machine as bench/booking.

The booking goals are set against two figures for this 2-core machine: a bare aiohttp
JSON handler serves about 25,000 requests/s, a handler doing one asyncpg INSERT about
4,000/s. The machine's speed varies from run to run (by up to 40 % here), so bench/booking
measures both beside its own figures: a hold rate then reads against the machine as it
was.

`python -m bench.reference --port P --dsn D --schema S` serves `GET /json` and
`GET /insert` (one INSERT into `S.reference_rows`) on asyncio's own event loop.
"""

from __future__ import annotations

import argparse

import asyncpg
from aiohttp import web


def app(dsn: str, schema: str) -> web.Application:
    pool_key = web.AppKey("pool", asyncpg.Pool)

    async def pool(application: web.Application):  # type: ignore[no-untyped-def]
        async with asyncpg.create_pool(dsn, min_size=8, max_size=16) as created:
            await created.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await created.execute(
                f'CREATE TABLE IF NOT EXISTS "{schema}".reference_rows'
                " (id bigserial PRIMARY KEY, body text NOT NULL)")
            application[pool_key] = created
            yield

    async def json_handler(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def insert_handler(request: web.Request) -> web.Response:
        await request.app[pool_key].execute(
            f'INSERT INTO "{schema}".reference_rows (body) VALUES ($1)', "row")
        return web.json_response({"ok": True})

    application = web.Application()
    application.cleanup_ctx.append(pool)
    application.router.add_get("/json", json_handler)
    application.router.add_get("/insert", insert_handler)
    return application


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--schema", required=True)
    args = parser.parse_args()
    web.run_app(app(args.dsn, args.schema), host="127.0.0.1", port=args.port,
                access_log=None, print=None)


if __name__ == "__main__":
    main()
