"""Support settings (``PAYMUX_SUPPORT_*``): SLA hours per priority, codeword attempts."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SupportSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYMUX_SUPPORT_", extra="ignore")

    sla_hours_urgent: int = Field(4, ge=1, le=8760, description="hours to resolve an urgent ticket")
    sla_hours_high: int = Field(8, ge=1, le=8760, description="hours to resolve a high-priority ticket")
    sla_hours_normal: int = Field(24, ge=1, le=8760, description="hours to resolve a normal ticket")
    sla_hours_low: int = Field(72, ge=1, le=8760, description="hours to resolve a low-priority ticket")
    codeword_attempts: int = Field(
        5, ge=1, le=100, description="wrong codewords in a row before checks of that client are refused"
    )
    codeword_lock_minutes: int = Field(
        15, ge=1, le=1440, description="how long checks of a client's codeword are refused after that"
    )

    def sla_hours(self, priority: str) -> int:
        return int(getattr(self, f"sla_hours_{priority}"))
