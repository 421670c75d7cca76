"""Command routes (writes), one module per use-case group."""

from commands import (
    accounts,
    audit,
    bookings,
    calendar,
    customers,
    errors,
    inventory,
    notifications,
    payments,
    privacy,
    quotes,
    webhooks,
)
from midas.http.api import Api

APIS: list[Api] = [inventory.api, quotes.api, bookings.api, accounts.auth_api, accounts.api,
                   audit.api, privacy.api, calendar.api, payments.api, webhooks.api]
APIS += [errors.api, notifications.api]  # issue 6
APIS += [customers.api]  # issue 7
