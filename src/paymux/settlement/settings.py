"""Settlement settings (``PAYMUX_SETTLEMENT_*``): our own bank account, alert delivery, the alert worker."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettlementSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYMUX_SETTLEMENT_", extra="ignore")

    # the operator's own account, the debtor of payment orders: required to export them (exports.checks)
    debtor_name: str = Field("", description="our legal name on payment orders")
    debtor_iban: str = Field("", description="our IBAN (pain.001)")
    debtor_bic: str = Field("", description="our bank's BIC (pain.001)")
    debtor_account: str = Field("", description="our Russian settlement account (1C)")
    debtor_bik: str = Field("", description="our bank's BIK (1C)")
    debtor_corr_account: str = Field("", description="our bank's correspondent account (1C)")
    debtor_bank_name: str = Field("", description="our bank's name (1C)")
    debtor_inn: str = Field("", description="our INN (1C)")
    debtor_kpp: str = Field("", description="our KPP (1C)")

    # low-balance alerts
    smtp_host: str = Field("", description="SMTP server for alert e-mails (empty: e-mail alerts fail)")
    smtp_port: int = 25
    smtp_from: str = "paymux@localhost"
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    webhook_timeout_seconds: float = Field(10.0, gt=0)
    retry_base_seconds: float = Field(30.0, gt=0, description="first retry after this; doubles each time")
    retry_max_seconds: float = Field(3600.0, gt=0)
    max_attempts: int = Field(10, ge=1, description="an alert is given up (failed) after this many tries")
    check_seconds: float = Field(30.0, gt=0, description="how often balances are compared to thresholds")
    poll_seconds: float = Field(5.0, gt=0, description="how often an idle worker looks for due alerts")
    lease_seconds: int = Field(120, ge=5, description="a claimed alert is re-claimable after this")
