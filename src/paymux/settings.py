"""Settings from the environment (``PAYMUX_*``)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYMUX_", extra="ignore")

    database_url: str = Field(
        default="sqlite+aiosqlite:///./paymux.db",
        description="sqlite+aiosqlite:///PATH or postgresql+asyncpg://user@host/db",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    event_loop: Literal["auto", "uvloop", "asyncio"] = Field(
        default="auto", description="event loop of serve, worker and demo: uvloop when installed (auto)"
    )

    # Background processing
    workers: int = Field(default=64, description="payments processed concurrently per worker process")
    poll_interval_ms: int = Field(default=200, description="how often an idle worker looks for due work")
    claim_batch: int = Field(default=100, description="payments claimed per round trip")
    lease_seconds: int = Field(default=120, description="a claimed payment is re-claimable after this")
    retry_base_ms: int = Field(default=2000, description="first retry delay; doubles with each attempt")
    retry_max_ms: int = Field(default=600_000, description="longest delay between retries")
    payment_lifetime_seconds: int = Field(default=86_400, description="default lifetime of a payment")

    # Providers
    provider_timeout_ms: int = 10_000
    provider_connect_timeout_ms: int = 3_000

    # Channel request signing
    signature_max_skew_seconds: int = 300

    # Caches of the catalog (seconds); changes through the admin API invalidate at once in-process.
    catalog_cache_seconds: int = 5


@lru_cache
def get_settings() -> Settings:
    return Settings()
