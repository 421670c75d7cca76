"""Domain errors: broken rules the caller can understand and act on."""

from __future__ import annotations


class DomainError(Exception):
    """A command broke a business rule; nothing was recorded."""

    status = 409  # the HTTP status a handler answers with, by default


class InvalidState(DomainError):
    def __init__(self, what: str, state: str, action: str) -> None:
        super().__init__(f"{what} is {state}: cannot {action}")
        self.state = state


class RuleViolation(DomainError):
    status = 422
