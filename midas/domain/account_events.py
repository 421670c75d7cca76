"""The events of the Account aggregate (midas.domain.accounts): payloads and types.

Readers import the type (``midas.domain.events``): ``event.type == X`` selects,
``X.of(event)`` reads the payload. A field with ``NotRequired`` may be absent from events
recorded before it was added.
"""

from __future__ import annotations

from typing import TypedDict

from midas.domain.events import EventType, shared_fields


class PointsMove(TypedDict):
    """What every event moving a customer's points records: the booking it is for (a
    change's reservation: ``booking:change``), how many points, and the balance after."""

    booking_id: str
    points: int
    balance: int


# The fields any points event (reserved, spent, released, returned, awarded, revoked) has.
points_move = shared_fields(PointsMove)


class TierChange(TypedDict):
    """What every tier event records."""

    tier: str
    previous: str
    reason: str


# The fields ``Account.TierRaised`` and ``Account.TierSet`` have.
tier_change = shared_fields(TierChange)


class AccountRegistered(TypedDict):
    email: str
    name: str
    phone: str | None
    role: str
    consent_version: str | None
    consent_at: str | None
    google_subject: str | None


ACCOUNT_REGISTERED = EventType("Account.Registered", AccountRegistered)


class AccountProfileChanged(TypedDict):
    changes: dict[str, str | None]


ACCOUNT_PROFILE_CHANGED = EventType("Account.ProfileChanged", AccountProfileChanged)


class AccountPasswordChanged(TypedDict):
    pass


ACCOUNT_PASSWORD_CHANGED = EventType("Account.PasswordChanged", AccountPasswordChanged)


class AccountRoleChanged(TypedDict):
    role: str
    previous: str


ACCOUNT_ROLE_CHANGED = EventType("Account.RoleChanged", AccountRoleChanged)


class AccountGoogleLinked(TypedDict):
    subject: str


ACCOUNT_GOOGLE_LINKED = EventType("Account.GoogleLinked", AccountGoogleLinked)


class AccountEmailVerificationRequested(TypedDict):
    verification_id: str
    email: str
    expires_at: str


ACCOUNT_EMAIL_VERIFICATION_REQUESTED = EventType(
    "Account.EmailVerificationRequested", AccountEmailVerificationRequested)


class AccountEmailChangeRequested(TypedDict):
    verification_id: str
    email: str
    expires_at: str


ACCOUNT_EMAIL_CHANGE_REQUESTED = EventType(
    "Account.EmailChangeRequested", AccountEmailChangeRequested)


class AccountEmailVerified(TypedDict):
    verification_id: str | None
    email: str
    method: str
    changed: bool


ACCOUNT_EMAIL_VERIFIED = EventType("Account.EmailVerified", AccountEmailVerified)


class AccountEmailReleased(TypedDict):
    reason: str
    claimed_by: str


ACCOUNT_EMAIL_RELEASED = EventType("Account.EmailReleased", AccountEmailReleased)


class AccountDeactivated(TypedDict):
    pass


ACCOUNT_DEACTIVATED = EventType("Account.Deactivated", AccountDeactivated)


class AccountErased(TypedDict):
    pass


ACCOUNT_ERASED = EventType("Account.Erased", AccountErased)


class AccountPointsReserved(PointsMove):
    value: int


ACCOUNT_POINTS_RESERVED = EventType("Account.PointsReserved", AccountPointsReserved)


class AccountPointsSpent(PointsMove):
    pass


ACCOUNT_POINTS_SPENT = EventType("Account.PointsSpent", AccountPointsSpent)


class AccountPointsReleased(PointsMove):
    reason: str


ACCOUNT_POINTS_RELEASED = EventType("Account.PointsReleased", AccountPointsReleased)


class AccountPointsReturned(PointsMove):
    percentage: str
    reason: str


ACCOUNT_POINTS_RETURNED = EventType("Account.PointsReturned", AccountPointsReturned)


class AccountTierRaised(TierChange):
    net_spend: int
    currency: str


ACCOUNT_TIER_RAISED = EventType("Account.TierRaised", AccountTierRaised)


class AccountTierSet(TierChange):
    pass


ACCOUNT_TIER_SET = EventType("Account.TierSet", AccountTierSet)


class AccountLoyaltyPointsAwarded(PointsMove):
    whole_units: int
    multiplier: str


ACCOUNT_LOYALTY_POINTS_AWARDED = EventType(
    "Account.LoyaltyPointsAwarded", AccountLoyaltyPointsAwarded)


class AccountLoyaltyPointsRevoked(PointsMove):
    refunded: int
    paid: int


ACCOUNT_LOYALTY_POINTS_REVOKED = EventType(
    "Account.LoyaltyPointsRevoked", AccountLoyaltyPointsRevoked)


class AccountNoteAdded(TypedDict):
    note_id: str
    text: str
    author_id: str | None


ACCOUNT_NOTE_ADDED = EventType("Account.NoteAdded", AccountNoteAdded)


class AccountMarketingConsentGiven(TypedDict):
    version: str
    at: str


ACCOUNT_MARKETING_CONSENT_GIVEN = EventType(
    "Account.MarketingConsentGiven", AccountMarketingConsentGiven)


class AccountMarketingConsentWithdrawn(TypedDict):
    version: str | None
    at: str
    via: str


ACCOUNT_MARKETING_CONSENT_WITHDRAWN = EventType(
    "Account.MarketingConsentWithdrawn", AccountMarketingConsentWithdrawn)
