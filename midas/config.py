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
    projections_enabled: bool = True
    consistency_timeout_s: float = 3.0
    ready_max_lag: int = 10_000

    # Access tokens (JWT). The default secret is only accepted in development and tests.
    jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    jwt_issuer: str = "midas"
    jwt_audience: str = "midas-api"
    access_token_ttl_s: int = 15 * 60

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
