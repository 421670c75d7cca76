"""Embedded mail: outside production, with no SMTP relay configured, `midas serve` runs a
local SMTP server that keeps every email as a file, and sends the service's emails to it.

The server is aiosmtpd's (in a thread of the serving process, on a free 127.0.0.1 port).
Each message it accepts is written, as received, to ``<data_dir>/mail/`` as
``<time>-<template>-<n>.eml``, with its plain-text part decoded beside it (``.txt``).
Emails therefore go through the real delivery path (the outbox, rendering, SMTP,
retries), and a developer reads them as files: the verification link of a new account, a
booking's confirmation. One server serves every worker of a `midas serve --workers N`,
and it stops with the service.
"""

from __future__ import annotations

import itertools
import logging
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from midas.config import Settings, SmtpProvider

log = logging.getLogger(__name__)

MAIL_FOLDER = "mail"
PROVIDER_NAME = "local-mail"
_UNSAFE = re.compile(r"[^a-z0-9_]+")


class MailDrop:
    """An aiosmtpd handler that writes each accepted message to ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._numbers = itertools.count(1)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = bytes(envelope.content)
        message = message_from_bytes(content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        template = _UNSAFE.sub("_", str(message.get("X-Midas-Template", "email")).lower())
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        path = self.folder / f"{stamp}-{template}-{next(self._numbers)}.eml"
        path.write_bytes(content)
        text = message.get_body(("plain",))
        if text is not None:
            path.with_suffix(".txt").write_text(str(text.get_content()))
        return "250 Message kept"


def wants_local_mail(settings: Settings) -> bool:
    return (settings.environment != "production" and settings.local_mail
            and not settings.smtp_providers)


@contextmanager
def embedded_mail(settings: Settings) -> Iterator[Settings]:
    """`settings` as they are when an SMTP relay is configured (or in production, or with
    MIDAS_LOCAL_MAIL=false); otherwise sending to a local mail drop running meanwhile."""
    if not wants_local_mail(settings):
        yield settings
        return
    folder = settings.data_dir / MAIL_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    controller = Controller(MailDrop(folder), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        log.info("emails: kept as files by a local mail drop", extra={"folder": str(folder)})
        yield settings.model_copy(update={"smtp_providers": [
            SmtpProvider(name=PROVIDER_NAME, host="127.0.0.1", port=port, tls="none")]})
    finally:
        controller.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
