"""Settings of notifications: delivery (``PAYMUX_NOTIFICATIONS_*``), SMTP (``PAYMUX_SMTP_*``) and the
SMS gateway (``PAYMUX_SMS_*``)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class NotificationSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYMUX_NOTIFICATIONS_", extra="ignore")

    poll_seconds: float = Field(default=1.0, gt=0, description="how often an idle worker looks for due work")
    lease_seconds: int = Field(default=120, ge=5, description="a claimed notification is re-claimable after")
    concurrency: int = Field(default=20, ge=1, le=1000, description="notifications sent at once per worker")
    retry_base_seconds: float = Field(default=30, gt=0, description="first retry delay; doubles each attempt")
    retry_max_seconds: float = Field(default=3600, gt=0, description="longest delay between two attempts")
    retry_window_seconds: int = Field(
        default=86_400, ge=1, description="a notification not delivered this long after it was made fails"
    )
    timeout_seconds: float = Field(default=10, gt=0, le=300, description="timeout of one delivery attempt")
    # a Fernet key (cryptography.fernet.Fernet.generate_key()): webhook secrets are stored encrypted with it
    secret_key: SecretStr = Field(
        default=SecretStr(""), description="key sealing webhook secrets at rest (empty: stored as they are)"
    )


class SmtpSettings(BaseSettings):
    """The SMTP server of customer e-mail. Unset host: the back office's (``PAYMUX_BACKOFFICE_SMTP_*``)."""

    model_config = SettingsConfigDict(env_prefix="PAYMUX_SMTP_", extra="ignore")

    host: str = ""
    port: int = Field(default=25, ge=1, le=65535)
    sender: str = Field(default="", description="From: address (default: the back office's smtp_from)")
    username: str = ""
    password: SecretStr = SecretStr("")
    starttls: bool = False
    timeout_seconds: float = Field(default=10, gt=0, le=300)


class SmsSettings(BaseSettings):
    """The SMS gateway: a plug-in of the entry point group ``paymux.sms`` and its config."""

    model_config = SettingsConfigDict(env_prefix="PAYMUX_SMS_", extra="ignore")

    gateway: str = Field(default="jsonhttp", description="name of the SMS gateway plug-in")
    url: str = Field(default="", description="the gateway's base URL (empty: no SMS is sent)")
    token: SecretStr = Field(default=SecretStr(""), description="bearer token for the gateway")
    sender: str = Field(default="paymux", max_length=32, description="sender name or number")
    timeout_seconds: float = Field(default=10, gt=0, le=300)
