"""Query routes (reads of read models and of the log)."""

from midas.http.api import Api
from queries import (
    accounts,
    audit,
    availability,
    bookings,
    calendar,
    customers,
    dashboard,
    errors,
    inventory,
    notifications,
    payments,
    reports,
)

APIS: list[Api] = [inventory.api, availability.api, bookings.api, accounts.api,
                   audit.api, calendar.api, payments.api]
APIS += [errors.api, notifications.api]  # issue 6
APIS += [customers.api, reports.api, dashboard.api]  # issue 7
