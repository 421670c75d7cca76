"""One-click unsubscribe tokens (RFC 8058): opaque, unforgeable, one recipient each.

A token is ``base64url(nonce || AES-256-GCM(key, account id))``: authenticated encryption,
so it cannot be forged or altered into another person's (any change fails the tag), and
it reveals nothing (not even the account id) to whoever holds it. The key is derived with
HKDF-SHA256 from ``MIDAS_UNSUBSCRIBE_SECRET``, or from the JWT secret when that is unset
(under its own label, so the two keys differ). Tokens do not expire: a link in an old
email keeps working. Nothing is stored; changing the secret voids every link sent.
"""

from __future__ import annotations

import base64
import binascii
import os
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from midas.config import Settings

_LABEL = b"midas one-click unsubscribe v1"  # HKDF info and GCM additional data
_NONCE = 12
_SIZE = _NONCE + 16 + 16  # nonce, the account id, the tag
TOKEN_LENGTH = len(base64.urlsafe_b64encode(bytes(_SIZE)).rstrip(b"="))


class UnsubscribeTokens:
    def __init__(self, secret: bytes) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_LABEL).derive(secret)
        self._aead = AESGCM(key)

    def issue(self, account_id: UUID) -> str:
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, account_id.bytes, _LABEL)
        return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def account_of(self, token: str) -> UUID | None:
        """The account the token was issued for; None for anything else."""
        if len(token) != TOKEN_LENGTH or not token.isascii():
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            if base64.urlsafe_b64encode(raw).decode().rstrip("=") != token:
                return None  # one spelling per token (unused low bits must be zero)
            return UUID(bytes=self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], _LABEL))
        except (InvalidTag, ValueError, binascii.Error):
            return None


def tokens_from(settings: Settings) -> UnsubscribeTokens:
    secret = settings.unsubscribe_secret or settings.jwt_secret
    return UnsubscribeTokens(secret.get_secret_value().encode())
