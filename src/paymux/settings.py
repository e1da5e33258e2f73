"""Settings from the environment (``PAYMUX_*``)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYMUX_", extra="ignore")

    database_url: str = Field(
        default="sqlite+aiosqlite:///./paymux.db",
        description="sqlite+aiosqlite:///PATH or postgresql+asyncpg://user@host/db",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    # TLS on paymux serve's own listener (server_tls.py); without a certificate it serves plain HTTP
    ssl_certfile: str | None = Field(default=None, description="PEM certificate (chain): serve HTTPS")
    ssl_keyfile: str | None = Field(
        default=None, description="its private key, if not in the certificate file"
    )
    ssl_keyfile_password: SecretStr = Field(default=SecretStr(""), description="password of an encrypted key")
    ssl_ca_certs: str | None = Field(
        default=None, description="CA certificates that issue client certificates"
    )
    ssl_cert_reqs: Literal["none", "optional", "required"] = Field(
        default="none", description="client certificates: none, optional (checked when sent), required"
    )
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

    # PostgreSQL session limits (0: none). A process paused or cut off inside a transaction holds its
    # row locks (ledger balances among them) until its transaction ends: the server ends such a
    # session after the idle timeout, and nobody waits for a lock longer than the lock timeout.
    db_idle_in_transaction_timeout_ms: int = Field(
        default=10_000, ge=0, description="PostgreSQL idle_in_transaction_session_timeout of every session"
    )
    db_lock_timeout_ms: int = Field(default=20_000, ge=0, description="PostgreSQL lock_timeout")
    db_statement_timeout_ms: int = Field(
        default=60_000, ge=0, description="PostgreSQL statement_timeout of the sessions that write"
    )
    db_read_statement_timeout_ms: int = Field(
        default=300_000,
        ge=0,
        description="PostgreSQL statement_timeout of read-only sessions (reports)",
    )

    # PostgreSQL connections of one process: the writers' pool (size + overflow) and the readers'
    # (half the size, at least 2, same overflow). Every API node and worker holds up to
    # 1.5 x size + 2 x overflow connections: keep their sum under the server's max_connections.
    db_pool_size: int = Field(
        default=8, ge=1, le=200, description="PostgreSQL writers' pool size per process"
    )
    db_max_overflow: int = Field(
        default=4, ge=0, le=200, description="PostgreSQL connections above the pool size, per pool"
    )

    # Providers
    provider_timeout_ms: int = 10_000
    provider_connect_timeout_ms: int = 3_000

    # The hosted payment page (/pay/{token}) and its payment methods (invoices/methods)
    public_url: str | None = Field(
        default=None,
        description="the hub's public address (https://pay.example) for payment links, return and "
        "callback URLs; the request's own address when unset",
    )
    paymethods: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description='settings per payment method, JSON: {"card": {"url": "https://acquirer.example", '
        '"secret": "..."}, "open_banking": {...}, "redirect": {"url_template": ..., "secret": ...}}',
    )
    paymethod_attempt_minutes: int = Field(
        default=60, ge=1, le=10_080, description="an attempt still pending after this is expired"
    )
    # Starting a method on the hosted page (POST /pay/{token}/methods/{method}), counted per process
    # in a sliding window: more than this per payment link, or per client address, is answered 429
    # (0: no limit)
    paymethod_start_per_token: int = Field(
        default=10, ge=0, le=10_000, description="method starts per payment link per window"
    )
    paymethod_start_per_address: int = Field(
        default=30, ge=0, le=100_000, description="method starts per client address per window"
    )
    paymethod_start_window_seconds: int = Field(
        default=600, ge=1, le=86_400, description="the window of the method start limits, seconds"
    )
    # Bank statements for invoices (invoices/receipts.py): a statement names its account. The
    # statement of a biller's collection account matches that biller's invoices only; of one of these
    # hub-wide accounts (IBANs or account numbers, JSON list), every biller's; of another, it is refused.
    invoice_hub_accounts: list[str] = Field(
        default_factory=list,
        description="the hub's own collection accounts whose statements match every biller's invoices",
    )

    # Channel request signing
    signature_max_skew_seconds: int = 300

    # Caches of the catalog (seconds); changes through the admin API invalidate at once in-process.
    catalog_cache_seconds: int = 5
    # How long a process trusts a channel API key it has read: a key revoked in another process is
    # refused here within this time (in the revoking process at once). 0 reads it on every request.
    channel_key_cache_seconds: float = Field(default=5, ge=0, le=300)

    # The request edge (api/edge.py): the largest request body per route class, in bytes (413 beyond)
    body_limit_channel: int = Field(default=64 * 1024, description="channel API (/api/v1/, not admin)")
    body_limit_admin: int = Field(default=1024 * 1024, description="admin API, and any other route")
    body_limit_catalog: int = Field(default=4 * 1024 * 1024, description="POST /api/v1/admin/catalog")
    body_limit_upload: int = Field(
        default=64 * 1024 * 1024, description="file uploads: reconciliation registers, bank statements"
    )
    body_limit_backoffice: int = Field(default=1024 * 1024, description="back-office forms")
    body_limit_gateway: int = Field(
        default=16 * 1024, description="inbound gateways (/osmp/..., /cyberplat/...)"
    )
    catalog_max_items: int = Field(
        default=10_000,
        description="the most providers, services, tariffs... in one list of a catalog document",
    )
    request_id_from_client: bool = Field(
        default=True, description="use a well-formed X-Request-ID sent by the client instead of a new id"
    )

    # Failed authentication (auth/throttle.py; counted per process): after this many failures within
    # the window, from one address or with one key prefix, further attempts get 429 (0: no limit)
    auth_failures_per_address: int = 30
    auth_failures_per_key: int = 10
    auth_failure_window_seconds: int = 60

    # The ISO 8583 (1987) listener for ATMs and POS terminals (paymux/iso8583; docs/protocols.md)
    iso8583_enabled: bool = Field(default=False, description="serve also listens for ISO 8583 over TCP")
    iso8583_host: str = Field(default="127.0.0.1", description="address of the ISO 8583 listener")
    iso8583_port: int = Field(default=8583, ge=0, le=65535, description="port of the ISO 8583 listener")
    iso8583_length_header: Literal["binary2", "ascii4"] = Field(
        default="binary2",
        description="frame length header: 2 bytes binary big-endian (binary2) or 4 ASCII digits (ascii4)",
    )
    iso8583_bitmap: Literal["binary", "ascii"] = Field(
        default="binary", description="bitmaps as 8 binary bytes each (binary) or 16 hex characters (ascii)"
    )
    iso8583_max_frame: int = Field(
        default=4096, ge=64, le=65535, description="the largest message accepted, in bytes (larger: closed)"
    )
    iso8583_idle_timeout_seconds: float = Field(
        default=300, gt=0, le=86_400, description="a connection silent this long is closed"
    )
    iso8583_max_connections: int = Field(default=512, ge=1, description="connections served at once")
    iso8583_config: str | None = Field(
        default=None, description="YAML file: the terminals (field 41/42 to a channel) and the field map"
    )

    # The operator's own business day: dates and times written into files for the bank (payment orders)
    business_timezone: str = Field(
        default="UTC", description="IANA time zone of the operator's business dates, e.g. Europe/Moscow"
    )

    @field_validator("business_timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {v!r} (use an IANA name such as Europe/Moscow or UTC)"
            ) from None
        return v

    @property
    def business_tz(self) -> ZoneInfo:
        return ZoneInfo(self.business_timezone)


@lru_cache
def get_settings() -> Settings:
    return Settings()
