"""Settings of the reconciliation fetcher (``PAYMUX_RECONCILIATION_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ReconciliationSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYMUX_RECONCILIATION_", extra="ignore")

    poll_seconds: float = Field(
        default=15.0, gt=0, description="how often an idle worker looks for due fetches"
    )
    schedule_every_seconds: float = Field(default=60.0, gt=0, description="how often due fetches are created")
    lease_seconds: int = Field(default=1800, ge=5, description="a claimed fetch is re-claimable after this")
    work_dir: str | None = Field(default=None, description="temporary files (default: the system temp dir)")
