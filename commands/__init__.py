"""Command routes (writes), one module per use-case group."""

from commands import (
    accounts,
    apa,
    audit,
    booking_changes,
    booking_rules,
    bookings,
    calendar,
    charges,
    clock,
    consents,
    customers,
    deposits,
    error_reports,
    extras,
    instalments,
    inventory,
    locations,
    notifications,
    points,
    privacy,
    quotes,
    refunds,
    verification,
    webhooks,
)
from midas.http.api import Api

APIS: list[Api] = [inventory.api, quotes.api, bookings.api, accounts.auth_api, accounts.api,
                   audit.api, privacy.api, calendar.api, charges.api, refunds.api,
                   deposits.api, webhooks.api]
APIS += [error_reports.api, notifications.api]
APIS += [customers.api]
APIS += [consents.api, consents.unsubscribe_api]
APIS += [verification.api]
APIS += [clock.api]  # moving the clock, outside production
APIS += [locations.api]  # locations as data
APIS += [extras.api]  # extras around the item
APIS += [points.api, booking_changes.api, instalments.api]
APIS += [apa.api]  # the APA top-up
APIS += [booking_rules.api]  # the booking rules, set by admins
