"""Accounts: customers and staff. Secrets (password hashes, tokens) never enter events."""

from __future__ import annotations

import re
from datetime import datetime

from eventsourcing.domain import Aggregate, event

from midas.domain.errors import DomainError, InvalidState, RuleViolation

ROLES = ("customer", "concierge", "admin", "super_admin")
STAFF_ROLES = frozenset({"concierge", "admin", "super_admin"})
ERASED = "[erased]"  # what an erased personal field reads as (GDPR crypto-shredding)
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


class EmailTaken(DomainError):
    def __init__(self) -> None:
        super().__init__("an account with this email already exists")


def normal_email(email: str) -> str:
    """The email as stored: trimmed; uniqueness compares it lower-cased."""
    email = email.strip()
    if len(email) > 254 or not _EMAIL.match(email):
        raise RuleViolation("the email address is not valid")
    return email


class Account(Aggregate):
    """A person who may sign in: a customer or a member of staff."""

    # Personal data in these events is stored encrypted with the account's own key
    # (midas.security.pii); erasure shreds the key. Dotted paths reach nested fields.
    personal_fields = {
        "Registered": ("email", "name", "phone", "google_subject"),
        "ProfileChanged": ("changes.email", "changes.name", "changes.phone"),
        "GoogleLinked": ("subject",),
    }

    @event("Registered")
    def __init__(
        self,
        email: str,
        name: str,
        phone: str | None,
        role: str,
        consent_version: str | None,
        consent_at: str | None,
        google_subject: str | None,
    ) -> None:
        self.email = email
        self.name = name
        self.phone = phone
        self.role = role
        self.consent_version = consent_version
        self.consent_at = consent_at
        self.google_subject = google_subject
        self.status = "active"

    @classmethod
    def register(
        cls,
        *,
        email: str,
        name: str,
        role: str = "customer",
        phone: str | None = None,
        consent_version: str | None = None,
        consent_at: datetime | None = None,
        google_subject: str | None = None,
    ) -> Account:
        if role not in ROLES:
            raise RuleViolation(f"unknown role {role!r}")
        if role == "customer" and not (consent_version and consent_at):
            raise RuleViolation("a customer must consent to the privacy terms (GDPR)")
        if not name.strip():
            raise RuleViolation("the name must not be empty")
        return cls(
            email=normal_email(email),
            name=name.strip(),
            phone=phone,
            role=role,
            consent_version=consent_version,
            consent_at=consent_at.isoformat() if consent_at else None,
            google_subject=google_subject,
        )

    @property
    def is_active(self) -> bool:
        return self.status == "active"

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES

    def change_profile(
        self, *, name: str | None = None, phone: str | None = None, email: str | None = None
    ) -> None:
        self._require_active("change the profile")
        changes: dict[str, str | None] = {}
        if name is not None and name.strip() != self.name:
            if not name.strip():
                raise RuleViolation("the name must not be empty")
            changes["name"] = name.strip()
        if phone is not None and phone != self.phone:
            changes["phone"] = phone or None
        if email is not None and normal_email(email) != self.email:
            changes["email"] = normal_email(email)
        if changes:
            self._profile_changed(changes=changes)

    def record_password_change(self) -> None:
        """The new hash is stored beside the event, never in it."""
        self._require_active("change the password")
        self._password_changed()

    def change_role(self, role: str) -> None:
        self._require_active("change the role")
        if role not in ROLES:
            raise RuleViolation(f"unknown role {role!r}")
        if role != self.role:
            self._role_changed(role=role, previous=self.role)

    def link_google(self, subject: str) -> None:
        self._require_active("link a Google account")
        if self.google_subject not in (None, subject):
            raise RuleViolation("another Google account is linked already")
        if self.google_subject is None:
            self._google_linked(subject=subject)

    def deactivate(self) -> None:
        self._require_active("deactivate it")
        self._deactivated()

    @property
    def is_erased(self) -> bool:
        return self.status == "erased"

    def erase(self) -> bool:
        """GDPR erasure (any status); False if it was erased already (nothing to do)."""
        if self.is_erased:
            return False
        self._erased()
        return True

    @event("ProfileChanged")
    def _profile_changed(self, changes: dict[str, str | None]) -> None:
        for key, value in changes.items():
            setattr(self, key, value)

    @event("PasswordChanged")
    def _password_changed(self) -> None:
        pass

    @event("RoleChanged")
    def _role_changed(self, role: str, previous: str) -> None:
        self.role = role

    @event("GoogleLinked")
    def _google_linked(self, subject: str) -> None:
        self.google_subject = subject

    @event("Deactivated")
    def _deactivated(self) -> None:
        self.status = "deactivated"

    @event("Erased")
    def _erased(self) -> None:
        self.email = ERASED
        self.name = ERASED
        self.phone = ERASED if self.phone is not None else None
        self.google_subject = ERASED if self.google_subject is not None else None
        self.status = "erased"

    def _require_active(self, action: str) -> None:
        if not self.is_active:
            raise InvalidState("the account", self.status, action)
