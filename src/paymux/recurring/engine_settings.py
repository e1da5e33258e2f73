"""Settings of the recurring engine (``PAYMUX_RECURRING_*``): the scheduler and the run executor."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class EngineSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYMUX_RECURRING_", extra="ignore")

    enabled: bool = Field(True, description="run the recurring workers in `paymux serve` / `paymux worker`")
    poll_seconds: float = Field(1.0, gt=0, description="how often an idle executor looks for due runs")
    schedule_seconds: float = Field(5.0, gt=0, description="how often due subscriptions are scheduled")
    lease_seconds: int = Field(60, ge=2, description="a claimed run is re-claimable after this")
    claim_limit: int = Field(20, ge=1, le=1000, description="runs executed at once by one worker")
    batch: int = Field(200, ge=1, le=10_000, description="subscriptions scheduled in one transaction")
    payment_poll_seconds: float = Field(2.0, gt=0, description="how soon a run looks at its payment again")
    retry_base_seconds: float = Field(5.0, gt=0, description="first retry of a step after this; doubles")
    retry_max_seconds: float = Field(600.0, gt=0)
    accept_attempts: int = Field(20, ge=1, description="a payment no provider can take is given up after")
    observe_attempts: int = Field(10, ge=1, description="a balance/debt look that keeps failing is given up")
    confirm_hours: int = Field(72, ge=1, description="a debt confirmation not answered by then is declined")
    not_needed_keep_days: int = Field(
        7, ge=0, description="threshold looks that needed nothing are kept so long"
    )
    verify_grace_minutes: int = Field(
        60, ge=0, description="`recurring verify`: in-flight runs younger are fine"
    )
