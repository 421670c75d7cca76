"""Local stand-ins for Google: the OAuth token endpoint and Calendar API (events only), and
sign-in's signing keys (JWKS) with the ID tokens they sign."""

from __future__ import annotations

import itertools
import time
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa


class FakeGoogle:
    def __init__(self, public_key: Any, email: str) -> None:
        self.public_key = public_key
        self.email = email
        self.token_url = ""  # set once the server runs (the JWT's audience)
        self.calendars: dict[str, dict[str, dict[str, Any]]] = {}
        self.changed: dict[str, dict[str, int]] = {}  # calendar -> event id -> change number
        self.counter = itertools.count(1)
        self.last = 0
        self.tokens: set[str] = set()
        self.token_requests = 0
        self.expire_sync_tokens = False
        self.app = web.Application()
        self.app.router.add_post("/token", self.token)
        base = "/calendar/v3/calendars/{cid}/events"
        self.app.router.add_get(base, self.list_events)
        self.app.router.add_post(base, self.insert)
        self.app.router.add_put(base + "/{eid}", self.update)
        self.app.router.add_delete(base + "/{eid}", self.delete)

    # -- helpers for tests ------------------------------------------------------------

    def events(self, calendar_id: str) -> dict[str, dict[str, Any]]:
        return self.calendars.setdefault(calendar_id, {})

    def owner_writes(self, calendar_id: str, event: dict[str, Any]) -> None:
        self._store(calendar_id, {"status": "confirmed", **event})

    def owner_deletes(self, calendar_id: str, event_id: str) -> None:
        self._store(calendar_id, {**self.events(calendar_id)[event_id], "status": "cancelled"})

    def _store(self, calendar_id: str, event: dict[str, Any]) -> None:
        self.events(calendar_id)[event["id"]] = event
        self.last = next(self.counter)
        self.changed.setdefault(calendar_id, {})[event["id"]] = self.last

    # -- the API ----------------------------------------------------------------------

    async def token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = await request.post()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        try:
            claims = jwt.decode(str(form.get("assertion")), self.public_key,
                                algorithms=["RS256"], audience=self.token_url)
        except jwt.PyJWTError:
            return web.json_response({"error": "invalid_grant"}, status=400)
        if claims.get("iss") != self.email or "calendar" not in claims.get("scope", ""):
            return web.json_response({"error": "invalid_grant"}, status=400)
        token = f"ya29.fake-{len(self.tokens)}"
        self.tokens.add(token)
        return web.json_response({"access_token": token, "expires_in": 3600,
                                  "token_type": "Bearer"})

    def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization", "").removeprefix("Bearer ") in self.tokens

    async def list_events(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"error": {"code": 401}}, status=401)
        cid = request.match_info["cid"]
        sync_token = request.query.get("syncToken")
        changed = self.changed.get(cid, {})
        if sync_token is not None:
            if self.expire_sync_tokens:
                self.expire_sync_tokens = False
                return web.json_response({"error": {"code": 410, "message": "Sync token is no"
                                                    " longer valid"}}, status=410)
            since = int(sync_token)
            items = [self.events(cid)[eid] for eid, n in changed.items() if n > since]
        else:
            items = [e for e in self.events(cid).values() if e.get("status") != "cancelled"]
        return web.json_response({"items": items, "nextSyncToken": str(self.last)})

    async def insert(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"error": {"code": 401}}, status=401)
        cid, event = request.match_info["cid"], await request.json()
        if event["id"] in self.events(cid):
            return web.json_response({"error": {"code": 409}}, status=409)
        self._store(cid, event)
        return web.json_response(event)

    async def update(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"error": {"code": 401}}, status=401)
        cid, eid = request.match_info["cid"], request.match_info["eid"]
        if eid not in self.events(cid):
            return web.json_response({"error": {"code": 404}}, status=404)
        self._store(cid, {**await request.json(), "id": eid})
        return web.json_response(self.events(cid)[eid])

    async def delete(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"error": {"code": 401}}, status=401)
        cid, eid = request.match_info["cid"], request.match_info["eid"]
        event = self.events(cid).get(eid)
        if event is None or event.get("status") == "cancelled":
            return web.json_response({"error": {"code": 410}}, status=410)
        self._store(cid, {**event, "status": "cancelled"})
        return web.Response(status=204)


class FakeGoogleSignIn:
    """Google's signing keys (a JWKS document) and ID tokens signed with them."""

    KID = "test-key-1"

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id
        self.jwks_url = ""  # set once the server runs
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.app = web.Application()
        self.app.router.add_get("/certs", self.certs)

    async def certs(self, request: web.Request) -> web.Response:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return web.json_response({"keys": [{**jwk, "kid": self.KID, "alg": "RS256",
                                            "use": "sig"}]})

    def id_token(self, subject: str, email: str, **changes: Any) -> str:
        now = int(time.time())
        claims = {"iss": "https://accounts.google.com", "aud": self.client_id, "sub": subject,
                  "email": email, "email_verified": True, "name": email.split("@")[0],
                  "iat": now, "exp": now + 3600, **changes}
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.KID})
