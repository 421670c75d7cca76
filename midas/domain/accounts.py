"""Accounts: customers and staff. Secrets (password hashes, tokens) never enter events."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from eventsourcing.domain import Aggregate, event

from midas.domain.account_events import (
    ACCOUNT_DEACTIVATED,
    ACCOUNT_EMAIL_CHANGE_REQUESTED,
    ACCOUNT_EMAIL_RELEASED,
    ACCOUNT_EMAIL_VERIFICATION_REQUESTED,
    ACCOUNT_EMAIL_VERIFIED,
    ACCOUNT_ERASED,
    ACCOUNT_GOOGLE_LINKED,
    ACCOUNT_LOYALTY_POINTS_AWARDED,
    ACCOUNT_LOYALTY_POINTS_REVOKED,
    ACCOUNT_MARKETING_CONSENT_GIVEN,
    ACCOUNT_MARKETING_CONSENT_WITHDRAWN,
    ACCOUNT_NOTE_ADDED,
    ACCOUNT_PASSWORD_CHANGED,
    ACCOUNT_POINTS_RELEASED,
    ACCOUNT_POINTS_RESERVED,
    ACCOUNT_POINTS_RETURNED,
    ACCOUNT_POINTS_SPENT,
    ACCOUNT_PROFILE_CHANGED,
    ACCOUNT_REGISTERED,
    ACCOUNT_ROLE_CHANGED,
    ACCOUNT_TIER_RAISED,
    ACCOUNT_TIER_SET,
)
from midas.domain.errors import DomainError, InvalidState, RuleViolation

ROLES = ("customer", "concierge", "admin", "super_admin", "auditor")
STAFF_ROLES = frozenset({"concierge", "admin", "super_admin"})  # auditors only read
ERASED = "[erased]"  # what an erased personal field reads as (GDPR crypto-shredding)
TIERS = ("standard", "premium", "vvip")  # customer tiers, lowest first
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
# How a marketing consent was withdrawn: by the person through their account, by staff on
# the person's request, or through the one-click link of a marketing email.
WITHDRAWN_VIA = ("account", "staff", "unsubscribe_link")


class EmailTaken(DomainError):
    def __init__(self) -> None:
        super().__init__("an account with this email already exists")


class VerificationRefused(DomainError):
    """Unknown, used, replaced by a newer link, expired, or for another account: one answer."""

    status = 410

    def __init__(self) -> None:
        super().__init__("this verification link is not valid any more (used, expired or"
                         " replaced by a newer one)")


class AlreadyVerified(DomainError):
    def __init__(self) -> None:
        super().__init__("the email address is verified already")


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
        "NoteAdded": ("text",),  # concierge notes about a customer
        "EmailVerificationRequested": ("email",),
        "EmailChangeRequested": ("email",),
        "EmailVerified": ("email",),
    }

    # Tier and loyalty points: class defaults, so accounts registered before
    # these existed read as standard with no points.
    tier = "standard"
    points = 0
    # Marketing consent, apart from the terms consent of ``Registered``: the version and
    # time of the last consent given, and of its withdrawal if any.
    marketing_version: str | None = None
    marketing_given_at: str | None = None
    marketing_withdrawn_at: str | None = None
    marketing_withdrawn_via: str | None = None
    # Email verification. Class defaults, so accounts registered before verification
    # existed read as unverified, with nothing pending.
    email_verified = False
    pending_verification: dict[str, Any] | None = None  # {"id", "email", "expires_at"}
    claim_expires_at: str | None = None  # when the first link for the email expires
    email_released = False  # given up to an account that proved control of the address

    @event(ACCOUNT_REGISTERED.event_name)
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

    @property
    def is_customer(self) -> bool:
        """Only customer accounts are ever linked, or give their address up, by email: any
        other role (staff, and any role added later) holds rights over other people."""
        return self.role == "customer"

    def change_profile(self, *, name: str | None = None, phone: str | None = None) -> None:
        """Name and phone; the email changes only through ``request_email_change``."""
        self._require_active("change the profile")
        changes: dict[str, str | None] = {}
        if name is not None and name.strip() != self.name:
            if not name.strip():
                raise RuleViolation("the name must not be empty")
            changes["name"] = name.strip()
        if phone is not None and phone != self.phone:
            changes["phone"] = phone or None
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

    def link_google(self, subject: str, *, by_email: bool = False) -> None:
        """Link a Google identity; found by email, only a verified customer account."""
        self._require_active("link a Google account")
        if by_email and not self.is_customer:
            raise RuleViolation("staff accounts are never linked by email")
        if by_email and not self.email_verified:
            raise RuleViolation("an account is linked by email only once the email is verified")
        if self.google_subject not in (None, subject):
            raise RuleViolation("another Google account is linked already")
        if self.google_subject is None:
            self._google_linked(subject=subject)

    # -- email verification ----------------------------------------------------------------

    def request_email_verification(self, verification_id: str, expires_at: datetime) -> str:
        """A (new) link for the address awaiting proof: a pending change's, else the
        current one. It replaces any earlier link. Returns the address."""
        self._require_active("verify the email")
        pending = self.pending_verification
        email = pending["email"] if pending and pending["email"] != self.email else self.email
        if email == self.email and self.email_verified:
            raise AlreadyVerified()
        self._verification_requested(verification_id=verification_id, email=email,
                                     expires_at=expires_at.isoformat())
        return email

    def request_email_change(
        self, verification_id: str, email: str, expires_at: datetime
    ) -> str | None:
        """The new address (returned, as stored) takes effect once verified
        (``verify_email``); None when it is the current one (nothing to prove)."""
        self._require_active("change the email")
        email = normal_email(email)
        if email == self.email:
            return None
        self._email_change_requested(verification_id=verification_id, email=email,
                                     expires_at=expires_at.isoformat())
        return email

    def verify_email(self, verification_id: str, now: datetime) -> None:
        """The link's proof: only the latest link, once, strictly before it expires."""
        pending = self.pending_verification
        if (not self.is_active or pending is None or pending["id"] != verification_id
                or now >= datetime.fromisoformat(pending["expires_at"])):
            raise VerificationRefused()
        self._email_verified(verification_id=verification_id, email=pending["email"],
                             method="link", changed=pending["email"] != self.email)

    def verified_by_google(self, email: str) -> bool:
        """Google vouches for ``email`` (its ``email_verified`` claim): the current email
        becomes verified if it is that one. False when nothing changed."""
        if (not self.is_active or self.email_verified
                or email.strip().lower() != self.email.lower()):
            return False
        self._email_verified(verification_id=None, email=self.email, method="google",
                             changed=False)
        return True

    def claim_lapsed(self, now: datetime) -> bool:
        """An unverified email whose first link has expired no longer holds the address
        against another registration. Without any link (older accounts) it never lapses."""
        return (not self.email_verified and self.claim_expires_at is not None
                and now >= datetime.fromisoformat(self.claim_expires_at))

    def release_email(self, reason: str, claimed_by: str) -> None:
        """Give up an unverified email to an account that proved control of it; the
        account is deactivated (its password and sessions end beside the events)."""
        if not self.is_customer:
            raise RuleViolation("a staff account never gives up its email")
        if self.email_verified:
            raise RuleViolation("a verified email is never given up")
        if self.is_erased or self.email_released:
            raise InvalidState("the account", self.status, "give up its email")
        self._email_released(reason=reason, claimed_by=claimed_by)
        if self.is_active:
            self._deactivated()

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

    @event(ACCOUNT_PROFILE_CHANGED.event_name)
    def _profile_changed(self, changes: dict[str, str | None]) -> None:
        for key, value in changes.items():
            setattr(self, key, value)

    @event(ACCOUNT_PASSWORD_CHANGED.event_name)
    def _password_changed(self) -> None:
        pass

    @event(ACCOUNT_ROLE_CHANGED.event_name)
    def _role_changed(self, role: str, previous: str) -> None:
        self.role = role

    @event(ACCOUNT_GOOGLE_LINKED.event_name)
    def _google_linked(self, subject: str) -> None:
        self.google_subject = subject

    @event(ACCOUNT_EMAIL_VERIFICATION_REQUESTED.event_name)
    def _verification_requested(self, verification_id: str, email: str, expires_at: str) -> None:
        self.pending_verification = {"id": verification_id, "email": email,
                                     "expires_at": expires_at}
        if email == self.email and self.claim_expires_at is None:
            self.claim_expires_at = expires_at

    @event(ACCOUNT_EMAIL_CHANGE_REQUESTED.event_name)
    def _email_change_requested(self, verification_id: str, email: str, expires_at: str) -> None:
        self.pending_verification = {"id": verification_id, "email": email,
                                     "expires_at": expires_at}

    @event(ACCOUNT_EMAIL_VERIFIED.event_name)
    def _email_verified(self, verification_id: str | None, email: str, method: str,
                        changed: bool) -> None:
        pending = self.pending_verification
        if pending is not None and pending["email"] == email:
            self.pending_verification = None
        self.email = email
        self.email_verified = True

    @event(ACCOUNT_EMAIL_RELEASED.event_name)
    def _email_released(self, reason: str, claimed_by: str) -> None:
        self.email_released = True
        self.pending_verification = None

    @event(ACCOUNT_DEACTIVATED.event_name)
    def _deactivated(self) -> None:
        self.status = "deactivated"

    @event(ACCOUNT_ERASED.event_name)
    def _erased(self) -> None:
        self.pending_verification = None
        self.email = ERASED
        self.name = ERASED
        self.phone = ERASED if self.phone is not None else None
        self.google_subject = ERASED if self.google_subject is not None else None
        self.status = "erased"

    # -- tiers, loyalty points and notes --------------------------------------

    @property
    def loyalty(self) -> dict[str, list[int]]:
        """Per booking: [points awarded, points revoked since]."""
        ledger: dict[str, list[int]] = self.__dict__.setdefault("loyalty_ledger", {})
        return ledger

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

    # -- points as payment -------------------------------------------------------------

    @property
    def redemptions(self) -> dict[str, list[Any]]:
        """Per booking: [points, value, state (reserved|spent|released), points returned]."""
        redemptions: dict[str, list[Any]] = self.__dict__.setdefault("points_redemptions", {})
        return redemptions

    def reserve_points(self, booking_id: str, points: int, value: int) -> None:
        """Set points aside for a booking (taken from the balance now); the balance never
        goes below zero."""
        if points <= 0:
            raise RuleViolation("redeem at least one point")
        if booking_id in self.redemptions:
            raise RuleViolation("points were already chosen for this booking")
        if points > self.points:
            raise DomainError(f"the balance is {self.points} points, {points} asked")
        self._points_reserved(booking_id=booking_id, points=points, value=value,
                              balance=self.points - points)

    def spend_points(self, booking_id: str) -> bool:
        """The booking is paid: its reserved points are spent (the balance is unchanged)."""
        entry = self.redemptions.get(booking_id)
        if entry is None or entry[2] != "reserved":
            return False
        self._points_spent(booking_id=booking_id, points=entry[0], balance=self.points)
        return True

    def release_points(self, booking_id: str, reason: str) -> bool:
        """The hold ended unpaid: every reserved point goes back."""
        entry = self.redemptions.get(booking_id)
        if entry is None or entry[2] != "reserved":
            return False
        self._points_released(booking_id=booking_id, points=entry[0], reason=reason,
                              balance=self.points + entry[0])
        return True

    def return_points(self, booking_id: str, percentage: Decimal, reason: str) -> bool:
        """A refund of `percentage` % of a paid booking gives back as much of its points
        (rounded down), never more than were spent on it in all."""
        entry = self.redemptions.get(booking_id)
        if entry is None or entry[2] != "spent":
            return False
        target = int((Decimal(entry[0]) * min(percentage, Decimal(100)) / 100)
                     .to_integral_value(ROUND_FLOOR))
        points = target - entry[3]
        if points <= 0:
            return False
        self._points_returned(booking_id=booking_id, points=points,
                              percentage=str(percentage), reason=reason,
                              balance=self.points + points)
        return True

    @event(ACCOUNT_POINTS_RESERVED.event_name)
    def _points_reserved(self, booking_id: str, points: int, value: int, balance: int) -> None:
        self.redemptions[booking_id] = [points, value, "reserved", 0]
        self.points = balance

    @event(ACCOUNT_POINTS_SPENT.event_name)
    def _points_spent(self, booking_id: str, points: int, balance: int) -> None:
        self.redemptions[booking_id][2] = "spent"

    @event(ACCOUNT_POINTS_RELEASED.event_name)
    def _points_released(self, booking_id: str, points: int, reason: str, balance: int
                         ) -> None:
        self.redemptions[booking_id][2] = "released"
        self.points = balance

    @event(ACCOUNT_POINTS_RETURNED.event_name)
    def _points_returned(self, booking_id: str, points: int, percentage: str, reason: str,
                         balance: int) -> None:
        self.redemptions[booking_id][3] += points
        self.points = balance

    def add_note(self, note_id: str, text: str, author_id: str | None) -> None:
        if not text.strip():
            raise RuleViolation("a note must not be empty")
        self._note_added(note_id=note_id, text=text.strip(), author_id=author_id)

    @event(ACCOUNT_TIER_RAISED.event_name)
    def _tier_raised(self, tier: str, previous: str, reason: str, net_spend: int,
                     currency: str) -> None:
        self.tier = tier

    @event(ACCOUNT_TIER_SET.event_name)
    def _tier_set(self, tier: str, previous: str, reason: str) -> None:
        self.tier = tier

    @event(ACCOUNT_LOYALTY_POINTS_AWARDED.event_name)
    def _points_awarded(self, booking_id: str, whole_units: int, multiplier: str, points: int,
                        balance: int) -> None:
        self.loyalty[booking_id] = [points, 0]
        self.points = balance

    @event(ACCOUNT_LOYALTY_POINTS_REVOKED.event_name)
    def _points_revoked(self, booking_id: str, points: int, refunded: int, paid: int,
                        balance: int) -> None:
        self.loyalty[booking_id][1] += points
        self.points = balance

    @event(ACCOUNT_NOTE_ADDED.event_name)
    def _note_added(self, note_id: str, text: str, author_id: str | None) -> None:
        pass

    # -- marketing consent ---------------------------------------------------------------

    @property
    def has_marketing_consent(self) -> bool:
        return self.marketing_version is not None and self.marketing_withdrawn_at is None

    def give_marketing_consent(self, version: str, at: datetime) -> bool:
        """The person agrees to marketing under ``version``; False if they already do."""
        self._require_active("give marketing consent")
        if not version.strip():
            raise RuleViolation("a marketing consent needs the version agreed to")
        if self.has_marketing_consent and self.marketing_version == version.strip():
            return False
        self._marketing_consent_given(version=version.strip(), at=at.isoformat())
        return True

    def withdraw_marketing_consent(self, at: datetime, via: str) -> bool:
        """Withdrawal is always possible (a closed account too); False if there was no
        consent to withdraw, or the account is erased."""
        if via not in WITHDRAWN_VIA:
            raise RuleViolation(f"unknown withdrawal channel {via!r}")
        if not self.has_marketing_consent or self.is_erased:
            return False
        self._marketing_consent_withdrawn(version=self.marketing_version, at=at.isoformat(),
                                          via=via)
        return True

    @event(ACCOUNT_MARKETING_CONSENT_GIVEN.event_name)
    def _marketing_consent_given(self, version: str, at: str) -> None:
        self.marketing_version = version
        self.marketing_given_at = at
        self.marketing_withdrawn_at = None
        self.marketing_withdrawn_via = None

    @event(ACCOUNT_MARKETING_CONSENT_WITHDRAWN.event_name)
    def _marketing_consent_withdrawn(self, version: str | None, at: str, via: str) -> None:
        self.marketing_withdrawn_at = at
        self.marketing_withdrawn_via = via

    def _require_active(self, action: str) -> None:
        if not self.is_active:
            raise InvalidState("the account", self.status, action)


def _check_tier(tier: str) -> None:
    if tier not in TIERS:
        raise RuleViolation(f"unknown tier {tier!r}")
