"""Checking a signed checkpoint against the log (a POST, but read only)."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel, Field

from midas.audit.checkpoint import InvalidCheckpoint, check_checkpoint, key_bytes
from midas.http.api import Api
from midas.http.fields import Line, Position
from midas.http.keys import DATABASE, SETTINGS
from midas.http.problems import Problem

api = Api(tag="audit", kind="command")


class CheckpointDocument(BaseModel):
    """A checkpoint exactly as exported (other fields are ignored)."""

    algorithm: Line = Field(max_length=100)
    position: Position
    head_hash: Line = Field(max_length=200)
    created_at: Line = Field(max_length=100)
    signature: Line = Field(max_length=1000)


class CheckpointVerdict(BaseModel):
    valid: bool
    signature_valid: bool
    position: int
    head_hash: str
    chain_ok: bool | None
    first_broken_position: int | None
    reason: str | None


@api.post("/api/v1/audit/checkpoint/verify", status=200, body=CheckpointDocument,
          response=CheckpointVerdict,
          summary="Check a signed checkpoint: was the log up to it rewritten since?")
async def verify_checkpoint(request: web.Request, body: CheckpointDocument) -> web.Response:
    key = key_bytes(request.app[SETTINGS].audit_signing_key)
    if key is None:
        raise Problem(409, "Set MIDAS_AUDIT_SIGNING_KEY to sign and check checkpoints.",
                      title="No audit signing key")
    async with request.app[DATABASE].acquire() as conn:
        try:
            verdict: dict[str, Any] = await check_checkpoint(
                conn, body.model_dump(), key)
        except InvalidCheckpoint as exc:
            raise Problem(422, str(exc), title="Invalid checkpoint") from None
    return web.Response(body=orjson.dumps(verdict), content_type="application/json")
