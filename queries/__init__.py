"""Query routes (reads of read models and of the log)."""

from midas.http.api import Api
from queries import (
    accounts,
    audit,
    availability,
    bookings,
    calendar,
    errors,
    inventory,
    notifications,
    payments,
)

APIS: list[Api] = [inventory.api, availability.api, bookings.api, accounts.api,
                   audit.api, calendar.api, payments.api]
APIS += [errors.api, notifications.api]  # issue 6
