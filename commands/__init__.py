"""Command routes (writes), one module per use-case group."""

from commands import inventory
from midas.http.api import Api

APIS: list[Api] = [inventory.api]
