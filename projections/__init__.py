"""Projectors, one per read model."""

from midas.projection import Projector
from projections.accounts import AccountsProjector
from projections.availability import AvailabilityProjector
from projections.bookings import BookingsProjector
from projections.calendar import CalendarProjector
from projections.due_tasks import DueTasksProjector
from projections.inventory import InventoryProjector
from projections.kpis import KpisProjector
from projections.notifications import NotificationsProjector
from projections.payments import PaymentsProjector
from projections.profiles import ProfilesProjector


def all_projectors() -> list[Projector]:
    return [
        InventoryProjector(), AvailabilityProjector(), BookingsProjector(), DueTasksProjector(),
        AccountsProjector(), CalendarProjector(), PaymentsProjector(),
        NotificationsProjector(),  # issue 6: the email outbox's process manager
        ProfilesProjector(), KpisProjector(),  # issue 7 (the loyalty process: midas.app)
    ]
