"""Projectors, one per read model."""

from midas.projection import Projector
from projections.accounts import AccountsProjector
from projections.availability import AvailabilityProjector
from projections.bookings import BookingsProjector
from projections.calendar import CalendarProjector
from projections.due_tasks import DueTasksProjector
from projections.instalments import InstalmentsProjector
from projections.inventory import InventoryProjector
from projections.kpis import KpisProjector
from projections.notifications import NotificationsProjector
from projections.payment_ledger import PaymentsProjector
from projections.policy import PolicyProjector
from projections.profiles import ProfilesProjector


def all_projectors() -> list[Projector]:
    return [
        InventoryProjector(), AvailabilityProjector(), BookingsProjector(), DueTasksProjector(),
        AccountsProjector(), CalendarProjector(), PaymentsProjector(),
        NotificationsProjector(),  # the email outbox, written from events
        ProfilesProjector(), KpisProjector(), InstalmentsProjector(), PolicyProjector(),
    ]
