"""Back-office and login settings (``PAYMUX_BACKOFFICE_*``)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class BackofficeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYMUX_BACKOFFICE_", extra="ignore")

    cookie_secure: bool = Field(True, description="Secure cookies; false only for plain-http development")
    session_idle_minutes: int = Field(15, description="a session ends after this long without a request")
    session_max_hours: int = Field(12, description="a session ends this long after login in any case")
    lockout_failures: int = Field(10, description="failed logins in a row that lock an account")
    lockout_minutes: int = Field(30, description="how long a locked account stays locked")
    otp_minutes: int = Field(5, description="lifetime of a code sent by e-mail or SMS")
    otp_attempts: int = Field(5, description="wrong codes allowed per sent code")
    chart_series: int = Field(
        10, ge=2, description="series a chart draws at most: the largest groups, the rest summed as Other"
    )
    default_language: str = "en"
    default_timezone: str = "UTC"
    totp_issuer: str = "paymux"

    # client-certificate login through a TLS-terminating proxy
    cert_header: str = Field("", description="header carrying the verified client certificate identity")
    trusted_proxies: list[str] = Field(
        default_factory=list, description="proxy addresses/ranges whose headers (cert, X-Forwarded-For) count"
    )

    # senders of one-time codes
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_from: str = "paymux@localhost"
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    sms_url: str = Field("", description="HTTP SMS gateway: POST JSON {to, text} here")
    sms_token: str = Field("", description="bearer token for the SMS gateway")


@lru_cache
def get_backoffice_settings() -> BackofficeSettings:
    return BackofficeSettings()
