"""Settings from the environment (prefix ``MIDAS_``)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from midas.loop import EventLoopChoice

ROOT = Path(__file__).resolve().parent.parent
DEV_JWT_SECRET = "development-only-secret-change-me-0123456789"
STRIPE_KEY_UNSET = "sk_test_unset"


class SmtpProvider(BaseModel):
    """One SMTP relay. ``tls``: none, starttls, or tls (implicit, e.g. port 465)."""

    name: str
    host: str
    port: int = 587
    tls: Literal["none", "starttls", "tls"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None


class Settings(BaseSettings):
    # hide_input_in_errors: a rejected secret must not be echoed in the error.
    model_config = SettingsConfigDict(env_prefix="MIDAS_", extra="ignore",
                                      hide_input_in_errors=True)

    environment: Literal["development", "test", "production"] = "development"

    # PostgreSQL: unset means an embedded server with its data under ``data_dir``.
    database_url: SecretStr | None = None
    database_schema: str = "public"
    data_dir: Path = Path(".midas")
    pool_min_size: int = 1
    pool_max_size: int = 10
    statement_timeout_s: float = 30.0
    migrations_dir: Path = ROOT / "migrations"

    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 1024 * 1024
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    shutdown_timeout_s: float = 10.0
    # `midas serve --workers N`: a dead worker is restarted after a back-off doubling from
    # worker_restart_backoff_s; worker_crash_limit deaths within worker_crash_window_s is
    # a crash loop, and the parent exits non-zero.
    worker_restart_backoff_s: float = Field(0.5, gt=0)
    worker_restart_backoff_max_s: float = Field(30.0, gt=0)
    worker_crash_limit: int = Field(5, ge=1)
    worker_crash_window_s: float = Field(60.0, gt=0)

    log_level: str = "INFO"
    log_json: bool = True

    event_loop: EventLoopChoice = "uvloop"

    # Event store and projections.
    group_commit_max_batch: int = 1000
    snapshot_every: int = 50
    # Every N snapshots written, VACUUM the snapshots table (0: leave it to autovacuum).
    snapshot_vacuum_every: int = Field(1000, ge=0)
    # How far ahead a hold may end: it bounds an item's future occupations, hence its state
    # and its snapshot.
    booking_horizon_days: int = Field(730, ge=1, le=36_500)
    # Commands: how many runs a command gets when it loses a version race (to another
    # process: within one, commands on an aggregate take turns), and how long one waits
    # for its turn on an aggregate before going ahead unserialised.
    conflict_retry_attempts: int = Field(8, ge=1)
    aggregate_lock_wait_s: float = Field(5.0, gt=0)
    projection_batch_size: int = 500
    poll_interval_s: float = 1.0
    projection_linger_s: float = 0.005  # gather commits for this long after a wake-up
    # Under steady load a runner starts a batch at most this often: fewer, larger batches
    # share each batch's fixed round trips (read models then lag by up to about this much).
    projection_batch_interval_s: float = 0.1
    projections_enabled: bool = True
    # A projection failing on an event is retried after this, twice as long each time up
    # to the maximum (midas.projection); each failing projection raises one alert.
    projection_retry_s: float = 0.5
    projection_retry_max_s: float = 60.0
    consistency_timeout_s: float = 3.0
    ready_max_lag: int = 10_000
    idempotency_stale_s: float = 60.0
    housekeeping_every_s: float = 3600.0
    housekeeping_keep_s: float = 24 * 3600.0  # idempotency keys, limits, expired tokens
    # Finished emails (sent, bounced, dead, skipped) leave the outbox after this many days,
    # recorded in the log (EmailArchive.Archived).
    email_retention_days: int = Field(90, ge=1)
    # Payment webhooks' dedupe rows: Stripe retries an event for up to 3 days.
    webhook_dedupe_days: int = Field(30, ge=4)

    # Access tokens (JWT). The default secret is only accepted in development and tests.
    jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    jwt_issuer: str = "midas"
    jwt_audience: str = "midas-api"
    access_token_ttl_s: int = 15 * 60

    # Accounts: passwords, refresh tokens, lockout, per-IP limits, Google sign-in.
    bcrypt_rounds: int = Field(12, ge=4, le=16)
    refresh_token_ttl_s: int = 30 * 24 * 3600
    refresh_reuse_grace_s: float = Field(10.0, ge=0)  # a just-used token is not reuse yet
    lockout_threshold: int = 5
    lockout_base_s: int = 15 * 60
    lockout_max_s: int = 24 * 3600
    login_rate_limit: int = 10  # per IP per window
    login_rate_window_s: int = 60
    register_rate_limit: int = 10
    register_rate_window_s: int = 3600
    refresh_rate_limit: int = 30
    refresh_rate_window_s: int = 60
    trust_forwarded_for: bool = False  # take the client IP from X-Forwarded-For
    google_client_id: str | None = None
    google_jwks_url: str = "https://www.googleapis.com/oauth2/v3/certs"
    google_jwks_ttl_s: int = 3600
    # Email verification links (docs/security.md): their lifetime, the page they open
    # (the token follows in the URL fragment; unset: public_base_url + /verify-email) and
    # the links an account may ask for (resends, email changes) per window.
    email_verification_ttl_s: int = Field(24 * 3600, ge=60)
    email_verification_url: str | None = None
    verification_email_limit: int = Field(3, ge=1)
    verification_email_window_s: int = Field(3600, ge=1)

    # Booking lifecycle timers (the hold expiry itself is in the pricing catalogue).
    scheduler_enabled: bool = True
    scheduler_poll_interval_s: float = 1.0
    auto_check_out: bool = True  # confirmed -> active automatically at the start
    auto_check_in_after_minutes: int = Field(120, ge=0)  # active -> completed after the end
    # The booking rules (change notice, payment schedules, reminders, alert and grace, points
    # as payment) are not settings: admins set them as events (midas/domain/booking_rules.py).

    # Payments: Stripe through its SDK, PayPal IPN, deposits as card holds.
    stripe_api_base: str = "https://api.stripe.com"
    stripe_secret_key: SecretStr = SecretStr(STRIPE_KEY_UNSET)
    stripe_webhook_secret: SecretStr | None = None
    stripe_webhook_tolerance_s: int = Field(300, ge=1)  # signature age, either direction
    stripe_timeout_s: float = 20.0
    # Unset key, outside production: `midas serve` runs a local Stripe (localstripe) in a
    # child process and points the SDK and its webhooks at it (docs/payments.md).
    local_stripe: bool = True
    local_stripe_start_timeout_s: float = 30.0
    paypal_verify_url: str = "https://ipnpb.paypal.com/cgi-bin/webscr"
    paypal_receiver_email: str | None = None
    # PayPal's REST API, for refunds of PayPal payments (client credentials; unset: such
    # refunds are recorded as failed for staff to make in PayPal's console).
    paypal_api_base: str = "https://api-m.paypal.com"
    paypal_client_id: str | None = None
    paypal_client_secret: SecretStr | None = None
    paypal_timeout_s: float = 20.0
    ipn_rate_limit: int = Field(60, ge=1)  # IPNs per client IP per window
    ipn_rate_window_s: int = Field(60, ge=1)
    ipn_max_pending: int = Field(100, ge=1)  # verification posts in flight, per process
    ipn_busy_retry_after_s: int = 30
    payment_rate_limit: int = 10  # payment creations per client IP per window
    payment_rate_window_s: int = 60
    deposit_authorise_days_before: int = 6  # card holds lapse after ~7 days
    deposit_hold_days: int = 7
    deposit_reauthorise_before_hours: int = 24
    deposit_release_after_hours: int = 48  # after check-in, time to record damages
    refund_retry_after_s: int = 300  # a refund the provider could not take is retried then

    # Calendar sync: feeds out, external calendars in.
    calendar_poller_enabled: bool = True
    calendar_poll_interval_s: float = 30.0  # how often a process looks for due subscriptions
    calendar_refresh_minutes: int = Field(15, ge=1)  # default per subscription
    calendar_fetch_timeout_s: float = 10.0  # the whole fetch, redirects included
    calendar_max_bytes: int = 2 * 1024 * 1024
    calendar_max_occurrences: int = 5000
    calendar_horizon_days: int = Field(180, ge=1, le=3650)
    calendar_feed_past_days: int = Field(90, ge=0)  # feeds show entries ending after now - N
    # URLs that users give (external calendars) are fetched from public addresses only;
    # these hosts (names or IP addresses, comma-separated) are exempt: tests, local mirrors.
    outbound_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Google Calendar push: a service account (email + PEM private key); unset = off.
    google_calendar_api_base: str = "https://www.googleapis.com/calendar/v3"
    google_oauth_token_url: str = "https://oauth2.googleapis.com/token"
    google_service_account_email: str | None = None
    google_service_account_key: SecretStr | None = None
    google_calendar_sync_interval_s: float = 60.0

    # Audit: HMAC-SHA256 key signing chain-head checkpoints; unset = no checkpoints.
    audit_signing_key: SecretStr | None = None
    # Privacy: key-encryption key wrapping the per-subject data keys, base64 of
    # 32 random bytes (`openssl rand -base64 32`); unset = keys stored unwrapped.
    pii_master_key: SecretStr | None = None

    # Notifications and alerts. SMTP providers in order, e.g. MIDAS_SMTP_PROVIDERS=
    # '[{"name":"primary","host":"smtp.a","port":587,"tls":"starttls","username":"u",
    #    "password":"p"}, ...]'. Empty: emails stay queued in the outbox.
    smtp_providers: list[SmtpProvider] = Field(default_factory=list)
    # No provider, outside production: `midas serve` runs a local mail drop that keeps
    # every email as a file under data_dir/mail (midas.notifications.local_mail).
    local_mail: bool = True
    smtp_timeout_s: float = 10.0
    email_from: str = "Midas <concierge@midas.example>"
    email_domain: str = "midas.example"  # right-hand side of stable Message-IDs
    email_delivery_enabled: bool = True  # the background delivery worker of each process
    email_poll_interval_s: float = 1.0
    email_batch_size: int = 50
    email_retry_minutes: list[int] = Field(default_factory=lambda: [1, 5, 15])
    email_tracking: bool = True  # open-tracking pixel in HTML emails
    public_base_url: str = "http://127.0.0.1:8080"  # pixel and unsubscribe links (https)
    # Marketing emails' one-click unsubscribe links (RFC 8058): the secret their tokens are
    # derived from (unset: derived from the JWT secret), and an optional mailbox for
    # List-Unsubscribe's mailto (Midas does not read it: whoever does must act on it).
    unsubscribe_secret: SecretStr | None = None
    unsubscribe_mailto: str | None = Field(None, pattern=r"^[^@\s<>,?]+@[^@\s<>,?]+$")
    brand_name: str = "Midas"
    concierge_email: str = "concierge@midas.example"
    concierge_phone: str | None = None
    legal_email: str = "legal@midas.example"
    ops_email: str = "ops@midas.example"
    alert_webhook_url: str | None = None  # Slack-compatible incoming webhook
    error_window_s: int = 300
    error_thresholds: dict[str, int] = Field(default_factory=lambda: {
        "payment": 1, "system": 1, "booking": 3, "integration": 5,
        "authentication": 10, "user_experience": 10,
    })
    error_high_only: list[str] = Field(default_factory=lambda: ["system"])
    # Client reports (POST /api/v1/errors): per minute, per IP when anonymous, per account
    # when signed in; all of them together, whatever category or severity they claim,
    # raise one "client" alert per window once this many arrive within it.
    client_error_rate_limit: int = Field(30, ge=1)
    client_error_threshold: int = Field(100, ge=1)

    # Customers and loyalty. Tiers rise by lifetime net spend (paid - refunded)
    # in ``tier_currency`` (minor units); points: whole units of rental + insurance x the
    # tier's multiplier (Decimal strings), at completion.
    tier_currency: str = "USD"
    tier_thresholds: dict[str, int] = Field(default_factory=lambda: {
        "premium": 100_000_00, "vvip": 500_000_00})
    loyalty_multipliers: dict[str, str] = Field(default_factory=lambda: {
        "standard": "1.0", "premium": "1.25", "vvip": "1.5"})
    loyalty_enabled: bool = True  # the loyalty process manager (tier raises, points)
    segment_message_limit: int = 10_000  # recipients of one segment message, at most

    # Traces (OpenTelemetry over OTLP/HTTP): on when an endpoint is set here, or in
    # OpenTelemetry's own OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT; off otherwise.
    otlp_endpoint: str | None = None  # e.g. http://collector:4318
    otel_service_name: str = "midas"  # OTEL_SERVICE_NAME wins when set
    trace_sample_ratio: float = Field(1.0, ge=0.0, le=1.0)  # of new traces (parents decide)
    # Error tracking (Sentry): unset = off. Events are scrubbed of personal data and secrets.
    sentry_dsn: SecretStr | None = None
    # Read replicas (PostgreSQL streaming replicas of the database) that queries read
    # from: comma-separated URLs; empty, every query reads the primary. A replica whose log
    # is more than read_replica_max_lag events behind the primary's, or that cannot be
    # reached, is left out (checked every read_replica_check_s).
    read_database_urls: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    read_replica_max_lag: int = Field(1000, ge=0)
    read_replica_check_s: float = Field(1.0, gt=0)
    # Business series in /metrics are read from the database, at most this often.
    business_metrics_cache_s: float = Field(10.0, ge=0.0)

    @field_validator("cors_origins", "outbound_allowed_hosts", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("read_database_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        if isinstance(value, str):
            return [url.strip() for url in value.split(",") if url.strip()]
        return value

    @field_validator("pii_master_key")
    @classmethod
    def _check_pii_master_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        decode_master_key(value.get_secret_value())  # its error never repeats the value
        return value

    def check_secrets(self) -> None:
        """Refuse to run outside development/test with the built-in default secret."""
        if self.environment == "production" and (
            self.jwt_secret.get_secret_value() == DEV_JWT_SECRET
            or len(self.jwt_secret.get_secret_value()) < 32
        ):
            raise ValueError("set MIDAS_JWT_SECRET (32+ characters) to run in production")
        self.check_email_links()

    def check_email_links(self) -> None:
        """In production, links in emails are https (RFC 8058 wants an HTTPS one-click
        unsubscribe URI) and unsubscribe tokens come from a long secret."""
        if self.environment != "production":
            return
        if not self.public_base_url.startswith("https://"):
            raise ValueError("set MIDAS_PUBLIC_BASE_URL to the service's https:// address"
                             " to run in production")
        secret = self.unsubscribe_secret
        if secret is not None and len(secret.get_secret_value()) < 32:
            raise ValueError("MIDAS_UNSUBSCRIBE_SECRET needs 32+ characters")

    def verification_page(self) -> str:
        """Where a verification link points (the token goes in its fragment)."""
        return self.email_verification_url or self.public_base_url.rstrip("/") + "/verify-email"

    @property
    def stripe_configured(self) -> bool:
        return self.stripe_secret_key.get_secret_value() not in ("", STRIPE_KEY_UNSET)

    def check_payments(self) -> None:
        """Refuse to run in production without a Stripe key and webhook secret (elsewhere
        `midas serve` stands a local Stripe in for them)."""
        if self.environment != "production":
            return
        if not self.stripe_configured:
            raise ValueError("set MIDAS_STRIPE_SECRET_KEY to run in production")
        if self.stripe_webhook_secret is None or not self.stripe_webhook_secret.get_secret_value():
            raise ValueError("set MIDAS_STRIPE_WEBHOOK_SECRET to run in production")

    def database_dsn(self) -> str | None:
        return self.database_url.get_secret_value() if self.database_url else None


KEY_SIZE = 32  # bytes of a personal-data key and of the key-encryption key
MASTER_KEY_SETTING = "MIDAS_PII_MASTER_KEY"


def decode_master_key(text: str) -> bytes:
    """The 32 bytes of a base64 or base64url KEK (padding optional). The error never
    repeats the value."""
    compact = "".join(text.split()).rstrip("=").replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except ValueError:
        raw = b""
    if len(raw) != KEY_SIZE:
        raise ValueError(f"{MASTER_KEY_SETTING} must be {KEY_SIZE} random bytes in base64"
                         " (e.g. `openssl rand -base64 32`)")
    return raw
