"""Settings from the environment (prefix ``MIDAS_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from midas.loop import EventLoopChoice

ROOT = Path(__file__).resolve().parent.parent
DEV_JWT_SECRET = "development-only-secret-change-me-0123456789"


class SmtpProvider(BaseModel):
    """One SMTP relay (issue 6). ``tls``: none, starttls, or tls (implicit, e.g. port 465)."""

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

    log_level: str = "INFO"
    log_json: bool = True

    event_loop: EventLoopChoice = "uvloop"

    # Event store and projections.
    group_commit_max_batch: int = 1000
    snapshot_every: int = 50
    projection_batch_size: int = 500
    poll_interval_s: float = 1.0
    projection_linger_s: float = 0.005  # gather commits for this long after a wake-up
    # Under steady load a runner starts a batch at most this often: fewer, larger batches
    # share each batch's fixed round trips (read models then lag by up to about this much).
    projection_batch_interval_s: float = 0.1
    projections_enabled: bool = True
    consistency_timeout_s: float = 3.0
    ready_max_lag: int = 10_000
    idempotency_stale_s: float = 60.0
    housekeeping_every_s: float = 3600.0
    housekeeping_keep_s: float = 24 * 3600.0  # idempotency keys, limits, expired tokens

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

    # Booking lifecycle timers (the hold expiry itself is in the pricing catalogue).
    scheduler_enabled: bool = True
    scheduler_poll_interval_s: float = 1.0
    auto_check_out: bool = True  # confirmed -> active automatically at the start
    auto_check_in_after_minutes: int = Field(120, ge=0)  # active -> completed after the end

    # Payments (issue 5): Stripe through its SDK, PayPal IPN, deposits as card holds.
    stripe_api_base: str = "https://api.stripe.com"
    stripe_secret_key: SecretStr = SecretStr("sk_test_unset")
    stripe_webhook_secret: SecretStr | None = None
    stripe_webhook_tolerance_s: int = 300
    stripe_timeout_s: float = 20.0
    paypal_verify_url: str = "https://ipnpb.paypal.com/cgi-bin/webscr"
    paypal_receiver_email: str | None = None
    payment_rate_limit: int = 10  # payment creations per client IP per window
    payment_rate_window_s: int = 60
    deposit_authorise_days_before: int = 6  # card holds lapse after ~7 days
    deposit_hold_days: int = 7
    deposit_reauthorise_before_hours: int = 24
    deposit_release_after_hours: int = 48  # after check-in, time to record damages
    refund_retry_after_s: int = 300  # a refund the provider could not take is retried then

    # Calendar sync (issue 9): feeds out, external calendars in.
    calendar_poller_enabled: bool = True
    calendar_poll_interval_s: float = 30.0  # how often a process looks for due subscriptions
    calendar_refresh_minutes: int = Field(15, ge=1)  # default per subscription
    calendar_fetch_timeout_s: float = 10.0
    calendar_max_bytes: int = 2 * 1024 * 1024
    calendar_max_occurrences: int = 5000
    calendar_horizon_days: int = Field(180, ge=1, le=3650)
    calendar_feed_past_days: int = Field(90, ge=0)  # feeds show entries ending after now - N
    # Google Calendar push: a service account (email + PEM private key); unset = off.
    google_calendar_api_base: str = "https://www.googleapis.com/calendar/v3"
    google_oauth_token_url: str = "https://oauth2.googleapis.com/token"
    google_service_account_email: str | None = None
    google_service_account_key: SecretStr | None = None
    google_calendar_sync_interval_s: float = 60.0

    # Audit (issue 8): HMAC-SHA256 key signing chain-head checkpoints; unset = no checkpoints.
    audit_signing_key: SecretStr | None = None
    # Privacy (issue 8): key-encryption key wrapping the per-subject data keys, base64 of
    # 32 random bytes (`openssl rand -base64 32`); unset = keys stored unwrapped.
    pii_master_key: SecretStr | None = None

    # Notifications and alerts (issue 6). SMTP providers in order, e.g. MIDAS_SMTP_PROVIDERS=
    # '[{"name":"primary","host":"smtp.a","port":587,"tls":"starttls","username":"u",
    #    "password":"p"}, ...]'. Empty: emails stay queued in the outbox.
    smtp_providers: list[SmtpProvider] = Field(default_factory=list)
    smtp_timeout_s: float = 10.0
    email_from: str = "Midas <concierge@midas.example>"
    email_domain: str = "midas.example"  # right-hand side of stable Message-IDs
    email_delivery_enabled: bool = True  # the background delivery worker of each process
    email_poll_interval_s: float = 1.0
    email_batch_size: int = 50
    email_retry_minutes: list[int] = Field(default_factory=lambda: [1, 5, 15])
    email_tracking: bool = True  # open-tracking pixel in HTML emails
    public_base_url: str = "http://127.0.0.1:8080"  # where the tracking pixel is served
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
    client_error_rate_limit: int = 30  # anonymous error reports per IP per minute

    # Customers and loyalty (issue 7). Tiers rise by lifetime net spend (paid - refunded)
    # in ``tier_currency`` (minor units); points: whole units of rental + insurance x the
    # tier's multiplier (Decimal strings), at completion.
    tier_currency: str = "USD"
    tier_thresholds: dict[str, int] = Field(default_factory=lambda: {
        "premium": 100_000_00, "vvip": 500_000_00})
    loyalty_multipliers: dict[str, str] = Field(default_factory=lambda: {
        "standard": "1.0", "premium": "1.25", "vvip": "1.5"})
    loyalty_enabled: bool = True  # the loyalty process manager (tier raises, points)
    segment_message_limit: int = 10_000  # recipients of one segment message, at most

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("pii_master_key")
    @classmethod
    def _check_pii_master_key(cls, value: SecretStr | None) -> SecretStr | None:
        from midas.security.pii import decode_master_key

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

    def database_dsn(self) -> str | None:
        return self.database_url.get_secret_value() if self.database_url else None
