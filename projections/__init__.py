"""Projectors, one per read model."""

from midas.projection import Projector
from projections.accounts import AccountsProjector
from projections.availability import AvailabilityProjector
from projections.bookings import BookingsProjector
from projections.due_tasks import DueTasksProjector
from projections.inventory import InventoryProjector


def all_projectors() -> list[Projector]:
    return [
        InventoryProjector(), AvailabilityProjector(), BookingsProjector(), DueTasksProjector(),
        AccountsProjector(),
    ]
