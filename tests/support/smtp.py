"""A real SMTP server for tests: aiosmtpd's Controller on 127.0.0.1, on a free port."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from midas.config import SmtpProvider


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Inbox:
    """Collects every message the server accepts; refuses listed recipients with a 550."""

    def __init__(self, refuse: set[str] | None = None) -> None:
        self.messages: list[EmailMessage] = []
        self.raw: list[bytes] = []  # as received, in the order of ``messages``
        self.envelopes: list[tuple[str, list[str]]] = []
        self.refuse = {a.lower() for a in (refuse or set())}
        self.connections = 0
        self._lock = threading.Lock()

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        with self._lock:
            self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address.lower() in self.refuse:
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append(message)  # type: ignore[arg-type]
            self.raw.append(bytes(envelope.content))
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"

    def templates(self) -> list[str]:
        return sorted(str(m["X-Midas-Template"]) for m in self.messages)

    def by_template(self, template: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["X-Midas-Template"] == template]

    async def wait_for(self, count: int, timeout: float = 5.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.messages) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{len(self.messages)} messages, expected {count}")
            await asyncio.sleep(0.02)


@contextmanager
def smtp_server(name: str = "primary", refuse: set[str] | None = None
                ) -> Iterator[tuple[Inbox, SmtpProvider]]:
    inbox = Inbox(refuse)
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, SmtpProvider(name=name, host="127.0.0.1", port=port, tls="none")
    finally:
        controller.stop()


def closed_provider(name: str = "down") -> SmtpProvider:
    """A provider on a port nobody listens on: connections are refused."""
    return SmtpProvider(name=name, host="127.0.0.1", port=free_port(), tls="none")


def parts(message: EmailMessage) -> dict[str, str]:
    """The text/plain and text/html bodies of a multipart/alternative message."""
    found: dict[str, str] = {}
    for part in message.walk():
        if part.get_content_type() in ("text/plain", "text/html"):
            found[part.get_content_type()] = part.get_content()
    return found
