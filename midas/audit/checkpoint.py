"""Signed checkpoints of the chain head (HMAC-SHA256).

A checkpoint states "the log up to position P ended with hash H", signed with the audit
key. Checking it later recomputes the chain from the first event to P: if the signature
is genuine and the recomputed hash at P is still H, nothing up to P was rewritten.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import asyncpg

from midas.eventstore import codec
from midas.eventstore.chain import verify_chain

ALGORITHM = "HMAC-SHA256"
_SIGNED_FIELDS = ("algorithm", "position", "head_hash", "created_at")


def key_bytes(secret: Any) -> bytes | None:
    """The signing key from settings (SecretStr or str); None when unset or empty."""
    if secret is None:
        return None
    value = secret.get_secret_value() if hasattr(secret, "get_secret_value") else secret
    return str(value).encode() or None


class InvalidCheckpoint(ValueError):
    """The document is not a checkpoint (missing or malformed fields)."""


def signature(checkpoint: dict[str, Any], key: bytes) -> str:
    message = codec.canonical({f: checkpoint[f] for f in _SIGNED_FIELDS})
    return hmac.new(key, message, hashlib.sha256).hexdigest()


async def make_checkpoint(
    conn: asyncpg.Connection, key: bytes, *, now: datetime | None = None
) -> dict[str, Any]:
    """Sign the current head of the log (position 0 and the genesis hash when empty)."""
    row = await conn.fetchrow("SELECT position, hash FROM events ORDER BY position DESC LIMIT 1")
    position, head = (row["position"], bytes(row["hash"])) if row else (0, codec.GENESIS_HASH)
    checkpoint: dict[str, Any] = {
        "algorithm": ALGORITHM,
        "position": position,
        "head_hash": head.hex(),
        "created_at": (now or datetime.now(UTC)).isoformat(),
    }
    checkpoint["signature"] = signature(checkpoint, key)
    return checkpoint


def _parse(checkpoint: Any) -> dict[str, Any]:
    if not isinstance(checkpoint, dict):
        raise InvalidCheckpoint("a checkpoint is a JSON object")
    missing = [f for f in (*_SIGNED_FIELDS, "signature") if f not in checkpoint]
    if missing:
        raise InvalidCheckpoint(f"missing fields: {', '.join(missing)}")
    if checkpoint["algorithm"] != ALGORITHM:
        raise InvalidCheckpoint(f"unsupported algorithm {checkpoint['algorithm']!r}")
    position = checkpoint["position"]
    if not isinstance(position, int) or isinstance(position, bool) or not 0 <= position < 2**63:
        raise InvalidCheckpoint("position must be a non-negative 64-bit integer")
    for name in ("head_hash", "signature", "created_at"):
        if not isinstance(checkpoint[name], str):
            raise InvalidCheckpoint(f"{name} must be a string")
    return checkpoint


async def check_checkpoint(
    conn: asyncpg.Connection, checkpoint: Any, key: bytes
) -> dict[str, Any]:
    """Is the signature genuine, and does the log still hash to it at its position?"""
    cp = _parse(checkpoint)
    genuine = hmac.compare_digest(signature(cp, key), cp["signature"])
    result: dict[str, Any] = {
        "valid": False, "signature_valid": genuine, "position": cp["position"],
        "head_hash": cp["head_hash"], "chain_ok": None, "first_broken_position": None,
        "reason": None,
    }
    if not genuine:
        result["reason"] = "the signature does not match: the checkpoint was altered or forged"
        return result
    if cp["position"] == 0:
        report_ok, recomputed, broken, reason = True, codec.GENESIS_HASH.hex(), None, None
    else:
        report = await verify_chain(conn, 1, cp["position"])
        report_ok, recomputed = report.ok, report.head_hash
        broken, reason = report.first_broken_position, report.reason
    result.update(chain_ok=report_ok, first_broken_position=broken, reason=reason)
    if report_ok and recomputed != cp["head_hash"]:
        result["reason"] = (
            f"the log up to position {cp['position']} was rewritten: its head hash differs")
        result["chain_ok"] = False
    result["valid"] = bool(result["chain_ok"])
    return result
