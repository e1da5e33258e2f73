"""Settings of the register worker (``PAYMUX_REGISTERS_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RegisterSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYMUX_REGISTERS_", extra="ignore")

    poll_seconds: float = Field(default=5.0, gt=0, description="how often an idle worker looks for due tasks")
    schedule_every_seconds: float = Field(default=60.0, gt=0, description="how often due tasks are created")
    lease_seconds: int = Field(default=600, ge=5, description="a claimed task is re-claimable after this")
    concurrency: int = Field(default=2, ge=1, description="tasks run at once per worker")
    settle_seconds: int = Field(
        default=300, ge=0, description="a period is built only this long after its end (late commits)"
    )
    chunk_bytes: int = Field(default=1 << 20, ge=4096, description="stored file chunk size")
    work_dir: str | None = Field(default=None, description="temporary files (default: the system temp dir)")
