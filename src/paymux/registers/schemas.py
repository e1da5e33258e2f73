"""Register template settings (validated JSON stored in ``register_templates.config``) and API shapes."""

from __future__ import annotations

import codecs
import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from paymux.masking import keep_secrets as keep
from paymux.masking import mask_secrets
from paymux.registers.columns import FIELDS, field_def

HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]\Z")
DBF_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,9}\Z")
STATUSES = ("succeeded", "failed", "cancelled")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ColumnSpec(_Strict):
    """One column: which field, its title (header / DBF field name) and an optional width or format."""

    field: str
    title: str | None = None
    name: str | None = Field(default=None, description="DBF field name (A-Z, 0-9, _; up to 10 chars)")
    width: int | None = Field(default=None, ge=1, le=254, description="DBF character/numeric width")
    format: str | None = Field(default=None, description="strftime pattern for dates in text formats")

    @field_validator("field")
    @classmethod
    def _known(cls, v: str) -> str:
        try:
            field_def(v)
        except KeyError:
            raise ValueError(f"unknown field {v!r}; use one of {', '.join(FIELDS)} or fields.<key>") from None
        return v

    @field_validator("name")
    @classmethod
    def _dbf_name(cls, v: str | None) -> str | None:
        if v is not None and not DBF_NAME.match(v):
            raise ValueError("a DBF field name is 1-10 characters A-Z, 0-9, _ starting with a letter")
        return v


class CsvOptions(_Strict):
    delimiter: str = Field(default=";", min_length=1, max_length=1)
    header: bool = True
    encoding: str = "utf-8"
    line_ending: Literal["crlf", "lf"] = "crlf"
    quoting: Literal["minimal", "all", "none"] = "minimal"
    decimal_separator: Literal[".", ","] = "."
    line_template: str | None = Field(
        default=None, description="a pattern per payment, e.g. '{id}|{account}|{amount:>12}' (TXT layout)"
    )
    header_template: str | None = None
    footer_template: str | None = None

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, v: str) -> str:
        try:
            return codecs.lookup(v).name
        except LookupError:
            raise ValueError(f"unknown encoding {v!r}") from None


class DbfOptions(_Strict):
    encoding: Literal["cp866", "cp1251"] = "cp866"


class XlsxOptions(_Strict):
    sheet_name: str = Field(default="Register", min_length=1, max_length=31)
    header: bool = True


class Encryption(_Strict):
    """OpenPGP: encrypt to the provider's public key, optionally sign with our key."""

    public_key: str = Field(min_length=1, description="the provider's ASCII-armored public key")
    sign_key: str | None = Field(default=None, description="our ASCII-armored secret key, to sign")
    sign_passphrase: str | None = None
    armor: bool = False


class _Tls(_Strict):
    verify_tls: bool = True
    ca_pem: str | None = Field(
        default=None, description="PEM certificate(s) to trust instead of the system CAs"
    )
    timeout_seconds: float = Field(default=60, gt=0, le=3600)


class EmailDelivery(_Tls):
    kind: Literal["email"]
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password: str | None = None
    from_addr: str
    to: list[str] = Field(min_length=1)
    cc: list[str] = Field(default_factory=list)
    subject: str | None = Field(default=None, description="pattern; the template's subject when empty")
    body: str = "Register {period} of {provider_name} attached: {file_name}, {rows} payments."


class FtpDelivery(_Tls):
    kind: Literal["ftp"]
    host: str
    port: int = Field(default=21, ge=1, le=65535)
    security: Literal["none", "explicit_tls"] = "none"
    username: str = "anonymous"
    password: str | None = None
    directory: str = ""
    passive: bool = True
    temp_suffix: str = Field(
        default=".part", description="upload under name+suffix, then rename; '' to write directly"
    )


class SftpDelivery(_Strict):
    kind: Literal["sftp"]
    host: str
    port: int = Field(default=22, ge=1, le=65535)
    username: str
    password: str | None = None
    private_key: str | None = Field(default=None, description="OpenSSH or PEM private key")
    private_key_passphrase: str | None = None
    host_key: str | None = Field(
        default=None, description="the server's public host key ('ssh-ed25519 AAAA...')"
    )
    insecure_skip_host_key: bool = False
    directory: str = ""
    temp_suffix: str = ".part"
    timeout_seconds: float = Field(default=60, gt=0, le=3600)

    @model_validator(mode="after")
    def _auth(self) -> SftpDelivery:
        if not self.password and not self.private_key:
            raise ValueError("sftp needs a password or a private_key")
        if not self.host_key and not self.insecure_skip_host_key:
            raise ValueError("sftp needs the server's host_key (or insecure_skip_host_key: true)")
        return self


Delivery = Annotated[EmailDelivery | FtpDelivery | SftpDelivery, Field(discriminator="kind")]


class Schedule(_Strict):
    """When a period's register is due, in the provider's timezone."""

    enabled: bool = True
    at: str = Field(default="02:00", description="local time HH:MM")
    delay_days: int = Field(default=0, ge=0, le=31, description="daily: days after the next day")
    day_of_month: int = Field(default=1, ge=1, le=28, description="monthly: day of the following month")
    catch_up: int = Field(default=3, ge=1, le=62, description="missed periods still created")

    @field_validator("at")
    @classmethod
    def _at(cls, v: str) -> str:
        if not HHMM.match(v):
            raise ValueError("use HH:MM (24-hour)")
        return v

    def time(self) -> dt.time:
        h, m = self.at.split(":")
        return dt.time(int(h), int(m))


class Retry(_Strict):
    max_attempts: int = Field(default=8, ge=1, le=100)
    base_seconds: float = Field(default=60, gt=0)
    max_seconds: float = Field(default=3600, gt=0)


class TemplateConfig(_Strict):
    """Everything about a template except its identity (code, name, kind, format, enabled)."""

    columns: list[ColumnSpec] = Field(min_length=1)
    statuses: list[Literal["succeeded", "failed", "cancelled"]] = Field(default=["succeeded"], min_length=1)
    totals: bool = True
    amount_format: Literal["decimal", "minor"] = "decimal"
    datetime_format: str = "%Y-%m-%d %H:%M:%S"
    date_format: str = "%Y-%m-%d"
    file_name: str | None = Field(default=None, description="pattern; default {provider}_{period}.{ext}")
    subject: str = "{provider_name}: register {period}"
    csv: CsvOptions = Field(default_factory=CsvOptions)
    dbf: DbfOptions = Field(default_factory=DbfOptions)
    xlsx: XlsxOptions = Field(default_factory=XlsxOptions)
    encryption: Encryption | None = None
    deliveries: list[Delivery] = Field(default_factory=list)
    schedule: Schedule | None = None
    retry: Retry = Field(default_factory=Retry)


class TemplateIn(TemplateConfig):
    code: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["daily", "monthly"] = "daily"
    format: Literal["xlsx", "csv", "dbf"]
    enabled: bool = True

    def config(self) -> TemplateConfig:
        return TemplateConfig.model_validate(
            self.model_dump(exclude={"code", "name", "kind", "format", "enabled"})
        )


class RegenerateIn(_Strict):
    date: str = Field(description="the period: YYYY-MM-DD (daily) or YYYY-MM / any day of it (monthly)")
    deliver: bool = Field(default=True, description="also send it, or only build it to download")


def mask(config: dict[str, Any]) -> dict[str, Any]:
    """A stored config as every read shows it: delivery and signing secrets as ``***``."""
    masked: dict[str, Any] = mask_secrets(config)
    return masked


def keep_secrets(new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """Where ``new`` carries ``***`` for a secret, keep the stored value (a form sends back masks).

    A destination's stored secrets are found by its kind, host, port and user (it may have moved in
    the list), else by its position if the kind is the same there. A ``***`` with nothing stored
    behind it raises :class:`paymux.masking.MaskedSecretError`.
    """
    old_dels = [d for d in old.get("deliveries", []) if isinstance(d, dict)]

    def ident(d: dict[str, Any]) -> tuple[Any, ...]:
        return (d.get("kind"), d.get("host"), d.get("port"), d.get("username"))

    def stored_for(i: int, d: dict[str, Any]) -> dict[str, Any]:
        prev = next((o for o in old_dels if ident(o) == ident(d)), None)
        if prev is None and i < len(old_dels) and old_dels[i].get("kind") == d.get("kind"):
            prev = old_dels[i]
        return prev or {}

    out = keep(
        {k: v for k, v in new.items() if k != "deliveries"},
        {k: v for k, v in old.items() if k != "deliveries"},
    )
    deliveries = new.get("deliveries")
    if isinstance(deliveries, list):
        out["deliveries"] = [
            keep(d, stored_for(i, d), path=f"deliveries[{i}]") if isinstance(d, dict) else d
            for i, d in enumerate(deliveries)
        ]
    elif "deliveries" in new:
        out["deliveries"] = deliveries
    return out
