"""Every aggregate class whose events the event store holds."""

from __future__ import annotations

from eventsourcing.domain import Aggregate

from midas.domain.accounts import Account
from midas.domain.booking_rules import BookingRules
from midas.domain.bookings import Booking
from midas.domain.email_archive import EmailArchive
from midas.domain.extras import ExtraCapacity, ExtrasCatalogue
from midas.domain.inventory import Item
from midas.domain.payments import Payment
from midas.domain.pricing_policy import PricingPolicy
from midas.domain.schedule import PaymentSchedule

AGGREGATES: tuple[type[Aggregate], ...] = (Item, Account, Booking, PricingPolicy, Payment,
                                           EmailArchive, ExtrasCatalogue, ExtraCapacity,
                                           PaymentSchedule, BookingRules)
