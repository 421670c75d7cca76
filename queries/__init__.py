"""Query routes (reads of read models and of the log)."""

from midas.http.api import Api
from queries import accounts, audit, availability, bookings, inventory

APIS: list[Api] = [inventory.api, availability.api, bookings.api, accounts.api,
                   audit.api]
