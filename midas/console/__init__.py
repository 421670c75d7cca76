"""The staff console at ``/console``: pages for concierges and admins over the public API.

``setup(app)`` adds its routes. Every route has its rule in the permission matrix
(``midas/http/permissions.py``): the page shells and assets are public (they hold no
data), the fragments are for staff; the fragments' data comes from ``/api/v1`` as the
caller (``client.py``).
"""

from __future__ import annotations

from aiohttp import web

from midas.console import client, views
from midas.http.permissions import missing_rules


def routes() -> list[tuple[str, str, object]]:
    table: list[tuple[str, str, object]] = [
        ("GET", "/console", views.index),
        ("GET", "/console/sign-in", views.sign_in),
    ]
    table += [("GET", path, views.shell(path)) for path in views.PAGES]
    table += [("GET", path, handler) for path, handler in views.FRAGMENTS.items()]
    return table


def setup(app: web.Application) -> None:
    table = routes()
    unguarded = missing_rules((method, path) for method, path, _ in table)
    if unguarded:
        raise ValueError(f"console routes without a permission rule: {', '.join(unguarded)}")
    for method, path, handler in table:
        app.router.add_route(method, path, handler)  # type: ignore[arg-type]
    app.router.add_static("/console/static", views.STATIC, name="console_static")
    app.cleanup_ctx.append(client.session_context)
