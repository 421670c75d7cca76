"""Query routes (reads of read models and of the log)."""

from midas.http.api import Api
from queries import inventory

APIS: list[Api] = [inventory.api]
