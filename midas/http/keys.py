"""Typed application keys: where create_app puts the wired services."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry

from midas.calendar.google import GooglePusher
from midas.calendar.poller import CalendarPoller
from midas.config import Settings
from midas.eventstore import Database, EventStore, Repository
from midas.eventstore.replicas import Replicas
from midas.http.consistency import ConsistencyGate
from midas.http.ratelimit import Clock, RateLimiter
from midas.notifications.delivery import NotificationWorker
from midas.payment_providers.paypal_gateway import PayPalGateway
from midas.payment_providers.stripe_gateway import StripeGateway
from midas.projection import Projector
from midas.scheduler import Scheduler
from midas.security.access import AccessCache
from midas.security.google import GoogleVerifier

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Database)
REPLICAS = web.AppKey("replicas", Replicas)  # set only with MIDAS_READ_DATABASE_URLS
STORE = web.AppKey("store", EventStore)
REPOSITORY = web.AppKey("repository", Repository)
GATE = web.AppKey("gate", ConsistencyGate)
ACCESS = web.AppKey("access", AccessCache)  # the auth middleware's per-request checks
PROJECTORS = web.AppKey("projectors", list[Projector])  # the read models this service keeps
METRICS = web.AppKey("metrics", CollectorRegistry)
CLOCK: web.AppKey[Clock] = web.AppKey("clock")  # replaceable before startup (lockout tests)
LIMITER = web.AppKey("limiter", RateLimiter)
GOOGLE = web.AppKey("google", GoogleVerifier)
SCHEDULER = web.AppKey("scheduler", Scheduler)
NOTIFICATIONS = web.AppKey("notifications", NotificationWorker)
CALENDAR_POLLER = web.AppKey("calendar_poller", CalendarPoller)
GOOGLE_CALENDAR = web.AppKey("google_calendar", GooglePusher)
STRIPE = web.AppKey("stripe_gateway", StripeGateway)
PAYPAL = web.AppKey("paypal_gateway", PayPalGateway)
