"""Accounts: customers and staff. Secrets (password hashes, tokens) never enter events."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal

from eventsourcing.domain import Aggregate, event

from midas.domain.errors import DomainError, InvalidState, RuleViolation

ROLES = ("customer", "concierge", "admin", "super_admin")
STAFF_ROLES = frozenset({"concierge", "admin", "super_admin"})
ERASED = "[erased]"  # what an erased personal field reads as (GDPR crypto-shredding)
TIERS = ("standard", "premium", "vvip")  # customer tiers, lowest first (issue 7)
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
        "NoteAdded": ("text",),  # concierge notes about a customer (issue 7)
    }

    # Issue 7: tier and loyalty points. Class defaults, so accounts registered before
    # these existed read as standard with no points.
    tier = "standard"
    points = 0

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

    # -- tiers, loyalty points and notes (issue 7) --------------------------------------

    @property
    def loyalty(self) -> dict[str, list[int]]:
        """Per booking: [points awarded, points revoked since]."""
        return self.__dict__.setdefault("loyalty_ledger", {})

    def raise_tier(self, tier: str, reason: str, net_spend: int, currency: str) -> bool:
        """Automatic upgrade: only ever upwards; False when the tier is not higher."""
        _check_tier(tier)
        if TIERS.index(tier) <= TIERS.index(self.tier):
            return False
        self._tier_raised(tier=tier, previous=self.tier, reason=reason,
                          net_spend=net_spend, currency=currency)
        return True

    def set_tier(self, tier: str, reason: str) -> bool:
        """An admin's decision, either way, with a reason."""
        _check_tier(tier)
        if not reason.strip():
            raise RuleViolation("setting a tier needs a reason")
        if tier == self.tier:
            return False
        self._tier_set(tier=tier, previous=self.tier, reason=reason.strip())
        return True

    def award_points(
        self, booking_id: str, whole_units: int, multipliers: Mapping[str, str]
    ) -> bool:
        """Points for a completed booking, once: whole units x the tier multiplier."""
        if booking_id in self.loyalty:
            return False
        multiplier = Decimal(multipliers[self.tier])
        points = int((Decimal(whole_units) * multiplier).to_integral_value(ROUND_FLOOR))
        self._points_awarded(booking_id=booking_id, whole_units=whole_units,
                             multiplier=str(multiplier), points=points,
                             balance=self.points + points)
        return True

    def revoke_points(self, booking_id: str, refunded: int, paid: int) -> bool:
        """Refunds take points back in proportion: floor(awarded x refunded / paid) in all."""
        entry = self.loyalty.get(booking_id)
        if entry is None or paid <= 0:
            return False
        awarded, revoked = entry
        target = awarded * min(refunded, paid) // paid
        points = target - revoked
        if points <= 0:
            return False
        self._points_revoked(booking_id=booking_id, points=points, refunded=refunded,
                             paid=paid, balance=self.points - points)
        return True

    def add_note(self, note_id: str, text: str, author_id: str | None) -> None:
        if not text.strip():
            raise RuleViolation("a note must not be empty")
        self._note_added(note_id=note_id, text=text.strip(), author_id=author_id)

    @event("TierRaised")
    def _tier_raised(self, tier: str, previous: str, reason: str, net_spend: int,
                     currency: str) -> None:
        self.tier = tier

    @event("TierSet")
    def _tier_set(self, tier: str, previous: str, reason: str) -> None:
        self.tier = tier

    @event("LoyaltyPointsAwarded")
    def _points_awarded(self, booking_id: str, whole_units: int, multiplier: str, points: int,
                        balance: int) -> None:
        self.loyalty[booking_id] = [points, 0]
        self.points = balance

    @event("LoyaltyPointsRevoked")
    def _points_revoked(self, booking_id: str, points: int, refunded: int, paid: int,
                        balance: int) -> None:
        self.loyalty[booking_id][1] += points
        self.points = balance

    @event("NoteAdded")
    def _note_added(self, note_id: str, text: str, author_id: str | None) -> None:
        pass

    def _require_active(self, action: str) -> None:
        if not self.is_active:
            raise InvalidState("the account", self.status, action)


def _check_tier(tier: str) -> None:
    if tier not in TIERS:
        raise RuleViolation(f"unknown tier {tier!r}")
