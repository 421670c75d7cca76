"""Settings from the environment (prefix ``MIDAS_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent
DEV_JWT_SECRET = "development-only-secret-change-me-0123456789"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MIDAS_", extra="ignore")

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

    # Event store and projections.
    group_commit_max_batch: int = 1000
    snapshot_every: int = 50
    projection_batch_size: int = 500
    poll_interval_s: float = 1.0
    projection_linger_s: float = 0.005  # gather commits for this long after a wake-up
    projections_enabled: bool = True
    consistency_timeout_s: float = 3.0
    ready_max_lag: int = 10_000
    idempotency_stale_s: float = 60.0

    # Access tokens (JWT). The default secret is only accepted in development and tests.
    jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    jwt_issuer: str = "midas"
    jwt_audience: str = "midas-api"
    access_token_ttl_s: int = 15 * 60

    # Accounts: passwords, refresh tokens, lockout, per-IP limits, Google sign-in.
    bcrypt_rounds: int = Field(12, ge=4, le=16)
    refresh_token_ttl_s: int = 30 * 24 * 3600
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

    # Audit (issue 8): HMAC-SHA256 key signing chain-head checkpoints; unset = no checkpoints.
    audit_signing_key: SecretStr | None = None

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
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
