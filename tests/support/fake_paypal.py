"""A local stand-in for PayPal's IPN verify endpoint: answers VERIFIED or INVALID."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class FakePayPal:
    answer: str = "VERIFIED"
    received: list[bytes] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/cgi-bin/webscr", self._verify)
        return app

    async def _verify(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append(body)
        if not body.startswith(b"cmd=_notify-validate&"):
            return web.Response(text="INVALID")
        return web.Response(text=self.answer)
