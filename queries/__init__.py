"""Query routes (reads of read models and of the log)."""

from midas.http.api import Api
from queries import (
    accounts,
    audit,
    availability,
    booking_rules,
    bookings,
    calendar,
    clock,
    consents,
    customers,
    dashboard,
    error_reports,
    extras,
    fleet,
    inventory,
    locations,
    notifications,
    payment_ledger,
    pricing,
    privacy,
    receivables,
    reports,
)

APIS: list[Api] = [inventory.api, availability.api, bookings.api, accounts.api,
                   audit.api, calendar.api, payment_ledger.api]
APIS += [error_reports.api, notifications.api]
APIS += [customers.api, reports.api, dashboard.api]
APIS += [consents.api, privacy.api]
APIS += [clock.api]  # the service's clock, outside production
APIS += [fleet.api]  # the fleet timeline and staff workload (the console reads them)
APIS += [locations.api, pricing.api]  # locations as data, stay rules
APIS += [extras.api]  # extras around the item
APIS += [receivables.api]
APIS += [booking_rules.api]  # the booking rules, set by admins
