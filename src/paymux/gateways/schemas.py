"""Inbound gateways in their user-facing form (the catalog file's ``gateways:`` and the admin API).

``paymux.catalog.schemas`` embeds :class:`GatewayIn` in the catalog file, so this module takes the
shared field types from ``paymux.catalog.fields``, never from ``catalog.schemas``.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from paymux.catalog.fields import Amount, Code
from paymux.catalog.fields import StrictIn as _In
from paymux.masking import MASK
from paymux.money import MoneyError, check_currency, parse_amount

__all__ = [
    "KEEP_PASSWORD",
    "RESERVED_PARAMS",
    "AmountRangeIn",
    "ClientCertIn",
    "GatewayAuthIn",
    "GatewayIn",
]

_PARAM_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}\Z")
_HEADER_RE = re.compile(r"^[A-Za-z0-9-]{1,100}\Z")
_MIN_PASSWORD = 8

# OSMP parameters the gateway reads itself; every other one is an extra field of the service (each
# inbound protocol declares its own: InboundProtocol.reserved_params)
RESERVED_PARAMS = frozenset({"command", "txn_id", "txn_date", "account", "sum", "ccy", "login", "password"})
# written in place of a stored password hash (admin API listing); sent back, it keeps the stored one
KEEP_PASSWORD = MASK


class AmountRangeIn(_In):
    """The amounts a gateway may pay in one currency (on top of the service's own limits)."""

    min: Amount | None = None
    max: Amount | None = None


class ClientCertIn(_In):
    """Client certificate authentication, verified by the TLS-terminating proxy.

    The proxy checks the certificate and passes what identifies it (e.g. its SHA-256 fingerprint
    or subject) in ``header``; the header is believed only from the gateway's ``trusted_proxies``.
    """

    header: str = "X-Client-Cert-Fingerprint"
    allowed: list[str] = Field(min_length=1, description="accepted header values (fingerprints or subjects)")

    @field_validator("header")
    @classmethod
    def _header(cls, value: str) -> str:
        if not _HEADER_RE.match(value):
            raise ValueError(f"header {value!r} is not an HTTP header name")
        return value

    @field_validator("allowed")
    @classmethod
    def _allowed(cls, value: list[str]) -> list[str]:
        for v in value:
            if not v.strip():
                raise ValueError("allowed: empty value")
        return value


class GatewayAuthIn(_In):
    """Login and password (HTTP Basic or ``login``/``password`` parameters), a client certificate,
    or both (then both are required). ``password`` is hashed when stored; an export shows
    ``password_hash`` instead, which is taken as it is."""

    login: str | None = Field(None, min_length=1, max_length=100)
    password: str | None = Field(None, max_length=200)
    password_hash: str | None = Field(None, max_length=200)
    client_cert: ClientCertIn | None = None

    @model_validator(mode="after")
    def _check(self) -> GatewayAuthIn:
        if self.password is not None and self.password_hash is not None:
            raise ValueError("give password or password_hash, not both")
        has_secret = self.password is not None or self.password_hash is not None
        if self.login is None and has_secret:
            raise ValueError("a password needs a login")
        if self.login is not None and not has_secret:
            raise ValueError("login needs password (or password_hash)")
        if self.password is not None and len(self.password) < _MIN_PASSWORD:
            raise ValueError(f"password must be at least {_MIN_PASSWORD} characters")
        if (
            self.password_hash is not None
            and self.password_hash != KEEP_PASSWORD
            and not self.password_hash.startswith("$argon2")
        ):
            raise ValueError("password_hash must be an argon2 hash as exported (or give password)")
        return self


def _network(value: str, field: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{field}: {value!r} is not an IP address or CIDR such as 10.0.0.0/8") from None
    return value


class GatewayIn(_In):
    """An inbound gateway: a payment system paying through the hub over its protocol."""

    code: Code
    name: str = Field(min_length=1, max_length=200)
    protocol: str = Field(
        "osmp", description="the inbound protocol it speaks (an installed one: osmp, cyberplat...)"
    )
    channel: Code | None = Field(
        None, description="its channel (kind gateway); the gateway's code if omitted"
    )
    enabled: bool = True
    services: list[Code] = Field(min_length=1, description="the services it may pay")
    default_service: Code | None = Field(None, description="paid when the request names no service")
    service_param: str = Field("service", description="the request parameter that names the service")
    limits: dict[str, AmountRangeIn] = Field(default_factory=dict, description="per currency")
    ignore_params: list[str] = Field(default_factory=list, description="parameters that are not fields")
    check: Literal["provider", "local"] = Field(
        "provider", description="provider: ask the routed provider; local: the hub's rules only"
    )
    check_txn_id: Literal["own", "upstream"] = Field(
        "own",
        description=(
            "the txn_id of the provider's check for an inbound check: own (a check id of the hub's, "
            "never a payment's id) or upstream (the payment system's txn_id, forwarded)"
        ),
    )
    pay_result: Literal["accepted", "final"] = Field(
        "accepted", description="accepted: 0 once accepted; final: 90 until the provider has paid"
    )
    auth: GatewayAuthIn = Field(default_factory=GatewayAuthIn)
    allow_ips: list[str] = Field(default_factory=list, description="CIDRs; empty: any address")
    trusted_proxies: list[str] = Field(
        default_factory=list, description="proxies whose client-address and certificate headers are believed"
    )
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="the protocol's own settings (keys, serials...; see docs/protocols.md)",
    )

    @field_validator("protocol")
    @classmethod
    def _protocol(cls, value: str) -> str:
        from paymux.gateways.base import inbound_names

        if value not in inbound_names():
            known = ", ".join(inbound_names()) or "none installed"
            raise ValueError(f"unknown inbound protocol {value[:32]!r} (installed: {known})")
        return value

    @field_validator("service_param")
    @classmethod
    def _service_param(cls, value: str) -> str:
        if not _PARAM_RE.match(value):
            raise ValueError(f"service_param {value!r} must be a parameter name")
        return value

    @field_validator("ignore_params")
    @classmethod
    def _ignore(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _PARAM_RE.match(name):
                raise ValueError(f"ignore_params: {name!r} must be a parameter name")
        return value

    @field_validator("allow_ips")
    @classmethod
    def _allow(cls, value: list[str]) -> list[str]:
        return [_network(v, "allow_ips") for v in value]

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: list[str]) -> list[str]:
        return [_network(v, "trusted_proxies") for v in value]

    @model_validator(mode="after")
    def _check(self) -> GatewayIn:
        if len(set(self.services)) != len(self.services):
            raise ValueError("services: listed twice")
        if self.default_service is not None and self.default_service not in self.services:
            raise ValueError(f"default_service {self.default_service!r} is not in services")
        if self.service_param in self.ignore_params:
            raise ValueError(f"service_param {self.service_param!r} is also in ignore_params")
        for cur, rng in self.limits.items():
            try:
                check_currency(cur)
                lo = None if rng.min is None else parse_amount(rng.min, cur, allow_zero=True)
                hi = None if rng.max is None else parse_amount(rng.max, cur)
            except MoneyError as exc:
                raise ValueError(f"limits.{cur}: {exc}") from None
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"limits.{cur}: min {rng.min} is greater than max {rng.max}")
        if self.auth.client_cert is not None and not self.trusted_proxies:
            raise ValueError("auth.client_cert needs trusted_proxies (the proxies that set its header)")
        from paymux.gateways.base import inbound_protocol

        proto = inbound_protocol(self.protocol)
        name = proto.name.upper() if proto.name == "osmp" else proto.name
        if self.service_param in proto.reserved_params:
            raise ValueError(
                f"service_param {self.service_param!r} must be a parameter name other than the {name} ones"
            )
        for param in self.ignore_params:
            if param in proto.reserved_params:
                raise ValueError(
                    f"ignore_params: {param!r} must be a parameter name other than the {name} ones"
                )
        problems = proto.validate_gateway(self)
        if problems:
            raise ValueError(f"{self.protocol}: " + "; ".join(problems))
        return self

    @property
    def channel_code(self) -> str:
        return self.channel or self.code
