"""Command routes (writes), one module per use-case group."""

from commands import accounts, audit, bookings, inventory, quotes
from midas.http.api import Api

APIS: list[Api] = [inventory.api, quotes.api, bookings.api, accounts.auth_api, accounts.api,
                   audit.api]
