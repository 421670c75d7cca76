"""Headers every response carries, whatever answered it (a handler, a refusal, aiohttp).

- ``X-Content-Type-Options: nosniff``: a browser takes the declared type, never a guess.
- Framing denied: ``X-Frame-Options: DENY`` and the policy's ``frame-ancestors 'none'``.
- ``Content-Security-Policy: default-src 'none'`` unless a route sets its own (the docs
  page allows scripts, styles and requests of this origin only: ``DOCS_POLICY``).
- ``Referrer-Policy: no-referrer``: URLs (some hold feed tokens) never leak onwards.
- ``Server: Midas``: no framework or Python version.
- ``Cache-Control: no-store`` unless a route sets its own: answers hold personal data or
  tokens, so nothing is kept by a browser or a shared cache unless the route says it is
  public and the same for everyone (the API document and its page).
"""

from __future__ import annotations

from collections.abc import MutableMapping

from aiohttp import web

SERVER = "Midas"
NO_STORE = "no-store"
PUBLIC_CACHE = "public, max-age=300"
DEFAULT_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
FIXED = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
# The docs page (Swagger UI): its scripts and style sheet from this origin, none inline;
# the document and try-it-out requests to this origin; the style sheet's data: images.
DOCS_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
               " connect-src 'self'; base-uri 'none'; form-action 'none';"
               " frame-ancestors 'none'")


def secure(headers: MutableMapping[str, str]) -> None:
    """Set the headers above; a route's own Content-Security-Policy and Cache-Control
    stay."""
    headers.update(FIXED)
    headers["Server"] = SERVER
    headers.setdefault("Content-Security-Policy", DEFAULT_POLICY)
    headers.setdefault("Cache-Control", NO_STORE)


async def on_response_prepare(request: web.Request, response: web.StreamResponse) -> None:
    secure(response.headers)


